/**
 * WebTransport over HTTP/3 (QUIC) through the package's public API, usable
 * only when the optional native module is installed (engine.ts checks that
 * on disk and never imports it otherwise, so its absence costs no output).
 *
 * The native client dials and does TLS itself: it gets an IP-literal URL of
 * the checked target (so it resolves nothing) and `requireUnreliable: true`
 * (so it never falls back to its own HTTP/2 connection). It takes no server
 * name, CA or verification callback, so the only way to authenticate the
 * server here is `serverCertificateHashes` from `pinnedServerCertificates`
 * (≤ 14-day ECDSA certificates, checked by the native code); without pins,
 * or with `ca`/`verify` that it cannot honour, the attempt fails at once with
 * ERR_TAPS_SECURITY_FAILED, so the selector falls back to webtransport-h2.
 * Its failures all read "Opening handshake failed.", so they map to
 * ERR_TAPS_ESTABLISHMENT_FAILED with that text.
 *
 * Listeners use the package's Http3Server on the checked address with the
 * SecurityParameters' certificate; they serve one path (`path`, default '/').
 *
 * Quotas, as QUIC's (../quic/client.ts, ../quic/server.ts) where this code
 * can reach: a session takes a unit of `limit connections` (the Connection's
 * own on the library's path) before it is created and holds it until it
 * closes, and none is created once the tenant's sent budget is spent; a
 * listener takes a unit of `limit listeners` until it stops, and, opened
 * outside the library's path, a unit of `limit connections` per session it
 * accepts (one over the limit is closed at once). What the sessions send is
 * charged as they send it; the datagrams on the wire cannot be counted: the
 * native module owns its UDP socket. So the channels count what they read
 * instead: each stream chunk and datagram is charged to the received budget
 * before it is delivered (on both paths, whoever reads the channel: a
 * guest's driver reading the library's channel itself spends the budget
 * all the same), the channels say `receiveMetered` so the Connection does not
 * count it again, and over the budget the session ends with the
 * QuotaExceededError. QUIC and HTTP/3 framing and the peer's control
 * streams stay uncounted. UNVERIFIED: the native module is not installed
 * where this was written, so none of this has run against it on the wire; a
 * fake module checks the accounting only (test/unit/webtransport-h3-quota.test.ts).
 *
 * @example
 * const channel = await connectH3(attempt, 'streams');    // a StreamChannel in a session group
 * const datagrams = await connectH3(attempt, 'datagrams'); // a DatagramChannel
 */
import { AcceptQueue } from '../kit/accept-queue.js';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { ReadableStreamDefaultReader } from 'node:stream/web';
import type { ByteMeter, ConnectAttempt, DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import type { SecurityParameters } from '../../src/security.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { headSize } from '../kit/request-path.js';
import { dialUnit, listenUnit, takeSocketUnit, wireMeterFor, type SocketUnit } from '../kit/account.js';
import { targetAddress } from '../kit/dial.js';
import { webTransportConfig } from './config.js';
import { DatagramChannel } from './datagram.js';
import { loadHttp3Api, type PublicApi, type WtSession } from './engine.js';
import { SessionGroup, type ReadMeter, type SessionTransport } from './group.js';
import { meterFor } from '../kit/meter.js';

export type H3Mode = 'streams' | 'datagrams';

function noop(): void {}

/** `pinnedServerCertificates` as WebTransport `serverCertificateHashes`, or why HTTP/3 cannot authenticate the peer. */
export function serverCertificateHashes(security: SecurityParameters, what: string): { algorithm: 'sha-256'; value: Uint8Array }[] {
  const why = (detail: string): TapsError =>
    new TapsError('ERR_TAPS_SECURITY_FAILED', `${what}: ${detail}; the native HTTP/3 client authenticates servers only by pinned certificate hashes (pinnedServerCertificates)`);
  if (security.mode !== 'required') throw why('security is not required here, but the native client cannot skip authentication');
  if (security.pinnedServerCertificates.length === 0) throw why('no certificate is pinned');
  if (security.ca !== undefined) throw why('a CA is given, which the native client cannot use');
  if (security.verify !== undefined) throw why('a verify callback is given, which the native client cannot call');
  return security.pinnedServerCertificates.map((hex) => ({ algorithm: 'sha-256' as const, value: Uint8Array.from(Buffer.from(hex, 'hex')) }));
}

function unknownLocal(family: 4 | 6): SocketAddress {
  return Object.freeze({ address: family === 6 ? '::' : '0.0.0.0', port: 0, family });
}

/** `addr:port` (as the package reports peers) as a SocketAddress. */
function parsePeer(peer: string | undefined): SocketAddress {
  const at = peer?.lastIndexOf(':') ?? -1;
  const address = at > 0 ? peer!.slice(0, at).replace(/^\[|\]$/g, '') : '';
  const port = at > 0 ? Number(peer!.slice(at + 1)) : 0;
  return Object.freeze({ address, port: Number.isInteger(port) ? port : 0, family: isIP(address) === 6 ? 6 : 4 });
}

function waitReady(session: WtSession, signal: AbortSignal, label: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      try {
        session.close({ closeCode: 1, reason: 'aborted' });
      } catch {
        // not yet connected: the native client is closed by the package on failure
      }
      reject(abortedError(signal, label));
    };
    const stopListening = whenAborted(signal, onAbort);
    session.ready.then(
      () => {
        stopListening();
        resolve();
      },
      (err: unknown) => {
        stopListening();
        reject(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${label}: ${(err as Error)?.message ?? String(err)} (refused, unreachable, wrong certificate hash and wrong path look alike here)`, { cause: err }));
      },
    );
  });
}

export async function connectH3(attempt: ConnectAttempt, mode: H3Mode): Promise<TransportChannel> {
  const what = mode === 'streams' ? 'webtransport-h3' : 'webtransport-h3-datagram';
  const { signal, target } = attempt;
  throwIfAborted(signal, what);
  const cfg = webTransportConfig(attempt.options, attempt.remote?.path ?? '/');
  const { address, port, family } = targetAddress(target, what, 'udp');
  const hashes = serverCertificateHashes(attempt.security, what);
  const api: PublicApi = await loadHttp3Api();
  throwIfAborted(signal, what);
  const path = cfg.path ?? '/';
  const url = `https://${family === 6 ? `[${address}]` : address}:${port}${path}`;
  // A unit of `limit connections` until the session closes (see the module comment).
  const taken = dialUnit(attempt.unit, target);
  const unit = taken instanceof Promise ? await taken : taken;
  let session: WtSession;
  try {
    wireMeterFor(undefined, target)?.check();
    // The extended CONNECT (its path is the caller's) counts against the tenant's byte budget.
    meterFor(attempt)?.sent(headSize('CONNECT', path, `${address}:${port}`, {}));
    session = new api.WebTransport(url, {
      serverCertificateHashes: hashes,
      requireUnreliable: true,
      initialSessionFlowControlWindow: cfg.windows.session,
      initialStreamFlowControlWindow: cfg.windows.stream,
      ...(attempt.local?.port ? { localPort: attempt.local.port } : {}),
    });
  } catch (err) {
    unit.release();
    throw err;
  }
  session.ready.catch(noop);
  session.closed.then(unit.release, unit.release);
  try {
    await waitReady(session, signal, `${what} session at ${url}`);
  } catch (err) {
    unit.release();
    throw err;
  }
  const remote: SocketAddress = Object.freeze({ address, port, family });
  const info = Object.freeze({ protocol: 'webtransport', httpVersion: '3', path, serverName: target.hostName });
  const meter = meterFor(attempt);
  // What the session reads is charged at its channels (see the module comment).
  const readMeter = wireMeterFor(undefined, target);
  if (mode === 'datagrams') return new DatagramChannel(session, { local: unknownLocal(family), remote, info, meter, readMeter });
  const group = new SessionGroup(session, sessionTransport(session, unknownLocal(family), remote, info), { closeTimeout: cfg.closeTimeout, meter, readMeter });
  let first;
  try {
    first = await session.createBidirectionalStream();
  } catch (err) {
    session.close({ closeCode: 0, reason: '' });
    unit.release();
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what}: could not open the first stream: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  return group.add(first);
}

function sessionTransport(session: WtSession, local: SocketAddress, remote: SocketAddress, info: Readonly<Record<string, unknown>>): SessionTransport {
  return {
    local,
    remote,
    info,
    teardown: async () => {
      await session.closed.catch(() => undefined);
    },
  };
}

export async function listenH3(attempt: ListenAttempt, mode: H3Mode): Promise<DriverListener> {
  const what = `${mode === 'streams' ? 'webtransport-h3' : 'webtransport-h3-datagram'} listen`;
  const { signal, target, security } = attempt;
  throwIfAborted(signal, what);
  const { address, port, family } = targetAddress(target, what, 'udp listen');
  const cfg = webTransportConfig(attempt.options, undefined);
  if (security.certificate === undefined || security.key === undefined) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `${what} needs security.certificate and security.key`);
  }
  const api = await loadHttp3Api();
  throwIfAborted(signal, what);
  // A unit of `limit listeners` until the server stops (the Listener's own on the library's path).
  const taken = listenUnit(attempt.unit, target);
  const unit = taken instanceof Promise ? await taken : taken;
  const stop = (server: { stopServer(): void }): void => {
    unit.release();
    server.stopServer();
  };
  let server: InstanceType<PublicApi['Http3Server']>;
  try {
    server = new api.Http3Server({
      host: address,
      port,
      secret: randomBytes(32).toString('hex'),
      cert: security.certificate.toString(),
      privKey: security.key.toString(),
      initialSessionFlowControlWindow: cfg.windows.session,
      initialStreamFlowControlWindow: cfg.windows.stream,
    });
  } catch (err) {
    unit.release();
    throw err;
  }
  const sessions = server.sessionStream(cfg.path ?? '/');
  server.startServer();
  const stopListening = whenAborted(signal, () => stop(server));
  try {
    await server.ready;
  } catch (err) {
    stop(server);
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what} on ${address}:${port} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  } finally {
    stopListening();
  }
  if (signal.aborted) {
    stop(server);
    throw abortedError(signal, what);
  }
  const a = server.address();
  const local: SocketAddress = Object.freeze({ address: a?.host ?? address, port: a?.port ?? port, family });
  const admit = unit.granted ? undefined : sessionUnits(target);
  const meters = { meter: meterFor(attempt), readMeter: wireMeterFor(undefined, target) };
  return new H3Listener(local, sessions.getReader(), () => stop(server), mode, cfg.closeTimeout, cfg.path ?? '/', meters, admit);
}

/**
 * Opened outside the library's path: each accepted session takes a unit of `limit connections` until it
 * closes (its Listener would take one); false, when over the limit, and the session is to be closed.
 */
function sessionUnits(target: unknown): (session: WtSession) => boolean {
  return (session) => {
    let taken: SocketUnit | Promise<SocketUnit>;
    try {
      taken = takeSocketUnit(undefined, target, 'connection');
    } catch {
      return false;
    }
    // A quota store answers later: the session is held until it does, and closed if it refuses.
    const holding = (u: SocketUnit): void => void session.closed.then(u.release, u.release);
    if (taken instanceof Promise) taken.then(holding, () => session.close({ closeCode: 0, reason: 'over the connection limit' }));
    else holding(taken);
    return true;
  };
}

class H3Listener implements DriverListener {
  readonly local: SocketAddress;
  readonly #stop: () => void;
  readonly #queue = new AcceptQueue();

  constructor(
    local: SocketAddress, reader: ReadableStreamDefaultReader<WtSession & { readonly peerAddress?: string }>, stop: () => void, mode: H3Mode,
    closeTimeout: number, path: string, meters: { meter: ByteMeter | undefined; readMeter: ReadMeter | undefined }, admit: ((session: WtSession) => boolean) | undefined,
  ) {
    this.local = local;
    this.#stop = stop;
    void (async () => {
      for (;;) {
        const { value: session, done } = await reader.read();
        if (done) return;
        session.ready.catch(noop);
        session.closed.catch(noop);
        if (this.#queue.closed || (admit !== undefined && !admit(session))) {
          session.close({ closeCode: 0, reason: '' });
          continue;
        }
        const remote = parsePeer(session.peerAddress);
        const info = Object.freeze({ protocol: 'webtransport', httpVersion: '3', path });
        // What each session sends and reads is charged to the tenant's byte budgets (unverified: the native module is optional).
        if (mode === 'datagrams') this.#accept(new DatagramChannel(session, { local, remote, info, ...meters }));
        else new SessionGroup(session, sessionTransport(session, local, remote, info), { closeTimeout, accept: (ch) => this.#accept(ch), ...meters });
      }
    })().catch(noop);
  }

  #accept(channel: TransportChannel): void {
    this.#queue.offer(channel);
  }

  start(handler: DriverListenerHandler): void {
    this.#queue.start(handler);
  }

  async close(): Promise<void> {
    if (this.#queue.closed) return;
    this.#queue.close();
    this.#stop();
  }
}
