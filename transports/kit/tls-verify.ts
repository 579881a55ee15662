/**
 * Post-handshake checks of every TLS client handshake (./tls-client.ts), run
 * after 'secureConnect' and before the channel is ready (see the table in
 * ./tls-options.ts; the quic driver applies the same pins): the pin set,
 * then the caller's trust-verification callback (RFC 9622 §6.3.8), which may be
 * async and is told whether OpenSSL's chain and name checks passed
 * (`chainVerified`, `chainError`). Every failure is a TapsError
 * ERR_TAPS_SECURITY_FAILED, with the underlying error as `cause`.
 *
 * On a resumed session the record from the original full handshake is
 * checked again (pins, validity, the callback), see {@link peerRecord}.
 *
 * @example
 * await verifyPeer(socket, plan, signal); // throws ERR_TAPS_SECURITY_FAILED or the abort
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TapsError } from '../../src/errors.js';
import type { TrustContext } from '../../src/security.js';
import { whenAborted } from './abort.js';
import type { ClientTlsPlan } from './tls-options.js';

/** The parts of the peer's leaf certificate that pinning and validity checks need. */
export interface PeerLeaf {
  readonly raw: Buffer;
  /** SHA-256 of `raw`, lowercase hex. */
  readonly fingerprint256: string;
  readonly validFrom: number;
  readonly validTo: number;
}

/** The peer's leaf certificate, or undefined when it sent none. */
export function peerLeaf(socket: TLSSocket): PeerLeaf | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return undefined;
  return {
    raw: cert.raw,
    fingerprint256: createHash('sha256').update(cert.raw).digest('hex'),
    validFrom: Date.parse(cert.valid_from),
    validTo: Date.parse(cert.valid_to),
  };
}

/** What the client learnt about the server in a full handshake; kept with session tickets for resumption. */
export interface PeerRecord {
  readonly leaf: PeerLeaf | undefined;
  /** OpenSSL's chain result plus the name check. */
  readonly authorized: boolean;
  readonly authorizationError: string | undefined;
}

/**
 * The peer as this handshake showed it. A resumed session carries no
 * certificate on the client side (Node returns none), so the record kept
 * with the ticket, from the full handshake the session belongs to, stands in.
 */
export function peerRecord(socket: TLSSocket, resumed?: PeerRecord): PeerRecord {
  if (resumed && socket.isSessionReused()) return resumed;
  return { leaf: peerLeaf(socket), authorized: socket.authorized, authorizationError: socket.authorized ? undefined : String(socket.authorizationError) };
}

/** With pins: the leaf must be pinned and valid now. Returns the failure, if any. */
export function checkPins(leaf: PeerLeaf | undefined, pins: ReadonlySet<string>, now = Date.now()): TapsError | undefined {
  if (pins.size === 0) return undefined;
  if (!leaf) return new TapsError('ERR_TAPS_SECURITY_FAILED', 'the server sent no certificate to check against the pinned certificates');
  if (!pins.has(leaf.fingerprint256)) {
    return new TapsError('ERR_TAPS_SECURITY_FAILED', `the server certificate (SHA-256 ${leaf.fingerprint256}) matches no pinned certificate`);
  }
  if (!(now >= leaf.validFrom && now <= leaf.validTo)) {
    return new TapsError('ERR_TAPS_SECURITY_FAILED', `the pinned server certificate is not valid now (valid ${new Date(leaf.validFrom).toISOString()} to ${new Date(leaf.validTo).toISOString()})`);
  }
  return undefined;
}

function raceAbort<T>(work: () => T | Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stopListening = whenAborted(signal, () => reject(signal.reason));
    Promise.resolve().then(work).then(resolve, reject).finally(stopListening);
  });
}

/** Pins, then the callback. Rejects with ERR_TAPS_SECURITY_FAILED, or with the signal's reason on abort. */
export async function verifyPeer(socket: TLSSocket, plan: ClientTlsPlan, signal: AbortSignal, peer: PeerRecord = peerRecord(socket)): Promise<void> {
  if (!plan.authenticate) return;
  const leaf = peer.leaf;
  const pinFailure = checkPins(leaf, plan.pins);
  if (pinFailure) throw pinFailure;
  const verify = plan.verify;
  if (!verify) return;
  if (!leaf) throw new TapsError('ERR_TAPS_SECURITY_FAILED', 'the server sent no certificate for the verification callback');
  const ctx: TrustContext = {
    hostName: plan.hostName,
    certificate: { raw: leaf.raw, fingerprint256: leaf.fingerprint256 },
    alpn: socket.alpnProtocol || undefined,
    chainVerified: peer.authorized,
    ...(peer.authorized ? {} : { chainError: peer.authorizationError }),
  };
  let verdict: unknown;
  try {
    verdict = await raceAbort(() => verify(ctx), signal);
  } catch (err) {
    if (signal.aborted) throw err;
    throw new TapsError('ERR_TAPS_SECURITY_FAILED', `the verification callback failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  if (verdict !== true) {
    throw new TapsError('ERR_TAPS_SECURITY_FAILED', `the verification callback did not accept the server certificate (it returned ${String(verdict)})`);
  }
}
