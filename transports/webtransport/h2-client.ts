/**
 * Client establishment of WebTransport over HTTP/2 (draft-ietf-webtrans-http2):
 *
 * 1. our own TCP connection to the checked IP and port, and TLS with ALPN
 *    `h2`, SNI and the certificate identity from the checked name, CA, pins
 *    or the verify callback (the kit's checked dial and TLS options,
 *    ../kit/open-socket.ts), so the package never dials or resolves anything;
 * 2. with pins (WebTransport's `serverCertificateHashes`): the certificate
 *    must also be valid for at most 14 days (W3C WebTransport, "custom
 *    certificate requirements"), else ERR_TAPS_SECURITY_FAILED;
 * 3. HTTP/2 over that socket; the server's SETTINGS must enable extended
 *    CONNECT (RFC 8441 §3); then `CONNECT :protocol=webtransport` to the path,
 *    answered 2xx (else ERR_TAPS_ESTABLISHMENT_FAILED with `httpStatus`);
 * 4. the first bidirectional stream of the session is the channel returned.
 *
 * The TLS under it counts on the wire (../kit/tls-account.ts, whole-wire,
 * followed on the HTTP/2 session's events by ../kit/h2-account.ts): every
 * byte its TCP socket wrote beyond what was charged first (the CONNECT head,
 * stream writes), records, HTTP/2 frames and capsules included, and every
 * byte it read, charged there once (its channels say `receiveMetered`).
 *
 * Both sides advertise the windows they really grant (engine.ts), which is
 * what avoids the package's 16 KiB session stall. An abort at any step
 * destroys the HTTP/2 session and the sockets and rejects with ERR_TAPS_ABORTED.
 *
 * @example
 * const channel = await connectH2(attempt); // attempt.target: a CheckedTarget with hostName for SNI
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectAttempt, TransportChannel } from '../../src/driver.js';
import { TapsError, isTapsError } from '../../src/errors.js';
import type { SecurityParameters } from '../../src/security.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { establishmentError } from '../kit/errors.js';
import { authority, openSocket, tlsInfo } from '../kit/open-socket.js';
import { headSize } from '../kit/request-path.js';
import { setKeepAliveTimeout, socketAddresses } from '../kit/socket-channel.js';
import { tlsClientOptions } from '../kit/tls-options.js';
import type { PeerLeaf } from '../kit/tls-verify.js';
import { webTransportConfig, type WebTransportConfig } from './config.js';
import { WT_SETTINGS, loadHttp2Engine, wtSettings, type Http2Engine, type WtSession } from './engine.js';
import { handshakeRefused } from './errors.js';
import { SessionGroup, type SessionTransport } from './group.js';
import { abortGrace, closeHttp2 } from './h2-close.js';
import { meterFor } from '../kit/meter.js';
import { followHttp2 } from '../kit/h2-account.js';
import { wholeWire, type WireAccount } from '../kit/tls-account.js';

const WHAT = 'webtransport-h2';
/** W3C WebTransport: a certificate pinned by hash may be valid for two weeks at most. */
export const MAX_PINNED_VALIDITY_MS = 14 * 24 * 60 * 60 * 1000;

function noop(): void {}

/** With pins, the rules of `serverCertificateHashes` on top of the pin match the tls driver checked. */
export function checkPinnedValidity(leaf: PeerLeaf | undefined, security: SecurityParameters): void {
  if (security.mode !== 'required' || security.pinnedServerCertificates.length === 0) return;
  if (!leaf) throw new TapsError('ERR_TAPS_SECURITY_FAILED', 'the server sent no certificate to check against the pinned hashes');
  const span = leaf.validTo - leaf.validFrom;
  if (!(span <= MAX_PINNED_VALIDITY_MS)) {
    throw new TapsError('ERR_TAPS_SECURITY_FAILED', `the pinned server certificate is valid for ${(span / 86_400_000).toFixed(1)} days; WebTransport accepts certificates pinned by hash only when valid for at most 14 days`);
  }
}

export async function connectH2(attempt: ConnectAttempt): Promise<TransportChannel> {
  const { signal, target } = attempt;
  throwIfAborted(signal, WHAT);
  const cfg = webTransportConfig(attempt.options, attempt.remote?.path ?? '/');
  // Bad security parameters fail here, before any I/O (the plan itself is made again by openSocket).
  tlsClientOptions(attempt.security, target, ['h2']);
  // The extended CONNECT (its path is the caller's) counts against the tenant's byte budget.
  const connectHead = headSize('CONNECT', cfg.path ?? '/', authority(target, 443), {});
  meterFor(attempt)?.sent(connectHead);
  const engine = await loadHttp2Engine();
  throwIfAborted(signal, WHAT);
  const { socket, raw, peer } = await openSocket({ target, signal, local: attempt.local, tls: { security: attempt.security, alpn: ['h2'] }, what: WHAT, unit: attempt.unit });
  const tlsSocket = socket as TLSSocket;
  // HTTP/2 has no use for TCP half-close: a peer's FIN ends the connection (else Node's session never notices it).
  tlsSocket.allowHalfOpen = false;
  raw.allowHalfOpen = false;
  try {
    if (tlsSocket.alpnProtocol !== 'h2') {
      throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${WHAT}: the server at ${target.address}:${target.port} does not speak HTTP/2 (ALPN ${JSON.stringify(tlsSocket.alpnProtocol || 'none')})`);
    }
    // The leaf the handshake checked (a resumed session shows none itself).
    checkPinnedValidity(peer?.leaf, attempt.security);
    throwIfAborted(signal, WHAT);
  } catch (err) {
    socket.destroy();
    raw.destroy();
    throw err;
  }
  const account = wholeWire(tlsSocket);
  account?.prepay(connectHead);
  return handshake(engine, tlsSocket, raw, attempt, cfg, account);
}

function handshake(
  engine: Http2Engine, socket: TLSSocket, raw: Socket, attempt: ConnectAttempt, cfg: WebTransportConfig, account: WireAccount | undefined,
): Promise<TransportChannel> {
  const { signal, target } = attempt;
  const auth = authority(target, 443);
  const path = cfg.path ?? '/';
  const label = `${WHAT} session at https://${auth}${path}`;
  return new Promise<TransportChannel>((resolve, reject) => {
    let settled = false;
    let stream: ClientHttp2Stream | undefined;
    const h2: ClientHttp2Session = http2.connect(`https://${auth}`, {
      createConnection: () => socket,
      settings: wtSettings(cfg.windows),
      remoteCustomSettings: [...WT_SETTINGS],
    });
    let group: SessionGroup | undefined;
    // A received budget exceeded: during the handshake it fails it (the session's error), later the channels.
    if (account !== undefined) followHttp2(h2, account, (err) => group?.fail(err));
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      h2.off('remoteSettings', onSettings);
      h2.off('error', onError);
      h2.off('close', onClose);
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      h2.on('error', noop);
      stream?.on('error', noop);
      h2.destroy();
      socket.destroy();
      raw.destroy();
      reject(signal.aborted ? abortedError(signal, label) : isTapsError(err) ? err : establishmentError(err, label));
    };
    const onAbort = (): void => fail(signal.reason);
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${label}: the connection closed during the WebTransport handshake`));
    const onSettings = (settings: http2.Settings): void => {
      h2.off('remoteSettings', onSettings);
      if (!settings.enableConnectProtocol) {
        fail(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${label}: the server does not enable extended CONNECT (RFC 8441), so it offers no WebTransport over HTTP/2`));
        return;
      }
      let session: WtSession;
      let connect: ClientHttp2Stream;
      try {
        connect = stream = h2.request({ ':method': 'CONNECT', ':protocol': 'webtransport', ':scheme': 'https', ':path': path, ':authority': auth });
        connect.once('response', (headers) => {
          const status = Number(headers[':status']);
          if (!(status >= 200 && status < 300)) fail(handshakeRefused(status, path));
        });
        session = engine.session({ stream: connect, isClient: true, windows: cfg.windows, remote: settings.customSettings });
      } catch (err) {
        fail(err);
        return;
      }
      session.ready
        .then(() => (settled ? undefined : session.createBidirectionalStream()))
        .then(
          (first) => {
            if (settled || first === undefined) {
              first?.writable.abort().catch(noop);
              return;
            }
            let channel: TransportChannel;
            try {
              const meter = account === undefined ? meterFor(attempt) : account.counting(meterFor(attempt));
              const transport = clientTransport(h2, connect, socket, raw, cfg, path);
              group = new SessionGroup(session, transport, { closeTimeout: cfg.closeTimeout, meter, receiveMetered: account !== undefined });
              channel = group.add(first);
            } catch (err) {
              fail(err);
              return;
            }
            settled = true;
            cleanup();
            h2.on('error', noop);
            raw.on('error', noop);
            resolve(channel);
          },
          (err: unknown) => fail(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${label}: ${(err as Error)?.message ?? String(err)}`, { cause: err })),
        );
    };
    stopListening = whenAborted(signal, onAbort);
    h2.on('remoteSettings', onSettings);
    h2.on('error', onError);
    h2.once('close', onClose);
  });
}

/** The HTTP/2 connection under a client session: closed when the session ends. */
function clientTransport(h2: ClientHttp2Session, stream: ClientHttp2Stream, socket: TLSSocket, raw: Socket, cfg: WebTransportConfig, path: string): SessionTransport {
  const { local, remote } = socketAddresses(raw);
  return {
    local,
    remote,
    info: Object.freeze({ protocol: 'webtransport', httpVersion: '2', path, ...tlsInfo(socket) }),
    teardown: (abandoned) => closeHttp2(h2, stream, abandoned ? abortGrace(cfg.closeTimeout) : cfg.closeTimeout, [socket, raw]),
    setOption: (name, value) => {
      if (name !== 'keepAlive' && name !== 'keepAliveTimeout') return false;
      setKeepAliveTimeout(raw, name, value);
      return true;
    },
  };
}
