/**
 * The QUIC DATAGRAM (RFC 9221) side of one `quic-dgram` connection: every
 * flow (a Connection of the group) sends and receives its unreliable
 * messages here, in the wire form of ./datagram-wire.ts.
 *
 * `@matrixai/quic` ~2.0.9 has no datagram API of its own, so this module
 * reaches the native quiche connection (`QUICConnection#conn`, internal):
 *
 * - Receive: the package calls `processStreams()` after each packet it took
 *   in (inside `recv`, before that packet's own flush); this module wraps it
 *   on the one connection object and drains quiche's datagram queue there,
 *   so a reply sent from the receive callback leaves with the ACK.
 * - Send: `dgramSend` queues in quiche and nothing flushes it: one
 *   `connection.send()` per microtask takes everything sent in that tick.
 *   The `done` of each datagram runs right after that flush (it was handed to
 *   QUIC); the `sent` event never fires inside `send()`.
 * - Pacing: quiche congestion-controls datagrams but never retransmits them,
 *   and a loopback congestion window (megabytes) outgrows what a busy
 *   receiver's socket buffer holds. So the flows of one connection hand over at most
 *   `highWater` datagrams per event-loop turn together, and none while quiche's own
 *   send queue holds `queueHighWater` (the congestion window is full): then
 *   `send()` returns false and the flow's `drain()` follows on a later turn
 *   with room. Waiting messages stay in the Connection's queue, where
 *   msgLifetime can still expire them (measured: 50,000 × 1 KiB over
 *   loopback, 0 lost at 32 per turn, 5–15 % lost unpaced).
 * - A peer's datagram that does not parse, names no flow of this connection
 *   or is stale (ordered, not newer) is dropped and counted in `stats`,
 *   never thrown. Datagrams of a flow the peer may still open wait (at most
 *   {@link EARLY_LIMIT} per connection): a datagram may overtake the stream
 *   frame that opens its flow.
 *
 * @example
 * const mux = new DatagramMux(connection, { highWater: 32 });
 * mux.attach(0, { datagram: (m, ordered) => deliver(m), drain: () => resume() });
 * if (!mux.send(0, false, bytes, (err) => {})) wait for drain;
 */
import type { QUICConnection } from '@matrixai/quic';
import { debuglog } from 'node:util';
import { SendError } from '../../src/errors.js';
import { decodeDatagram, encodeDatagram, headerLength, isNewer } from './datagram-wire.js';

const log = debuglog('taps');

/** The part of quiche's connection (package-internal `conn`, @matrixai/quic ~2.0.9) that carries datagrams. */
interface QuicheDatagrams {
  dgramSend(data: Uint8Array): void | null;
  dgramRecvVec(): Uint8Array | null;
  dgramMaxWritableLen(): number | null;
  dgramSendQueueLen(): number;
}

/** Where a flow's datagrams go. */
export interface FlowSink {
  /** One message; `ordered` as its sender marked it. */
  datagram(message: Uint8Array, ordered: boolean): void;
  /** The flow may send again after `send()` returned false. */
  drain(): void;
}

/** What happened to datagrams on this connection (read live: `info.datagrams` of its channels). */
export interface DatagramStats {
  /** Handed to quiche. */
  sent: number;
  /** Handed to a flow (of which `held` were dropped there). */
  received: number;
  /** Did not parse (truncated, unknown kind): dropped. */
  malformed: number;
  /** Named a flow this connection does not have (closed, or never opened): dropped. */
  unknownFlow: number;
  /** Ordered, and not newer than one already delivered on its flow: dropped. */
  stale: number;
  /** Arrived while its flow's receiver already held as many as it may (paused, or not started): dropped. */
  held: number;
}

/** Datagrams kept for flows whose stream has not arrived yet, per connection. */
export const EARLY_LIMIT = 64;

type Done = (err?: Error) => void;

interface Flow {
  readonly sink: FlowSink;
  /** Next sequence number to send. */
  seq: number;
  /** Newest ordered sequence number delivered, or -1. */
  newest: number;
}

export interface DatagramMuxOptions {
  /** Datagrams a flow may hand over per event-loop turn. */
  readonly highWater: number;
  /** quiche's send queue length at which the congestion window counts as full. */
  readonly queueHighWater: number;
}

export class DatagramMux {
  readonly stats: DatagramStats = { sent: 0, received: 0, malformed: 0, unknownFlow: 0, stale: 0, held: 0 };
  readonly #connection: QUICConnection;
  readonly #native: QuicheDatagrams;
  readonly #options: DatagramMuxOptions;
  readonly #flows = new Map<number, Flow>();
  /** Flows that ended: their late datagrams are dropped, not kept as early ones. */
  readonly #ended = new Set<number>();
  readonly #early: Uint8Array[] = [];
  /** Datagrams handed over this turn, and the flows told to wait. */
  #turn = 0;
  readonly #waiting = new Set<Flow>();
  #turnReset = false;
  #dones: Done[] = [];
  #flushQueued = false;
  #closed = false;
  /** The low bit of the stream ids the peer opens (0: the client's, RFC 9000 §2.1): only such a flow may still arrive. */
  readonly #peerBit: 0 | 1;

  constructor(connection: QUICConnection, options: DatagramMuxOptions) {
    this.#connection = connection;
    this.#native = (connection as unknown as { conn: QuicheDatagrams }).conn;
    this.#options = options;
    this.#peerBit = (connection as unknown as { type: string }).type === 'server' ? 0 : 1;
    const mux = this;
    const target = connection as unknown as { processStreams(): void };
    const processStreams = target.processStreams;
    target.processStreams = function (this: unknown) {
      processStreams.call(this);
      mux.#pump();
    };
    this.#pump();
  }

  /** The largest message `flow` can send in one datagram now (0 when datagrams are off). */
  maxMessage(flow: number): number {
    const writable = this.#native.dgramMaxWritableLen();
    return writable === null ? 0 : Math.max(0, writable - headerLength(flow));
  }

  /** Deliver `flow`'s datagrams to `sink` (and those that arrived before it). */
  attach(flow: number, sink: FlowSink): void {
    this.#flows.set(flow, { sink, seq: 0, newest: -1 });
    if (this.#early.length === 0) return;
    const early = this.#early.splice(0);
    for (const d of early) this.#dispatch(d);
  }

  /** `flow` is gone: its datagrams are dropped from now on. */
  detach(flow: number): void {
    const f = this.#flows.get(flow);
    if (f !== undefined) this.#waiting.delete(f);
    this.#flows.delete(flow);
    this.#ended.add(flow);
  }

  /**
   * Queue one message of `flow` as a datagram. `done` runs once: after the flush that handed it to QUIC,
   * or with the SendError. Returns false when the flow should wait for its sink's `drain()`.
   */
  send(flow: number, ordered: boolean, message: Uint8Array, done: Done): boolean {
    const f = this.#flows.get(flow);
    if (f === undefined || this.#closed) {
      queueMicrotask(() => done(new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the QUIC connection of this flow is closed')));
      return true;
    }
    try {
      this.#native.dgramSend(encodeDatagram(flow, ordered, f.seq, message));
    } catch (err) {
      queueMicrotask(() => done(sendFailure(err, message.byteLength, this.maxMessage(flow))));
      return true;
    }
    f.seq = (f.seq + 1) >>> 0;
    this.stats.sent++;
    this.#dones.push(done);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    if (++this.#turn < this.#options.highWater && !this.#congested()) return true;
    this.#waiting.add(f);
    this.#nextTurn();
    return false;
  }

  /** The connection is gone: nothing more is sent or delivered. */
  close(): void {
    this.#closed = true;
    this.#flows.clear();
    this.#waiting.clear();
    this.#early.length = 0;
  }

  #congested(): boolean {
    return this.#native.dgramSendQueueLen() >= this.#options.queueHighWater;
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const dones = this.#dones;
    this.#dones = [];
    if (!this.#closed) {
      // Not running any more (closing): the datagrams are lost with the connection, as datagrams may be.
      (this.#connection as unknown as { send(): Promise<void> }).send().catch(() => {});
    }
    for (const d of dones) d();
  };

  /** Start a new turn's count on the next loop turn, then let waiting flows go if quiche has room. */
  #nextTurn(): void {
    if (this.#turnReset) return;
    this.#turnReset = true;
    setImmediate(() => {
      this.#turnReset = false;
      this.#turn = 0;
      this.#release();
    });
  }

  /** Waiting flows may send again (called on a new turn, and after each received packet: its ACK may have opened the window). */
  #release(): void {
    if (this.#waiting.size === 0 || this.#turn >= this.#options.highWater || this.#congested() || this.#closed) return;
    const flows = [...this.#waiting];
    this.#waiting.clear();
    for (const f of flows) guard(() => f.sink.drain());
  }

  /** Take every datagram quiche has queued for us. */
  #pump(): void {
    if (this.#closed) return;
    for (;;) {
      const d = this.#native.dgramRecvVec();
      if (d === null) break;
      this.#dispatch(d);
    }
    this.#release();
  }

  #dispatch(d: Uint8Array): void {
    const got = decodeDatagram(d);
    if (typeof got === 'string') {
      this.stats.malformed++;
      log('quic-dgram: dropped a malformed datagram from the peer (%s)', got);
      return;
    }
    const f = this.#flows.get(got.flow);
    if (f === undefined) {
      // A flow is a bidirectional stream (RFC 9000 §2.1: the low bits say who opened it and which kind).
      if ((got.flow & 2) !== 0) {
        this.stats.malformed++;
        log('quic-dgram: dropped a datagram naming unidirectional stream %d as its flow', got.flow);
      } else if ((got.flow & 1) === this.#peerBit && !this.#ended.has(got.flow) && this.#early.length < EARLY_LIMIT) this.#early.push(d);
      else this.stats.unknownFlow++;
      return;
    }
    if (got.ordered) {
      if (f.newest !== -1 && !isNewer(got.seq, f.newest)) {
        this.stats.stale++;
        return;
      }
      f.newest = got.seq;
    }
    this.stats.received++;
    guard(() => f.sink.datagram(got.message, got.ordered));
  }
}

/** A receiver's exception must not unwind into the package's packet handling: rethrown on a fresh task. */
function guard(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    setImmediate(() => {
      throw err;
    });
  }
}

function sendFailure(err: unknown, size: number, max: number): SendError {
  const what = (err as Error)?.message ?? String(err);
  if (what === 'BufferTooShort') {
    return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds the largest QUIC DATAGRAM this connection can send now (${max} bytes)`, { cause: err });
  }
  if (what === 'InvalidState') return new SendError('ERR_TAPS_SEND_FAILED', 'the peer does not accept QUIC DATAGRAM frames', { cause: err });
  return new SendError('ERR_TAPS_SEND_FAILED', `the datagram could not be queued: ${what}`, { cause: err });
}
