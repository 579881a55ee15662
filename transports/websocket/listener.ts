/**
 * Passive open for `ws:` / `wss:` (RFC 9622 §7.2): an http(s) server of our
 * own bound at the checked local target, with a ws WebSocketServer in
 * `noServer` mode. Each peer becomes a channel only after its upgrade
 * completes; plain HTTP requests get 426. The core checks each accepted
 * peer's address against the policy (`accept`) before the user sees it.
 * Everything a peer's socket carries counts against the listening tenant's
 * byte budgets, each byte once, at the socket (../kit/socket-account.ts):
 * what the server writes is metered as written (../kit/meter.ts) from the
 * moment the peer is accepted (for wss: handshaken) until the 101 response
 * is out — the 101 itself, 426s, 404s — and the channel then charges each
 * frame it sends, header included; what ws writes by itself (a pong, its
 * close frame) is learned from the socket's counters. Everything the TCP
 * socket reads (the upgrade request, which the HTTP server parses from the
 * handle, then each frame with its header and mask) is charged there, so
 * the channel says `receiveMetered` and the Connection does not count the
 * messages again; over the received budget the peer is dropped. A wss
 * peer's TLS counts on the wire as a TLS listener's does
 * (../kit/tls-account.ts): the handshake it answered, its tickets and each
 * record's overhead sent, and every byte its TCP socket reads (handshake
 * included).
 * `close()` stops accepting and drops peers still in their handshake;
 * channels already handed out stay open.
 *
 * Options (`driverOptions.ws`/`.wss`): `path` (only this request path is
 * upgraded, others get 404), `subprotocols` (the server's choices, in order
 * of preference; the first the client also offers wins), `maxPayload`,
 * `perMessageDeflate`, `closeTimeout` (ms a closing handshake may take).
 *
 * @example
 * const listener = await wssDriver.listen!(attempt);
 * listener.start({ connection: (ch) => ch.start(receiver), error: (e) => log(e) });
 */
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { WebSocketServer, WebSocket } from 'ws';
import type { DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress } from '../../src/driver.js';
import { throwIfAborted } from '../kit/abort.js';
import { AcceptQueue } from '../kit/accept-queue.js';
import { wireMeterFor, type WireMeter } from '../kit/account.js';
import { listenHttpServer } from '../kit/listen-http.js';
import { meterWrites } from '../kit/meter.js';
import { tlsInfo } from '../kit/open-socket.js';
import { validatePath } from '../kit/request-path.js';
import { socketAccount, type SocketAccount } from '../kit/socket-account.js';
import { checkBeforeHandshake, tlsAccount } from '../kit/tls-account.js';
import { tlsServerOptions } from '../kit/tls-options.js';
import { WebSocketChannel } from './channel.js';
import { DEFAULT_MAX_PAYLOAD, readProperty, validateCloseTimeout, validateMaxPayload, validateSubprotocols } from './config.js';
import { loadWs } from './load.js';

export async function listenWebSocket(attempt: ListenAttempt, secure: boolean): Promise<DriverListener> {
  throwIfAborted(attempt.signal, secure ? 'wss listen' : 'ws listen');
  const o = attempt.options ?? {};
  const path = o['path'] === undefined ? undefined : validatePath(o['path']);
  const choices = validateSubprotocols(o['subprotocols']);
  const maxPayload = validateMaxPayload(o['maxPayload'] ?? readProperty(attempt.properties, 'ws.maxPayload'), DEFAULT_MAX_PAYLOAD);
  const deflate = o['perMessageDeflate'] === true;
  const closeTimeout = validateCloseTimeout(o['closeTimeout']);
  const { WebSocketServer } = await loadWs();
  throwIfAborted(attempt.signal, secure ? 'wss listen' : 'ws listen');
  const server = secure ? https.createServer(tlsServerOptions(attempt.security, o, ['http/1.1'])) : http.createServer();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    perMessageDeflate: deflate,
    handleProtocols: (offered) => choices.find((p) => offered.has(p)) ?? false,
    // ws@8 takes closeTimeout (its type file does not list it yet).
    ...(closeTimeout === undefined ? {} : { closeTimeout }),
  } as ConstructorParameters<typeof WebSocketServer>[0]);
  const listener = new WebSocketListener(server, wss, maxPayload, path, secure, wireMeterFor(attempt.meter, attempt.target), attempt.target);
  await listener.bind(attempt);
  return listener;
}

class WebSocketListener implements DriverListener {
  local: SocketAddress = { address: '', port: 0, family: 4 };
  readonly #server: http.Server;
  readonly #wss: WebSocketServer;
  readonly #maxPayload: number;
  readonly #path: string | undefined;
  readonly #pending = new Set<net.Socket>();
  readonly #queue = new AcceptQueue();
  /** The listening tenant's budgets (undefined: it has none, nothing is counted). */
  readonly #wire: WireMeter | undefined;
  /** Each peer's account: what its socket carried (the TLS one for wss: its cleartext). */
  readonly #accounts = new WeakMap<net.Socket, SocketAccount>();
  /** Sockets metered as written until their upgrade is done → what ends that. */
  readonly #unmeter = new WeakMap<net.Socket, () => void>();
  /** Every byte its TCP sockets read is charged there (the channels are receiveMetered). */
  readonly #receiveMetered: boolean;
  /** The bind target (its scope's budgets are the ones a wss peer's TLS counts against). */
  readonly #target: unknown;

  /** `wire`: the listening tenant's budgets; `target`: the bind target, whose scope's budgets a wss peer's TLS counts against. */
  constructor(
    server: http.Server, wss: WebSocketServer, maxPayload: number, path: string | undefined, secure: boolean, wire: WireMeter | undefined, target: unknown,
  ) {
    this.#server = server;
    this.#wss = wss;
    this.#maxPayload = maxPayload;
    this.#path = path;
    this.#wire = wire;
    this.#receiveMetered = wire !== undefined;
    this.#target = target;
    server.on('connection', (socket: net.Socket) => {
      this.#pending.add(socket);
      socket.once('close', () => this.#pending.delete(socket));
      if (!secure) this.#meterHttp(socket, true);
    });
    // The TLS socket is the one HTTP writes its responses to (plaintext, as a client's writes are counted).
    if (secure) {
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        // First: the HTTP meter wraps the accounts' write hooks, and unwrapping it leaves those hooks in place.
        if (!this.#meterTls(socket, target)) return;
        this.#meterHttp(socket, false);
      });
    }
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!this.#settle(req.socket)) return;
      res.writeHead(426, { connection: 'close', upgrade: 'websocket', 'content-length': '0' }).end();
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.#upgrade(req, socket, head));
    server.on('clientError', (_err: Error, socket: net.Socket) => socket.destroy());
    // Node leaves the socket open after a handshake timeout: destroy it, or a slowloris peer holds it forever.
    server.on('tlsClientError', (_err: Error, socket: net.Socket) => socket.destroy());
  }

  async bind(attempt: ListenAttempt): Promise<void> {
    this.local = await listenHttpServer(this.#server, attempt, 'websocket listen', (err) => this.#fail(err));
  }

  /**
   * Charge the TLS of a wss peer on the wire: the handshake it answered now, its tickets just after, then
   * each record as it is written, and everything the TCP socket reads (the cleartext too: nothing else
   * counts it). False when the handshake already exceeded the received budget: the peer is destroyed.
   */
  #meterTls(socket: tls.TLSSocket, target: unknown): boolean {
    const raw = (socket as tls.TLSSocket & { _parent?: net.Socket })._parent;
    if (raw === undefined || !this.#receiveMetered) return true;
    const account = tlsAccount(socket, raw, target, false);
    try {
      account.settle();
    } catch (err) {
      socket.destroy(err as Error);
      return false;
    }
    setImmediate(() => account.settleSent());
    return true;
  }

  /**
   * Count what `socket` carries (`reads`: what it reads too; over TLS the TCP socket's account does), and
   * charge what HTTP and ws write to it (responses, the 101) before it is written, until the channel
   * charges its own frames.
   */
  #meterHttp(socket: net.Socket, reads: boolean): void {
    if (this.#wire === undefined) return;
    const account = socketAccount(socket, this.#wire, reads);
    this.#accounts.set(socket, account);
    this.#unmeter.set(socket, meterWrites(socket, account.meter));
  }

  /** Charge what `socket` read (a request the HTTP server parsed from its handle); false, and the socket destroyed, over the budget. */
  #settle(socket: net.Socket): boolean {
    try {
      this.#accounts.get(socket)?.settle();
      return true;
    } catch (err) {
      // Upgraded, the socket has no listener left: nothing else would hear the QuotaExceededError.
      socket.on('error', () => {});
      socket.destroy(err as Error);
      return false;
    }
  }

  #upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    if (this.#queue.closed) return void socket.destroy();
    // The upgrade request, parsed from the socket's handle: charged before anything answers it.
    if (!this.#settle(socket)) return;
    const path = req.url ?? '/';
    if (this.#path !== undefined && path.split('?')[0] !== this.#path.split('?')[0]) {
      // Destroyed once written: the HTTP server lets a socket half open, and a peer keeping its side open held it (and its unit).
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', () => socket.destroy());
      return;
    }
    if (this.#receiveMetered) {
      // The handshake (and tickets) may have spent the sent budget: no 101 then, and no channel.
      try {
        checkBeforeHandshake(this.#target);
      } catch (err) {
        socket.destroy(err as Error);
        return;
      }
    }
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.#pending.delete(socket);
      const info = { path, origin: req.headers.origin, ...tlsInfo(socket) };
      // ws wrote the 101 (nothing was pending on this socket before it, so it went straight to the handle).
      this.#unmeter.get(socket)?.();
      this.#unmeter.delete(socket);
      const channel = new WebSocketChannel(ws, socket, {
        maxPayload: this.#maxPayload, info, meter: this.#accounts.get(socket)?.meter, server: true, receiveMetered: this.#receiveMetered,
      });
      this.#queue.offer(channel);
    });
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
    for (const s of this.#pending) s.destroy();
    this.#pending.clear();
    this.#wss.close();
    return new Promise<void>((resolve) => {
      // server.close's callback waits for every upgraded socket; the listening handle is gone at once.
      this.#server.close();
      setImmediate(resolve);
    });
  }
}
