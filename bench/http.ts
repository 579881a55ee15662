/**
 * HTTP benchmark: requests per second through the `http` driver
 * (HTTP/1.1; each channel one connection, requests in sequence; 50 channels
 * via openStream() for concurrency 50) against plain undici with the same
 * settings (a Client for concurrency 1, a Pool of 50 connections for 50;
 * pipelining 1, default keep-alive), both reading each 2-byte body whole.
 * The server (node:http, keep-alive) runs in a worker thread. Rounds of a
 * fixed duration alternate between the two; medians are compared.
 * Goal: ours ≥ 0.9× plain undici at concurrency 1 and 50. The same two
 * rows for HTTP/2 over TLS: `https2` channels (50 streams of one
 * connection via openStream()) against an undici Client with allowH2.
 * And the whole library for HTTP/1.1: Connections from
 * Preconnection.initiate() (49 more by clone(): pooled parallel connections)
 * sending each request with conn.send() and reading the reply with
 * conn.receive(), against the same undici Client and Pool.
 * And the cost of a new HTTPS connection (TLS 1.3 handshake plus one GET,
 * closed after): the https driver resuming a stored session against the same
 * driver with resumption off (`sessionCacheLimit: 0`), and against undici
 * resuming too (one connector, so one session cache, for every new Client);
 * the fresh https driver against a fresh undici Client.
 *
 *   npx tsx bench/http.ts          # table + bench/results/http.json
 *   npm run bench -- http
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Client, Pool, buildConnector, type Dispatcher } from 'undici';
import type { Connection } from '../src/connection/connection.js';
import type { TransportChannel } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { createScope } from '../src/policy/index.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { httpDriver, httpsDriver, https2Driver } from '../transports/http/index.js';
import { testCertificate } from '../test/helpers/certs.js';
import { alternate, formatTable, median, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const ROUND_MS = 600;
const ROUNDS = 9;
const EMPTY = new Uint8Array(0);

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const http2 = require('node:http2');
const handler = (req, res) => { req.resume(); res.end('ok'); };
const https = require('node:https');
const tls = { cert: workerData.cert, key: workerData.key };
const server = workerData.h2 ? http2.createSecureServer(tls, handler) : workerData.h1 ? https.createServer({ ...tls, ALPNProtocols: ['http/1.1'] }, handler) : http.createServer(handler);
const sessions = new Set();
server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
parentPort.on('message', () => {
  for (const s of sessions) s.destroy();
  if (server.closeAllConnections) server.closeAllConnections();
  server.close(() => process.exit(0));
});
`;

async function startServer(secure?: { cert: string; key: string; h1?: boolean }): Promise<{ port: number; stop(): Promise<void> }> {
  const worker = new Worker(SERVER, { eval: true, workerData: secure ? (secure.h1 ? { h1: true, ...secure } : { h2: true, ...secure }) : {} });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    port,
    stop: async () => {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.postMessage('stop');
      await exited;
    },
  };
}

/** One channel as a request → response loop. */
function requester(ch: TransportChannel): () => Promise<void> {
  let wake: (() => void) | undefined;
  ch.start({ data: () => wake?.(), end() {}, drain() {}, closed() {} });
  const fields = { fields: { method: 'GET', path: '/' } };
  return () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      ch.send(EMPTY, fields, noop);
    });
}

function noop(): void {}

/** One library Connection as a request → response loop. */
function connectionRequester(conn: Connection): () => Promise<void> {
  const context = { fields: { method: 'GET', path: '/' } };
  return async () => {
    await conn.send(EMPTY, context);
    await conn.receive();
  };
}

/** Requests per second with `loops` concurrent request loops for ROUND_MS. */
async function measure(loops: readonly (() => Promise<void>)[]): Promise<number> {
  let count = 0;
  const t0 = performance.now();
  const end = t0 + ROUND_MS;
  await Promise.all(
    loops.map(async (one) => {
      while (performance.now() < end) {
        await one();
        count++;
      }
    }),
  );
  return (count * 1000) / (performance.now() - t0);
}

const undiciLoop = (d: Dispatcher) => async (): Promise<void> => {
  const res = await d.request({ path: '/', method: 'GET' });
  await res.body.arrayBuffer();
};

/** Alternate rounds of `ours` and `base`; one row from the medians. */
async function compare(name: string, ours: readonly (() => Promise<void>)[], base: readonly (() => Promise<void>)[]): Promise<BenchRow> {
  await measure(ours);
  await measure(base);
  const o: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      o.push(await measure(ours));
      b.push(await measure(base));
    } else {
      b.push(await measure(base));
      o.push(await measure(ours));
    }
  }
  return pairedRow(name, o, b, 'req/s', '≥ 0.9×', `${ROUNDS} alternating rounds of ${ROUND_MS} ms`);
}

const allowAll = { decide: () => ({ allow: true, rule: 'bench' }) as const };

export async function run(): Promise<BenchRow[]> {
  return [...(await runHttp1()), ...(await runHttp2()), ...(await runHttpsConnect())];
}

const CONNECT_ROUNDS = 15;
const CONNECTS_PER_ROUND = 20;

/** Median ms of `n` runs of `once` (each returns its own ms). */
async function medianOf(n: number, once: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  return median(times);
}

/** Alternating rounds of two connect loops; one paired row of the per-round medians (ms, lower is better). */
async function compareConnects(name: string, ours: () => Promise<number>, base: () => Promise<number>, goal: string): Promise<BenchRow> {
  await medianOf(5, ours);
  await medianOf(5, base);
  const { ours: o, base: b } = await alternate(CONNECT_ROUNDS, () => medianOf(CONNECTS_PER_ROUND, ours), () => medianOf(CONNECTS_PER_ROUND, base));
  return pairedRow(name, o, b, 'ms', goal, `${CONNECT_ROUNDS} alternating rounds, median of ${CONNECTS_PER_ROUND} connects each`);
}

/** A new HTTPS connection and one GET, timed from nothing to the whole response; the channel is closed after (not timed). */
async function runHttpsConnect(): Promise<BenchRow[]> {
  const cert = testCertificate({ kind: 'ec' });
  const server = await startServer({ cert: cert.cert, key: cert.key, h1: true });
  const scope = createScope({ tenant: 'bench', policy: allowAll });
  const origin = `https://localhost:${server.port}`;
  try {
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'https', address: '127.0.0.1', port: server.port, hostName: 'localhost' });
    const resumed = new SecurityParameters({ ca: cert.cert });
    const fresh = new SecurityParameters({ ca: cert.cert, sessionCacheLimit: 0 });
    const ours = (security: SecurityParameters) => async (): Promise<number> => {
      const t0 = performance.now();
      const ch = await scope.network.connect(httpsDriver, {
        signal: new AbortController().signal,
        target,
        remote: RemoteEndpoint.from(`${origin}/`),
        security,
        properties: new TransportProperties(),
        options: {},
        guard: scope.guard,
      });
      await requester(ch)();
      const ms = performance.now() - t0;
      await ch.close();
      return ms;
    };
    // undici dials 127.0.0.1 itself (no lookup, as the driver), SNI and certificate name 'localhost'.
    const tlsOptions = { ca: cert.cert, servername: 'localhost' };
    const shared = buildConnector(tlsOptions);
    const undici = (connect: buildConnector.connector | buildConnector.BuildOptions) => async (): Promise<number> => {
      const t0 = performance.now();
      const client = new Client(`https://127.0.0.1:${server.port}`, { connect });
      await undiciLoop(client)();
      const ms = performance.now() - t0;
      await client.close();
      return ms;
    };
    return [
      await compareConnects('HTTPS connect + first response: https driver, session resumed vs full handshake (sessionCacheLimit 0)', ours(resumed), ours(fresh), '≤ 1×'),
      await compareConnects('HTTPS connect + first response, resumed: https driver vs undici Client (shared connector, its session cache)', ours(resumed), undici(shared), '≤ 1.3×'),
      await compareConnects('HTTPS connect + first response, full handshake: https driver vs a new undici Client', ours(fresh), undici({ ...tlsOptions, maxCachedSessions: 0 }), '≤ 1.3×'),
    ];
  } finally {
    await server.stop();
  }
}

/** HTTP/2 over TLS: https2 channels (streams of one connection) vs an undici Client with allowH2 (one connection). */
async function runHttp2(): Promise<BenchRow[]> {
  const cert = testCertificate({ kind: 'ec' });
  const server = await startServer({ cert: cert.cert, key: cert.key });
  const channels: TransportChannel[] = [];
  const origin = `https://localhost:${server.port}`;
  const client = new Client(origin, { allowH2: true, connect: { ca: cert.cert, servername: 'localhost', ALPNProtocols: ['h2'] } });
  try {
    const scope = createScope({ tenant: 'bench', policy: allowAll });
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'https', address: '127.0.0.1', port: server.port, hostName: 'localhost' });
    const first = await scope.network.connect(https2Driver, {
      signal: new AbortController().signal,
      target,
      remote: RemoteEndpoint.from(`${origin}/`),
      security: new SecurityParameters({ ca: cert.cert }),
      properties: new TransportProperties(),
      options: {},
      guard: scope.guard,
    });
    channels.push(first);
    for (let i = 1; i < 50; i++) channels.push(await first.openStream!());
    const loops = channels.map(requester);
    return [
      await compare('HTTP/2 requests/s, concurrency 1: https2 driver vs undici Client (h2)', loops.slice(0, 1), [undiciLoop(client)]),
      await compare('HTTP/2 requests/s, concurrency 50: 50 https2 streams vs undici Client (h2)', loops, Array.from({ length: 50 }, () => undiciLoop(client))),
    ];
  } finally {
    await Promise.all(channels.map((c) => c.close()));
    await client.close();
    await server.stop();
  }
}

async function runHttp1(): Promise<BenchRow[]> {
  const server = await startServer();
  const channels: TransportChannel[] = [];
  const origin = `http://127.0.0.1:${server.port}`;
  const client = new Client(origin);
  const pool = new Pool(origin, { connections: 50 });
  const conns: Connection[] = [];
  try {
    const scope = createScope({ tenant: 'bench', policy: allowAll });
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'http', address: '127.0.0.1', port: server.port });
    const first = await scope.network.connect(httpDriver, {
      signal: new AbortController().signal,
      target,
      remote: RemoteEndpoint.from(`${origin}/`),
      security: SecurityParameters.disabled(),
      properties: new TransportProperties(),
      options: {},
      guard: scope.guard,
    });
    channels.push(first);
    for (let i = 1; i < 50; i++) channels.push(await first.openStream!());
    const ours1 = [requester(first)];
    const ours50 = [ours1[0]!, ...channels.slice(1).map(requester)];
    const base1 = [undiciLoop(client)];
    const base50 = Array.from({ length: 50 }, () => undiciLoop(pool));

    const rows = [
      await compare('requests/s, concurrency 1: http driver vs plain undici Client', ours1, base1),
      await compare('requests/s, concurrency 50: 50 http channels vs plain undici Pool(50)', ours50, base50),
    ];
    const first1 = await new Preconnection({ scope, remote: `${origin}/`, properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled() }).initiate();
    conns.push(first1);
    for (let i = 1; i < 50; i++) conns.push(await first1.clone());
    const lib = conns.map(connectionRequester);
    rows.push(
      await compare('requests/s, concurrency 1: library Connection (http) vs plain undici Client', lib.slice(0, 1), base1),
      await compare('requests/s, concurrency 50: 50 library Connections (http) vs plain undici Pool(50)', lib, base50),
    );
    return rows;
  } finally {
    await Promise.all(conns.map((c) => c.close()));
    await Promise.all(channels.map((c) => c.close()));
    await client.close();
    await pool.close();
    await server.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'http' })))}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'http.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
