/**
 * The accept side of every driver listener (tcp and tls through
 * socket-listener.ts, udp, websocket, webtransport, quic): channels accepted before the library called
 * `start(handler)` wait in a backlog and are handed over, in order, when it
 * does; a listener failure before `start()` is kept and reported then; after
 * `close()` every waiting channel is aborted and any late arrival is refused
 * (RFC 9622 §7.2: a stopped listener delivers no more ConnectionReceived
 * events).
 *
 * @example
 * const queue = new AcceptQueue();
 * server.on('session', (s) => queue.offer(channelOf(s)));
 * // DriverListener.start(handler) → queue.start(handler); close() → queue.close()
 */
import type { Driver, DriverListenerHandler, TransportChannel } from '../../src/driver.js';
import { TapsError, toTapsError } from '../../src/errors.js';

export class AcceptQueue {
  #handler: DriverListenerHandler | undefined;
  #backlog: { channel: TransportChannel; stack: Driver | undefined }[] = [];
  #failure: TapsError | undefined;
  #closed = false;

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Begin delivering: the backlog first, then every later channel; a kept failure is reported after the backlog. */
  start(handler: DriverListenerHandler): void {
    if (this.#handler) throw new TypeError('start() was already called on this listener');
    if (typeof handler !== 'object' || handler === null) throw new TypeError('handler must be a DriverListenerHandler');
    this.#handler = handler;
    const backlog = this.#backlog;
    this.#backlog = [];
    for (const b of backlog) handler.connection(b.channel, b.stack);
    if (this.#failure) handler.error(this.#failure);
  }

  /** A newly accepted channel (`stack`: the peer's, on a listener several stacks share): delivered, queued until start(), or aborted when closed. */
  offer(channel: TransportChannel, stack?: Driver): void {
    if (this.#closed) return channel.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the listener is closed'));
    if (this.#handler) this.#handler.connection(channel, stack);
    else this.#backlog.push({ channel, stack });
  }

  /** The listener failed: report it now, or at start() if nobody listens yet. */
  fail(err: unknown): void {
    const e = toTapsError(err, 'ERR_TAPS_CONNECTION_ABORTED');
    if (this.#handler) this.#handler.error(e);
    else this.#failure ??= e;
  }

  /** Stop accepting and abort every channel still waiting to be taken. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const gone = new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the listener closed before the connection was taken');
    for (const b of this.#backlog) b.channel.abort(gone);
    this.#backlog = [];
  }
}
