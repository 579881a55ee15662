/**
 * Core benchmark: the library's Connection over the tcp and udp
 * drivers against plain `net` / `dgram`, measured side by side in this run,
 * alternating rounds, medians.
 *
 * - TCP, 1 KiB and 64 KiB messages one way: `Preconnection.initiate()` →
 *   `Connection.send()` with `lengthPrefixFramer()`, waiting for `drain` when
 *   `sendBlocked`, against `net.connect` with a hand-written 4-byte prefix
 *   (one buffer per 1 KiB message; header + payload corked into one writev for
 *   64 KiB, no copy), waiting for the socket's `drain`. The receiver is the
 *   same for both: a plain `net` server in a worker thread that decodes the
 *   prefix without copying and answers the count when a zero-length message
 *   ends the round, so the rows compare the sending side, and client and
 *   server do not share an event loop.
 * - UDP, 1 KiB datagrams, 50k per round: a Connection over the udp driver
 *   (connected socket) against a connected `dgram` socket sending in a plain
 *   loop. The worker's socket (4 MiB receive buffer) counts per sender; the
 *   rate is delivered datagrams per second and losses are reported. A second
 *   row counts losses when the receiver shares the sender's event loop.
 * - Establishment to 127.0.0.1 through `initiate()` (tcp, tls and udp drivers
 *   judged, policy checked, raced) vs `net.connect`, time until ready; and to
 *   `localhost` vs `net.connect({ autoSelectFamily: true })`.
 *
 *   npx tsx bench/core.ts     # table + bench/results/core.json
 *   npm run bench -- core
 *   CORE_ONLY=udp,connect npx tsx bench/core.ts   # rows: tcp1k tcp64k udp udploss connect localhost
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
import { tlsDriver } from '../transports/tls/index.js';
import { udpDriver } from '../transports/udp/index.js';
import { udpLossSameLoop, udpThroughput } from './core-udp.js';
import { formatTable, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const SINK = `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
const dgram = require('node:dgram');
const tcp = net.createServer({ noDelay: true }, (s) => {
  s.setNoDelay(true);
  s.on('error', () => {});
  // State machine over the stream: header bytes, then payload bytes skipped without copying.
  let need = 4, len = 0, inHeader = true, count = 0;
  s.on('data', (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (inHeader) {
        len = len * 256 + chunk[i++];
        if (--need > 0) continue;
        if (len === 0) {
          const reply = Buffer.alloc(8);
          reply.writeUInt32BE(4, 0);
          reply.writeUInt32BE(count, 4);
          s.write(reply);
          count = 0; need = 4; len = 0;
          continue;
        }
        inHeader = false; need = len;
      } else {
        const take = Math.min(need, chunk.length - i);
        i += take; need -= take;
        if (need === 0) { count++; inHeader = true; need = 4; len = 0; }
      }
    }
  });
});
// Per sender (all on 127.0.0.1, so by port): datagrams counted in the current round. A 7-byte
// 'END' + round id closes the round; the answer (round id, count) is repeated for a repeated END.
const udp = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
const senders = new Map();
udp.on('message', (msg, r) => {
  let s = senders.get(r.port);
  if (s === undefined) senders.set(r.port, (s = { count: 0, round: -1, last: 0 }));
  if (msg.length !== 7) { s.count++; return; }
  const round = msg.readUInt32BE(3);
  if (round !== s.round) { s.round = round; s.last = s.count; s.count = 0; }
  const reply = Buffer.alloc(8);
  reply.writeUInt32BE(round, 0);
  reply.writeUInt32BE(s.last, 4);
  udp.send(reply, r.port, r.address);
});
tcp.listen(0, '127.0.0.1', () => udp.bind(0, '127.0.0.1', () => parentPort.postMessage({ tcp: tcp.address().port, udp: udp.address().port })));
parentPort.on('message', () => { udp.close(); tcp.close(() => process.exit(0)); });
`;

const CONNECTS = 1000;
const CONNECT_WARMUP = 300;
const END = new Uint8Array(0);

const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
const drivers = [tcpDriver, tlsDriver, udpDriver];
/** Send backpressure: wait until the connection's queue has drained. */
const drained = (conn: Connection): Promise<void> => new Promise((r) => conn.once('drain', () => r()));

async function startSink(): Promise<{ tcp: number; udp: number; stop(): Promise<void> }> {
  const worker = new Worker(SINK, { eval: true });
  const ports = await new Promise<{ tcp: number; udp: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    ...ports,
    stop: async () => {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.postMessage('stop');
      await exited;
    },
  };
}

function tcpPre(port: number, hostName?: string): Preconnection {
  return new Preconnection({
    scope,
    remote: hostName === undefined ? { ipAddress: '127.0.0.1', port } : { hostName, port },
    properties: TransportProperties.reliableMessage(),
    security: SecurityParameters.disabled(),
    framers: [lengthPrefixFramer()],
    drivers,
  });
}

// ── TCP throughput ────────────────────────────────────────────────────────

async function oursTcpRound(conn: Connection, payload: Uint8Array, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    void conn.send(payload);
    if (conn.sendBlocked) await drained(conn);
  }
  void conn.send(END);
  const reply = await conn.receive();
  const ms = performance.now() - t0;
  const count = Buffer.from(reply.data).readUInt32BE(0);
  if (count !== n) throw new Error(`tcp sink counted ${count}, expected ${n}`);
  return (n * 1000) / ms;
}

/** Replies (4-byte prefix + uint32 count) read off a plain socket. */
function counts(socket: Socket): () => Promise<number> {
  let held = Buffer.alloc(0);
  const got: number[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    held = Buffer.concat([held, chunk]);
    while (held.length >= 8) {
      got.push(held.readUInt32BE(4));
      held = held.subarray(8);
    }
    wake?.();
  });
  return async () => {
    while (got.length === 0) await new Promise<void>((r) => (wake = r));
    return got.shift()!;
  };
}

async function baseTcpRound(socket: Socket, next: () => Promise<number>, payload: Uint8Array, n: number): Promise<number> {
  const big = payload.byteLength > 16 * 1024;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let ok: boolean;
    if (big) {
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(payload.byteLength, 0);
      socket.cork();
      socket.write(header);
      ok = socket.write(payload);
      socket.uncork();
    } else {
      const buf = Buffer.allocUnsafe(4 + payload.byteLength);
      buf.writeUInt32BE(payload.byteLength, 0);
      buf.set(payload, 4);
      ok = socket.write(buf);
    }
    if (!ok) await new Promise((r) => socket.once('drain', r));
  }
  socket.write(Buffer.alloc(4));
  const count = await next();
  const ms = performance.now() - t0;
  if (count !== n) throw new Error(`tcp sink counted ${count}, expected ${n}`);
  return (n * 1000) / ms;
}

async function tcpThroughput(port: number, size: number, n: number, rounds: number, goal: string): Promise<BenchRow> {
  const payload = Buffer.alloc(size, 0x61);
  const conn = await tcpPre(port).initiate({ signal: AbortSignal.timeout(5000) });
  // setNoDelay: Node 20 ignores noDelay among connect() options, and the library's sockets have Nagle off too.
  const socket = connect({ host: '127.0.0.1', port }).setNoDelay(true);
  await new Promise((r, j) => (socket.once('connect', r), socket.once('error', j)));
  const next = counts(socket);
  await oursTcpRound(conn, payload, n); // warm up both
  await baseTcpRound(socket, next, payload, n);
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      ours.push(await oursTcpRound(conn, payload, n));
      base.push(await baseTcpRound(socket, next, payload, n));
    } else {
      base.push(await baseTcpRound(socket, next, payload, n));
      ours.push(await oursTcpRound(conn, payload, n));
    }
  }
  conn.abort();
  socket.destroy();
  const label = size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`;
  return pairedRow(`TCP ${label} messages one way: Connection + lengthPrefixFramer vs net + hand-written prefix`, ours, base, 'msg/s', goal, `${rounds} alternating rounds of ${n}`);
}

// ── establishment ─────────────────────────────────────────────────────────

// The goal row warms up with 300 pairs, so it measures a process's early connects, before V8 has optimised
// the selection (Node 20 optimises its longest functions after 250-750 connects, Node 24 compiles them with
// Maglev after ~500, Node 22 optimises none before ~3,000: docs/performance.md). The steady row warms up
// with 10,000 pairs first (Node 22 is still compiling at 3,000-5,000) and says what a long-running host
// pays per connect.
const STEADY_WARMUP = 10_000;

async function establishment(port: number, hostName: string | undefined, steady = false): Promise<BenchRow> {
  const pre = tcpPre(port, hostName);
  const oursOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const conn = await pre.initiate();
    const ms = performance.now() - t0;
    conn.abort();
    return ms;
  };
  const baseOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const socket = hostName === undefined ? connect({ host: '127.0.0.1', port }) : connect({ host: hostName, port, autoSelectFamily: true });
    await new Promise((r, j) => (socket.once('connect', r), socket.once('error', j)));
    const ms = performance.now() - t0;
    socket.resetAndDestroy();
    return ms;
  };
  // A name can stall on the resolver (an AAAA query the hosts file cannot answer goes to DNS): bound the time, not the count.
  const [warm, count, budget] = steady ? [STEADY_WARMUP, CONNECTS, 40_000] : hostName === undefined ? [CONNECT_WARMUP, CONNECTS, 20_000] : [50, 300, 8_000];
  const start = performance.now();
  for (let i = 0; i < warm; i++) {
    await oursOnce(); // warm up both (the JIT: selection runs many functions once per connect)
    await baseOnce();
  }
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < count && performance.now() - start < budget; i++) {
    if (i % 2 === 0) {
      ours.push(await oursOnce());
      base.push(await baseOnce());
    } else {
      base.push(await baseOnce());
      ours.push(await oursOnce());
    }
  }
  const us = (ms: number): number => ms * 1000;
  const tail = (xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    return `p90 ${us(s[Math.floor(s.length * 0.9)]!).toFixed(0)} µs, max ${us(s.at(-1)!).toFixed(0)} µs`;
  };
  const note = `${ours.length} alternating connects; time until ready; ours ${tail(ours)}; net ${tail(base)}`;
  if (steady) return pairedRow('establish to 127.0.0.1, steady state (after 10,000 pairs): initiate() vs net.connect', ours.map(us), base.map(us), 'µs', 'report', note);
  return hostName === undefined
    ? pairedRow('establish to 127.0.0.1: initiate() vs net.connect', ours.map(us), base.map(us), 'µs', '≤ 1.3×', note)
    : pairedRow(`establish to ${hostName}: initiate() vs net.connect({ autoSelectFamily })`, ours.map(us), base.map(us), 'µs', 'report', `${note}; the listener is on 127.0.0.1 only: the library answers localhost itself as ::1 and 127.0.0.1 (RFC 6761 §6.3) and tries ::1 first (refused at once), net gets 127.0.0.1 from getaddrinfo and /etc/hosts`);
}

export async function run(): Promise<BenchRow[]> {
  const sink = await startSink();
  const only = process.env['CORE_ONLY']; // e.g. CORE_ONLY=udp npx tsx bench/core.ts
  const rows: { key: string; make: () => Promise<BenchRow> }[] = [
    { key: 'tcp1k', make: () => tcpThroughput(sink.tcp, 1024, 20_000, 21, '≥ 0.85×') },
    { key: 'tcp64k', make: () => tcpThroughput(sink.tcp, 64 * 1024, 4_000, 25, '≥ 0.95×') },
    { key: 'udp', make: () => udpThroughput(sink.udp, scope, drivers) },
    { key: 'udploss', make: () => udpLossSameLoop(scope, drivers) },
    { key: 'connect', make: () => establishment(sink.tcp, undefined) },
    { key: 'connect-steady', make: () => establishment(sink.tcp, undefined, true) },
    { key: 'localhost', make: () => establishment(sink.tcp, 'localhost') },
  ];
  try {
    const out: BenchRow[] = [];
    for (const r of rows) if (only === undefined || only.split(',').includes(r.key)) out.push(await r.make());
    return out;
  } finally {
    await sink.stop();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'core' })))}\n`);
  for (const r of rows) if (r.note) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'core.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
