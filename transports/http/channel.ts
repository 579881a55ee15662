/**
 * An HTTP channel: a flow of request/response messages (draft-ietf-taps-impl
 * §HTTP). Each `send` is a request (fields: see request.ts), each received
 * message its response (see exchange.ts), delivered in request order.
 * Request bodies stream with `endOfMessage: false` on every piece but the
 * last. On HTTP/2 the channel shares its connection with the channels
 * `openStream()` makes (each request is an h2 stream); on HTTP/1.1
 * `openStream()` opens a parallel connection to the same checked target.
 *
 * A response that fails (reset, body timeout, a redirect the policy denies)
 * ends the channel with that error (`receiver.closed(err)`); earlier
 * responses are still delivered first. A `final` request ends the channel
 * after its response: `end()`, then `closed()`.
 *
 * @example
 * channel.start(receiver);
 * channel.send(new Uint8Array(), { fields: { path: '/status', redirect: 'follow' } }, done);
 * // receiver.data(body, { fields: { status: 200, headers }, complete: true })
 */
import { Readable } from 'node:stream';
import type { ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { localAbortError } from '../kit/errors.js';
import { Inbox } from '../kit/inbox.js';
import { Exchange, type ExchangeOwner } from './exchange.js';
import { ATTEMPT_DELAY, raceTargets, type HttpDial } from './dial.js';
import { authorizeHop, urlProtocol } from './redirect.js';
import { parseRequest, type RedirectMode, type RequestDefaults } from './request.js';
import { openSession, type HttpSession, type SessionParams } from './session.js';
import { selfMetered } from '../../src/policy/self-metered.js';

export interface HttpChannelConfig {
  /** How new sessions are made (openStream on HTTP/1.1, redirect hops) when there is no `dial`. */
  readonly sessionParams: Omit<SessionParams, 'target' | 'signal'>;
  /** The scope's network, for parallel streams and redirect hops (./dial.ts); undefined: dial directly. */
  readonly dial?: HttpDial | undefined;
  readonly defaultPath: string;
  readonly redirect: RedirectMode;
  readonly maxRedirections: number;
  readonly maxBufferedBody: number;
  readonly headersTimeout: number | undefined;
  readonly bodyTimeout: number | undefined;
}

/** A request body sent in pieces; undici pulls from it. */
class BodyStream extends Readable {
  onPull: (() => void) | undefined;
  constructor() {
    super({ highWaterMark: 64 * 1024 });
  }
  override _read(): void {
    this.onPull?.();
  }
}

export class HttpChannel implements TransportChannel, ExchangeOwner {
  readonly framing = 'message' as const;
  readonly maxMessageSize = Infinity;
  readonly session: HttpSession;
  readonly maxRedirections: number;
  readonly maxBufferedBody: number;
  readonly headersTimeout: number | undefined;
  readonly bodyTimeout: number | undefined;
  readonly #config: HttpChannelConfig;
  readonly #defaults: RequestDefaults;
  readonly #inbox = new Inbox();
  readonly #life = new AbortController();
  #exchanges: Exchange[] = [];
  #upload: BodyStream | undefined;
  #state: 'open' | 'final' | 'closing' | 'closed' = 'open';
  #paused = false;
  #needDrain = false;
  #finalAfterUpload = false;
  #closeWaiters: (() => void)[] = [];
  readonly #onClientDrain = (): void => this.#drained();

  constructor(session: HttpSession, config: HttpChannelConfig) {
    this.session = session.retain();
    selfMetered(this, session.meter !== undefined, session.receiveMetered);
    this.#config = config;
    this.maxRedirections = config.maxRedirections;
    this.maxBufferedBody = config.maxBufferedBody;
    this.headersTimeout = config.headersTimeout;
    this.bodyTimeout = config.bodyTimeout;
    const a = new URL(session.origin).host;
    const t = session.target;
    const defaultPort = session.origin.startsWith('https:') ? 443 : 80;
    this.#defaults = {
      path: config.defaultPath,
      redirect: config.redirect,
      authority: a,
      authorityWithPort: t.port === defaultPort ? `${a}:${defaultPort}` : a,
    };
    session.client.on('drain', this.#onClientDrain);
  }

  get local(): SocketAddress {
    return this.session.local;
  }
  get remote(): SocketAddress {
    return this.session.remote;
  }
  get info(): Readonly<Record<string, unknown>> {
    return this.session.info;
  }
  get lifeSignal(): AbortSignal {
    return this.#life.signal;
  }
  get paused(): boolean {
    return this.#paused;
  }
  /** `1.1` or `2`: what a reconnect of another session must speak to take this one's socket. */
  get httpVersion(): string {
    return this.session.httpVersion;
  }

  /** Hand this (unused) connection's socket to another session: a reconnect through the scope's network. */
  takeSocket(): import('node:net').Socket | undefined {
    return this.#exchanges.length === 0 ? this.session.takeSocket() : undefined;
  }

  /** Requests are charged to the tenant's byte budget here, fields included (see Exchange.dispatch). */
  get metered(): boolean {
    return this.session.meter !== undefined;
  }

  /** Everything this channel's connections read is charged at their sockets (./wire.ts): the Connection counts none of it. */
  get receiveMetered(): boolean {
    return this.session.receiveMetered;
  }

  start(receiver: ChannelReceiver): void {
    this.#inbox.start(receiver);
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    if (this.#upload) return this.#continueUpload(data, meta, done);
    if (this.#state !== 'open') {
      queueMicrotask(() => done(new SendError('ERR_TAPS_INVALID_STATE', `the HTTP channel is ${this.#state === 'final' ? 'past its final message' : this.#state}`)));
      return true;
    }
    let request;
    try {
      request = parseRequest(meta.fields, data.byteLength, this.#defaults);
    } catch (err) {
      queueMicrotask(() => done(err as Error));
      return true;
    }
    let body: Uint8Array | null | BodyStream = data.byteLength > 0 ? data : null;
    if (!request.endOfMessage) {
      const upload = new BodyStream();
      upload.onPull = () => this.#drained();
      if (data.byteLength > 0) upload.push(data);
      this.#upload = upload;
      body = upload;
    }
    if (meta.final && request.endOfMessage) this.#state = 'final';
    else if (meta.final) this.#finalAfterUpload = true;
    const url = new URL(request.path === '*' ? '/' : request.path, this.session.origin);
    const hop = { url, method: request.method, headers: request.headers, body: body instanceof BodyStream ? 'streamed' as const : body };
    const ex = new Exchange(this, hop, request, body, done, body instanceof BodyStream ? data.byteLength : 0);
    let ok: boolean;
    try {
      ok = ex.dispatch();
    } catch (err) {
      // The tenant's byte budget refused it: nothing was dispatched, the channel goes on.
      if (body instanceof BodyStream) this.#upload = undefined;
      if (this.#state === 'final') this.#state = 'open';
      this.#finalAfterUpload = false;
      queueMicrotask(() => done(err as Error));
      return true;
    }
    this.#exchanges.push(ex);
    if (!ok) this.#needDrain = true;
    return ok;
  }

  #continueUpload(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    const upload = this.#upload!;
    if (this.session.meter !== undefined && data.byteLength > 0) {
      try {
        this.session.meter.sent(data.byteLength);
      } catch (err) {
        queueMicrotask(() => done(err as Error));
        return true;
      }
    }
    const ok = data.byteLength > 0 ? upload.push(data) : true;
    if (meta.fields?.['endOfMessage'] !== false) {
      upload.push(null);
      this.#upload = undefined;
      if (meta.final || this.#finalAfterUpload) this.#state = this.#state === 'open' ? 'final' : this.#state;
    }
    queueMicrotask(() => done());
    if (!ok) this.#needDrain = true;
    return ok;
  }

  #drained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.#inbox.drain();
  }

  pause(): void {
    this.#paused = true;
    this.#inbox.pause();
    for (const ex of this.#exchanges) ex.pause();
  }

  resume(): void {
    this.#paused = false;
    for (const ex of this.#exchanges) ex.resume();
    this.#inbox.resume();
  }

  /** Whether `ex` is the oldest exchange in flight (responses arrive in request order). */
  isHead(ex: Exchange): boolean {
    return this.#exchanges[0] === ex;
  }

  progress(ex: Exchange): void {
    if (this.#exchanges[0] !== ex) return;
    this.#pump();
  }

  #pump(): void {
    while (this.#exchanges.length > 0) {
      const head = this.#exchanges[0]!;
      const pieces = head.pieces;
      for (let i = 0; i < pieces.length; i++) this.#inbox.data(pieces[i]!.chunk, pieces[i]!.meta);
      pieces.length = 0;
      head.delivered();
      if (!head.complete) {
        head.promoted();
        return;
      }
      this.#exchanges.shift();
    }
    if (this.#upload === undefined) this.#idle();
  }

  /** Nothing in flight: a final request or a graceful close can finish now. */
  #idle(): void {
    if (this.#state === 'final') {
      this.#inbox.end();
      void this.#finish();
    } else if (this.#state === 'closing') {
      void this.#finish();
    }
  }

  /** An exchange failed: settle its message with the error. */
  failed(ex: Exchange, err: TapsError): void {
    if (this.#state === 'closed') return;
    // Responses before the failed one are still delivered; the failed one and later ones are not.
    const i = this.#exchanges.indexOf(ex);
    const before = i < 0 ? [] : this.#exchanges.slice(0, i);
    for (const other of this.#exchanges.slice(i < 0 ? 0 : i)) other.cancel(err);
    this.#exchanges = before.filter((e) => e.complete);
    this.#pump();
    this.#teardown(err, false);
  }

  /** Decide a redirect hop's URL with the tenant's policy; the targets to race. */
  authorize(url: URL, signal: AbortSignal): Promise<CheckedTarget[]> {
    return authorizeHop(this.#config.sessionParams.guard, url, signal);
  }

  /** The hop's session: its allowed addresses raced, each through the scope's network when there is one. */
  async hopSession(targets: readonly CheckedTarget[], url: URL): Promise<HttpSession> {
    const secure = urlProtocol(url).protocol === 'https';
    const dial = this.#config.dial;
    const p = this.#config.sessionParams;
    if (dial === undefined) {
      const open = (target: CheckedTarget, signal: AbortSignal): Promise<HttpSession> =>
        openSession({ ...p, target, signal, secure, alpn: ['h2', 'http/1.1'], requireAlpn: undefined, local: undefined });
      return raceTargets(targets, ATTEMPT_DELAY, this.#life.signal, open, (s) => s.destroy());
    }
    const channel = await raceTargets(targets, ATTEMPT_DELAY, this.#life.signal, (t, signal) => dial.hop(t, secure, signal), (c) => c.abort());
    if (!(channel instanceof HttpChannel)) {
      channel.abort();
      throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `the network answered the redirect hop to ${url.origin} with a channel that is not this driver's HTTP channel`);
    }
    return channel.session;
  }

  async openStream(): Promise<TransportChannel> {
    if (this.#state !== 'open') throw new TapsError('ERR_TAPS_INVALID_STATE', 'the HTTP channel is closing or closed');
    if (this.session.httpVersion === '2') return new HttpChannel(this.session, this.#config);
    // HTTP/1.1 has one exchange at a time per connection: another stream is a parallel connection,
    // to the same address, decided again by the tenant's policy (and opened through its network).
    const t = this.session.target;
    const p = this.#config.sessionParams;
    const target = await p.guard.authorize({ use: t.use, protocol: t.protocol, address: t.address, port: t.port, hostName: t.hostName });
    if (this.#config.dial !== undefined) return this.#config.dial.again(target, this.#life.signal);
    const session = await openSession({ ...p, target, signal: this.#life.signal });
    return new HttpChannel(session, this.#config);
  }

  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    const done = new Promise<void>((r) => this.#closeWaiters.push(r));
    if (this.#state === 'open' || this.#state === 'final') {
      this.#state = 'closing';
      if (this.#upload) {
        this.#upload.push(null);
        this.#upload = undefined;
      }
      if (this.#exchanges.length === 0) void this.#finish();
    }
    return done;
  }

  abort(reason?: Error): void {
    if (this.#state === 'closed') return;
    const err = localAbortError(reason);
    for (const ex of this.#exchanges) ex.cancel(err);
    this.#exchanges = [];
    this.#inbox.closedNow(err);
    this.#teardown(reason, true);
  }

  async #finish(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.session.client.off('drain', this.#onClientDrain);
    this.#life.abort();
    await this.session.release();
    this.#inbox.closedAfterQueue();
    this.#wake();
  }

  #teardown(err: Error | undefined, now: boolean): void {
    this.#state = 'closed';
    this.session.client.off('drain', this.#onClientDrain);
    this.#life.abort();
    this.#upload?.destroy();
    this.#upload = undefined;
    if (!now) this.#inbox.closedAfterQueue(err);
    // An HTTP/1.1 connection in an unknown state is not reused; a shared HTTP/2 session lives on for its other streams.
    if (this.session.httpVersion === '1.1') {
      this.session.destroy(err);
      this.#wake();
    } else {
      void this.session.release().finally(() => this.#wake());
    }
  }

  #wake(): void {
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }
}
