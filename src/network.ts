/**
 * The `Network`: the seam between the library and the operating system,
 * after wasmtime's pluggable `Network` trait. The system network does raw
 * work (resolve with the system resolver, let a driver open its socket); a
 * tenant's scope wraps one and admits only what its guard checked, for the
 * method's own use. A host may supply its own (a virtual network, a proxy)
 * and override one method while delegating the rest by extending
 * {@link DelegatingNetwork}.
 *
 * The `Network` and {@link NetworkScope} types (the capability handle a guest
 * is given: its guard, its checked network and its quota leases) are in the
 * types-only ./network-types.ts, re-exported here.
 *
 * @example
 * class LoggingNetwork extends DelegatingNetwork {
 *   override lookup(host: string, family: 4 | 6, signal: AbortSignal) {
 *     log(host);
 *     return super.lookup(host, family, signal);
 *   }
 * }
 */
import type { ConnectAttempt, Driver, DriverListener, ListenAttempt, PeerSocket, TransportChannel } from './driver.js';
import type { Network, Resolver, ResolvedAddress } from './network-types.js';

export type { Network, NetworkScope, Resolver, ResolvedAddress } from './network-types.js';

// The system resolver is a transport-side module (it calls getaddrinfo): loaded on first use, like the
// drivers, so importing the core loads no socket code. A literal specifier, so bundlers follow it.
let loaded: Promise<{ readonly systemResolver: Resolver }> | undefined;
/** The resolver once its module is loaded: called directly from then on (an `await` per lookup is a turn of the microtask queue). */
let resolver: Resolver | undefined;

/** The operating system's resolver (getaddrinfo, one family per call; `localhost` answered in-process). */
export const systemResolver: Resolver = (host, family, signal) => {
  if (resolver !== undefined) return resolver(host, family, signal);
  return (loaded ??= import('../transports/system/resolver.js')).then((m) => (resolver = m.systemResolver)(host, family, signal));
};

/** The system network: raw OS work through the given resolver (default: the system's) and the drivers themselves. */
export class SystemNetwork implements Network {
  readonly #resolver: Resolver;
  constructor(resolver: Resolver = systemResolver) {
    if (typeof resolver !== 'function') throw new TypeError('resolver must be a function (host, family, signal) => Promise<ResolvedAddress[]>');
    this.#resolver = resolver;
  }
  lookup(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    signal.throwIfAborted();
    return this.#resolver(host, family, signal);
  }
  connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    return driver.connect(attempt);
  }
  listen(driver: Driver, attempt: ListenAttempt): Promise<DriverListener> {
    if (!driver.listen) return Promise.reject(new TypeError(`driver ${driver.id} cannot listen`));
    return driver.listen(attempt);
  }
  openPeerSocket(driver: Driver, attempt: ListenAttempt): Promise<PeerSocket> {
    if (!driver.openPeerSocket) return Promise.reject(new TypeError(`driver ${driver.id} cannot open a peer socket`));
    return driver.openPeerSocket(attempt);
  }
}

/** Forwards every method to `inner`; subclass and override only what you change. */
export class DelegatingNetwork implements Network {
  protected readonly inner: Network;
  constructor(inner: Network) {
    this.inner = inner;
  }
  lookup(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    return this.inner.lookup(host, family, signal);
  }
  connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    return this.inner.connect(driver, attempt);
  }
  listen(driver: Driver, attempt: ListenAttempt): Promise<DriverListener> {
    return this.inner.listen(driver, attempt);
  }
  openPeerSocket(driver: Driver, attempt: ListenAttempt): Promise<PeerSocket> {
    if (!this.inner.openPeerSocket) return Promise.reject(new TypeError('this network cannot open peer sockets (rendezvous)'));
    return this.inner.openPeerSocket(driver, attempt);
  }
}
