/**
 * Hostile and broken peers: one that sends part of a frame and
 * stalls (slowloris), one that never reads (send-side backpressure), and one
 * that sends garbage — each against the library's listeners and clients,
 * through the public API. The claims: memory stays bounded, a configured
 * timeout ends what would otherwise wait forever, every failure is a typed
 * TapsError, and a listener survives whatever one peer does.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { isTapsError, type TapsError } from '../../src/errors.js';
import { seeded } from '../helpers/fault-relay.js';
import { connectedPair, dialer, listenOn, receiveDeadline, until, type Stack } from './stacks.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The connection's end: its connectionError, or undefined for a clean `closed` (exactly one of them comes). */
function errorOf(conn: Connection): Promise<TapsError | undefined> {
  return new Promise((resolve) => {
    if (conn.state === 'closed') resolve(undefined);
    conn.once('connectionError', (e) => resolve(e));
    conn.once('closed', () => resolve(undefined));
  });
}

/** A raw TCP socket to `port`, destroyed after the test. */
async function raw(port: number): Promise<Socket> {
  const s = netConnect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  return s;
}

const STREAMS: readonly Stack[] = ['tcp', 'tls', 'ws', 'wss'];

describe('slowloris: part of a frame, then nothing', () => {
  it.each(STREAMS)('%s: the server application\'s receive deadline ends it with ERR_TAPS_TIMEOUT', async (stack) => {
    // The client starts a 200 KB message; the path stalls after a few KB, inside that message.
    const p = await connectedPair(stack, { relay: { seed: 51, toServer: { stallAt: 3_000 } } });
    cleanups.push(() => p.cleanup());
    const got: number[] = [];
    p.server.on('received', (m) => got.push(m.byteLength));
    receiveDeadline(p.server, 150);
    const failed = errorOf(p.server);
    void p.client.send(new Uint8Array(200_000)).catch(() => {});
    const err = await failed;
    expect(err).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    expect(err!.message).toMatch(/receive deadline/);
    expect(got).toEqual([]);
    expect(p.server.state).toBe('closed');
  });

  it('tcp: a raw peer that sends a length header and a few bytes, then stalls', async () => {
    const listener = await listenOn('tcp', '127.0.0.1');
    cleanups.push(() => listener.stop());
    const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
    const s = await raw(listener.port);
    s.write(Buffer.from([0, 0, 0x10, 0, 1, 2, 3])); // announces 4096 bytes, sends 3
    const conn = await accepted;
    receiveDeadline(conn, 100);
    expect(await errorOf(conn)).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    // The server closed its side: the raw peer sees it go.
    await until(() => s.destroyed || s.readableEnded, 'the peer to see the close');
  });

  it('tls: a peer that connects and never sends its hello is dropped by the listener (handshakeTimeout)', async () => {
    const listener = await listenOn('tls', '127.0.0.1', undefined, { tls: { handshakeTimeout: 100 } });
    cleanups.push(() => listener.stop());
    let delivered = 0;
    listener.on('connectionReceived', () => delivered++);
    const s = await raw(listener.port);
    s.write(Buffer.from([0x16, 0x03, 0x01])); // the first bytes of a record, then nothing
    await until(() => s.destroyed || s.readableEnded, 'the listener to drop the peer', 5000);
    expect(delivered).toBe(0);
    // The listener still works for the next peer.
    const conn = await dialer('tls', '127.0.0.1', listener.port).initiate({ signal: AbortSignal.timeout(5000) });
    cleanups.push(() => conn.abort());
    expect(conn.state).toBe('established');
  });
});

describe('a peer that never reads', () => {
  it.each(STREAMS)('%s: sends stop completing, memory stays bounded, close() ends with ERR_TAPS_TIMEOUT after closeTimeout', async (stack) => {
    const p = await connectedPair(stack, { driverOptions: { [stack]: { closeTimeout: 150 } } });
    cleanups.push(() => p.cleanup());
    // The server never reads: its inbox fills, its channel pauses, the kernel buffers fill, the client is pushed back.
    const chunk = new Uint8Array(256 * 1024);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let sent = 0;
    let failed = 0;
    let outstanding = 0;
    const window = 16;
    // An application that keeps at most `window` sends unsettled, as backpressure asks.
    const settle = (ok: boolean) => (): void => {
      outstanding--;
      if (ok) sent++;
      else failed++;
    };
    let issued = 0;
    let lastSent = -1;
    let steady = 0;
    // Until the client is pushed back and sends stop completing (the test's timeout catches a peer that never fills).
    while (steady < 10 || !p.client.sendBlocked) {
      while (outstanding < window) {
        outstanding++;
        issued++;
        p.client.send(chunk).then(settle(true), settle(false));
      }
      await new Promise((r) => setTimeout(r, 10));
      steady = sent === lastSent ? steady + 1 : 0;
      lastSent = sent;
    }
    // The peer stopped taking data: sends stopped completing (an unbounded inbox or queue anywhere on the way
    // would keep them completing and this test would never get here), and what the library holds is the window.
    expect(steady).toBeGreaterThanOrEqual(10);
    expect(failed).toBe(0);
    expect(p.client.sendBlocked).toBe(true);
    expect(outstanding).toBe(window);
    // What the library holds is the window, not `issued` × 256 KiB (resident memory printed, not asserted).
    const grew = process.memoryUsage().rss - before;
    console.log(`${stack}: ${issued} sends of 256 KiB issued, ${sent} completed, ${outstanding} held; rss grew ${(grew / 2 ** 20).toFixed(1)} MiB`);
    // The peer never reads: only closeTimeout settles close().
    const outcome = await p.client.close().then(() => undefined, (e: unknown) => e);
    expect(outcome).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    expect(p.client.state).toBe('closed');
    await until(() => outstanding === 0, 'every send to settle');
    expect(sent + failed).toBe(issued);
  });
});

describe('garbage', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('tcp listener: random bytes from a raw peer (seed %i) fail the connection with a typed error', async (seed) => {
    const listener = await listenOn('tcp', '127.0.0.1');
    cleanups.push(() => listener.stop());
    const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
    const s = await raw(listener.port);
    const rnd = seeded(seed);
    const junk = Buffer.from(Array.from({ length: 64 + Math.floor(rnd() * 4096) }, () => Math.floor(rnd() * 256)));
    s.write(junk);
    const conn = await accepted;
    conn.on('received', () => {});
    receiveDeadline(conn, 200);
    const err = await errorOf(conn);
    // A header over the maximum fails at once; a plausible one waits for a body that never comes, until the deadline.
    expect(['ERR_TAPS_DEFRAMING_FAILED', 'ERR_TAPS_TIMEOUT']).toContain(err?.code);
  });

  it('tls listener: garbage instead of a hello is dropped, the listener carries on', async () => {
    const listener = await listenOn('tls', '127.0.0.1');
    cleanups.push(() => listener.stop());
    let delivered = 0;
    listener.on('connectionReceived', () => delivered++);
    const s = await raw(listener.port);
    s.write(randomBytes(2048));
    await until(() => s.destroyed || s.readableEnded, 'the listener to drop the peer');
    expect(delivered).toBe(0);
  });

  it.each(['ws', 'wss'] as const)('%s listener: garbage frames after the upgrade fail that connection with a typed error', async (stack) => {
    // The server answers a bad frame with a close frame and waits for the peer's close (RFC 6455 §7.1.7); this
    // peer never reads, so the wait is ended by closeTimeout (ws's default: 30 s), then the error is reported.
    const listener = await listenOn(stack, '127.0.0.1', undefined, { [stack]: { closeTimeout: 100 } });
    cleanups.push(() => listener.stop());
    const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
    const s: Socket =
      stack === 'ws'
        ? await raw(listener.port)
        : await new Promise<Socket>((resolve) => {
            const t = tlsConnect({ host: '127.0.0.1', port: listener.port, rejectUnauthorized: false }, () => resolve(t));
            t.on('error', () => {});
            cleanups.push(() => t.destroy());
          });
    s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const conn = await accepted;
    conn.on('received', () => {});
    // An unmasked frame with reserved bits and a bogus opcode: RFC 6455 §5.2 says fail the connection.
    s.write(Buffer.from([0xff, 0x05, 1, 2, 3, 4, 5]));
    const err = await errorOf(conn);
    expect(isTapsError(err)).toBe(true);
    expect(['ERR_TAPS_PROTOCOL_FAILED', 'ERR_TAPS_CONNECTION_ABORTED', 'ERR_TAPS_CONNECTION_RESET']).toContain(err?.code);
  });

  it.each(STREAMS)('%s client: a server that answers with garbage fails establishment or the connection, typed', async (stack) => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.once('close', () => sockets.delete(s));
      s.write(randomBytes(4096));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
    const pre = dialer(stack, '127.0.0.1', (server.address() as { port: number }).port);
    const outcome = await pre.initiate({ signal: AbortSignal.timeout(3000) }).then(
      (c) => {
        cleanups.push(() => c.abort());
        c.on('received', () => {});
        receiveDeadline(c, 200);
        return errorOf(c);
      },
      (e: unknown) => e,
    );
    expect(isTapsError(outcome), String(outcome)).toBe(true);
    // tcp sees a stream it cannot deframe; tls and the upgrades fail while establishing.
    const code = (outcome as TapsError).code;
    if (stack === 'tcp') expect(['ERR_TAPS_DEFRAMING_FAILED', 'ERR_TAPS_TIMEOUT']).toContain(code);
    else expect(['ERR_TAPS_ESTABLISHMENT_FAILED', 'ERR_TAPS_SECURITY_FAILED', 'ERR_TAPS_PROTOCOL_FAILED']).toContain(code);
  });
});
