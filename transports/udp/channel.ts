/**
 * A message {@link TransportChannel} over UDP: one send is one datagram, one
 * received datagram is one message (RFC 9622 §6.2.2 boundaries kept; no reliability,
 * no ordering, no congestion control: RFC 9623 §5.2 UDP mapping). The socket work is
 * behind a small {@link DatagramIo}, so the same channel serves a connected
 * socket (the udp driver's connect) and one peer of a listening socket.
 *
 * - Send: a message larger than `maxMessageSize` fails with
 *   ERR_TAPS_MESSAGE_TOO_LARGE (done(err)). dgram has no backpressure signal;
 *   this channel counts sends not yet handed to the OS and returns false at
 *   `highWater` (default 32, see DEFAULT_SEND_HIGH_WATER), calling
 *   `receiver.drain()` on a later loop turn (setImmediate) once the count is
 *   back under half of it.
 * - Receive: before `start()` and while paused, datagrams wait in a queue of
 *   at most `queueBytes` (default 4 MiB); beyond it they are dropped, as the
 *   kernel would (`dropped` counts them).
 * - ICMP errors the OS reports on a connected socket (port unreachable →
 *   ECONNREFUSED, host/net unreachable) go to `receiver.softError` (RFC 9622 §8.3.1)
 *   and the channel stays open.
 * - `close()`: waits for queued sends, then releases the socket; `abort()`
 *   releases at once. `receiver.closed` is called exactly once (after abort:
 *   ERR_TAPS_CONNECTION_ABORTED). There is no FIN: `receiver.end` is never called.
 *
 * @example
 * const ch = new DatagramChannel(io, { local, remote, maxMessageSize: 65507 });
 * ch.start(receiver);
 * ch.send(bytes, {}, (err) => {});
 */
import { debuglog } from 'node:util';
import type { ByteMeter, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { Ring } from '../../src/ring.js';
import { localAbortError } from '../kit/errors.js';
import { selfMetered } from '../../src/policy/self-metered.js';

const log = debuglog('taps');

type Done = (err?: Error) => void;

/** A send refused before it reached the socket, waiting for the sends before it to complete (completion order). */
class Refused {
  constructor(
    readonly done: Done,
    readonly error: Error,
  ) {}
}

/** The socket side of a datagram channel. */
export interface DatagramIo {
  /** Hand one datagram to the OS; `cb` runs when it left (or failed). */
  send(data: Uint8Array, cb: (err: Error | null) => void): void;
  /** Every `cb` runs exactly once, in the order of the sends (a dgram socket's): one callback can serve them all. */
  readonly ordered?: boolean;
  /** Release the socket (or the listener's slot). Calls `done` when released. */
  release(done: () => void): void;
  /** Apply a socket option (e.g. `udp.ttl`); false when this socket does not have it. */
  setOption?(name: string, value: unknown): boolean;
}

/** What a datagram channel is made from: its addresses, size limits and queue bounds. */
export interface DatagramChannelInit {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly maxMessageSize: number;
  readonly singularTransmissionMsgMaxLen?: number;
  readonly info?: Readonly<Record<string, unknown>>;
  readonly highWater?: number;
  readonly queueBytes?: number;
  /** A member of a multicast group's listener: it receives from the group and cannot send (RFC 9623 §10). */
  readonly receiveOnly?: boolean;
  /** The tenant's byte budget: each datagram is charged before it is handed to the OS. */
  readonly meter?: ByteMeter | undefined;
  /** Each datagram its socket reads is charged there (TransportChannel.receiveMetered): the Connection counts none of it. */
  readonly receiveMetered?: boolean | undefined;
}

/**
 * Sends not yet handed to the OS before `send()` returns false. libuv reads at
 * most 32 datagrams per socket per loop turn, so a sender in the same process
 * as its receiver that stays within 32 per turn cannot overflow it (measured:
 * 50k × 512 B over loopback, 0 lost at 32, 39% lost at 64, 87% at 1024), and
 * throughput to another process is the same within noise.
 */
export const DEFAULT_SEND_HIGH_WATER = 32;

/** Errors a connected UDP socket reports from ICMP: soft, the socket stays usable (RFC 1122 §4.1.3.3). */
export const SOFT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EMSGSIZE']);

export class DatagramChannel implements TransportChannel {
  readonly framing = 'message' as const;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly maxMessageSize: number;
  readonly singularTransmissionMsgMaxLen: number | undefined;
  readonly info: Readonly<Record<string, unknown>>;
  /** Datagrams dropped because the receive queue was full. */
  dropped = 0;

  readonly #receiveMetered: boolean;
  readonly #io: DatagramIo;
  readonly #receiveOnly: boolean;
  readonly #highWater: number;
  readonly #queueBytes: number;
  #receiver: ChannelReceiver | undefined;
  #queue: Buffer[] = [];
  #queued = 0;
  #paused = false;
  #pending = 0;
  #wantDrain = false;
  #ended = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #closeError: TapsError | undefined;
  readonly #closeWaiters: (() => void)[] = [];

  readonly #meter: ByteMeter | undefined;

  constructor(io: DatagramIo, init: DatagramChannelInit) {
    this.#io = io;
    this.#meter = init.meter;
    this.#receiveMetered = init.receiveMetered === true;
    selfMetered(this, init.meter !== undefined, this.#receiveMetered);
    this.local = Object.freeze({ ...init.local });
    this.remote = Object.freeze({ ...init.remote });
    this.maxMessageSize = init.maxMessageSize;
    this.singularTransmissionMsgMaxLen = init.singularTransmissionMsgMaxLen;
    this.info = Object.freeze({ ...(init.info ?? {}) });
    this.#receiveOnly = init.receiveOnly === true;
    this.#highWater = init.highWater ?? DEFAULT_SEND_HIGH_WATER;
    this.#queueBytes = init.queueBytes ?? 4 * 1024 * 1024;
  }

  /** Datagrams are charged to the tenant's byte budget here. */
  get metered(): boolean {
    return this.#meter !== undefined;
  }

  /** What arrives is charged at the socket (see {@link DatagramChannelInit.receiveMetered}). */
  get receiveMetered(): boolean {
    return this.#receiveMetered;
  }

  /**
   * Over a socket that completes datagrams in send order (`DatagramIo.ordered`), every `done` runs in the
   * order of the send() calls, a send refused before the socket (closed, too large, over the budget)
   * included: it waits behind the sends before it.
   */
  get completesInOrder(): boolean {
    return this.#io.ordered === true;
  }

  start(receiver: ChannelReceiver): void {
    if (this.#receiver) throw new TypeError('start() was already called');
    if (typeof receiver !== 'object' || receiver === null) throw new TypeError('receiver must be a ChannelReceiver');
    this.#receiver = receiver;
    if (!this.#paused) this.#flush();
    if (this.#closed) receiver.closed(this.#closeError);
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: Done): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    let failure: Error | undefined;
    if (this.#closed || this.#closing) failure = new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the channel is closed');
    else if (this.#ended) failure = new SendError('ERR_TAPS_INVALID_STATE', 'a final message was already sent');
    else if (this.#receiveOnly) failure = new SendError('ERR_TAPS_INVALID_STATE', `this connection receives from the multicast group ${this.local.address} and cannot send`);
    else if (data.byteLength > this.maxMessageSize) {
      failure = new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `a ${data.byteLength}-byte message exceeds the ${this.maxMessageSize}-byte UDP limit`);
    } else if (this.#meter !== undefined) {
      try {
        this.#meter.sent(data.byteLength);
      } catch (quota) {
        failure = quota as Error;
      }
    }
    if (failure) {
      this.#refuse(done, failure);
      return true;
    }
    if (meta.final === true) this.#ended = true;
    this.#pending++;
    if (this.#io.ordered === true) {
      this.#waiting.push(done);
      this.#io.send(data, this.#sent);
    } else {
      this.#io.send(data, (err) => this.#completed(done, err));
    }
    if (this.#pending >= this.#highWater) {
      this.#wantDrain = true;
      return false;
    }
    return true;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    if (this.#receiver) this.#flush();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#closing) return this.#closing;
    this.#closing = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    if (this.#pending === 0) this.#release();
    return this.#closing;
  }

  abort(reason?: Error): void {
    if (this.#closed) return;
    this.#closeError = localAbortError(reason);
    this.#closing ??= new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    this.#release();
  }

  setOption(name: string, value: unknown): void {
    if (typeof name !== 'string') throw new TypeError('name must be a string');
    if (this.#io.setOption?.(name, value)) return;
    throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name} does not apply to a UDP channel`);
  }

  /** @internal From the socket owner: one datagram arrived. */
  deliver(msg: Buffer): void {
    if (this.#closed) return;
    if (this.#receiver && !this.#paused && this.#queue.length === 0) {
      this.#receiver.data(msg);
      return;
    }
    if (this.#queued + msg.length > this.#queueBytes) {
      this.dropped++;
      return;
    }
    this.#queue.push(msg);
    this.#queued += msg.length;
  }

  /** @internal From the socket owner: an ICMP-reported error. */
  softError(err: Error): void {
    if (this.#closed) return;
    log('udp soft error %s', (err as NodeJS.ErrnoException).code);
    const mapped = new TapsError('ERR_TAPS_PROTOCOL_FAILED', `the network reported: ${err.message}`, { cause: err });
    this.#receiver?.softError?.(mapped);
  }

  /** @internal From the socket owner: a fatal socket error; release and report it. */
  fail(err: TapsError): void {
    if (this.#closed) return;
    this.#closeError ??= err;
    this.#closing ??= new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    this.#release();
  }

  /** @internal From the socket owner: the socket is gone (error set if abnormal). */
  released(err?: TapsError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError ??= err;
    for (const w of this.#closeWaiters.splice(0)) w();
    // Queued datagrams die with the channel.
    this.#queue = [];
    this.#queued = 0;
    this.#receiver?.closed(this.#closeError);
  }

  /**
   * The socket completes datagrams in the order they were handed to it (one sent at once completes on the
   * next tick; one the OS pushed back waits in libuv's FIFO, and later sends queue behind it), so one
   * completion callback serves every send: it calls the oldest send's `done`. Sends refused before the
   * socket wait in the same queue, so every `done` runs in send order.
   */
  readonly #waiting = new Ring<Done | Refused>();
  /** How many refused sends are in #waiting. */
  #refused = 0;
  #flushScheduled = false;
  readonly #sent = (err: Error | null): void => {
    if (this.#refused > 0) this.#flushRefused(); // refused before this one was sent
    this.#completed(this.#waiting.shift() as Done, err);
    if (this.#refused > 0) this.#flushRefused(); // refused after it, before the next one was sent
  };

  /** A send failed before the socket: its `done` runs after those of the sends before it, never inside send(). */
  #refuse(done: Done, err: Error): void {
    if (this.#io.ordered !== true) {
      queueMicrotask(() => done(err));
      return;
    }
    this.#waiting.push(new Refused(done, err));
    this.#refused++;
    // With a datagram at the socket, its completion runs this one's `done` after its own.
    if (this.#pending === 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushLater);
    }
  }

  readonly #flushLater = (): void => {
    this.#flushScheduled = false;
    this.#flushRefused();
  };

  /** Report the refused sends at the front of the queue (nothing sent before them is still at the socket). */
  #flushRefused(): void {
    const waiting = this.#waiting;
    for (let first = waiting.peek(); first instanceof Refused; first = waiting.peek()) {
      waiting.shift();
      this.#refused--;
      first.done(first.error);
    }
  }

  /** One datagram left (or failed): report it, and let the sender go on once few are outstanding. */
  #completed(done: Done, err: Error | null): void {
    this.#pending--;
    done(err ? new SendError('ERR_TAPS_SEND_FAILED', `datagram send failed: ${err.message}`, { cause: err }) : undefined);
    if (this.#wantDrain && this.#pending <= this.#highWater >> 1 && !this.#closed && !this.#drainScheduled) {
      // Not from inside libuv's send-completion loop: a sender refilled from there never lets reads run.
      this.#drainScheduled = true;
      setImmediate(this.#emitDrain);
    }
    if (this.#pending === 0 && this.#closing) this.#release();
  }

  #drainScheduled = false;
  #emitDrain = (): void => {
    this.#drainScheduled = false;
    if (!this.#wantDrain || this.#closed) return;
    this.#wantDrain = false;
    this.#receiver?.drain();
  };

  #flush(): void {
    const receiver = this.#receiver;
    while (receiver && !this.#paused && this.#queue.length > 0 && !this.#closed) {
      const msg = this.#queue.shift() as Buffer;
      this.#queued -= msg.length;
      receiver.data(msg);
    }
  }

  #releasing = false;
  #release(): void {
    if (this.#releasing) return;
    this.#releasing = true;
    this.#io.release(() => this.released());
  }
}
