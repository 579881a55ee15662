/**
 * A TransportChannel over one open ws WebSocket (client or server side).
 *
 * Sends made in one tick leave in one writev (the socket is corked until
 * the next tick), as in the tcp driver.
 *
 * Message framing: one `send` is one WebSocket message: text when the
 * application sent a string (`meta.text`) or `meta.fields.text === true`,
 * binary otherwise or with `meta.fields.text === false`; `meta.fields.endOfMessage === false`
 * sends a fragment and the next send continues the message (RFC 6455 §5.4).
 * Each received message is one `data` call with `meta.fields.binary`.
 * `final` sends a close frame after the message (no half-close exists in
 * WebSocket). Close codes and reasons land in `info.closeCode` /
 * `info.closeReason` and, for abnormal ends, on the WebSocketCloseError passed
 * to `receiver.closed` (see errors.ts).
 *
 * @example
 * const ch = new WebSocketChannel(ws, socket, { maxPayload: 1 << 20, info: { url } });
 * ch.start({ data: (m) => {}, end() {}, drain() {}, closed(err) {} });
 * ch.send(new TextEncoder().encode('hi'), { fields: { text: true } }, (err) => {});
 */
import { isUtf8 } from 'node:buffer';
import type net from 'node:net';
import type { WebSocket } from 'ws';
import type { ByteMeter, ChannelReceiveMeta, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { localAbortError, writeCompletion } from '../kit/errors.js';
import { Inbox } from '../kit/inbox.js';
import { setKeepAliveTimeout, socketAddresses } from '../kit/socket-channel.js';
import { closeError, protocolError, type WebSocketCloseError } from './errors.js';
import { selfMetered } from '../../src/policy/self-metered.js';

const BINARY: ChannelReceiveMeta = Object.freeze({ fields: Object.freeze({ binary: true }) });
const TEXT: ChannelReceiveMeta = Object.freeze({ fields: Object.freeze({ binary: false }) });
const WS_OPEN = 1;

export interface WebSocketChannelOptions {
  readonly maxPayload: number;
  /** Facts known at open (url, subprotocol, TLS details); closeCode/closeReason are added at close. */
  readonly info: Record<string, unknown>;
  /** The TCP socket under a TLS socket (keep-alive). */
  readonly raw?: net.Socket | undefined;
  /** The tenant's byte budget: each frame is charged, header (and a client's mask) included, before it is written. */
  readonly meter?: ByteMeter | undefined;
  /** The server side of the connection: its frames carry no mask (RFC 6455 §5.1). */
  readonly server?: boolean | undefined;
  /** Everything the socket reads is charged to the received budget there (TransportChannel.receiveMetered). */
  readonly receiveMetered?: boolean | undefined;
}

/** The bytes of one frame (RFC 6455 §5.2): 2-byte header, extended length, a client's 4-byte mask, payload. */
function frameSize(length: number, masked: boolean): number {
  return (masked ? 6 : 2) + (length > 65535 ? 8 : length > 125 ? 2 : 0) + length;
}

export class WebSocketChannel implements TransportChannel {
  readonly framing = 'message' as const;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly maxMessageSize: number;
  readonly info: Record<string, unknown>;

  readonly #ws: WebSocket;
  readonly #socket: net.Socket;
  readonly #meter: ByteMeter | undefined;
  readonly #receiveMetered: boolean;
  readonly #masked: boolean;
  readonly #raw: net.Socket;
  readonly #inbox = new Inbox();
  #userPaused = false;
  #needDrain = false;
  #sentFinal = false;
  #closing = false;
  #aborted = false;
  #ended = false;
  #wsError: WebSocketCloseError | undefined;
  #socketError: Error | undefined;
  /** A send was still unwritten when a graceful close gave up (ws's closeTimeout destroyed the socket). */
  #droppedOnClose = false;
  #fragmenting: boolean | undefined; // text flag of a message being sent in fragments
  #corked = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };
  /** Closed before start(): what arrives is dropped, not queued for a receiver that will never come. */
  #discarding = false;
  readonly #closedPromise: Promise<void>;
  #resolveClosed!: () => void;

  constructor(ws: WebSocket, socket: net.Socket, options: WebSocketChannelOptions) {
    this.#ws = ws;
    this.#socket = socket;
    this.#meter = options.meter;
    this.#receiveMetered = options.receiveMetered === true;
    selfMetered(this, this.#meter !== undefined, this.#receiveMetered);
    this.#masked = options.server !== true;
    this.#raw = options.raw ?? socket;
    const { local, remote } = socketAddresses(this.#raw);
    this.local = local;
    this.remote = remote;
    this.maxMessageSize = options.maxPayload === 0 ? Infinity : options.maxPayload;
    this.info = { ...options.info, subprotocol: ws.protocol || undefined, extensions: ws.extensions || undefined };
    this.#closedPromise = new Promise((r) => (this.#resolveClosed = r));
    ws.pause(); // nothing flows until start()
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.#discarding) return;
      this.#inbox.data(data, isBinary ? BINARY : TEXT);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.#wsError ??= protocolError(err);
    });
    ws.on('close', (code: number, reason: Buffer) => this.#onClose(code, reason.toString()));
    socket.on('error', (err) => {
      this.#socketError ??= err;
    });
    socket.on('drain', () => {
      if (!this.#needDrain) return;
      this.#needDrain = false;
      this.#inbox.drain();
    });
  }

  /** Frames are charged to the tenant's byte budget here (see {@link WebSocketChannelOptions.meter}). */
  get metered(): boolean {
    return this.#meter !== undefined;
  }

  /** What arrives is charged at the socket (see {@link WebSocketChannelOptions.receiveMetered}). */
  get receiveMetered(): boolean {
    return this.#receiveMetered;
  }

  start(receiver: ChannelReceiver): void {
    this.#inbox.start(receiver);
    if (!this.#userPaused) this.#ws.resume();
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    const failed = this.#checkSend(data, meta) ?? this.#charge(data.byteLength);
    if (failed) {
      queueMicrotask(() => done(failed));
      return true;
    }
    // Every send in one tick goes out in one writev (ws corks per frame; this outer cork spans frames).
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(this.#uncork);
    }
    const fields = meta.fields;
    const text = this.#fragmenting ?? isText(meta);
    const fin = fields?.['endOfMessage'] !== false;
    this.#fragmenting = fin ? undefined : text;
    this.#ws.send(data, { binary: !text, fin, compress: false }, (e) => {
      const err = writeCompletion(e, this.#socket);
      if (err && this.#closing) this.#droppedOnClose = true;
      done(err ? new SendError('ERR_TAPS_SEND_FAILED', `websocket send failed: ${err.message}`, { cause: err }) : undefined);
    });
    if (meta.final && fin) {
      this.#sentFinal = true;
      this.#beginClose(1000, '');
    }
    if (this.#socket.writableNeedDrain) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  /** Charge one frame to the byte budget; the QuotaExceededError when it cannot take it. */
  #charge(length: number): Error | undefined {
    if (this.#meter === undefined) return undefined;
    try {
      this.#meter.sent(frameSize(length, this.#masked));
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  #checkSend(data: Uint8Array, meta: ChannelSendMeta): SendError | undefined {
    if (this.#sentFinal || this.#closing || this.#aborted || this.#ws.readyState !== WS_OPEN) {
      return new SendError('ERR_TAPS_INVALID_STATE', 'the websocket is closing or closed');
    }
    if (data.byteLength > this.maxMessageSize) {
      return new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${data.byteLength} bytes exceeds the maximum of ${this.maxMessageSize}`);
    }
    const text = this.#fragmenting ?? isText(meta);
    if (text && meta.fields?.['endOfMessage'] !== false && this.#fragmenting === undefined && !isUtf8(data)) {
      return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', 'a text message must be valid UTF-8 (RFC 6455 §5.6)');
    }
    return undefined;
  }

  pause(): void {
    this.#userPaused = true;
    this.#inbox.pause();
    this.#ws.pause();
  }

  resume(): void {
    this.#userPaused = false;
    if (this.#inbox.started) this.#ws.resume();
    this.#inbox.resume();
  }

  close(): Promise<void> {
    if (!this.#ended) this.#beginClose(1000, '');
    if (!this.#inbox.started && !this.#discarding) {
      // Nobody will read: discard what arrives, so the peer's close frame is seen (paused, the handshake
      // would wait out ws's closeTimeout).
      this.#discarding = true;
      this.#ws.resume();
    }
    return this.#closedPromise;
  }

  /** Start the closing handshake with a code and reason (RFC 6455 §7.1.2). */
  #beginClose(code: number, reason: string): void {
    if (this.#closing || this.#aborted) return;
    this.#closing = true;
    try {
      this.#ws.close(code, reason);
    } catch (err) {
      this.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'websocket close failed', { cause: err }));
    }
  }

  abort(reason?: Error): void {
    if (this.#aborted || this.#ended) return;
    this.#aborted = true;
    this.#inbox.closedNow(localAbortError(reason));
    this.#ws.terminate();
  }

  setOption(name: string, value: unknown): void {
    if ((name === 'keepAlive' && typeof value === 'boolean') || name === 'keepAliveTimeout') {
      setKeepAliveTimeout(this.#raw, name, value);
      return;
    }
    if (name === 'closeCode' && typeof value === 'number' && ((value >= 3000 && value <= 4999) || value === 1000)) {
      this.#beginClose(value, '');
      return;
    }
    throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `websocket channels have no option ${name} with value ${String(value)}`);
  }

  #onClose(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.info['closeCode'] = code;
    this.info['closeReason'] = reason;
    let error: Error | undefined = this.#wsError;
    if (!error && this.#closing && code === 1006 && !this.#socketError && this.#droppedOnClose) {
      error = new TapsError('ERR_TAPS_TIMEOUT', 'the closing handshake did not finish in time (closeTimeout); unsent data was dropped');
    } else if (!error && !(this.#closing && code === 1006 && !this.#socketError)) {
      error = closeError(code, reason, this.#socketError);
    }
    if (error === undefined) {
      this.#inbox.end();
      this.#inbox.closedAfterQueue();
    } else {
      this.#inbox.closedAfterQueue(error);
    }
    this.#resolveClosed();
  }
}

/** A message goes out as text when its `text` field says so, or, without that field, when it was a string. */
function isText(meta: ChannelSendMeta): boolean {
  const field = meta.fields?.['text'];
  return field === undefined ? meta.text === true : field === true;
}
