/**
 * One request/response exchange on an HTTP channel: an undici dispatch
 * handler that turns the response into received message pieces, follows
 * redirects when asked (each hop decided by the policy, see redirect.ts),
 * and keeps its pieces until the channel delivers them in request order.
 *
 * Response delivery (draft-ietf-taps-impl §HTTP "Receive"): `meta.fields` is
 * `{ status, statusText, headers, httpVersion, url, redirected, trailers? }`.
 * A whole response is one piece with `complete: true`. A streamed response
 * (request field `stream: true`, or a body above the channel's
 * `maxBufferedBody`) arrives as pieces with `complete: false` (the first
 * as soon as the headers are in, possibly empty) and ends with a piece with
 * `complete: true`: the Connection layer's receivedPartial / received.
 *
 * @example
 * const ex = new Exchange(owner, hop, request, session);
 * ex.dispatch();
 */
import type { Dispatcher } from 'undici';
import type { ChannelReceiveMeta } from '../../src/driver.js';
import type { Readable } from 'node:stream';
import { SendError, TapsError, isTapsError } from '../../src/errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { httpError } from './errors.js';
import { authorizeHop, nextHop, REDIRECT_STATUSES, type HopRequest } from './redirect.js';
import type { HttpRequest } from './request.js';
import { headSize } from '../kit/request-path.js';
import type { HttpSession } from './session.js';

export interface Piece {
  readonly chunk: Uint8Array;
  readonly meta: ChannelReceiveMeta;
}

/** What an exchange needs from its channel. */
export interface ExchangeOwner {
  readonly session: HttpSession;
  readonly lifeSignal: AbortSignal;
  readonly maxRedirections: number;
  readonly maxBufferedBody: number;
  /** ms for the response headers to arrive once the request is written; undefined: undici's default. */
  readonly headersTimeout: number | undefined;
  /** ms allowed between response body chunks; undefined: undici's default. */
  readonly bodyTimeout: number | undefined;
  /** Receive side paused by the receiver. */
  readonly paused: boolean;
  isHead(ex: Exchange): boolean;
  /** New pieces (or completion) on an exchange. */
  progress(ex: Exchange): void;
  failed(ex: Exchange, err: TapsError): void;
  /** The hop's allowed targets (see redirect.ts). */
  authorize(url: URL, signal: AbortSignal): Promise<CheckedTarget[]>;
  /** A session for a redirect hop to one of `targets`, raced (closed by the exchange when done). */
  hopSession(targets: readonly CheckedTarget[], url: URL): Promise<HttpSession>;
}

const EMPTY = new Uint8Array(0);
/** A non-head streamed response stops reading once this much waits undelivered. */
const HOLD_BACK = 1024 * 1024;

export class Exchange implements Dispatcher.DispatchHandler {
  readonly pieces: Piece[] = [];
  complete = false;
  #owner: ExchangeOwner;
  #request: HttpRequest;
  #hop: HopRequest;
  #session: HttpSession;
  #hopSession: HttpSession | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #cancelled: Error | undefined;
  #streaming: boolean;
  #buffer: Buffer[] = [];
  #buffered = 0;
  #waiting = 0;
  #fields: Readonly<Record<string, unknown>> | undefined;
  #partial: ChannelReceiveMeta | undefined;
  #redirect: { status: number; location: string } | undefined;
  #hops = 0;
  #heldBack = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The send's completion: called once, when undici puts the request on the wire (or with the error that stopped it). */
  #sent: ((err?: Error) => void) | undefined;
  #bodyTimeout: number | undefined;
  #body: Uint8Array | null | Readable;
  /** Body bytes already in a streamed body when it was sent (charged with the first dispatch; later pieces by the channel). */
  #streamedBytes: number;

  constructor(owner: ExchangeOwner, hop: HopRequest, request: HttpRequest, body: Uint8Array | null | Readable, sent: (err?: Error) => void, streamedBytes = 0) {
    this.#streamedBytes = streamedBytes;
    this.#sent = sent;
    this.#owner = owner;
    this.#hop = hop;
    this.#request = request;
    this.#session = owner.session;
    this.#streaming = request.stream;
    this.#body = body;
    this.#bodyTimeout = request.bodyTimeout ?? owner.bodyTimeout;
  }

  /**
   * Hand the request to undici; false means the client wants a drain first. With a byte budget, its head and
   * body are charged first: over the budget this throws QuotaExceededError and nothing is dispatched.
   */
  dispatch(): boolean {
    const hop = this.#hop;
    const meter = this.#session.meter;
    if (meter !== undefined) {
      const body = this.#body instanceof Uint8Array ? this.#body.byteLength : this.#streamedBytes;
      meter.sent(headSize(hop.method, hop.url.pathname + hop.url.search, this.#session.authority, hop.headers, body) + body);
      this.#streamedBytes = 0;
    }
    const opts: Dispatcher.DispatchOptions = {
      path: hop.url.pathname + hop.url.search,
      method: hop.method as Dispatcher.HttpMethod,
      headers: hop.headers,
      body: this.#body,
      // Timeouts we were given are enforced here with exact timers (undici's own tick at ~1 s).
      ...(this.#bodyTimeout !== undefined ? { bodyTimeout: 0 } : {}),
      ...(this.#owner.headersTimeout !== undefined ? { headersTimeout: 0 } : {}),
    };
    return this.#session.client.dispatch(opts, this);
  }

  /** Stop this exchange (channel aborted or failed); its session for a hop is destroyed. */
  cancel(reason: Error): void {
    if (this.complete || this.#cancelled) return;
    this.#cancelled = reason;
    this.#disarm();
    this.#settleSend(new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the request was not sent: the channel ended first', { cause: reason }));
    this.#controller?.abort(reason);
    if (this.#body && typeof this.#body === 'object' && 'destroy' in this.#body) this.#body.destroy();
    this.#hopSession?.destroy();
    this.#hopSession = undefined;
  }

  pause(): void {
    this.#controller?.pause();
    // Time the receiver spends paused is not the server stalling.
    this.#disarm();
  }

  resume(): void {
    if (!this.#heldBack) this.#controller?.resume();
    if (this.#fields !== undefined && !this.complete) this.#arm(this.#bodyTimeout, 'between response body chunks');
  }

  #arm(ms: number | undefined, what: string): void {
    this.#disarm();
    if (ms === undefined || ms === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#controller?.abort(new TapsError('ERR_TAPS_TIMEOUT', `no progress from the server for ${ms} ms ${what}`));
    }, ms);
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Called by the channel when this exchange reaches the head of the queue. */
  promoted(): void {
    if (!this.#heldBack) return;
    this.#heldBack = false;
    this.#waiting = 0;
    if (!this.#owner.paused) this.#controller?.resume();
  }

  /** The channel handed these pieces to the receiver. */
  delivered(): void {
    this.#waiting = 0;
  }

  #settleSend(err?: Error): void {
    const sent = this.#sent;
    this.#sent = undefined;
    sent?.(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#cancelled) return controller.abort(this.#cancelled);
    this.#settleSend();
    if (this.#owner.paused) controller.pause();
    this.#arm(this.#owner.headersTimeout, 'before the response headers');
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>, statusText?: string): void {
    this.#arm(this.#bodyTimeout, 'between response body chunks');
    const location = headers['location'];
    if (REDIRECT_STATUSES.has(status) && typeof location === 'string' && this.#request.redirect !== 'manual') {
      if (this.#request.redirect === 'error') {
        return controller.abort(new TapsError('ERR_TAPS_PROTOCOL_FAILED', `the server redirected (${status} to ${location}) and the request said redirect: 'error'`));
      }
      this.#redirect = { status, location };
      return;
    }
    this.#fields = Object.freeze({
      status,
      statusText: statusText ?? '',
      headers,
      httpVersion: this.#session.httpVersion,
      url: this.#hop.url.href,
      redirected: this.#hops > 0,
    });
    if (this.#streaming) {
      this.#partial = Object.freeze({ fields: this.#fields, complete: false });
      this.#push({ chunk: EMPTY, meta: this.#partial });
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#timer?.refresh();
    if (this.#redirect || this.#cancelled) return;
    if (this.#streaming) return this.#push({ chunk, meta: this.#partial! });
    this.#buffer.push(chunk);
    this.#buffered += chunk.byteLength;
    if (this.#buffered > this.#owner.maxBufferedBody) {
      // Too big to hold as one message: from here on it is delivered in pieces.
      this.#streaming = true;
      this.#partial = Object.freeze({ fields: this.#fields, complete: false });
      this.#push({ chunk: this.#takeBuffer(), meta: this.#partial });
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.#disarm();
    if (this.#cancelled) return;
    if (this.#redirect) {
      const r = this.#redirect;
      this.#redirect = undefined;
      void this.#follow(r.status, r.location);
      return;
    }
    const fields = Object.keys(trailers).length > 0 ? Object.freeze({ ...this.#fields, trailers }) : this.#fields;
    const chunk = this.#streaming ? EMPTY : this.#takeBuffer();
    this.complete = true;
    this.#releaseHopSession();
    this.#push({ chunk, meta: { fields, complete: true } });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#disarm();
    if (this.complete) return;
    this.#settleSend(new SendError('ERR_TAPS_SEND_FAILED', `the request failed: ${err.message}`, { cause: err }));
    this.complete = true;
    this.#hopSession?.destroy();
    this.#hopSession = undefined;
    // A received budget exceeded on the HTTP/2 session's wire reaches the streams as the session's end.
    if (!this.#cancelled) this.#owner.failed(this, httpError(this.#session.exceeded ?? err));
  }

  #takeBuffer(): Buffer {
    const b = this.#buffer.length === 1 ? this.#buffer[0]! : Buffer.concat(this.#buffer, this.#buffered);
    this.#buffer = [];
    this.#buffered = 0;
    return b;
  }

  #push(piece: Piece): void {
    this.pieces.push(piece);
    if (!this.complete && !this.#owner.isHead(this)) {
      this.#waiting += piece.chunk.byteLength;
      if (this.#waiting > HOLD_BACK && !this.#heldBack) {
        this.#heldBack = true;
        this.#controller?.pause();
      }
    }
    this.#owner.progress(this);
  }

  async #follow(status: number, location: string): Promise<void> {
    try {
      if (++this.#hops > this.#owner.maxRedirections) {
        throw new TapsError('ERR_TAPS_PROTOCOL_FAILED', `more than ${this.#owner.maxRedirections} redirects`);
      }
      const hop = nextHop(status, location, this.#hop);
      const targets = await this.#owner.authorize(hop.url, this.#owner.lifeSignal);
      if (this.#cancelled) return;
      const home = this.#owner.session;
      const reuse =
        hop.url.origin === new URL(home.origin).origin && targets.some((t) => t.address === home.target.address && t.port === home.target.port);
      this.#releaseHopSession();
      if (!reuse) {
        this.#hopSession = await this.#owner.hopSession(targets, hop.url);
        if (this.#cancelled) return this.#releaseHopSession();
      }
      this.#session = this.#hopSession ?? home;
      this.#hop = hop;
      this.#body = hop.body === 'streamed' ? null : hop.body;
      this.#controller = undefined;
      this.dispatch();
    } catch (err) {
      if (this.#cancelled) return;
      this.complete = true;
      this.#releaseHopSession();
      const e = isTapsError(err) ? err : httpError(err);
      this.#owner.failed(this, e);
    }
  }

  #releaseHopSession(): void {
    const s = this.#hopSession;
    this.#hopSession = undefined;
    if (s) void s.close();
  }
}
