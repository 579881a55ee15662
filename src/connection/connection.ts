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
 * promise never goes unhandled. The send path lives in sender.ts; while the
 * transport pushes back, `sendBlocked` is true until `drain`. Messages are
 * read with `for await`, `receive()`, or the `received` event (attaching a
 * `received` listener stops queueing for `receive()`). Events never throw
 * for lack of a listener.
 *
 * @example
 * await using conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
 * await conn.send('hello', { msgLifetime: 200 });
 * for await (const msg of conn) console.log(msg.text());
 */
import { debuglog } from 'node:util';
import { systemClock, type Clock } from '../clock.js';
import type { ChannelReceiveMeta, ChannelReceiver, Driver, SocketAddress, TransportChannel } from '../driver.js';
import type { LocalEndpoint, RemoteEndpoint } from '../endpoints.js';
import { PolicyDeniedError, TapsError, toTapsError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { Deframer, MessageFramer } from '../framers/index.js';
import { checkMessageContext, Message, type MessageContextInit } from '../message.js';
import type { CheckedTarget, Lease } from '../policy/chokepoint.js';
import { readBack, type SelectionReadback, type TransportProperties } from '../properties.js';
import type { SelectionReport } from '../report.js';
import { provided } from '../selection/suitability.js';
import { systemPathMonitor, type PathChange, type PathMonitor } from '../paths/monitor.js';
import { PathWatch } from '../paths/watch.js';
import { ConnectionGroup } from './group.js';
import { DEFAULT_INBOX_LIMITS, Inbox, type InboxLimits } from './inbox.js';
import type { Outcome, PendingSend } from './pending.js';
import { NO_CONTEXT, Sender, type SenderHost } from './sender.js';
import {
  canonicalName, checkValue, CONNECTION_DEFAULTS, isReadOnly, notApplicable, READ_ONLY,
  type ConnState, type SettableConnectionProperties,
} from './properties.js';

export type { ConnState } from './properties.js';

/** The events a {@link Connection} emits, named as in RFC 9622 §8–§10; listeners never throw for lack of a listener. */
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
  /** §8.3.1; also the path under the connection died (ERR_TAPS_PATH_UNAVAILABLE, after `pathChange`). */
  softError: [error: TapsError];
  /** §8.3.2: the local address went away, came back or moved to another interface. The connection stays open. */
  pathChange: [change: PathChange];
  /** §10: the connection failed (then `closed` follows). */
  connectionError: [error: TapsError];
  closed: [];
  /** A multistreaming peer opened a stream in this connection's group (§7.4). */
  connectionReceived: [connection: Connection];
  /** The send queue emptied after the channel pushed back. */
  drain: [];
};

/** @internal What `Preconnection.initiate()` and `Listener` build a {@link Connection} from; applications never make one. */
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
  /** Watches the local address while someone listens for `pathChange`/`softError` (default: the system's). */
  readonly paths?: PathMonitor | undefined;
  readonly inbox?: Partial<InboxLimits> | undefined;
  /** Internal: join this group instead of starting one. */
  readonly group?: ConnectionGroup<Connection> | undefined;
}

const debug = debuglog('taps');
const encoder = new TextEncoder();

/** An established connection, whatever stack won: send, receive, properties, groups and close (RFC 9622 §8–§10). See the module comment for the state machine. */
export class Connection extends TypedEmitter<ConnectionEvents> implements AsyncIterable<Message>, AsyncDisposable {
  /** Why this stack was chosen, and what became of every other candidate. */
  readonly report: SelectionReport;
  readonly driver: Driver;
  readonly #channel: TransportChannel;
  readonly #init: ConnectionInit;
  readonly #framer: MessageFramer | undefined;
  readonly #deframer: Deframer | undefined;
  readonly #clock: Clock;
  /** The quota lease this connection's bytes count against: its own, or its group's shared one. */
  readonly #lease: Lease;
  /** Made on first need (clone, peer stream, groupedConnections): most connections never have one. */
  #group: ConnectionGroup<Connection> | undefined;
  /** The group whose lease this connection holds a share of (a stream), instead of a lease of its own. */
  #shareOf: ConnectionGroup<Connection> | undefined;
  /** The channel's receiver and the sender's host (see Link below). */
  readonly #link: ChannelReceiver & SenderHost;
  /** Made by the first send (an idle connection has none). */
  #sender: Sender | undefined;
  /** Made when a message must wait or a reader asks (most connections deliver through `received`). */
  #inbox: Inbox | undefined;
  /** The shared frozen defaults until the first setProperty() copies them (most connections never set one). */
  #props: Readonly<SettableConnectionProperties>;
  /** direction is unidirectional-receive (read once: the properties are a snapshot). */
  readonly #receiveOnly: boolean;
  #state: ConnState = 'established';
  #peerEnded = false;
  #idleTimer: unknown;
  #closing: Promise<void> | undefined;
  #error: TapsError | undefined;
  /** Pieces of a message the channel delivers in parts (made on the first one). */
  #partial: Uint8Array[] | undefined;
  /** The deframer's message callback (made with the deframer). */
  readonly #emitMessage: ((data: Uint8Array) => void) | undefined;
  /** Made when the first `pathChange`/`softError` listener is added. */
  #path: PathWatch | undefined;

  constructor(init: ConnectionInit) {
    super();
    this.#init = init;
    this.#channel = init.channel;
    this.driver = init.driver;
    this.report = init.report;
    this.#clock = init.clock ?? systemClock;
    this.#framer = init.driver.framing === 'stream' ? init.framers[0] : undefined;
    this.#deframer = this.#framer?.createDeframer();
    this.#emitMessage = this.#deframer === undefined ? undefined : (data) => this.#deliver(new Message(data));
    this.#receiveOnly = init.properties.get('direction') === 'unidirectional-receive';
    this.#group = init.group;
    this.#shareOf = init.group;
    init.group?.join(this);
    this.#lease = init.group?.lease ?? init.lease;
    this.#props = CONNECTION_DEFAULTS;
    // One object is both the channel's receiver and the sender's host (no closure per callback: issue 7).
    const link = new Connection.#Link(this);
    this.#link = link;
    if (init.target !== undefined && init.group === undefined) init.lease.bind?.(init.target);
    init.lease.onRevoke?.((decision) => this.abort(new PolicyDeniedError(decision, `the tenant's policy no longer allows this connection: ${decision.reason}`)));
    const preset = init.connectionProperties;
    if (preset !== undefined) for (const name in preset) this.#set(name, preset[name], false);
    this.#channel.start(link);
  }

  /** The connection as its channel (ChannelReceiver) and its Sender (SenderHost) see it. */
  static readonly #Link = class Link implements ChannelReceiver, SenderHost {
    readonly #conn: Connection;

    constructor(conn: Connection) {
      this.#conn = conn;
    }

    // SenderHost
    get channel(): TransportChannel {
      return this.#conn.#channel;
    }
    get driver(): Driver {
      return this.#conn.driver;
    }
    get framer(): MessageFramer | undefined {
      return this.#conn.#framer;
    }
    get lease(): Lease {
      return this.#conn.#lease;
    }
    get clock(): Clock {
      return this.#conn.#clock;
    }
    get receiveOnly(): boolean {
      return this.#conn.#receiveOnly;
    }
    state(): ConnState {
      return this.#conn.#state;
    }
    error(): TapsError | undefined {
      return this.#conn.#error;
    }
    outcome(p: PendingSend, outcome: Outcome): void {
      // RFC 9622 §9.2.2: the event for a send's outcome; PendingSend then settles its promise.
      if (outcome.kind === 'sent') this.#conn.emit('sent', p.context);
      else this.#conn.emit(outcome.kind, p.context, outcome.error as TapsError);
    }
    drained(): void {
      this.#conn.emit('drain');
    }

    // ChannelReceiver
    data(chunk: Uint8Array, meta?: ChannelReceiveMeta): void {
      this.#conn.#onData(chunk, meta);
    }
    end(): void {
      this.#conn.#onEnd();
    }
    drain(): void {
      this.#conn.#sender?.drain(); // no sender: nothing of ours was pushed back
    }
    closed(error?: Error): void {
      this.#conn.#finish(error === undefined ? undefined : toTapsError(error, 'ERR_TAPS_CONNECTION_RESET'));
    }
    stream(channel: TransportChannel): void {
      this.#conn.#onPeerStream(channel);
    }
    softError(error: Error): void {
      this.#conn.emit('softError', toTapsError(error, 'ERR_TAPS_PROTOCOL_FAILED'));
    }
  };

  // ── identity ────────────────────────────────────────────────────────────

  /** The remote endpoint the connection was made with, as given (not the resolved address: see `remote`). */
  get remoteEndpoint(): RemoteEndpoint | undefined {
    return this.#init.remoteEndpoint;
  }
  /** The local endpoint the connection was made with, when one was given. */
  get localEndpoint(): LocalEndpoint | undefined {
    return this.#init.localEndpoint;
  }

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
    return (this.#sender ??= new Sender(this.#link)).send(bytes, ctx);
  }

  /**
   * Send backpressure: true while the transport is pushing back, so further
   * sends wait in this connection's queue. Wait for the `drain` event before
   * sending more when it matters how much is queued.
   *
   * @example
   * for (const m of messages) {
   *   void conn.send(m);
   *   if (conn.sendBlocked) await new Promise((r) => conn.once('drain', r));
   * }
   */
  get sendBlocked(): boolean {
    return this.#sender?.blocked ?? false;
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
        this.#deframer.push(chunk, this.#emitMessage!);
      } catch (err) {
        this.abort(toTapsError(err, 'ERR_TAPS_DEFRAMING_FAILED'));
      }
      return;
    }
    if (meta?.complete === false) {
      (this.#partial ??= []).push(chunk);
      return;
    }
    if (this.#partial !== undefined) {
      this.#partial.push(chunk);
      chunk = Buffer.concat(this.#partial);
      this.#partial = undefined;
    }
    this.#deliver(meta?.fields ? new Message(chunk, { final: false, fields: meta.fields }) : new Message(chunk));
  }

  #deliver(msg: Message): void {
    if (this.listenerCount('received') > 0) {
      if (this.#inbox?.hasWaiter) this.#inbox.put(msg);
      this.emit('received', msg);
    } else this.#queue().put(msg);
  }

  /** The receive queue, made now if there was none, in the state the connection is in. */
  #queue(): Inbox {
    let inbox = this.#inbox;
    if (inbox === undefined) {
      const limits = this.#init.inbox ? { ...DEFAULT_INBOX_LIMITS, ...this.#init.inbox } : DEFAULT_INBOX_LIMITS;
      inbox = this.#inbox = new Inbox(limits, this.#channel);
      if (this.#state === 'closed') inbox.end(this.#error);
      else if (this.#peerEnded) inbox.end();
    }
    return inbox;
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
    this.#inbox?.end();
    this.emit('receivedEnd');
  }

  /**
   * The next message; rejects when the connection failed, was aborted, or the
   * peer has finished sending. A bad `options` argument throws at once.
   */
  receive(options: { signal?: AbortSignal } = {}): Promise<Message> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
    return this.#queue().next(options.signal).then((msg) => {
      if (msg !== undefined) return msg;
      throw new TapsError('ERR_TAPS_INVALID_STATE', this.#peerEnded ? 'no more messages: the peer has finished sending' : `no more messages: the connection is ${this.#state}`);
    });
  }

  /** `for await (const msg of conn)`: ends when the peer finishes; throws the connection's error. Leaving the loop does not close the connection. */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return {
      next: async () => {
        const msg = await this.#queue().next();
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
    // Hand the channel everything still queued, whatever its backpressure: its close() flushes it, bounded by the
    // stack's own close timeout, so a peer that never reads cannot hold close() open forever (issue 7).
    this.#sender?.flush();
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

  /**
   * Immediate: drop what is queued, tear the channel down. RFC 9622 §10: a
   * local Abort is reported as a `connectionError` (ERR_TAPS_CONNECTION_ABORTED,
   * or `reason` when given). Without a reason, readers end quietly (the
   * application asked for it); with one, they reject with it.
   */
  abort(reason?: Error): void {
    if (this.#state === 'closed') return;
    const err = reason === undefined ? undefined : toTapsError(reason, 'ERR_TAPS_CONNECTION_ABORTED');
    this.#finish(err, true);
    this.#channel.abort(err);
  }

  /** `await using`: a graceful close whose failure is already reported as `connectionError`. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      /* already reported as connectionError */
    }
  }

  override on<K extends keyof ConnectionEvents & string>(event: K, listener: (...args: ConnectionEvents[K]) => void): this {
    super.on(event, listener);
    if (event === 'pathChange' || event === 'softError') this.#watchPath();
    return this;
  }

  override off<K extends keyof ConnectionEvents & string>(event: K, listener: (...args: ConnectionEvents[K]) => void): this {
    super.off(event, listener);
    if (event === 'pathChange' || event === 'softError') this.#watchPath();
    return this;
  }

  /** The path monitor watches the local address while the connection is open and someone listens (RFC 9622 §8.3.2). */
  #watchPath(): void {
    const wanted = this.#state !== 'closed' && this.listenerCount('pathChange') + this.listenerCount('softError') > 0;
    if (!wanted && this.#path === undefined) return;
    this.#path ??= new PathWatch(this.#init.paths ?? systemPathMonitor, () => [this.#channel.local.address], (change) => {
      this.emit('pathChange', change);
      if (!change.available) this.emit('softError', new TapsError('ERR_TAPS_PATH_UNAVAILABLE', `the path of this connection died: ${change.reason}`));
    });
    this.#path.want(wanted);
  }

  /** Enter `closed` once: settle everything outstanding, release every timer and the lease. */
  #finish(error: TapsError | undefined, local = false): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#error = error;
    this.#path?.want(false);
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    // Made only when someone will see it (an Error's stack costs microseconds).
    let why = error;
    const reason = (): TapsError => (why ??= new TapsError('ERR_TAPS_CONNECTION_ABORTED', local ? 'aborted by the application' : 'the connection closed'));
    this.#sender?.close(reason);
    this.#inbox?.end(error); // a plain abort() ends iteration quietly: the application asked for it
    this.#group?.leave(this);
    if (this.#shareOf !== undefined) this.#shareOf.release();
    else this.#lease.release();
    if (error !== undefined || (local && this.listenerCount('connectionError') > 0)) this.emit('connectionError', reason());
    this.emit('closed');
  }

  // ── properties (RFC 9622 §8.1) ─────────────────────────────────────────

  get canSend(): boolean {
    return this.#state === 'established' && !(this.#sender?.finalQueued ?? false) && !this.#receiveOnly;
  }
  get canReceive(): boolean {
    return this.#state !== 'closed' && !this.#peerEnded && this.#init.properties.get('direction') !== 'unidirectional-send';
  }
  get sendMsgMaxLen(): number {
    return (this.#sender ??= new Sender(this.#link)).maxLength;
  }
  get recvMsgMaxLen(): number {
    return this.sendMsgMaxLen;
  }

  /** Read a connection property (RFC 9622 §8.1), read-only ones included. */
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

  /**
   * Set a connection property. Throws ERR_TAPS_PROPERTY_NOT_APPLICABLE
   * (connection stays open) when the stack cannot honour it. Every property
   * but connPriority is entangled across the connection group (RFC 9622
   * §7.4): the change is applied to each other member too (a member whose
   * stack cannot take it keeps its value). Protocol-specific (`tcp.*`)
   * settings apply to this connection's channel only.
   */
  setProperty(name: string, value: unknown): void {
    this.#set(name, value, true);
  }

  #set(name: string, value: unknown, entangle: boolean): void {
    const n = canonicalName(name);
    if (isReadOnly(n)) throw new TypeError(`${n} is read-only (RFC 9622 §8.1.11)`);
    if (n.includes('.')) {
      if (!this.#channel.setOption) throw notApplicable(n, `${this.driver.id} has no protocol-specific settings`);
      this.#channel.setOption(n, value);
      return;
    }
    const key = n as keyof SettableConnectionProperties;
    checkValue(key, value);
    this.#apply(key, value);
    if (!entangle || key === 'connPriority' || this.#group === undefined) return;
    for (const m of this.#group.members) {
      if (m === this) continue;
      try {
        m.#apply(key, value);
      } catch (err) {
        debug('group member of %s kept its %s: %s', m.driver.id, key, (err as Error).message);
      }
    }
  }

  /** Apply a checked value to this connection alone. */
  #apply(key: keyof SettableConnectionProperties, value: unknown): void {
    const n = key;
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
        this.#writableProps()[key] = value;
        if (value === Infinity) {
          if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
          this.#idleTimer = undefined;
        } else this.#armIdle();
        return;
      default:
        break;
    }
    this.#writableProps()[key] = value;
  }

  #writableProps(): Record<string, unknown> {
    if (this.#props === CONNECTION_DEFAULTS) this.#props = { ...CONNECTION_DEFAULTS };
    return this.#props as unknown as Record<string, unknown>;
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
    if ((this.#group?.members.size ?? 1) >= this.#props.groupConnLimit) {
      throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `the group already has groupConnLimit ${this.#props.groupConnLimit} connections`);
    }
    if (this.#channel.openStream) {
      const channel = await this.#channel.openStream();
      if (this.state === 'closed') {
        const err = new TapsError('ERR_TAPS_INVALID_STATE', 'cannot clone: the connection closed while the stream was opening');
        channel.abort(err);
        throw err;
      }
      return this.#member(channel);
    }
    if (this.#init.clone) {
      const conn = await this.#init.clone();
      this.#adopt(conn);
      return conn;
    }
    throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `${this.driver.id} has no streams to open and this connection was accepted, not initiated`);
  }

  /** Every open connection in this one's group, itself included. */
  groupedConnections(): readonly Connection[] {
    return this.#group === undefined ? (this.#state === 'closed' ? [] : [this]) : [...this.#group.members];
  }

  /** Close every connection of this group gracefully (RFC 9622 §10). */
  async closeGroup(): Promise<void> {
    if (this.#group === undefined) await this.close();
    else await this.#group.closeAll();
  }

  /** Abort every connection of this group at once. */
  abortGroup(reason?: Error): void {
    if (this.#group === undefined) this.abort(reason);
    else this.#group.abortAll(reason);
  }

  /** This connection's group, made now if it had none: it joins as the first member, sharing its own lease. */
  #ensureGroup(): ConnectionGroup<Connection> {
    if (this.#group !== undefined) return this.#group;
    const group = new ConnectionGroup<Connection>(this.#lease);
    group.join(this);
    this.#group = group;
    this.#shareOf = group;
    return group;
  }

  /** The connection properties changed from their defaults: what a clone copies (RFC 9622 §7.4). */
  #changed(): Record<string, unknown> {
    return Object.fromEntries(Object.entries(this.#props).filter(([k, v]) => CONNECTION_DEFAULTS[k as keyof SettableConnectionProperties] !== v));
  }

  #member(channel: TransportChannel): Connection {
    return new Connection({ ...this.#init, channel, group: this.#ensureGroup(), connectionProperties: this.#changed(), target: undefined });
  }

  /** A clone made as a separate connection joins this group (with its own lease) and takes its properties. */
  #adopt(conn: Connection): void {
    const group = this.#ensureGroup();
    if (conn.#state === 'closed' || conn.#group === group) return;
    conn.#group?.leave(conn);
    conn.#group = group;
    group.adopt(conn);
    for (const [k, v] of Object.entries(this.#changed())) {
      try {
        conn.#apply(k as keyof SettableConnectionProperties, v);
      } catch (err) {
        debug('clone on %s kept its %s: %s', conn.driver.id, k, (err as Error).message);
      }
    }
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
