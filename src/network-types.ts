/**
 * The network seam and the guest's capability handle, as types only: the
 * {@link Network} a scope wraps (the host's, or the system's), the
 * {@link Resolver} it may be built on, and the {@link NetworkScope} a guest
 * is handed. With src/policy/contract.ts (CheckedTarget, CheckedName,
 * PolicyGuard, Lease) this is the chokepoint's whole contract; nothing here
 * runs, and the implementations (src/network.ts, src/policy/admission.ts)
 * import it, never the other way round.
 *
 * @example
 * function handTo(guest: { run(scope: NetworkScope): void }, scope: NetworkScope) { guest.run(scope); }
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
