/**
 * One WebTransport session as a connection group (RFC 9622 §7.4): every
 * bidirectional stream of the session is one {@link StreamChannel}; the
 * session stays up while at least one of them is open and is closed (then its
 * transport torn down) when the last one closes: a reference count.
 *
 * Streams the peer opens: the oldest open channel of the group gets them at
 * `receiver.stream` (the Connection turns that into `connectionReceived`). A
 * session accepted by a listener has no channel before its first peer stream,
 * so that one goes to `accept` (the listener's `handler.connection`) instead.
 * Unidirectional streams have no TransportChannel shape here: the peer's are
 * refused with STOP_SENDING.
 *
 * When the session closes (the peer closed it, its CONNECT stream or TCP
 * connection died), every channel still open ends with
 * ERR_TAPS_CONNECTION_ABORTED (`sessionCloseCode` on the error).
 *
 * @example
 * const group = new SessionGroup(session, transport, { closeTimeout: 2000 });
 * const first = group.add(await session.createBidirectionalStream());
 */
import type { ByteMeter, SocketAddress, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import { StreamChannel, type StreamGroup } from '../kit/web-stream-channel.js';
import type { WtSession, WtStream } from './engine.js';
import { sessionClosedError, streamError } from './errors.js';

/** The transport under a session, as the group needs it. */
export interface SessionTransport {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  /**
   * Release what carries the session (HTTP/2 connection, socket); resolves when it is gone. `abandoned`:
   * the session was aborted, so nothing of it waits for the peer (it may be aborting at the same time).
   */
  teardown(abandoned: boolean): Promise<void>;
  /** Session-wide options; true when handled. */
  setOption?(name: string, value: unknown): boolean;
}

export interface SessionGroupOptions {
  readonly closeTimeout: number;
  /** Listener side: where a peer stream goes while the group has no open channel. */
  readonly accept?: (channel: TransportChannel) => void;
  /** The tenant's byte budget (a client's or a listener's): what its streams send is charged to it first. */
  readonly meter?: ByteMeter | undefined;
  /** The session's TCP socket charges everything it reads (its channels say so: TransportChannel.receiveMetered). */
  readonly receiveMetered?: boolean | undefined;
  /**
   * Charges each chunk its streams read before delivering it; over the budget the session ends with the
   * QuotaExceededError. Only where nothing below counts the reads (HTTP/3: the native module owns the UDP
   * socket); never with `receiveMetered`, which would count them twice.
   */
  readonly readMeter?: ReadMeter | undefined;
}

/** Where a session's reads are charged: throws QuotaExceededError when the received budget is spent. */
export interface ReadMeter {
  /** Charge `bytes` read; throws QuotaExceededError when over the budget. */
  received(bytes: number): void;
}

export class SessionGroup implements StreamGroup {
  readonly #session: WtSession;
  readonly #transport: SessionTransport;
  readonly #options: SessionGroupOptions;
  readonly #channels = new Set<StreamChannel>();
  #closed = false;
  /** The last open stream was aborted (or the listener dropped the session): tear down without waiting for the peer. */
  #abandoned = false;
  #teardown: Promise<void> | undefined;

  get meter(): ByteMeter | undefined {
    return this.#options.meter;
  }

  get receiveMetered(): boolean {
    return this.#options.receiveMetered === true || this.#options.readMeter !== undefined;
  }

  received(bytes: number): boolean {
    const meter = this.#options.readMeter;
    if (meter === undefined) return true;
    try {
      meter.received(bytes);
      return true;
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
  }

  constructor(session: WtSession, transport: SessionTransport, options: SessionGroupOptions) {
    this.#session = session;
    this.#transport = transport;
    this.#options = options;
    session.closed.then(
      (info) => this.#gone(sessionClosedError(info?.closeCode, info?.reason ?? '')),
      (err: unknown) => this.#gone(streamError(err)),
    );
    void this.#incoming();
    void this.#refuseUnidirectional();
  }

  /** Open channels in the group. */
  get size(): number {
    return this.#channels.size;
  }

  /** Wrap a stream of this session as a channel of the group. */
  add(stream: WtStream): StreamChannel {
    const channel = new StreamChannel(stream, this, { local: this.#transport.local, remote: this.#transport.remote, info: this.#transport.info, closeTimeout: this.#options.closeTimeout, streamError });
    this.#channels.add(channel);
    return channel;
  }

  async openStream(): Promise<TransportChannel> {
    if (this.#closed) throw new TapsError('ERR_TAPS_INVALID_STATE', 'cannot open a stream: the WebTransport session is closed');
    let stream: WtStream;
    try {
      stream = await this.#session.createBidirectionalStream();
    } catch (err) {
      const quota = (err as { name?: string } | undefined)?.name === 'QuotaExceededError';
      throw new TapsError(quota ? 'ERR_TAPS_NOT_CLONEABLE' : 'ERR_TAPS_INVALID_STATE', quota ? 'the peer allows no more streams in this session' : `cannot open a stream: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    if (this.#closed) {
      stream.writable.abort().catch(() => {});
      stream.readable.cancel().catch(() => {});
      throw new TapsError('ERR_TAPS_INVALID_STATE', 'cannot open a stream: the WebTransport session closed meanwhile');
    }
    return this.add(stream);
  }

  aborting(channel: StreamChannel): void {
    if (this.#channels.size === 1 && this.#channels.has(channel)) this.#abandoned = true;
  }

  release(channel: StreamChannel): Promise<void> {
    this.#channels.delete(channel);
    if (this.#channels.size > 0) return Promise.resolve();
    return this.#close();
  }

  setOption(name: string, value: unknown): boolean {
    return this.#transport.setOption?.(name, value) ?? false;
  }

  /** Close the session and tear its transport down (idempotent): the last stream closed, or the listener gave up. */
  #close(): Promise<void> {
    if (!this.#teardown) {
      this.#closed = true;
      try {
        this.#session.close({ closeCode: 0, reason: '' });
      } catch {
        // Already closed or failed: the transport goes all the same.
      }
      this.#teardown = this.#transport.teardown(this.#abandoned);
    }
    return this.#teardown;
  }

  /** Abort every channel and close the session (a listener dropping a session nobody took). */
  abort(reason: Error): void {
    this.#abandoned = true;
    for (const ch of [...this.#channels]) ch.abort(reason);
    void this.#close();
  }

  /** End every channel with `error` (the session's transport failed under it: a byte budget exceeded) and close. */
  fail(error: Error): void {
    this.#gone(error);
  }

  #gone(error: Error): void {
    this.#closed = true;
    for (const ch of [...this.#channels]) ch.sessionGone(error);
    void this.#close();
  }

  async #incoming(): Promise<void> {
    const reader = this.#session.incomingBidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#route(this.add(value));
      }
    } catch {
      // The session failed: #gone handles the channels.
    } finally {
      reader.releaseLock();
    }
  }

  #route(channel: StreamChannel): void {
    for (const ch of this.#channels) {
      if (ch !== channel && ch.open) {
        ch.peerStream(channel);
        return;
      }
    }
    if (this.#options.accept && !this.#closed) this.#options.accept(channel);
    else channel.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer opened a stream in a session that is closing'));
  }

  async #refuseUnidirectional(): Promise<void> {
    const reader = this.#session.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        value.cancel(Object.assign(new Error('unidirectional streams are not supported'), { code: 0 })).catch(() => {});
      }
    } catch {
      // The session failed.
    } finally {
      reader.releaseLock();
    }
  }
}
