/**
 * The driver contract: what a transport in `transports/` must provide.
 *
 * `src/` never imports a driver; drivers depend only on this file (and the
 * other type modules). A driver declares as data what it can do
 * ({@link Capabilities}), so the selector can drop unsuitable stacks before
 * anything is created (STYLE §3). It connects only to a {@link CheckedTarget}
 * (an address the tenant's policy has already allowed) and calls
 * `attempt.signal.throwIfAborted()` before any I/O.
 *
 * A connected driver hands back a {@link TransportChannel}: a small, callback
 * based object (cheap on the hot path) that the `Connection` facade wraps.
 *
 * @example
 * export const echoDriver: Driver = {
 *   id: 'tcp', stack: ['tcp'], protocol: 'tcp', ipProtocol: 'tcp', framing: 'stream',
 *   security: 'none', capabilities: { ...NO_CAPABILITIES, reliable: true, ordered: true },
 *   available: () => ({ available: true }),
 *   async connect(attempt) { attempt.signal.throwIfAborted(); ... },
 * };
 */
import { setMaxListeners } from 'node:events';
import type { CheckedTarget, PolicyGuard } from './policy/contract.js';
import type { PolicyProtocol } from './policy/types.js';
import type { RemoteEndpoint, LocalEndpoint } from './endpoints.js';
import type { SecurityParameters } from './security.js';
import type { TransportProperties } from './properties.js';

/** What a stack provides, as data. Every field is a promise the compliance suite checks. */
export interface Capabilities {
  /**
   * Every byte/message sent arrives or the connection fails (RFC 9622 §6.2.1). With `perMsgReliability`,
   * this is what a message gets unless the caller asked for per-message reliability (then the selection
   * properties decide the default: src/provided.ts `messageDefaults`).
   */
  readonly reliable: boolean;
  /** Data arrives in the order it was sent (§6.2.4). With `perMsgReliability`, the default like `reliable`. */
  readonly ordered: boolean;
  /** The stack itself keeps message boundaries (no framer needed) (§6.2.2). */
  readonly messageBoundaries: boolean;
  /** Reliability and order can be chosen per message (§6.2.3; `msgReliable`, `msgOrdered`). */
  readonly perMsgReliability: boolean;
  /** Data is encrypted and the peer authenticated (TLS 1.2+/1.3). */
  readonly encrypted: boolean;
  /** Several streams in one connection group without head-of-line blocking (§6.2.6). */
  readonly multistream: boolean;
  /** 0-RTT establishment with a safely replayable first message (§6.2.5). */
  readonly zeroRtt: boolean;
  /** Congestion controlled (§6.2.9). */
  readonly congestionControl: boolean;
  /** Checksum covers the whole payload both ways (§6.2.7, §6.2.8). */
  readonly fullChecksum: boolean;
  /** Can send keep-alives (§6.2.10). */
  readonly keepAlive: boolean;
  /**
   * Never delivers a message twice, even unreliably (QUIC DATAGRAM: the receiver discards duplicate
   * packets, RFC 9000 §12.3). Unset: a stack that is unreliable and keeps message boundaries (UDP) is
   * taken to duplicate, so it needs `safelyReplayable` (RFC 9622 §9.1.3.4).
   */
  readonly duplicateFree?: boolean;
}

/** Every capability false: spread it and set the ones a driver has. */
export const NO_CAPABILITIES: Capabilities = Object.freeze({
  reliable: false,
  ordered: false,
  messageBoundaries: false,
  perMsgReliability: false,
  encrypted: false,
  multistream: false,
  zeroRtt: false,
  congestionControl: false,
  fullChecksum: false,
  keepAlive: false,
});

/** `stream`: the channel moves bytes and a framer finds messages. `message`: each unit is a message. */
export type Framing = 'stream' | 'message';

/** Whether a driver can run here, and why not (shown as `unavailable` in the selection report). */
export type Availability = { readonly available: true } | { readonly available: false; readonly reason: string };

/** An IP address and port as the OS reports it. */
export interface SocketAddress {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** Per-send data a driver may use (message properties, protocol fields such as HTTP method/headers). */
export interface ChannelSendMeta {
  /** This is the last message: half-close the sending side after it (RFC 9622 §9.1.3.5). */
  readonly final?: boolean;
  /** Send this message reliably even on a partially reliable stack (§9.1.3.7). Undefined: connection default. */
  readonly reliable?: boolean;
  /** Keep this message in order with the other ordered ones (§9.1.3.3), on stacks with per-message reliability. Undefined: connection default. */
  readonly ordered?: boolean;
  /** Lower is sooner (§9.1.3.2). */
  readonly priority?: number;
  /** Protocol-specific fields (e.g. `{ method, path, headers }` for HTTP). */
  readonly fields?: Readonly<Record<string, unknown>>;
  /**
   * The application sent a string: a stack with text and binary messages (WebSocket, RFC 6455 §5.6) sends
   * it as text unless a protocol field says otherwise; other stacks ignore it.
   */
  readonly text?: boolean;
}

/** Per-receive data from a driver (e.g. HTTP status and headers, the datagram's source). */
export interface ChannelReceiveMeta {
  readonly fields?: Readonly<Record<string, unknown>>;
  /** For message channels that can receive partial messages: false until the last piece. */
  readonly complete?: boolean;
  /** Per-message reliability stacks: whether it came reliably (a stream) or not (a datagram). */
  readonly reliable?: boolean;
  /** Per-message reliability stacks: whether it was sent as an ordered message. */
  readonly ordered?: boolean;
}

/** Where a channel delivers what it receives. Installed once by `TransportChannel.start`. */
export interface ChannelReceiver {
  /** Bytes (stream framing) or one whole message (message framing). The chunk is the receiver's to keep. */
  data(chunk: Uint8Array, meta?: ChannelReceiveMeta): void;
  /** The peer will send no more (FIN, close_notify, end of stream). */
  end(): void;
  /** The send side can take more after `send()` returned false. */
  drain(): void;
  /** The channel is gone. `error` set when it ended abnormally (reset, protocol error, timeout). */
  closed(error?: Error): void;
  /** A multistreaming peer opened a new stream in this connection's group. */
  stream?(channel: TransportChannel): void;
  /**
   * A non-fatal error the network reported (RFC 9622 §8.3.1 SoftError), e.g. an
   * ICMP port unreachable on a connected UDP socket. The channel stays open.
   */
  softError?(error: Error): void;
}

/**
 * One established transport-level channel: a TCP socket, a TLS socket, a
 * connected UDP socket, a QUIC stream, a WebSocket, an HTTP connection.
 * Events before `start()` are buffered by the driver and delivered in order.
 */
export interface TransportChannel {
  readonly framing: Framing;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  /** Largest message one `send` may carry (Infinity for streams). */
  readonly maxMessageSize: number;
  /** Largest message that goes out in one IP packet, if known (RFC 9622 §8.1.11.1). */
  readonly singularTransmissionMsgMaxLen?: number | undefined;
  /** Per-message reliability stacks: the largest message sent reliably (true) or not (false); `maxMessageSize` is the default's. */
  maxMessageSizeFor?(reliable: boolean): number;
  /** Facts about the established channel for the report/properties (e.g. `alpn`, `tlsVersion`, `httpVersion`). */
  readonly info: Readonly<Record<string, unknown>>;
  /** Install the receiver (once); buffered events are delivered now, in order. */
  start(receiver: ChannelReceiver): void;
  /**
   * Send bytes (stream) or one message (message framing). `done` is called
   * exactly once: without error when handed to the OS/protocol, or with the
   * error. Returns false when the caller should wait for `receiver.drain()`.
   */
  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean;
  /**
   * True when every `done` runs in the order of the `send()` calls, a failed send's included (a connected
   * UDP socket's datagrams complete in send order). The Connection then hands every send the same `done`
   * and settles its oldest outstanding message on each call, instead of making a callback per message.
   * Unset: each send gets its own `done`, which may run in any order.
   */
  readonly completesInOrder?: boolean;
  /** Stop/restart delivering received data (receive backpressure). */
  pause(): void;
  /** Deliver received data again after `pause()`. */
  resume(): void;
  /** Graceful: flush, signal end (FIN/close_notify/close frame), resolve when fully closed. */
  close(): Promise<void>;
  /** Immediate: tear down, release every resource now. Idempotent. */
  abort(reason?: Error): void;
  /** Multistreaming stacks: open another stream in the same connection group. */
  openStream?(): Promise<TransportChannel>;
  /** Change a protocol-level setting at run time (e.g. keep-alive, TCP user timeout); throw TapsError ERR_TAPS_PROPERTY_NOT_APPLICABLE otherwise. */
  setOption?(name: string, value: unknown): void;
  /**
   * True when the channel charges its attempt's {@link ByteMeter} for everything it sends (the Connection
   * then does not count its messages again). Unset: the Connection counts each message as it hands it over.
   * Believed for the library's own channels only: any other driver's channel is counted by the Connection.
   */
  readonly metered?: boolean;
  /**
   * True when the channel's socket charges the tenant's received-bytes budget for everything it reads, on
   * the wire (a QUIC client counts its datagrams): the Connection then does not count what the channel
   * delivers. Unset: the Connection counts each chunk as it arrives. Believed for the library's own
   * channels only (a driver's word would let a guest's driver receive uncounted).
   */
  readonly receiveMetered?: boolean;
}

/**
 * The tenant's byte budget as a driver sees it: `sent(n)` before `n` bytes go to the socket (or the
 * protocol library writing to it); throws `QuotaExceededError` when the budget would be exceeded, and
 * then those bytes must not be sent. Given by the scope's network, never by the caller.
 */
export interface ByteMeter {
  /** Charge `bytes` about to be written; throws `QuotaExceededError` (and they must not be written) when over the budget. */
  sent(bytes: number): void;
}

/** Everything a driver gets for one connection attempt. */
export interface ConnectAttempt {
  /**
   * Required. Abort means: stop now, release everything, reject with the signal's reason. The attempts of
   * one race share it, so it may abort after this attempt settled (another one won): stop listening to it
   * once the attempt has settled. It may be {@link NEVER_ABORTED} (nothing can abort this attempt); a driver
   * may skip listening to that one.
   */
  readonly signal: AbortSignal;
  /** The address, port and protocol the policy allowed, with the checked name for SNI/Host. */
  readonly target: CheckedTarget;
  readonly remote: RemoteEndpoint;
  readonly local?: LocalEndpoint | undefined;
  readonly security: SecurityParameters;
  readonly properties: TransportProperties;
  /** Options the caller gave for this driver id (`preconnection.driverOptions[id]`). */
  readonly options: Readonly<Record<string, unknown>>;
  /** For redirect hops and any later address the driver must reach. */
  readonly guard: PolicyGuard;
  /**
   * The tenant's byte budget, when its scope has one: a driver charges what it writes (headers, framing and
   * payload) before writing it, and says so with `TransportChannel.metered`. Set by the scope's network.
   */
  readonly meter?: ByteMeter | undefined;
  /**
   * The scope's network, for every socket a driver opens after its first (an HTTP reconnect, a parallel
   * HTTP/1.1 stream, a redirect hop): through it they reach the host's `Network` and are admitted like the
   * first. Set by the scope's network; absent when a driver is called directly.
   */
  readonly network?: AttemptNetwork | undefined;
  /**
   * The connection unit the library already took for this attempt (a Preconnection's lease), opaque: the
   * socket the attempt opens counts under it instead of taking one of its own. Anything else here (or
   * nothing) makes the socket take a unit of the tenant's `limit connections` itself, so a driver called
   * directly cannot dial outside the quota. Pass it on unchanged to later attempts of the same connection.
   */
  readonly unit?: unknown;
}

/** What a driver may open further channels with (see {@link ConnectAttempt.network}); guard, meter and network are the scope's. */
export interface AttemptNetwork {
  /** Another channel to a `connect` target of this scope. */
  connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel>;
  /** A channel to a `redirect` target of this scope (an HTTP redirect hop). */
  follow(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel>;
}

/** Everything a driver gets for one bind: the checked local address, security, properties and its options. */
export interface ListenAttempt {
  readonly signal: AbortSignal;
  /** The checked local address/port to bind. */
  readonly target: CheckedTarget;
  readonly local: LocalEndpoint;
  readonly security: SecurityParameters;
  readonly properties: TransportProperties;
  readonly options: Readonly<Record<string, unknown>>;
  readonly guard: PolicyGuard;
  /**
   * The tenant's byte budget, when its scope has one: every channel the listener hands over charges what it
   * writes (response heads, framing and payload) before writing it, and says so with
   * `TransportChannel.metered`, as a dialled channel does. Set by the scope's network.
   */
  readonly meter?: ByteMeter | undefined;
  /**
   * The listener unit the library already took for this bind (a Listener's lease), opaque: the bound
   * socket counts under it. Anything else (or nothing) makes the socket take a unit of the tenant's
   * `limit listeners` itself. For `openPeerSocket` it is a connection unit instead (a rendezvous is a
   * connection): the library's grant, or else a unit of `limit connections` the peer socket takes itself.
   */
  readonly unit?: unknown;
}

/** Where a {@link DriverListener} delivers accepted channels and its own failure. */
export interface DriverListenerHandler {
  /**
   * A new peer. The library checks it against the policy (`accept`) before it reaches the user. `stack`:
   * the peer's stack, when a listener shared by several stacks (`Driver.sharedListener`) tells them apart
   * per connection; the library then also checks that stack against the listener's properties.
   */
  connection(channel: TransportChannel, stack?: Driver): void;
  /** The listener failed; it is closed. */
  error(err: Error): void;
}

/** A bound listening socket of one driver; the library wraps it in a `Listener` (src/listener.ts). */
export interface DriverListener {
  readonly local: SocketAddress;
  /** Start delivering accepted channels (once). */
  start(handler: DriverListenerHandler): void;
  /** Stop accepting; connections already handed out stay open. */
  close(): Promise<void>;
}

/** Where a {@link PeerSocket} delivers what arrives before (and, for claimed datagrams, after) it is connected. */
export interface PeerSocketHandler {
  /** One datagram from `from`. Before `connect` every datagram comes here; after it, only those `intercept` claimed. */
  datagram(data: Uint8Array, from: SocketAddress): void;
  /** The socket failed; it is closed. */
  error(err: Error): void;
}

/**
 * One bound, unconnected datagram socket for peer-to-peer establishment (RFC 9622 §7.3 Rendezvous): the
 * library sends connectivity checks and STUN requests from it, each to a target the tenant's policy
 * allowed, then turns it into the connection's channel to the peer that answered. The same socket keeps
 * the NAT bindings the checks made.
 */
export interface PeerSocket {
  /** The bound address and port (the unspecified address when bound to every interface). */
  readonly local: SocketAddress;
  /** Install the handler (once); datagrams that arrived before are delivered now. */
  start(handler: PeerSocketHandler): void;
  /** Send one datagram to a checked target; `done` runs once it left or failed. */
  sendTo(data: Uint8Array, target: CheckedTarget, done: (err?: Error) => void): void;
  /**
   * Connect the socket to `target` and hand it over as a message channel. Datagrams from the peer for
   * which `intercept` returns true still go to the handler (e.g. the peer's late checks); `sendTo` the
   * same target keeps working. Closing the channel closes the socket.
   */
  connect(target: CheckedTarget, intercept: (data: Uint8Array) => boolean): Promise<TransportChannel>;
  /** Close the socket (when it was never connected). Idempotent. */
  close(): Promise<void>;
}

/** A transport driver, registered with the library at run time. */
export interface Driver {
  /** Unique id, e.g. `tcp`, `tls`, `udp`, `ws`, `wss`, `http`, `https`, `quic`, `webtransport-h2`. */
  readonly id: string;
  /** Protocol stack, top first: e.g. `['tls', 'tcp']`. */
  readonly stack: readonly string[];
  /** The scheme the policy sees for this stack. */
  readonly protocol: PolicyProtocol;
  /** The IP protocol underneath (what a UDP-blocked path breaks). */
  readonly ipProtocol: 'tcp' | 'udp';
  readonly framing: Framing;
  /** Security of the stack: only stacks of equal security race each other (RFC 9621 §3.3). */
  readonly security: 'none' | 'tls';
  readonly capabilities: Capabilities;
  /** URL schemes that name this stack in a RemoteEndpoint url (e.g. `wss`), if any. */
  readonly schemes?: readonly string[] | undefined;
  /** Port used when the endpoint gives none. */
  readonly defaultPort?: number | undefined;
  /**
   * Can send to an IP multicast group (a remote endpoint that is a group) and, when it listens, join one
   * (a local endpoint with `multicastGroup`: any-source or source-specific, left again when the listener
   * stops). Stacks without it are unsuitable for group endpoints (RFC 9622 §6.1.1).
   */
  readonly multicast?: boolean | undefined;
  /**
   * Stacks one listening socket serves together carry the same name (QUIC with and without datagrams:
   * one UDP port, the peer's transport parameters tell them apart). `listen()` binds only the best ranked
   * of them per address, and its listener hands each connection over with its stack.
   */
  readonly sharedListener?: string;
  /** Whether it can run here (e.g. an optional native module is missing). Must not throw or print. */
  available(): Availability | Promise<Availability>;
  /**
   * Optional: whether the pieces it needs are installed, answered at once from what is on disk, loading
   * nothing. A selection asks it of every driver before judging the request, so a stack whose optional piece
   * is missing is reported `unavailable` (not `unsuitable` for some property) whatever was asked.
   * `available()` is still asked of the stacks that suit the request.
   */
  installed?(): Availability;
  /**
   * Optional: false while `available()` would first load a module of its own (and so answer with a promise);
   * answered at once, loading nothing. A selection then asks `available()` only when the stack's turn to
   * start an attempt (or bind) comes, so loading it takes no time from the candidates ranked ahead of it,
   * and a stack whose turn never comes (another won first) is never loaded. `warmUp()` loads it up front.
   */
  loaded?(): boolean;
  /** Connect to `attempt.target` only; reject with a TapsError (the signal's reason on abort). */
  connect(attempt: ConnectAttempt): Promise<TransportChannel>;
  /** Bind `attempt.target` and listen; absent when the stack cannot listen. */
  listen?(attempt: ListenAttempt): Promise<DriverListener>;
  /** Bind `attempt.target` as a {@link PeerSocket} for rendezvous; absent when the stack cannot (only datagram stacks can). */
  openPeerSocket?(attempt: ListenAttempt): Promise<PeerSocket>;
}

/**
 * The signal of an attempt that nothing can abort (no caller signal, no timeout, nothing raced against
 * it): one shared signal that never aborts. A driver may compare against it and skip its abort listener;
 * one that listens anyway must remove its listener when the attempt settles, like on any signal. It has
 * no listener limit (many attempts may be in flight at once).
 */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
setMaxListeners(0, NEVER_ABORTED);
