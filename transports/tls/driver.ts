/**
 * The `tls` driver: TLS 1.2/1.3 over TCP (M §5.1 with TLS; RFC 8446), a
 * reliable, ordered, encrypted and authenticated byte stream. Selected for
 * bare host:port endpoints when security is required (the default) or for a
 * `tls://` URL. Connect: a TCP handshake to the checked IP (../tcp/connect.ts),
 * then the TLS handshake with SNI/identity from the checked name
 * (./options.ts), then pins and the verification callback (./verify.ts);
 * ready only after all of these. A server that accepts TCP but never speaks
 * TLS stalls the attempt until its signal aborts (the racer's timeout).
 *
 * Driver options (`driverOptions.tls`): `closeTimeout` (ms), `keepAlive`
 * (seconds) as for tcp; listeners: `requestClientCertificate`,
 * `handshakeTimeout` (ms, server side), `backlog`, `ipv6Only`.
 * Channel `info`: `authenticated` (the peer proved its identity; false in
 * opportunistic mode, or on a listener without a verified client
 * certificate), `alpn`, `tlsVersion`, `cipher`, `serverName`,
 * `peerCertificateFingerprint256`, `sessionReused`, and on accepted channels
 * `clientCertificateFingerprint256` when the client sent one.
 *
 * @example
 * import { tlsDriver } from 'taps-node/tls';
 * const channel = await tlsDriver.connect(attempt); // attempt.security: new SecurityParameters({ ca, alpn: ["x"] })
 * channel.info.alpn; // 'x'
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { NO_CAPABILITIES, type Capabilities, type ConnectAttempt, type Driver, type DriverListener, type ListenAttempt } from '../../src/driver.js';
import { SocketChannel, dialledAddress } from '../tcp/channel.js';
import { connectTcp } from '../tcp/connect.js';
import { applyKeepAlive, closeTimeoutOption, TCP_CAPABILITIES } from '../tcp/driver.js';
import { abortedError, establishmentError, throwIfAborted, whenAborted } from '../tcp/errors.js';
import { bindServer } from '../tcp/listener.js';
import { tlsClientOptions, tlsServerOptions, type ClientTlsPlan } from './options.js';
import { sessionKey, sessionPolicy, storeSession, takeSession, type StoredSession } from './sessions.js';
import { peerLeaf, peerRecord, verifyPeer, type PeerLeaf, type PeerRecord } from './verify.js';

export const TLS_CAPABILITIES: Capabilities = Object.freeze({ ...NO_CAPABILITIES, ...TCP_CAPABILITIES, encrypted: true });

/** Facts about a TLS socket for `channel.info`. */
export function tlsInfo(socket: tls.TLSSocket, serverName?: string, authenticated?: boolean, leaf: PeerLeaf | undefined = peerLeaf(socket)): Record<string, unknown> {
  return {
    authenticated,
    alpn: socket.alpnProtocol || undefined,
    tlsVersion: socket.getProtocol() ?? undefined,
    cipher: socket.getCipher()?.name,
    serverName,
    peerCertificateFingerprint256: leaf?.fingerprint256,
    sessionReused: socket.isSessionReused(),
  };
}

/** Session resumption for one connect: the ticket to offer, and where new tickets go. */
interface Resumption {
  readonly offer: StoredSession | undefined;
  readonly keep: ((stored: StoredSession) => void) | undefined;
}

/** Run the TLS handshake over a connected TCP socket, then the pin and callback checks. */
function handshake(
  raw: Socket,
  plan: ClientTlsPlan,
  signal: AbortSignal,
  label: string,
  resumption: Resumption,
): Promise<{ socket: tls.TLSSocket; peer: PeerRecord }> {
  return new Promise((resolve, reject) => {
    let state: 'handshaking' | 'ready' | 'failed' = 'handshaking';
    let peer: PeerRecord | undefined;
    const socket = tls.connect({ socket: raw, ...plan.options, ...(resumption.offer ? { session: resumption.offer.session } : {}) });
    // TLS 1.3 tickets may come with the server's Finished, before the checks end: hold them until the peer passed.
    const tickets: Buffer[] = [];
    const keep = resumption.keep;
    if (keep) {
      socket.on('session', (ticket: Buffer) => {
        if (state === 'ready' && peer) keep({ session: ticket, peer });
        else if (state === 'handshaking') tickets.push(ticket);
      });
    }
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('secureConnect', onSecure);
    };
    const fail = (err: unknown): void => {
      if (state !== 'handshaking') return;
      state = 'failed';
      cleanup();
      socket.on('error', () => {});
      raw.on('error', () => {});
      socket.destroy();
      raw.destroy();
      reject(signal.aborted ? abortedError(signal, label) : establishmentError(err, label, true));
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(Object.assign(new Error('the connection closed during the TLS handshake'), { code: 'ECONNRESET' }));
    const onAbort = (): void => fail(signal.reason);
    const onSecure = (): void => {
      const seen = peerRecord(socket, resumption.offer?.peer);
      verifyPeer(socket, plan, signal, seen).then(() => {
        if (state !== 'handshaking') return;
        state = 'ready';
        peer = seen;
        cleanup();
        if (keep) for (const t of tickets.splice(0)) keep({ session: t, peer: seen });
        resolve({ socket, peer: seen });
      }, fail);
    };
    stopListening = whenAborted(signal, onAbort);
    socket.once('secureConnect', onSecure);
    socket.on('error', onError);
    socket.once('close', onClose);
  });
}

export const tlsDriver: Driver = Object.freeze({
  id: 'tls',
  stack: Object.freeze(['tls', 'tcp']),
  protocol: 'tls',
  ipProtocol: 'tcp',
  framing: 'stream',
  security: 'tls',
  capabilities: TLS_CAPABILITIES,
  schemes: Object.freeze(['tls']),
  available: () => ({ available: true }) as const,

  async connect(attempt: ConnectAttempt): Promise<SocketChannel> {
    throwIfAborted(attempt.signal, 'tls');
    const closeTimeout = closeTimeoutOption(attempt.options);
    const plan = tlsClientOptions(attempt.security, attempt.target);
    const raw = await connectTcp(attempt.target, attempt.local, attempt.signal, 'tls');
    const label = `tls handshake with ${plan.identity} at ${attempt.target.address}:${attempt.target.port}`;
    try {
      applyKeepAlive(raw, attempt.options);
    } catch (err) {
      raw.destroy();
      throw err;
    }
    const tenant = attempt.target.tenant;
    const key = sessionKey(attempt.target, plan, attempt.security);
    const { limit, lifetimeMs } = sessionPolicy(attempt.security);
    const { socket, peer } = await handshake(raw, plan, attempt.signal, label, {
      offer: limit > 0 ? takeSession(tenant, key) : undefined,
      keep: limit > 0 ? (stored) => storeSession(tenant, key, stored, limit, lifetimeMs) : undefined,
    });
    return new SocketChannel(socket, { raw, closeTimeout, remote: dialledAddress(attempt.target), info: tlsInfo(socket, plan.options.servername, plan.authenticate, peer.leaf) });
  },

  async listen(attempt: ListenAttempt): Promise<DriverListener> {
    throwIfAborted(attempt.signal, 'tls listen');
    const closeTimeout = closeTimeoutOption(attempt.options);
    const server = tls.createServer(tlsServerOptions(attempt.security, attempt.options));
    // A peer failing its handshake is its problem, not the listener's. Node leaves the socket open after some of
    // these (a handshake timeout): destroy it, or a peer that never says hello holds it forever (issue 7).
    server.on('tlsClientError', (_err: Error, socket: { destroy(): void }) => socket.destroy());
    return bindServer(server, attempt, 'secureConnection', (socket) => {
      const s = socket as tls.TLSSocket;
      const info = tlsInfo(s, (s as tls.TLSSocket & { servername?: string | false }).servername || undefined, s.authorized);
      const client = info['peerCertificateFingerprint256'];
      delete info['peerCertificateFingerprint256'];
      if (client !== undefined) info['clientCertificateFingerprint256'] = client;
      return new SocketChannel(s, { closeTimeout, info });
    }, 'tls');
  },
} satisfies Driver);
