/**
 * A plain `ws` listener (WebSocket over TCP, no TLS) counts what its TCP
 * sockets carry against the listening tenant's byte budgets, each byte once:
 * the upgrade request (which Node's HTTP server parses straight from the
 * socket's handle), the 101, every frame header and mask, and the control
 * frames ws answers by itself (a pong, its close frame). The client here is
 * ws over a TCP socket of the test's own, whose counters are the wire both
 * ways. A peer over the received budget is dropped, whether the listener is
 * the library's or one a guest opened by calling the driver directly.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { NEVER_ABORTED, type ListenAttempt, type TransportChannel } from '../../src/driver.js';
import type { Connection } from '../../src/connection/connection.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import type { TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { wsDriver } from '../../transports/websocket/index.js';
import { quotaTenants } from '../helpers/tenants.js';

const { host, cleanups, tenant } = quotaTenants('ws-wire', 'allow bind:ws://@loopback:*\nallow accept:ws://@loopback:*');

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 400 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
};

/** A ws listener of `scope` through the library that echoes each message; `got()`: the Connections it handed over. */
async function echoListener(scope: TenantScope): Promise<{ port: number; got: () => Connection[] }> {
  const listener = await new Preconnection({ scope, local: 'ws://127.0.0.1:0', drivers: [wsDriver], properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled() }).listen();
  cleanups.push(() => listener.stop());
  const got: Connection[] = [];
  listener.on('connectionReceived', (c: Connection) => {
    got.push(c);
    c.on('connectionError', () => {});
    void (async () => {
      try {
        for await (const m of c) await c.send(m.data);
      } catch {
        /* the client went away */
      }
    })();
  });
  return { port: listener.port, got: () => got };
}

/** A ws client over `raw`, a TCP socket of the test's own; `headers`: extra upgrade request headers. */
async function dialRaw(port: number, headers: Record<string, string> = {}): Promise<{ raw: Socket; ws: WebSocket; opened: Promise<void>; closed: Promise<void> }> {
  const raw = netConnect(port, '127.0.0.1');
  raw.on('error', () => {});
  await new Promise<void>((r) => raw.once('connect', () => r()));
  const closed = new Promise<void>((r) => raw.once('close', () => r()));
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { createConnection: () => raw, headers } as ConstructorParameters<typeof WebSocket>[2]);
  ws.on('error', () => {});
  cleanups.push(() => void raw.destroy());
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('closed before open')));
  });
  opened.catch(() => {});
  return { raw, ws, opened, closed };
}

const wrote = (raw: Socket): number => (raw as Socket & { _bytesDispatched: number })._bytesDispatched;

describe('a plain ws listener counts what its TCP sockets carry', () => {
  it('the upgrade, each frame and the control frames ws answers count, each byte once: the counts are what the TCP socket carried', async () => {
    const { id, scope } = await tenant('limit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const server = await echoListener(scope);
    const { raw, ws, opened, closed } = await dialRaw(server.port);
    await opened;
    await until(() => host.usage(id).sent === raw.bytesRead && host.usage(id).received === wrote(raw));
    console.log(`ws listener upgrade: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wrote(raw)})`);
    expect(server.got()).toHaveLength(1);
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wrote(raw));

    const echoed = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send(new Uint8Array(1000).fill(0x64));
    expect((await echoed).byteLength).toBe(1000);
    const ponged = new Promise<void>((r) => ws.once('pong', () => r()));
    ws.ping(Buffer.from('are you there'));
    await ponged;
    await until(() => host.usage(id).sent === raw.bytesRead && host.usage(id).received === wrote(raw));
    console.log(`after a 1000-byte echo and a ping: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wrote(raw)})`);
    expect(host.usage(id).sent).toBe(raw.bytesRead); // the echoed frame and the pong ws wrote by itself
    expect(host.usage(id).received).toBe(wrote(raw)); // the Connection does not count the 1000 bytes again
    expect(host.usage(id).received).toBeGreaterThan(1000 + 6);

    ws.close(1000, 'bye'); // the server's close frame is ws's own
    await closed;
    await until(() => host.usage(id).sent === raw.bytesRead && host.usage(id).received === wrote(raw));
    console.log(`after the closing handshake: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wrote(raw)})`);
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wrote(raw));
  });

  it('a peer whose frames exceed the received budget is dropped; the message is never delivered', async () => {
    const { id, scope } = await tenant('limit received 2000B per 60s');
    const server = await echoListener(scope);
    const { raw, ws, opened, closed } = await dialRaw(server.port);
    await opened;
    await until(() => server.got().length === 1);
    const messages: unknown[] = [];
    server.got()[0]!.on('received', (m: unknown) => messages.push(m));
    const ended = new Promise<unknown>((r) => {
      server.got()[0]!.once('closed', () => r('closed'));
      server.got()[0]!.once('connectionError', (e: unknown) => r(e));
    });
    ws.send(new Uint8Array(3000).fill(0x64));
    await closed;
    const outcome = await ended;
    console.log(`ws listener over a 2000-byte received budget: ${host.usage(id).received} counted, the client wrote ${wrote(raw)}; the Connection ended with ${outcome instanceof Error ? outcome.message : String(outcome)}`);
    expect((outcome as { code?: string }).code).toBe('ERR_TAPS_QUOTA_EXCEEDED');
    expect(messages).toHaveLength(0);
    expect(host.usage(id).received).toBeGreaterThan(2000);
    expect(host.usage(id).received).toBeLessThanOrEqual(wrote(raw));
  });

  it('an upgrade request larger than the received budget is dropped before the 101 (its headers are the peer\'s)', async () => {
    const { id, scope } = await tenant('limit received 1000B per 60s');
    const server = await echoListener(scope);
    const { raw, opened, closed } = await dialRaw(server.port, { 'x-padding': 'p'.repeat(1500) });
    await expect(opened).rejects.toThrow('closed before open');
    await closed;
    console.log(`ws listener, 1000-byte received budget, ${wrote(raw)}-byte upgrade request: ${host.usage(id).received} counted, ${raw.bytesRead} bytes answered`);
    expect(server.got()).toHaveLength(0);
    expect(raw.bytesRead).toBe(0); // no 101, no 426
    expect(host.usage(id).received).toBe(wrote(raw));
  });

  it('a guest that calls the driver directly: its listener counts each peer\'s bytes the same, and drops one over the budget', async () => {
    const { id, scope } = await tenant('limit received 2000B per 60s\nlimit sent 64KiB per 60s');
    const target = await scope.guard.authorize({ use: 'bind', protocol: 'ws', address: '127.0.0.1', port: 0 });
    // A meter of its own making is ignored: the budget is the one of the scope that minted the target.
    const attempt: ListenAttempt = {
      signal: NEVER_ABORTED, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(),
      properties: new TransportProperties(), options: {}, guard: scope.guard, meter: { sent: () => {} },
    };
    const listener = await wsDriver.listen!(attempt);
    cleanups.push(() => listener.close());
    const channels: TransportChannel[] = [];
    const ended: Promise<Error | undefined>[] = [];
    listener.start({
      connection: (ch) => {
        channels.push(ch);
        ended.push(new Promise((r) => ch.start({ data: () => {}, end: () => {}, drain: () => {}, closed: (err) => r(err) })));
      },
      error: () => {},
    });
    const { raw, ws, opened, closed } = await dialRaw(listener.local.port);
    await opened;
    await until(() => channels.length === 1 && host.usage(id).received === wrote(raw) && host.usage(id).sent === raw.bytesRead);
    expect(channels[0]!.receiveMetered).toBe(true);
    expect(host.usage(id).received).toBe(wrote(raw));
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    ws.send(new Uint8Array(3000));
    await closed;
    const err = await ended[0];
    console.log(`direct ws listener: ${host.usage(id).received} received counted (the client wrote ${wrote(raw)}); the channel closed with ${err?.message ?? 'nothing'}`);
    expect(host.usage(id).received).toBeGreaterThan(2000);
    expect(err).toBeDefined();
  });
});
