/**
 * The chokepoint for peer sockets (rendezvous): every datagram a peer socket
 * sends, and the peer it is finally connected to, must be a target this
 * tenant's guard minted for a `connect` of the socket's protocol. A forged,
 * foreign or differently-used target is refused before the driver sees it,
 * exactly like a connect target (CheckedNetwork).
 *
 * @example
 * const socket = new CheckedPeerSocket(await driver.openPeerSocket(attempt), 'acme', 'udp', isCheckedTarget);
 * socket.sendTo(bytes, target, done); // target: guard.authorize({ use: 'connect', protocol: 'udp', … })
 */
import type { PeerSocket, PeerSocketHandler, SocketAddress, TransportChannel } from '../driver.js';
import { PolicyDeniedError } from '../errors.js';
import type { CheckedTarget } from './chokepoint.js';
import type { PolicyProtocol } from './types.js';

const unverified = (what: string): PolicyDeniedError =>
  new PolicyDeniedError({ allow: false, code: 'unverified', reason: `${what} was not checked by this tenant's policy`, rule: null });

export class CheckedPeerSocket implements PeerSocket {
  readonly #inner: PeerSocket;
  readonly #tenant: string;
  readonly #protocol: PolicyProtocol;
  readonly #minted: (t: unknown) => t is CheckedTarget;

  constructor(inner: PeerSocket, tenant: string, protocol: PolicyProtocol, minted: (t: unknown) => t is CheckedTarget) {
    this.#inner = inner;
    this.#tenant = tenant;
    this.#protocol = protocol;
    this.#minted = minted;
  }

  get local(): SocketAddress {
    return this.#inner.local;
  }

  start(handler: PeerSocketHandler): void {
    this.#inner.start(handler);
  }

  #allowed(t: unknown): t is CheckedTarget {
    return this.#minted(t) && t.tenant === this.#tenant && t.protocol === this.#protocol && t.use === 'connect';
  }

  sendTo(data: Uint8Array, target: CheckedTarget, done: (err?: Error) => void): void {
    if (!this.#allowed(target)) {
      const err = unverified('the send-to target');
      queueMicrotask(() => done(err));
      return;
    }
    this.#inner.sendTo(data, target, done);
  }

  connect(target: CheckedTarget, intercept: (data: Uint8Array) => boolean): Promise<TransportChannel> {
    if (!this.#allowed(target)) return Promise.reject(unverified('the peer to connect to'));
    return this.#inner.connect(target, intercept);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
