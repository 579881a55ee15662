/**
 * A tenant scope: the capability handle a {@link Host} gives out for one
 * tenant (like the data in a wasmtime Store). Its guard decides every
 * request with the tenant's current policy revision plus the scope's
 * verified claims; its network refuses any target this scope did not mint;
 * its leases count against the tenant's quotas. Nothing a caller passes (a
 * request, an endpoint, a URL, a `tenant` field) can name another tenant.
 *
 * Order of a decision: canonicalise (a malformed request is denied, even in
 * audit mode) → compiled rules and claims grants (deny wins) → the tenant's
 * custom rule, if any, unless a deny rule already matched (its answer
 * replaces the verdict; undefined keeps it; throwing or timing out denies
 * with `policy-error`) → audit mode turns a denial into an allow → record.
 *
 * @example
 * const scope = await host.tenant('acme');
 * const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 * const channel = await scope.network.connect(driver, { ...attempt, target });
 */
import type { Clock } from '../clock.js';
import type { ByteMeter } from '../driver.js';
import { PolicyDeniedError } from '../errors.js';
import type { Network, NetworkScope } from '../network.js';
import { keepAnswers, LITERAL_LOOKUP, literalAnswer } from './answers.js';
import { canonicalAddress, canonicalHost, dialString, knownAddress, knownHost } from './canonical.js';
import { answered, brandScope, CheckedNetwork, mintedBy, mintName, mintTarget, type AdmittingScope, type WireMeter } from './admission.js';
import type { VerifiedClaims } from './claims.js';
import type { CompiledPolicy, CustomRequest } from './compile.js';
import type { AuthorizeRequest, CheckedName, CheckedTarget, DecisionRecord, PolicyGuard, ResolvedAddress } from './contract.js';
import { canonicalRequest, evaluate, type CanonicalRequest, type Rejection } from './decide.js';
import { DecisionMemo } from './memo.js';
import { emitRecord, nextRecordId, wantsRecords } from './records.js';
import { snapshotAuthorize, snapshotRequest } from './requests.js';
import type { TenantLease, TenantQuota } from './quota.js';
import { attachRacingCache, type RacingCache } from '../selection/racing-cache.js';
import { POLICY_PROTOCOLS, type DenyCode, type PolicyDecision, type PolicyProtocol, type PolicyRequest } from './types.js';

/** What a scope needs from its host (internal wiring, not public API). */
export interface HostCore {
  entry(tenant: string): { readonly revision: number; readonly policy: CompiledPolicy } | undefined;
  readonly network: Network;
  readonly onDecision: ((r: DecisionRecord) => void) | undefined;
  /** Wall clock, ms since the epoch. */
  now(): number;
  readonly clock: Clock;
  /** Seconds of skew accepted on claims expiry. */
  readonly clockTolerance: number;
  quota(tenant: string): TenantQuota;
  /** The tenant's racing cache, shared by every scope of that tenant and by no other tenant. */
  racingCache(tenant: string): RacingCache | undefined;
}

type Denial = PolicyDecision & { allow: false };
interface Outcome {
  readonly decision: PolicyDecision;
  readonly request: CanonicalRequest | undefined;
  readonly revision: number;
}

/** Decisions a scope remembers (memo.ts): a default selection's lookup grants and candidates, with room to spare. */
const MEMO_SLOTS = 8;

const deny = (code: DenyCode, reason: string, rule: string | null = null): Denial => ({ allow: false, code, reason, rule });
const errorText = (err: unknown) => (err as Error)?.message ?? String(err);

function checkCustom(d: unknown): PolicyDecision {
  const o = d as PolicyDecision;
  if (typeof o !== 'object' || o === null || typeof o.allow !== 'boolean') throw new TypeError('custom rule returned a malformed decision');
  if (o.allow) return { allow: true, rule: typeof o.rule === 'string' ? o.rule : 'custom', reason: typeof o.reason === 'string' ? o.reason : undefined };
  return deny(typeof o.code === 'string' ? o.code : 'denied', typeof o.reason === 'string' ? o.reason : 'denied by the custom rule', typeof o.rule === 'string' ? o.rule : 'custom');
}

/** One family's answers under strict answers, or why the family failed. */
type FamilyAnswers = { readonly answers: ResolvedAddress[] } | { readonly error: unknown };
/** Both families' answers of a strict name (every address allowed, once decided). */
interface StrictAnswers {
  readonly v4: FamilyAnswers;
  readonly v6: FamilyAnswers;
}
/** A name resolved under strict answers: both families queried once, and the verdict on them with the revision that gave it. */
interface StrictName {
  readonly answers: Promise<StrictAnswers>;
  verdict: { readonly revision: number; readonly answers: Promise<StrictAnswers> } | undefined;
}

/** Reloads one resolve follows before it gives up (a host that reloads without pause must not hold a selection forever). */
const MAX_RELOADS_PER_RESOLVE = 8;

/** What makes a tenant scope: only this module holds it, so `new scope.constructor(...)` is a TypeError. */
const MAKE_SCOPE = Symbol('tenant scope');

/** @internal The scope Host.tenant() gives out for `tenant` (the only way to make one). */
export function tenantScope(core: HostCore, tenant: string, claims: VerifiedClaims | undefined): TenantScope {
  return new TenantScope(core, tenant, claims, MAKE_SCOPE);
}

/** The scope a {@link Host} gives out for one tenant (see the module comment). */
export class TenantScope implements NetworkScope, PolicyGuard, AdmittingScope {
  readonly tenant: string;
  readonly network: Network;
  /** The verified claims this scope was made with, if any. */
  readonly claims: VerifiedClaims | undefined;
  /** @internal The tenant's sent-bytes budget, charged by the drivers its network admits (the same counters as its leases). */
  readonly meter: ByteMeter;
  readonly #core: HostCore;
  readonly #names = new WeakMap<object, number>();
  /**
   * The last few self-contained decisions (memo.ts) and the targets minted from them: a selection asks one per
   * stack and address (and a lookup grant per protocol), and the next selection to that endpoint asks them again.
   */
  readonly #memos: DecisionMemo[] = [];
  /** The slot the next new decision overwrites once every slot is used. */
  #memoNext = 0;
  /** The memo entry of the last synchronous answer, when #fromMemo. */
  #memo: DecisionMemo | undefined;
  /** `protocol name` → the revision under which this scope granted the lookup of that name (see #presentable). */
  readonly #granted = new Map<string, number>();
  /** Names resolved under strict answers: their answers and the latest verdict on them (see #strictResolve). */
  readonly #strict = new WeakMap<CheckedName, StrictName>();
  /** A name's lookup grant decided again under a newer revision than it was minted under (one decision per revision). */
  readonly #regranted = new WeakMap<CheckedName, { readonly revision: number; readonly decision: Promise<PolicyDecision> }>();
  /** Set by #run: its last synchronous answer is the memo's (repeated or just stored). */
  #fromMemo = false;

  /**
   * @internal Made by Host.tenant() only: a guest holding its scope reaches this constructor through
   * `scope.constructor`, and a scope of a core it wrote (its own policy, no quota) would mint real targets.
   */
  constructor(core: HostCore, tenant: string, claims: VerifiedClaims | undefined, key: symbol) {
    if (key !== MAKE_SCOPE) throw new TypeError('a tenant scope is made by a Host only (host.tenant())');
    this.#core = core;
    this.tenant = tenant;
    this.claims = claims;
    this.meter = Object.freeze({
      sent: (bytes: number) => core.quota(tenant).charge('sent', bytes),
      // Counted, never refused: the bytes are gone; a budget it exceeds refuses the next send (or the handshake, by `check`).
      sentAfter: (bytes: number) => {
        try {
          core.quota(tenant).charge('sent', bytes, 'after');
        } catch {
          /* counted */
        }
      },
      received: (bytes: number) => core.quota(tenant).charge('received', bytes, 'after'),
      check: () => core.quota(tenant).charge('sent', 0, 'check'),
    } satisfies WireMeter);
    this.network = new CheckedNetwork(core.network, this);
    attachRacingCache(this, core.racingCache(tenant));
    brandScope(this);
  }

  /** This scope as its policy guard. */
  get guard(): PolicyGuard {
    return this;
  }

  /** The tenant's current policy revision (0 when it has none). */
  get revision(): number {
    return this.#core.entry(this.tenant)?.revision ?? 0;
  }

  /** Decide and record; never throws (a failing policy denies with `policy-error`). */
  decide(request: PolicyRequest): Promise<PolicyDecision> {
    try {
      const r = this.#run(snapshotRequest(request), false, true);
      return 'then' in r ? r.then((o) => o.decision) : Promise.resolve(r.decision);
    } catch (err) {
      return Promise.resolve(deny('policy-error', `policy failed: ${errorText(err)}`));
    }
  }

  /** Decide synchronously (a check that cannot wait); an async custom rule denies with `policy-error`. */
  decideSync(request: PolicyRequest): PolicyDecision {
    try {
      return (this.#run(snapshotRequest(request), true, true) as Outcome).decision;
    } catch (err) {
      return deny('policy-error', `policy failed: ${errorText(err)}`);
    }
  }

  authorize(request: AuthorizeRequest): Promise<CheckedTarget> {
    return answered(() => this.authorizeNow(request));
  }

  /** @internal `authorize`, answered at once when the policy answers at once (throws PolicyDeniedError then): see admission.ts `authorizeNow`. */
  authorizeNow(request: AuthorizeRequest): CheckedTarget | Promise<CheckedTarget> {
    const req = snapshotAuthorize(request);
    const named = this.#presentable(req, false);
    if (named !== undefined) {
      if (!('then' in named)) throw new PolicyDeniedError(named);
      return named.then((d) => {
        if (d !== undefined) throw new PolicyDeniedError(d);
        return this.authorize(req as AuthorizeRequest);
      });
    }
    // Synchronous policies (the common case) mint without waiting a turn: this is on every candidate's path.
    const r = this.#run(req, false, true);
    if ('then' in r) return r.then((o) => this.#mintFrom(o));
    return this.#target(r);
  }

  authorizeSync(request: AuthorizeRequest): CheckedTarget {
    const req = snapshotAuthorize(request);
    const named = this.#presentable(req, true);
    if (named !== undefined) throw new PolicyDeniedError('then' in named ? deny('policy-error', 'the name grant needs an asynchronous decision') : named);
    return this.#target(this.#run(req, true, true) as Outcome);
  }

  /**
   * A target's name is what it presents (TLS SNI, the certificate check, HTTP Host): it must be a name this
   * tenant may reach, i.e. one it may look up for the protocol (decided as a lookup, no query sent). Names
   * this scope already granted under the current revision cost a map probe. Undefined: fine (or no name, or
   * not a name at all: the main decision refuses a malformed one).
   */
  #presentable(req: PolicyRequest, sync: boolean): Denial | Promise<Denial | undefined> | undefined {
    const host = req.host;
    if (typeof host !== 'string') return undefined;
    const h = knownHost(host);
    if (!h.ok || h.kind !== 'name') return undefined;
    const key = `${String(req.protocol)} ${h.host}`;
    if (this.#granted.get(key) === this.revision) return undefined;
    const verdict = (o: Outcome): Denial | undefined => {
      if (o.decision.allow) {
        this.#grant(key, o.revision);
        return undefined;
      }
      return deny(o.decision.code, `the name ${h.host} a target would present (SNI, certificate check, Host) is not one this tenant may reach: ${o.decision.reason}`, o.decision.rule);
    };
    const r = this.#run(Object.freeze({ use: 'lookup', protocol: req.protocol, host: h.host }), sync, true);
    return 'then' in r ? r.then(verdict) : verdict(r);
  }

  /** Remember a granted name (bounded: a guest that asks for many names only evicts its own entries). */
  #grant(key: string, revision: number): void {
    if (this.#granted.size >= 1024) this.#granted.clear();
    this.#granted.set(key, revision);
  }

  /** The target of a synchronous outcome: the memo's when the answer was the memo's (targets are immutable). */
  #target(r: Outcome): CheckedTarget {
    if (this.#fromMemo) return (this.#memo!.target ??= this.#mintFrom(r));
    return this.#mintFrom(r);
  }

  /** The CheckedTarget for an allowed outcome; a denial throws PolicyDeniedError. */
  #mintFrom(o: Outcome): CheckedTarget {
    if (!o.decision.allow) throw new PolicyDeniedError(o.decision);
    const c = o.request!;
    return mintTarget(this, this.tenant, { use: c.use, protocol: c.protocol, address: dialString(c.address!), port: c.port!, hostName: c.name }, o.decision, o.revision);
  }

  async lookup(host: string, family: 4 | 6, protocol: PolicyProtocol, signal: AbortSignal): Promise<ResolvedAddress[]> {
    if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, got ${String(family)}`);
    if (!(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
    signal.throwIfAborted();
    return this.resolve(await this.authorizeLookup(protocol, host), family, signal);
  }

  authorizeLookup(protocol: PolicyProtocol, host: string, port?: number): Promise<CheckedName> {
    return answered(() => this.authorizeLookupNow(protocol, host, port));
  }

  /** @internal `authorizeLookup`, answered at once when the policy answers at once (throws PolicyDeniedError then): see admission.ts `authorizeLookupNow`. */
  authorizeLookupNow(protocol: PolicyProtocol, host: string, port?: number): CheckedName | Promise<CheckedName> {
    const p = typeof port === 'number' ? port : undefined;
    const h = typeof host === 'string' ? knownHost(host) : canonicalHost(host);
    if (h.ok && h.kind !== 'name') return this.#mintName(protocol, dialString(h), p, LITERAL_LOOKUP, this.revision);
    const r = this.#run(Object.freeze({ use: 'lookup', protocol, host }), false, true);
    return 'then' in r ? r.then((o) => this.#lookupGranted(o, p)) : this.#lookupGranted(r, p);
  }

  /** The CheckedName for an allowed lookup outcome (the name remembered as granted); a denial throws PolicyDeniedError. */
  #lookupGranted(o: Outcome, port: number | undefined): CheckedName {
    if (!o.decision.allow) throw new PolicyDeniedError(o.decision);
    this.#grant(`${o.request!.protocol} ${o.request!.name!}`, o.revision);
    return this.#mintName(o.request!.protocol, o.request!.name!, port, o.decision, o.revision);
  }

  /** Strict answers for a name granted by `decision`: the tenant's `answers strict`, or a rule marked ` strict`. */
  #strictFor(decision: PolicyDecision): boolean {
    const strict = this.#core.entry(this.tenant)?.policy.strictAnswers;
    if (strict === undefined || !decision.allow) return false;
    return strict === true || (decision.rule !== null && strict.has(decision.rule));
  }

  /**
   * Strict answers: both families are resolved (once per checked name) and every answer is decided as a
   * connect to it by that name, for the name's protocol and port (any port when the name has none), under
   * `revision` (the verdict of an older revision is not reused). One forbidden address refuses the name:
   * its decision is recorded and every resolve of the name under that revision rejects.
   */
  async #strictResolve(name: CheckedName, family: 4 | 6, signal: AbortSignal, revision: number): Promise<ResolvedAddress[]> {
    let s = this.#strict.get(name);
    if (s === undefined) {
      s = { answers: this.#bothFamilies(name.name, signal), verdict: undefined };
      this.#strict.set(name, s);
    }
    if (s.verdict?.revision !== revision) {
      const answers = s.answers.then((all) => this.#decideAnswers(name, all));
      answers.catch(() => {}); // observed by every caller below
      s.verdict = { revision, answers };
    }
    const answers = await s.verdict.answers;
    const mine = family === 6 ? answers.v6 : answers.v4;
    if ('error' in mine) throw mine.error;
    return mine.answers;
  }

  async #bothFamilies(name: string, signal: AbortSignal): Promise<StrictAnswers> {
    const [v6, v4] = (await Promise.allSettled([this.#resolve(name, 6, signal), this.#resolve(name, 4, signal)])).map((r) =>
      r.status === 'fulfilled' ? { answers: r.value } : { error: r.reason as unknown },
    ) as [FamilyAnswers, FamilyAnswers];
    return { v4, v6 };
  }

  async #decideAnswers(name: CheckedName, { v4, v6 }: StrictAnswers): Promise<StrictAnswers> {
    for (const a of [...('answers' in v6 ? v6.answers : []), ...('answers' in v4 ? v4.answers : [])]) {
      const request = Object.freeze({ use: 'connect' as const, protocol: name.protocol, host: name.name, address: a.address, port: name.port });
      const o = await this.#run(request, false, false);
      if (o.decision.allow) continue;
      const recorded = (await this.#run(request, false, true)).decision;
      const d = recorded.allow ? o.decision : recorded;
      throw new PolicyDeniedError(
        deny(d.code, `strict answers: ${name.name} resolved to ${a.address}, which this tenant may not connect to (${d.reason}), so every answer of ${name.name} is refused`, d.rule),
      );
    }
    return { v4, v6 };
  }

  /**
   * Resolve a checked name. Every decision on the way is made under the revision current when it is made:
   * a reload since the name was checked decides its lookup grant again, and whether its answers are held
   * to strict answers is the current revision's call. A reload while the query is out (or while strict
   * answers are decided) decides it all again, on the same answers, under the newest revision, so what
   * this returns was allowed by the revision in force when it returns. The targets minted from these
   * answers carry the revision of their own decision; one dialled under a later revision is decided again
   * at admission, so an address the newest revision forbids is never dialled.
   */
  resolve(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    const minted = this.#names.get(name);
    const revision = this.revision;
    // The usual case, a name granted under the current revision and not held to strict answers: the query's
    // answer is handed on in the same turn it is kept, and only a reload while it was out decides it all again.
    if ((family === 4 || family === 6) && minted === revision && !signal.aborted && !this.#strictFor(name.decision) && !knownAddress(name.name).ok) {
      let query: Promise<ResolvedAddress[]>;
      try {
        query = Promise.resolve(this.#core.network.lookup(name.name, family, signal));
      } catch (err) {
        return Promise.reject(err);
      }
      return query.then((answers) => {
        const kept = keepAnswers(answers, family);
        return this.revision === revision ? kept : this.#resolveChecked(name, family, signal, minted, Promise.resolve(kept));
      });
    }
    return this.#resolveSlow(name, family, signal);
  }

  async #resolveSlow(name: CheckedName, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, got ${String(family)}`);
    const minted = this.#names.get(name);
    if (minted === undefined) throw new PolicyDeniedError(deny('unverified', "the name to resolve was not checked by this scope's policy"));
    signal.throwIfAborted();
    const literal = canonicalAddress(name.name);
    if (literal.ok) return literalAnswer(literal, family);
    return this.#resolveChecked(name, family, signal, minted, undefined);
  }

  /** The resolution loop: the grant and strictness decided under the current revision, again after each reload; `plain` is the one query of a name without strict answers. */
  async #resolveChecked(name: CheckedName, family: 4 | 6, signal: AbortSignal, minted: number, plain: Promise<ResolvedAddress[]> | undefined): Promise<ResolvedAddress[]> {
    for (let reloads = 0; ; reloads++) {
      const revision = this.revision;
      let answers: ResolvedAddress[];
      try {
        // Granted under this revision (the usual case): no promise to wait for.
        const grant = minted === revision ? name.decision : await this.#grantUnder(name, minted, revision);
        if (this.#strictFor(grant)) answers = await this.#strictResolve(name, family, signal, revision);
        else answers = await (plain ??= this.#resolve(name.name, family, signal));
      } catch (err) {
        // A denial by a revision that is no longer current is not the last word.
        if (this.revision === revision || !(err instanceof PolicyDeniedError) || reloads >= MAX_RELOADS_PER_RESOLVE) throw err;
        continue;
      }
      if (this.revision === revision) return answers;
      if (reloads >= MAX_RELOADS_PER_RESOLVE) {
        throw new PolicyDeniedError(deny('policy-error', `the policy was reloaded ${reloads + 1} times while ${name.name} was resolved`));
      }
    }
  }

  /** The name's lookup grant under `revision`: as minted, or decided again (and recorded) after a reload; a denial throws. */
  async #grantUnder(name: CheckedName, minted: number, revision: number): Promise<PolicyDecision> {
    if (minted === revision) return name.decision;
    let again = this.#regranted.get(name);
    if (again?.revision !== revision) {
      again = { revision, decision: Promise.resolve(this.recheck({ use: 'lookup', protocol: name.protocol, host: name.name })) };
      this.#regranted.set(name, again);
    }
    const d = await again.decision;
    if (!d.allow) throw new PolicyDeniedError(d);
    return d;
  }

  #mintName(protocol: PolicyProtocol, name: string, port: number | undefined, decision: PolicyDecision & { allow: true }, revision: number): CheckedName {
    const n = mintName(this, this.tenant, protocol, name, port, decision);
    this.#names.set(n, revision);
    return n;
  }

  /** Resolve through the host's network and keep only well-formed answers of the asked family. */
  #resolve(name: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    try {
      return Promise.resolve(this.#core.network.lookup(name, family, signal)).then((answers) => keepAnswers(answers, family));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** `network.lookup` has no protocol: allowed when some protocol's lookup grant covers the name. */
  async lookupAnyProtocol(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    signal.throwIfAborted();
    const h = canonicalHost(host);
    if (h.ok && h.kind !== 'name') return literalAnswer(h, family);
    let last: Outcome | undefined;
    for (const protocol of POLICY_PROTOCOLS) {
      last = await this.#run(Object.freeze({ use: 'lookup', protocol, host }), false, false);
      if (last.decision.allow || last.request === undefined) break;
    }
    const o = await this.#run(Object.freeze({ use: 'lookup', protocol: last!.request?.protocol ?? 'tcp', host }), false, true);
    if (!o.decision.allow) throw new PolicyDeniedError(o.decision);
    return this.#resolve(o.request!.name!, family, signal);
  }

  /** A unit of the tenant's quota; a promise only when the host's quota store must be asked (a fleet). */
  lease(kind: 'connection' | 'listener', target?: CheckedTarget): TenantLease | Promise<TenantLease> {
    if (target !== undefined && !this.owns(target)) throw new TypeError('target was not minted by this scope');
    return this.#core.quota(this.tenant).acquire(kind, target, this);
  }

  /** True when this scope's guard minted `target`. */
  owns(target: unknown): target is CheckedTarget {
    return mintedBy(target, this);
  }

  /**
   * @internal Re-decide what a target or a lease was allowed for (a reload
   * happened since). Records the decision.
   */
  recheck(req: PolicyRequest): PolicyDecision | Promise<PolicyDecision> {
    const r = this.#run(req, false, true);
    if ('then' in r) return r.then((o) => o.decision);
    return r.decision;
  }

  /** @internal Revision a target was minted under, if this scope minted it. */
  mintedRevision(target: CheckedTarget): number | undefined {
    return mintedBy(target, this) ? target.revision : undefined;
  }

  /** A memo entry to store a new decision in: a new one up to MEMO_SLOTS, then the oldest, in turn. */
  #memoSlot(): DecisionMemo {
    if (this.#memos.length < MEMO_SLOTS) {
      const m = new DecisionMemo();
      this.#memos.push(m);
      return m;
    }
    const m = this.#memos[this.#memoNext]!;
    this.#memoNext = (this.#memoNext + 1) % MEMO_SLOTS;
    return m;
  }

  #run(request: PolicyRequest, sync: boolean, record: boolean): Outcome | Promise<Outcome> {
    this.#fromMemo = false;
    const entry = this.#core.entry(this.tenant);
    const policy = entry?.policy;
    const revision = entry?.revision ?? 0;
    if (typeof request !== 'object' || request === null) {
      const c = canonicalRequest(request);
      return this.#finish(request, c, deny((c as Rejection).code, (c as Rejection).reason), revision, policy, record);
    }
    // A snapshot (requests.ts) or an object of ours: reading its fields runs no caller code.
    const use = request.use;
    const protocol = request.protocol;
    const host = request.host;
    const address = request.address;
    const port = request.port;
    const url = request.url;
    for (const m of this.#memos) {
      if (!m.matches(policy, revision, use, protocol, host, address, port, url)) continue;
      // The same question under the same revision: the same answer, still recorded.
      if (record && wantsRecords(this.#core.onDecision)) this.#record(request, m.request!, m.verdict!, revision, policy);
      this.#memo = m;
      this.#fromMemo = true;
      return { decision: m.decision(), request: m.request, revision };
    }
    // Our own object (a snapshot, or one this module made), so canonicalRequest reads the same values again.
    const c = canonicalRequest(request);
    if (!c.ok) return this.#finish(request, c, deny(c.code, c.reason), revision, policy, record);
    const claims = this.claims;
    const grants = claims !== undefined && this.#core.now() < claims.expiresAt + this.#core.clockTolerance * 1000 ? claims.rules : undefined;
    const v = evaluate([policy?.rules, grants], c, policy !== undefined);
    const builtin: PolicyDecision = v.allow ? { allow: true, rule: v.rule!.text } : deny(v.code!, v.reason, v.rule?.text ?? null);
    const custom = policy?.custom;
    if (custom === undefined || v.code === 'denied') {
      const outcome = this.#finish(request, c, builtin, revision, policy, record);
      // Only decisions that depend on nothing else are remembered: no custom rule, no claims (they expire).
      if (custom === undefined && claims === undefined) {
        const m = this.#memoSlot();
        m.store(policy, revision, use, protocol, host, address, port, url, c, builtin, outcome.decision);
        this.#memo = m;
        this.#fromMemo = true;
      }
      return outcome;
    }
    const view: CustomRequest = Object.freeze({
      tenant: this.tenant, use: c.use, protocol: c.protocol, host: c.host, name: c.name,
      address: c.address?.host, addressClass: c.cls, port: c.port, url: c.url, revision, builtin,
    });
    let answer: ReturnType<typeof custom>;
    try {
      answer = custom(view);
    } catch (err) {
      return this.#finish(request, c, deny('policy-error', `custom rule threw: ${errorText(err)}`), revision, policy, record);
    }
    if (answer === undefined || typeof (answer as Promise<unknown>).then !== 'function') {
      let d: PolicyDecision;
      try {
        d = answer === undefined ? builtin : checkCustom(answer);
      } catch (err) {
        d = deny('policy-error', errorText(err));
      }
      return this.#finish(request, c, d, revision, policy, record);
    }
    const pending = answer as Promise<PolicyDecision | undefined>;
    if (sync) {
      pending.then(undefined, () => {});
      return this.#finish(request, c, deny('policy-error', 'the custom rule answered asynchronously; a synchronous decision (decideSync) needs a synchronous rule'), revision, policy, record);
    }
    const clock = this.#core.clock;
    const ms = policy!.customTimeoutMs;
    return new Promise<PolicyDecision>((resolve) => {
      const timer = clock.setTimeout(() => resolve(deny('policy-error', `the custom rule did not answer within ${ms} ms`)), ms);
      pending.then(
        (a) => {
          clock.clearTimeout(timer);
          try {
            resolve(a === undefined ? builtin : checkCustom(a));
          } catch (err) {
            resolve(deny('policy-error', errorText(err)));
          }
        },
        (err) => {
          clock.clearTimeout(timer);
          resolve(deny('policy-error', `custom rule failed: ${errorText(err)}`));
        },
      );
    }).then((d) => this.#finish(request, c, d, revision, policy, record));
  }

  #finish(
    request: PolicyRequest, c: CanonicalRequest | Rejection, verdict: PolicyDecision,
    revision: number, policy: CompiledPolicy | undefined, record: boolean,
  ): Outcome {
    const mode = policy?.mode ?? 'enforce';
    if (record && wantsRecords(this.#core.onDecision)) this.#record(request, c, verdict, revision, policy);
    let decision = verdict;
    // Audit lets policy denials through, never malformed requests (there is nothing sound to let through).
    if (!verdict.allow && mode === 'audit' && c.ok) {
      decision = Object.freeze({ allow: true, rule: verdict.rule, reason: `audit: would deny (${verdict.code}): ${verdict.reason}` });
    }
    return { decision, request: c.ok ? c : undefined, revision };
  }

  /** Publish the decision record (callers first check wantsRecords). */
  #record(request: PolicyRequest, c: CanonicalRequest | Rejection, verdict: PolicyDecision, revision: number, policy: CompiledPolicy | undefined): void {
    const ok = c.ok ? c : undefined;
    emitRecord(
      {
        id: nextRecordId(), tenant: this.tenant, request, decision: verdict, mode: policy?.mode ?? 'enforce', time: this.#core.now(),
        use: c.use, protocol: c.protocol, host: c.host,
        canonicalHost: ok ? (ok.name ?? ok.address?.host) : undefined,
        address: ok?.address?.host, port: c.port,
        rule: verdict.rule, allow: verdict.allow, code: verdict.allow ? undefined : verdict.code,
        reason: verdict.reason ?? '', revision,
      },
      this.#core.onDecision,
    );
  }
}
