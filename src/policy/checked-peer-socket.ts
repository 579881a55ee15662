/**
 * The chokepoint for peer sockets (rendezvous): every datagram a peer socket
 * sends, and the peer it is finally connected to, must be admitted by the
 * scope's rule (admission.ts `admit`): a target this very scope's guard
 * minted for a `connect` of the socket's protocol, under the current policy
 * revision. A forged, foreign or differently-used target is refused before
 * the driver sees it, exactly like a connect target. The check is per
 * datagram and costs a map lookup and a few comparisons; a target minted
 * under an older revision is decided again first.
 *
 * @example
 * const socket = new CheckedPeerSocket(await driver.openPeerSocket(attempt), (t, what) => admit(scope, t, 'connect', 'udp', what));
 * socket.sendTo(bytes, target, done); // target: guard.authorize({ use: 'connect', protocol: 'udp', … })
 */
import type { PeerSocket, PeerSocketHandler, SocketAddress, TransportChannel } from '../driver.js';
import { PolicyDeniedError } from '../errors.js';
import type { CheckedTarget } from './contract.js';
import type { PolicyDecision } from './types.js';

type Denial = PolicyDecision & { allow: false };
/**
 * The scope's admission of one target: the target to use (itself, or minted again under the current
 * revision) admits, a denial refuses, a promise decides again first.
 */
export type Admit = (target: unknown, what: string) => CheckedTarget | Denial | Promise<CheckedTarget | Denial>;

const denied = (a: CheckedTarget | Denial): a is Denial => (a as { allow?: unknown }).allow === false;

export class CheckedPeerSocket implements PeerSocket {
  readonly #inner: PeerSocket;
  readonly #admit: Admit;

  constructor(inner: PeerSocket, admit: Admit) {
    this.#inner = inner;
    this.#admit = admit;
  }

  get local(): SocketAddress {
    return this.#inner.local;
  }

  start(handler: PeerSocketHandler): void {
    this.#inner.start(handler);
  }

  sendTo(data: Uint8Array, target: CheckedTarget, done: (err?: Error) => void): void {
    const verdict = this.#admit(target, 'send to');
    if (!(verdict instanceof Promise)) {
      if (!denied(verdict)) return this.#inner.sendTo(data, verdict, done);
      const err = new PolicyDeniedError(verdict);
      queueMicrotask(() => done(err));
      return;
    }
    verdict.then(
      (a) => (denied(a) ? done(new PolicyDeniedError(a)) : this.#inner.sendTo(data, a, done)),
      (err: Error) => done(err),
    );
  }

  connect(target: CheckedTarget, intercept: (data: Uint8Array) => boolean): Promise<TransportChannel> {
    const verdict = this.#admit(target, 'connect');
    if (!(verdict instanceof Promise)) return denied(verdict) ? Promise.reject(new PolicyDeniedError(verdict)) : this.#inner.connect(verdict, intercept);
    return verdict.then((a) => (denied(a) ? Promise.reject(new PolicyDeniedError(a)) : this.#inner.connect(a, intercept)));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
// Frozen: a guest holding a peer socket cannot replace sendTo for every tenant's sockets.
Object.freeze(CheckedPeerSocket.prototype);
