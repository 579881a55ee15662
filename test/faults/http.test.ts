/**
 * The http stack (undici, client only) through the fault relay, via the
 * public API: each message is a request whose body is a self-checking
 * workload message, echoed by a plain node:http server; each response is
 * one received message. Over a re-chunking, jittery path every response
 * arrives intact and in request order; a reset path fails the exchange with
 * a typed error and never delivers a damaged or out-of-order response.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { isTapsError, type TapsError } from '../../src/errors.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { faultyTcpRelay, type TcpFaultPlan } from '../helpers/fault-relay.js';
import { scope, until } from './stacks.js';
import { Checker, FULL, Workload } from './workload.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(Buffer.concat(chunks)));
    req.on('error', () => {});
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return (server.address() as { port: number }).port;
}

async function client(plan: TcpFaultPlan): Promise<Connection> {
  const port = await echoServer();
  const relay = await faultyTcpRelay('127.0.0.1', port, plan);
  cleanups.push(() => relay.close());
  const pre = new Preconnection({
    scope,
    remote: { url: `http://127.0.0.1:${relay.port}/echo` },
    properties: TransportProperties.reliableMessage(),
    security: SecurityParameters.disabled(),
    drivers: [httpDriver],
  });
  const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
  cleanups.push(() => conn.abort());
  return conn;
}

describe('http through a faulty path', () => {
  it('requests with bodies of mixed sizes through a re-chunking, jittery relay: every response intact, in order', async () => {
    const n = FULL ? 20_000 : 120;
    const conn = await client({ seed: 61, toServer: { split: 9000, delayMs: [0, 1] }, toClient: { split: 4000 } });
    const wl = new Workload(61, { max: 64 * 1024 });
    const check = new Checker(wl);
    conn.on('received', (m) => check.accept(m.data));
    let failed: TapsError | undefined;
    conn.on('connectionError', (e) => (failed = e));
    // Keep a few requests in flight (HTTP/1.1: one at a time on the wire, the rest queued by the channel).
    for (let i = 0; i < n; i += 16) {
      await Promise.all(Array.from({ length: Math.min(16, n - i) }, (_, j) => conn.send(wl.message(i + j), { fields: { method: 'POST' } })));
      await until(() => check.ok + check.corrupt + check.outOfOrder >= Math.min(i + 16, n) || failed !== undefined, 'responses');
    }
    expect(failed).toBeUndefined();
    expect({ ok: check.ok, corrupt: check.corrupt, duplicate: check.duplicate, outOfOrder: check.outOfOrder }).toEqual({ ok: n, corrupt: 0, duplicate: 0, outOfOrder: 0 });
  }, FULL ? 600_000 : 20_000);

  it('a path that resets mid-exchange: a typed error, no damaged or reordered response', async () => {
    const conn = await client({ seed: 62, toClient: { resetAt: 30_000 } });
    const wl = new Workload(62, { max: 16 * 1024 });
    const check = new Checker(wl);
    conn.on('received', (m) => check.accept(m.data));
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => errors.push(e));
    conn.on('sendError', (_c, e) => errors.push(e));
    const outcomes = await Promise.all(Array.from({ length: 200 }, (_, i) => conn.send(wl.message(i), { fields: { method: 'POST' } }).then(() => undefined, (e: unknown) => e)));
    await until(() => errors.length > 0 || check.ok === 200, 'a failure or every response');
    expect(check.corrupt).toBe(0);
    expect(check.outOfOrder).toBe(0);
    expect(check.duplicate).toBe(0);
    expect(errors.length).toBeGreaterThan(0);
    for (const e of [...errors, ...outcomes.filter((o) => o !== undefined)]) expect(isTapsError(e), String(e)).toBe(true);
    expect(errors.map((e) => e.code)).toContain('ERR_TAPS_CONNECTION_RESET');
  });
});
