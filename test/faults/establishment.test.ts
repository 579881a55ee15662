/**
 * Abort at every phase of establishment and of closing, through
 * `Preconnection.initiate()` and `Connection.close()/abort()` only:
 *
 * | phase              | what holds it open                                       |
 * |--------------------|----------------------------------------------------------|
 * | DNS                | an injected resolver that answers after 10 s             |
 * | TCP connect        | the python blackhole (SYNs silently dropped)             |
 * | TLS handshake      | a TCP server that accepts and never answers the hello    |
 * | WebSocket upgrade  | a TCP server that reads the GET and never answers (ws),  |
 * |                    | a TLS server that never answers the GET (wss)            |
 * | graceful close     | a peer that never reads, or never answers the FIN        |
 *
 * Each time: the promise settles at once with a typed error (the caller's
 * abort → ERR_TAPS_ABORTED, a timeout → ERR_TAPS_TIMEOUT), the server saw
 * the phase really started (bytes or a connection), and no socket, timer or
 * child handle is left (counted with `process.getActiveResourcesInfo()`;
 * the leak guard checks the whole file too).
 */
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { isTapsError } from '../../src/errors.js';
import { createScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { extraHandles, handleCounts } from '../compliance/harness.js';
import { blackhole } from '../helpers/blackhole.js';
import { testCertificate } from '../helpers/certs.js';
import { silentTcpServer } from '../helpers/fault-relay.js';
import { fakeResolver } from '../helpers/resolver.js';
import { allow, connectedPair, dialer, profile, until, type Stack } from './stacks.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Start `initiate()`, abort it once `started()` holds, and check how it settled. */
async function abortDuring(pre: Preconnection, started: () => boolean, what: string): Promise<void> {
  const ac = new AbortController();
  const before = handleCounts();
  const p = pre.initiate({ signal: ac.signal });
  const settled = p.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  await until(started, what, 5000);
  const t0 = performance.now();
  ac.abort(new Error(`test aborts during ${what}`));
  const err = await settled;
  const took = performance.now() - t0;
  expect(isTapsError(err), String(err)).toBe(true);
  // The abort settled it, not a network timeout (whose code would be another): the peer never answers.
  expect(err).toMatchObject({ code: 'ERR_TAPS_ABORTED' });
  console.log(`abort during ${what}: settled ${took.toFixed(1)} ms after abort()`);
  expect(await extraHandles(before)).toEqual([]);
}

describe('abort during establishment', () => {
  it('during DNS (a resolver that answers after 10 s): the query is cancelled, its timer cleared', async () => {
    const resolver = fakeResolver({ 'slow.test': { v4: ['127.0.0.1'], v6: ['::1'], delayMs: 10_000 } });
    const scope = createScope({ tenant: 'faults', policy: allow, resolver });
    const p = profile('tcp');
    const pre = new Preconnection({ scope, remote: { hostName: 'slow.test', port: 9 }, properties: p.properties, security: p.client, framers: p.framers, drivers: p.drivers });
    await abortDuring(pre, () => resolver.queries.length > 0, 'DNS');
  });

  it('during DNS, by the initiate timeout: ERR_TAPS_TIMEOUT', async () => {
    const resolver = fakeResolver({ 'slow.test': { v4: ['127.0.0.1'], delayMs: 10_000 } });
    const scope = createScope({ tenant: 'faults', policy: allow, resolver });
    const p = profile('tcp');
    const pre = new Preconnection({ scope, remote: { hostName: 'slow.test', port: 9 }, properties: p.properties, security: p.client, framers: p.framers, drivers: p.drivers });
    const before = handleCounts();
    await expect(pre.initiate({ timeout: 50 })).rejects.toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    expect(await extraHandles(before)).toEqual([]);
  });

  it.each(['tcp', 'tls', 'ws', 'wss'] as const)('%s: during the TCP connect (to a blackhole)', async (stack: Stack) => {
    const hole = await blackhole('127.0.0.1');
    cleanups.push(() => hole.close());
    const pre = dialer(stack, '127.0.0.1', hole.port);
    // The SYN is out once the attempt has started: give it a moment to be in flight.
    let t = 0;
    const ready = setTimeout(() => (t = 1), 30);
    cleanups.push(() => clearTimeout(ready));
    await abortDuring(pre, () => t === 1, 'TCP connect');
  });

  it.each(['tls', 'wss'] as const)('%s: during the TLS handshake (a server that never answers the hello)', async (stack: Stack) => {
    const silent = await silentTcpServer('127.0.0.1');
    cleanups.push(() => silent.close());
    await abortDuring(dialer(stack, '127.0.0.1', silent.port), () => silent.received > 0, 'the TLS handshake');
    expect(silent.accepted).toBe(1);
  });

  it('ws: during the upgrade (a server that reads the GET and never answers)', async () => {
    const silent = await silentTcpServer('127.0.0.1');
    cleanups.push(() => silent.close());
    await abortDuring(dialer('ws', '127.0.0.1', silent.port), () => silent.received > 0, 'the WebSocket upgrade');
  });

  it('wss: during the upgrade (TLS done, the GET never answered)', async () => {
    const cert = testCertificate({ kind: 'ec' });
    let got = 0;
    const sockets = new Set<TLSSocket>();
    const server = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => (got += d.length));
      s.once('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
    await abortDuring(dialer('wss', '127.0.0.1', (server.address() as { port: number }).port), () => got > 0, 'the WebSocket upgrade over TLS');
  });

  it('an already-aborted signal: rejected before any socket or query', async () => {
    const resolver = fakeResolver({ 'x.test': { v4: ['127.0.0.1'] } });
    const scope = createScope({ tenant: 'faults', policy: allow, resolver });
    const p = profile('tcp');
    const pre = new Preconnection({ scope, remote: { hostName: 'x.test', port: 9 }, properties: p.properties, security: p.client, framers: p.framers, drivers: p.drivers });
    await expect(pre.initiate({ signal: AbortSignal.abort(new Error('no')) })).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    expect(resolver.queries).toEqual([]);
  });
});

describe('closing under faults', () => {
  it.each(['tcp', 'tls', 'ws', 'wss'] as const)('%s: close() with a peer that never answers the FIN is bounded by closeTimeout', async (stack: Stack) => {
    const id = stack;
    const p = await connectedPair(stack, { driverOptions: { [id]: { closeTimeout: 100 } } });
    cleanups.push(() => p.cleanup());
    // The server never reads and never closes: its side stays open.
    p.server.on('received', () => {});
    await p.client.send('bye');
    // The peer never answers the FIN: only closeTimeout can settle close() (the test's own timeout catches a hang).
    const settled = await p.client.close().then(() => 'closed', (e: unknown) => e);
    if (settled !== 'closed') expect(isTapsError(settled)).toBe(true);
    expect(p.client.state).toBe('closed');
  });

  it.each(['tcp', 'tls', 'ws', 'wss'] as const)('%s: abort() during a graceful close that waits on a peer that never reads', async (stack: Stack) => {
    const p = await connectedPair(stack);
    cleanups.push(() => p.cleanup());
    // The server's channel is paused (nobody reads, its inbox fills), so the client's sends back up.
    const big = new Uint8Array(1 << 20);
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 64 && !p.client.sendBlocked; i++) sends.push(p.client.send(big).catch((e: unknown) => e));
    for (let i = 0; i < 8; i++) sends.push(p.client.send(big).catch((e: unknown) => e));
    const closing = p.client.close().then(() => 'closed', (e: unknown) => e);
    await new Promise((r) => setTimeout(r, 30));
    const before = handleCounts();
    p.client.abort();
    const outcome = await closing;
    if (outcome !== 'closed') expect(isTapsError(outcome)).toBe(true);
    expect(p.client.state).toBe('closed');
    // Every send settled: sent before the abort, or a typed error.
    for (const s of await Promise.all(sends)) if (s !== undefined) expect(isTapsError(s)).toBe(true);
    p.server.abort();
    expect((await extraHandles(before)).filter((h) => !h.startsWith('Timeout'))).toEqual([]);
  });
});
