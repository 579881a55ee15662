/**
 * The send side of a Connection (RFC 9622 §9.2): refuses what the stack
 * cannot honour, frames and hands messages to the channel, queues them by
 * msgPriority while the channel pushes back, expires queued messages whose
 * msgLifetime passed, and reports exactly one outcome per send.
 *
 * The hot path (channel has room, no queue) allocates the PendingSend, its
 * promise and the framed bytes, nothing else, over a channel that completes
 * sends in order (`TransportChannel.completesInOrder`: the Sender hands it
 * one `done` for all its sends and settles the oldest in flight on each
 * call); other channels get one `done` closure per send. The
 * Connection owns the state machine and the events; this class asks it
 * through a {@link SenderHost}. A graceful close `flush()`es the queue into
 * the channel; an abort `close()`s it, failing what was queued.
 *
 * connTimeout (RFC 9622 §8.1.3: how long to wait before deciding that data
 * cannot be delivered) is approximated with what Node shows: while data is
 * outstanding (queued here, or handed to the channel whose completion has
 * not come back) and no send completes for that long, the connection fails
 * with ERR_TAPS_TIMEOUT. Node exposes neither TCP_USER_TIMEOUT nor the
 * kernel's unacknowledged bytes, so data the kernel has accepted but the
 * peer never acknowledges is seen only once the kernel's send buffer fills
 * and writes stop completing; an idle dead peer is found by keep-alive.
 *
 * @example
 * const sender = new Sender(host);
 * await sender.send(bytes, { msgPriority: 10 });
 * if (sender.blocked) await new Promise((r) => conn.once('drain', r));
 */
import type { Clock } from '../clock.js';
import type { ChannelSendMeta, Driver, TransportChannel } from '../driver.js';
import { QuotaExceededError, SendError, TapsError, toTapsError } from '../errors.js';
import type { MessageFramer } from '../framers/index.js';
import type { MessageContextInit } from '../message.js';
import type { Lease } from '../policy/contract.js';
import { mayDuplicate } from '../provided.js';
import { Ring } from '../ring.js';
import { PendingSend, SENT, SendQueue, type Settler, type Written } from './pending.js';
import type { ConnState } from './properties.js';

/** What the Sender needs from its Connection (one object; its `outcome` settles each send). */
export interface SenderHost extends Settler {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly framer: MessageFramer | undefined;
  readonly lease: Lease;
  readonly clock: Clock;
  /** direction is unidirectional-receive. */
  readonly receiveOnly: boolean;
  state(): ConnState;
  /** The local sending side is open: not closed, not closing by the application's close(). */
  sendOpen(): boolean;
  /** The connection's error, once it failed. */
  error(): TapsError | undefined;
  /** The queue emptied after the channel pushed back (`drain`). */
  drained(): void;
  /** connTimeout ran out with data outstanding and no progress. */
  stalled(error: TapsError): void;
}

/** The context of a send given none (no allocation, no checks). */
export const NO_CONTEXT: MessageContextInit = Object.freeze({});
const NO_META: ChannelSendMeta = Object.freeze({});
const TEXT_META: ChannelSendMeta = Object.freeze({ text: true });

export class Sender {
  readonly #host: SenderHost;
  /** The host's channel, framer, lease and clock, read once: they are the connection's for its whole life. */
  readonly #channel: TransportChannel;
  readonly #framer: MessageFramer | undefined;
  readonly #lease: Lease;
  readonly #clock: Clock;
  readonly #receiveOnly: boolean;
  /** Made when the first message has to wait (most connections never queue one). */
  #queue: SendQueue | undefined;
  readonly #needsReplayable: boolean;
  /** Made by the first send. */
  #onWritten: Written | undefined;
  #blocked = false;
  #finalQueued = false;
  #expiryTimer: unknown;
  #expiryAt = Infinity;
  /** Messages handed to the channel whose completion has not come back. */
  #inflight = 0;
  /** Those messages in send order (a channel that may complete out of order: settled ones until the older ones are). */
  #flight = new Ring<PendingSend>();
  /** The one `done` of a channel that completes sends in order (undefined: a closure per send). */
  readonly #doneInOrder: ((err?: Error) => void) | undefined;
  /** connTimeout in ms (Infinity: not watched), the watchdog's timer, and when a send last completed. */
  #deliveryTimeout = Infinity;
  #watchdog: unknown;
  #progressAt = 0;

  constructor(host: SenderHost, deliveryTimeout = Infinity) {
    this.#host = host;
    this.#channel = host.channel;
    this.#framer = host.framer;
    this.#lease = host.lease;
    this.#clock = host.clock;
    this.#receiveOnly = host.receiveOnly;
    this.#needsReplayable = mayDuplicate(host.driver);
    this.#deliveryTimeout = deliveryTimeout;
    if (host.channel.completesInOrder === true) {
      this.#doneInOrder = (err?: Error): void => {
        const p = this.#flight.peek();
        if (p === undefined || !p.piece(err)) return; // none: it failed when the connection closed
        this.#flight.shift();
        this.#completed(p, p.failure);
      };
    }
  }

  /** The callback of the per-send closures: settle the message, then drop settled ones from the front of the flight. */
  #written(): Written {
    return (this.#onWritten ??= (p, err) => {
      this.#completed(p, err);
      const flight = this.#flight;
      while (flight.size > 0 && flight.peek()!.settled) flight.shift();
    });
  }

  /** The channel took all of `p` (err: a piece failed). */
  #completed(p: PendingSend, err: Error | undefined): void {
    if (p.settled) return; // failed when the connection closed
    this.#inflight--;
    if (this.#deliveryTimeout !== Infinity) this.#progressAt = this.#clock.now();
    if (err) p.settle({ kind: 'sendError', error: this.#failure(err) }, this.#host);
    else p.settle(SENT, this.#host);
  }

  /** How many messages wait in the queue (a method: a private getter is slower on the hot path). */
  #queued(): number {
    return this.#queue === undefined ? 0 : this.#queue.size;
  }

  /** The channel pushed back, or messages wait in the queue. */
  get blocked(): boolean {
    return this.#blocked || this.#queued() > 0;
  }

  /** A message marked final was accepted: nothing more may be sent. */
  get finalQueued(): boolean {
    return this.#finalQueued;
  }

  /** Largest message one send may carry: the channel's and the framer's limits. */
  get maxLength(): number {
    const framer = this.#framer;
    const max = this.#channel.maxMessageSize;
    return framer === undefined ? max : Math.min(max, framer.maxMessageSize);
  }

  /** Data is waiting for the transport: queued here, or handed over and not completed. */
  get outstanding(): boolean {
    return this.#inflight > 0 || this.#queued() > 0;
  }

  /** connTimeout changed (Infinity: stop watching). */
  setDeliveryTimeout(ms: number): void {
    this.#deliveryTimeout = ms;
    this.#disarmWatchdog();
    if (ms !== Infinity && this.outstanding) this.#armWatchdog(ms);
  }

  /** Send a checked message; see Connection.send. */
  send(bytes: Uint8Array, ctx: MessageContextInit, text = false): Promise<void> {
    const host = this.#host;
    // No event follows Closed (RFC 9622 §11): a send after it only rejects.
    if (host.state() === 'closed') return closedSend(host.error());
    const p = new PendingSend(bytes, ctx, ctx.msgLifetime === undefined ? 0 : this.#clock.now(), text);
    // Without properties only the state and the size can refuse it (checked inline; #refuse says why).
    const plain = ctx === NO_CONTEXT && !this.#finalQueued && !this.#receiveOnly && host.sendOpen() && bytes.byteLength <= this.maxLength;
    const problem = plain ? undefined : this.#refuse(bytes, ctx);
    if (problem !== undefined) {
      p.settle({ kind: 'sendError', error: problem }, this.#host);
      return p.promise;
    }
    if (ctx.final === true) this.#finalQueued = true;
    if (this.#deliveryTimeout !== Infinity && this.#watchdog === undefined) this.#armWatchdog(this.#deliveryTimeout);
    if (!this.#blocked && this.#queued() === 0) this.#write(p);
    else {
      (this.#queue ??= new SendQueue()).push(p);
      if (p.deadline < this.#expiryAt) this.#armExpiry(p.deadline);
    }
    return p.promise;
  }

  /** The channel can take more: send what is queued, in priority order. */
  drain(): void {
    this.#blocked = false;
    const queue = this.#queue;
    while (queue !== undefined && !this.#blocked && this.#host.state() !== 'closed') {
      const p = queue.shift();
      if (p === undefined) break;
      this.#write(p);
    }
    if (this.#queued() === 0) this.#disarmExpiry();
    if (!this.#blocked && this.#queued() === 0) this.#host.drained();
  }

  /**
   * A graceful close: hand the channel everything still queued, whatever its
   * backpressure; its close() flushes it, bounded by the stack's own close
   * timeout, so a peer that never reads cannot hold close() open forever.
   */
  flush(): void {
    while (this.#queue !== undefined && this.#host.state() === 'closing') {
      const p = this.#queue.shift();
      if (p === undefined) break;
      this.#write(p);
    }
    this.#disarmExpiry();
  }

  /**
   * The connection closed: every message not yet confirmed fails with `why()`, those handed to the channel first,
   * then the queued ones, so their events come before Closed / ConnectionError (RFC 9622 §11). A channel
   * completion arriving later finds them settled.
   */
  close(why: () => TapsError): void {
    this.#disarmExpiry();
    this.#disarmWatchdog();
    const notSent = (p: PendingSend): void => {
      const reason = why();
      p.settle({ kind: 'sendError', error: new SendError('ERR_TAPS_CONNECTION_ABORTED', `not sent: ${reason.message}`, { cause: reason }) }, this.#host);
    };
    // A fresh ring: a completion arriving from now on (or from an event handler below) finds nothing to settle.
    const flight = this.#flight;
    this.#flight = new Ring();
    this.#inflight = 0;
    for (let p = flight.shift(); p !== undefined; p = flight.shift()) if (!p.settled) notSent(p);
    if (this.#queue !== undefined) for (const p of this.#queue.drainAll()) notSent(p);
  }

  /** Largest message of the given reliability: a per-message reliability channel's own limit for it, else sendMsgMaxLen. */
  #maxFor(reliable: boolean | undefined): number {
    const channel = this.#channel;
    if (reliable === undefined || channel.maxMessageSizeFor === undefined) return this.maxLength;
    return Math.min(channel.maxMessageSizeFor(reliable), this.#framer?.maxMessageSize ?? Infinity);
  }

  /** Why this message cannot be sent at all (checked before it is queued). */
  #refuse(bytes: Uint8Array, ctx: MessageContextInit): SendError | undefined {
    const host = this.#host;
    if (!host.sendOpen()) return new SendError('ERR_TAPS_INVALID_STATE', `cannot send: the connection is ${host.state()}`);
    if (this.#finalQueued) return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send after a message marked final');
    if (this.#receiveOnly) return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send: direction is unidirectional-receive');
    const max = this.#maxFor(ctx.msgReliable);
    if (bytes.byteLength > max) return tooLarge(bytes.byteLength, max, host, ctx.msgReliable);
    if (ctx === NO_CONTEXT) return undefined;
    const id = host.driver.id;
    if (this.#needsReplayable && ctx.safelyReplayable === false) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `${id} may duplicate messages: a message marked safelyReplayable false cannot be sent on it (RFC 9622 §9.1.3.4)`);
    }
    const caps = host.driver.capabilities;
    if (ctx.msgReliable !== undefined && ctx.msgReliable !== caps.reliable && !caps.perMsgReliability) {
      return new SendError(
        'ERR_TAPS_INVALID_MESSAGE_PROPERTIES',
        `msgReliable ${ctx.msgReliable} differs from the reliability of ${id} (${caps.reliable ? 'reliable' : 'unreliable'}), which has no per-message reliability (RFC 9622 §9.1.3.7)`,
      );
    }
    if (ctx.msgOrdered === true && !caps.ordered && !caps.perMsgReliability) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `msgOrdered requested but ${id} does not preserve order (RFC 9622 §9.1.3.3)`);
    }
    const single = this.#channel.singularTransmissionMsgMaxLen;
    if ((ctx.noFragmentation === true || ctx.noSegmentation === true) && single !== undefined && bytes.byteLength > single) {
      return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${bytes.byteLength} bytes cannot go in one packet (singularTransmissionMsgMaxLen ${single})`);
    }
    if (ctx.fields !== undefined && host.driver.framing === 'stream') {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `${id} carries no protocol fields`);
    }
    return undefined;
  }

  /** Hand one message to the channel; its outcome arrives in the channel's callback. */
  #write(p: PendingSend): void {
    if (p.deadline !== Infinity && p.deadline < this.#clock.now()) {
      p.settle({ kind: 'expired', error: expiredError(p) }, this.#host);
      return;
    }
    if (this.#framer !== undefined) {
      this.#writeFramed(p, this.#framer);
      return;
    }
    try {
      // The tenant's byte budget counts what goes on the wire (as received() does).
      this.#lease.sent(p.data.byteLength);
    } catch (err) {
      p.settle({ kind: 'sendError', error: toTapsError(err, 'ERR_TAPS_SEND_FAILED') }, this.#host);
      return;
    }
    this.#inflight++;
    this.#flight.push(p);
    if (!this.#channel.send(p.data, metaOf(p), this.#doneInOrder ?? p.callback(this.#onWritten ?? this.#written()))) this.#blocked = true;
  }

  /** #write through the framer: its bytes are charged, framing included, and may be several pieces. */
  #writeFramed(p: PendingSend, framer: MessageFramer): void {
    let pieces: Uint8Array | readonly Uint8Array[];
    try {
      pieces = framer.frame(p.data);
      this.#lease.sent(pieces instanceof Uint8Array ? pieces.byteLength : byteLength(pieces));
    } catch (err) {
      p.settle({ kind: 'sendError', error: toTapsError(err, 'ERR_TAPS_SEND_FAILED') }, this.#host);
      return;
    }
    if (!(pieces instanceof Uint8Array) && pieces.length === 0) {
      p.settle(SENT, this.#host); // the framer writes nothing for it: nothing to wait for
      return;
    }
    this.#inflight++;
    this.#flight.push(p);
    const meta = metaOf(p);
    const done = this.#doneInOrder ?? p.callback(this.#onWritten ?? this.#written());
    const channel = this.#channel;
    let ok: boolean;
    if (pieces instanceof Uint8Array) ok = channel.send(pieces, meta, done);
    else {
      // Several pieces (header, payload): the message is written when the last of them is.
      const n = pieces.length;
      p.pieces = n;
      ok = true;
      for (let i = 0; i < n; i++) ok = channel.send(pieces[i]!, i === n - 1 ? meta : NO_META, done);
    }
    if (!ok) this.#blocked = true;
  }

  /** The SendError for a message the channel took but could not send. */
  #failure(err: Error): TapsError {
    // The tenant's byte budget refused it at the socket: the same error as when the Connection counts it.
    if (err instanceof SendError || err instanceof QuotaExceededError) return err;
    if (this.#host.state() === 'closed') return new SendError('ERR_TAPS_CONNECTION_ABORTED', `not sent: the connection closed (${err.message})`, { cause: err });
    return new SendError('ERR_TAPS_SEND_FAILED', `send failed: ${err.message}`, { cause: err });
  }

  #armExpiry(at: number): void {
    this.#disarmExpiry();
    const clock = this.#clock;
    this.#expiryAt = at;
    this.#expiryTimer = clock.setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryAt = Infinity;
      const queue = this.#queue;
      if (queue === undefined) return;
      for (const p of queue.expire(clock.now())) p.settle({ kind: 'expired', error: expiredError(p) }, this.#host);
      const next = queue.nextDeadline();
      if (next !== Infinity) this.#armExpiry(next);
    }, Math.max(0, at - clock.now()) + 1);
  }

  /** Start the connTimeout clock now (data just became outstanding). */
  #armWatchdog(ms: number): void {
    this.#progressAt = this.#clock.now();
    this.#watchdog = this.#clock.setTimeout(() => this.#checkProgress(), ms);
  }

  #checkProgress(): void {
    this.#watchdog = undefined;
    const limit = this.#deliveryTimeout;
    if (limit === Infinity || !this.outstanding) return; // nothing waits: the next send starts the clock again
    const clock = this.#clock;
    const idle = clock.now() - this.#progressAt;
    if (idle < limit) {
      this.#watchdog = clock.setTimeout(() => this.#checkProgress(), limit - idle);
      return;
    }
    this.#host.stalled(new TapsError('ERR_TAPS_TIMEOUT', `sent data made no progress for ${limit} ms (connTimeout, RFC 9622 §8.1.3)`));
  }

  #disarmWatchdog(): void {
    if (this.#watchdog !== undefined) this.#clock.clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }

  #disarmExpiry(): void {
    if (this.#expiryTimer !== undefined) this.#clock.clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryAt = Infinity;
  }
}

const noop = (): void => {};

/** What a send after Closed returns: a rejection the caller may await, already handled so it never goes unhandled. */
function closedSend(error: TapsError | undefined): Promise<void> {
  const why = error === undefined ? 'the connection is closed' : `the connection is closed (${error.message})`;
  const p = Promise.reject(new SendError('ERR_TAPS_INVALID_STATE', `cannot send: ${why}`, error === undefined ? {} : { cause: error }));
  p.catch(noop);
  return p;
}

function tooLarge(size: number, max: number, host: SenderHost, reliable: boolean | undefined): SendError {
  const unreliable = reliable === false || (reliable === undefined && host.driver.framing === 'message' && !host.driver.capabilities.reliable);
  const limit = reliable === undefined ? `sendMsgMaxLen ${max}` : `the largest ${reliable ? 'reliable' : 'unreliable'} message ${max}`;
  const why = unreliable ? ': an unreliable message must fit in one datagram' : '';
  return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${size} bytes exceeds ${limit} of ${host.driver.id}${why}`);
}

/** What the channel is told about a message: its properties (none: one shared object). */
function metaOf(p: PendingSend): ChannelSendMeta {
  const ctx = p.context;
  if (ctx === NO_CONTEXT) return p.text ? TEXT_META : NO_META;
  return { final: ctx.final, reliable: ctx.msgReliable, ordered: ctx.msgOrdered, priority: ctx.msgPriority, fields: ctx.fields, text: p.text };
}

function byteLength(pieces: readonly Uint8Array[]): number {
  let n = 0;
  for (const piece of pieces) n += piece.byteLength;
  return n;
}

function expiredError(p: PendingSend): TapsError {
  return new TapsError('ERR_TAPS_TIMEOUT', `message expired: msgLifetime ${p.context.msgLifetime} ms passed before it could be sent`);
}
