/**
 * Partial receive (RFC 9622 §9.3.1, §9.3.2.2): 64 MiB messages read in
 * pieces through `lengthPrefixFramer()` against a plain `net` socket reading
 * the same stream with a hand-written length-prefix state machine (the code
 * one writes to stream large messages without holding them). Measured side by
 * side in this run, alternating rounds; the ratio is the median of per-pair
 * ratios.
 *
 * The source is a plain `net` server in a worker thread (so it does not share
 * the reader's event loop): each byte it receives starts a round of
 * MESSAGES messages of 64 MiB, written from one reused 1 MiB block with
 * backpressure. Ours reads with `receive({ minIncompleteLength: 1, maxLength:
 * 1 MiB })` until `endOfMessage`, MESSAGES times; the baseline counts body
 * bytes in `data` events and finds the boundaries itself.
 *
 *   npx tsx bench/partial.ts
 *   npm run bench -- partial
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Connection } from '../src/connection/connection.js';
import { lengthPrefixFramer } from '../src/framers/index.js';
import { createScope } from '../src/policy/index.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { tcpDriver } from '../transports/tcp/index.js';
import { formatTable, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const MIB = 2 ** 20;
const SIZE = 64 * MIB;
const MESSAGES = 4;
const ROUNDS = 15;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const block = Buffer.alloc(${MIB}, 0x61);
const server = net.createServer((s) => {
  s.on('error', () => {});
  let busy = false;
  s.on('data', async () => {
    if (busy) return;
    busy = true;
    for (let m = 0; m < ${MESSAGES}; m++) {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(${SIZE}, 0);
      s.write(header);
      for (let sent = 0; sent < ${SIZE}; sent += ${MIB}) {
        if (!s.write(block)) await new Promise((r) => s.once('drain', r));
      }
    }
    busy = false;
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
parentPort.on('message', () => process.exit(0));
`;

async function startSource(): Promise<{ port: number; stop(): Promise<void> }> {
  const worker = new Worker(SOURCE, { eval: true });
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

/** MiB/s of one round read through the Connection in pieces. */
async function oursRound(conn: Connection): Promise<number> {
  const t0 = performance.now();
  void conn.send(new Uint8Array(1));
  let bytes = 0;
  for (let m = 0; m < MESSAGES; m++) {
    for (;;) {
      const piece = await conn.receive({ minIncompleteLength: 1, maxLength: MIB });
      bytes += piece.byteLength;
      if (piece.endOfMessage) break;
    }
  }
  if (bytes !== MESSAGES * SIZE) throw new Error(`ours read ${bytes} bytes, expected ${MESSAGES * SIZE}`);
  return bytes / MIB / ((performance.now() - t0) / 1000);
}

/** A plain socket reading the same stream: a length-prefix state machine counting body bytes without copying. */
function plainReader(socket: Socket): () => Promise<number> {
  let header = 0;
  let headerLeft = 4;
  let body = 0;
  let messages = 0;
  let bytes = 0;
  let done: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (headerLeft > 0) {
        header = header * 256 + chunk[i++]!;
        if (--headerLeft === 0) body = header;
        continue;
      }
      const n = Math.min(body, chunk.length - i);
      bytes += n;
      body -= n;
      i += n;
      if (body === 0) {
        header = 0;
        headerLeft = 4;
        if (++messages === MESSAGES) done?.();
      }
    }
  });
  return async () => {
    const t0 = performance.now();
    messages = 0;
    bytes = 0;
    const finished = new Promise<void>((r) => (done = r));
    socket.write(Buffer.from([1]));
    await finished;
    if (bytes !== MESSAGES * SIZE) throw new Error(`net read ${bytes} bytes, expected ${MESSAGES * SIZE}`);
    return bytes / MIB / ((performance.now() - t0) / 1000);
  };
}

export async function run(): Promise<BenchRow[]> {
  const source = await startSource();
  const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
  const pre = new Preconnection({
    scope,
    remote: { ipAddress: '127.0.0.1', port: source.port },
    properties: TransportProperties.reliableMessage(),
    security: SecurityParameters.disabled(),
    framers: [lengthPrefixFramer({ maxMessageSize: 2 ** 32 - 1 })],
    drivers: [tcpDriver],
  });
  const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
  const socket = connect({ host: '127.0.0.1', port: source.port });
  await new Promise((r, j) => (socket.once('connect', r), socket.once('error', j)));
  const plainRound = plainReader(socket);
  try {
    await oursRound(conn); // warm up both
    await plainRound();
    const ours: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        ours.push(await oursRound(conn));
        base.push(await plainRound());
      } else {
        base.push(await plainRound());
        ours.push(await oursRound(conn));
      }
    }
    const rss = process.memoryUsage.rss();
    return [
      pairedRow(
        'TCP 64 MiB messages received in pieces: Connection.receive({ minIncompleteLength, maxLength }) + lengthPrefixFramer vs net stream + hand-written prefix',
        ours,
        base,
        'MiB/s',
        '≥ 0.9×',
        `${ROUNDS} alternating rounds of ${MESSAGES} x 64 MiB; RSS after ${(rss / MIB).toFixed(0)} MiB`,
      ),
    ];
  } finally {
    conn.abort();
    socket.destroy();
    await source.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'partial' })))}\n`);
  for (const r of rows) if (r.note) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'partial.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
