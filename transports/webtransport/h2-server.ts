/**
 * Passive open for WebTransport over HTTP/2 (RFC 9622 §7.2): our own
 * `http2.createSecureServer` bound at the checked local target (port 0 gives
 * a real port in `local`), with the certificate and key of the
 * SecurityParameters (the tls driver's server options, ALPN `h2` only), and
 * SETTINGS that enable extended CONNECT and grant the WebTransport windows.
 *
 * Mapping: each accepted WebTransport session is a connection group; its
 * first peer-opened bidirectional stream goes to `handler.connection` (the
 * core checks the peer against the policy there), later ones to
 * `receiver.stream` of that group's oldest open channel (group.ts). A session
 * closes when its last stream closes; its HTTP/2 connection closes when its
 * last session does.
 *
 * Requests that are not `CONNECT :protocol=webtransport` get 405/400; with
 * the `path` option only that path is served (others 404), without it any.
 * Every response head counts against the tenant's byte budget (the
 * attempt's meter) as its HTTP/1.1 text, as a client's CONNECT does; one the
 * budget cannot take is not sent (the stream is refused instead), and each
 * session's streams charge what they send. The TLS under it counts on the
 * wire (../kit/tls-account.ts, whole-wire, followed on the HTTP/2 session's
 * events by ../kit/h2-account.ts): the handshake it answered, every byte its
 * TCP socket wrote beyond what was charged first (records, HTTP/2 frames,
 * capsules) and every byte it read, charged there once (its channels say
 * `receiveMetered`). A handshake that exceeds the received budget ends the
 * peer at once; one that leaves the sent budget spent gets no 200 (the
 * CONNECT is refused); a received budget exceeded later ends the HTTP/2
 * connection with the `QuotaExceededError`.
 * `close()` stops accepting and drops peers that have not yielded a
 * connection yet (in the TLS handshake, no session, or a session without a
 * stream taken); channels already handed out stay open.
 *
 * @example
 * const listener = await webtransportH2Driver.listen!(attempt);
 * listener.start({ connection: (ch) => ch.start(receiver), error: (e) => log(e) });
 */
import { AcceptQueue } from '../kit/accept-queue.js';
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ByteMeter, DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import { throwIfAborted } from '../kit/abort.js';
import { listenHttpServer } from '../kit/listen-http.js';
import { responseHeadSize } from '../kit/request-path.js';
import { tlsInfo } from '../kit/open-socket.js';
import { socketAddresses } from '../kit/socket-channel.js';
import { tlsServerOptions } from '../kit/tls-options.js';
import { tlsAccount, wholeWire, type WireAccount } from '../kit/tls-account.js';
import { followHttp2 } from '../kit/h2-account.js';
import { wireMeterFor } from '../kit/account.js';
import { webTransportConfig, type WebTransportConfig } from './config.js';
import { WT_SETTINGS, loadHttp2Engine, wtSettings, type Http2Engine } from './engine.js';
import { SessionGroup } from './group.js';
import { abortGrace, closeHttp2 } from './h2-close.js';
import { meterFor } from '../kit/meter.js';

const WHAT = 'webtransport-h2 listen';

function noop(): void {}

export async function listenH2(attempt: ListenAttempt): Promise<DriverListener> {
  throwIfAborted(attempt.signal, WHAT);
  const cfg = webTransportConfig(attempt.options, undefined);
  const tlsOptions = tlsServerOptions(attempt.security, attempt.options ?? {}, ['h2']);
  const engine = await loadHttp2Engine();
  throwIfAborted(attempt.signal, WHAT);
  // allowHalfOpen false: HTTP/2 has no use for TCP half-close, and Node's session would never notice a peer's FIN.
  const server = http2.createSecureServer({ ...tlsOptions, allowHalfOpen: false, allowHTTP1: false, settings: wtSettings(cfg.windows), remoteCustomSettings: [...WT_SETTINGS] });
  const listener = new H2Listener(server, engine, cfg, meterFor(attempt), attempt.target);
  await listener.bind(attempt);
  return listener;
}

/** One TCP connection of the listener: its HTTP/2 session and how many WebTransport sessions it carries. */
interface Peer {
  raw?: net.Socket;
  tls?: TLSSocket;
  h2?: ServerHttp2Session;
  sessions: number;
  /** Its WebTransport sessions (ended with the error when a byte budget is exceeded at its socket). */
  groups?: Set<SessionGroup>;
  /** Its TLS on the wire, when the listening tenant has byte budgets. */
  account?: WireAccount | undefined;
}

const key = (s: net.Socket): string => `${s.remoteAddress}|${s.remotePort}`;

/**
 * Answer `stream` with `status` (ending it unless `open`), charged to `meter` first: a head the budget cannot
 * take is not sent, the stream is refused instead. True when the answer went out.
 */
function respond(stream: ServerHttp2Stream, meter: ByteMeter | undefined, status: number, headers: Record<string, string> = {}, open = false): boolean {
  try {
    meter?.sent(responseHeadSize(status, headers));
  } catch {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return false;
  }
  stream.respond({ ':status': status, ...headers }, { endStream: !open });
  return true;
}

function pathOnly(p: string): string {
  const q = p.indexOf('?');
  return q < 0 ? p : p.slice(0, q);
}

class H2Listener implements DriverListener {
  local: SocketAddress = { address: '', port: 0, family: 4 };
  readonly #server: http2.Http2SecureServer;
  readonly #engine: Http2Engine;
  readonly #cfg: WebTransportConfig;
  readonly #peers = new Map<string, Peer>();
  /** Sessions none of whose streams reached the handler yet. */
  readonly #untaken = new Set<SessionGroup>();
  readonly #queue = new AcceptQueue();
  readonly #meter: ByteMeter | undefined;
  /** The bind target: its scope's budgets are the ones each peer's TLS counts against. */
  readonly #target: unknown;

  constructor(server: http2.Http2SecureServer, engine: Http2Engine, cfg: WebTransportConfig, meter: ByteMeter | undefined, target: unknown) {
    this.#server = server;
    this.#engine = engine;
    this.#cfg = cfg;
    this.#meter = meter;
    this.#target = target;
    server.on('connection', (raw: net.Socket) => {
      if (this.#queue.closed) return void raw.destroy();
      const k = key(raw);
      this.#peers.set(k, { raw, sessions: 0 });
      raw.on('error', noop);
      raw.once('close', () => this.#peers.delete(k));
    });
    // Before HTTP/2's own listener, which makes the session at once: the account must be there for it.
    server.prependListener('secureConnection', (tls: TLSSocket) => {
      const peer = this.#peers.get(key(tls));
      if (!peer) return;
      peer.tls = tls;
      if (peer.raw !== undefined) peer.account = this.#meterTls(tls, peer.raw);
    });
    server.on('session', (h2: ServerHttp2Session) => {
      const socket = h2.socket as net.Socket | undefined;
      const peer = socket ? this.#peers.get(key(socket)) : undefined;
      h2.on('error', noop);
      if (!peer) return;
      peer.h2 = h2;
      if (peer.account !== undefined) followHttp2(h2, peer.account, (err) => this.#exceeded(peer, err));
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#onStream(stream, headers));
    server.on('unknownProtocol', (socket: net.Socket) => socket.destroy());
    // A failed handshake (bad certificate, wrong ALPN, a scanner): drop the socket at once.
    server.on('tlsClientError', (_err: Error, socket: TLSSocket) => socket.destroy());
    server.on('sessionError', noop);
  }

  /**
   * Charge a peer's TLS on the wire: the handshake it answered now (one over the received budget ends the
   * peer), the tickets just after, then the whole wire on the session's events.
   */
  #meterTls(tls: TLSSocket, raw: net.Socket): WireAccount | undefined {
    if (wireMeterFor(undefined, this.#target) === undefined) return undefined;
    const account = tlsAccount(tls, raw, this.#target, false);
    try {
      account.settle();
    } catch (err) {
      tls.destroy(err as Error);
      return undefined;
    }
    setImmediate(() => account.settleSent());
    return wholeWire(tls);
  }

  /** A byte budget exceeded at `peer`'s socket: every session on it ends with that error. */
  #exceeded(peer: Peer, err: Error): void {
    for (const group of [...(peer.groups ?? [])]) group.fail(err);
  }

  async bind(attempt: ListenAttempt): Promise<void> {
    this.local = await listenHttpServer(this.#server, attempt, WHAT, (err) => this.#fail(err));
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', noop);
    const h2 = stream.session;
    const socket = h2?.socket as TLSSocket | undefined;
    if (this.#queue.closed || !h2 || !socket) return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    const found = this.#peers.get(key(socket));
    const account = found?.account;
    // Whole-wire: what is charged first here counts as on this peer's wire (a response head, a stream write).
    const meter = account === undefined ? this.#meter : account.counting(this.#meter);
    if (headers[':method'] !== 'CONNECT') return void respond(stream, meter, 405, { allow: 'CONNECT' });
    if (headers[':protocol'] !== 'webtransport') return void respond(stream, meter, 400);
    const path = headers[':path'] ?? '/';
    if (this.#cfg.path !== undefined && pathOnly(path) !== pathOnly(this.#cfg.path)) return void respond(stream, meter, 404);
    const { local, remote } = socketAddresses(socket);
    if (!respond(stream, meter, 200, {}, true)) return;
    const session = this.#engine.session({
      stream,
      isClient: false,
      windows: this.#cfg.windows,
      remote: h2.remoteSettings?.customSettings,
      header: headers,
      peerAddress: `${remote.address}:${remote.port}`,
    });
    const peer: Peer = found ?? { sessions: 0, h2: h2 as ServerHttp2Session };
    peer.sessions++;
    let ended = false;
    const group: SessionGroup = new SessionGroup(
      session,
      {
        local,
        remote,
        info: Object.freeze({ protocol: 'webtransport', httpVersion: '2', path, ...tlsInfo(socket) }),
        teardown: (abandoned) => {
          if (!ended) {
            ended = true;
            this.#untaken.delete(group);
            peer.groups?.delete(group);
            // The HTTP/2 connection carried only WebTransport: when its last session ends, say GOAWAY.
            if (--peer.sessions === 0) {
              const sockets = [peer.tls, peer.raw].filter((s): s is net.Socket => s !== undefined);
              void closeHttp2(h2, stream, abandoned ? abortGrace(this.#cfg.closeTimeout) : this.#cfg.closeTimeout, sockets);
            }
          }
          return Promise.resolve();
        },
      },
      {
        closeTimeout: this.#cfg.closeTimeout,
        accept: (ch) => {
          this.#untaken.delete(group);
          this.#accept(ch);
        },
        meter,
        receiveMetered: account !== undefined,
      },
    );
    if (!ended) {
      this.#untaken.add(group);
      (peer.groups ??= new Set()).add(group);
    }
  }

  #accept(channel: TransportChannel): void {
    this.#queue.offer(channel);
  }

  start(handler: DriverListenerHandler): void {
    this.#queue.start(handler);
  }

  #fail(err: Error): void {
    void this.close();
    this.#queue.fail(err);
  }

  close(): Promise<void> {
    if (this.#queue.closed) return Promise.resolve();
    this.#queue.close();
    const gone = new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the listener closed before the connection was taken');
    for (const g of [...this.#untaken]) g.abort(gone);
    for (const peer of this.#peers.values()) {
      if (peer.sessions > 0) continue;
      peer.h2?.destroy();
      peer.raw?.destroy();
    }
    return new Promise<void>((resolve) => {
      // server.close's callback waits for every open session; the listening handle is gone at once.
      this.#server.close();
      setImmediate(resolve);
    });
  }
}
