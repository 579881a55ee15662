/**
 * The `Network`: the seam between the library and the operating system,
 * after wasmtime's pluggable `Network` trait. The system network does raw
 * work (resolve with the system resolver, let a driver open its socket); a
 * tenant's scope wraps one and admits only what its guard checked, for the
 * method's own use. A host may supply its own (a virtual network, a proxy)
 * and override one method while delegating the rest by extending
 * {@link DelegatingNetwork}.
 *
 * This module also holds the {@link NetworkScope} type, the capability handle
 * a guest is given: its guard, its checked network and its quota leases.
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
import type { CheckedTarget, Lease, PolicyGuard, ResolvedAddress } from './policy/contract.js';

export type { ResolvedAddress } from './policy/contract.js';

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

/** A tenant's capability handle: its guard, its policy-checked network and its quota leases. The only source of the tenant. */
export interface NetworkScope {
  readonly tenant: string;
  readonly guard: PolicyGuard;
  /** Admits only targets this scope's guard minted, each for its own use and the driver's protocol. */
  readonly network: Network;
  /**
   * Take one unit of the tenant's quota; throws QuotaExceededError when none
   * is left (never blocks). Pass the connection's (or listener's) target so a
   * hot reload can revoke it. A scope whose quotas are shared beyond the
   * process (a Host with a quota store) may answer with a promise when it
   * must ask the store first; it then rejects the same way, or with
   * `ERR_TAPS_FLEET_UNAVAILABLE` when the store cannot be reached.
   */
  lease(kind: 'connection' | 'listener', target?: CheckedTarget): Lease | Promise<Lease>;
}

// The system resolver is a transport-side module (it calls getaddrinfo): loaded on first use, like the
// drivers, so importing the core loads no socket code. A literal specifier, so bundlers follow it.
let loaded: Promise<{ readonly systemResolver: Resolver }> | undefined;

/** The operating system's resolver (getaddrinfo, one family per call; `localhost` answered in-process). */
export const systemResolver: Resolver = async (host, family, signal) =>
  (await (loaded ??= import('../transports/system/resolver.js'))).systemResolver(host, family, signal);

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
