/**
 * WebSocket benchmark: 1 KiB binary messages one way, through the
 * `ws` driver's channel (the policy chokepoint's checked target, our socket,
 * the channel's send path with backpressure) against plain ws on the same
 * loopback server, with the same settings (no permessage-deflate). The server
 * runs in a worker thread so client and server do not share one event loop;
 * it counts messages and answers "END" with the count, which ends a round.
 * Goal: ours ≥ 0.95× the plain ws rate (median of alternating rounds).
 *
 * Two rows: the driver channel alone, and the whole library (a Connection
 * from Preconnection.initiate() with reliable-message properties, sending
 * with `conn.send()` and waiting on `sendBlocked`/`drain`), each against
 * plain ws in the same run.
 *
 *   npx tsx bench/websocket.ts     # table + bench/results/websocket.json
 *   npm run bench -- websocket
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { WebSocket } from 'ws';
import type { Connection } from '../src/connection/connection.js';
import type { TransportChannel } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { createScope } from '../src/policy/index.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { wsDriver } from '../transports/websocket/index.js';
import { alternate, formatTable, median, row, type BenchRow, RESULTS_DIR } from './harness.js';

const MESSAGE = 1024;
const PER_ROUND = 20_000;
const ROUNDS = 25;
const END = Buffer.from('END');

const SERVER = `
const { parentPort, workerData } = require('node:worker_threads');
const { WebSocketServer } = require(workerData.ws);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('listening', () => parentPort.postMessage(wss.address().port));
wss.on('connection', (ws) => {
  let n = 0;
  ws.on('message', (data, binary) => {
    if (binary) n++;
    else { ws.send(String(n)); n = 0; }
  });
});
parentPort.on('message', () => wss.close(() => process.exit(0)));
`;

async function startServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const worker = new Worker(SERVER, { eval: true, workerData: { ws: createRequire(import.meta.url).resolve('ws') } });
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

/** Messages per second through a driver channel. */
async function oursRound(ch: TransportChannel, next: () => Promise<string>, drain: { wake?: () => void }): Promise<number> {
  const payload = Buffer.alloc(MESSAGE, 0x61);
  const t0 = performance.now();
  for (let i = 0; i < PER_ROUND; i++) {
    if (!ch.send(payload, {}, noop)) await new Promise<void>((r) => (drain.wake = r));
  }
  ch.send(END, { fields: { text: true } }, noop);
  const count = Number(await next());
  const ms = performance.now() - t0;
  if (count !== PER_ROUND) throw new Error(`server counted ${count}, expected ${PER_ROUND}`);
  return (PER_ROUND * 1000) / ms;
}

/** Messages per second through a library Connection (send queue, message properties, events). */
async function connectionRound(conn: Connection): Promise<number> {
  const payload = Buffer.alloc(MESSAGE, 0x61);
  const t0 = performance.now();
  for (let i = 0; i < PER_ROUND; i++) {
    void conn.send(payload);
    if (conn.sendBlocked) await new Promise<void>((r) => conn.once('drain', () => r()));
  }
  void conn.send(END, { fields: { text: true } });
  const count = Number((await conn.receive()).text());
  const ms = performance.now() - t0;
  if (count !== PER_ROUND) throw new Error(`server counted ${count}, expected ${PER_ROUND}`);
  return (PER_ROUND * 1000) / ms;
}

/** Messages per second with plain ws, waiting for the socket's drain the same way. */
async function baselineRound(ws: WebSocket, next: () => Promise<string>): Promise<number> {
  const payload = Buffer.alloc(MESSAGE, 0x61);
  const socket = (ws as unknown as { _socket: Socket })._socket;
  const t0 = performance.now();
  for (let i = 0; i < PER_ROUND; i++) {
    ws.send(payload, { binary: true }, noop);
    if (socket.writableNeedDrain) await new Promise((r) => socket.once('drain', r));
  }
  ws.send('END');
  const count = Number(await next());
  const ms = performance.now() - t0;
  if (count !== PER_ROUND) throw new Error(`server counted ${count}, expected ${PER_ROUND}`);
  return (PER_ROUND * 1000) / ms;
}

function noop(): void {}

/** A queue of text replies. */
function replies(): { push(s: string): void; next(): Promise<string> } {
  const items: string[] = [];
  let wake: (() => void) | undefined;
  return {
    push(s) {
      items.push(s);
      wake?.();
    },
    async next() {
      while (items.length === 0) await new Promise<void>((r) => (wake = r));
      return items.shift()!;
    },
  };
}

export async function run(): Promise<BenchRow[]> {
  const server = await startServer();
  try {
    const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'ws', address: '127.0.0.1', port: server.port });
    const ch = await scope.network.connect(wsDriver, {
      signal: new AbortController().signal,
      target,
      remote: RemoteEndpoint.from(`ws://127.0.0.1:${server.port}/`),
      security: SecurityParameters.disabled(),
      properties: new TransportProperties(),
      options: {},
      guard: scope.guard,
    });
    const ourReplies = replies();
    const drain: { wake?: () => void } = {};
    ch.start({ data: (d) => ourReplies.push(Buffer.from(d).toString()), end() {}, drain: () => drain.wake?.(), closed() {} });

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`, { perMessageDeflate: false });
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    const baseReplies = replies();
    ws.on('message', (d) => baseReplies.push(d.toString()));

    // Warm up both paths, then alternate rounds.
    await oursRound(ch, ourReplies.next, drain);
    await baselineRound(ws, baseReplies.next);
    const ours: number[] = [];
    const base: number[] = [];
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        ours.push(await oursRound(ch, ourReplies.next, drain));
        base.push(await baselineRound(ws, baseReplies.next));
      } else {
        base.push(await baselineRound(ws, baseReplies.next));
        ours.push(await oursRound(ch, ourReplies.next, drain));
      }
    }
    await ch.close();

    // The whole library: Preconnection → Connection, the same server, against the same plain ws client.
    const conn = await new Preconnection({
      scope,
      remote: `ws://127.0.0.1:${server.port}/`,
      properties: TransportProperties.reliableMessage(),
      security: SecurityParameters.disabled(),
    }).initiate();
    await connectionRound(conn);
    const lib = await alternate(ROUNDS, () => connectionRound(conn), () => baselineRound(ws, baseReplies.next));
    await conn.close();
    await new Promise<void>((r) => (ws.once('close', () => r()), ws.close()));
    return [
      row('1 KiB messages one way: ws driver channel vs plain ws', median(ours), median(base), 'msg/s', '≥ 0.95×', `median of ${ROUNDS} rounds of ${PER_ROUND}`),
      row('1 KiB messages one way: library Connection (ws) vs plain ws', median(lib.ours), median(lib.base), 'msg/s', '≥ 0.95×', `median of ${ROUNDS} rounds of ${PER_ROUND}; Preconnection.initiate() + conn.send()`),
    ];
  } finally {
    await server.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'websocket' })))}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'websocket.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
