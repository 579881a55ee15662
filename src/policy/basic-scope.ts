/**
 * A simple tenant scope around any {@link NetworkPolicy} object (`createScope`):
 * no rule grammar, claims or reload, but the same chokepoint as a Host's
 * scope. Requests are snapshotted (requests.ts) and canonicalised before the
 * host's policy sees them, so the policy decides on exactly the address and
 * name the target is minted with; the network admits by the shared rule
 * (chokepoint.ts `admit`); `network.lookup` needs a lookup grant.
 *
 * @example
 * const scope = createScope({ tenant: 'acme', policy: { decide: (r) => ... }, resolver });
 * const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 */
import { PolicyDeniedError, QuotaExceededError } from '../errors.js';
import type { Network, NetworkScope, Resolver } from '../network.js';
import { checkObject, ownField } from '../own.js';
import { keepAnswers, literalAnswer, LITERAL_LOOKUP } from './answers.js';
import { canonicalAddress, canonicalHost, dialString } from './canonical.js';
import { answered, baseNetwork, brandScope, CheckedNetwork, mintName, mintTarget, nameMintedBy, type AdmittingScope } from './admission.js';
import type { AuthorizeRequest, CheckedName, CheckedTarget, DecisionRecord, Lease, PolicyGuard, ResolvedAddress } from './contract.js';
import { canonicalRequest, type CanonicalRequest } from './decide.js';
import { emitRecord, nextRecordId, wantsRecords } from './records.js';
import { snapshotAuthorize, snapshotRequest } from './requests.js';
import { attachRacingCache, racingCacheFrom, type RacingCacheOptions } from '../selection/racing-cache.js';
import { DENY_ALL, POLICY_PROTOCOLS, type NetworkPolicy, type PolicyDecision, type PolicyProtocol, type PolicyRequest } from './types.js';

/** Options of {@link createScope}. Read once, own properties only. */
export interface ScopeOptions {
  readonly tenant: string;
  /** The policy; absent means deny everything. */
  readonly policy?: NetworkPolicy | undefined;
  /** How names are resolved (default: the system resolver). */
  readonly resolver?: Resolver | undefined;
  /** Replace the system network entirely (virtual network, proxy). */
  readonly network?: Network | undefined;
  /** `audit`: decide and record, allow anyway. */
  readonly mode?: 'enforce' | 'audit' | undefined;
  /** Called with every decision record. Exceptions it throws are swallowed. */
  readonly onDecision?: ((record: DecisionRecord) => void) | undefined;
  /** Limits: concurrent connections and listeners. */
  readonly limits?: { readonly connections?: number; readonly listeners?: number } | undefined;
  /** The scope's racing cache (selection/racing-cache.ts): options, or `false` for none. Default: one with default options. */
  readonly racingCache?: RacingCacheOptions | false | undefined;
}

type Denial = PolicyDecision & { allow: false };
const deny = (code: Denial['code'], reason: string): Denial => ({ allow: false, code, reason, rule: null });

function policyError(err: unknown): Denial {
  return deny('policy-error', `policy failed: ${err instanceof Error ? err.message : typeof err === 'string' ? err : 'a non-Error was thrown'}`);
}

function checkLimit(v: unknown, what: string): number {
  if (v === undefined) return Infinity;
  if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`${what} must be a number ≥ 0`);
  return v;
}

/** The request the host's policy is shown: canonical values only (what the target will be minted with). */
function policyView(c: CanonicalRequest): PolicyRequest {
  // The same canonical request as last time (canonicalRequest remembers the last one): the same frozen view.
  if (lastView !== undefined && lastView.c === c) return lastView.view;
  const view: PolicyRequest = Object.freeze({ use: c.use, protocol: c.protocol, host: c.name, address: c.address === undefined ? undefined : dialString(c.address), port: c.port, url: c.url });
  lastView = { c, view };
  return view;
}

let lastView: { readonly c: CanonicalRequest; readonly view: PolicyRequest } | undefined;

/** What makes a basic scope: only this module holds it, so `new scope.constructor(...)` is a TypeError. */
const MAKE_SCOPE = Symbol('basic scope');

/** A simple tenant scope around a NetworkPolicy, made by {@link createScope}. The policy engine's `Host` builds richer ones. */
export class BasicScope implements NetworkScope, PolicyGuard, AdmittingScope {
  readonly tenant: string;
  readonly network: Network;
  /** A basic scope has no revisions: every target is current. */
  readonly revision = 0;
  readonly #policy: NetworkPolicy;
  readonly #mode: 'enforce' | 'audit';
  readonly #onDecision: ((record: DecisionRecord) => void) | undefined;
  readonly #limits: { connections: number; listeners: number };
  readonly #held = { connection: 0, listener: 0 };
  /** `protocol name` pairs whose lookup this scope granted (a basic scope's policy has no revisions). */
  readonly #granted = new Set<string>();
  /** The network the checked one wraps: answers are fetched there once the grant was decided here. */
  readonly #base: Network;
  /** The last target minted: an identical request allowed by an identical decision gets the same (immutable) target. */
  #last: { readonly request: PolicyRequest; readonly rule: string | null; readonly reason: string | undefined; readonly target: CheckedTarget } | undefined;

  /**
   * @internal Made by {@link createScope} only: a guest holding its scope reaches this constructor through
   * `scope.constructor`, and a scope of a policy it wrote would mint real targets.
   */
  constructor(options: ScopeOptions, key: symbol) {
    if (key !== MAKE_SCOPE) throw new TypeError('a scope is made by createScope() only');
    const o = checkObject(options, 'options');
    const tenant = ownField(o, 'tenant', 'options');
    if (typeof tenant !== 'string' || tenant.length === 0) throw new TypeError('options.tenant must be a non-empty string');
    const mode = ownField(o, 'mode', 'options');
    if (mode !== undefined && mode !== 'enforce' && mode !== 'audit') throw new RangeError("options.mode must be 'enforce' or 'audit'");
    const policy = ownField(o, 'policy', 'options');
    if (policy !== undefined && (typeof policy !== 'object' || policy === null || typeof (policy as NetworkPolicy).decide !== 'function')) {
      throw new TypeError('options.policy must be a NetworkPolicy (an object with decide(request))');
    }
    const onDecision = ownField(o, 'onDecision', 'options');
    if (onDecision !== undefined && typeof onDecision !== 'function') throw new TypeError('options.onDecision must be a function');
    const limits = ownField(o, 'limits', 'options');
    const l = limits === undefined ? undefined : checkObject(limits, 'options.limits');
    this.tenant = tenant;
    this.#policy = (policy as NetworkPolicy | undefined) ?? DENY_ALL;
    this.#mode = mode ?? 'enforce';
    this.#onDecision = onDecision as ((record: DecisionRecord) => void) | undefined;
    this.#limits = {
      connections: checkLimit(l && ownField(l, 'connections', 'options.limits'), 'options.limits.connections'),
      listeners: checkLimit(l && ownField(l, 'listeners', 'options.limits'), 'options.limits.listeners'),
    };
    const network = ownField(o, 'network', 'options') as Network | undefined;
    const resolver = ownField(o, 'resolver', 'options') as Resolver | undefined;
    this.#base = baseNetwork(network, resolver);
    this.network = new CheckedNetwork(this.#base, this);
    attachRacingCache(this, racingCacheFrom(ownField(o, 'racingCache', 'options')));
    brandScope(this);
  }

  get guard(): PolicyGuard {
    return this;
  }

  decide(request: PolicyRequest): Promise<PolicyDecision> {
    let r: PolicyDecision | Promise<PolicyDecision>;
    try {
      r = this.#decide(snapshotRequest(request));
    } catch (err) {
      r = policyError(err);
    }
    return Promise.resolve(r);
  }

  decideSync(request: PolicyRequest): PolicyDecision {
    try {
      return this.#sync(this.#decide(snapshotRequest(request)));
    } catch (err) {
      return policyError(err);
    }
  }

  /** A synchronous answer, or `policy-error` when the policy answered with a promise. */
  #sync(d: PolicyDecision | Promise<PolicyDecision>): PolicyDecision {
    if (!(d instanceof Promise)) return d;
    d.then(undefined, () => {});
    return deny('policy-error', 'the policy answered asynchronously; a synchronous decision is needed');
  }

  /** @internal Re-decide a target's request (never needed: a basic scope has no revisions). */
  recheck(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision> {
    return this.#decide(request);
  }

  /** Canonicalise, then the policy's verdict, synchronously when the policy answers synchronously. */
  #decide(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision> {
    const c = canonicalRequest(request);
    // Malformed: recorded, and denied even in audit mode (there is nothing sound to let through).
    if (!c.ok) return this.#finish(request, undefined, deny(c.code, c.reason), false);
    return this.#ask(policyView(c), c);
  }

  #ask(view: PolicyRequest, c: CanonicalRequest): PolicyDecision | Promise<PolicyDecision> {
    let d: unknown;
    try {
      d = this.#policy.decide(view);
    } catch (err) {
      return this.#finish(view, c, policyError(err), true);
    }
    if (d instanceof Promise || (typeof d === 'object' && d !== null && typeof (d as { then?: unknown }).then === 'function')) {
      return Promise.resolve(d).then(
        (decision) => this.#finish(view, c, wellFormed(decision), true),
        (err: unknown) => this.#finish(view, c, policyError(err), true),
      );
    }
    return this.#finish(view, c, wellFormed(d), true);
  }

  #finish(request: PolicyRequest, c: CanonicalRequest | undefined, decision: PolicyDecision, auditable: boolean): PolicyDecision {
    if (wantsRecords(this.#onDecision)) {
      emitRecord(
        {
          id: nextRecordId(), tenant: this.tenant, request, decision, mode: this.#mode, time: Date.now(),
          use: c?.use, protocol: c?.protocol, host: typeof request.host === 'string' ? request.host : undefined,
          canonicalHost: c === undefined ? undefined : (c.name ?? c.address?.host), address: c?.address?.host,
          port: typeof request.port === 'number' ? request.port : undefined,
          rule: decision.rule, allow: decision.allow, code: decision.allow ? undefined : decision.code,
          reason: decision.allow ? (decision.reason ?? '') : decision.reason, revision: 0,
        },
        this.#onDecision,
      );
    }
    if (!decision.allow && auditable && this.#mode === 'audit') {
      return { allow: true, rule: decision.rule, reason: `audit: would deny (${decision.code}): ${decision.reason}` };
    }
    return decision;
  }

  authorize(request: AuthorizeRequest): Promise<CheckedTarget> {
    return answered(() => this.authorizeNow(request));
  }

  /** @internal `authorize`, answered at once when the policy answers at once (throws PolicyDeniedError then): see admission.ts `authorizeNow`. */
  authorizeNow(request: AuthorizeRequest): CheckedTarget | Promise<CheckedTarget> {
    return this.#authorize(snapshotAuthorize(request), false);
  }

  authorizeSync(request: AuthorizeRequest): CheckedTarget {
    return this.#authorize(snapshotAuthorize(request), true) as CheckedTarget;
  }

  #authorize(req: PolicyRequest, sync: boolean): CheckedTarget | Promise<CheckedTarget> {
    const c = canonicalRequest(req);
    if (!c.ok) {
      this.#finish(req, undefined, deny(c.code, c.reason), false);
      throw new PolicyDeniedError(deny(c.code, c.reason));
    }
    // The name a target presents (SNI, certificate check, Host) must be one the tenant may reach: its lookup grant.
    const name = c.name;
    if (name !== undefined && !this.#granted.has(`${c.protocol} ${name}`)) {
      const d = this.#decide(Object.freeze({ use: 'lookup', protocol: c.protocol, host: name }));
      const then = (decision: PolicyDecision): CheckedTarget | Promise<CheckedTarget> => {
        if (!decision.allow) {
          throw new PolicyDeniedError(deny(decision.code, `the name ${name} a target would present (SNI, certificate check, Host) is not one this tenant may reach: ${decision.reason}`));
        }
        this.#grant(`${c.protocol} ${name}`);
        return this.#authorize(req, sync);
      };
      if (d instanceof Promise) return sync ? then(this.#sync(d)) : d.then(then);
      return then(d);
    }
    const view = policyView(c);
    const d = this.#ask(view, c);
    if (d instanceof Promise) {
      if (sync) return this.#mint(view, this.#sync(d));
      return d.then((decision) => this.#mint(view, decision));
    }
    return this.#mint(view, d);
  }

  #mint(view: PolicyRequest, decision: PolicyDecision): CheckedTarget {
    if (!decision.allow) throw new PolicyDeniedError(decision);
    const last = this.#last;
    if (last !== undefined && sameRequest(last.request, view) && last.rule === decision.rule && last.reason === decision.reason) return last.target;
    const target = mintTarget(this, this.tenant, { use: view.use, protocol: view.protocol, address: view.address!, port: view.port!, hostName: view.host }, decision, 0);
    this.#last = { request: view, rule: decision.rule, reason: decision.reason, target };
    return target;
  }

  async lookup(host: string, family: 4 | 6, protocol: PolicyProtocol, signal: AbortSignal): Promise<ResolvedAddress[]> {
    if (!(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
    signal.throwIfAborted();
    return this.resolve(await this.authorizeLookup(protocol, host), family, signal);
  }

  authorizeLookup(protocol: PolicyProtocol, host: string, port?: number): Promise<CheckedName> {
    return answered(() => this.authorizeLookupNow(protocol, host, port));
  }

  /** @internal `authorizeLookup`, answered at once when the policy answers at once (throws PolicyDeniedError then): see admission.ts `authorizeLookupNow`. */
  authorizeLookupNow(protocol: PolicyProtocol, host: string, port?: number): CheckedName | Promise<CheckedName> {
    const h = canonicalHost(host);
    if (h.ok && h.kind !== 'name') return mintName(this, this.tenant, protocol, dialString(h), port, LITERAL_LOOKUP);
    if (!h.ok) {
      // Malformed: recorded, and denied even in audit mode (there is no name to resolve).
      const denial = deny('invalid-host', h.reason);
      this.#finish(Object.freeze({ use: 'lookup', protocol, host }), undefined, denial, false);
      throw new PolicyDeniedError(denial);
    }
    const name = h.host;
    const granted = (decision: PolicyDecision): CheckedName => {
      if (!decision.allow) throw new PolicyDeniedError(decision);
      this.#grant(`${protocol} ${name}`);
      return mintName(this, this.tenant, protocol, name, typeof port === 'number' ? port : undefined, decision);
    };
    const d = this.#decide(Object.freeze({ use: 'lookup', protocol, host }));
    return d instanceof Promise ? d.then(granted) : granted(d);
  }

  async resolve(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    if (family !== 4 && family !== 6) throw new TypeError('family must be 4 or 6');
    if (!nameMintedBy(name, this)) throw new PolicyDeniedError(deny('unverified', "the name to resolve was not checked by this scope's policy"));
    if (!(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
    signal.throwIfAborted();
    return this.#answers(name.name, family, signal);
  }

  async #answers(name: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    const literal = canonicalAddress(name);
    if (literal.ok) return literalAnswer(literal, family);
    return keepAnswers(await this.#base.lookup(name, family, signal), family);
  }

  /** `network.lookup` has no protocol: allowed when some protocol's lookup grant covers the name. */
  async lookupAnyProtocol(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    signal.throwIfAborted();
    const h = canonicalHost(host);
    if (h.ok && h.kind !== 'name') return literalAnswer(h, family);
    if (!h.ok) throw new PolicyDeniedError(deny('invalid-host', h.reason));
    let decision: PolicyDecision | undefined;
    for (const protocol of POLICY_PROTOCOLS) {
      decision = await this.#decide(Object.freeze({ use: 'lookup', protocol, host: h.host }));
      if (decision.allow) break;
    }
    if (!decision!.allow) throw new PolicyDeniedError(decision!);
    return this.#answers(h.host, family, signal);
  }

  /** Remember a granted name (bounded: a guest that asks for many names only evicts its own entries). */
  #grant(key: string): void {
    if (this.#granted.size >= 1024) this.#granted.clear();
    this.#granted.add(key);
  }

  lease(kind: 'connection' | 'listener', _target?: CheckedTarget): Lease {
    if (kind !== 'connection' && kind !== 'listener') throw new TypeError("lease kind must be 'connection' or 'listener'");
    const limit = kind === 'connection' ? this.#limits.connections : this.#limits.listeners;
    if (this.#held[kind] >= limit) {
      throw new QuotaExceededError(`${kind}s`, `tenant ${this.tenant} already holds ${this.#held[kind]} ${kind}s (limit ${limit})`);
    }
    this.#held[kind]++;
    return new CountedLease(this.#held, kind);
  }
}

function wellFormed(d: unknown): PolicyDecision {
  try {
    if (typeof d !== 'object' || d === null) throw new TypeError('policy returned a malformed decision');
    const allow = ownField(d, 'allow', 'decision');
    if (typeof allow !== 'boolean') throw new TypeError('policy returned a malformed decision');
    const rule = ownField(d, 'rule', 'decision');
    const reason = ownField(d, 'reason', 'decision');
    const r = typeof rule === 'string' ? rule : null;
    if (allow) return typeof reason === 'string' ? { allow, rule: r, reason } : { allow, rule: r };
    const code = ownField(d, 'code', 'decision');
    return { allow, code: typeof code === 'string' ? (code as Denial['code']) : 'denied', reason: typeof reason === 'string' ? reason : 'denied by the policy', rule: r };
  } catch (err) {
    return policyError(err); // even an `allow` getter that throws
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

  /** True once given back. */
  get released(): boolean {
    return this.#released;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#held[this.#kind]--;
  }
}

Object.freeze(CountedLease.prototype);

function sameRequest(a: PolicyRequest, b: PolicyRequest): boolean {
  return a.address === b.address && a.port === b.port && a.protocol === b.protocol && a.use === b.use && a.host === b.host && a.url === b.url;
}

/** Make a tenant scope. Hosts call this (or `Host.tenant`); guests only ever receive the result. */
export function createScope(options: ScopeOptions): NetworkScope {
  return new BasicScope(options, MAKE_SCOPE);
}
