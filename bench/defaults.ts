/**
 * Defaults benchmark: what a new user gets with default properties and the default drivers (QUIC included),
 * against the TLS-only servers most endpoints are. Measured side by side in this run, alternating rounds,
 * medians of per-pair ratios. The server is a plain `node:tls` server on `::` (both families) in a worker
 * thread, so client and server do not share an event loop.
 *
 * - `initiate()` to `localhost` vs `tls.connect({ autoSelectFamily: true })`, time until ready (goal ≤ 1.3×):
 *   the default ranking races TLS first, QUIC is not raced blind.
 * - A second connection to a server whose QUIC branch failed (multistreaming preferred explicitly, so the
 *   first selection tries QUIC and is refused): QUIC attempts started by the second selection, against the
 *   first's (goal: none; the tenant's racing cache skips QUIC).
 *
 *   npm run bench -- defaults
 *   npx tsx bench/defaults.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createScope } from '../src/policy/index.js';
import { warmUp } from '../src/registry.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { certificateAuthority, issueCertificate } from '../transports/tls/certificates.js';
import { formatTable, row, RESULTS_DIR, type BenchRow } from './harness.js';
import { pairedRow } from './paired.js';

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const tls = require('node:tls');
const server = tls.createServer({ cert: workerData.cert, key: workerData.key }, (s) => { s.on('error', () => {}); });
server.on('tlsClientError', () => {});
server.listen(0, '::', () => parentPort.postMessage(server.address().port));
parentPort.on('message', (m) => { if (m === 'stop') server.close(() => process.exit(0)); });
`;

async function tlsOnlyServer(cert: string, key: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const worker = new Worker(SERVER, { eval: true, workerData: { cert, key } });
  const port = await new Promise<number>((r, j) => (worker.once('message', r), worker.once('error', j)));
  return { port, stop: () => new Promise<void>((r) => (worker.once('exit', () => r()), worker.postMessage('stop'))) };
}

const allowLoopback = { decide: () => ({ allow: true, rule: 'bench: loopback' }) as const };

async function defaultConnect(port: number, ca: string): Promise<BenchRow> {
  const pre = new Preconnection({ scope: createScope({ tenant: 'bench-defaults', policy: allowLoopback }), remote: { hostName: 'localhost', port }, security: new SecurityParameters({ ca }) });
  const oursOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const conn = await pre.initiate();
    const ms = performance.now() - t0;
    conn.abort();
    return ms;
  };
  const baseOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const socket = tlsConnect({ host: 'localhost', port, ca, autoSelectFamily: true } as ConnectionOptions);
    await new Promise((r, j) => (socket.once('secureConnect', r), socket.once('error', j)));
    const ms = performance.now() - t0;
    socket.destroy();
    return ms;
  };
  const first = await oursOnce(); // cold: driver modules load here
  for (let i = 0; i < 30; i++) {
    await oursOnce();
    await baseOnce();
  }
  const ours: number[] = [];
  const base: number[] = [];
  const start = performance.now();
  for (let i = 0; i < 300 && performance.now() - start < 10_000; i++) {
    if (i % 2 === 0) {
      ours.push(await oursOnce());
      base.push(await baseOnce());
    } else {
      base.push(await baseOnce());
      ours.push(await oursOnce());
    }
  }
  const us = (ms: number): number => ms * 1000;
  return pairedRow(
    'default properties + drivers, localhost, TLS-only dual-stack server: initiate() vs tls.connect({ autoSelectFamily })',
    ours.map(us), base.map(us), 'µs', '≤ 1.3×',
    `${ours.length} alternating connects after 30 warm-ups; time until ready; the first (cold) initiate took ${first.toFixed(1)} ms`,
  );
}

async function quicSkipped(port: number, ca: string): Promise<BenchRow> {
  const pre = new Preconnection({
    scope: createScope({ tenant: 'bench-quic-failed', policy: allowLoopback }),
    remote: { hostName: 'localhost', port },
    properties: new TransportProperties({ multistreaming: 'prefer' }),
    security: new SecurityParameters({ ca }),
  });
  const quicStarts = async (): Promise<{ n: number; ms: number }> => {
    const t0 = performance.now();
    const conn = await pre.initiate();
    const ms = performance.now() - t0;
    const n = conn.report.candidates.filter((c) => c.driver === 'quic' && c.startedAt !== undefined).length;
    conn.abort();
    return { n, ms };
  };
  // QUIC's module must be loaded for the first selection to try it: a stack still loading never holds up a ready
  // one, so cold, TLS would win before QUIC joined and there would be no failure to remember.
  await warmUp();
  const first = await quicStarts();
  const second = await quicStarts();
  return row(
    'second connect to a server whose QUIC branch failed (multistreaming preferred): QUIC attempts started, second vs first',
    second.n, first.n, 'attempts', '≤ 0×',
    `first selection ${first.ms.toFixed(1)} ms (QUIC refused by ICMP, then TLS), second ${second.ms.toFixed(1)} ms (QUIC skipped by the racing cache)`,
  );
}

export async function run(): Promise<BenchRow[]> {
  const ca = certificateAuthority({ kind: 'ec', names: ['taps-node bench CA'] });
  const leaf = issueCertificate(ca, { kind: 'ec', names: ['localhost', '127.0.0.1', '::1'] });
  const server = await tlsOnlyServer(leaf.cert, leaf.key);
  try {
    return [await defaultConnect(server.port, ca.cert), await quicSkipped(server.port, ca.cert)];
  } finally {
    await server.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'defaults' })))}\n`);
  for (const r of rows) if (r.note) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'defaults.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
  process.exit(0);
}
