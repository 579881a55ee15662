/**
 * The receive-side gate of the WebSocket, HTTP and WebTransport channels: events that
 * happen before `start()` or while the receiver has paused the channel wait
 * here and are delivered in order later (driver contract: "events before
 * start() are buffered by the driver and delivered in order"). `closed` is
 * delivered exactly once and nothing follows it. The fast path (started, not
 * paused, queue empty) calls the receiver directly without allocating.
 *
 * @example
 * const inbox = new Inbox();
 * inbox.data(bytes);            // queued: nobody started yet
 * inbox.start(receiver);        // receiver.data(bytes) runs now
 */
import type { ChannelReceiveMeta, ChannelReceiver, TransportChannel } from '../../src/driver.js';

type Entry =
  | { readonly kind: 'data'; readonly chunk: Uint8Array; readonly meta: ChannelReceiveMeta | undefined }
  | { readonly kind: 'end' }
  | { readonly kind: 'stream'; readonly channel: TransportChannel }
  | { readonly kind: 'closed'; readonly error: Error | undefined };

export class Inbox {
  #receiver: ChannelReceiver | undefined;
  #queue: Entry[] = [];
  #paused = false;
  #closed = false;
  #flushing = false;

  get started(): boolean {
    return this.#receiver !== undefined;
  }

  /** True once `closed` was queued or delivered. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Events waiting for the receiver (before start, or while paused). */
  get queued(): number {
    return this.#queue.length;
  }

  /** True while a receiver exists, is not paused and nothing is queued. */
  get flowing(): boolean {
    return this.#receiver !== undefined && !this.#paused && this.#queue.length === 0;
  }

  start(receiver: ChannelReceiver): void {
    if (this.#receiver) throw new TypeError('start() was already called on this channel');
    if (typeof receiver !== 'object' || receiver === null || typeof receiver.data !== 'function' || typeof receiver.closed !== 'function') {
      throw new TypeError('receiver must be a ChannelReceiver');
    }
    this.#receiver = receiver;
    this.#flush();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#flush();
  }

  data(chunk: Uint8Array, meta?: ChannelReceiveMeta): void {
    if (this.#closed) return;
    if (this.flowing) this.#receiver!.data(chunk, meta);
    else this.#queue.push({ kind: 'data', chunk, meta });
  }

  end(): void {
    if (this.#closed) return;
    if (this.flowing) this.#receiver!.end();
    else this.#queue.push({ kind: 'end' });
  }

  stream(channel: TransportChannel): void {
    if (this.#closed) return;
    if (this.flowing) this.#receiver!.stream?.(channel);
    else this.#queue.push({ kind: 'stream', channel });
  }

  /** A soft error (RFC 9622 §8.3.1) is advice, not data: it skips the queue, and is dropped before a receiver or after `closed`. */
  softError(error: Error): void {
    if (this.#closed || !this.#receiver) return;
    this.#receiver.softError?.(error);
  }

  /** Send-side readiness is not receive data: it skips the queue (but waits for a receiver). */
  drain(): void {
    if (this.#closed || !this.#receiver) return;
    this.#receiver.drain();
  }

  /** Deliver `closed` after whatever is queued (graceful ends). */
  closedAfterQueue(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.push({ kind: 'closed', error });
    this.#flush();
  }

  /** Drop undelivered data and deliver `closed` as soon as there is a receiver (abort, fatal error). */
  closedNow(error?: Error): void {
    if (this.#closed) {
      // A graceful close may be waiting behind paused data: an abort overtakes it.
      const last = this.#queue[this.#queue.length - 1];
      if (last?.kind !== 'closed') return;
      this.#queue = [last];
      this.#paused = false;
      this.#flush();
      return;
    }
    this.#closed = true;
    this.#queue = [{ kind: 'closed', error }];
    this.#paused = false;
    this.#flush();
  }

  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#receiver && this.#queue.length > 0) {
        const entry = this.#queue[0]!;
        // Pausing holds back received data; `closed` is delivered once everything before it was.
        if (this.#paused && entry.kind !== 'closed') return;
        this.#queue.shift();
        const r = this.#receiver;
        switch (entry.kind) {
          case 'data':
            r.data(entry.chunk, entry.meta);
            break;
          case 'end':
            r.end();
            break;
          case 'stream':
            r.stream?.(entry.channel);
            break;
          case 'closed':
            r.closed(entry.error);
            break;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }
}
