/**
 * A plain `ws` listener (WebSocket over TCP, no TLS) counts what its TCP
 * sockets carry against the listening tenant's byte budgets, each byte once:
 * the upgrade request (which Node's HTTP server parses straight from the
 * socket's handle), the 101, every frame header and mask, and the control
 * frames ws answers by itself (a pong, its close frame). The client here is
 * ws over a TCP socket of the test's own, whose counters are the wire both
 * ways. A peer over the received budget is dropped, whether the listener is
 * the library's or one a guest opened by calling the driver directly. A ws
 * or wss client counts its side the same way: the 101 it reads, the frame
 * headers, and the pong ws writes by itself.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { NEVER_ABORTED, type ListenAttempt, type TransportChannel } from '../../src/driver.js';
import type { Connection } from '../../src/connection/connection.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import type { TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { echoEach } from '../helpers/echo.js';
import { rawWebSocket, wrote, type RawWebSocket } from '../helpers/raw-websocket.js';
import { quotaTenants } from '../helpers/tenants.js';

const { host, cleanups, tenant } = quotaTenants('ws-wire', 'allow ws://@loopback:*\nallow wss://@loopback:*\nallow bind:ws://@loopback:*\nallow accept:ws://@loopback:*');
const cert = testCertificate({ kind: 'ec', days: 10 });

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 400 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
};

/** A ws listener of `scope` through the library that echoes each message; `got()`: the Connections it handed over. */
async function echoListener(scope: TenantScope): Promise<{ port: number; got: () => Connection[] }> {
  const listener = await new Preconnection({ scope, local: 'ws://127.0.0.1:0', drivers: [wsDriver], properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled() }).listen();
  cleanups.push(() => listener.stop());
  return { port: listener.port, got: echoEach(listener) };
}

/** A ws client over a TCP socket of the test's own (its counters are the wire); `headers`: extra upgrade request headers. */
const dialRaw = (port: number, headers: Record<string, string> = {}): Promise<RawWebSocket> => rawWebSocket(port, cleanups, { headers });

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

/** A ws (or wss) server that echoes each message and then pings; `read()`/`wrote()`: what its TCP sockets carried. */
async function countingServer(secure: boolean): Promise<{ port: number; read: () => number; wrote: () => number; ponged: Promise<void> }> {
  const server = secure ? https.createServer({ cert: cert.cert, key: cert.key }) : http.createServer();
  const raws = new Set<Socket>();
  server.on('connection', (raw: Socket) => {
    raws.add(raw);
    raw.on('error', () => {});
  });
  let ponged!: () => void;
  const pong = new Promise<void>((r) => (ponged = r));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('pong', () => ponged());
    ws.on('message', (d: Buffer) => {
      ws.send(d);
      ws.ping(Buffer.from('still there?'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of raws) s.destroy();
    wss.close();
    server.close(() => r());
  }));
  const sum = (f: (s: Socket) => number) => (): number => [...raws].reduce((n, s) => n + f(s), 0);
  return { port: (server.address() as { port: number }).port, read: sum((s) => s.bytesRead), wrote: sum(wrote), ponged: pong };
}

describe('a ws or wss client counts what its socket carries', () => {
  it.each([['ws', false], ['wss', true]] as const)('%s through initiate(): the 101, the frame headers and its own pong count once: the counts are what the server\'s TCP socket carried', async (scheme, secure) => {
    const { id, scope } = await tenant('limit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const server = await countingServer(secure);
    const conn = await new Preconnection({
      scope, remote: `${scheme}://127.0.0.1:${server.port}/`, drivers: [secure ? wssDriver : wsDriver], properties: TransportProperties.reliableMessage(),
      security: secure ? new SecurityParameters({ ca: cert.cert }) : SecurityParameters.disabled(),
    }).initiate();
    cleanups.push(() => conn.abort());
    const echoed = new Promise<void>((r) => conn.once('received', () => r()));
    await conn.send(new Uint8Array(1000).fill(0x64));
    await echoed;
    await server.ponged;
    await until(() => host.usage(id).sent === server.read() && host.usage(id).received === server.wrote());
    console.log(`${scheme} client after a 1000-byte echo and a ping: ${host.usage(id).sent} sent (the server read ${server.read()}), ${host.usage(id).received} received (the server wrote ${server.wrote()})`);
    expect(host.usage(id).sent).toBe(server.read());
    expect(host.usage(id).received).toBe(server.wrote());
  });

  it('ws called directly by a guest (its own meter ignored): the same counts, from the socket under it and the account', async () => {
    const { id, scope } = await tenant('limit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const server = await countingServer(false);
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'ws', address: '127.0.0.1', port: server.port });
    const channel = await wsDriver.connect({
      signal: NEVER_ABORTED, target, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port: server.port }), security: SecurityParameters.disabled(),
      properties: new TransportProperties(), options: {}, guard: scope.guard, meter: { sent: () => {} },
    });
    cleanups.push(() => channel.abort());
    const echoed = new Promise<void>((r) => channel.start({ data: () => r(), end: () => {}, drain: () => {}, closed: () => {} }));
    channel.send(new Uint8Array(1000), {}, () => {});
    await echoed;
    await server.ponged;
    await until(() => host.usage(id).sent === server.read() && host.usage(id).received === server.wrote());
    console.log(`ws client called directly: ${host.usage(id).sent} sent (the server read ${server.read()}), ${host.usage(id).received} received (the server wrote ${server.wrote()}); ${host.usage(id).connections} connection unit held`);
    expect(channel.receiveMetered).toBe(false); // counted under it, at the TCP socket
    expect(host.usage(id).connections).toBe(1);
    expect(host.usage(id).sent).toBe(server.read());
    expect(host.usage(id).received).toBe(server.wrote());
  });
});
