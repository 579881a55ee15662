/**
 * Connection: the one object an application uses, whatever stack won
 * (RFC 9622 §8–§10). It wraps a driver's TransportChannel with message
 * framing, the send queue, message properties, receive backpressure,
 * connection properties, groups and the tenant's quota lease.
 *
 * The state machine (RFC 9622 §11), drawn once:
 *
 * ```
 *   establishing ──ready──▶ established ──close()──▶ closing ──both sides done──▶ closed
 *        │                       │                      │                            ▲
 *        │                       └── abort() / error / policy revoked ───────────────┤
 *        └── every candidate failed: initiate() rejects, no Connection exists ───────┘
 * ```
 *
 * `initiate()` resolves only once a candidate is ready, so an application
 * sees a Connection in `established` first. Each `send()` ends in exactly
 * one of `sent`, `expired` or `sendError` (event and promise alike); the
 * promise never goes unhandled. Messages are read with `for await`,
 * `receive()`, or the `received` event (attaching a `received` listener stops
 * queueing for `receive()`). Events never throw for lack of a listener.
 *
 * @example
 * await using conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
 * await conn.send('hello', { msgLifetime: 200 });
 * for await (const msg of conn) console.log(msg.text());
 */
import { systemClock, type Clock } from '../clock.js';
import type { ChannelReceiveMeta, ChannelSendMeta, Driver, SocketAddress, TransportChannel } from '../driver.js';
import type { LocalEndpoint, RemoteEndpoint } from '../endpoints.js';
import { PolicyDeniedError, SendError, TapsError, toTapsError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { Deframer, MessageFramer } from '../framers/index.js';
import { checkMessageContext, Message, type MessageContextInit } from '../message.js';
import type { CheckedTarget, Lease } from '../policy/chokepoint.js';
import { readBack, type SelectionReadback, type TransportProperties } from '../properties.js';
import type { SelectionReport } from '../report.js';
import { provided } from '../selection/suitability.js';
import { ConnectionGroup } from './group.js';
import { DEFAULT_INBOX_LIMITS, Inbox, type InboxLimits } from './inbox.js';
import { PendingSend, SendQueue, type Outcome } from './pending.js';
import {
  canonicalName, checkValue, CONNECTION_DEFAULTS, isReadOnly, notApplicable, READ_ONLY,
  type ConnState, type SettableConnectionProperties,
} from './properties.js';

export type { ConnState } from './properties.js';

export type ConnectionEvents = {
  /** RFC 9622 §9.2.2.1: handed to the transport. */
  sent: [context: MessageContextInit];
  /** §9.2.2.2: its lifetime passed before it could be sent. */
  expired: [context: MessageContextInit, error: TapsError];
  /** §9.2.2.3 */
  sendError: [context: MessageContextInit, error: TapsError];
  /** §9.3.2.1 */
  received: [message: Message];
  /** The peer will send nothing more (its final message, FIN). */
  receivedEnd: [];
  /** §8.3.1 */
  softError: [error: TapsError];
  /** §10: the connection failed (then `closed` follows). */
  connectionError: [error: TapsError];
  closed: [];
  /** A multistreaming peer opened a stream in this connection's group (§7.4). */
  connectionReceived: [connection: Connection];
  /** The send queue emptied after the channel pushed back. */
  drain: [];
};

export interface ConnectionInit {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly properties: TransportProperties;
  readonly framers: readonly MessageFramer[];
  readonly report: SelectionReport;
  readonly lease: Lease;
  /** The checked target the winning candidate connected to (for hot-reload revocation). */
  readonly target?: CheckedTarget | undefined;
  readonly remoteEndpoint?: RemoteEndpoint | undefined;
  readonly localEndpoint?: LocalEndpoint | undefined;
  readonly connectionProperties?: Readonly<Record<string, unknown>> | undefined;
  /** How to make a new connection like this one when the stack has no streams to open. */
  readonly clone?: (() => Promise<Connection>) | undefined;
  readonly clock?: Clock | undefined;
  readonly inbox?: Partial<InboxLimits> | undefined;
  /** Internal: join this group instead of starting one. */
  readonly group?: ConnectionGroup<Connection> | undefined;
}

const encoder = new TextEncoder();
const NO_CONTEXT: MessageContextInit = Object.freeze({});
const NO_META: ChannelSendMeta = Object.freeze({});
const noop = (): void => {};

export class Connection extends TypedEmitter<ConnectionEvents> implements AsyncIterable<Message>, AsyncDisposable {
  /** Why this stack was chosen, and what became of every other candidate. */
  readonly report: SelectionReport;
  readonly driver: Driver;
  readonly remoteEndpoint: RemoteEndpoint | undefined;
  readonly localEndpoint: LocalEndpoint | undefined;
  readonly #channel: TransportChannel;
  readonly #init: ConnectionInit;
  readonly #framer: MessageFramer | undefined;
  readonly #deframer: Deframer | undefined;
  readonly #clock: Clock;
  readonly #lease: Lease;
  readonly #group: ConnectionGroup<Connection>;
  readonly #queue = new SendQueue();
  readonly #inbox: Inbox;
  readonly #props: SettableConnectionProperties;
  readonly #needsReplayable: boolean;
  #state: ConnState = 'established';
  #blocked = false;
  #finalQueued = false;
  #peerEnded = false;
  #seq = 0;
  #inFlight = 0;
  #expiryTimer: unknown;
  #expiryAt = Infinity;
  #idleTimer: unknown;
  #closing: Promise<void> | undefined;
  #closedWaiters: (() => void)[] = [];
  #error: TapsError | undefined;
  #partial: Uint8Array[] = [];
  readonly #emitMessage: (data: Uint8Array) => void;

  constructor(init: ConnectionInit) {
    super();
    this.#init = init;
    this.#channel = init.channel;
    this.driver = init.driver;
    this.report = init.report;
    this.remoteEndpoint = init.remoteEndpoint;
    this.localEndpoint = init.localEndpoint;
    this.#clock = init.clock ?? systemClock;
    this.#framer = init.driver.framing === 'stream' ? init.framers[0] : undefined;
    this.#deframer = this.#framer?.createDeframer();
    this.#needsReplayable = !init.driver.capabilities.reliable && init.driver.framing === 'message';
    this.#group = init.group ?? new ConnectionGroup<Connection>(init.lease);
    this.#lease = this.#group.join(this);
    this.#props = { ...CONNECTION_DEFAULTS };
    this.#inbox = new Inbox({ ...DEFAULT_INBOX_LIMITS, ...init.inbox }, () => this.#channel.pause(), () => this.#channel.resume());
    this.#emitMessage = (data) => this.#deliver(new Message(data));
    if (init.target !== undefined && init.group === undefined) init.lease.bind?.(init.target);
    init.lease.onRevoke?.((decision) => this.abort(new PolicyDeniedError(decision, `the tenant's policy no longer allows this connection: ${decision.reason}`)));
    for (const [name, value] of Object.entries(init.connectionProperties ?? {})) this.setProperty(name, value);
    this.#channel.start({
      data: (chunk, meta) => this.#onData(chunk, meta),
      end: () => this.#onEnd(),
      drain: () => this.#onDrain(),
      closed: (error) => this.#finish(error === undefined ? undefined : toTapsError(error, 'ERR_TAPS_CONNECTION_RESET')),
      stream: (channel) => this.#onPeerStream(channel),
      softError: (error) => this.emit('softError', toTapsError(error, 'ERR_TAPS_PROTOCOL_FAILED')),
    });
  }

  // ── identity ────────────────────────────────────────────────────────────

  get state(): ConnState {
    return this.#state;
  }
  /** The protocol stack that won, top first (e.g. `['tls', 'tcp']`). */
  get stack(): readonly string[] {
    return this.driver.stack;
  }
  get remote(): SocketAddress {
    return this.#channel.remote;
  }
  get local(): SocketAddress {
    return this.#channel.local;
  }
  /** Facts the stack reported (ALPN, TLS version, HTTP version …). */
  get info(): Readonly<Record<string, unknown>> {
    return this.#channel.info;
  }
  /** The selection properties read back: which of them the chosen stack actually provides (RFC 9622 §8.1.11). */
  get transportProperties(): SelectionReadback {
    return readBack(this.#init.properties, provided(this.driver, this.#init.framers.length));
  }

  // ── sending (RFC 9622 §9.2) ────────────────────────────────────────────

  /**
   * Send one message. Resolves when it is handed to the transport (`sent`);
   * rejects with the TapsError of `expired` or `sendError`. Bad arguments
   * throw at once.
   */
  send(data: Uint8Array | string, context?: MessageContextInit): Promise<void> {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    if (!(bytes instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array or a string');
    let ctx = NO_CONTEXT;
    if (context !== undefined) {
      checkMessageContext(context);
      ctx = context;
    }
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(noop); // the failure is also an event; an unawaited send never becomes an unhandled rejection
    const p = new PendingSend(bytes, ctx, ctx.msgLifetime === undefined ? 0 : this.#clock.now(), this.#seq++, (_p, outcome) => {
      this.#report(ctx, outcome);
      if (outcome.kind === 'sent') resolve();
      else reject(outcome.error);
    });
    const problem = this.#refuse(bytes, ctx);
    if (problem !== undefined) {
      p.settle({ kind: 'sendError', error: problem });
      return promise;
    }
    if (ctx.final === true) this.#finalQueued = true;
    if (!this.#blocked && this.#queue.size === 0) this.#write(p);
    else this.#enqueue(p);
    return promise;
  }

  /** Why this message cannot be sent at all (checked before it is queued). */
  #refuse(bytes: Uint8Array, ctx: MessageContextInit): SendError | undefined {
    if (this.#state !== 'established') return new SendError('ERR_TAPS_INVALID_STATE', `cannot send: the connection is ${this.#state}`);
    if (this.#finalQueued) return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send after a message marked final');
    if (this.#init.properties.get('direction') === 'unidirectional-receive') return new SendError('ERR_TAPS_INVALID_STATE', 'cannot send: direction is unidirectional-receive');
    const max = this.sendMsgMaxLen;
    if (bytes.byteLength > max) return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${bytes.byteLength} bytes exceeds sendMsgMaxLen ${max} of ${this.driver.id}`);
    if (ctx === NO_CONTEXT) return undefined;
    if (this.#needsReplayable && ctx.safelyReplayable === false) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `${this.driver.id} may duplicate messages: a message marked safelyReplayable false cannot be sent on it (RFC 9622 §9.1.3.4)`);
    }
    const caps = this.driver.capabilities;
    if (ctx.msgReliable === true && !caps.reliable && !caps.perMsgReliability) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `msgReliable requested but ${this.driver.id} can send only unreliably (RFC 9622 §9.1.3.7)`);
    }
    if (ctx.msgOrdered === true && !caps.ordered) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `msgOrdered requested but ${this.driver.id} does not preserve order (RFC 9622 §9.1.3.3)`);
    }
    const single = this.#channel.singularTransmissionMsgMaxLen;
    if ((ctx.noFragmentation === true || ctx.noSegmentation === true) && single !== undefined && bytes.byteLength > single) {
      return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${bytes.byteLength} bytes cannot go in one packet (singularTransmissionMsgMaxLen ${single})`);
    }
    if (ctx.fields !== undefined && this.driver.framing === 'stream') {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', `${this.driver.id} carries no protocol fields`);
    }
    return undefined;
  }

  #enqueue(p: PendingSend): void {
    this.#queue.push(p);
    if (p.deadline < this.#expiryAt) this.#armExpiry(p.deadline);
  }

  /** Hand one message to the channel; its outcome arrives in the channel's callback. */
  #write(p: PendingSend): void {
    if (p.deadline !== Infinity && p.deadline < this.#clock.now()) {
      p.settle({ kind: 'expired', error: expiredError(p) });
      return;
    }
    const ctx = p.context;
    let pieces: Uint8Array | readonly Uint8Array[];
    try {
      pieces = this.#framer ? this.#framer.frame(p.data) : p.data;
      this.#lease.sent(p.data.byteLength);
    } catch (err) {
      p.settle({ kind: 'sendError', error: toTapsError(err, 'ERR_TAPS_SEND_FAILED') });
      return;
    }
    const meta: ChannelSendMeta =
      ctx === NO_CONTEXT ? NO_META : { final: ctx.final, reliable: ctx.msgReliable, priority: ctx.msgPriority, fields: ctx.fields };
    this.#inFlight++;
    const done = (err?: Error): void => {
      this.#inFlight--;
      if (err) p.settle({ kind: 'sendError', error: new SendError('ERR_TAPS_SEND_FAILED', `send failed: ${err.message}`, { cause: err }) });
      else p.settle({ kind: 'sent' });
      if (this.#inFlight === 0 && this.#closedWaiters.length > 0 && this.#queue.size === 0) this.#flushed();
    };
    let ok: boolean;
    if (pieces instanceof Uint8Array) ok = this.#channel.send(pieces, meta, done);
    else {
      let left = pieces.length;
      let failed: Error | undefined;
      const each = (err?: Error): void => {
        failed ??= err;
        if (--left === 0) done(failed);
      };
      ok = true;
      for (let i = 0; i < pieces.length; i++) {
        const last = i === pieces.length - 1;
        ok = this.#channel.send(pieces[i]!, last ? meta : NO_META, each);
      }
    }
    if (!ok) this.#blocked = true;
  }

  #onDrain(): void {
    this.#blocked = false;
    this.#pump();
    if (!this.#blocked && this.#queue.size === 0) this.emit('drain');
  }

  #pump(): void {
    while (!this.#blocked && this.#state !== 'closed') {
      const p = this.#queue.shift();
      if (p === undefined) break;
      this.#write(p);
    }
    if (this.#queue.size === 0) this.#disarmExpiry();
    if (this.#queue.size === 0 && this.#inFlight === 0 && this.#closedWaiters.length > 0) this.#flushed();
  }

  #armExpiry(at: number): void {
    this.#disarmExpiry();
    this.#expiryAt = at;
    this.#expiryTimer = this.#clock.setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryAt = Infinity;
      for (const p of this.#queue.expire(this.#clock.now())) p.settle({ kind: 'expired', error: expiredError(p) });
      const next = this.#queue.nextDeadline();
      if (next !== Infinity) this.#armExpiry(next);
      if (this.#queue.size === 0 && this.#inFlight === 0 && this.#closedWaiters.length > 0) this.#flushed();
    }, Math.max(0, at - this.#clock.now()) + 1);
  }

  #disarmExpiry(): void {
    if (this.#expiryTimer !== undefined) this.#clock.clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryAt = Infinity;
  }

  #report(ctx: MessageContextInit, outcome: Outcome): void {
    if (outcome.kind === 'sent') this.emit('sent', ctx);
    else this.emit(outcome.kind, ctx, outcome.error as TapsError);
  }

  // ── receiving (RFC 9622 §9.3) ──────────────────────────────────────────

  #onData(chunk: Uint8Array, meta?: ChannelReceiveMeta): void {
    if (this.#state === 'closed') return;
    try {
      this.#lease.received(chunk.byteLength);
    } catch (err) {
      this.abort(toTapsError(err, 'ERR_TAPS_QUOTA_EXCEEDED'));
      return;
    }
    if (this.#idleTimer !== undefined) this.#armIdle();
    if (this.#deframer !== undefined) {
      try {
        this.#deframer.push(chunk, this.#emitMessage);
      } catch (err) {
        this.abort(toTapsError(err, 'ERR_TAPS_DEFRAMING_FAILED'));
      }
      return;
    }
    if (meta?.complete === false) {
      this.#partial.push(chunk);
      return;
    }
    if (this.#partial.length > 0) {
      this.#partial.push(chunk);
      chunk = Buffer.concat(this.#partial);
      this.#partial = [];
    }
    this.#deliver(meta?.fields ? new Message(chunk, { final: false, fields: meta.fields }) : new Message(chunk));
  }

  #deliver(msg: Message): void {
    if (this.listenerCount('received') > 0) {
      if (this.#inbox.hasWaiter) this.#inbox.put(msg);
      this.emit('received', msg);
    } else this.#inbox.put(msg);
  }

  #onEnd(): void {
    if (this.#peerEnded) return;
    this.#peerEnded = true;
    if (this.#deframer !== undefined) {
      try {
        this.#deframer.end();
      } catch (err) {
        this.abort(toTapsError(err, 'ERR_TAPS_DEFRAMING_FAILED'));
        return;
      }
    }
    this.#inbox.end();
    this.emit('receivedEnd');
  }

  /** The next message; rejects when the connection failed or the peer has finished sending. */
  async receive(options: { signal?: AbortSignal } = {}): Promise<Message> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const msg = await this.#inbox.next(options.signal);
    if (msg === undefined) throw new TapsError('ERR_TAPS_INVALID_STATE', 'no more messages: the peer has finished sending');
    return msg;
  }

  /** `for await (const msg of conn)`: ends when the peer finishes; throws the connection's error. Leaving the loop does not close the connection. */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: async () => {
        const msg = await this.#inbox.next();
        return msg === undefined ? { value: undefined, done: true } : { value: msg, done: false };
      },
    };
  }

  // ── closing (RFC 9622 §10) ─────────────────────────────────────────────

  /** Graceful: send what is queued, signal the end, wait for the peer. Resolves when closed; rejects if it failed meanwhile. */
  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    this.#closing ??= this.#gracefulClose();
    return this.#closing;
  }

  async #gracefulClose(): Promise<void> {
    this.#state = 'closing';
    if (this.#queue.size > 0 || this.#inFlight > 0) await new Promise<void>((resolve) => this.#closedWaiters.push(() => resolve()));
    if (this.state === 'closed') {
      if (this.#error) throw this.#error;
      return;
    }
    try {
      await this.#channel.close();
    } catch (err) {
      this.#finish(toTapsError(err, 'ERR_TAPS_CONNECTION_RESET'));
    }
    this.#finish(undefined);
    if (this.#error) throw this.#error;
  }

  #flushed(): void {
    for (const w of this.#closedWaiters.splice(0)) w();
  }

  /** Immediate: drop what is queued, tear the channel down. With a reason, it is reported as `connectionError`. */
  abort(reason?: Error): void {
    if (this.#state === 'closed') return;
    const err = reason === undefined ? undefined : toTapsError(reason, 'ERR_TAPS_CONNECTION_ABORTED');
    this.#finish(err, true);
    this.#channel.abort(err ?? new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'aborted by the application'));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      /* already reported as connectionError */
    }
  }

  /** Enter `closed` once: settle everything outstanding, release every timer and the lease. */
  #finish(error: TapsError | undefined, local = false): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#error = error;
    this.#disarmExpiry();
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const why = error ?? new TapsError('ERR_TAPS_CONNECTION_ABORTED', local ? 'the connection was aborted' : 'the connection closed');
    for (const p of this.#queue.drainAll()) {
      p.settle({ kind: 'sendError', error: new SendError('ERR_TAPS_CONNECTION_ABORTED', `not sent: ${why.message}`, { cause: why }) });
    }
    this.#inbox.end(error); // a plain abort() ends iteration quietly: the application asked for it
    this.#lease.release();
    this.#flushed();
    if (error) this.emit('connectionError', error);
    this.emit('closed');
  }

  // ── properties (RFC 9622 §8.1) ─────────────────────────────────────────

  get canSend(): boolean {
    return this.#state === 'established' && !this.#finalQueued && this.#init.properties.get('direction') !== 'unidirectional-receive';
  }
  get canReceive(): boolean {
    return this.#state !== 'closed' && !this.#peerEnded && this.#init.properties.get('direction') !== 'unidirectional-send';
  }
  get sendMsgMaxLen(): number {
    return Math.min(this.#channel.maxMessageSize, this.#framer?.maxMessageSize ?? Infinity);
  }
  get recvMsgMaxLen(): number {
    return this.sendMsgMaxLen;
  }

  getProperty(name: string): unknown {
    const n = canonicalName(name);
    switch (n) {
      case 'connState':
        return this.#state;
      case 'canSend':
        return this.canSend;
      case 'canReceive':
        return this.canReceive;
      case 'sendMsgMaxLen':
        return this.sendMsgMaxLen;
      case 'recvMsgMaxLen':
        return this.recvMsgMaxLen;
      case 'singularTransmissionMsgMaxLen': {
        const v = this.#channel.singularTransmissionMsgMaxLen;
        if (v === undefined) throw notApplicable(n, `${this.driver.id} does not know its packet size`);
        return v;
      }
      case 'zeroRttMsgMaxLen':
        return this.driver.capabilities.zeroRtt ? this.sendMsgMaxLen : 0;
      default:
        if (n.includes('.')) throw notApplicable(n, `read it from the stack's info instead (${this.driver.id})`);
        return this.#props[n as keyof SettableConnectionProperties];
    }
  }

  /** Every connection property, read-only ones included. */
  get properties(): Readonly<Record<string, unknown>> {
    const out: Record<string, unknown> = { ...this.#props };
    for (const n of READ_ONLY) {
      try {
        out[n] = this.getProperty(n);
      } catch {
        /* not applicable here */
      }
    }
    return out;
  }

  /** Set a connection property. Throws ERR_TAPS_PROPERTY_NOT_APPLICABLE (connection stays open) when the stack cannot honour it. */
  setProperty(name: string, value: unknown): void {
    const n = canonicalName(name);
    if (isReadOnly(n)) throw new TypeError(`${n} is read-only (RFC 9622 §8.1.11)`);
    if (n.includes('.')) {
      if (!this.#channel.setOption) throw notApplicable(n, `${this.driver.id} has no protocol-specific settings`);
      this.#channel.setOption(n, value);
      return;
    }
    const key = n as keyof SettableConnectionProperties;
    checkValue(key, value);
    switch (key) {
      case 'keepAliveTimeout':
        if (value === Infinity && !this.#channel.setOption) break; // disabled: true of every stack
        if (!this.driver.capabilities.keepAlive || !this.#channel.setOption) throw notApplicable(n, `${this.driver.id} cannot send keep-alives`);
        this.#channel.setOption('keepAliveTimeout', value);
        break;
      case 'minSendRate':
      case 'minRecvRate':
      case 'maxSendRate':
      case 'maxRecvRate':
        if (value !== Infinity) throw notApplicable(n, `${this.driver.id} does not pace or guarantee rates`);
        break;
      case 'connPriority':
        this.#channel.setOption?.('connPriority', value);
        break;
      case 'connTimeout':
        (this.#props as unknown as Record<string, unknown>)[key] = value;
        if (value === Infinity) {
          if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
          this.#idleTimer = undefined;
        } else this.#armIdle();
        return;
      default:
        break;
    }
    (this.#props as unknown as Record<string, unknown>)[key] = value;
  }

  /** connTimeout (§8.1.3): abort when nothing has arrived for that long. */
  #armIdle(): void {
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    if (this.#state === 'closed') return;
    const ms = this.#props.connTimeout;
    this.#idleTimer = this.#clock.setTimeout(() => {
      this.#idleTimer = undefined;
      this.abort(new TapsError('ERR_TAPS_TIMEOUT', `nothing received for ${ms} ms (connTimeout)`));
    }, ms);
  }

  // ── groups (RFC 9622 §7.4) ─────────────────────────────────────────────

  /**
   * Another connection in this group: a new stream of the same connection on
   * multistreaming stacks (QUIC, WebTransport, HTTP/2), otherwise a new
   * connection made the same way. Rejects with ERR_TAPS_NOT_CLONEABLE when
   * neither is possible (an accepted connection on a single-stream stack).
   */
  async clone(): Promise<Connection> {
    if (this.#state !== 'established') throw new TapsError('ERR_TAPS_INVALID_STATE', `cannot clone: the connection is ${this.#state}`);
    if (this.#group.members.size >= this.#props.groupConnLimit) {
      throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `the group already has groupConnLimit ${this.#props.groupConnLimit} connections`);
    }
    if (this.#channel.openStream) {
      const channel = await this.#channel.openStream();
      return this.#member(channel);
    }
    if (this.#init.clone) {
      const conn = await this.#init.clone();
      return conn;
    }
    throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `${this.driver.id} has no streams to open and this connection was accepted, not initiated`);
  }

  /** Every open connection in this one's group, itself included. */
  groupedConnections(): readonly Connection[] {
    return [...this.#group.members];
  }

  async closeGroup(): Promise<void> {
    await this.#group.closeAll();
  }

  abortGroup(reason?: Error): void {
    this.#group.abortAll(reason);
  }

  #member(channel: TransportChannel): Connection {
    const changed = Object.fromEntries(Object.entries(this.#props).filter(([k, v]) => CONNECTION_DEFAULTS[k as keyof SettableConnectionProperties] !== v));
    return new Connection({ ...this.#init, channel, group: this.#group, connectionProperties: changed, target: undefined });
  }

  #onPeerStream(channel: TransportChannel): void {
    if (this.#state === 'closed') {
      channel.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the connection closed'));
      return;
    }
    const conn = this.#member(channel);
    if (!this.emit('connectionReceived', conn)) {
      conn.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer opened a stream and nobody listens for connectionReceived'));
    }
  }
}

function expiredError(p: PendingSend): TapsError {
  return new TapsError('ERR_TAPS_TIMEOUT', `message expired: msgLifetime ${p.context.msgLifetime} ms passed before it could be sent`);
}
