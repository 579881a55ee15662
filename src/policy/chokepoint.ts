/**
 * The chokepoint: the one place every candidate passes before a packet leaves.
 *
 * A {@link NetworkScope} is a capability handle for one tenant (like the data
 * in a wasmtime Store): it holds the tenant's policy, network and quotas, and
 * nothing a caller passes to `initiate()`, `listen()`, an endpoint or a URL can
 * name or change the tenant. Its {@link PolicyGuard} decides requests, records
 * each decision, and mints a {@link CheckedTarget} for every allowed address.
 * Drivers connect only to CheckedTargets; the set of minted targets is private
 * to this module, so a target cannot be forged by building a lookalike object.
 *
 * @example
 * const scope = createScope({ tenant: 'acme', policy, resolver });
 * const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 */
import { PolicyDeniedError, QuotaExceededError } from '../errors.js';
import { canonicalAddress, canonicalHost, dialString } from './canonical.js';
import { keepAnswers, LITERAL_LOOKUP, literalAnswer } from './answers.js';
import { decisionChannel as recordsChannel, emitRecord, nextRecordId, wantsRecords } from './records.js';
import { DelegatingNetwork, SystemNetwork, type Network, type ResolvedAddress, type Resolver } from '../network.js';
import { systemResolver } from '../registry.js';
import type { ConnectAttempt, Driver, DriverListener, ListenAttempt, PeerSocket, TransportChannel } from '../driver.js';
import { CheckedPeerSocket } from './checked-peer-socket.js';
import { DENY_ALL, type DenyCode, type NetworkPolicy, type NetworkUse, type PolicyDecision, type PolicyProtocol, type PolicyRequest } from './types.js';

/** An address the tenant's policy allowed, for one use and protocol. Only the guard makes these. */
export interface CheckedTarget {
  readonly tenant: string;
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
  /** The name that was checked and must be used for SNI, certificate checks and Host. */
  readonly hostName?: string | undefined;
  readonly decision: PolicyDecision & { allow: true };
}

/**
 * A name the tenant's policy allowed to be looked up, for one protocol. Only a
 * guard makes these (`authorizeLookup`); its `resolve` accepts only its own.
 * One decision covers both queries (AAAA and A, RFC 8305 §3), so a selection
 * records one lookup decision per protocol, not one per family.
 */
export interface CheckedName {
  readonly tenant: string;
  readonly protocol: PolicyProtocol;
  /** The canonical name (lowercase A-labels, no trailing dot) that is resolved; an IP literal stays itself. */
  readonly name: string;
  readonly decision: PolicyDecision & { allow: true };
}

/** What `authorize` needs: an address-bearing request. */
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
  /** Decide an address-bearing request; on allow return the CheckedTarget, else throw PolicyDeniedError. */
  authorize(request: AuthorizeRequest): Promise<CheckedTarget>;
  /** Check the `lookup` grant for `host`, then resolve it through the tenant's network (= authorizeLookup + resolve). */
  lookup(host: string, family: 4 | 6, protocol: PolicyProtocol, signal: AbortSignal): Promise<ResolvedAddress[]>;
  /**
   * Decide (and record) the `lookup` grant for `host` once; on allow return a
   * CheckedName, else throw PolicyDeniedError. No DNS query is sent. An IP
   * literal needs no grant: it comes back as is, with no decision recorded.
   */
  authorizeLookup(protocol: PolicyProtocol, host: string): Promise<CheckedName>;
  /**
   * Resolve a name this guard minted through the tenant's network, without a
   * new decision (unless the policy was reloaded since: then it is decided
   * again). Only well-formed answers of `family` come back, canonical.
   */
  resolve(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]>;
  /**
   * Decide synchronously (the per-datagram UDP send-to check). Present when
   * the policy can answer without waiting; an async custom rule makes it deny
   * with `policy-error`.
   */
  decideSync?(request: PolicyRequest): PolicyDecision;
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

/** A tenant's capability handle: its guard, its policy-checked network and its quota leases. The only source of the tenant. */
export interface NetworkScope {
  readonly tenant: string;
  readonly guard: PolicyGuard;
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

/** Every minted target → the scope that minted it (when it keeps track) and the policy revision then. */
const minted = new WeakMap<object, MintInfo>();
const mintedNames = new WeakSet<object>();
const scopes = new WeakSet<object>();

/** True only for targets minted by a guard in this module. */
export function isCheckedTarget(value: unknown): value is CheckedTarget {
  return typeof value === 'object' && value !== null && minted.has(value);
}

/** True only for scopes made by `createScope` or a `Host`. */
export function isNetworkScope(value: unknown): value is NetworkScope {
  return typeof value === 'object' && value !== null && scopes.has(value);
}

/** @internal Used by the policy engine's Host to brand the scopes it creates. */
export function brandScope<T extends NetworkScope>(scope: T): T {
  scopes.add(scope);
  return scope;
}

/** @internal Who minted a target, and under which policy revision. */
export interface MintInfo {
  readonly owner: object | undefined;
  readonly revision: number;
}

/** @internal The mint record of a target, or undefined for anything a guard did not mint. */
export function mintInfo(value: unknown): MintInfo | undefined {
  return typeof value === 'object' && value !== null ? minted.get(value) : undefined;
}

const NO_OWNER: MintInfo = Object.freeze({ owner: undefined, revision: 0 });

/** @internal Mint a target after an allow decision (`owner`: the scope that vouches for it). */
export function mintTarget(
  tenant: string, request: AuthorizeRequest, decision: PolicyDecision & { allow: true }, owner?: object, revision = 0,
): CheckedTarget {
  const family: 4 | 6 = request.address.includes(':') ? 6 : 4;
  const target: CheckedTarget = Object.freeze({
    tenant,
    use: request.use,
    protocol: request.protocol,
    address: request.address,
    family,
    port: request.port,
    hostName: request.hostName,
    // A frozen copy: a target may serve several identical requests, and nobody holding it may change what it says.
    decision: Object.freeze(decision.reason === undefined ? { allow: true, rule: decision.rule } : { allow: true, rule: decision.rule, reason: decision.reason }),
  });
  minted.set(target, owner === undefined && revision === 0 ? NO_OWNER : { owner, revision });
  return target;
}

/** True only for names minted by a guard in this module. */
export function isCheckedName(value: unknown): value is CheckedName {
  return typeof value === 'object' && value !== null && mintedNames.has(value);
}

/** @internal Mint a name after an allowed lookup decision. */
export function mintName(tenant: string, protocol: PolicyProtocol, name: string, decision: PolicyDecision & { allow: true }): CheckedName {
  const checked: CheckedName = Object.freeze({ tenant, protocol, name, decision });
  mintedNames.add(checked);
  return checked;
}

export const decisionChannel = recordsChannel;

const unverified = (what: string): PolicyDecision & { allow: false } => ({
  allow: false,
  code: 'unverified',
  reason: `${what} was not checked by this tenant's policy`,
  rule: null,
});

/** Wraps a network so that connect/listen accept only targets this guard minted for this tenant. */
export class CheckedNetwork extends DelegatingNetwork {
  readonly #tenant: string;
  constructor(inner: Network, tenant: string) {
    super(inner);
    this.#tenant = tenant;
  }
  override connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    const t = attempt.target;
    if (!isCheckedTarget(t) || t.tenant !== this.#tenant || t.protocol !== driver.protocol) {
      return Promise.reject(new PolicyDeniedError(unverified('the connect target')));
    }
    return super.connect(driver, attempt);
  }
  override listen(driver: Driver, attempt: ListenAttempt): Promise<DriverListener> {
    const t = attempt.target;
    if (!isCheckedTarget(t) || t.tenant !== this.#tenant || t.use !== 'bind') {
      return Promise.reject(new PolicyDeniedError(unverified('the bind target')));
    }
    return super.listen(driver, attempt);
  }
  /** A peer socket binds like a listener; each send-to and its final peer must be connect targets of this tenant. */
  override openPeerSocket(driver: Driver, attempt: ListenAttempt): Promise<PeerSocket> {
    const t = attempt.target;
    if (!isCheckedTarget(t) || t.tenant !== this.#tenant || t.use !== 'bind') {
      return Promise.reject(new PolicyDeniedError(unverified('the bind target')));
    }
    return super.openPeerSocket(driver, attempt).then((socket) => new CheckedPeerSocket(socket, this.#tenant, driver.protocol, isCheckedTarget));
  }
}

/** Options of {@link createScope}. */
export interface ScopeOptions {
  readonly tenant: string;
  /** The policy; absent means deny everything. */
  readonly policy?: NetworkPolicy | undefined;
  /** How names are resolved (default: the system resolver the driver registry provides). */
  readonly resolver?: Resolver | undefined;
  /** Replace the system network entirely (virtual network, proxy). */
  readonly network?: Network | undefined;
  /** `audit`: decide and record, allow anyway. */
  readonly mode?: 'enforce' | 'audit' | undefined;
  /** Called with every decision record. Exceptions it throws are swallowed. */
  readonly onDecision?: ((record: DecisionRecord) => void) | undefined;
  /** Limits: concurrent connections and listeners. */
  readonly limits?: { readonly connections?: number; readonly listeners?: number } | undefined;
}

/** A simple tenant scope around a NetworkPolicy. The policy engine's `Host` builds richer ones. */
export class BasicScope implements NetworkScope, PolicyGuard {
  readonly tenant: string;
  readonly network: Network;
  readonly #policy: NetworkPolicy;
  readonly #mode: 'enforce' | 'audit';
  readonly #onDecision: ((record: DecisionRecord) => void) | undefined;
  readonly #limits: { connections: number; listeners: number };
  readonly #held = { connection: 0, listener: 0 };
  readonly #names = new WeakSet<CheckedName>();
  /** The last target minted: an identical request allowed by an identical decision gets the same (immutable) target. */
  #last: { readonly request: AuthorizeRequest; readonly rule: string | null; readonly reason: string | undefined; readonly target: CheckedTarget } | undefined;

  constructor(options: ScopeOptions, defaultResolver?: Resolver) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.tenant !== 'string' || options.tenant.length === 0) throw new TypeError('options.tenant must be a non-empty string');
    if (options.mode !== undefined && options.mode !== 'enforce' && options.mode !== 'audit') {
      throw new RangeError(`options.mode must be 'enforce' or 'audit', got ${String(options.mode)}`);
    }
    this.tenant = options.tenant;
    this.#policy = options.policy ?? DENY_ALL;
    this.#mode = options.mode ?? 'enforce';
    this.#onDecision = options.onDecision;
    this.#limits = {
      connections: options.limits?.connections ?? Infinity,
      listeners: options.limits?.listeners ?? Infinity,
    };
    const resolver = options.resolver ?? defaultResolver;
    const inner =
      options.network ??
      new SystemNetwork(resolver ?? systemResolver);
    this.network = new CheckedNetwork(inner, this.tenant);
    brandScope(this);
  }

  get guard(): PolicyGuard {
    return this;
  }

  async decide(request: PolicyRequest): Promise<PolicyDecision> {
    return this.#decide(request);
  }

  /** The policy's verdict, synchronously when the policy answers synchronously (no promise, no microtask). */
  #decide(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision> {
    let d: PolicyDecision | Promise<PolicyDecision>;
    try {
      d = this.#policy.decide(request);
    } catch (err) {
      return this.#finish(request, policyError(err));
    }
    if (typeof (d as Promise<unknown> | null)?.then === 'function') {
      return Promise.resolve(d).then(
        (decision) => this.#wellFormed(request, decision),
        (err: unknown) => this.#finish(request, policyError(err)),
      );
    }
    return this.#wellFormed(request, d as PolicyDecision);
  }

  #wellFormed(request: PolicyRequest, decision: PolicyDecision): PolicyDecision {
    try {
      if (typeof decision !== 'object' || decision === null || typeof decision.allow !== 'boolean') {
        throw new TypeError('policy returned a malformed decision');
      }
    } catch (err) {
      return this.#finish(request, policyError(err)); // even an `allow` getter that throws
    }
    return this.#finish(request, decision);
  }

  decideSync(request: PolicyRequest): PolicyDecision {
    let decision: PolicyDecision;
    try {
      const d = this.#policy.decide(request);
      if (typeof (d as Promise<unknown>)?.then === 'function') {
        (d as Promise<unknown>).then(undefined, () => {});
        throw new TypeError('the policy answered asynchronously; a synchronous decision is needed');
      }
      decision = d as PolicyDecision;
      if (typeof decision !== 'object' || decision === null || typeof decision.allow !== 'boolean') {
        throw new TypeError('policy returned a malformed decision');
      }
    } catch (err) {
      decision = policyError(err);
    }
    return this.#finish(request, decision);
  }

  #finish(request: PolicyRequest, decision: PolicyDecision): PolicyDecision {
    if (wantsRecords(this.#onDecision)) {
      const address = request.address === undefined ? undefined : canonicalAddress(request.address);
      emitRecord(
        {
          id: nextRecordId(),
          tenant: this.tenant,
          request,
          decision,
          mode: this.#mode,
          time: Date.now(),
          use: request.use,
          protocol: request.protocol,
          host: request.host,
          canonicalHost: undefined,
          address: address?.ok ? address.host : request.address,
          port: request.port,
          rule: decision.rule,
          allow: decision.allow,
          code: decision.allow ? undefined : decision.code,
          reason: decision.allow ? (decision.reason ?? '') : decision.reason,
          revision: 0,
        },
        this.#onDecision,
      );
    }
    if (!decision.allow && this.#mode === 'audit') {
      return { allow: true, rule: decision.rule, reason: `audit: would deny (${decision.code}): ${decision.reason}` };
    }
    return decision;
  }

  async authorize(request: AuthorizeRequest): Promise<CheckedTarget> {
    // Only an IP literal can become a target: a driver must never be handed a name to resolve.
    const address = canonicalAddress(request.address);
    if (!address.ok) {
      throw new PolicyDeniedError({ allow: false, code: 'invalid-host', reason: address.reason, rule: null });
    }
    const d = this.#decide({
      use: request.use,
      protocol: request.protocol,
      host: request.hostName,
      address: request.address,
      port: request.port,
      url: request.url,
    });
    const decision = d instanceof Promise ? await d : d;
    if (!decision.allow) throw new PolicyDeniedError(decision);
    const last = this.#last;
    if (last !== undefined && sameRequest(last.request, request) && last.rule === decision.rule && last.reason === decision.reason) return last.target;
    const { use, protocol, port, hostName, url } = request;
    const target = mintTarget(this.tenant, { use, protocol, address: dialString(address), port, hostName, url }, decision);
    this.#last = { request: { use, protocol, address: request.address, port, hostName, url }, rule: decision.rule, reason: decision.reason, target };
    return target;
  }

  async lookup(host: string, family: 4 | 6, protocol: PolicyProtocol, signal: AbortSignal): Promise<ResolvedAddress[]> {
    signal.throwIfAborted();
    return this.resolve(await this.authorizeLookup(protocol, host), family, signal);
  }

  async authorizeLookup(protocol: PolicyProtocol, host: string): Promise<CheckedName> {
    const h = canonicalHost(host);
    if (h.ok && h.kind !== 'name') return this.#mintName(protocol, dialString(h), LITERAL_LOOKUP);
    if (!h.ok) {
      // Malformed: recorded, and denied even in audit mode (there is no name to resolve).
      const denial = { allow: false, code: 'invalid-host', reason: h.reason, rule: null } as const;
      this.#finish({ use: 'lookup', protocol, host }, denial);
      throw new PolicyDeniedError(denial);
    }
    const decision = await this.decide({ use: 'lookup', protocol, host });
    if (!decision.allow) throw new PolicyDeniedError(decision);
    return this.#mintName(protocol, h.host, decision);
  }

  async resolve(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, got ${String(family)}`);
    if (!this.#names.has(name)) throw new PolicyDeniedError(unverified('the name to resolve'));
    signal.throwIfAborted();
    const literal = canonicalAddress(name.name);
    if (literal.ok) return literalAnswer(literal, family);
    return keepAnswers(await this.network.lookup(name.name, family, signal), family);
  }

  #mintName(protocol: PolicyProtocol, name: string, decision: PolicyDecision & { allow: true }): CheckedName {
    const n = mintName(this.tenant, protocol, name, decision);
    this.#names.add(n);
    return n;
  }

  lease(kind: 'connection' | 'listener', _target?: CheckedTarget): Lease {
    const limit = kind === 'connection' ? this.#limits.connections : this.#limits.listeners;
    if (this.#held[kind] >= limit) {
      throw new QuotaExceededError(`${kind}s`, `tenant ${this.tenant} already holds ${this.#held[kind]} ${kind}s (limit ${limit})`);
    }
    this.#held[kind]++;
    return new CountedLease(this.#held, kind);
  }
}

/** A basic scope's lease: counts held connections or listeners; no byte budget. A class, not closures: one per connection. */
class CountedLease implements Lease {
  readonly #held: Record<'connection' | 'listener', number>;
  readonly #kind: 'connection' | 'listener';
  #released = false;

  constructor(held: Record<'connection' | 'listener', number>, kind: 'connection' | 'listener') {
    this.#held = held;
    this.#kind = kind;
  }

  sent(): void {}

  received(): void {}

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#held[this.#kind]--;
  }
}

function sameRequest(a: AuthorizeRequest, b: AuthorizeRequest): boolean {
  return a.address === b.address && a.port === b.port && a.protocol === b.protocol && a.use === b.use && a.hostName === b.hostName && a.url === b.url;
}

function policyError(err: unknown): PolicyDecision & { allow: false } {
  return { allow: false, code: 'policy-error', reason: `policy failed: ${(err as Error)?.message ?? String(err)}`, rule: null };
}

/** Make a tenant scope. Hosts call this (or `Host.tenant`); guests only ever receive the result. */
export function createScope(options: ScopeOptions): NetworkScope {
  return new BasicScope(options);
}
