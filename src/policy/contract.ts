/**
 * The chokepoint's contract, as types only: what the tenant's guard hands
 * out ({@link CheckedTarget}, {@link CheckedName}), the guard itself, leases
 * and decision records. Nothing here runs; drivers and the core import it
 * without pulling in the policy engine.
 *
 * A CheckedTarget is branded with a `unique symbol` that no other module can
 * name, so no object literal type-checks as one: only the guard's minting
 * code (src/policy/admission.ts) makes them, and it records every target it
 * makes, which the scope's network and the dial helpers check at run time.
 * The network and the scope that holds it are in src/network-types.ts (types
 * only too).
 *
 * @example
 * const target: CheckedTarget = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 * target.use; target.protocol; target.revision; // what it was issued for
 */
import type { DenyCode, NetworkUse, PolicyDecision, PolicyProtocol, PolicyRequest } from './types.js';

declare const checkedTarget: unique symbol;
declare const checkedName: unique symbol;

/** One answer of a name lookup. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
  /** Seconds the answer may be cached, when the resolver knows it. */
  readonly ttl?: number;
}

/**
 * An address the tenant's policy allowed, for exactly one use and protocol,
 * under one policy revision. Only a guard makes these; a scope's network
 * admits only its own, for its method's use and the driver's protocol.
 */
export interface CheckedTarget {
  readonly [checkedTarget]: true;
  readonly tenant: string;
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  /** The canonical IP address to dial (an IPv6 link-local address keeps its zone). */
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
  /** The name that was checked: what SNI, certificate checks and `Host` use. */
  readonly hostName?: string | undefined;
  /** The policy revision it was decided under (0 for scopes without revisions). */
  readonly revision: number;
  readonly decision: PolicyDecision & { allow: true };
}

/**
 * A name the tenant's policy allowed to be looked up, for one protocol. Only a
 * guard makes these (`authorizeLookup`); its `resolve` accepts only its own.
 * One decision covers both queries (AAAA and A, RFC 8305 §3).
 */
export interface CheckedName {
  readonly [checkedName]: true;
  readonly tenant: string;
  readonly protocol: PolicyProtocol;
  /** The canonical name (lowercase A-labels, no trailing dot) that is resolved; an IP literal stays itself. */
  readonly name: string;
  /** The port the answers will be used with, when known (strict answers decide each answer for it). */
  readonly port?: number | undefined;
  readonly decision: PolicyDecision & { allow: true };
}

/** What `authorize` needs: an address-bearing request. Read once, own data properties only. */
export interface AuthorizeRequest {
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  readonly address: string;
  readonly port: number;
  readonly hostName?: string | undefined;
  readonly url?: string | undefined;
}

/** The decision record delivered to hosts and to `taps:policy:decision`. */
export interface DecisionRecord {
  readonly id: number;
  readonly tenant: string;
  /** The request as the policy saw it (a snapshot: own data fields only). */
  readonly request: PolicyRequest;
  /** The policy's verdict (in audit mode a denial here was let through). */
  readonly decision: PolicyDecision;
  readonly mode: 'enforce' | 'audit';
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly use: NetworkUse | undefined;
  readonly protocol: PolicyProtocol | undefined;
  /** The host as the caller gave it. */
  readonly host: string | undefined;
  /** The canonical name or address literal the policy decided on. */
  readonly canonicalHost: string | undefined;
  /** The canonical address, when the request carried one. */
  readonly address: string | undefined;
  readonly port: number | undefined;
  /** The source text of the deciding rule, or null. */
  readonly rule: string | null;
  /** The verdict (false in audit mode when the policy would have denied). */
  readonly allow: boolean;
  /** The denial code, when `allow` is false. */
  readonly code: DenyCode | undefined;
  readonly reason: string;
  /** The policy revision that decided (0 for a BasicScope). */
  readonly revision: number;
}

/** Decides every request of one tenant, records each decision, and mints CheckedTargets for allowed addresses. */
export interface PolicyGuard {
  readonly tenant: string;
  /** Decide and record. Never throws: a failing policy denies with code `policy-error`. */
  decide(request: PolicyRequest): Promise<PolicyDecision>;
  /**
   * Decide synchronously (a check that cannot wait, such as an accepted
   * peer's). An async policy or custom rule makes it deny with `policy-error`.
   */
  decideSync(request: PolicyRequest): PolicyDecision;
  /** Decide an address-bearing request; on allow return the CheckedTarget, else throw PolicyDeniedError. */
  authorize(request: AuthorizeRequest): Promise<CheckedTarget>;
  /**
   * The same, synchronously (for a check that cannot wait); an
   * async policy denies with `policy-error`. Throws PolicyDeniedError.
   */
  authorizeSync(request: AuthorizeRequest): CheckedTarget;
  /** Check the `lookup` grant for `host`, then resolve it through the tenant's network (= authorizeLookup + resolve). */
  lookup(host: string, family: 4 | 6, protocol: PolicyProtocol, signal: AbortSignal): Promise<ResolvedAddress[]>;
  /**
   * Decide (and record) the `lookup` grant for `host` once; on allow return a
   * CheckedName, else throw PolicyDeniedError. No DNS query is sent. An IP
   * literal needs no grant: it comes back as is, with no decision recorded.
   * `port`, when given, is what strict answers decide each answer for.
   */
  authorizeLookup(protocol: PolicyProtocol, host: string, port?: number): Promise<CheckedName>;
  /**
   * Resolve a name this guard minted through the tenant's network, without a
   * new decision (unless the policy was reloaded since: then it is decided
   * again). Only well-formed answers of `family` come back, canonical.
   */
  resolve(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]>;
}

/** A held unit of quota (one connection, one listener) and its byte accounting. */
export interface Lease {
  /** Count bytes; throws QuotaExceededError when a byte budget is spent. */
  sent(bytes: number): void;
  /** Count received bytes; throws QuotaExceededError when a byte budget is spent. */
  received(bytes: number): void;
  /** Give the unit back (idempotent). */
  release(): void;
  /**
   * Hot reload: call `cb` (once) when a new policy revision forbids the
   * target this lease was taken for and the host chose to close such
   * connections. Registering after the revocation calls `cb` at once.
   * Optional: scopes without hot reload do not have it.
   */
  onRevoke?(cb: (decision: PolicyDecision & { allow: false }) => void): void;
  /**
   * Tell the lease what it ended up serving when that was not known at
   * `lease()` time: the winning candidate's CheckedTarget, or for an accepted
   * peer its `accept` request. A hot reload re-decides exactly this.
   * Optional, like `onRevoke`.
   */
  bind?(subject: CheckedTarget | PolicyRequest): void;
}
