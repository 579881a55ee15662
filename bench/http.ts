/**
 * HTTP benchmark (issue #4): requests per second through the `http` driver
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
 *
 *   npx tsx bench/http.ts          # table + bench/results/http.json
 *   npm run bench -- http
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Client, Pool, type Dispatcher } from 'undici';
import type { Connection } from '../src/connection/connection.js';
import type { TransportChannel } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { createScope } from '../src/policy/chokepoint.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { httpDriver, https2Driver } from '../transports/http/index.js';
import { testCertificate } from '../test/helpers/certs.js';
import { formatTable, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const ROUND_MS = 600;
const ROUNDS = 9;
const EMPTY = new Uint8Array(0);

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const http2 = require('node:http2');
const handler = (req, res) => { req.resume(); res.end('ok'); };
const server = workerData.h2 ? http2.createSecureServer({ cert: workerData.cert, key: workerData.key }, handler) : http.createServer(handler);
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

async function startServer(h2?: { cert: string; key: string }): Promise<{ port: number; stop(): Promise<void> }> {
  const worker = new Worker(SERVER, { eval: true, workerData: h2 ? { h2: true, ...h2 } : {} });
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
  return [...(await runHttp1()), ...(await runHttp2())];
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
