/**
 * Connection: the one object an application uses, whatever stack won
 * (RFC 9622 §8–§10). It wraps a driver's TransportChannel with message
 * framing, the send queue, message properties, receive backpressure,
 * connection properties, groups and the tenant's quota lease.
 *
 * The state machine (RFC 9622 §11), drawn once. A Connection exists only
 * once established: RFC 9622's Establishing is the pending `initiate()`,
 * which rejects with an EstablishmentError when every candidate failed.
 *
 * ```
 *                 close()                      both directions done
 *  established ─────────────▶ closing ──────────────────────────────▶ closed   emits `closed`
 *       │  peer's end (FIN) ─▶ closing, still able to send until close()
 *       │                      or a message marked final
 *       │                         │
 *       └─────────────────────────┴── abort() / failure / connTimeout ─▶ closed   emits `connectionError`
 *                                     / policy revoked
 * ```
 *
 * | from | on | to | emits |
 * |---|---|---|---|
 * | established | `close()` | closing | — |
 * | established | the peer's end | closing (canReceive false, canSend true) | `receivedEnd` |
 * | closing | the channel closes cleanly | closed | `closed` |
 * | established, closing | `abort()`, a failure, connTimeout, policy revoked | closed | `connectionError` |
 *
 * Exactly one of `closed` / `connectionError` ends a connection, and
 * nothing is emitted after it: the outcomes of sends still outstanding are
 * emitted first; a `send()` after it rejects with ERR_TAPS_INVALID_STATE
 * without an event. Each `send()` ends in exactly one of `sent`, `expired`
 * or `sendError` (event and promise alike); the promise never goes
 * unhandled. The send path lives in sender.ts; while the transport pushes
 * back, `sendBlocked` is true until `drain`. Messages are read with
 * `for await`, `receive()`, or the `received` event: with a `received`
 * listener messages go to it (the first listener also gets those already
 * queued), otherwise they queue for `receive()`. Events never throw for
 * lack of a listener.
 *
 * @example
 * await using conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
 * await conn.send('hello', { msgLifetime: 200 });
 * for await (const msg of conn) console.log(msg.text());
 */
import { systemClock, type Clock } from '../clock.js';
import type { ChannelReceiveMeta, ChannelReceiver, Driver, SocketAddress, TransportChannel } from '../driver.js';
import { chargedByChannel, connectionClosed, connectionReady, countingLease } from '../diagnostics.js';
import type { LocalEndpoint, RemoteEndpoint } from '../endpoints.js';
import { PolicyDeniedError, TapsError, toTapsError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { framerStack, type Deframer, type DeframerSink, type MessageFramer } from '../framers/index.js';
import { checkMessageContext, deliveredContext, Message, type MessageContextInit, type ReceivedContext } from '../message.js';
import type { CheckedTarget, Lease } from '../policy/contract.js';
import { readBack, type SelectionReadback, type TransportProperties } from '../properties.js';
import type { SelectionReport } from '../report.js';
import { provided } from '../provided.js';
import { systemPathMonitor, type PathChange, type PathMonitor } from '../paths/monitor.js';
import { PathWatch } from '../paths/watch.js';
import { ConnectionGroup, Membership, type MemberHost } from './group.js';
import { DEFAULT_INBOX_LIMITS, Inbox, WHOLE, type InboxLimits, type ReceiveLimits } from './inbox.js';
import type { Outcome, PendingSend } from './pending.js';
import { NO_CONTEXT, Sender, type SenderHost } from './sender.js';
import { canonicalName, isReadOnly, notApplicable, READ_ONLY, type ConnState, type SettableConnectionProperties } from './properties.js';
import { ConnectionSettings, type SettableName, type SettingsHost } from './settings.js';
import { meteringOf } from '../policy/self-metered.js';
import { ownBytes } from '../own.js';

export type { ConnState } from './properties.js';

/** The events a {@link Connection} emits, named as in RFC 9622 §8–§10; listeners never throw for lack of a listener. */
export type ConnectionEvents = {
  /** RFC 9622 §9.2.2.1: handed to the transport. */
  sent: [context: MessageContextInit];
  /** §9.2.2.2: its lifetime passed before it could be sent. */
  expired: [context: MessageContextInit, error: TapsError];
  /** §9.2.2.3 */
  sendError: [context: MessageContextInit, error: TapsError];
  /** §9.3.2.1: a whole message. */
  received: [message: Message];
  /** §9.3.2.2: a piece of a message, handed to a `receive()` that asked for pieces (`message.endOfMessage` on the last). */
  receivedPartial: [message: Message];
  /** §9.3.2.3: a message that will not be delivered (over the framer's maximum, skipped); the connection stays open. */
  receiveError: [context: ReceivedContext, error: TapsError];
  /** The peer will send nothing more (its final message, FIN). */
  receivedEnd: [];
  /** §8.3.1; also the path under the connection died (ERR_TAPS_PATH_UNAVAILABLE, after `pathChange`). */
  softError: [error: TapsError];
  /** §8.3.2: the local address went away, came back or moved to another interface. The connection stays open. */
  pathChange: [change: PathChange];
  /** §10: the connection failed or was aborted; ends it instead of `closed` (never both). */
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

const encoder = new TextEncoder();

/** An established connection, whatever stack won: send, receive, properties, groups and close (RFC 9622 §8–§10). See the module comment for the state machine. */
export class Connection extends TypedEmitter<ConnectionEvents> implements AsyncIterable<Message>, AsyncDisposable {
  // `declare`: set by the constructor, not defined first as a class field (a store fewer per connection).
  /** Why this stack was chosen, and what became of every other candidate. */
  declare readonly report: SelectionReport;
  /** The driver of the stack that won. */
  declare readonly driver: Driver;
  readonly #channel: TransportChannel;
  readonly #init: ConnectionInit;
  readonly #framer: MessageFramer | undefined;
  /** Made with the first data or the peer's end (most connections in a burst of short ones never read any). */
  #deframer: Deframer | undefined;
  /**
   * Its group and the quota lease its bytes count against (its own, or its group's shared one): made when a
   * group feature is first used (`#member()`), at once for a member of a group. Most connections never need one.
   */
  #membership: Membership<Connection> | undefined;
  /** What this connection's bytes are counted with: the membership's lease, as this connection's channel needs it (see the constructor). */
  readonly #lease: Lease;
  /** The channel's receiver, the sender's host and the settings' host (see Link below). */
  readonly #link: Link;
  /** Made by the first send (an idle connection has none). */
  #sender: Sender | undefined;
  /** Made when a message must wait or a reader asks (most connections deliver through `received`). */
  #inbox: Inbox | undefined;
  /** Connection properties (RFC 9622 §8.1) and what they do to the stack: made when first read or set (`#props()`), at once when keep-alive is wanted. */
  #settings: ConnectionSettings | undefined;
  /** connTimeout for the send path (Infinity: not watched). */
  #deliveryTimeout = Infinity;
  /** direction is unidirectional-receive (read once: the properties are a snapshot). */
  readonly #receiveOnly: boolean;
  #state: ConnState = 'established';
  #peerEnded = false;
  /** The application called close(): nothing more may be sent. */
  #localClosing = false;
  /** Closed or ConnectionError was emitted: no event follows (RFC 9622 §11). */
  #silent = false;
  #closing: Promise<void> | undefined;
  #error: TapsError | undefined;
  /** The deframer's message callback and sinks, made with the first data (see #makeSinks). */
  #sinks: DeframerSinks | undefined;
  /** Pieces of a message the application sends with endOfMessage false, held until its end (framed stacks). */
  #outgoing: { pieces: Uint8Array[]; bytes: number; waiting: ((p: Promise<void>) => void)[] } | undefined;
  /** Made when the first `pathChange`/`softError` listener is added. */
  #path: PathWatch | undefined;

  constructor(init: ConnectionInit) {
    super();
    this.#init = init;
    this.#channel = init.channel;
    this.driver = init.driver;
    this.report = init.report;
    this.#framer = init.driver.framing === 'stream' && init.framers.length > 0 ? framerStack(init.framers) : undefined;
    this.#receiveOnly = init.properties.get('direction') === 'unidirectional-receive';
    // One object is the channel's receiver and the host of the sender, settings and membership (no closure per callback).
    const link = new Connection.#Link(this);
    this.#link = link;
    const keepAlive = init.properties.get('keepAlive');
    // Made now only when the stack must hear of it (keep-alive turned on) or the connection joins a group.
    if (keepAlive === 'require' || keepAlive === 'prefer') this.#settings = new ConnectionSettings(link, true);
    if (init.group !== undefined) this.#membership = new Membership(link, init.lease, init.group);
    // Decided per channel, not per group (a stream of a group may be metered where its first was not, or the
    // reverse): a metered channel charged the tenant's budget at its socket already, so the lease then only
    // counts for observers; any other has its messages charged here. Its group's shared lease, or its own.
    const shared = this.#membership?.lease ?? init.lease;
    const ch = init.channel;
    // Only the library's channels are believed (../policy/self-metered.ts): a guest's driver saying so counts nothing.
    const m = meteringOf(ch);
    this.#lease = countingLease(m.metered || m.receiveMetered ? chargedByChannel(shared, m.metered, m.receiveMetered) : shared, init.report.tenant);
    if (init.target !== undefined && init.group === undefined) init.lease.bind?.(init.target);
    init.lease.onRevoke?.((decision) => this.abort(new PolicyDeniedError(decision, `the tenant's policy no longer allows this connection: ${decision.reason}`)));
    const preset = init.connectionProperties;
    if (preset !== undefined) for (const name in preset) this.#set(name, preset[name], false);
    this.#channel.start(link);
    if (connectionReady.hasSubscribers) connectionReady.publish({ tenant: this.report.tenant, connection: this });
  }

  /** Its group membership, made on first use (a connection that never uses a group feature has none). */
  #member(): Membership<Connection> {
    return (this.#membership ??= new Membership(this.#link, this.#init.lease, undefined));
  }

  /** Its connection properties, made on first use (their defaults are shared until one is set). */
  #props(): ConnectionSettings {
    return (this.#settings ??= new ConnectionSettings(this.#link, false));
  }

  /** The connection as its channel, its Sender, its settings and its membership see it. */
  static readonly #Link = class Link implements ChannelReceiver, SenderHost, SettingsHost, MemberHost<Connection> {
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
      return this.#conn.#init.clock ?? systemClock;
    }
    get self(): Connection {
      return this.#conn;
    }
    get driverId(): string {
      return this.#conn.driver.id;
    }
    get settings(): ConnectionSettings {
      return this.#conn.#props();
    }
    get remake(): (() => Promise<Connection>) | undefined {
      return this.#conn.#init.clone;
    }
    get receiveOnly(): boolean {
      return this.#conn.#receiveOnly;
    }
    state(): ConnState {
      return this.#conn.#state;
    }
    sendOpen(): boolean {
      const conn = this.#conn;
      return conn.#state !== 'closed' && !conn.#localClosing;
    }
    error(): TapsError | undefined {
      return this.#conn.#error;
    }
    outcome(p: PendingSend, outcome: Outcome): void {
      // RFC 9622 §9.2.2: the event for a send's outcome; PendingSend then settles its promise.
      if (outcome.kind === 'sent') {
        // Most senders do not listen for `sent`: skip building the event's arguments then.
        if (this.#conn.listenerCount('sent') > 0) this.#conn.emit('sent', p.context);
      } else this.#conn.emit(outcome.kind, p.context, outcome.error as TapsError);
    }
    drained(): void {
      this.#conn.emit('drain');
    }
    stalled(error: TapsError): void {
      this.#conn.abort(error);
    }

    // SettingsHost
    deliveryTimeout(ms: number): void {
      this.#conn.#deliveryTimeout = ms;
      this.#conn.#sender?.setDeliveryTimeout(ms);
    }

    // MemberHost
    member(channel: TransportChannel, group: ConnectionGroup<Connection>, properties: Record<string, unknown>): Connection {
      const conn = this.#conn;
      return new Connection({ ...conn.#init, channel, group, connectionProperties: properties, target: undefined });
    }
    membershipOf(other: Connection): Membership<Connection> {
      return other.#member();
    }
    offer(stream: Connection): boolean {
      return this.#conn.emit('connectionReceived', stream);
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
      this.#conn.#member().peerStream(channel);
    }
    softError(error: Error): void {
      this.#conn.emit('softError', toTapsError(error, 'ERR_TAPS_PROTOCOL_FAILED'));
    }
  };

  /** No event after Closed / ConnectionError (RFC 9622 §11). */
  protected override emit<K extends keyof ConnectionEvents & string>(event: K, ...args: ConnectionEvents[K]): boolean {
    return this.#silent ? false : super.emit(event, ...args);
  }

  /**
   * Add a listener. The first `received` listener also gets the messages
   * already queued for `receive()`, in order, on the next microtask, before
   * any message that arrives later: a late listener misses nothing. A
   * `pathChange` or `softError` listener starts the path monitor.
   */
  override on<K extends keyof ConnectionEvents & string>(event: K, listener: (...args: ConnectionEvents[K]) => void): this {
    super.on(event, listener);
    if (event === 'received' && (this.#inbox?.queued ?? 0) > 0) queueMicrotask(() => this.#handOverQueued());
    else if (event === 'pathChange' || event === 'softError') this.#watchPath();
    return this;
  }

  /** Queued messages go to the `received` listeners (see on()). */
  #handOverQueued(): void {
    const inbox = this.#inbox;
    while (inbox !== undefined && inbox.queued > 0 && this.listenerCount('received') > 0 && !this.#silent) this.emit('received', inbox.take()!);
  }

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
    return readBack(this.#init.properties, provided(this.driver, this.#init.framers.length, this.#init.properties));
  }

  // ── sending (RFC 9622 §9.2) ────────────────────────────────────────────

  /**
   * Send one message. Resolves when it is handed to the transport (`sent`);
   * rejects with the TapsError of `expired` or `sendError`. Bad arguments
   * throw at once.
   *
   * Partial sends (RFC 9622 §9.2.3): `{ endOfMessage: false }` sends a piece
   * of a message whose next pieces follow in the next sends, until one
   * without it. On a byte stream without a framer each piece goes out at
   * once (there are no boundaries to keep). With a framer, or on a stack that
   * keeps message boundaries, the pieces are held (not copied) until the end,
   * then sent as one message with the last send's properties: a framer must
   * know a message's length before its first byte. The promise of every
   * piece settles with the message's outcome; events fire once, for the
   * message.
   */
  send(data: Uint8Array | string, context?: MessageContextInit): Promise<void> {
    const text = typeof data === 'string';
    if (!text && !(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array or a string');
    // The caller's view is counted and sent only as it really is (its length could lie: see ownBytes).
    const bytes = text ? encoder.encode(data) : ownBytes(data);
    let ctx = NO_CONTEXT;
    if (context !== undefined) {
      checkMessageContext(context);
      ctx = context;
    }
    const sender = (this.#sender ??= this.#newSender());
    // A string is text on stacks that tell text from binary (WebSocket).
    if (ctx.endOfMessage !== false && this.#outgoing === undefined) return sender.send(bytes, ctx, text);
    return this.#sendPiece(sender, bytes, ctx, text);
  }

  /** One piece of a message sent in pieces (see send()). */
  #sendPiece(sender: Sender, bytes: Uint8Array, ctx: MessageContextInit, text: boolean): Promise<void> {
    const end = ctx.endOfMessage !== false;
    if (this.#framer === undefined && this.driver.framing === 'stream') return sender.send(bytes, end ? ctx : notLast(ctx), text);
    if (!this.canSend) {
      this.#outgoing = undefined; // refused as any send would be
      return sender.send(bytes, ctx, text);
    }
    const out = (this.#outgoing ??= { pieces: [], bytes: 0, waiting: [] });
    if (bytes.byteLength > 0) out.pieces.push(bytes);
    out.bytes += bytes.byteLength;
    if (!end) {
      const piece = new Promise<void>((resolve) => out.waiting.push(resolve));
      piece.catch(noop); // settled with the message's outcome, which is also an event
      return piece;
    }
    this.#outgoing = undefined;
    const whole = sender.send(out.pieces.length === 1 ? out.pieces[0]! : Buffer.concat(out.pieces, out.bytes), ctx, text);
    for (const resolve of out.waiting) resolve(whole);
    return whole;
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

  #newSender(): Sender {
    return new Sender(this.#link, this.#deliveryTimeout);
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
    if (this.#framer !== undefined) {
      try {
        const sinks = (this.#sinks ??= this.#makeSinks());
        (this.#deframer ??= this.#framer.createDeframer()).push(chunk, sinks.emit, this.#inbox?.wantsPieces ? sinks.pieces : sinks.skip);
      } catch (err) {
        this.abort(toTapsError(err, 'ERR_TAPS_DEFRAMING_FAILED'));
      }
      return;
    }
    if (meta?.complete === false || this.#inbox?.hasOpen === true) {
      // A message the channel hands over in pieces (an HTTP body): the inbox holds or streams it.
      this.#onPiece(chunk, meta?.complete !== false, () => (meta?.fields ? { final: false, fields: meta.fields } : { final: false }));
      return;
    }
    if (meta?.reliable !== undefined) this.#deliver(new Message(chunk, deliveredContext(meta.reliable, meta.ordered === true)));
    else this.#deliver(meta?.fields ? new Message(chunk, { final: false, fields: meta.fields }) : new Message(chunk));
  }

  /**
   * Where the deframer hands messages, and what it may report to: skipped messages only, or pieces too. Made
   * with the first data, here and not in the constructor: idle connections stay small, and a closure over the
   * constructor's scope kept young objects alive across scavenges while the code was not yet optimized
   * (docs/performance.md).
   */
  #makeSinks(): DeframerSinks {
    const skipped = (error: TapsError): void => void this.emit('receiveError', Object.freeze({ final: false }), error);
    return {
      emit: (data) => this.#deliver(new Message(data)),
      skip: Object.freeze({ skipped }),
      pieces: Object.freeze({ skipped, part: (piece: Uint8Array, end: boolean) => this.#onPiece(piece, end, newContext) }),
    };
  }

  /** A piece of a message arriving in pieces: to the inbox, which hands back the whole message unless some of it was read. */
  #onPiece(piece: Uint8Array, end: boolean, context: () => ReceivedContext): void {
    const whole = this.#queue().part(piece, end, context);
    if (whole !== undefined) this.#deliver(whole);
  }

  #deliver(msg: Message): void {
    if (this.listenerCount('received') > 0) {
      const inbox = this.#inbox;
      if (inbox !== undefined && inbox.queued > 0) this.#handOverQueued(); // keep the order: older ones first
      if (inbox?.hasWaiter) inbox.put(msg);
      this.emit('received', msg);
    } else this.#queue().put(msg);
  }

  /** The receive queue, made now if there was none, in the state the connection is in. */
  #queue(): Inbox {
    let inbox = this.#inbox;
    if (inbox === undefined) {
      const limits = this.#init.inbox ? { ...DEFAULT_INBOX_LIMITS, ...this.#init.inbox } : DEFAULT_INBOX_LIMITS;
      inbox = this.#inbox = new Inbox(limits, this.#channel, (piece) => this.emit('receivedPartial', piece));
      if (this.#state === 'closed') inbox.end(this.#error);
      else if (this.#peerEnded) inbox.end();
    }
    return inbox;
  }

  /**
   * The peer will send nothing more (FIN): the connection is `closing` (RFC 9622 §11), its last queued message
   * is marked final (§9.3.2.4), readers end, and `receivedEnd` fires. The sending side stays open until
   * close() or a final message (TCP half-close); both sides done, the channel closes and `closed` follows.
   */
  #onEnd(): void {
    if (this.#peerEnded || this.#state === 'closed') return;
    this.#peerEnded = true;
    if (this.#framer !== undefined) {
      try {
        (this.#deframer ??= this.#framer.createDeframer()).end();
      } catch (err) {
        this.abort(toTapsError(err, 'ERR_TAPS_DEFRAMING_FAILED'));
        return;
      }
    }
    if (this.#state === 'established') this.#state = 'closing';
    this.#inbox?.markFinal();
    this.#inbox?.end();
    this.emit('receivedEnd');
  }

  /**
   * The next message; rejects when the connection failed, was aborted, or the
   * peer has finished sending. A bad `options` argument throws at once.
   *
   * Partial messages (RFC 9622 §9.3.1, §9.3.2.2): with `minIncompleteLength`
   * and/or `maxLength`, a message may come in pieces — a `Message` with
   * `partial` true, `endOfMessage` true on its last piece, the pieces of one
   * message sharing one `context` object — of at least
   * `min(minIncompleteLength, maxLength)` bytes (unless the message ends
   * first) and at most `maxLength`. Each such piece is also a
   * `receivedPartial` event. Defaults: Infinity, whole messages only.
   *
   * @example
   * for (;;) {
   *   const piece = await conn.receive({ minIncompleteLength: 1, maxLength: 1 << 20 });
   *   await file.write(piece.data);
   *   if (piece.endOfMessage) break;
   * }
   */
  receive(options: { signal?: AbortSignal; minIncompleteLength?: number; maxLength?: number } = {}): Promise<Message> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
    const limits = receiveLimits(options.minIncompleteLength, options.maxLength);
    return this.#queue().next(options.signal, limits, this.#noMore) as Promise<Message>;
  }

  /** Why receive() has nothing more to give (made only when it is so). */
  readonly #noMore = (): TapsError =>
    new TapsError('ERR_TAPS_INVALID_STATE', this.#peerEnded ? 'no more messages: the peer has finished sending' : `no more messages: the connection is ${this.#state}`);

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
    this.#localClosing = true;
    // Hand the channel everything still queued, whatever its backpressure: its close() flushes it, bounded by the
    // stack's own close timeout, so a peer that never reads cannot hold close() open forever.
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
   * local Abort is reported as one `connectionError` (ERR_TAPS_CONNECTION_ABORTED,
   * or `reason` when given), and no `closed` follows. Without a reason,
   * readers end quietly (the application asked for it); with one, they
   * reject with it.
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

  /**
   * Enter `closed` once: settle everything outstanding (their events first), release every timer and the
   * lease, then emit exactly one of `closed` (no error) or `connectionError` (an error, or a local abort),
   * after which the connection emits nothing (RFC 9622 §10, §11).
   */
  #finish(error: TapsError | undefined, local = false): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#error = error;
    this.#path?.want(false);
    // Made only when someone will see it (an Error's stack costs microseconds).
    let why = error;
    const reason = (): TapsError => (why ??= new TapsError('ERR_TAPS_CONNECTION_ABORTED', local ? 'aborted by the application' : 'the connection closed'));
    this.#sender?.close(reason);
    this.#inbox?.end(error); // a plain abort() ends iteration quietly: the application asked for it
    // Without a membership it holds its own lease alone: let go of it as leaving would.
    if (this.#membership === undefined) this.#init.lease.release();
    else this.#membership.leave();
    // Nobody listening: the event is not observable, so its error is not made.
    if (error !== undefined || local) {
      if (this.listenerCount('connectionError') > 0) this.emit('connectionError', reason());
    } else this.emit('closed');
    this.#silent = true;
    if (connectionClosed.hasSubscribers) connectionClosed.publish({ tenant: this.report.tenant, connection: this, error });
  }

  // ── properties (RFC 9622 §8.1) ─────────────────────────────────────────

  get canSend(): boolean {
    return this.#state !== 'closed' && !this.#localClosing && !(this.#sender?.finalQueued ?? false) && !this.#receiveOnly;
  }
  get canReceive(): boolean {
    return this.#state !== 'closed' && !this.#peerEnded && this.#init.properties.get('direction') !== 'unidirectional-send';
  }
  get sendMsgMaxLen(): number {
    return (this.#sender ??= this.#newSender()).maxLength;
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
        return this.#props().value(n as SettableName);
    }
  }

  /** Every connection property, read-only ones included. */
  get properties(): Readonly<Record<string, unknown>> {
    const out: Record<string, unknown> = { ...this.#props().all };
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
    if (n.includes('.')) return this.#props().setSpecific(n, value);
    const key = n as keyof SettableConnectionProperties;
    this.#props().set(key, value);
    if (entangle) this.#membership?.entangle(key, value); // no membership: no group to entangle with
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
    return this.#member().clone();
  }

  /** Every open connection in this one's group, itself included. */
  groupedConnections(): readonly Connection[] {
    return this.#member().members();
  }

  /** Close every connection of this group gracefully (RFC 9622 §10). */
  closeGroup(): Promise<void> {
    return this.#member().closeGroup();
  }

  /** Abort every connection of this group at once. */
  abortGroup(reason?: Error): void {
    this.#member().abortGroup(reason);
  }
}

type Link = ChannelReceiver & SenderHost & SettingsHost & MemberHost<Connection>;

/** A connection's deframer callbacks: whole messages, and the sinks for skipped messages and pieces. */
interface DeframerSinks {
  readonly emit: (data: Uint8Array) => void;
  readonly skip: DeframerSink;
  readonly pieces: DeframerSink;
}

/** A fresh context for a message arriving in pieces: its pieces share it, and it is no other message's (RFC 9622 §9.3.2.2). */
function newContext(): ReceivedContext {
  return { final: false };
}

/** Check and normalise receive()'s limits (RFC 9622 §9.3.1): whole numbers ≥ 1, or Infinity. */
function receiveLimits(min: unknown, max: unknown): ReceiveLimits {
  if (min === undefined && max === undefined) return WHOLE;
  const check = (name: string, v: unknown): number => {
    if (v === undefined) return Infinity;
    if (typeof v !== 'number' || !(v >= 1) || (v !== Infinity && !Number.isInteger(v))) throw new RangeError(`options.${name} must be an integer ≥ 1 or Infinity, got ${String(v)}`);
    return v;
  };
  return { minIncompleteLength: check('minIncompleteLength', min), maxLength: check('maxLength', max) };
}

const noop = (): void => {};

/** A piece's context when more of its message follows: not final yet. */
function notLast(ctx: MessageContextInit): MessageContextInit {
  return ctx.final === true ? { ...ctx, final: false } : ctx;
}
