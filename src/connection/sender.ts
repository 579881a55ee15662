/**
 * The send side of a Connection (RFC 9622 §9.2): refuses what the stack
 * cannot honour, frames and hands messages to the channel, queues them by
 * msgPriority while the channel pushes back, expires queued messages whose
 * msgLifetime passed, and reports exactly one outcome per send.
 *
 * The hot path (channel has room, no queue) allocates the PendingSend, its
 * promise, one `done` closure and the framed bytes, nothing else. The
 * Connection owns the state machine and the events; this class asks it
 * through a {@link SenderHost}. A graceful close `flush()`es the queue into
 * the channel; an abort `close()`s it, failing what was queued.
 *
 * @example
 * const sender = new Sender(host);
 * await sender.send(bytes, { msgPriority: 10 });
 * if (sender.blocked) await new Promise((r) => conn.once('drain', r));
 */
import type { Clock } from '../clock.js';
import type { ChannelSendMeta, Driver, TransportChannel } from '../driver.js';
import { SendError, TapsError, toTapsError } from '../errors.js';
import type { MessageFramer } from '../framers/index.js';
import type { MessageContextInit } from '../message.js';
import type { Lease } from '../policy/chokepoint.js';
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
  /** The connection's error, once it failed. */
  error(): TapsError | undefined;
  /** The queue emptied after the channel pushed back (`drain`). */
  drained(): void;
}

/** The context of a send given none (no allocation, no checks). */
export const NO_CONTEXT: MessageContextInit = Object.freeze({});
const NO_META: ChannelSendMeta = Object.freeze({});

export class Sender {
  readonly #host: SenderHost;
  /** Made when the first message has to wait (most connections never queue one). */
  #queue: SendQueue | undefined;
  readonly #needsReplayable: boolean;
  /** Made by the first send. */
  #onWritten: Written | undefined;
  #blocked = false;
  #finalQueued = false;
  #seq = 0;
  #expiryTimer: unknown;
  #expiryAt = Infinity;

  constructor(host: SenderHost) {
    this.#host = host;
    this.#needsReplayable = !host.driver.capabilities.reliable && host.driver.framing === 'message';
  }

  #written(): Written {
    const host = this.#host;
    return (this.#onWritten ??= (p, err) => {
      if (err) p.settle({ kind: 'sendError', error: this.#failure(err) });
      // Confirmed only after the connection failed or was aborted: not claimed sent once it is closed (issue 7).
      else if (host.state() === 'closed') p.settle({ kind: 'sendError', error: this.#failure(host.error() ?? new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'aborted')) });
      else p.settle(SENT);
    });
  }

  get #queued(): number {
    return this.#queue === undefined ? 0 : this.#queue.size;
  }

  /** The channel pushed back, or messages wait in the queue. */
  get blocked(): boolean {
    return this.#blocked || this.#queued > 0;
  }

  /** A message marked final was accepted: nothing more may be sent. */
  get finalQueued(): boolean {
    return this.#finalQueued;
  }

  /** Largest message one send may carry: the channel's and the framer's limits. */
  get maxLength(): number {
    return Math.min(this.#host.channel.maxMessageSize, this.#host.framer?.maxMessageSize ?? Infinity);
  }

  /** Send a checked message; see Connection.send. */
  send(bytes: Uint8Array, ctx: MessageContextInit): Promise<void> {
    const host = this.#host;
    const p = new PendingSend(bytes, ctx, ctx.msgLifetime === undefined ? 0 : host.clock.now(), this.#seq++, host, this.#onWritten ?? this.#written());
    const problem = this.#refuse(bytes, ctx);
    if (problem !== undefined) {
      p.settle({ kind: 'sendError', error: problem });
      return p.promise;
    }
    if (ctx.final === true) this.#finalQueued = true;
    if (!this.#blocked && this.#queued === 0) this.#write(p);
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
    if (this.#queued === 0) this.#disarmExpiry();
    if (!this.#blocked && this.#queued === 0) this.#host.drained();
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

  /** The connection closed: every queued message fails with `why()` (in flight ones fail through the channel). */
  close(why: () => TapsError): void {
    this.#disarmExpiry();
    if (this.#queue === undefined) return;
    for (const p of this.#queue.drainAll()) {
      const reason = why();
      p.settle({ kind: 'sendError', error: new SendError('ERR_TAPS_CONNECTION_ABORTED', `not sent: ${reason.message}`, { cause: reason }) });
    }
  }

  /** Why this message cannot be sent at all (checked before it is queued). */
  #refuse(bytes: Uint8Array, ctx: MessageContextInit): SendError | undefined {
    const host = this.#host;
    const state = host.state();
    const id = host.driver.id;
    if (state !== 'established') return new SendError('ERR_TAPS_INVALID_STATE', `cannot send: the connection is ${state}`);
    if (this.#finalQueued) return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send after a message marked final');
    if (host.receiveOnly) return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send: direction is unidirectional-receive');
    const max = this.maxLength;
    if (bytes.byteLength > max) return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds sendMsgMaxLen ${max} of ${id}`);
    if (ctx === NO_CONTEXT) return undefined;
    if (this.#needsReplayable && ctx.safelyReplayable === false) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `${id} may duplicate messages: a message marked safelyReplayable false cannot be sent on it (RFC 9622 §9.1.3.4)`);
    }
    const caps = host.driver.capabilities;
    if (ctx.msgReliable === true && !caps.reliable && !caps.perMsgReliability) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `msgReliable requested but ${id} can send only unreliably (RFC 9622 §9.1.3.7)`);
    }
    if (ctx.msgOrdered === true && !caps.ordered) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `msgOrdered requested but ${id} does not preserve order (RFC 9622 §9.1.3.3)`);
    }
    const single = host.channel.singularTransmissionMsgMaxLen;
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
    const host = this.#host;
    if (p.deadline !== Infinity && p.deadline < host.clock.now()) {
      p.settle({ kind: 'expired', error: expiredError(p) });
      return;
    }
    let pieces: Uint8Array | readonly Uint8Array[];
    try {
      pieces = host.framer ? host.framer.frame(p.data) : p.data;
      // The tenant's byte budget counts what goes on the wire, framing included (as received() does).
      host.lease.sent(pieces instanceof Uint8Array ? pieces.byteLength : byteLength(pieces));
    } catch (err) {
      p.settle({ kind: 'sendError', error: toTapsError(err, 'ERR_TAPS_SEND_FAILED') });
      return;
    }
    const ctx = p.context;
    const meta: ChannelSendMeta =
      ctx === NO_CONTEXT ? NO_META : { final: ctx.final, reliable: ctx.msgReliable, priority: ctx.msgPriority, fields: ctx.fields };
    let ok: boolean;
    if (pieces instanceof Uint8Array) ok = host.channel.send(pieces, meta, p.written);
    else {
      // Several pieces (header, payload): the message is written when the last of them is.
      const n = pieces.length;
      p.pieces = Math.max(1, n);
      ok = true;
      if (n === 0) p.written();
      for (let i = 0; i < n; i++) ok = host.channel.send(pieces[i]!, i === n - 1 ? meta : NO_META, p.written);
    }
    if (!ok) this.#blocked = true;
  }

  /** The SendError for a message the channel took but could not send. */
  #failure(err: Error): SendError {
    if (err instanceof SendError) return err;
    if (this.#host.state() === 'closed') return new SendError('ERR_TAPS_CONNECTION_ABORTED', `not sent: the connection closed (${err.message})`, { cause: err });
    return new SendError('ERR_TAPS_SEND_FAILED', `send failed: ${err.message}`, { cause: err });
  }

  #armExpiry(at: number): void {
    this.#disarmExpiry();
    const clock = this.#host.clock;
    this.#expiryAt = at;
    this.#expiryTimer = clock.setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryAt = Infinity;
      const queue = this.#queue;
      if (queue === undefined) return;
      for (const p of queue.expire(clock.now())) p.settle({ kind: 'expired', error: expiredError(p) });
      const next = queue.nextDeadline();
      if (next !== Infinity) this.#armExpiry(next);
    }, Math.max(0, at - clock.now()) + 1);
  }

  #disarmExpiry(): void {
    if (this.#expiryTimer !== undefined) this.#host.clock.clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryAt = Infinity;
  }
}

function byteLength(pieces: readonly Uint8Array[]): number {
  let n = 0;
  for (const piece of pieces) n += piece.byteLength;
  return n;
}

function expiredError(p: PendingSend): TapsError {
  return new TapsError('ERR_TAPS_TIMEOUT', `message expired: msgLifetime ${p.context.msgLifetime} ms passed before it could be sent`);
}
