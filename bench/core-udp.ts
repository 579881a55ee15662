/**
 * The UDP rows of the core benchmark (bench/core.ts runs them): 1 KiB
 * datagrams through a Connection over the udp driver against a connected
 * `dgram` socket, to the worker thread's counting socket (delivered rate and
 * losses), and losses at 50k when the receiver shares the sender's event loop.
 *
 * The worker's sink counts datagrams per sender port; a 7-byte 'END' + round
 * id closes a round and is answered with (round id, count), repeated for a
 * repeated END, so a lost END or answer is retried without mixing rounds.
 *
 * @example
 * const row = await udpThroughput(sink.udp, scope, [udpDriver]);
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Connection } from '../src/connection/connection.js';
import type { Driver } from '../src/driver.js';
import type { NetworkScope } from '../src/policy/index.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { row, type BenchRow } from './harness.js';
import { pairedRow } from './paired.js';

const UDP_ROUNDS = 7;
const UDP_PER_ROUND = 50_000;
let udpRound = 0;

const drained = (conn: Connection): Promise<void> => new Promise((r) => conn.once('drain', () => r()));


interface UdpRound {
  rate: number;
  lost: number;
}

/** Ask the sink how many datagrams of this round arrived from us (END and the answer can be lost too: retry). */
async function askCount(send: (end: Uint8Array) => void, reply: (round: number) => Promise<number | undefined>): Promise<number> {
  const round = ++udpRound;
  const end = Buffer.alloc(7);
  end.write('END', 0);
  end.writeUInt32BE(round, 3);
  for (let i = 0; i < 50; i++) {
    send(end);
    const n = await reply(round);
    if (n !== undefined) return n;
  }
  throw new Error('udp sink did not answer');
}

/** Answers from the sink; `next(round)` waits up to 200 ms for that round's, skipping stale ones. */
function udpReplies(onData: (cb: (b: Uint8Array) => void) => void): (round: number) => Promise<number | undefined> {
  const got = new Map<number, number>();
  let wake: (() => void) | undefined;
  onData((b) => {
    const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    got.set(view.readUInt32BE(0), view.readUInt32BE(4));
    wake?.();
  });
  return async (round) => {
    const deadline = performance.now() + 200;
    while (!got.has(round) && performance.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        wake = r;
        timer = setTimeout(r, Math.max(1, deadline - performance.now()));
      });
      clearTimeout(timer);
      wake = undefined;
    }
    const n = got.get(round);
    got.clear();
    return n;
  };
}

async function oursUdpRound(conn: Connection, reply: (round: number) => Promise<number | undefined>, payload: Uint8Array, n: number): Promise<UdpRound> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    void conn.send(payload);
    if (conn.sendBlocked) await drained(conn);
  }
  const got = await askCount((end) => void conn.send(end), reply);
  return { rate: (got * 1000) / (performance.now() - t0), lost: n - got };
}

async function baseUdpRound(socket: UdpSocket, reply: (round: number) => Promise<number | undefined>, payload: Uint8Array, n: number): Promise<UdpRound> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) socket.send(payload);
  const got = await askCount((end) => socket.send(end), reply);
  return { rate: (got * 1000) / (performance.now() - t0), lost: n - got };
}

export async function udpThroughput(port: number, scope: NetworkScope, drivers: readonly Driver[]): Promise<BenchRow> {
  const payload = Buffer.alloc(1024, 0x62);
  const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(), drivers }).initiate({ signal: AbortSignal.timeout(5000) });
  const ourReply = udpReplies((cb) => conn.on('received', (m) => cb(m.data)));
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  await new Promise<void>((r) => socket.connect(port, '127.0.0.1', () => r()));
  const baseReply = udpReplies((cb) => socket.on('message', cb));
  await oursUdpRound(conn, ourReply, payload, 5000);
  await baseUdpRound(socket, baseReply, payload, 5000);
  const ours: UdpRound[] = [];
  const base: UdpRound[] = [];
  for (let i = 0; i < UDP_ROUNDS; i++) {
    if (i % 2 === 0) {
      ours.push(await oursUdpRound(conn, ourReply, payload, UDP_PER_ROUND));
      base.push(await baseUdpRound(socket, baseReply, payload, UDP_PER_ROUND));
    } else {
      base.push(await baseUdpRound(socket, baseReply, payload, UDP_PER_ROUND));
      ours.push(await oursUdpRound(conn, ourReply, payload, UDP_PER_ROUND));
    }
  }
  conn.abort();
  socket.close();
  const lost = (rs: UdpRound[]): string => rs.map((r) => r.lost).join('/');
  return pairedRow('UDP 1 KiB datagrams to a receiver thread: Connection (udp driver) vs connected dgram', ours.map((x) => x.rate), base.map((x) => x.rate), 'delivered msg/s', '≥ 0.9×',
    `${UDP_ROUNDS} rounds of ${UDP_PER_ROUND}; lost per round (the receiver is slower than either sender) ours ${lost(ours)}, dgram ${lost(base)}`);
}

/**
 * Loss at 50k datagrams when the receiver shares the sender's event loop (a
 * server answering on the same process): the udp channel's send window lets
 * the loop read between bursts; a plain dgram loop fills the receive buffer.
 */
export async function udpLossSameLoop(scope: NetworkScope, drivers: readonly Driver[]): Promise<BenchRow> {
  const sink = createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  let count = 0;
  let ended: (() => void) | undefined;
  sink.on('message', (m: Buffer) => (m.length === 3 ? ended?.() : count++));
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
  const port = sink.address().port;
  const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(), drivers }).initiate({ signal: AbortSignal.timeout(5000) });
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.connect(port, '127.0.0.1', () => r()));
  const payload = Buffer.alloc(1024, 0x63);
  const end = Buffer.from('END');
  const untilEnd = async (): Promise<number> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((r) => {
      ended = r;
      timer = setTimeout(r, 300); // the END datagram may be lost too
    });
    clearTimeout(timer);
    const n = count;
    count = 0;
    return n;
  };
  const oursLost: number[] = [];
  const baseLost: number[] = [];
  try {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < UDP_PER_ROUND; i++) {
        void conn.send(payload);
        if (conn.sendBlocked) await drained(conn);
      }
      void conn.send(end);
      oursLost.push(UDP_PER_ROUND - (await untilEnd()));
      for (let i = 0; i < UDP_PER_ROUND; i++) socket.send(payload);
      socket.send(end);
      baseLost.push(UDP_PER_ROUND - (await untilEnd()));
    }
  } finally {
    conn.abort();
    socket.close();
    sink.close();
  }
  const worst = Math.max(...oursLost);
  return {
    ...row(`UDP 1 KiB datagrams, loss of ${UDP_PER_ROUND / 1000}k to a receiver on the same event loop`, worst, Math.max(...baseLost), 'lost', 'report', `lost per round ours ${oursLost.join('/')}, dgram ${baseLost.join('/')}`),
    goal: 'no loss',
    met: worst === 0,
  };
}
