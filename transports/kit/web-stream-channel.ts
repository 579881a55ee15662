/**
 * A {@link TransportChannel} over one bidirectional stream given as a W3C
 * `{ readable, writable }` pair: the byte-stream channel the WebTransport and
 * QUIC drivers hand out. Several of them share one session or connection (a
 * connection group, RFC 9622 §7.4), which lives as long as one of them is
 * open (the driver's {@link StreamGroup}).
 *
 * - Receive: nothing is read before `start()`; after it, each chunk the
 *   reader yields goes to `receiver.data`, the peer's FIN to `receiver.end`.
 *   `pause()` stops reading, so the stream's flow-control window closes and
 *   the peer stops (real receive backpressure).
 * - Send: chunks under 16 KiB sent in one tick are joined into one write (one
 *   capsule, one write promise), larger ones go out as they are. `send` returns
 *   false while the writer's queue is full; `receiver.drain` follows when it
 *   has room. `meta.final` sends FIN after the data (RFC 9622 §9.1.3.5).
 * - `close()`: FIN after pending data, then wait until the peer finished its
 *   side too; bounded by `closeTimeout` ms (then STOP_SENDING; an error only if
 *   our own data had not all gone out). `abort()`: RESET_STREAM and
 *   STOP_SENDING (RFC 9623 §5.1 Abort), pending sends fail.
 * - A reader or writer rejection (the peer's RESET_STREAM or STOP_SENDING, the
 *   session closing under it) ends the channel with the error the driver's
 *   `streamError` mapping makes of it.
 * - `openStream()` opens a sibling stream in the same session; streams the
 *   peer opens arrive at `receiver.stream` of the group's oldest open channel.
 * - `setOption('connPriority', n)`: lower n is sent first (the stream's
 *   `sendOrder` is -n, W3C WebTransport "sendOrder"); a driver whose streams
 *   have no `sendOrder` (option `priority: false`) sets it in the group.
 *
 * @example
 * const ch = group.add(await session.createBidirectionalStream());
 * ch.start({ data: (b) => got(b), end() {}, drain() {}, closed: (e) => done(e), stream: (s) => other(s) });
 */
import type { ReadableStream, ReadableStreamDefaultReader, ReadableStreamReadResult, WritableStream, WritableStreamDefaultWriter } from 'node:stream/web';
import type { ByteMeter, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { localAbortError } from './errors.js';
import { Inbox } from './inbox.js';
import { selfMetered } from '../../src/policy/self-metered.js';

/** One bidirectional stream as the W3C pair (WebTransport's, or the QUIC package's). */
export interface WebStreamPair {
  readonly readable: ReadableStream<Uint8Array>;
  /** `sendOrder`: higher is sent first (W3C WebTransport §"sendOrder"). */
  readonly writable: WritableStream<Uint8Array> & { sendOrder?: number };
}

/** Sends smaller than this are joined with the others of the same tick. */
export const COALESCE_LIMIT = 16 * 1024;

type Done = (err?: Error) => void;

/** What a channel needs from its session group. */
export interface StreamGroup {
  /** The channel is gone; resolves when the group's transport is down too, if it was the last. */
  release(channel: StreamChannel): Promise<void>;
  openStream(): Promise<TransportChannel>;
  /** Options the stream itself cannot take (keepAlive, or connPriority when `priority` is false); true when handled. */
  setOption(name: string, value: unknown, channel: StreamChannel): boolean;
  /** Told before an abort() releases the channel: nothing of it needs to be delivered any more. */
  aborting?(channel: StreamChannel): void;
  /** The tenant's byte budget (a client's group): every send on its streams is charged before it is written. */
  readonly meter?: ByteMeter | undefined;
  /** True when the group's socket charges everything it reads (TransportChannel.receiveMetered). */
  readonly receiveMetered?: boolean | undefined;
  /**
   * Charge `bytes` a stream of the group read, before they are delivered; false when over the budget (the
   * group has then ended its streams with the error). Absent: nothing is charged here.
   */
  received?(bytes: number): boolean;
}

export interface StreamChannelOptions {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  /** ms a graceful close may take. */
  readonly closeTimeout: number;
  /** How a reader/writer rejection becomes a TapsError: the driver's own mapping (WebTransport's, QUIC's). */
  readonly streamError: (err: unknown) => TapsError;
  /** False when the stream cannot honour `connPriority` (the option then goes to the group). Default true. */
  readonly priority?: boolean;
}

/** The reason handed to the package's abort/cancel: its `code` becomes the RESET_STREAM / STOP_SENDING code. */
function wireReason(code: number): Error {
  return Object.assign(new Error('aborted'), { code });
}

function settle(dones: Done | Done[], err?: Error): void {
  if (typeof dones === 'function') dones(err);
  else for (const d of dones) d(err);
}

export class StreamChannel implements TransportChannel {
  readonly framing = 'stream' as const;
  readonly maxMessageSize = Infinity;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;

  readonly #stream: WebStreamPair;
  readonly #group: StreamGroup;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #inbox = new Inbox();
  readonly #closeTimeout: number;
  readonly #streamError: (err: unknown) => TapsError;
  readonly #priority: boolean;
  #reading = false;
  #paused = false;
  #readDone = false;
  #writeDone = false;
  #writeClosed = false;
  #finished = false;
  #batch: Uint8Array[] = [];
  #batchDone: Done[] = [];
  #batchBytes = 0;
  readonly #inflight = new Set<{ dones: Done | Done[] }>();
  #flushQueued = false;
  #waitingReady = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #closing: Promise<void> | undefined;
  #resolveClosing: (() => void) | undefined;
  #released: Promise<void> | undefined;

  constructor(stream: WebStreamPair, group: StreamGroup, options: StreamChannelOptions) {
    this.#stream = stream;
    this.#group = group;
    selfMetered(this, group.meter !== undefined, group.receiveMetered === true);
    this.local = options.local;
    this.remote = options.remote;
    this.info = options.info;
    this.#closeTimeout = options.closeTimeout;
    this.#streamError = options.streamError;
    this.#priority = options.priority ?? true;
    this.#reader = stream.readable.getReader();
    this.#writer = stream.writable.getWriter();
    this.#reader.closed.catch(() => {});
    this.#writer.closed.then(
      () => {
        this.#writeDone = true;
        this.#maybeFinish();
      },
      (err: unknown) => this.#fail(this.#streamError(err)),
    );
  }

  /** Sends are charged to the group's byte budget here (see `StreamGroup.meter`). */
  get metered(): boolean {
    return this.#group.meter !== undefined;
  }

  /** What arrives is charged at the group's socket (see `StreamGroup.receiveMetered`). */
  get receiveMetered(): boolean {
    return this.#group.receiveMetered === true;
  }

  /** Still open (the group routes peer-opened streams to the oldest open channel). */
  get open(): boolean {
    return !this.#finished;
  }

  start(receiver: ChannelReceiver): void {
    this.#inbox.start(receiver);
    this.#pump();
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: Done): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    if (this.#writeClosed || this.#finished) {
      const err = this.#finished
        ? new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the stream is closed')
        : new SendError('ERR_TAPS_INVALID_STATE', 'the sending side of the stream is already closed');
      queueMicrotask(() => done(err));
      return true;
    }
    const meter = this.#group.meter;
    if (meter !== undefined) {
      try {
        meter.sent(data.byteLength);
      } catch (err) {
        queueMicrotask(() => done(err as Error));
        return true;
      }
    }
    if (data.byteLength < COALESCE_LIMIT) {
      this.#batch.push(data);
      this.#batchDone.push(done);
      this.#batchBytes += data.byteLength;
      if (this.#batchBytes >= COALESCE_LIMIT) this.#flush();
      else if (!this.#flushQueued) {
        this.#flushQueued = true;
        process.nextTick(this.#flushTick);
      }
    } else {
      this.#flush();
      this.#write(data, done);
    }
    if (meta.final === true) this.#endWriting();
    return this.#canWrite();
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

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = new Promise<void>((resolve) => (this.#resolveClosing = resolve));
    if (this.#finished) this.#settleClosing();
    else {
      if (!this.#writeClosed) this.#endWriting();
      if (Number.isFinite(this.#closeTimeout)) this.#closeTimer = setTimeout(this.#onCloseTimeout, this.#closeTimeout);
      this.#maybeFinish();
    }
    return this.#closing;
  }

  abort(reason?: Error): void {
    if (this.#finished) return;
    this.#group.aborting?.(this);
    this.#writeClosed = true;
    this.#finish(localAbortError(reason), true);
    this.#resetBoth();
  }

  openStream(): Promise<TransportChannel> {
    if (this.#finished) return Promise.reject(new TapsError('ERR_TAPS_INVALID_STATE', 'cannot open a stream: this stream is closed'));
    return this.#group.openStream();
  }

  setOption(name: string, value: unknown): void {
    if (this.#priority && name === 'connPriority' && typeof value === 'number' && Number.isFinite(value) && value >= 0) {
      this.#stream.writable.sendOrder = -value;
      return;
    }
    if (this.#group.setOption(name, value, this)) return;
    throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `these streams have no option ${name} with value ${String(value)}`);
  }

  /** A stream the peer opened in this session: delivered to this channel's receiver. */
  peerStream(channel: TransportChannel): void {
    this.#inbox.stream(channel);
  }

  /** A soft error the session's transport reported (RFC 9622 §8.3.1): the channel stays open. */
  softError(error: Error): void {
    if (!this.#finished) this.#inbox.softError(error);
  }

  /** The session is gone: end with `error` unless already finished. */
  sessionGone(error: Error): void {
    if (this.#finished) return;
    this.#writeClosed = true;
    this.#finish(error, false);
  }

  // ── receive ──────────────────────────────────────────────────────────

  #pump(): void {
    if (this.#reading || this.#paused || this.#readDone || this.#finished || !this.#inbox.started) return;
    this.#reading = true;
    this.#reader.read().then(this.#onRead, this.#onReadError);
  }

  readonly #onRead = (r: ReadableStreamReadResult<Uint8Array>): void => {
    this.#reading = false;
    if (this.#finished) return;
    if (r.done) {
      this.#readDone = true;
      this.#inbox.end();
      this.#maybeFinish();
      return;
    }
    if (r.value.byteLength > 0) {
      if (this.#group.received?.(r.value.byteLength) === false) return;
      this.#inbox.data(r.value);
    }
    this.#pump();
  };

  readonly #onReadError = (err: unknown): void => {
    this.#reading = false;
    this.#fail(this.#streamError(err));
  };

  // ── send ─────────────────────────────────────────────────────────────

  /** Each write's callbacks until the writer settles them, or the channel ends (an abort does not wait for a blocked write). */
  #write(chunk: Uint8Array, dones: Done | Done[]): void {
    const entry: { dones: Done | Done[] } = { dones };
    this.#inflight.add(entry);
    this.#writer.write(chunk).then(
      () => {
        if (this.#inflight.delete(entry)) settle(dones);
      },
      (err: unknown) => {
        if (this.#inflight.delete(entry)) settle(dones, new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the stream failed before the data was sent', { cause: this.#streamError(err) }));
      },
    );
  }

  readonly #flushTick = (): void => {
    this.#flushQueued = false;
    if (!this.#finished) this.#flush();
  };

  #flush(): void {
    if (this.#batch.length === 0) return;
    const chunks = this.#batch;
    const dones = this.#batchDone;
    this.#batch = [];
    this.#batchDone = [];
    this.#batchBytes = 0;
    this.#write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), dones);
  }

  #canWrite(): boolean {
    const room = this.#writer.desiredSize;
    if (room === null || room > 0) return true;
    if (!this.#waitingReady) {
      this.#waitingReady = true;
      this.#writer.ready.then(
        () => {
          this.#waitingReady = false;
          if (!this.#finished) this.#inbox.drain();
        },
        () => (this.#waitingReady = false),
      );
    }
    return false;
  }

  /** FIN after everything queued (the writer keeps the order). */
  #endWriting(): void {
    this.#flush();
    this.#writeClosed = true;
    this.#writer.close().catch(() => {});
  }

  // ── end ──────────────────────────────────────────────────────────────

  readonly #onCloseTimeout = (): void => {
    this.#closeTimer = undefined;
    if (this.#finished) return;
    const error = this.#writeDone ? undefined : new TapsError('ERR_TAPS_TIMEOUT', `the stream's data was not all sent within closeTimeout (${this.#closeTimeout} ms)`);
    this.#finish(error, error !== undefined);
    this.#resetBoth();
  };

  #maybeFinish(): void {
    if (!this.#finished && this.#readDone && this.#writeDone) this.#finish(undefined, false);
  }

  /** Something the peer or the network did ended the stream. */
  #fail(error: TapsError): void {
    if (this.#finished) return;
    this.#writeClosed = true;
    this.#finish(error, false);
    this.#resetBoth();
  }

  #resetBoth(): void {
    this.#writer.abort(wireReason(0)).catch(() => {});
    this.#reader.cancel(wireReason(0)).catch(() => {});
  }

  #finish(error: Error | undefined, now: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    const unsent = [...this.#batchDone, ...[...this.#inflight].map((e) => e.dones)];
    this.#batch = [];
    this.#batchDone = [];
    this.#batchBytes = 0;
    this.#inflight.clear();
    if (unsent.length > 0) {
      const err = new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the stream closed before the data was sent', error ? { cause: error } : {});
      queueMicrotask(() => {
        for (const d of unsent) settle(d, err);
      });
    }
    if (now) this.#inbox.closedNow(error);
    else this.#inbox.closedAfterQueue(error);
    this.#released = this.#group.release(this);
    if (this.#closing) this.#settleClosing();
  }

  #settleClosing(): void {
    const resolve = this.#resolveClosing;
    (this.#released ?? Promise.resolve()).then(() => resolve?.(), () => resolve?.());
  }
}
