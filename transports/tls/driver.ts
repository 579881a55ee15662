/**
 * The `tls` driver: TLS 1.2/1.3 over TCP (RFC 9623 §5.1 with TLS; RFC 8446), a
 * reliable, ordered, encrypted and authenticated byte stream. Selected for
 * bare host:port endpoints when security is required (the default) or for a
 * `tls://` URL. Connect: a TCP handshake to the checked IP (../kit/dial.ts),
 * then the TLS handshake with SNI/identity from the checked name
 * (../kit/tls-options.ts), then pins and the verification callback
 * (../kit/tls-verify.ts), with session resumption (../kit/tls-client.ts);
 * ready only after all of these. A server that accepts TCP but never speaks
 * TLS fails the attempt with ERR_TAPS_TIMEOUT after `handshakeTimeout`
 * (default 10 s), so opportunistic security falls back to plain TCP.
 *
 * Driver options (`driverOptions.tls`): `closeTimeout` (ms), `keepAlive`
 * (seconds) as for tcp; `handshakeTimeout` (ms a handshake may take, client
 * and listener); listeners: `requestClientCertificate`, `backlog`, `ipv6Only`.
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
import { TapsError } from '../../src/errors.js';
import { throwIfAborted } from '../kit/abort.js';
import { connectTcp } from '../kit/dial.js';
import { lazy } from '../kit/lazy.js';
import { SocketChannel, dialledAddress } from '../kit/socket-channel.js';
import { TCP_CAPABILITIES, applyKeepAlive, closeTimeoutOption } from '../kit/tcp-options.js';
import { clientHandshake, handshakeTimeoutOption, tlsInfo } from '../kit/tls-client.js';
import { countEveryRead, tlsAccount } from '../kit/tls-account.js';
import { wireMeterFor } from '../kit/account.js';
import { tlsClientOptions, tlsServerOptions, type ClientTlsPlan } from '../kit/tls-options.js';
import { meterFor } from '../kit/meter.js';

/** What the `tls` stack honours: TCP's capabilities, encrypted. */
export const TLS_CAPABILITIES: Capabilities = Object.freeze({ ...NO_CAPABILITIES, ...TCP_CAPABILITIES, encrypted: true });

// The listening code (../kit/socket-listener.ts) loads at the first listen(): a process that only connects,
// which is what the default set serves first, never compiles it.
const listening = lazy(() => import('../kit/socket-listener.js'));

/** The `tls` driver: TLS over TCP (RFC 8446), reliable, ordered and encrypted; connect and listen. */
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
    const handshakeTimeout = handshakeTimeoutOption(attempt.options);
    if (attempt.security.mode === 'disabled') throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'security is disabled; a TLS stack cannot be used');
    const raw = await connectTcp(attempt.target, attempt.local, attempt.signal, 'tls', undefined, attempt.unit);
    // The handshake's plan is worked out once TCP connected: a refused port never needs it.
    let plan: ClientTlsPlan;
    try {
      plan = tlsClientOptions(attempt.security, attempt.target);
      applyKeepAlive(raw, attempt.options);
    } catch (err) {
      raw.destroy();
      throw err;
    }
    const label = `tls handshake with ${plan.identity} at ${attempt.target.address}:${attempt.target.port}`;
    const { socket, peer } = await clientHandshake(raw, plan, attempt.target, attempt.security, attempt.signal, label, handshakeTimeout);
    // Every byte its TCP socket reads is charged there, once (the Connection counts none of it).
    const receiveMetered = countEveryRead(socket);
    return new SocketChannel(socket, { raw, closeTimeout, remote: dialledAddress(attempt.target), meter: meterFor(attempt), receiveMetered, info: tlsInfo(socket, plan.options.servername, plan.authenticate, peer.leaf) });
  },

  async listen(attempt: ListenAttempt): Promise<DriverListener> {
    throwIfAborted(attempt.signal, 'tls listen');
    const closeTimeout = closeTimeoutOption(attempt.options);
    const { bindServer } = await listening();
    const server = tls.createServer(tlsServerOptions(attempt.security, attempt.options));
    // A peer failing its handshake is its problem, not the listener's. Node leaves the socket open after some of
    // these (a handshake timeout): destroy it, or a peer that never says hello holds it forever.
    server.on('tlsClientError', (_err: Error, socket: { destroy(): void }) => socket.destroy());
    return bindServer(server, attempt, 'secureConnection', (socket) => {
      const s = socket as tls.TLSSocket;
      // The handshake it answered and every record count against the tenant's budgets, as a client's do.
      const raw = (s as tls.TLSSocket & { _parent?: Socket })._parent;
      // Every byte its TCP socket reads is charged there, once (the Connection counts none of it).
      const receiveMetered = raw !== undefined && wireMeterFor(undefined, attempt.target) !== undefined;
      if (raw !== undefined) {
        const account = tlsAccount(s, raw, attempt.target, false);
        account.settle();
        // Its session tickets reach the TCP handle just after the handshake.
        setImmediate(() => account.settleSent());
      }
      const info = tlsInfo(s, (s as tls.TLSSocket & { servername?: string | false }).servername || undefined, s.authorized);
      const client = info['peerCertificateFingerprint256'];
      delete info['peerCertificateFingerprint256'];
      if (client !== undefined) info['clientCertificateFingerprint256'] = client;
      return new SocketChannel(s, { closeTimeout, info, meter: meterFor(attempt), receiveMetered });
    }, 'tls');
  },
} satisfies Driver);
