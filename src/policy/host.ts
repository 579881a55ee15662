/**
 * The Host: the multi-tenant policy engine a host implementer runs, many
 * tenants in one process. It holds each tenant's compiled policy in an
 * immutable, versioned snapshot; `setPolicy` / a watched policy file compile
 * first and then swap the snapshot whole (a policy that does not parse never
 * replaces the old one). New candidates use the new revision at once; live
 * connections the new revision forbids are revoked (`onRevoke: 'close'`,
 * the default) or kept (`'keep'`).
 *
 * `host.tenant(id, { claims })` is the only way to a tenant: it returns a
 * {@link TenantScope} (a capability handle) after verifying the claims.
 *
 * @example
 * const host = new Host({ onDecision: (r) => log(r) });
 * host.setPolicy('acme', 'allow tcp://api.example.com:443\nlimit connections 10');
 * host.setPolicy('globex', { allow: ['udp://@loopback:5353'], mode: 'audit' });
 * const acme = await host.tenant('acme');
 * await using conn = await new Preconnection({ remote, scope: acme }).initiate();
 */
import { readFile, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { globalTimersClock, type Clock } from '../clock.js';
import { PolicyDeniedError } from '../errors.js';
import { SystemNetwork, type Network, type Resolver } from '../network.js';
import { checkObject, optionsBag, ownField } from '../own.js';
import type { DecisionRecord } from './contract.js';
import { ClaimsError, prepareIssuers, verifyClaims, type PreparedIssuer, type TrustedIssuer } from './claims.js';
import { compilePolicy, type CompiledPolicy, type CustomRule } from './compile.js';
import { TenantQuota, type TenantUsage } from './quota.js';
import { racingCacheFrom, type RacingCache, type RacingCacheOptions } from '../selection/racing-cache.js';
import { tenantScope, type HostCore, type TenantScope } from './scope.js';
import type { QuotaStore } from './store.js';
import { isPolicySpec, parsePolicy, parsePolicyFile, type PolicyJson, type PolicyLimits, type PolicySpec } from './source.js';
import type { PolicyDecision } from './types.js';

/** The limits of a tenant without a policy (one object, not one per charged datagram). */
const NO_LIMITS: PolicyLimits = Object.freeze({});

export type RevokeMode = 'close' | 'keep';

export interface HostOptions {
  /** How names are resolved (default: the system resolver). Ignored when `network` is given. */
  readonly resolver?: Resolver | undefined;
  /** The host's own Network (e.g. a DelegatingNetwork subclass); every scope wraps it with policy checks. */
  readonly network?: Network | undefined;
  /** Every decision record (also published on `taps:policy:decision`). Exceptions are swallowed. */
  readonly onDecision?: ((record: DecisionRecord) => void) | undefined;
  /** Issuers whose signed claims may grant tenants extra rules. */
  readonly trustedIssuers?: readonly TrustedIssuer[] | undefined;
  /** Default for reloads: close live connections the new revision forbids (default) or keep them. */
  readonly onRevoke?: RevokeMode | undefined;
  /** Told about every watched-file reload, successful or not. */
  readonly onReload?: ((event: ReloadEvent) => void) | undefined;
  /** Wall clock in ms since the epoch (records, byte windows, claims). Default `Date.now`. */
  readonly now?: (() => number) | undefined;
  /** Timers (custom-rule timeouts, reload debounce). Default: the global timers. */
  readonly clock?: Clock | undefined;
  /**
   * Where tenant quotas are kept (default: in this process). A store shares
   * them beyond it, e.g. `taps-node/fleet` across hosts on one Redis.
   */
  readonly quotaStore?: QuotaStore | undefined;
  /**
   * Each tenant's racing cache (selection/racing-cache.ts): options for every tenant's, or `false` for
   * none. Default: one per tenant with the default options. Never shared between tenants.
   */
  readonly racingCache?: RacingCacheOptions | false | undefined;
  /** Seconds of clock skew accepted on claims `exp`/`nbf` (default 5). */
  readonly clockTolerance?: number | undefined;
  /** Milliseconds a watched file must be quiet before it is reloaded (default 50). */
  readonly reloadDebounceMs?: number | undefined;
}

export interface ReloadEvent {
  readonly path: string;
  /** The new host revision, when the reload succeeded. */
  readonly revision?: number;
  readonly tenants?: readonly string[];
  /** Why the file was not applied; the previous revision stays in force. */
  readonly error?: Error;
}

/** A policy as text, JSON, a parsed spec, or JSON with a custom rule. */
export type PolicySource = string | PolicyJson | PolicySpec | (PolicyJson & { readonly custom?: CustomRule; readonly customTimeoutMs?: number });

export interface SetPolicyOptions {
  readonly custom?: CustomRule | undefined;
  readonly customTimeoutMs?: number | undefined;
  readonly onRevoke?: RevokeMode | undefined;
}

interface TenantEntry {
  readonly revision: number;
  readonly policy: CompiledPolicy;
}

interface Snapshot {
  readonly revision: number;
  readonly tenants: ReadonlyMap<string, TenantEntry>;
}

interface WatchedFile {
  tenants: Set<string>;
  watcher: FSWatcher | undefined;
  timer: unknown;
  chain: Promise<void>;
  onRevoke: RevokeMode | undefined;
}

const TENANT_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

function checkTenant(id: unknown, what = 'tenant'): string {
  if (typeof id !== 'string' || !TENANT_ID.test(id)) throw new TypeError(`${what} must be a string of 1-128 characters from [A-Za-z0-9._:@-], got ${JSON.stringify(id)}`);
  return id;
}

const HOST_OPTIONS = [
  'resolver', 'network', 'onDecision', 'trustedIssuers', 'onRevoke', 'onReload', 'now', 'clock', 'quotaStore', 'clockTolerance', 'reloadDebounceMs', 'racingCache',
] as const;

/** The host's options, read once: own data properties only (src/own.ts). */
function hostOptions(init: unknown): HostOptions {
  const o = checkObject(init, 'options');
  const out: Record<string, unknown> = {};
  for (const k of HOST_OPTIONS) out[k] = ownField(o, k, 'options');
  return Object.freeze(out) as HostOptions;
}

function checkRevoke(v: unknown, what: string): RevokeMode | undefined {
  if (v !== undefined && v !== 'close' && v !== 'keep') throw new RangeError(`${what} must be 'close' or 'keep', got ${typeof v === 'string' ? JSON.stringify(v) : typeof v}`);
  return v as RevokeMode | undefined;
}

export class Host {
  readonly #network: Network;
  readonly #issuers: Map<string, PreparedIssuer>;
  readonly #options: HostOptions;
  readonly #now: () => number;
  readonly #quotas = new Map<string, TenantQuota>();
  /** Each tenant's racing cache, made at its first scope. */
  readonly #caches = new Map<string, RacingCache>();
  readonly #files = new Map<string, WatchedFile>();
  readonly #core: HostCore;
  #snap: Snapshot = Object.freeze({ revision: 0, tenants: new Map() });
  #closed = false;

  constructor(init: HostOptions = {}) {
    const options = hostOptions(init);
    if (options.onDecision !== undefined && typeof options.onDecision !== 'function') throw new TypeError('options.onDecision must be a function');
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('options.now must be a function');
    const tol = options.clockTolerance ?? 5;
    if (!(typeof tol === 'number' && tol >= 0 && Number.isFinite(tol))) throw new RangeError('options.clockTolerance must be a non-negative number of seconds');
    checkRevoke(options.onRevoke, 'options.onRevoke');
    const store = options.quotaStore;
    if (store !== undefined && (typeof store !== 'object' || store === null || typeof store.take !== 'function' || typeof store.give !== 'function' || typeof store.charge !== 'function')) {
      throw new TypeError('options.quotaStore must have take, give and charge methods');
    }
    racingCacheFrom(options.racingCache); // options checked now, not at the first tenant
    this.#options = options;
    this.#issuers = prepareIssuers(options.trustedIssuers);
    this.#network = options.network ?? new SystemNetwork(options.resolver);
    this.#now = options.now ?? Date.now;
    const self = this;
    this.#core = {
      entry: (tenant) => self.#snap.tenants.get(tenant),
      network: this.#network,
      onDecision: options.onDecision,
      now: this.#now,
      clock: options.clock ?? globalTimersClock,
      clockTolerance: tol,
      quota: (tenant) => self.#quota(tenant),
      racingCache: (tenant) => self.#racingCache(tenant),
    };
  }

  /** The host-wide revision: increases by one with every swap. */
  get revision(): number {
    return this.#snap.revision;
  }

  /** Tenants that currently have a policy. */
  tenants(): string[] {
    return [...this.#snap.tenants.keys()];
  }

  /** A tenant's current compiled policy and the revision that installed it. */
  policy(tenant: string): { readonly revision: number; readonly policy: CompiledPolicy } | undefined {
    return this.#snap.tenants.get(tenant);
  }

  /**
   * Install (or replace) one tenant's policy. Parses and compiles first; on
   * any error it throws (PolicyParseError) and the old revision stays.
   * Returns the new host revision.
   */
  setPolicy(tenant: string, policy: PolicySource, options: SetPolicyOptions = {}): number {
    checkTenant(tenant);
    // Own properties only: a field on a polluted Object.prototype is nobody's option (and never a custom rule).
    const o = optionsBag(options, 'options');
    const onRevoke = checkRevoke(ownField(o, 'onRevoke', 'options'), 'options.onRevoke');
    const obj = typeof policy === 'object' && policy !== null && !isPolicySpec(policy) ? policy : undefined;
    let spec: PolicySpec;
    if (isPolicySpec(policy)) spec = policy;
    else if (obj !== undefined) {
      const json: Record<string, unknown> = {};
      for (const k of Object.keys(obj)) if (k !== 'custom' && k !== 'customTimeoutMs') json[k] = ownField(obj, k, 'policy');
      spec = parsePolicy(json as PolicyJson, `tenant ${tenant}`);
    } else spec = parsePolicy(policy as string, `tenant ${tenant}`);
    const compiled = compilePolicy(spec, {
      custom: (ownField(o, 'custom', 'options') ?? (obj && ownField(obj, 'custom', 'policy'))) as CustomRule | undefined,
      customTimeoutMs: (ownField(o, 'customTimeoutMs', 'options') ?? (obj && ownField(obj, 'customTimeoutMs', 'policy'))) as number | undefined,
    });
    return this.#swap(new Map([[tenant, compiled]]), onRevoke);
  }

  /** Remove a tenant's policy: everything it asks is then denied (`no-policy`) and its live leases are revoked (unless 'keep'). */
  removeTenant(tenant: string, options: { onRevoke?: RevokeMode } = {}): boolean {
    checkTenant(tenant);
    const onRevoke = checkRevoke(ownField(optionsBag(options, 'options'), 'onRevoke', 'options'), 'options.onRevoke');
    if (!this.#snap.tenants.has(tenant)) return false;
    this.#caches.delete(tenant);
    this.#swap(new Map([[tenant, null]]), onRevoke);
    return true;
  }

  /**
   * Load a policy file with one section per tenant (text or JSON). With
   * `watch: true` the file is reloaded when it changes; a reload that fails
   * keeps the previous revision and is reported to `onReload`. Tenants that
   * disappear from the file lose their policy. Returns the new revision.
   */
  async loadPolicyFile(path: string, options: { watch?: boolean; onRevoke?: RevokeMode } = {}): Promise<number> {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError('path must be a non-empty string');
    if (this.#closed) throw new TypeError('this Host is closed');
    const full = resolvePath(path);
    const o = optionsBag(options, 'options');
    const onRevoke = checkRevoke(ownField(o, 'onRevoke', 'options'), 'options.onRevoke');
    const watchFile = ownField(o, 'watch', 'options') === true;
    let file = this.#files.get(full);
    if (!file) {
      file = { tenants: new Set(), watcher: undefined, timer: undefined, chain: Promise.resolve(), onRevoke };
      this.#files.set(full, file);
    }
    file.onRevoke = onRevoke;
    let revision: number;
    try {
      revision = await this.#applyFile(full, file);
    } catch (err) {
      if (file.tenants.size === 0 && file.watcher === undefined) this.#files.delete(full);
      throw err;
    }
    if (watchFile && file.watcher === undefined) this.#watch(full, file);
    return revision;
  }

  /**
   * The capability handle for one tenant. With `claims` (a compact JWT) the
   * token is verified first; a token that does not verify rejects with a
   * PolicyDeniedError whose decision code is `policy-error`.
   */
  async tenant(id: string, options: { claims?: string } = {}): Promise<TenantScope> {
    checkTenant(id, 'id');
    const token = ownField(checkObject(options, 'options'), 'claims', 'options');
    if (token === undefined) return tenantScope(this.#core, id, undefined);
    if (typeof token !== 'string') {
      throw new TypeError('options.claims must be a compact JWT string; a decoded payload is never trusted');
    }
    const fail = (reason: string) => new PolicyDeniedError({ allow: false, code: 'policy-error', reason, rule: null });
    if (this.#issuers.size === 0) throw fail('claims were given but the host trusts no issuer');
    try {
      const claims = await verifyClaims(token, this.#issuers, {
        tenant: id,
        now: new Date(this.#now()),
        clockTolerance: this.#core.clockTolerance,
      });
      return tenantScope(this.#core, id, claims);
    } catch (err) {
      if (err instanceof ClaimsError) throw fail(err.message);
      throw fail(`claims could not be verified: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /** Stop watching files. Scopes keep working with the last revision. */
  close(): void {
    this.#closed = true;
    for (const f of this.#files.values()) {
      f.watcher?.close();
      f.watcher = undefined;
      if (f.timer !== undefined) this.#core.clock.clearTimeout(f.timer);
      f.timer = undefined;
    }
  }

  /** `using`: the same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * A tenant's racing cache (what its last selections learned about each endpoint's stacks), to inspect or
   * `clear()`; undefined when the host was made with `racingCache: false`.
   */
  racingCache(tenant: string): RacingCache | undefined {
    return this.#racingCache(checkTenant(tenant));
  }

  /**
   * What a tenant holds and has spent now, in this process: the connection and listener units held (every
   * socket the tenant's scopes opened, the library's or a driver's called directly) and the bytes counted in
   * the current window of each byte budget (0 without that budget). With a quota store, the store decides
   * the limits and these local counts are what this process took.
   */
  usage(tenant: string): TenantUsage {
    return this.#quota(checkTenant(tenant)).usage();
  }

  #racingCache(tenant: string): RacingCache | undefined {
    let c = this.#caches.get(tenant);
    if (c === undefined && this.#options.racingCache !== false) {
      c = racingCacheFrom(this.#options.racingCache, this.#options.clock);
      if (c !== undefined) this.#caches.set(tenant, c);
    }
    return c;
  }

  #quota(tenant: string): TenantQuota {
    let q = this.#quotas.get(tenant);
    if (!q) {
      q = new TenantQuota(tenant, () => this.#snap.tenants.get(tenant)?.policy.limits ?? NO_LIMITS, this.#now, this.#options.quotaStore);
      this.#quotas.set(tenant, q);
    }
    return q;
  }

  /** Swap in a new snapshot with `changes` applied (null removes), then revoke what the new revision forbids. */
  #swap(changes: ReadonlyMap<string, CompiledPolicy | null>, onRevoke: RevokeMode | undefined): number {
    const old = this.#snap;
    const revision = old.revision + 1;
    const tenants = new Map(old.tenants);
    for (const [id, policy] of changes) {
      if (policy === null) tenants.delete(id);
      else tenants.set(id, Object.freeze({ revision, policy }));
    }
    this.#snap = Object.freeze({ revision, tenants });
    if ((onRevoke ?? this.#options.onRevoke ?? 'close') === 'close') {
      for (const id of changes.keys()) this.#revokeForbidden(id, revision);
    }
    return revision;
  }

  #revokeForbidden(tenant: string, revision: number): void {
    const q = this.#quotas.get(tenant);
    if (!q) return;
    const removed = !this.#snap.tenants.has(tenant);
    for (const lease of [...q.live]) {
      const subject = lease.subject;
      if (subject === undefined) {
        if (removed) lease.revoke({ allow: false, code: 'revoked', reason: `tenant ${tenant} has no policy since revision ${revision}`, rule: null });
        continue;
      }
      const revoke = (d: PolicyDecision) => {
        if (d.allow) return;
        lease.revoke({ allow: false, code: 'revoked', reason: `revision ${revision} forbids this ${lease.kind}: ${d.reason}`, rule: d.rule });
      };
      const d = (lease.owner as TenantScope).recheck(subject);
      if (d instanceof Promise) d.then(revoke, () => revoke({ allow: false, code: 'policy-error', reason: 'recheck failed', rule: null }));
      else revoke(d);
    }
  }

  async #applyFile(full: string, file: WatchedFile): Promise<number> {
    // The callback form: `node:fs/promises` is one more of Node's modules to load at every import.
    const text = await new Promise<string>((resolve, reject) => readFile(full, 'utf8', (err, data) => (err ? reject(err) : resolve(data))));
    const specs = parsePolicyFile(text, basename(full));
    const changes = new Map<string, CompiledPolicy | null>();
    for (const [id, spec] of specs) changes.set(id, compilePolicy(spec));
    for (const id of file.tenants) if (!specs.has(id)) changes.set(id, null);
    // Another file or setPolicy may own a tenant too; the last writer wins.
    file.tenants = new Set(specs.keys());
    return this.#swap(changes, file.onRevoke);
  }

  #watch(full: string, file: WatchedFile): void {
    const name = basename(full);
    const debounce = this.#options.reloadDebounceMs ?? 50;
    const clock = this.#core.clock;
    const reload = () => {
      file.timer = undefined;
      file.chain = file.chain.then(async () => {
        if (this.#closed) return;
        try {
          const revision = await this.#applyFile(full, file);
          this.#tell({ path: full, revision, tenants: [...file.tenants] });
        } catch (err) {
          this.#tell({ path: full, error: err as Error });
        }
      });
    };
    file.watcher = watch(dirname(full), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (file.timer !== undefined) clock.clearTimeout(file.timer);
      file.timer = clock.setTimeout(reload, debounce);
    });
    file.watcher.on('error', (err) => this.#tell({ path: full, error: err }));
  }

  #tell(event: ReloadEvent): void {
    try {
      this.#options.onReload?.(event);
    } catch {
      /* a host callback must not break reloading */
    }
  }
}
