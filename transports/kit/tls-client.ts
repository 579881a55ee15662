/**
 * The one TLS client handshake every driver uses (tls, https, wss,
 * webtransport-h2): `tls.connect` over a connected TCP socket with the plan
 * worked out from SecurityParameters and the checked name (./tls-options.ts:
 * SNI and certificate identity come from there and nowhere else), then the
 * pin and callback checks (./tls-verify.ts). It offers a stored session
 * ticket of the same tenant and key and keeps the tickets the server sends,
 * only once the peer passed (./tls-sessions.ts; `security.sessionCacheLimit`
 * 0 turns this off). A resumed handshake checks the peer record of the full
 * handshake the ticket came from. Ready only after all of these; a failure or
 * an abort destroys both sockets and rejects with a TapsError. A handshake
 * that has not finished after `timeoutMs` (default
 * {@link DEFAULT_CLIENT_HANDSHAKE_TIMEOUT}) fails with ERR_TAPS_TIMEOUT: a
 * peer that accepts TCP and never answers the ClientHello (a plaintext
 * server) would otherwise hold the attempt until the caller gives up, and
 * with opportunistic security the unencrypted stacks, tried only once every
 * encrypted one failed (RFC 9621 §3.3), would never start. The target
 * must be one a guard minted (../kit/dial.ts `targetAddress`). Also the facts
 * about a TLS socket that channels report in `info`.
 *
 * @example
 * const plan = tlsClientOptions(attempt.security, attempt.target, ['h2']);
 * const { socket, peer } = await clientHandshake(raw, plan, attempt.target, attempt.security, attempt.signal, 'https handshake');
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { checkBeforeHandshake, tlsAccount } from './tls-account.js';
import { abortedError, whenAborted } from './abort.js';
import { TapsError } from '../../src/errors.js';
import { establishmentError } from './errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { targetAddress } from './dial.js';
import type { SecurityParameters } from '../../src/security.js';
import type { ClientTlsPlan } from './tls-options.js';
import { sessionKey, sessionPolicy, storeSession, takeSession, type StoredSession } from './tls-sessions.js';
import { peerLeaf, peerRecord, verifyPeer, type PeerLeaf, type PeerRecord } from './tls-verify.js';

/** How long a client TLS handshake may take, in ms, unless the driver option `handshakeTimeout` says otherwise. */
export const DEFAULT_CLIENT_HANDSHAKE_TIMEOUT = 10_000;

/** Read the driver option `handshakeTimeout` (ms > 0; default {@link DEFAULT_CLIENT_HANDSHAKE_TIMEOUT}). Throws a RangeError naming it. */
export function handshakeTimeoutOption(options: Readonly<Record<string, unknown>>): number {
  const v = options['handshakeTimeout'];
  if (v === undefined) return DEFAULT_CLIENT_HANDSHAKE_TIMEOUT;
  if (typeof v !== 'number' || !(v > 0)) throw new RangeError(`options.handshakeTimeout must be a positive number of ms, got ${String(v)}`);
  return v;
}

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

/** A finished client handshake: the TLS socket and the peer as it was checked. */
export interface ClientHandshake {
  readonly socket: tls.TLSSocket;
  /** The peer's certificate and chain result; on a resumed session, those of the full handshake it resumes. */
  readonly peer: PeerRecord;
}

/**
 * Run the client handshake over `raw` (connected to `target`), resuming a stored session of this tenant
 * and key when there is one. `label` names the handshake in errors.
 */
export function clientHandshake(
  raw: Socket,
  plan: ClientTlsPlan,
  target: CheckedTarget,
  security: SecurityParameters,
  signal: AbortSignal,
  label: string,
  timeoutMs = DEFAULT_CLIENT_HANDSHAKE_TIMEOUT,
): Promise<ClientHandshake> {
  // The name presented (SNI, certificate identity) is the checked target's: a lookalike target is refused here too.
  try {
    targetAddress(target, label, 'tcp');
    // The ClientHello cannot be charged before it is written: none goes out once the sent budget is spent.
    checkBeforeHandshake(target);
  } catch (err) {
    raw.destroy();
    return Promise.reject(err);
  }
  const { limit, lifetimeMs } = sessionPolicy(security);
  if (limit <= 0) return handshake(raw, plan, target, signal, label, timeoutMs, NO_RESUMPTION);
  const tenant = target.tenant;
  const key = sessionKey(target, plan, security);
  return handshake(raw, plan, target, signal, label, timeoutMs, {
    offer: takeSession(tenant, key),
    keep: (stored) => storeSession(tenant, key, stored, limit, lifetimeMs),
  });
}

/** Session resumption for one connect: the ticket to offer, and where new tickets go. */
interface Resumption {
  readonly offer: StoredSession | undefined;
  readonly keep: ((stored: StoredSession) => void) | undefined;
}

const NO_RESUMPTION: Resumption = Object.freeze({ offer: undefined, keep: undefined });

/** Run the TLS handshake over a connected TCP socket, then the pin and callback checks. */
function handshake(
  raw: Socket, plan: ClientTlsPlan, target: CheckedTarget, signal: AbortSignal, label: string, timeoutMs: number, resumption: Resumption,
): Promise<ClientHandshake> {
  return new Promise((resolve, reject) => {
    let state: 'handshaking' | 'ready' | 'failed' = 'handshaking';
    let peer: PeerRecord | undefined;
    const socket = tls.connect({ socket: raw, ...plan.options, ...(resumption.offer ? { session: resumption.offer.session } : {}) });
    // The handshake and every record header count against the tenant's byte budgets (./tls-account.ts).
    const account = tlsAccount(socket, raw, target);
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
    const timer = setTimeout(() => {
      const hint = raw.bytesRead === 0 ? ': the peer sent nothing (it may not speak TLS)' : '';
      fail(new TapsError('ERR_TAPS_TIMEOUT', `${label} did not finish within ${timeoutMs} ms${hint}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
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
      try {
        account.settle();
        // The handshake is charged when it is over: one that spent the sent budget leaves nothing to send.
        checkBeforeHandshake(target);
      } catch (err) {
        return fail(err);
      }
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
