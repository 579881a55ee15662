/**
 * One HTTP connection to one checked target, driven by an undici Client whose
 * `connect` hook is ours: the first socket is the one establishment opened
 * (so TCP/TLS/ALPN are done before the channel is ready, RFC 9623 §4.2),
 * and any later socket (undici reconnects after an idle keep-alive close) is
 * opened only after the tenant's guard authorises the same address again,
 * through the scope's network (./dial.ts).
 * undici never resolves a name or dials on its own. HTTP/2 is used exactly
 * when ALPN negotiated `h2`; several channels (streams) may share a session,
 * which closes when the last one lets go. Every socket handed to undici
 * charges what it carries to the tenant's byte budgets as it goes
 * (./wire.ts); over HTTP/2 on the HTTP/2 session's events
 * (../kit/h2-account.ts): Node's HTTP/2 reads and writes it below JavaScript.
 *
 * @example
 * const session = await openSession({ target, guard, signal, secure: true, alpn: ['h2'], clientOptions: {} });
 * session.client.dispatch({ path: '/', method: 'GET' }, handler);
 */
import type net from 'node:net';
import type { Client } from 'undici';
import type { ByteMeter, SocketAddress, TransportChannel } from '../../src/driver.js';
import type { LocalEndpoint } from '../../src/endpoints.js';
import { TapsError } from '../../src/errors.js';
import type { CheckedTarget, PolicyGuard } from '../../src/policy/chokepoint.js';
import type { SecurityParameters } from '../../src/security.js';
import { abortedError } from '../kit/abort.js';
import { furtherGrant } from '../kit/account.js';
import type { HttpDial } from './dial.js';
import { authority, openSocket, tlsInfo, type OpenedSocket } from '../kit/open-socket.js';
import { socketAddresses } from '../kit/socket-channel.js';
import type { Http2Session } from 'node:http2';
import { SessionWire } from './wire.js';

export interface SessionParams {
  readonly target: CheckedTarget;
  readonly guard: PolicyGuard;
  readonly signal: AbortSignal;
  readonly secure: boolean;
  /** ALPN to offer (TLS only): ['http/1.1'], ['h2'] or both. */
  readonly alpn: readonly string[];
  /** Fail establishment unless this protocol was negotiated (the h2 driver). */
  readonly requireAlpn?: string | undefined;
  readonly security: SecurityParameters;
  readonly local?: LocalEndpoint | undefined;
  readonly clientOptions: Readonly<Client.Options>;
  /** The tenant's byte budget: every request head and body on this session is charged before it is dispatched. */
  readonly meter?: ByteMeter | undefined;
  /** The scope's network for reconnects (./dial.ts); undefined: dial the checked target directly. */
  readonly dial?: HttpDial | undefined;
  /** The attempt's unit (transports/kit/account.ts): every socket of the session counts under its lease. */
  readonly unit?: unknown;
}

/** A channel whose connection can be handed over as a bare socket (an HttpChannel made for a reconnect). */
interface SocketSource {
  readonly httpVersion?: string;
  takeSocket?(): net.Socket | undefined;
}

type ConnectCallback = (...args: [null, net.Socket] | [Error, null]) => void;

// undici is ~19 MB of resident memory once imported: loaded by the first HTTP establishment, not at import.
let undiciModule: Promise<typeof import('undici')> | undefined;
const loadUndici = (): Promise<typeof import('undici')> => (undiciModule ??= import('undici'));

export class HttpSession {
  readonly client: Client;
  readonly target: CheckedTarget;
  readonly httpVersion: '1.1' | '2';
  readonly origin: string;
  /** The origin's `host[:port]`, as undici writes it in `host` / `:authority`. */
  readonly authority: string;
  /** What requests are charged to before they are dispatched (./wire.ts). */
  readonly meter: ByteMeter | undefined;
  /** Every byte the session's sockets read is charged at the socket (./wire.ts): its channels say receiveMetered. */
  readonly receiveMetered: boolean;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  readonly #params: SessionParams;
  readonly #life = new AbortController();
  readonly #wire: SessionWire;
  /** The received budget exceeded on one of the session's sockets: every request on it fails with this. */
  #exceeded: Error | undefined;
  #first: net.Socket | undefined;
  /** The socket last handed to undici: its HTTP/2 session is followed once undici made it. */
  #handed: net.Socket | undefined;
  #refs = 0;
  #closing: Promise<void> | undefined;

  constructor(params: SessionParams, opened: OpenedSocket, ClientClass: typeof Client) {
    const socket = opened.socket;
    this.#params = params;
    this.target = params.target;
    this.#first = socket;
    // Until undici takes the socket it is ours: a reset must not crash, and a dead one is not handed over.
    socket.on('error', () => {});
    socket.once('close', () => {
      if (this.#first === socket) this.#first = undefined;
    });
    const secure = params.secure;
    this.httpVersion = secure && (socket as net.Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2' ? '2' : '1.1';
    this.authority = authority(params.target, secure ? 443 : 80);
    this.origin = `${secure ? 'https' : 'http'}://${this.authority}`;
    this.#wire = new SessionWire(params.target, params.meter, this.httpVersion === '2');
    this.#wire.adopt(socket);
    this.meter = this.#wire.meter;
    this.receiveMetered = this.#wire.receiveMetered;
    const { local, remote } = socketAddresses(opened.raw);
    this.local = local;
    this.remote = remote;
    this.info = Object.freeze({ httpVersion: this.httpVersion, origin: this.origin, ...tlsInfo(socket) });
    this.client = new ClientClass(this.origin, {
      ...params.clientOptions,
      allowH2: this.httpVersion === '2',
      connect: (_opts: unknown, cb: ConnectCallback) => this.#connect(cb),
    });
    // Errors reach each request's handler; a client-level event must never go unhandled.
    this.client.on('connectionError', () => {});
    // undici says 'connect' right after it made its HTTP/2 session on the socket, before any request on it.
    if (this.httpVersion === '2') this.client.on('connect', () => this.#followHttp2());
    // Every channel of this session (an HTTP/2 stream, or a cloned HTTP/1.1 channel) listens for 'drain' and
    // removes its listener when it closes: many is normal, not a leak, and must not print a warning.
    this.client.setMaxListeners(0);
  }

  #connect(cb: ConnectCallback): void {
    const first = this.#first;
    if (first) {
      this.#first = undefined;
      // Never call back synchronously: undici is inside its resume loop here and would not write the request.
      queueMicrotask(() => (first.destroyed ? this.#connect(cb) : this.#hand(cb, first)));
      return;
    }
    this.#reconnect().then(
      (s) => this.#hand(cb, s),
      (err: Error) => cb(err, null),
    );
  }

  #hand(cb: ConnectCallback, socket: net.Socket): void {
    this.#handed = socket;
    this.#wire.adopt(socket);
    cb(null, socket);
  }

  /** Charge the whole wire of the socket just handed over on its HTTP/2 session's events (./wire.ts). */
  #followHttp2(): void {
    const socket = this.#handed;
    this.#handed = undefined;
    const session = socket === undefined ? undefined : http2SessionOf(socket);
    if (socket === undefined || session === undefined) return;
    this.#wire.followHttp2(socket, session, (err) => {
      this.#exceeded ??= err;
    });
  }

  /** The received budget exceeded on this session's wire, if it was: what its failed requests report. */
  get exceeded(): Error | undefined {
    return this.#exceeded;
  }

  /**
   * Every further socket is a new decision by the tenant's policy for the same address, opened through the
   * scope's network (a connection of this session's driver, whose socket undici takes over) when there is one.
   */
  async #reconnect(): Promise<net.Socket> {
    const p = this.#params;
    const signal = this.#life.signal;
    const t = p.target;
    const target = await p.guard.authorize({ use: t.use, protocol: t.protocol, address: t.address, port: t.port, hostName: t.hostName });
    if (p.dial !== undefined) {
      const channel = await p.dial.again(target, signal);
      const source = channel as TransportChannel & SocketSource;
      const socket = source.httpVersion === this.httpVersion ? source.takeSocket?.() : undefined;
      channel.abort();
      if (socket === undefined) {
        throw new TapsError('ERR_TAPS_PROTOCOL_FAILED', `the reconnect to ${this.origin} did not give an HTTP/${this.httpVersion} connection of this driver`);
      }
      return socket;
    }
    const tls = p.secure ? { security: p.security, alpn: this.httpVersion === '2' ? ['h2'] : ['http/1.1'] } : undefined;
    const { socket } = await openSocket({ target, signal, local: p.local, tls, what: this.origin, unit: furtherGrant(p.unit) });
    const alpn = (socket as net.Socket & { alpnProtocol?: string | false }).alpnProtocol;
    if (p.secure && (alpn === 'h2') !== (this.httpVersion === '2')) {
      socket.destroy();
      throw new TapsError('ERR_TAPS_PROTOCOL_FAILED', `reconnect negotiated ${String(alpn)} instead of HTTP/${this.httpVersion}`);
    }
    return socket;
  }

  /** Hand the connection's socket over (to another session's undici) if undici has not taken it yet. */
  takeSocket(): net.Socket | undefined {
    const socket = this.#first;
    this.#first = undefined;
    return socket === undefined || socket.destroyed ? undefined : socket;
  }

  retain(): this {
    this.#refs++;
    return this;
  }

  /** Let go of one reference; the last one closes the client (graceful: pending requests finish). */
  release(): Promise<void> {
    if (this.#refs > 0) this.#refs--;
    if (this.#refs > 0) return Promise.resolve();
    return this.close();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#life.abort();
      this.#first?.destroy();
      this.#first = undefined;
      await this.client.close().catch(() => {});
    })();
    return this.#closing;
  }

  /** Tear down now (every channel on this session fails). */
  destroy(err?: Error): void {
    this.#life.abort();
    this.#first?.destroy();
    this.#first = undefined;
    this.#refs = 0;
    this.client.destroy(err ?? null).catch(() => {});
  }
}

/**
 * The HTTP/2 session undici made on `socket` (undici keeps it there under a symbol of its own; not found:
 * the TLS socket's own hooks never run under HTTP/2, so what it carried after the handshake is charged
 * when it closes).
 */
function http2SessionOf(socket: net.Socket): Http2Session | undefined {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    if (key.description !== 'http2Session') continue;
    const session = (socket as unknown as Record<symbol, unknown>)[key] as Http2Session | undefined;
    if (session !== undefined && session !== null && typeof session.ping === 'function') return session;
  }
  return undefined;
}

/** Establish: connect the socket (and TLS with ALPN), check ALPN, wrap it in a session. */
export async function openSession(params: SessionParams): Promise<HttpSession> {
  const tls = params.secure ? { security: params.security, alpn: params.alpn } : undefined;
  const undici = loadUndici(); // in parallel with the handshake
  undici.catch(() => {}); // observed below
  const opened = await openSocket({ target: params.target, signal: params.signal, local: params.local, tls, what: params.secure ? 'https' : 'http', unit: params.unit });
  const socket = opened.socket;
  let ClientClass: typeof Client;
  try {
    ({ Client: ClientClass } = await undici);
  } catch (err) {
    socket.destroy();
    opened.raw.destroy();
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `the http driver could not load undici: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  if (params.signal.aborted) {
    socket.destroy();
    opened.raw.destroy();
    throw abortedError(params.signal, `${params.secure ? 'https' : 'http'} session to ${params.target.address}:${params.target.port}`);
  }
  if (params.requireAlpn !== undefined) {
    const alpn = (socket as net.Socket & { alpnProtocol?: string | false }).alpnProtocol;
    if (alpn !== params.requireAlpn) {
      socket.destroy();
      throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `the server did not negotiate ${params.requireAlpn} (ALPN: ${alpn || 'none'})`);
    }
  }
  return new HttpSession(params, opened, ClientClass);
}
