/**
 * A message {@link TransportChannel} over the datagrams of one WebTransport
 * session over HTTP/3 (RFC 9297 HTTP datagrams in QUIC DATAGRAM frames, RFC
 * 9221): unreliable, unordered, each `send` one datagram of at most
 * `maxMessageSize` bytes (the session's `maxDatagramSize`), each received
 * datagram one `receiver.data` call. There is no backpressure to wait for
 * (a datagram that does not fit the congestion window is dropped, as UDP
 * would), so `send` always returns true. The channel owns its session:
 * `close()` closes the session (code 0), `abort()` closes it with code 1.
 * Streams the peer opens in a datagram session are refused.
 *
 * Only used by the `webtransport-h3-datagram` driver: over HTTP/2 the
 * package's "datagrams" ride the TCP stream, so no driver offers them there.
 *
 * @example
 * const ch = new DatagramChannel(session, { local, remote, info });
 * ch.start({ data: (m) => got(m), end() {}, drain() {}, closed: (e) => done(e) });
 */
import type { ReadableStreamDefaultReader, ReadableStreamReadResult, WritableStreamDefaultWriter } from 'node:stream/web';
import type { ByteMeter, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { localAbortError } from '../kit/errors.js';
import { Inbox } from '../kit/inbox.js';
import type { WtSession } from './engine.js';
import { sessionClosedError, streamError } from './errors.js';
import type { ReadMeter } from './group.js';
import { selfMetered } from '../../src/policy/self-metered.js';

export interface DatagramChannelOptions {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  /** A client's byte budget: each datagram is charged before it is written. */
  readonly meter?: ByteMeter | undefined;
  /**
   * Charges each datagram read before it is delivered; over the budget the session ends with the
   * QuotaExceededError (HTTP/3: nothing below counts the reads, the native module owns the UDP socket).
   */
  readonly readMeter?: ReadMeter | undefined;
}

export class DatagramChannel implements TransportChannel {
  readonly framing = 'message' as const;
  readonly maxMessageSize: number;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  readonly #session: WtSession;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #inbox = new Inbox();
  #reading = false;
  #paused = false;
  #finished = false;
  #closing = false;

  readonly #meter: ByteMeter | undefined;
  readonly #readMeter: ReadMeter | undefined;

  constructor(session: WtSession, options: DatagramChannelOptions) {
    this.#session = session;
    this.#meter = options.meter;
    this.#readMeter = options.readMeter;
    selfMetered(this, options.meter !== undefined, options.readMeter !== undefined);
    this.local = options.local;
    this.remote = options.remote;
    this.info = options.info;
    this.maxMessageSize = session.datagrams.maxDatagramSize;
    this.#reader = session.datagrams.readable.getReader();
    this.#writer = session.datagrams.createWritable().getWriter();
    this.#reader.closed.catch(() => {});
    this.#writer.closed.catch(() => {});
    session.closed.then(
      (info) => this.#finish(this.#closing || info?.closeCode === 0 ? undefined : sessionClosedError(info?.closeCode, info?.reason ?? ''), false),
      (err: unknown) => this.#finish(streamError(err), false),
    );
    void this.#refuseStreams();
  }

  /** Datagrams are charged to the client's byte budget here. */
  get metered(): boolean {
    return this.#meter !== undefined;
  }

  /** Datagrams read are charged to the tenant's received budget here (when it has one). */
  get receiveMetered(): boolean {
    return this.#readMeter !== undefined;
  }

  start(receiver: ChannelReceiver): void {
    this.#inbox.start(receiver);
    this.#pump();
  }

  send(data: Uint8Array, _meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    let err: Error | undefined;
    if (this.#finished || this.#closing) err = new SendError('ERR_TAPS_INVALID_STATE', 'the WebTransport session is closing or closed');
    else if (data.byteLength > this.maxMessageSize) err = new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `a datagram of ${data.byteLength} bytes exceeds the maximum of ${this.maxMessageSize}`);
    else if (this.#meter !== undefined) {
      try {
        this.#meter.sent(data.byteLength);
      } catch (quota) {
        err = quota as Error;
      }
    }
    if (err) {
      const e = err;
      queueMicrotask(() => done(e));
      return true;
    }
    this.#writer.write(data).then(
      () => done(),
      (e: unknown) => done(new SendError('ERR_TAPS_SEND_FAILED', 'the datagram could not be sent', { cause: streamError(e) })),
    );
    return true;
  }

  pause(): void {
    this.#paused = true;
    this.#inbox.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#inbox.resume();
    this.#pump();
  }

  async close(): Promise<void> {
    if (!this.#finished && !this.#closing) {
      this.#closing = true;
      this.#session.close({ closeCode: 0, reason: '' });
    }
    await this.#session.closed.catch(() => undefined);
  }

  abort(reason?: Error): void {
    if (this.#finished) return;
    this.#finish(localAbortError(reason), true);
    this.#session.close({ closeCode: 1, reason: 'aborted' });
  }

  #pump(): void {
    if (this.#reading || this.#paused || this.#finished || !this.#inbox.started) return;
    this.#reading = true;
    this.#reader.read().then(this.#onRead, () => (this.#reading = false));
  }

  readonly #onRead = (r: ReadableStreamReadResult<Uint8Array>): void => {
    this.#reading = false;
    if (this.#finished || r.done) return;
    if (this.#readMeter !== undefined) {
      try {
        this.#readMeter.received(r.value.byteLength);
      } catch (err) {
        this.#finish(err as Error, false);
        this.#session.close({ closeCode: 1, reason: 'over the received budget' });
        return;
      }
    }
    this.#inbox.data(r.value);
    this.#pump();
  };

  #finish(error: Error | undefined, now: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#reader.cancel().catch(() => {});
    if (now) this.#inbox.closedNow(error);
    else this.#inbox.closedAfterQueue(error);
  }

  async #refuseStreams(): Promise<void> {
    const reader = this.#session.incomingBidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        value.writable.abort().catch(() => {});
        value.readable.cancel().catch(() => {});
      }
    } catch {
      // The session ended.
    } finally {
      reader.releaseLock();
    }
  }
}
