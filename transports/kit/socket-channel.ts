/**
 * A {@link TransportChannel} over a connected `net.Socket` or `tls.TLSSocket`:
 * the byte-stream channel the tcp and tls drivers hand out.
 *
 * - Receive: nothing is read before `start()` (the socket stays paused, so the
 *   kernel's window applies backpressure); after it, each chunk goes to
 *   `receiver.data`, the peer's FIN to `receiver.end` (half-open: we may keep
 *   sending), `pause()`/`resume()` stop and restart reading.
 * - Send: every `send()` in one tick is corked and flushed together with one
 *   `writev` on the next tick, so a framer's [header, body] pair and bursts of
 *   small messages cost one system call (1 KiB messages: ~1.4x the plain
 *   `socket.write` rate on loopback). Returns `socket.write`'s boolean; `drain`
 *   follows. `meta.final` half-closes after the write (RFC 9622 §9.1.3.5). With the
 *   tenant's meter, each send is charged first and refused whole when the
 *   budget cannot take it (the connection stays usable).
 * - `close()`: FIN after pending data, then wait for the peer's FIN and the
 *   socket's close, bounded by `closeTimeout` ms without progress (then
 *   destroyed; the close is an error only if our own data had not all been
 *   written: ERR_TAPS_TIMEOUT, so a peer that never reads cannot hold it). `abort()`: RST
 *   (`resetAndDestroy`), pending data dropped (RFC 9623 §5.1 Abort → ABORT.TCP). Under
 *   TLS the socket is destroyed without RST (resetting the TCP handle under a
 *   live TLS wrap crashes Node 20); unsent data is dropped all the same.
 * - `receiver.closed(error?)` is called exactly once when the socket is gone:
 *   without error after a clean close, with a TapsError otherwise (after a
 *   local `abort()` it is ERR_TAPS_CONNECTION_ABORTED). If the socket closed
 *   before `start()`, `start()` delivers it.
 *
 * @example
 * const ch = new SocketChannel(socket, { closeTimeout: 2000 });
 * ch.start({ data: (b) => got(b), end: () => {}, drain: () => {}, closed: (e) => done(e) });
 * ch.send(new TextEncoder().encode('hi'), {}, (err) => {});
 */
import type { Socket } from 'node:net';
import { debuglog } from 'node:util';
import type { ByteMeter, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { channelError, localAbortError, writeCompletion } from './errors.js';
import { selfMetered } from '../../src/policy/self-metered.js';

const log = debuglog('taps');

/** The channel a socket belongs to: the socket listeners are shared functions, not closures per channel (see docs/performance.md). */
const kChannel = Symbol('taps.channel');
type Owned = Socket & { [kChannel]?: SocketChannel };
const NO_INFO: Readonly<Record<string, unknown>> = Object.freeze({});

/** How long a graceful close() waits for the peer's FIN before giving up (ms). */
export const DEFAULT_CLOSE_TIMEOUT = 2000;

/** Options of a socket channel: report facts, close timeout, and the raw TCP socket under TLS. */
export interface SocketChannelOptions {
  /** Facts for the report (ALPN, TLS version, ...). */
  readonly info?: Readonly<Record<string, unknown>>;
  /** Milliseconds a graceful close may take before the socket is destroyed. Default 2000. */
  readonly closeTimeout?: number;
  /** The TCP socket under a TLS socket, for RST on abort and keep-alive. */
  readonly raw?: Socket;
  /** The peer's address when the caller dialled it (see {@link dialledAddress}); read from the socket otherwise. */
  readonly remote?: SocketAddress | undefined;
  /** The tenant's byte budget: each send is charged before it is written, and refused (nothing written) when over. */
  readonly meter?: ByteMeter | undefined;
  /** Everything the socket reads is charged there (TransportChannel.receiveMetered): the Connection counts none of it. */
  readonly receiveMetered?: boolean | undefined;
}

function family(f: string | number | undefined, address: string | undefined): 4 | 6 {
  if (f === 'IPv6' || f === 6) return 6;
  if (f === 'IPv4' || f === 4) return 4;
  return address?.includes(':') ? 6 : 4;
}

/** The socket's two addresses, read once while it is connected. */
export function socketAddresses(socket: Socket): { local: SocketAddress; remote: SocketAddress } {
  return { local: localAddressOf(socket), remote: remoteAddressOf(socket) };
}

function localAddressOf(socket: Socket): SocketAddress {
  return Object.freeze({ address: socket.localAddress ?? '', port: socket.localPort ?? 0, family: family(socket.localFamily, socket.localAddress) });
}

function remoteAddressOf(socket: Socket): SocketAddress {
  return Object.freeze({ address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, family: family(socket.remoteFamily, socket.remoteAddress) });
}

/** The peer address of a socket dialled to a checked target: the target itself (no getpeername), unless it carries a zone. */
export function dialledAddress(target: { readonly address: string; readonly port: number; readonly family: 4 | 6 }): SocketAddress | undefined {
  return target.address.includes('%') ? undefined : Object.freeze({ address: target.address, port: target.port, family: target.family });
}

/**
 * Keep-alive on a TCP socket: on after `value` ms of idleness (the connection
 * property keepAliveTimeout, RFC 9622 §8.1.4: milliseconds), off for
 * `Infinity` ("Disabled") or `false`; `true` turns it on at the system's
 * default period. The kernel's TCP_KEEPIDLE counts whole seconds, so a
 * period is rounded up (Node would round it down, 500 ms to none).
 * Throws a TypeError for anything else.
 */
export function setKeepAliveTimeout(socket: Socket, name: string, value: unknown): void {
  if (value === false || value === Infinity) socket.setKeepAlive(false);
  else if (value === true) socket.setKeepAlive(true);
  else if (typeof value === 'number' && Number.isFinite(value) && value > 0) socket.setKeepAlive(true, Math.ceil(value / 1000) * 1000);
  else throw new TypeError(`${name} must be a positive number of ms, Infinity (disabled), true or false, got ${String(value)}`);
}

export class SocketChannel implements TransportChannel {
  // Constants on the prototype, not fields on each channel.
  get framing(): 'stream' {
    return 'stream';
  }
  get maxMessageSize(): number {
    return Infinity;
  }
  // `declare`: set by the constructor, not defined first as class fields (a store fewer each per channel).
  declare readonly remote: SocketAddress;
  declare readonly info: Readonly<Record<string, unknown>>;

  readonly #socket: Socket;
  readonly #raw: Socket | undefined;
  readonly #meter: ByteMeter | undefined;
  readonly #receiveMetered: boolean;
  readonly #closeTimeout: number;
  /** The local address, read on first use (see {@link SocketChannel.local}). */
  #local: SocketAddress | undefined;
  #receiver: ChannelReceiver | undefined;
  #error: TapsError | undefined;
  #closed = false;
  #ended = false;
  #aborted = false;
  #abortReason: unknown;
  #corked = false;
  /** The socket's 'drain' is listened for (added with the first write that returned false). */
  #drainHeard = false;
  #closing: Promise<void> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes still to write when the close timer was last armed. */
  #closeBacklog = 0;
  /** Resolves the promise of a graceful close() (made by the first close()). */
  #closeDone: (() => void) | undefined;

  constructor(socket: Socket, options: SocketChannelOptions = {}) {
    this.#socket = socket;
    this.#raw = options.raw;
    this.#meter = options.meter;
    this.#receiveMetered = options.receiveMetered === true;
    selfMetered(this, this.#meter !== undefined, this.#receiveMetered);
    this.#closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    this.info = options.info === undefined ? NO_INFO : Object.freeze({ ...options.info });
    // Read now, while connected (Node forgets it once the socket is destroyed), unless the dialler knows it.
    this.remote = options.remote ?? remoteAddressOf(options.raw ?? socket);
    (socket as Owned)[kChannel] = this;
    socket.on('error', SocketChannel.#onError);
    socket.on('close', SocketChannel.#onClose);
    if (options.raw) {
      (options.raw as Owned)[kChannel] = this;
      options.raw.on('error', SocketChannel.#onError);
    }
  }

  /** The channel charges the tenant's byte budget itself (see {@link SocketChannelOptions.meter}). */
  get metered(): boolean {
    return this.#meter !== undefined;
  }

  /** What arrives is charged at the socket (see {@link SocketChannelOptions.receiveMetered}). */
  get receiveMetered(): boolean {
    return this.#receiveMetered;
  }

  /**
   * The local address. Read from the socket on first use, not at connect (a getsockname system call on
   * every connect, which most never need: docs/performance.md), and always before the channel itself ends the socket (close,
   * abort, the peer's FIN, a close timeout); it reads as address '' and port 0 only when the peer reset
   * the connection before anyone asked.
   */
  get local(): SocketAddress {
    return (this.#local ??= localAddressOf(this.#raw ?? this.#socket));
  }

  /** Keep the local address while the socket still has it. */
  #keepLocal(): void {
    if (this.#local === undefined && !(this.#raw ?? this.#socket).destroyed) this.#local = localAddressOf(this.#raw ?? this.#socket);
  }

  start(receiver: ChannelReceiver): void {
    if (this.#receiver) throw new TypeError('start() was already called');
    if (typeof receiver !== 'object' || receiver === null) throw new TypeError('receiver must be a ChannelReceiver');
    this.#receiver = receiver;
    if (this.#closed) {
      receiver.closed(this.#closeError());
      return;
    }
    const socket = this.#socket;
    socket.on('end', SocketChannel.#onEnd);
    socket.on('data', SocketChannel.#onData);
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    const socket = this.#socket;
    if (this.#ended || this.#closed || socket.destroyed) {
      const err = new SendError(this.#ended ? 'ERR_TAPS_INVALID_STATE' : 'ERR_TAPS_CONNECTION_ABORTED', this.#ended ? 'the sending side is already closed' : 'the connection is closed', this.#error ? { cause: this.#error } : {});
      queueMicrotask(() => done(err));
      return true;
    }
    if (this.#meter !== undefined) {
      try {
        this.#meter.sent(data.byteLength);
      } catch (err) {
        queueMicrotask(() => done(err as Error));
        return true;
      }
    }
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(SocketChannel.#uncork, this);
    }
    const ok = socket.write(data, (e) => {
      const err = writeCompletion(e, socket);
      done(err ? new SendError('ERR_TAPS_CONNECTION_ABORTED', `send failed: ${err.message}`, { cause: err }) : undefined);
    });
    if (meta.final === true) {
      this.#ended = true;
      socket.end();
    }
    // 'drain' follows only a write that returned false: listened for from the first one (most channels never see one).
    if (!ok && !this.#drainHeard) {
      this.#drainHeard = true;
      socket.on('drain', SocketChannel.#onDrain);
    }
    return ok;
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#closing) return this.#closing;
    this.#closing = new Promise<void>((resolve) => (this.#closeDone = resolve));
    this.#keepLocal();
    const socket = this.#socket;
    if (!this.#ended) {
      this.#ended = true;
      socket.end();
    }
    // Nobody will read: discard input so the peer's FIN is seen.
    if (!this.#receiver) socket.resume();
    this.#closeBacklog = socket.writableLength;
    this.#closeTimer = setTimeout(SocketChannel.#closeTimedOut, this.#closeTimeout, this);
    return this.#closing;
  }

  abort(reason?: Error): void {
    if (this.#closed || this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#keepLocal();
    this.#clearTimer();
    const socket = this.#socket;
    // Under TLS the TCP handle belongs to the TLS wrap: resetting it underneath crashes Node 20, so only destroy (no RST).
    const tls = this.#raw !== undefined || (socket as Socket & { encrypted?: unknown }).encrypted === true;
    if (!tls && !socket.destroyed && !socket.connecting) {
      try {
        socket.resetAndDestroy();
      } catch (err) {
        log('abort: RST failed (%s), destroying', (err as Error).message);
      }
    }
    socket.destroy();
    this.#raw?.destroy();
  }

  setOption(name: string, value: unknown): void {
    if (typeof name !== 'string') throw new TypeError('name must be a string');
    const tcp = this.#raw ?? this.#socket;
    switch (name.toLowerCase()) {
      case 'keepalive':
      case 'keepalivetimeout':
        setKeepAliveTimeout(tcp, name, value);
        return;
      case 'nodelay':
        if (typeof value !== 'boolean') throw new TypeError(`noDelay must be a boolean, got ${String(value)}`);
        tcp.setNoDelay(value);
        return;
      case 'tcp.usertimeoutvalue':
      case 'tcp.usertimeoutenabled':
      case 'tcp.usertimeoutchangeable':
        throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name}: Node.js cannot set the TCP User Timeout Option (RFC 5482) on a socket`);
      default:
        throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name} does not apply to a ${this.#raw ? 'TLS' : 'TCP'} channel`);
    }
  }

  // Socket listeners: `this` is the socket (or, under TLS, the raw TCP socket), which names its channel.
  static #onData(this: Owned, chunk: Buffer): void {
    this[kChannel]!.#receiver?.data(chunk);
  }

  static #onEnd(this: Owned): void {
    const ch = this[kChannel]!;
    ch.#keepLocal();
    ch.#receiver?.end();
  }

  static #onDrain(this: Owned): void {
    this[kChannel]!.#receiver?.drain();
  }

  static #onError(this: Owned, err: Error): void {
    const ch = this[kChannel];
    log('socket error %s: %s', (err as NodeJS.ErrnoException).code, err.message);
    if (ch === undefined) return;
    ch.#error ??= channelError(err);
    // Fatal: a TLS socket emits some errors (a post-handshake alert) without destroying itself.
    ch.#socket.destroy();
    ch.#raw?.destroy();
  }

  static #onClose(this: Owned): void {
    this[kChannel]!.#closed$();
  }

  static #uncork(ch: SocketChannel): void {
    ch.#corked = false;
    ch.#socket.uncork();
  }

  static #closeTimedOut(ch: SocketChannel): void {
    ch.#closeTimer = undefined;
    const socket = ch.#socket;
    // Still flushing to a peer that reads, slowly: closeTimeout bounds a close that makes no progress.
    const left = socket.writableLength;
    if (!socket.writableFinished && left > 0 && left < ch.#closeBacklog) {
      ch.#closeBacklog = left;
      ch.#closeTimer = setTimeout(SocketChannel.#closeTimedOut, ch.#closeTimeout, ch);
      return;
    }
    ch.#keepLocal();
    if (!socket.writableFinished) {
      ch.#error ??= new TapsError('ERR_TAPS_TIMEOUT', `graceful close did not finish within ${ch.#closeTimeout} ms; unsent data was dropped`);
    }
    socket.destroy();
    ch.#raw?.destroy();
  }

  #clearTimer(): void {
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
  }

  #closeError(): TapsError | undefined {
    return this.#aborted ? localAbortError(this.#abortReason) : this.#error;
  }

  #closed$(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    // The socket is gone and emits nothing more: its listeners go with it (the error listener stays either way,
    // so a late 'error' could never become an uncaught exception).
    this.#raw?.destroy();
    const done = this.#closeDone;
    this.#closeDone = undefined;
    done?.();
    this.#receiver?.closed(this.#closeError());
  }
}
