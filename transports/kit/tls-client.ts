/**
 * The TLS client handshake over a connected TCP socket: `tls.connect` with
 * the plan worked out from SecurityParameters and the checked name
 * (./tls-options.ts), then the pin and callback checks (./tls-verify.ts),
 * offering a stored session ticket and keeping new ones only once the peer
 * passed (./tls-sessions.ts). Ready only after all of these; a failure or an
 * abort destroys both sockets and rejects with a TapsError. Also the facts
 * about a TLS socket that channels report in `info`.
 *
 * @example
 * const { socket, peer } = await handshake(raw, plan, signal, 'tls handshake with example.com', { offer: undefined, keep: undefined });
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { abortedError, whenAborted } from './abort.js';
import { establishmentError } from './errors.js';
import type { ClientTlsPlan } from './tls-options.js';
import type { StoredSession } from './tls-sessions.js';
import { peerLeaf, peerRecord, verifyPeer, type PeerLeaf, type PeerRecord } from './tls-verify.js';

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
export interface Resumption {
  readonly offer: StoredSession | undefined;
  readonly keep: ((stored: StoredSession) => void) | undefined;
}

/** Run the TLS handshake over a connected TCP socket, then the pin and callback checks. */
export function handshake(
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
