/**
 * A QUIC client whose peer vanishes after the handshake (transports/quic/peer-loss.ts), over real sockets
 * on loopback:
 * - the peer process is killed (SIGKILL): its port then answers with ICMP port unreachable, and the
 *   connection ends by itself with ERR_TAPS_CONNECTION_RESET (cause ECONNREFUSED) a few probe timeouts
 *   later, while the client sends every 16 ms (a game's tick) or sent once; with the idle timeout set to
 *   30 s, before this the same connection ended only then, as ERR_TAPS_TIMEOUT; with the application
 *   silent, keep-alive PINGs draw the reports;
 * - real forged ICMP port unreachables (a raw socket, test/helpers/forge-icmp.py: what an off-path
 *   attacker can send) while the peer answers, or on an idle connection, are soft errors and end nothing.
 * That nothing of the client outlives such an end is checked in its own process by quic-exit.test.ts
 * (`peer-lost`). Times are printed, never asserted.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { Listener } from '../../src/listener.js';
import type { TapsError } from '../../src/errors.js';
import { createScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDgramDriver, quicDriver } from '../../transports/quic/index.js';
import { selfSignedCertificate } from '../../transports/tls/certificates.js';

const run = promisify(execFile);
const scope = createScope({ tenant: 'peer-lost', policy: { decide: () => ({ allow: true, rule: 'test' }) } });
const reliable = { msgReliable: true } as const;
/** The idle timeout the connections run with: what ended them before the ICMP reports were weighed. */
const IDLE_MS = 30_000;
const TICK_MS = 16;

const peers: ChildProcess[] = [];
const conns: Connection[] = [];
const listeners: Listener[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.abort();
  for (const p of peers.splice(0)) p.kill('SIGKILL');
  for (const l of listeners.splice(0)) await l.stop();
});

/** A peer process (test/helpers/quic-peer-child.ts) serving an echo on `stack`. */
async function startPeer(stack: string): Promise<{ child: ChildProcess; port: number; fingerprint: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/quic-peer-child.ts', stack], { stdio: ['ignore', 'pipe', 'inherit'] });
  peers.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8');
  for await (const chunk of child.stdout!) {
    out += chunk as string;
    if (out.includes('\n')) break;
  }
  const { port, fingerprint } = JSON.parse(out.split('\n')[0]!) as { port: number; fingerprint: string };
  return { child, port, fingerprint };
}

async function connect(stack: string, port: number, fingerprint: string, options: Record<string, unknown> = {}): Promise<Connection> {
  const conn = await new Preconnection({
    scope,
    remote: { hostName: 'localhost', ipAddress: '127.0.0.1', port },
    properties: stack === 'quic' ? new TransportProperties({ multistreaming: 'require' }) : TransportProperties.unreliableDatagram(),
    security: new SecurityParameters({ pinnedServerCertificates: [fingerprint] }),
    drivers: [stack === 'quic' ? quicDriver : quicDgramDriver],
    driverOptions: { [stack]: { idleTimeout: IDLE_MS, ...options } }, // options go by driver id: `quic-dgram` reads its own
  }).initiate({ timeout: 10_000 });
  conns.push(conn);
  return conn;
}

/**
 * One message there and back: resolves with `text` once it came back (a `quic` stream has no message
 * boundaries, so what arrives is read as text, echoes of ticks still under way included).
 */
async function echo(conn: Connection, text: string): Promise<string> {
  const back = new Promise<string>((resolve) => {
    let got = '';
    const on = (m: { data: Uint8Array }): void => {
      got += Buffer.from(m.data).toString();
      if (!got.includes(text)) return;
      conn.off('received', on);
      resolve(text);
    };
    conn.on('received', on);
  });
  await conn.send(text, reliable);
  return back;
}

/** How the connection ended (its first `connectionError`, or `closed`), and the soft errors before. */
function ending(conn: Connection): { soft: TapsError[]; ended: Promise<TapsError | 'closed'> } {
  const soft: TapsError[] = [];
  conn.on('softError', (e) => soft.push(e));
  const ended = new Promise<TapsError | 'closed'>((resolve) => {
    conn.once('connectionError', resolve);
    conn.once('closed', () => resolve('closed'));
  });
  return { soft, ended };
}

/** Forge `count` ICMP port unreachables `gapMs` apart for the client's datagrams to its peer (a raw socket: root). */
async function forgeIcmp(conn: Connection, count = 1, gapMs = 0): Promise<void> {
  await run('python3', ['test/helpers/forge-icmp.py', conn.local.address, String(conn.local.port), conn.remote.address, String(conn.remote.port), String(count), String(gapMs)]);
}

/** An echo peer in this process, for the connections whose peer stays (forged ICMP). */
async function localPeer(stack: string): Promise<{ port: number; fingerprint: string }> {
  const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1'], kind: 'ec' });
  const listener = await new Preconnection({
    scope,
    local: { ipAddress: '127.0.0.1', port: 0 },
    properties: stack === 'quic' ? new TransportProperties({ multistreaming: 'require' }) : TransportProperties.unreliableDatagram(),
    security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    drivers: [stack === 'quic' ? quicDriver : quicDgramDriver],
  }).listen();
  listeners.push(listener);
  listener.on('connectionReceived', (c) => {
    void (async () => {
      try {
        for await (const m of c) await c.send(m.data, reliable);
      } catch {
        // the client went away
      }
    })();
  });
  return { port: listener.port, fingerprint: cert.fingerprint256 };
}

describe.each(['quic', 'quic-dgram'])('%s: the peer vanishes after the handshake', { timeout: 40_000 }, (stack) => {
  it(`the peer process is killed while the client sends every ${TICK_MS} ms: ERR_TAPS_CONNECTION_RESET (ECONNREFUSED), not the ${IDLE_MS / 1000} s idle timeout`, async () => {
    const peer = await startPeer(stack);
    const conn = await connect(stack, peer.port, peer.fingerprint);
    for (let i = 0; i < 10; i++) expect(await echo(conn, `ping ${i}`)).toBe(`ping ${i}`);
    const { soft, ended } = ending(conn);
    peer.child.kill('SIGKILL');
    await once(peer.child, 'exit');
    const t0 = performance.now();
    const tick = setInterval(() => conn.send('tick', reliable).catch(() => {}), TICK_MS);
    const error = await ended;
    clearInterval(tick);
    const ms = performance.now() - t0;
    console.log(`${stack}, peer killed, ticking: ended after ${ms.toFixed(0)} ms (${soft.length} soft errors before): ${error === 'closed' ? error : error.message}`);
    expect(error).not.toBe('closed');
    const e = error as TapsError;
    expect(e.code, e.message).toBe('ERR_TAPS_CONNECTION_RESET');
    expect((e.cause as { code?: string }).code).toBe('ECONNREFUSED');
    expect(soft.length).toBeGreaterThanOrEqual(2);
    expect(soft.every((s) => s.code === 'ERR_TAPS_PROTOCOL_FAILED')).toBe(true);
    expect(conn.state).toBe('closed');
    await expect(conn.send('after', reliable)).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_TAPS_/) });
  });

  it('the peer process is killed and the client sends once: QUIC probes, and the connection ends by itself', async () => {
    const peer = await startPeer(stack);
    const conn = await connect(stack, peer.port, peer.fingerprint);
    for (let i = 0; i < 10; i++) await echo(conn, `ping ${i}`);
    const { soft, ended } = ending(conn);
    peer.child.kill('SIGKILL');
    await once(peer.child, 'exit');
    const t0 = performance.now();
    conn.send('once', reliable).catch(() => {});
    const error = await ended;
    const ms = performance.now() - t0;
    console.log(`${stack}, peer killed, one send: ended after ${ms.toFixed(0)} ms (${soft.length} soft errors before): ${error === 'closed' ? error : error.message}`);
    expect(error).not.toBe('closed');
    expect((error as TapsError).code, (error as TapsError).message).toBe('ERR_TAPS_CONNECTION_RESET');
  });

  it('the peer process is killed and the application sends nothing: keep-alive PINGs find out', async () => {
    const peer = await startPeer(stack);
    const conn = await connect(stack, peer.port, peer.fingerprint, { keepAliveInterval: 100 });
    for (let i = 0; i < 10; i++) await echo(conn, `ping ${i}`);
    const { soft, ended } = ending(conn);
    peer.child.kill('SIGKILL');
    await once(peer.child, 'exit');
    const t0 = performance.now();
    const error = await ended;
    const ms = performance.now() - t0;
    console.log(`${stack}, peer killed, keep-alive every 100 ms: ended after ${ms.toFixed(0)} ms (${soft.length} soft errors before): ${error === 'closed' ? error : error.message}`);
    expect(error).not.toBe('closed');
    expect((error as TapsError).code, (error as TapsError).message).toBe('ERR_TAPS_CONNECTION_RESET');
  });

  it('forged ICMP port unreachables while the peer answers: a soft error each, and the connection stays', async () => {
    const peer = await localPeer(stack);
    const conn = await connect(stack, peer.port, peer.fingerprint);
    await echo(conn, 'warm');
    const { soft, ended } = ending(conn);
    let error: TapsError | 'closed' | undefined;
    void ended.then((e) => (error = e));
    // One stray ICMP: reported, nothing else.
    const first = new Promise<TapsError>((resolve) => conn.once('softError', resolve));
    await forgeIcmp(conn);
    const reported = await first;
    expect(reported.code).toBe('ERR_TAPS_PROTOCOL_FAILED');
    expect(((reported.cause as { code?: string }) ?? {}).code).toBe('ECONNREFUSED');
    expect(await echo(conn, 'still here')).toBe('still here');
    // Many, spread over several probe timeouts, while the client sends and the peer answers.
    const tick = setInterval(() => conn.send('tick', reliable).catch(() => {}), TICK_MS);
    await forgeIcmp(conn, 8, 40);
    clearInterval(tick);
    console.log(`${stack}, forged ICMP while the peer answers: ${soft.length} soft errors, connection ${error === undefined ? 'open' : error === 'closed' ? 'closed' : error.message}`);
    expect(soft.length).toBeGreaterThanOrEqual(2);
    expect(error).toBeUndefined();
    expect(await echo(conn, 'after the storm')).toBe('after the storm');
  });

  it('forged ICMP port unreachables on an idle connection: nothing sent, nothing concluded', async () => {
    const peer = await localPeer(stack);
    const conn = await connect(stack, peer.port, peer.fingerprint);
    await echo(conn, 'warm');
    const { soft, ended } = ending(conn);
    let error: TapsError | 'closed' | undefined;
    void ended.then((e) => (error = e));
    await forgeIcmp(conn, 5, 60);
    console.log(`${stack}, forged ICMP on an idle connection: ${soft.length} soft errors, connection ${error === undefined ? 'open' : error === 'closed' ? 'closed' : error.message}`);
    expect(soft.length).toBeGreaterThanOrEqual(2);
    expect(error).toBeUndefined();
    expect(await echo(conn, 'still here')).toBe('still here');
  });
});
