/**
 * Selection properties (RFC 9622 §6.2): what the application wants
 * from a protocol stack and path, as preferences the selector filters and
 * ranks on (RFC 9623 §4.1.3).
 *
 * Names are case-insensitive (RFC 9622 §4.1) and stored under their camelCase name.
 * Defaults are the RFC's (a configuration TCP can meet); `useTemporaryLocalAddress`
 * and `multipath` take listener defaults on the copy `forListener()` returns.
 * Protocol-specific properties live in namespaces (`tcp.userTimeoutValue`,
 * RFC 9622 §8.2); drivers add theirs with `TransportProperties.defineNamespaced()`.
 * `safelyReplayable` is the one Message Property default kept here, because
 * the unreliable-datagram profile (I App. B.2.3) sets it.
 *
 * Every problem in an input (unknown name, wrong type, bad preference,
 * contradiction) is collected into ONE InvalidPropertiesError naming each
 * offending property. `set()` checks the value at once; contradictions are
 * checked by `validate()`, which the constructor and `freeze()` run (so a
 * sequence of `set()` calls may pass through an inconsistent state).
 *
 * Contradictions (RFC 9623 §3.1: contradictory require/prohibit sets are
 * configuration errors). Only true logical contradictions are rejected; sets
 * that merely no available stack meets fail later with the selection report.
 *
 * | combination                                           | verdict | why |
 * |-------------------------------------------------------|---------|-----|
 * | reliability prohibit + perMsgReliability require      | error   | choosing reliable delivery per message needs a stack that can deliver reliably (RFC 9623 §3.1's own example; msgReliable defaults to reliability, RFC 9622 §9.1.3.7) |
 * | the same interface/pvd name with two preferences      | error   | a set of (preference, name): one name, one preference |
 * | zeroRttMsg require + direction unidirectional-receive | error when validated for 'initiate' | the 0-RTT message must be sent, and this side may not send |
 * | activeReadBeforeSend require + unidirectional-send    | error when validated for 'initiate' | an initiator that may not receive cannot read first |
 * | activeReadBeforeSend require + unidirectional-receive | error when validated for 'listen' | a listener that may not send cannot write first |
 * | reliability prohibit + preserveOrder require          | allowed | ordering without retransmission (late data dropped) is coherent |
 * | reliability prohibit + zeroRttMsg require             | allowed | one message carried in the handshake does not make all data reliable; 0-RTT needs replay safety, not connection reliability |
 * | reliability prohibit + multistreaming require         | allowed | no stack here offers it, but nothing logical forbids it |
 * | reliability require + congestionControl prohibit      | allowed | "unlikely to succeed" (RFC 9622 §6.2.9), not contradictory |
 * | several interfaces or pvds required                   | allowed | types and instances overlap (`Wi-Fi` and `en0`) |
 *
 * @example
 * const props = new TransportProperties({ Reliability: 'require', preserveMsgBoundaries: 'prefer', 'udp.recvBufferSize': 1 << 20 });
 * props.prefer('multistreaming').avoid('keepAlive');
 * props.preference('preserveMsgBoundaries'); // 'prefer'
 * props.namespaced('udp');                   // { recvBufferSize: 1048576 }
 * const datagrams = TransportProperties.unreliableDatagram();
 */
import { InvalidPropertiesError, type PropertyProblem } from './errors.js';
import { describe } from './names.js';
import { didYouMean } from './suggest.js';
import { unicodePattern } from './unicode-pattern.js';

/** A preference level (RFC 9622 §6.2). */
export type Preference = 'require' | 'prefer' | 'noPreference' | 'avoid' | 'prohibit';
/** The preference levels, strongest first. */
export const PREFERENCES: readonly Preference[] = Object.freeze(['require', 'prefer', 'noPreference', 'avoid', 'prohibit']);

/** A selection property whose value is a {@link Preference}. */
export type PreferenceProperty =
  | 'reliability' | 'preserveMsgBoundaries' | 'perMsgReliability' | 'preserveOrder' | 'zeroRttMsg' | 'multistreaming'
  | 'fullChecksumSend' | 'fullChecksumRecv' | 'congestionControl' | 'keepAlive' | 'useTemporaryLocalAddress'
  | 'softErrorNotify' | 'activeReadBeforeSend';

/** Values of the `multipath` property (RFC 9622 §6.2.14). */
export type Multipath = 'disabled' | 'active' | 'passive';
/** Values of the `direction` property (RFC 9622 §6.2.16). */
export type Direction = 'bidirectional' | 'unidirectional-send' | 'unidirectional-receive';
/** `interface` and `pvd`: a set of (preference, name) (RFC 9622 §6.2.11, §6.2.12). */
export type PreferenceSet = readonly (readonly [Preference, string])[];

/** Every generic selection property and its type (RFC 9622 §6.2). */
export interface SelectionProperties extends Record<PreferenceProperty, Preference> {
  interface: PreferenceSet;
  pvd: PreferenceSet;
  multipath: Multipath;
  advertisesAltaddr: boolean;
  direction: Direction;
  /** Message Property default (RFC 9622 §9.1.3.4): every message may be delivered more than once. */
  safelyReplayable: boolean;
}
/** The name of a generic selection property. */
export type PropertyName = keyof SelectionProperties;
/** A protocol-specific property name, `namespace.name` (e.g. `tcp.userTimeoutValue`, RFC 9622 §4.1). */
export type NamespacedPropertyName = `${string}.${string}`;
/**
 * Transport properties as a plain object: generic ones by their camelCase
 * name with their type, protocol-specific ones as `namespace.name`. A
 * misspelt generic name is a compile error (and, from JavaScript, an
 * InvalidPropertiesError with a suggestion).
 */
export type TransportPropertiesInit = { readonly [K in PropertyName]?: SelectionProperties[K] | undefined } & {
  readonly [name: NamespacedPropertyName]: unknown;
};
/** How a connection is opened; some contradictions exist only for one role. */
export type Role = 'initiate' | 'listen' | 'rendezvous';
/** Checks a namespaced property's value: returns why it is invalid, or undefined when it is fine. */
export type NamespacedValidator = (value: unknown) => string | undefined;
/** The named profiles of RFC 9622 Appendix B.2. */
export type ProfileName = 'reliable-inorder-stream' | 'reliable-message' | 'unreliable-datagram';

const DEFAULTS: Readonly<SelectionProperties> = Object.freeze({
  reliability: 'require', preserveMsgBoundaries: 'noPreference', perMsgReliability: 'noPreference', preserveOrder: 'require',
  zeroRttMsg: 'noPreference', multistreaming: 'prefer', fullChecksumSend: 'require', fullChecksumRecv: 'require',
  congestionControl: 'require', keepAlive: 'noPreference', useTemporaryLocalAddress: 'prefer', softErrorNotify: 'noPreference',
  activeReadBeforeSend: 'noPreference', interface: Object.freeze([]), pvd: Object.freeze([]), multipath: 'disabled',
  advertisesAltaddr: false, direction: 'bidirectional', safelyReplayable: false,
} satisfies SelectionProperties);
/** Listener (and rendezvous) defaults that differ (RFC 9622 §6.2.13, §6.2.14). */
const LISTENER_DEFAULTS: Partial<SelectionProperties> = Object.freeze({ useTemporaryLocalAddress: 'avoid', multipath: 'passive' });

/** The names of every preference-valued property. */
export const PREFERENCE_PROPERTIES: readonly PreferenceProperty[] = Object.freeze(
  (Object.keys(DEFAULTS) as PropertyName[]).filter((k): k is PreferenceProperty => typeof DEFAULTS[k] === 'string' && PREFERENCES.includes(DEFAULTS[k] as Preference)),
);

type Checked = { ok: true; value: unknown } | { ok: false; reason: string };
const ok = (value: unknown): Checked => ({ ok: true, value });
const bad = (reason: string): Checked => ({ ok: false, reason });

function oneOf<T extends string>(values: readonly T[]) {
  const byLower = new Map(values.map((v) => [v.toLowerCase(), v]));
  return (v: unknown): Checked => {
    const hit = typeof v === 'string' ? byLower.get(v.toLowerCase()) : undefined;
    return hit !== undefined ? ok(hit) : bad(`must be one of ${values.join(', ')} (got ${describe(v)})`);
  };
}
const checkPreference = oneOf(PREFERENCES);
const checkBoolean = (v: unknown): Checked => (typeof v === 'boolean' ? ok(v) : bad(`must be a boolean (got ${describe(v)})`));

/** A control or format character (`\p{Cc}`, `\p{Cf}`): not in a printable name. */
const CONTROL_OR_FORMAT = unicodePattern('[\\p{Cc}\\p{Cf}]');

function checkSet(v: unknown): Checked {
  if (!Array.isArray(v)) return bad(`must be an array of [preference, name] pairs (got ${describe(v)})`);
  if (v.length > 256) return bad('has more than 256 entries');
  const byName = new Map<string, Preference>();
  for (let i = 0; i < v.length; i++) {
    const entry: unknown = v[i];
    if (!Array.isArray(entry) || entry.length !== 2) return bad(`[${i}] must be a [preference, name] pair`);
    const pref = checkPreference(entry[0]);
    if (!pref.ok) return bad(`[${i}][0] ${pref.reason}`);
    const name: unknown = entry[1];
    if (typeof name !== 'string' || name.length === 0 || name.length > 256 || CONTROL_OR_FORMAT().test(name)) {
      return bad(`[${i}][1] must be a non-empty printable name (got ${describe(name)})`);
    }
    const seen = byName.get(name);
    if (seen !== undefined && seen !== pref.value) return bad(`names ${JSON.stringify(name)} with both ${seen} and ${pref.value as string}`);
    byName.set(name, pref.value as Preference);
  }
  return ok(Object.freeze([...byName].map(([name, pref]) => Object.freeze([pref, name] as const))));
}

const GENERIC = new Map<string, { name: PropertyName; check: (v: unknown) => Checked }>();
for (const name of Object.keys(DEFAULTS) as PropertyName[]) {
  const check = PREFERENCE_PROPERTIES.includes(name as PreferenceProperty)
    ? checkPreference
    : name === 'interface' || name === 'pvd'
      ? checkSet
      : name === 'multipath'
        ? oneOf<Multipath>(['disabled', 'active', 'passive'])
        : name === 'direction'
          ? oneOf<Direction>(['bidirectional', 'unidirectional-send', 'unidirectional-receive'])
          : checkBoolean;
  GENERIC.set(name.toLowerCase(), { name, check });
}

const NAMESPACED = new Map<string, { name: string; validate: NamespacedValidator }>();
const NS_NAME = /^(_?[a-z][a-z0-9-]{0,31})\.([A-Za-z][A-Za-z0-9_]{0,63})$/;
const integer = (min: number, max: number): NamespacedValidator => (v) =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer from ${min} to ${max} (got ${describe(v)})`;
const bool: NamespacedValidator = (v) => (typeof v === 'boolean' ? undefined : `must be a boolean (got ${describe(v)})`);

type Resolved = { kind: 'generic'; name: PropertyName; check: (v: unknown) => Checked } | { kind: 'ns'; name: string; ns: string; check: (v: unknown) => Checked };

/**
 * Names already resolved, as written (selection asks for the same few names
 * on every candidate of every initiate). Only names that resolve are kept,
 * and at most RESOLVED_LIMIT of them, so odd spellings cannot grow it.
 */
const RESOLVED = new Map<string, Resolved>();
const RESOLVED_LIMIT = 1024;

function resolveName(name: unknown): Resolved | PropertyProblem {
  if (typeof name !== 'string') return { property: String(describe(name)), reason: 'a property name must be a string' };
  const hit = RESOLVED.get(name);
  if (hit) return hit;
  const lower = name.toLowerCase();
  const generic = GENERIC.get(lower);
  if (generic) return remember(name, { kind: 'generic', ...generic });
  const ns = NAMESPACED.get(lower);
  if (ns) {
    const { validate } = ns;
    return remember(name, { kind: 'ns', name: ns.name, ns: lower.slice(0, lower.indexOf('.')), check: (v) => { const why = validate(v); return why === undefined ? ok(v) : bad(why); } });
  }
  const shown = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  if (lower.includes('.')) return { property: shown, reason: `unknown protocol-specific property${didYouMean(name, [...NAMESPACED.values()].map((d) => d.name))}` };
  return { property: shown, reason: `unknown property${didYouMean(name, Object.keys(DEFAULTS))}` };
}

function remember(name: string, r: Resolved): Resolved {
  if (RESOLVED.size < RESOLVED_LIMIT) RESOLVED.set(name, Object.freeze(r));
  return r;
}

function fail(problems: PropertyProblem[]): never {
  throw new InvalidPropertiesError(problems);
}

/** Selection properties (RFC 9622 §6.2): what the application wants from a stack, as preferences. See the module comment. */
export class TransportProperties {
  readonly #values = new Map<string, unknown>();
  #role: 'initiate' | 'listen' = 'initiate';
  #frozen = false;
  #revision = 0;

  constructor(init?: TransportPropertiesInit | TransportProperties | null) {
    if (init instanceof TransportProperties) {
      for (const [k, v] of init.#values) this.#values.set(k, v);
      this.#role = init.#role;
      return;
    }
    if (init === undefined || init === null) return;
    const proto: unknown = typeof init === 'object' ? Object.getPrototypeOf(init) : undefined;
    if (typeof init !== 'object' || Array.isArray(init) || (proto !== Object.prototype && proto !== null)) {
      throw new TypeError(`properties must be a plain object of property names to values, got ${describe(init)}`);
    }
    const problems: PropertyProblem[] = [];
    const givenAs = new Map<string, string>();
    for (const key of Object.keys(init)) {
      const value: unknown = (init as Record<string, unknown>)[key];
      if (value === undefined) continue;
      const r = resolveName(key);
      if (!('kind' in r)) {
        problems.push(r);
        continue;
      }
      const earlier = givenAs.get(r.name);
      if (earlier !== undefined) {
        problems.push({ property: r.name, reason: `given twice (as ${JSON.stringify(earlier)} and ${JSON.stringify(key)})` });
        continue;
      }
      givenAs.set(r.name, key);
      const c = r.check(value);
      if (c.ok) this.#values.set(r.name, c.value);
      else problems.push({ property: r.name, reason: c.reason });
    }
    problems.push(...this.#contradictions(undefined));
    if (problems.length > 0) fail(problems);
  }

  /** Register a protocol-specific property, e.g. `defineNamespaced('quic.maxIdleTimeout', v => ...)` (RFC 9622 §4.1). */
  static defineNamespaced(name: string, validator: NamespacedValidator): void {
    if (typeof name !== 'string' || !NS_NAME.test(name)) {
      throw new TypeError(`name must look like "<namespace>.<propertyName>" (e.g. "tcp.userTimeoutValue"), got ${describe(name)}`);
    }
    if (typeof validator !== 'function') throw new TypeError('validator must be a function (value) => reason | undefined');
    const existing = NAMESPACED.get(name.toLowerCase());
    if (existing && existing.validate !== validator) throw new TypeError(`property ${existing.name} is already defined`);
    NAMESPACED.set(name.toLowerCase(), { name, validate: validator });
  }

  /** Every registered protocol-specific property name. */
  static namespacedNames(): string[] {
    return [...NAMESPACED.values()].map((d) => d.name);
  }

  /** I App. B.2.1: reliable, in-order, congestion-controlled byte stream (TCP-like). */
  static reliableInorderStream(): TransportProperties {
    return new TransportProperties({ reliability: 'require', preserveOrder: 'require', congestionControl: 'require', preserveMsgBoundaries: 'noPreference' });
  }
  /** I App. B.2.2: as above, and message boundaries preserved (SCTP-like, or a stream with a framer). */
  static reliableMessage(): TransportProperties {
    return new TransportProperties({ reliability: 'require', preserveOrder: 'require', congestionControl: 'require', preserveMsgBoundaries: 'require' });
  }
  /** I App. B.2.3: datagrams without reliability (UDP-like); every message safely replayable. */
  static unreliableDatagram(): TransportProperties {
    return new TransportProperties({
      reliability: 'avoid', preserveOrder: 'avoid', congestionControl: 'noPreference', preserveMsgBoundaries: 'require', safelyReplayable: true,
    });
  }
  /** The named profile (RFC 9622 App. B.2) by its name. */
  static profile(name: ProfileName): TransportProperties {
    switch (name) {
      case 'reliable-inorder-stream': return TransportProperties.reliableInorderStream();
      case 'reliable-message': return TransportProperties.reliableMessage();
      case 'unreliable-datagram': return TransportProperties.unreliableDatagram();
      default: throw new RangeError(`profile must be reliable-inorder-stream, reliable-message or unreliable-datagram, got ${describe(name)}`);
    }
  }

  /** 'listen' on a copy made by forListener(): listener defaults apply. */
  get role(): 'initiate' | 'listen' {
    return this.#role;
  }
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Bumped by every set()/reset(): lets a holder reuse a snapshot taken at the same revision. */
  get revision(): number {
    return this.#revision;
  }

  /** The effective value: what was set, else the default (namespaced: undefined when unset). */
  get<K extends PropertyName>(name: K): SelectionProperties[K];
  get(name: string): unknown;
  get(name: string): unknown {
    const r = this.#resolve(name);
    if (this.#values.has(r.name)) return this.#values.get(r.name);
    if (r.kind === 'ns') return undefined;
    if (this.#role === 'listen' && r.name in LISTENER_DEFAULTS) return LISTENER_DEFAULTS[r.name];
    return DEFAULTS[r.name];
  }

  /** Set one property (RFC 9622 §6.2 `Set`). The value is checked now; contradictions by validate(). */
  set(name: string, value: unknown): this {
    this.#writable();
    const r = this.#resolve(name);
    const c = value === undefined ? bad('must have a value (use reset() to restore the default)') : r.check(value);
    if (!c.ok) fail([{ property: r.name, reason: c.reason }]);
    this.#values.set(r.name, c.value);
    this.#revision++;
    return this;
  }

  /** Forget an explicit value so the default applies again. */
  reset(name: string): this {
    this.#writable();
    this.#values.delete(this.#resolve(name).name);
    this.#revision++;
    return this;
  }

  /** Was this property given explicitly (constructor, set, profile)? */
  isExplicit(name: string): boolean {
    return this.#values.has(this.#resolve(name).name);
  }

  /** The preference in force for a preference property (set or default). */
  preference(name: PreferenceProperty): Preference {
    return this.get(this.#preferenceName(name)) as Preference;
  }
  /** I App. A.1 convenience setters. */
  require(name: PreferenceProperty): this { return this.set(this.#preferenceName(name), 'require'); }
  /** Set `name` to `prefer`. */
  prefer(name: PreferenceProperty): this { return this.set(this.#preferenceName(name), 'prefer'); }
  /** Set `name` to `noPreference`. */
  noPreference(name: PreferenceProperty): this { return this.set(this.#preferenceName(name), 'noPreference'); }
  /** Set `name` to `avoid`. */
  avoid(name: PreferenceProperty): this { return this.set(this.#preferenceName(name), 'avoid'); }
  /** Set `name` to `prohibit`. */
  prohibit(name: PreferenceProperty): this { return this.set(this.#preferenceName(name), 'prohibit'); }

  /** The protocol-specific properties set in one namespace, keyed without the prefix: `{ userTimeoutValue: 30 }`. */
  namespaced(ns: string): Readonly<Record<string, unknown>> {
    if (typeof ns !== 'string') throw new TypeError(`ns must be a string, got ${describe(ns)}`);
    const prefix = `${ns.toLowerCase()}.`;
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of this.#values) if (k.toLowerCase().startsWith(prefix)) out[k.slice(prefix.length)] = v;
    return Object.freeze(out);
  }

  /** A mutable copy (same role). */
  clone(): TransportProperties {
    return new TransportProperties(this);
  }

  /** A copy with listener defaults (useTemporaryLocalAddress avoid, multipath passive) where not set explicitly. */
  forListener(): TransportProperties {
    const copy = new TransportProperties(this);
    copy.#role = 'listen';
    return this.#frozen ? copy.freeze() : copy;
  }

  /** A validated, frozen copy: set() on it throws a TypeError. Returns `this` if already frozen. */
  freeze(): TransportProperties {
    if (this.#frozen) return this;
    this.validate();
    const copy = new TransportProperties(this);
    copy.#frozen = true;
    Object.freeze(copy);
    return copy;
  }

  /**
   * Throw an InvalidPropertiesError listing every contradiction. With a role,
   * also the contradictions that only exist for that way of opening (see table).
   */
  validate(role?: Role): this {
    if (role !== undefined && role !== 'initiate' && role !== 'listen' && role !== 'rendezvous') {
      throw new TypeError(`role must be initiate, listen or rendezvous, got ${describe(role)}`);
    }
    const problems = this.#contradictions(role);
    if (problems.length > 0) fail(problems);
    return this;
  }

  /** Every effective value, namespaced ones under their full names. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(DEFAULTS) as PropertyName[]) out[name] = this.get(name);
    for (const [k, v] of this.#values) if (!GENERIC.has(k.toLowerCase())) out[k] = v;
    return out;
  }

  /** Every effective value as `[name, value]` pairs. */
  entries(): IterableIterator<[string, unknown]> {
    return Object.entries(this.toJSON())[Symbol.iterator]();
  }

  #resolve(name: string): Resolved {
    const r = resolveName(name);
    if (!('kind' in r)) {
      if (typeof name !== 'string') throw new TypeError(`property name must be a string, got ${describe(name)}`);
      fail([r]);
    }
    return r;
  }

  #preferenceName(name: string): PreferenceProperty {
    const r = this.#resolve(name);
    if (r.kind === 'generic' && PREFERENCE_PROPERTIES.includes(r.name as PreferenceProperty)) return r.name as PreferenceProperty;
    return fail([{ property: r.name, reason: 'is not a preference property' }]);
  }

  #writable(): void {
    if (this.#frozen) throw new TypeError('these transport properties are frozen; clone() them to change a copy');
  }

  #contradictions(role: Role | undefined): PropertyProblem[] {
    const p = (n: PropertyName): unknown => this.#values.get(n) ?? DEFAULTS[n];
    const out: PropertyProblem[] = [];
    const clash = (a: PropertyName, b: PropertyName, why: string): void => {
      out.push({ property: a, reason: `${String(p(a))} contradicts ${b} ${String(p(b))}: ${why}` });
      out.push({ property: b, reason: `${String(p(b))} contradicts ${a} ${String(p(a))}: ${why}` });
    };
    if (p('reliability') === 'prohibit' && p('perMsgReliability') === 'require') {
      clash('reliability', 'perMsgReliability', 'per-message reliability needs a stack that can deliver reliably (RFC 9623 §3.1)');
    }
    const dir = p('direction');
    if (role === 'initiate' && p('zeroRttMsg') === 'require' && dir === 'unidirectional-receive') {
      clash('zeroRttMsg', 'direction', 'a 0-RTT message must be sent and this side may not send');
    }
    if (role === 'initiate' && p('activeReadBeforeSend') === 'require' && dir === 'unidirectional-send') {
      clash('activeReadBeforeSend', 'direction', 'an initiator that may not receive cannot read first');
    }
    if (role === 'listen' && p('activeReadBeforeSend') === 'require' && dir === 'unidirectional-receive') {
      clash('activeReadBeforeSend', 'direction', 'a listener that may not send cannot write first');
    }
    return out;
  }
}

// RFC 9622 §8.2: the TCP User Timeout Option. Node.js can neither send the option (RFC 5482) nor set
// TCP_USER_TIMEOUT, so a value that asks for it is refused here rather than accepted and ignored.
const NO_UTO = 'cannot be honoured: Node.js can neither send the TCP User Timeout Option (RFC 5482) nor set TCP_USER_TIMEOUT; use the connTimeout and keepAliveTimeout connection properties';
TransportProperties.defineNamespaced('tcp.userTimeoutValue', (v) => `${NO_UTO} (got ${describe(v)})`);
TransportProperties.defineNamespaced('tcp.userTimeoutEnabled', (v) => (v === false ? undefined : v === true ? NO_UTO : `must be a boolean (got ${describe(v)})`));
// Whether a received option may change connTimeout: none is ever received, so either value holds.
TransportProperties.defineNamespaced('tcp.userTimeoutChangeable', bool);
TransportProperties.defineNamespaced('udp.recvBufferSize', integer(1, 2 ** 31 - 1));
TransportProperties.defineNamespaced('udp.multicastLoopback', bool);
TransportProperties.defineNamespaced('ws.maxPayload', integer(0, Number.MAX_SAFE_INTEGER));

/** What a selection property reads as once a connection exists (RFC 9622 §6.2: preferences become booleans). */
export type SelectionReadback = Readonly<Record<PreferenceProperty, boolean>> &
  Readonly<Pick<SelectionProperties, 'interface' | 'pvd' | 'multipath' | 'advertisesAltaddr' | 'direction' | 'safelyReplayable'>>;

/**
 * The selection properties of an established connection: each preference is
 * whether the chosen stack provides it (`provided`, e.g. from the selector's
 * `provided(driver, framerCount)`); the other properties read back unchanged.
 */
export function readBack(props: TransportProperties, provided: Readonly<Record<PreferenceProperty, boolean>>): SelectionReadback {
  if (!(props instanceof TransportProperties)) throw new TypeError('props must be TransportProperties');
  if (typeof provided !== 'object' || provided === null) throw new TypeError('provided must be a record of preference property to boolean');
  const out: Record<string, unknown> = {};
  for (const name of PREFERENCE_PROPERTIES) {
    const has = provided[name];
    if (typeof has !== 'boolean') throw new TypeError(`provided.${name} must be a boolean, got ${describe(has)}`);
    out[name] = has;
  }
  for (const name of ['interface', 'pvd', 'multipath', 'advertisesAltaddr', 'direction', 'safelyReplayable'] as const) out[name] = props.get(name);
  return Object.freeze(out) as SelectionReadback;
}
