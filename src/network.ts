/**
 * The `Network`: the seam between the library and the operating system,
 * after wasmtime's pluggable `Network` trait (seeds/). The system network
 * does raw work (resolve with the system resolver, let a driver open its
 * socket); the tenant's policy network wraps one and checks every use first.
 * A host may supply its own (a virtual network, a proxy) and override one
 * method while delegating the rest by extending {@link DelegatingNetwork}.
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

/** One answer of a {@link Resolver}. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
  /** Seconds the answer may be cached, when the resolver knows it. */
  readonly ttl?: number;
}

/** Name → addresses of one family. Rejects with an Error whose code is e.g. ENOTFOUND. */
export type Resolver = (host: string, family: 4 | 6, signal: AbortSignal) => Promise<ResolvedAddress[]>;

/** How the library reaches the network: name lookup, connect and listen through a driver. Hosts may supply their own. */
export interface Network {
  /** Resolve one family of a name (RFC 8305 asks AAAA and A separately). */
  lookup(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]>;
  /** Open a channel with a driver to an already checked target. */
  connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel>;
  /** Bind a listener with a driver at an already checked local target. */
  listen(driver: Driver, attempt: ListenAttempt): Promise<DriverListener>;
  /** Bind a peer socket for rendezvous at an already checked local target; absent: this network cannot rendezvous. */
  openPeerSocket?(driver: Driver, attempt: ListenAttempt): Promise<PeerSocket>;
}

/** The system network: raw OS work through the given resolver and the drivers themselves. */
export class SystemNetwork implements Network {
  readonly #resolver: Resolver;
  constructor(resolver: Resolver) {
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
