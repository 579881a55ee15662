/**
 * Build `node:tls` options from SecurityParameters (RFC 9622 §6.3) and a checked
 * target: the plan of every TLS client handshake (./tls-client.ts; a driver
 * gives its own ALPN list), and the options of the TLS listeners (tls, wss,
 * webtransport-h2).
 *
 * Client side, how the peer is authenticated (security.mode 'required'):
 * | given            | OpenSSL chain + name check        | then                                   |
 * |------------------|-----------------------------------|----------------------------------------|
 * | nothing          | enforced (rejectUnauthorized)     | -                                      |
 * | pins             | not used (pins replace it)        | leaf SHA-256 in the set, validity now  |
 * | verify           | run, result passed to the callback| the callback decides (`true` accepts)  |
 * | pins and verify  | run, result passed to the callback| pin must match, then the callback      |
 * A pinned certificate may be self-signed (as WebTransport's
 * serverCertificateHashes); the pin is the identity, so no name check applies.
 * 'opportunistic' encrypts without authenticating (RFC 9622 §6.3); 'disabled' is
 * refused (the selector never gives a TLS stack to it).
 * - SNI = `target.hostName`, the name the tenant's policy decided with the
 *   address (a `security.serverName` override is that name, decided before the
 *   target was minted), omitted for IP literals (RFC 6066 §3); the identity is
 *   that name, or the target's IP without one. Nothing here reads
 *   `security.serverName`: a name the policy did not see never goes out.
 * - allowedProtocols → min/maxVersion; alpn → ALPNProtocols; ca, certificate,
 *   key, passphrase; ciphersuites → ciphers, groups → ecdhCurve,
 *   signatureAlgorithms → sigalgs; psk → pskCallback (RFC 9622 §6.3.7; the TLS 1.2
 *   PSK suites are enabled for it; a PSK handshake authenticates the server
 *   by the key, so no certificate or name check applies to it, while pins and
 *   a verify callback still need a certificate and then fail).
 * - Not supported on the client: identityChallenge (Node offers no hook for a
 *   client certificate asked for during the handshake: give `certificate`).
 *
 * Server side: certificate/key required (or identityChallenge, asked per SNI
 * name, or psk: the identity must match); client certificates are requested with the driver option
 * `requestClientCertificate: true` and verified against `ca`.
 *
 * @example
 * const plan = tlsClientOptions(attempt.security, attempt.target);
 * const socket = tls.connect({ socket: tcpSocket, ...plan.options });
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { TapsError } from '../../src/errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import type { SecurityParameters, TrustVerifier } from '../../src/security.js';

/** A client handshake worked out from SecurityParameters and the checked name: node:tls options plus what to verify after. */
export interface ClientTlsPlan {
  readonly options: tls.ConnectionOptions;
  /** Lowercase hex SHA-256 pins; empty: no pinning. */
  readonly pins: ReadonlySet<string>;
  /** The name the peer must prove (undefined when reached by IP only). */
  readonly hostName: string | undefined;
  /** The name or IP the certificate is checked against. */
  readonly identity: string;
  readonly verify: TrustVerifier | undefined;
  /** False in opportunistic mode: encrypted, peer not authenticated. */
  readonly authenticate: boolean;
}

function algorithms(s: SecurityParameters, hasCertificate: boolean): Partial<tls.SecureContextOptions> {
  const out: Partial<tls.SecureContextOptions> = {};
  if (s.ciphersuites) out.ciphers = s.ciphersuites.join(':');
  // TLS 1.2 PSK suites are off by default; a PSK-only server has no other suite to offer.
  else if (s.psk) out.ciphers = hasCertificate ? `${tls.DEFAULT_CIPHERS}:PSK` : 'PSK';
  if (s.groups) out.ecdhCurve = s.groups.join(':');
  if (s.signatureAlgorithms) out.sigalgs = s.signatureAlgorithms.join(':');
  if (s.passphrase !== undefined) out.passphrase = s.passphrase;
  return out;
}

/**
 * The server certificate's identity check: a name goes to `tls.checkServerIdentity`; an IP address is
 * matched against the IP Address entries of the subject alternative names by OpenSSL (X509_check_ip),
 * as RFC 9525 §6.2 asks, because Node 22.23's `checkServerIdentity` rejects `::1` against its own IP SAN.
 * The error looks like Node's (code ERR_TLS_CERT_ALTNAME_INVALID), so both paths fail alike.
 */
export function checkIdentity(identity: string, cert: tls.PeerCertificate): Error | undefined {
  if (isIP(identity) === 0) return tls.checkServerIdentity(identity, cert);
  if (cert?.raw !== undefined && new X509Certificate(cert.raw).checkIP(identity) !== undefined) return undefined;
  const reason = `IP: ${identity} is not in the cert's list: ${cert?.subjectaltname ?? '(no subject alternative names)'}`;
  return Object.assign(new Error(`Hostname/IP does not match certificate's altnames: ${reason}`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID', reason, host: identity, cert });
}

/** Client options for `tls.connect` over an already connected socket to `target`. `alpn` overrides security.alpn. */
export function tlsClientOptions(security: SecurityParameters, target: CheckedTarget, alpn?: readonly string[]): ClientTlsPlan {
  if (security.mode === 'disabled') {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'security is disabled; a TLS stack cannot be used');
  }
  const authenticate = security.mode === 'required';
  const named = target.hostName;
  const hostName = named !== undefined && named.length > 0 && isIP(named) === 0 ? named : undefined;
  const identity = hostName ?? target.address;
  const pins = new Set(authenticate ? security.pinnedServerCertificates : []);
  const verify = authenticate ? security.verify : undefined;
  // OpenSSL's verdict is final only when nothing else decides.
  const enforceChain = authenticate && pins.size === 0 && verify === undefined;
  const psk = security.psk;
  const options: tls.ConnectionOptions & { allowHalfOpen?: boolean } = {
    ...security.tlsVersions(),
    ...algorithms(security, true),
    // Honoured by tls.connect (passed on to the TLSSocket) though missing from @types/node.
    allowHalfOpen: true,
    rejectUnauthorized: enforceChain,
    // Always run when authenticating, so `socket.authorized` tells the callback whether chain and name checked out.
    // A PSK handshake shows no certificate: the key authenticated the server.
    checkServerIdentity: authenticate
      ? (_host, cert) => (psk && !cert?.raw ? undefined : checkIdentity(identity, cert))
      : () => undefined,
  };
  if (psk) options.pskCallback = () => ({ psk: psk.key, identity: psk.identity });
  if (hostName !== undefined) options.servername = hostName;
  const protocols = alpn ?? security.alpn;
  if (protocols && protocols.length > 0) options.ALPNProtocols = [...protocols];
  if (security.ca) options.ca = [...security.ca];
  if (security.certificate !== undefined && security.key !== undefined) {
    options.cert = security.certificate;
    options.key = security.key;
  }
  return { options, pins, hostName, identity, verify, authenticate };
}

/** Server options for `tls.createServer`. */
export function tlsServerOptions(security: SecurityParameters, driverOptions: Readonly<Record<string, unknown>>, alpn?: readonly string[]): tls.TlsOptions {
  if (security.mode === 'disabled') {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'security is disabled; a TLS listener cannot be used');
  }
  const challenge = security.identityChallenge;
  const hasCertificate = security.certificate !== undefined && security.key !== undefined;
  const psk = security.psk;
  if (!hasCertificate && challenge === undefined && psk === undefined) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'a TLS listener needs security.certificate and security.key (or identityChallenge, or psk)');
  }
  const requestCert = driverOptions['requestClientCertificate'] === true;
  const options: tls.TlsOptions & { allowHalfOpen?: boolean } = {
    ...security.tlsVersions(),
    ...algorithms(security, hasCertificate || challenge !== undefined),
    allowHalfOpen: true,
    requestCert,
    rejectUnauthorized: requestCert,
  };
  if (security.certificate !== undefined && security.key !== undefined) {
    options.cert = security.certificate;
    options.key = security.key;
  }
  const protocols = alpn ?? security.alpn;
  if (protocols && protocols.length > 0) options.ALPNProtocols = [...protocols];
  if (security.ca) options.ca = [...security.ca];
  if (psk) {
    options.pskCallback = (_socket, identity) => (identity === psk.identity ? psk.key : null);
  }
  if (challenge) {
    const base = algorithms(security, true);
    options.SNICallback = (servername, cb) => {
      Promise.resolve()
        .then(() => challenge({ hostName: servername || undefined }))
        .then(
          (id) => cb(null, id ? tls.createSecureContext({ ...base, cert: id.certificate, key: id.key, ...(security.ca ? { ca: [...security.ca] } : {}) }) : undefined),
          (err: unknown) => cb(err instanceof Error ? err : new Error(String(err)), undefined),
        );
    };
  }
  const handshakeTimeout = driverOptions['handshakeTimeout'];
  if (handshakeTimeout !== undefined) {
    if (typeof handshakeTimeout !== 'number' || !(handshakeTimeout > 0)) {
      throw new RangeError(`options.handshakeTimeout must be a positive number of ms, got ${String(handshakeTimeout)}`);
    }
    options.handshakeTimeout = handshakeTimeout;
  }
  return options;
}
