/**
 * The chokepoint's machinery: minting and the one admission rule, the one
 * place every candidate passes before a packet leaves.
 *
 * A {@link NetworkScope} is a capability handle for one tenant (like the data
 * in a wasmtime Store): it holds the tenant's policy, network and quotas, and
 * nothing a caller passes to `initiate()`, `listen()`, an endpoint or a URL can
 * name or change the tenant. Its {@link PolicyGuard} decides requests, records
 * each decision, and mints a {@link CheckedTarget} for every allowed address.
 *
 * Minting is recorded here, privately: a target is real only if this module
 * made it, whatever it looks like. Every scope's network admits a target by
 * one rule ({@link admit}): minted by this very scope (so for its tenant), for
 * the method's own use (`connect` for connect, `redirect` for follow, `bind`
 * for listen), for the
 * driver's protocol, and under the current policy revision (an older one is
 * decided again first). What a caller hands the network (the attempt and its
 * fields) is read once, own data properties only, and the driver gets that
 * snapshot, never the caller's object.
 *
 * @example
 * const scope = createScope({ tenant: 'acme', policy, resolver });
 * const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 * const channel = await scope.network.connect(tcpDriver, { ...attempt, target });
 */
import type { ByteMeter, ConnectAttempt, Driver, DriverListener, DriverListenerHandler, ListenAttempt, PeerSocket, SocketAddress, TransportChannel } from '../driver.js';
import { CheckedPeerSocket } from './checked-peer-socket.js';
import { PolicyDeniedError, TapsError } from '../errors.js';
import { SystemNetwork, type Network, type NetworkScope, type Resolver } from '../network.js';
import { checkObject, ownField } from '../own.js';
import type { AuthorizeRequest, CheckedName, CheckedTarget, Lease, PolicyGuard, ResolvedAddress } from './contract.js';
import { decisionChannel as recordsChannel } from './records.js';
import type { DenyCode, NetworkUse, PolicyDecision, PolicyProtocol, PolicyRequest } from './types.js';

export type { AuthorizeRequest, CheckedName, CheckedTarget, DecisionRecord, Lease, PolicyGuard, ResolvedAddress } from './contract.js';
export type { NetworkScope } from '../network.js';

type Denial = PolicyDecision & { allow: false };

/** Every minted target → the scope that minted it. Private: only this module's functions read or add. */
const minted = new WeakMap<object, object>();
const mintedNames = new WeakMap<object, object>();
const scopes = new WeakSet<object>();

/** True only for targets minted by a guard (whatever scope). */
export function isCheckedTarget(value: unknown): value is CheckedTarget {
  return typeof value === 'object' && value !== null && minted.has(value);
}

/** True only for names minted by a guard (whatever scope). */
export function isCheckedName(value: unknown): value is CheckedName {
  return typeof value === 'object' && value !== null && mintedNames.has(value);
}

/** True only for scopes made by `createScope` or a `Host`. */
export function isNetworkScope(value: unknown): value is NetworkScope {
  return typeof value === 'object' && value !== null && scopes.has(value);
}

/** A guard of a scope this library made: it can answer `authorize` and `authorizeLookup` without a promise. */
interface PromptGuard {
  authorizeNow(request: AuthorizeRequest): CheckedTarget | Promise<CheckedTarget>;
  authorizeLookupNow(protocol: PolicyProtocol, host: string, port?: number): CheckedName | Promise<CheckedName>;
}

/**
 * @internal The promise of an answer that may come at once or later: what `authorize` and `authorizeLookup`
 * make of their `…Now` forms, a synchronous throw (a PolicyDeniedError, a TypeError) becoming the rejection.
 */
export function answered<T>(answer: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(answer());
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * @internal `guard.authorize(request)`, answered at once (a target, or a PolicyDeniedError thrown) when
 * `guard` is a scope this library made and its policy answers at once; a promise otherwise. The same
 * decision, recorded the same way: the selection's direct attempt waits no turn for a synchronous policy.
 */
export function authorizeNow(guard: PolicyGuard, request: AuthorizeRequest): CheckedTarget | Promise<CheckedTarget> {
  return scopes.has(guard) ? (guard as unknown as PromptGuard).authorizeNow(request) : guard.authorize(request);
}

/**
 * @internal `guard.authorizeLookup(protocol, host, port)`, answered at once (a name, or a PolicyDeniedError
 * thrown) when `guard` is a scope this library made and its policy answers at once; a promise otherwise. The
 * same decision, recorded the same way: a name's lookup grant waits no turn for a synchronous policy.
 */
export function authorizeLookupNow(guard: PolicyGuard, protocol: PolicyProtocol, host: string, port?: number): CheckedName | Promise<CheckedName> {
  return scopes.has(guard) ? (guard as unknown as PromptGuard).authorizeLookupNow(protocol, host, port) : guard.authorizeLookup(protocol, host, port);
}

/**
 * @internal Brand a scope this library made (`isNetworkScope` then accepts it) and freeze it and its
 * class's prototype: a guest holding the scope cannot rename its tenant, swap its network or replace a
 * method the library calls on it (for every tenant, through the shared prototype). Called last in the
 * scope's constructor.
 */
export function brandScope<T extends NetworkScope>(scope: T): T {
  Object.freeze(Object.getPrototypeOf(scope));
  Object.freeze(scope);
  scopes.add(scope);
  const meter = (scope as { meter?: unknown }).meter;
  if (typeof meter === 'object' && meter !== null) scopeMeters.add(meter);
  return scope;
}

/** The byte meters of the scopes this library made (a caller cannot make one). */
const scopeMeters = new WeakSet<object>();

/**
 * @internal The byte budget a driver charges for a socket to `target`: `meter` when it is a scope's own
 * (the scope's network set it, or a host's network passed it on), otherwise the budget of the scope whose
 * guard minted `target`. So a driver called directly (a guest holding `connection.driver`) with its own
 * meter, or none, still charges the tenant that decided the target.
 */
export function scopeMeterFor(meter: unknown, target: unknown): ByteMeter | undefined {
  if (typeof meter === 'object' && meter !== null && scopeMeters.has(meter)) return meter as ByteMeter;
  const owner = typeof target === 'object' && target !== null ? minted.get(target) : undefined;
  return (owner as { readonly meter?: ByteMeter } | undefined)?.meter;
}

/**
 * @internal A scope's meter as the sockets of the kit see it: `sent` before bytes are written (refused whole
 * when over), `sentAfter` for what a protocol library wrote itself and the socket's counters learned only
 * afterwards (TLS records and handshake), `received` for bytes read from the socket (counted, then a throw
 * when the budget is exceeded: the socket is stopped), `check` before sending what cannot be charged first
 * (throws when the sent budget is already spent).
 */
export interface WireMeter extends ByteMeter {
  sentAfter(bytes: number): void;
  received(bytes: number): void;
  check(): void;
}

/** @internal The wire meter of the scope that minted `target` (or `meter` when it is a scope's own), if it has budgets. */
export function wireMeterFor(meter: unknown, target: unknown): WireMeter | undefined {
  return scopeMeterFor(meter, target) as WireMeter | undefined;
}

/** Kinds of quota unit a socket takes. */
type UnitKind = 'connection' | 'listener';

/** What makes a grant: only this module holds it, so `new grant.constructor(...)` is a TypeError. */
const MAKE_GRANT = Symbol('socket grant');

/** `grant`'s unit for a socket of `kind` to a target `owner` minted, when it is a real grant that can serve it now. */
let takeGrant: (grant: unknown, owner: object, kind: UnitKind) => SocketUnit | undefined;
/** Another grant on the same lease, or undefined when `grant` is none (or its lease was given back). */
let furtherOf: (grant: unknown) => SocketGrant | undefined;
/** The socket that counted under `g` closed (or never opened). */
let freeGrant: (g: SocketGrant) => void;

/**
 * A socket grant: a unit the library already took for a socket (a Preconnection's connection lease for its
 * selection's attempts, a Listener's listener lease for its binds). A grant lets one socket at a time count
 * under that lease. What it holds is private (a caller can neither make one, read it nor change it), and it
 * serves only sockets to targets of the scope that took the lease. What reads or changes it is this module's
 * (set in the class's static block, not static methods): a guest reaching the class through
 * `grant.constructor` can neither free a busy grant nor mint another on its lease.
 */
class SocketGrant {
  readonly #lease: Lease;
  readonly #kind: UnitKind;
  readonly #owner: object;
  /** A socket counts under it now. */
  #busy = false;

  constructor(key: symbol, owner: object, lease: Lease, kind: UnitKind) {
    if (key !== MAKE_GRANT) throw new TypeError('a socket grant is made by the library only');
    this.#owner = owner;
    this.#lease = lease;
    this.#kind = kind;
  }

  static {
    takeGrant = (grant, owner, kind) => {
      if (typeof grant !== 'object' || grant === null || !(#busy in grant)) return undefined;
      const g = grant as SocketGrant;
      if (g.#kind !== kind || g.#owner !== owner || g.#busy || released(g.#lease)) return undefined;
      g.#busy = true;
      return new GrantUnit(g);
    };
    furtherOf = (grant) => {
      if (typeof grant !== 'object' || grant === null || !(#busy in grant)) return undefined;
      const g = grant as SocketGrant;
      return released(g.#lease) ? undefined : new SocketGrant(MAKE_GRANT, g.#owner, g.#lease, g.#kind);
    };
    freeGrant = (g) => {
      g.#busy = false;
    };
  }
}
Object.freeze(SocketGrant.prototype);
Object.freeze(SocketGrant);

/** The unit of a socket that counts under a grant: giving it back frees the grant for another socket. */
class GrantUnit implements SocketUnit {
  readonly granted = true;
  #grant: SocketGrant | undefined;

  constructor(grant: SocketGrant) {
    this.#grant = grant;
  }

  /** Idempotent: only the first call frees the grant. An arrow field, so `socket.once('close', unit.release)` needs no bind. */
  readonly release = (): void => {
    const g = this.#grant;
    this.#grant = undefined;
    if (g !== undefined) freeGrant(g);
  };
}

/** @internal A grant for one attempt: the socket it opens counts under `lease` (taken by `scope`) instead of taking a unit. */
export function socketGrant(scope: object, lease: Lease, kind: UnitKind): object {
  return new SocketGrant(MAKE_GRANT, scope, lease, kind);
}

/**
 * @internal Another grant on the lease of `grant` (a further socket of the same connection: an HTTP reconnect,
 * a parallel HTTP/1.1 stream, a redirect hop), or undefined when `grant` is none: that socket takes a unit.
 */
export function furtherGrant(grant: unknown): object | undefined {
  return furtherOf(grant);
}

/** A quota unit a socket holds until it closes; `granted`: it is a lease the library took for it (no unit of its own). */
export interface SocketUnit {
  readonly granted: boolean;
  /** Give it back (idempotent): when the socket closed, or was never opened. */
  release(): void;
}

const released = (l: Lease): boolean => (l as { readonly released?: unknown }).released === true;

/**
 * @internal The quota unit a socket to `target` counts under: the attempt's grant when it is a real one for
 * this kind, of the scope that minted `target`, not in use by another socket and its lease still held;
 * otherwise a unit of its own from the scope that minted `target` (a driver called directly, a second
 * socket of one attempt), which throws `QuotaExceededError` over `limit connections` / `limit listeners`.
 * A promise only when the host's quota store must be asked.
 */
export function takeSocketUnit(grant: unknown, target: unknown, kind: UnitKind): SocketUnit | Promise<SocketUnit> {
  const owner = typeof target === 'object' && target !== null ? minted.get(target) : undefined;
  if (owner === undefined) throw new TypeError('a socket needs a CheckedTarget minted by a scope\'s guard');
  const granted = takeGrant(grant, owner, kind);
  if (granted !== undefined) return granted;
  const taken = (owner as NetworkScope).lease(kind, target as CheckedTarget);
  return taken instanceof Promise ? taken.then(ownUnit) : ownUnit(taken);
}

function ownUnit(lease: Lease): SocketUnit {
  return { granted: false, release: () => lease.release() };
}

/** @internal True when `owner` minted `target`. */
export function mintedBy(target: unknown, owner: object): boolean {
  return typeof target === 'object' && target !== null && minted.get(target) === owner;
}

/** @internal True when `owner` minted `name`. */
export function nameMintedBy(name: unknown, owner: object): boolean {
  return typeof name === 'object' && name !== null && mintedNames.get(name) === owner;
}

/** The fields a target is minted from (already canonical: the guard decided on exactly these). */
export interface TargetFields {
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  /** Canonical, as dialled (dialString). */
  readonly address: string;
  readonly port: number;
  readonly hostName: string | undefined;
}

/** @internal Mint a target after an allow decision; `owner` is the scope whose network will admit it. */
export function mintTarget(owner: object, tenant: string, f: TargetFields, decision: PolicyDecision & { allow: true }, revision: number): CheckedTarget {
  const target = Object.freeze({
    tenant,
    use: f.use,
    protocol: f.protocol,
    address: f.address,
    family: f.address.includes(':') ? 6 : 4,
    port: f.port,
    hostName: f.hostName,
    revision,
    // A frozen copy: a target may serve several identical requests, and nobody holding it may change what it says.
    decision: Object.freeze(decision.reason === undefined ? { allow: true, rule: decision.rule } : { allow: true, rule: decision.rule, reason: decision.reason }),
  }) as unknown as CheckedTarget;
  minted.set(target, owner);
  return target;
}

/** @internal Mint a name after an allowed lookup decision. */
export function mintName(
  owner: object, tenant: string, protocol: PolicyProtocol, name: string, port: number | undefined, decision: PolicyDecision & { allow: true },
): CheckedName {
  const checked = Object.freeze({ tenant, protocol, name, port, decision }) as unknown as CheckedName;
  mintedNames.set(checked, owner);
  return checked;
}

export const decisionChannel = recordsChannel;

const unverified = (reason: string): Denial => ({ allow: false, code: 'unverified' as DenyCode, reason, rule: null });

/** What a scope offers the admission rule: its identity, its revision, a way to re-decide, its lookup grant. */
export interface AdmittingScope {
  readonly tenant: string;
  /** The policy revision targets must have been minted under to be admitted without a new decision. */
  readonly revision: number;
  /** Re-decide (and record) what a target minted under an older revision was allowed for. */
  recheck(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision>;
  /** `network.lookup`: allowed when some protocol's lookup grant covers the name. */
  lookupAnyProtocol(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]>;
  readonly guard: PolicyGuard;
  /** What the drivers it admits charge their sent bytes to (the tenant's byte budget), if the scope has budgets. */
  readonly meter?: ByteMeter | undefined;
}

/** The request a target was decided as (what a hot reload re-decides). */
export function targetRequest(t: CheckedTarget): PolicyRequest {
  return { use: t.use, protocol: t.protocol, host: t.hostName, address: t.address, port: t.port };
}

/** What admission answers: the target to hand the driver (the same, or one minted again under the current revision), or a denial. */
export type Admission = CheckedTarget | Denial;

/**
 * The admission rule every scope's network applies: `target` was minted by
 * `scope`, for `use`, for `protocol`. A target: admitted, hand the driver this
 * one. A denial: not admitted. A promise: minted under an older revision, so
 * decided again; allowed, it is minted again under the current revision (a
 * driver's socket refuses a target of an older revision, see
 * {@link currentRevisionOf}).
 */
export function admit(scope: AdmittingScope, target: unknown, use: NetworkUse, protocol: unknown, what: string): Admission | Promise<Admission> {
  if (!mintedBy(target, scope)) return unverified(`the ${what} target was not checked by this scope's policy`);
  // Minted here, so a frozen object of ours: reading its fields runs no caller code.
  const t = target as CheckedTarget;
  if (t.use !== use) return unverified(`a ${t.use} target cannot be used to ${what} (it was checked for ${t.use} only)`);
  if (t.protocol !== protocol) return unverified(`a ${t.protocol} target cannot be used by a ${typeof protocol === 'string' ? protocol : 'driver of no'} protocol driver`);
  if (t.tenant !== scope.tenant) return unverified(`the ${what} target belongs to another tenant`);
  if (t.revision === scope.revision) return t;
  return Promise.resolve(scope.recheck(targetRequest(t))).then((d): Admission => {
    if (!d.allow) return d as Denial;
    const fields = { use: t.use, protocol: t.protocol, address: t.address, port: t.port, hostName: t.hostName };
    return mintTarget(scope, t.tenant, fields, d as PolicyDecision & { allow: true }, scope.revision);
  });
}

/** True for a denial, false for an admitted target. */
export function isDenial(a: Admission): a is Denial {
  return (a as { allow?: unknown }).allow === false;
}

function admitted<T>(verdict: Admission | Promise<Admission>, go: (target: CheckedTarget) => Promise<T>): Promise<T> {
  const then = (a: Admission): Promise<T> => {
    if (isDenial(a)) return Promise.reject(new PolicyDeniedError(a));
    try {
      return go(a);
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return verdict instanceof Promise ? verdict.then(then) : then(verdict);
}

/**
 * @internal The policy revision of the scope that minted `target` now, or undefined when it has none to
 * compare (not minted). A socket refuses a target minted under an older revision: only admission decides
 * it again (and hands the driver a new target), so a target kept across a reload reaches nothing the new
 * revision did not decide, even through a driver called directly.
 */
export function currentRevisionOf(target: unknown): number | undefined {
  const owner = typeof target === 'object' && target !== null ? minted.get(target) : undefined;
  return (owner as { readonly revision?: number } | undefined)?.revision;
}

/** The attempt with `target` in place of the one it named (admission may have minted it again). */
function withTarget<A>(snap: Record<string, unknown>, target: CheckedTarget): A {
  return (snap['target'] === target ? snap : Object.freeze({ ...snap, target })) as A;
}

const ATTEMPT_FIELDS = ['signal', 'target', 'remote', 'local', 'security', 'properties', 'options', 'unit'] as const;

/** The fields of an attempt a scope's network takes from its caller (the rest are the scope's own). */
type AttemptFields = Pick<ConnectAttempt, (typeof ATTEMPT_FIELDS)[number]>;

/**
 * @internal A connect attempt the library makes itself (a selection's candidate). Its fields are private,
 * read through a frozen prototype's getters: a scope's network takes them as they were made, without the
 * field-by-field copy a caller's attempt needs. The guard, meter and network are the scope's, as for any.
 */
export class OwnAttempt implements ConnectAttempt {
  readonly #fields: AttemptFields;
  readonly #guard: PolicyGuard;

  constructor(fields: AttemptFields, guard: PolicyGuard) {
    this.#fields = fields;
    this.#guard = guard;
  }

  get signal(): AbortSignal {
    return this.#fields.signal;
  }
  get target(): CheckedTarget {
    return this.#fields.target;
  }
  get remote(): ConnectAttempt['remote'] {
    return this.#fields.remote;
  }
  get local(): ConnectAttempt['local'] {
    return this.#fields.local;
  }
  get security(): ConnectAttempt['security'] {
    return this.#fields.security;
  }
  get properties(): ConnectAttempt['properties'] {
    return this.#fields.properties;
  }
  get options(): ConnectAttempt['options'] {
    return this.#fields.options;
  }
  get unit(): unknown {
    return this.#fields.unit;
  }
  get guard(): PolicyGuard {
    return this.#guard;
  }

  /** The fields `a` was made with, when the library made it; undefined for anything else. */
  static made(a: object): AttemptFields | undefined {
    return #fields in a ? (a as OwnAttempt).#fields : undefined;
  }
}
Object.freeze(OwnAttempt.prototype);

/** The attempt as the driver will see it: read once (own data), with this scope's guard; never the caller's object. */
function snapshotAttempt(attempt: unknown, scope: AdmittingScope, network: CheckedNetwork, what: string): Record<string, unknown> {
  const a = checkObject(attempt, what);
  // The guard, the meter and the network are the scope's own: a caller can neither swap nor drop them.
  // One literal of one shape either way (fields in ATTEMPT_FIELDS order), not a field added per key.
  const own = OwnAttempt.made(a);
  const f = own ?? {
    signal: ownField(a, 'signal', what), target: ownField(a, 'target', what), remote: ownField(a, 'remote', what),
    local: ownField(a, 'local', what), security: ownField(a, 'security', what), properties: ownField(a, 'properties', what),
    options: ownField(a, 'options', what), unit: ownField(a, 'unit', what),
  };
  if (!(f.signal instanceof AbortSignal)) throw new TypeError(`${what}.signal must be an AbortSignal`);
  const options: unknown = f.options;
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw new TypeError(`${what}.options must be an object`);
  return Object.freeze({
    guard: scope.guard, meter: scope.meter, network, signal: f.signal, target: f.target, remote: f.remote, local: f.local,
    security: f.security, properties: f.properties, options: options === undefined ? EMPTY_OPTIONS : options, unit: f.unit,
  }) as Record<string, unknown>;
}

const EMPTY_OPTIONS = Object.freeze({});

function driverProtocol(driver: unknown): unknown {
  const d = checkObject(driver, 'driver');
  return (d as { protocol?: unknown }).protocol;
}

/**
 * A scope's network: wraps the host's (or the system) network and admits by
 * one rule (the same for every scope kind) — `connect` only `connect` targets, `listen` only `bind`
 * targets, each for the driver's protocol — and answers `lookup` only under a
 * lookup grant. Made by the scopes themselves; a host never needs to. The
 * network it wraps is private and the object frozen: a guest holding it
 * reaches the host's network only through the admission rule.
 */
export class CheckedNetwork implements Network {
  readonly #inner: Network;
  readonly #scope: AdmittingScope;

  /** @internal A scope makes its own. */
  constructor(inner: Network, scope: AdmittingScope) {
    this.#inner = inner;
    this.#scope = scope;
    Object.freeze(this);
  }

  lookup(host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> {
    try {
      if (typeof host !== 'string') throw new TypeError('host must be a string');
      if (family !== 4 && family !== 6) throw new TypeError(`family must be 4 or 6, got ${typeof family === 'number' ? family : typeof family}`);
      if (!(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
      return this.#scope.lookupAnyProtocol(host, family, signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    return this.#open(driver, attempt, 'connect', 'connect');
  }

  /**
   * An HTTP redirect hop: a channel to a `redirect` target (and only to one) for the driver's protocol. The
   * host's network sees it as a `connect` whose target's use is `redirect`. A redirect grant lets a tenant
   * reach that destination by following a redirect; this is the same reach, asked for directly.
   */
  follow(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    return this.#open(driver, attempt, 'redirect', 'follow a redirect to');
  }

  #open(driver: Driver, attempt: ConnectAttempt, use: 'connect' | 'redirect', what: string): Promise<TransportChannel> {
    let snap: Record<string, unknown>;
    let protocol: unknown;
    try {
      protocol = driverProtocol(driver);
      snap = snapshotAttempt(attempt, this.#scope, this, 'attempt');
    } catch (err) {
      return Promise.reject(err);
    }
    const verdict = admit(this.#scope, snap['target'], use, protocol, what);
    if (verdict instanceof Promise) return admitted(verdict, (t) => this.#inner.connect(driver, withTarget<ConnectAttempt>(snap, t)));
    // Decided at once (the target is current): the same checks as admitted(), without its two closures per attempt.
    if (isDenial(verdict)) return Promise.reject(new PolicyDeniedError(verdict));
    try {
      return this.#inner.connect(driver, withTarget<ConnectAttempt>(snap, verdict));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  listen(driver: Driver, attempt: ListenAttempt): Promise<DriverListener> {
    let snap: Record<string, unknown>;
    let protocol: unknown;
    try {
      protocol = driverProtocol(driver);
      snap = snapshotAttempt(attempt, this.#scope, this, 'attempt');
    } catch (err) {
      return Promise.reject(err);
    }
    const scope = this.#scope;
    return admitted(admit(scope, snap['target'], 'bind', protocol, 'bind'), (t) =>
      this.#inner.listen(driver, withTarget<ListenAttempt>(snap, t)).then((l) => new CheckedListener(l, scope.guard, driver)),
    );
  }

  /** A peer socket binds like a listener; each datagram it sends, and its final peer, must be a `connect` target of this scope. */
  openPeerSocket(driver: Driver, attempt: ListenAttempt): Promise<PeerSocket> {
    let snap: Record<string, unknown>;
    let protocol: unknown;
    try {
      protocol = driverProtocol(driver);
      snap = snapshotAttempt(attempt, this.#scope, this, 'attempt');
    } catch (err) {
      return Promise.reject(err);
    }
    const scope = this.#scope;
    const inner = this.#inner;
    return admitted(admit(scope, snap['target'], 'bind', protocol, 'bind'), (target) => {
      if (!inner.openPeerSocket) return Promise.reject(new TypeError('this network cannot open peer sockets (rendezvous)'));
      return inner.openPeerSocket(driver, withTarget<ListenAttempt>(snap, target)).then((socket) => new CheckedPeerSocket(socket, (t, what) => admit(scope, t, 'connect', protocol, what)));
    });
  }
}
Object.freeze(CheckedNetwork.prototype);

/** The handlers the library's own `Listener` gives a listener: it decides each peer itself (remote endpoint, then `accept`). */
const libraryHandlers = new WeakSet<object>();

/** @internal Mark a handler as the library's Listener's (src/listener.ts); a caller cannot. */
export function libraryHandler<H extends DriverListenerHandler>(handler: H): H {
  libraryHandlers.add(handler);
  return handler;
}

/**
 * A listener a scope's network bound. The library's `Listener` decides every peer itself, before its
 * application sees it; any other handler (a guest that called `scope.network.listen` with a driver it
 * holds) gets only the peers the tenant's policy accepts (`accept`, by the peer's address and port, for
 * the driver's protocol, decided synchronously: `decideSync`): the others are aborted unseen.
 */
class CheckedListener implements DriverListener {
  readonly #inner: DriverListener;
  readonly #guard: PolicyGuard;
  readonly #driver: Driver;

  constructor(inner: DriverListener, guard: PolicyGuard, driver: Driver) {
    this.#inner = inner;
    this.#guard = guard;
    this.#driver = driver;
  }

  get local(): SocketAddress {
    return this.#inner.local;
  }

  start(handler: DriverListenerHandler): void {
    if (libraryHandlers.has(handler)) return this.#inner.start(handler);
    const guard = this.#guard;
    const bound = this.#driver;
    this.#inner.start({
      connection: (channel: TransportChannel, stack?: Driver) => {
        const peer = channel.remote;
        const protocol = (stack ?? bound).protocol;
        // Decided at once, so peers are handed over in the order they came (an asynchronous custom rule denies).
        const d = guard.decideSync({ use: 'accept', protocol, address: peer.address, port: peer.port });
        if (d.allow) handler.connection(channel, stack);
        else channel.abort(new TapsError('ERR_TAPS_POLICY_PROHIBITED', `peer ${peer.address} refused by policy: ${d.reason}`));
      },
      error: (err: Error) => handler.error(err),
    });
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
Object.freeze(CheckedListener.prototype);

/** The network a scope wraps: the host's, or the system's with the given resolver. */
export function baseNetwork(network: Network | undefined, resolver: Resolver | undefined): Network {
  return network ?? new SystemNetwork(resolver);
}
