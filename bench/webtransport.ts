/**
 * WebTransport over HTTP/2 benchmark: the `webtransport-h2`
 * driver against `@fails-components/webtransport` used directly (its public
 * `WebTransport` client with `forceReliable` and `serverCertificateHashes`),
 * both talking to the same server: the package's own Http2Server (with the
 * session-window workaround) in a worker thread, so client and server do not
 * share one event loop. Rounds alternate between the two clients.
 *
 * - stream throughput: 16 MiB up one bidirectional stream in 64 KiB writes
 *   (each side waiting for its own backpressure signal), the server counts
 *   and answers with the count at FIN; MiB/s.
 * - connect time: policy check + session ready + first stream (ours), or
 *   session ready + first stream (the package); connects per second.
 * Goal for both: ours ≥ 0.9× the package. The package's import prints its
 * "no native HTTP/3" noise; this file silences it (the driver never causes it).
 *
 *   npx tsx bench/webtransport.ts   # table + bench/results/webtransport.json
 *   npx tsx bench/run.ts webtransport
 */
import { createHash, X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TransportChannel } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { createScope } from '../src/policy/index.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';
import { PACKAGE, packageDirectory, type WtSession } from '../transports/webtransport/engine.js';
import { webtransportH2Driver } from '../transports/webtransport/index.js';
import { alternate, formatTable, median, row, type BenchRow, RESULTS_DIR } from './harness.js';

const MiB = 1024 * 1024;
const BULK = 16 * MiB;
const CHUNK = 64 * 1024;
const BULK_ROUNDS = 14;
const CONNECTS = 60;

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
console.log = () => {}; console.error = () => {};
(async () => {
  const { Http2Server } = await import(workerData.pkg);
  const server = new Http2Server({ port: 0, host: '127.0.0.1', secret: 'bench', cert: workerData.cert, privKey: workerData.key,
    initialSessionFlowControlWindow: 15 * 1024 * 1024 });
  const sessions = server.sessionStream('/bench');
  server.startServer();
  await server.ready;
  parentPort.postMessage(server.address().port);
  parentPort.on('message', () => { server.stopServer(); setTimeout(() => process.exit(0), 50); });
  for await (const session of sessions) {
    (async () => {
      await session.ready;
      for await (const s of session.incomingBidirectionalStreams) {
        (async () => {
          let n = 0;
          for await (const c of s.readable) n += c.byteLength;
          const w = s.writable.getWriter();
          const out = Buffer.alloc(8); out.writeBigUInt64BE(BigInt(n));
          await w.write(out); await w.close();
        })().catch(() => {});
      }
    })().catch(() => {});
  }
})();
`;

async function startServer(cert: string, key: string): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = packageDirectory(PACKAGE);
  if (dir === undefined) throw new Error(`${PACKAGE} is not installed`);
  const pkg = pathToFileURL(join(dir, 'lib', 'index.node.js')).href;
  const worker = new Worker(SERVER, { eval: true, workerData: { pkg, cert, key }, stdout: true, stderr: true });
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

interface PublicWebTransport {
  WebTransport: new (url: string, options: Record<string, unknown>) => WtSession;
}

/** The package's entry point, its import noise silenced. */
async function loadPackage(): Promise<PublicWebTransport> {
  const log = console.log;
  const error = console.error;
  console.log = () => {};
  console.error = () => {};
  try {
    const api = (await import(PACKAGE)) as PublicWebTransport & { quicheLoaded: Promise<unknown> };
    await api.quicheLoaded;
    await new Promise((r) => setTimeout(r, 10));
    return api;
  } finally {
    console.log = log;
    console.error = error;
  }
}

function noop(): void {}

export async function run(): Promise<BenchRow[]> {
  const cert = selfSignedCertificate({ kind: 'ec', days: 10 });
  const server = await startServer(cert.cert, cert.key);
  const { WebTransport } = await loadPackage();
  const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
  const security = new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
  const hash = createHash('sha256').update(new X509Certificate(cert.cert).raw).digest();
  const url = `https://127.0.0.1:${server.port}/bench`;
  const payload = Buffer.alloc(CHUNK, 0x61);

  const remote = RemoteEndpoint.from(`webtransport://localhost:${server.port}/bench`);
  const properties = new TransportProperties();
  const oursConnect = async (): Promise<TransportChannel> => {
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'webtransport', address: '127.0.0.1', port: server.port, hostName: 'localhost' });
    return scope.network.connect(webtransportH2Driver, {
      signal: new AbortController().signal,
      target,
      remote,
      security,
      properties,
      options: {},
      guard: scope.guard,
    });
  };
  const baseConnect = async (): Promise<{ wt: WtSession; stream: Awaited<ReturnType<WtSession['createBidirectionalStream']>> }> => {
    const wt = new WebTransport(url, { forceReliable: true, serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }] });
    wt.closed.catch(noop);
    await wt.ready;
    return { wt, stream: await wt.createBidirectionalStream() };
  };

  /** MiB/s up one stream of ours. */
  const oursBulk = async (): Promise<number> => {
    const ch = await oursConnect();
    let wake: (() => void) | undefined;
    let bytes = 0;
    const ended = new Promise<void>((resolve) => ch.start({ data: (c) => (bytes += c.byteLength), end: resolve, drain: () => wake?.(), closed: noop }));
    const t0 = performance.now();
    for (let sent = 0; sent < BULK; sent += CHUNK) {
      if (!ch.send(payload, { final: sent + CHUNK >= BULK }, noop) && sent + CHUNK < BULK) await new Promise<void>((r) => (wake = r));
    }
    await ended;
    const ms = performance.now() - t0;
    if (bytes !== 8) throw new Error(`expected the 8-byte count, got ${bytes} bytes`);
    await ch.close();
    return BULK / MiB / (ms / 1000);
  };

  /** MiB/s up one stream of the package used directly. */
  const baseBulk = async (): Promise<number> => {
    const { wt, stream } = await baseConnect();
    const writer = stream.writable.getWriter();
    const reading = (async () => {
      let n = 0;
      for await (const c of stream.readable) n += c.byteLength;
      return n;
    })();
    const t0 = performance.now();
    for (let sent = 0; sent < BULK; sent += CHUNK) {
      await writer.ready;
      writer.write(payload).catch(noop);
    }
    await writer.close();
    const got = await reading;
    const ms = performance.now() - t0;
    if (got !== 8) throw new Error(`expected the 8-byte count, got ${got} bytes`);
    wt.close({ closeCode: 0, reason: '' });
    await wt.closed.catch(noop);
    return BULK / MiB / (ms / 1000);
  };

  const oursOpen = async (): Promise<number> => {
    const t0 = performance.now();
    const ch = await oursConnect();
    const ms = performance.now() - t0;
    ch.abort();
    return ms;
  };
  const baseOpen = async (): Promise<number> => {
    const t0 = performance.now();
    const { wt } = await baseConnect();
    const ms = performance.now() - t0;
    wt.close({ closeCode: 0, reason: '' });
    await wt.closed.catch(noop);
    return ms;
  };

  try {
    // Warm up both paths, then alternate which goes first.
    await oursBulk();
    await baseBulk();
    const { ours, base } = await alternate(BULK_ROUNDS, oursBulk, baseBulk);
    const { ours: oursMs, base: baseMs } = await alternate(CONNECTS, oursOpen, baseOpen);
    const o = median(ours);
    const b = median(base);
    const om = median(oursMs.slice(4));
    const bm = median(baseMs.slice(4));
    return [
      row('stream throughput up: webtransport-h2 driver vs the package', o, b, 'MiB/s', '≥ 0.9×', `16 MiB in 64 KiB writes, median of ${BULK_ROUNDS}: ${o.toFixed(1)} vs ${b.toFixed(1)} MiB/s`),
      row('connect (session + first stream): driver vs the package', 1000 / om, 1000 / bm, 'conn/s', '≥ 0.9×', `median of ${CONNECTS - 4}: ${om.toFixed(2)} ms vs ${bm.toFixed(2)} ms (ours includes the policy check)`),
    ];
  } finally {
    await server.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'webtransport' })))}\n`);
  for (const r of rows) process.stdout.write(`${r.name}: ${r.note ?? ''}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'webtransport.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
