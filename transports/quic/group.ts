/**
 * One QUIC connection as a connection group (RFC 9622 §7.4): each
 * bidirectional stream is one channel, and the connection lives while one of
 * them is open — a reference count, like transports/webtransport/group.ts.
 *
 * A `quic` connection's channels are byte streams (the WebTransport drivers'
 * StreamChannel, which speaks the same `{ readable, writable }` pair). A
 * `quic-dgram` connection's (`messages` set) are flows of messages
 * (./message-channel.ts): its QUIC DATAGRAMs go through one DatagramMux
 * (./datagram-mux.ts), and each unidirectional stream the peer opens carries
 * one reliable unordered message of the flow it names.
 *
 * - `openStream()` (Connection `clone()`) opens a new bidirectional stream:
 *   no head-of-line blocking between streams, one handshake for all.
 * - Streams the peer opens go to the oldest open channel's `receiver.stream`
 *   (the Connection emits them as new grouped connections); on a listener's
 *   connection with no channel yet, the first one goes to `accept`.
 *   On a `quic` connection, unidirectional peer streams have no channel shape
 *   and are refused (STOP_SENDING).
 * - The connection closing under its streams (peer CONNECTION_CLOSE, idle
 *   timeout) ends every open channel with ERR_TAPS_CONNECTION_ABORTED or
 *   ERR_TAPS_TIMEOUT; a client's peer found gone (`lost()`, ./peer-loss.ts)
 *   with ERR_TAPS_CONNECTION_RESET, and its ICMP reports before that reach
 *   every channel as soft errors.
 * - The last channel closing closes the connection (application close, code
 *   0) and its UDP socket.
 *
 * @example
 * const group = new QuicGroup(client.connection, { local, remote, info, teardown: () => client.destroy({ force: true }) }, { closeTimeout });
 * const first = group.add(client.connection.newStream('bidi'));
 */
import type { QUICConnection, QUICStream } from '@matrixai/quic';
import type { ByteMeter, SocketAddress, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import type { MessageDefaults } from '../../src/provided.js';
import { StreamChannel, type StreamGroup } from '../kit/web-stream-channel.js';
import { DatagramMux, type DatagramMuxOptions } from './datagram-mux.js';
import { AloneMessages } from './alone.js';
import type { QuicEngine } from './engine.js';
import { connectionGoneError, quicStreamError } from './errors.js';
import { QuicMessageChannel, type FlowHost } from './message-channel.js';

/** A channel of the group: a byte stream (`quic`) or a flow of messages (`quic-dgram`). */
type Member = StreamChannel | QuicMessageChannel;

/** What carries the connection, as the group needs it. */
export interface QuicTransport {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  /** Close the connection (and the client's socket); resolves when released. */
  teardown(): Promise<void>;
}

export interface QuicGroupOptions {
  readonly closeTimeout: number;
  /** Listener side: where a peer stream goes while the group has no open channel. */
  readonly accept?: (channel: TransportChannel) => void;
  /** A `quic-dgram` connection: its channels carry messages, with these defaults and datagram pacing. */
  readonly messages?: (DatagramMuxOptions & { readonly defaults: MessageDefaults }) | undefined;
  /** The tenant's byte budget (a client's or a listener's): what its channels send is charged to it first. */
  readonly meter?: ByteMeter | undefined;
  /** True when the client's socket charges every datagram it reads to the received budget (./wire.ts). */
  readonly receiveMetered?: boolean | undefined;
}

/** The part of quiche's connection (package-internal `conn`, @matrixai/quic ~2.0.9) the group uses: stream retirement and priority. */
interface QuicheConn {
  streamCapacity(streamId: number): number;
  streamPriority(streamId: number, urgency: number, incremental: boolean): void;
  peerStreamsLeftUni(): number;
  isClosed(): boolean;
  isDraining(): boolean;
}

function quicheOf(connection: QUICConnection): QuicheConn | undefined {
  const conn = (connection as unknown as { conn?: QuicheConn }).conn;
  return conn && typeof conn.streamCapacity === 'function' ? conn : undefined;
}

/**
 * The RFC 9218 urgency (0 most urgent … 7 least) quiche schedules a stream by, for a connPriority (lower
 * is sooner, RFC 9622 §8.1.2): steps of 33, so the default 100 is quiche's default urgency 3.
 */
export function urgencyOf(connPriority: number): number {
  return Math.min(7, Math.floor(connPriority / 33));
}

const POLL_MS = 2;

/**
 * Wait until quiche has retired every stream (it drops a stream once both
 * directions are finished and everything sent, FIN included, was
 * acknowledged; `streamCapacity` then throws), at most `limit` ms. Closing
 * the connection earlier would discard data still in flight: CONNECTION_CLOSE
 * ends delivery at once (RFC 9000 §10.2).
 */
function drained(connection: QUICConnection, ids: ReadonlySet<number>, limit: number): Promise<void> {
  const conn = quicheOf(connection);
  if (!conn) return Promise.resolve();
  const live = (): boolean => {
    if (conn.isClosed() || conn.isDraining()) return false;
    for (const id of ids) {
      try {
        conn.streamCapacity(id);
        return true;
      } catch {
        // Retired (or reset): nothing of ours left in flight on it.
      }
    }
    return false;
  };
  if (limit <= 0 || !live()) return Promise.resolve();
  const deadline = Date.now() + limit;
  return new Promise<void>((resolve) => {
    const tick = (): void => {
      if (!live() || Date.now() >= deadline) resolve();
      else setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  });
}

export class QuicGroup implements StreamGroup, FlowHost {
  readonly #connection: QUICConnection;
  readonly #transport: QuicTransport;
  readonly #options: QuicGroupOptions;
  readonly #channels = new Set<Member>();
  /** Message flows by flow id (their stream id), for the unidirectional streams that name them. */
  readonly #flows = new Map<number, QuicMessageChannel>();
  readonly #mux: DatagramMux | undefined;
  /** Reliable unordered messages arriving on the peer's unidirectional streams. */
  readonly #alone: AloneMessages | undefined;
  /** Every stream id this group used: closing waits until quiche has retired them (all data acknowledged). */
  readonly #streamIds = new Set<number>();
  readonly #idOf = new WeakMap<Member, number>();
  #closed = false;
  /** The last open stream was aborted: tear down without waiting for delivery. */
  #abandoned = false;
  #teardown: Promise<void> | undefined;

  constructor(engine: QuicEngine, connection: QUICConnection, transport: QuicTransport, options: QuicGroupOptions) {
    this.#connection = connection;
    this.#transport = transport;
    this.#options = options;
    if (options.messages !== undefined) {
      this.#mux = new DatagramMux(connection, options.messages);
      this.#alone = new AloneMessages(this.#mux.stats);
    }
    const { events } = engine.api;
    connection.addEventListener(events.EventQUICConnectionStream.name, (evt: Event) => this.#incoming((evt as unknown as { detail: QUICStream }).detail));
    connection.addEventListener(events.EventQUICConnectionError.name, (evt: Event) => this.#gone(connectionGoneError((evt as unknown as { detail: unknown }).detail)), { once: true });
    connection.closedP.then(
      () => this.#gone(connectionGoneError(undefined)),
      (err: unknown) => this.#gone(connectionGoneError(err)),
    );
  }

  /** Open channels in the group. */
  get size(): number {
    return this.#channels.size;
  }

  /** Its teardown, once begun (the last channel closed, or the connection was aborted or lost); undefined while in use. */
  get ending(): Promise<void> | undefined {
    return this.#teardown;
  }

  /** The datagram side of a `quic-dgram` connection. */
  get meter(): ByteMeter | undefined {
    return this.#options.meter;
  }

  get receiveMetered(): boolean {
    return this.#options.receiveMetered === true;
  }

  get mux(): DatagramMux {
    if (this.#mux === undefined) throw new TypeError('a quic connection without datagrams has no datagram mux');
    return this.#mux;
  }

  /** Wrap a bidirectional stream of this connection as a channel of the group. */
  add(stream: QUICStream): Member {
    const id = stream.streamId as number;
    this.#streamIds.add(id);
    const init = {
      local: this.#transport.local,
      remote: this.#transport.remote,
      info: this.#transport.info,
      closeTimeout: this.#options.closeTimeout,
      streamError: quicStreamError,
    };
    const messages = this.#options.messages;
    let channel: Member;
    if (messages === undefined) channel = new StreamChannel(stream, this, { ...init, priority: false });
    else {
      const flow = new QuicMessageChannel(stream, this, { ...init, defaults: messages.defaults });
      this.#flows.set(id, flow);
      this.#alone!.flowOpened(id, (m) => flow.alone(m));
      channel = flow;
    }
    this.#channels.add(channel);
    this.#idOf.set(channel, id);
    return channel;
  }

  /** A new unidirectional stream for one reliable unordered message; throws when the peer allows none now. */
  openUni(): QUICStream {
    const conn = quicheOf(this.#connection);
    if (this.#closed || conn === undefined || conn.peerStreamsLeftUni() === 0) throw new TapsError('ERR_TAPS_INVALID_STATE', 'no unidirectional stream available');
    const stream = this.#connection.newStream('uni');
    this.#streamIds.add(stream.streamId as number);
    return stream;
  }

  openStream(): Promise<TransportChannel> {
    if (this.#closed) return Promise.reject(new TapsError('ERR_TAPS_INVALID_STATE', 'cannot open a stream: the QUIC connection is closed'));
    try {
      return Promise.resolve(this.add(this.#connection.newStream('bidi')));
    } catch (err) {
      const limit = (err as { name?: string } | undefined)?.name === 'ErrorQUICStreamLimit';
      return Promise.reject(new TapsError(limit ? 'ERR_TAPS_NOT_CLONEABLE' : 'ERR_TAPS_INVALID_STATE', limit ? 'the peer allows no more streams on this connection' : `cannot open a stream: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
    }
  }

  aborting(channel: Member): void {
    if (this.#channels.size === 1 && this.#channels.has(channel)) this.#abandoned = true;
  }

  release(channel: Member): Promise<void> {
    this.#channels.delete(channel);
    const id = this.#idOf.get(channel);
    if (id !== undefined && this.#flows.get(id) === channel) {
      this.#flows.delete(id);
      this.#alone?.flowEnded(id);
    }
    if (this.#channels.size > 0) return Promise.resolve();
    return this.#close();
  }

  /**
   * connPriority: the stream's urgency in quiche's scheduler (RFC 9218 via {@link urgencyOf}; incremental,
   * so equal urgencies share the connection round-robin). A stream quiche has already retired has nothing
   * left to schedule: the value is kept and ignored. Nothing else is connection-wide here.
   */
  setOption(name: string, value: unknown, channel: Member): boolean {
    if (name !== 'connPriority' || typeof value !== 'number' || !Number.isFinite(value) || value < 0) return false;
    const id = this.#idOf.get(channel);
    const conn = quicheOf(this.#connection);
    if (id === undefined || conn === undefined) return true;
    try {
      conn.streamPriority(id, urgencyOf(value), true);
    } catch {
      // Finished or reset: nothing of it is waiting to be sent.
    }
    return true;
  }

  /** A soft error for every open channel (an ICMP unreachable for the peer, ./peer-loss.ts): the connection stays. */
  softError(error: Error): void {
    for (const ch of this.#channels) ch.softError(error);
  }

  /**
   * The peer is gone (./peer-loss.ts): every open channel ends with `error` and the connection is torn
   * down at once, without waiting for data in flight to be acknowledged (nobody will acknowledge it).
   */
  lost(error: TapsError): void {
    this.#abandoned = true;
    this.#gone(error);
  }

  /** Abort every channel and close the connection (a listener dropping a connection nobody took). */
  abort(reason: Error): void {
    for (const ch of [...this.#channels]) ch.abort(reason);
    void this.#close();
  }

  #close(): Promise<void> {
    if (!this.#teardown) {
      this.#closed = true;
      this.#teardown = drained(this.#connection, this.#streamIds, this.#abandoned ? 0 : this.#options.closeTimeout)
        .then(() => {
          this.#mux?.close();
          this.#alone?.close();
          return this.#transport.teardown();
        })
        .catch(() => {});
    }
    return this.#teardown;
  }

  #gone(error: TapsError): void {
    if (this.#closed && this.#channels.size === 0) return;
    this.#closed = true;
    this.#mux?.close();
    this.#alone?.close();
    for (const ch of [...this.#channels]) ch.sessionGone(error);
    void this.#close();
  }

  #incoming(stream: QUICStream): void {
    if (stream.type !== 'bidi') {
      if (this.#alone !== undefined) this.#alone.read(stream);
      else stream.cancel(Object.assign(new Error('unidirectional streams are not supported'), { code: 0 }));
      return;
    }
    const channel = this.add(stream);
    for (const ch of this.#channels) {
      if (ch !== channel && ch.open) {
        ch.peerStream(channel);
        return;
      }
    }
    if (this.#options.accept && !this.#closed) this.#options.accept(channel);
    else channel.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer opened a stream on a connection that is closing'));
  }
}
