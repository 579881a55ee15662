/**
 * Compiling a policy: rules → indexes, once, so that deciding is a couple of
 * trie walks. A {@link CompiledRules} is immutable; a reload compiles a new
 * one and swaps it in whole.
 *
 * Rules are filed in one bucket per (use, scheme), `*` schemes in their own
 * bucket per use; a request probes its exact bucket and the `*` bucket.
 * Inside a bucket: names in a reversed-label trie, IPv4 and IPv6 prefixes in
 * PATRICIA tries, presets and `*` by address class, ports as sorted ranges.
 *
 * Lookup grants are derived: every rule that names hosts by name
 * (`api.example.com`, `*.example.com`, `*`, or the names of a preset) for
 * any use also lets those names be looked up for the same scheme; a deny of
 * such names on every port also denies their lookup. Address rules (literals,
 * CIDRs, `@public`…) never grant a lookup: DNS labels are a data channel.
 * Rather than copying those rules, a lookup bucket points at the buckets of
 * the other uses of its scheme and probes their name indexes port-blind.
 *
 * A deny rule written without uses (`deny *://@cloud-metadata:*`) covers
 * connect and redirect; it is filed once, under `connect`, marked
 * `implied`, and redirect requests also probe the connect buckets for
 * implied denies (`CompiledRules.impliedDeny`), so it costs no extra memory.
 *
 * @example
 * const rules = compileRules(parsePolicy('allow tcp://10.0.0.0/8:*'));
 */
import type { AddressClass } from './classes.js';
import { ADDRESS_CLASSES, PRESETS } from './classes.js';
import { DEFAULT_DENY_USES, type PolicyRule } from './grammar.js';
import type { PolicySpec } from './source.js';
import { CidrTrie, NameTrie, type PortSet } from './trie.js';
import { NETWORK_USES, POLICY_PROTOCOLS, type NetworkUse, type PolicyProtocol } from './types.js';

/** One rule as filed in an index. */
export interface Entry {
  readonly rule: PolicyRule;
  readonly deny: boolean;
  readonly ports: PortSet | null;
  /** Names exactly one address (/32, /128): the only CIDR form that reaches cloud metadata. */
  readonly exact: boolean;
  /** A preset's names in an allow rule: they grant the lookup only, never a connect by that name. */
  readonly lookupOnly: boolean;
  /** A deny written without uses: filed under connect, it also denies redirect. */
  readonly implied: boolean;
}

export class Bucket {
  readonly names = new NameTrie<Entry>();
  readonly anyName: Entry[] = [];
  readonly v4 = new CidrTrie<Entry>(1);
  readonly v6 = new CidrTrie<Entry>(4);
  readonly classes = new Map<AddressClass, Entry[]>();
  /** Lookup buckets only: the same scheme's buckets of other uses whose name rules also grant lookups. */
  derived: Bucket[] | null = null;
  hasNames(): boolean {
    return this.names.size > 0 || this.anyName.length > 0;
  }
  addClass(cls: AddressClass, e: Entry): void {
    const list = this.classes.get(cls);
    if (list) list.push(e);
    else this.classes.set(cls, [e]);
  }
}

const SCHEME_COUNT = POLICY_PROTOCOLS.length + 1;
const CONNECT: readonly NetworkUse[] = ['connect'];
export const USE_INDEX: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(NETWORK_USES.map((u, i) => [u, i * SCHEME_COUNT])),
);
export const SCHEME_INDEX: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries([...POLICY_PROTOCOLS.map((p, i) => [p, i]), ['*', POLICY_PROTOCOLS.length]]),
);
/** Offset of the `*` scheme inside a use's row. */
export const ANY_SCHEME = POLICY_PROTOCOLS.length;

/** The indexes of one rule set (a tenant's revision, or the grants of one claims token). */
export class CompiledRules {
  /** Buckets by USE_INDEX[use] + SCHEME_INDEX[scheme]. */
  readonly buckets: ReadonlyArray<Bucket | undefined>;
  readonly ruleCount: number;
  /** Some connect bucket holds implied denies that redirect requests must also probe. */
  readonly impliedDeny: boolean;
  constructor(buckets: Array<Bucket | undefined>, ruleCount: number, impliedDeny = false) {
    this.buckets = buckets;
    this.ruleCount = ruleCount;
    this.impliedDeny = impliedDeny;
    Object.freeze(this);
  }
}

/** Build the indexes for a list of rules (allow and deny together). */
export function compileRules(rules: Iterable<PolicyRule>): CompiledRules {
  const buckets: Array<Bucket | undefined> = new Array(NETWORK_USES.length * SCHEME_COUNT).fill(undefined);
  const bucket = (use: NetworkUse, scheme: PolicyProtocol | '*'): Bucket => {
    const i = USE_INDEX[use]! + SCHEME_INDEX[scheme]!;
    return (buckets[i] ??= new Bucket());
  };
  let count = 0;
  let impliedDeny = false;
  for (const rule of rules) {
    count++;
    const deny = rule.effect === 'deny';
    const h = rule.host;
    const exact = h.kind === 'cidr' && h.prefix === (h.family === 4 ? 32 : 128);
    const implied = deny && rule.uses === DEFAULT_DENY_USES;
    impliedDeny ||= implied;
    const entry: Entry = Object.freeze({ rule, deny, ports: rule.ports, exact, lookupOnly: false, implied });
    let namesEntry: Entry | undefined;
    for (const use of implied ? CONNECT : rule.uses) {
      // An allow of @loopback for connect covers loopback addresses; its names (localhost) only grant the lookup.
      const lookupOnly = !deny && use !== 'lookup' && h.kind === 'preset';
      if (lookupOnly) namesEntry ??= Object.freeze({ ...entry, lookupOnly: true });
      fileEntry(bucket(use, rule.scheme), entry, lookupOnly ? namesEntry! : entry);
    }
  }
  // Link each scheme's lookup bucket to the buckets whose name rules grant lookups.
  for (const scheme of [...POLICY_PROTOCOLS, '*'] as const) {
    const sources: Bucket[] = [];
    for (const use of NETWORK_USES) {
      if (use === 'lookup') continue;
      const b = buckets[USE_INDEX[use]! + SCHEME_INDEX[scheme]!];
      if (b !== undefined && b.hasNames()) sources.push(b);
    }
    if (sources.length > 0) bucket('lookup', scheme).derived = sources;
  }
  return new CompiledRules(buckets, count, impliedDeny);
}

/** File one entry; `names` is the entry a preset's names are filed with. */
function fileEntry(b: Bucket, e: Entry, names: Entry): void {
  const h = e.rule.host;
  switch (h.kind) {
    case 'any':
      b.anyName.push(e);
      if (e.deny) for (const c of ADDRESS_CLASSES) b.addClass(c, e);
      else b.addClass('public', e);
      return;
    case 'name':
      b.names.insert(h.name, false, e);
      return;
    case 'suffix':
      b.names.insert(h.suffix, true, e);
      return;
    case 'cidr':
      if (h.family === 4) b.v4.insert(h.words, h.prefix, e);
      else b.v6.insert(h.words, h.prefix, e);
      return;
    case 'preset': {
      const p = PRESETS[h.preset];
      for (const n of p.names) b.names.insert(n, false, names);
      for (const sfx of p.suffixes) b.names.insert(sfx, true, names);
      // A deny of @any also reaches cloud metadata; an allow of @any does not.
      const classes = e.deny && h.preset === 'any' ? ADDRESS_CLASSES : p.classes;
      for (const c of classes) b.addClass(c, e);
      return;
    }
  }
}

/** A custom rule: sees the canonical request, answers a decision or `undefined` (no opinion). May be async. */
export type CustomRule = (request: CustomRequest) =>
  | import('./types.js').PolicyDecision
  | undefined
  | Promise<import('./types.js').PolicyDecision | undefined>;

/** What a custom rule is shown: the request after canonicalisation, with the built-in verdict. */
export interface CustomRequest {
  readonly tenant: string;
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  /** The host as the caller gave it. */
  readonly host: string | undefined;
  /** The canonical name, when the request carries a name. */
  readonly name: string | undefined;
  /** The canonical address, when the request carries one. */
  readonly address: string | undefined;
  readonly addressClass: AddressClass | undefined;
  readonly port: number | undefined;
  readonly url: string | undefined;
  readonly revision: number;
  /** What the compiled rules decided (no deny rule matched, or it would not be asked). */
  readonly builtin: import('./types.js').PolicyDecision;
}

/** One tenant's policy, compiled: immutable, swapped whole on reload. */
export interface CompiledPolicy {
  readonly spec: PolicySpec;
  readonly rules: CompiledRules;
  readonly mode: 'enforce' | 'audit';
  /** Strict answers for every name (`answers strict`), else only for names granted by these rules (their text). */
  readonly strictAnswers: true | ReadonlySet<string>;
  readonly limits: PolicySpec['limits'];
  readonly custom: CustomRule | undefined;
  /** How long an async custom rule may take before the decision is `policy-error`. */
  readonly customTimeoutMs: number;
}

/** Compile a parsed policy. */
export function compilePolicy(spec: PolicySpec, options: { custom?: CustomRule | undefined; customTimeoutMs?: number | undefined } = {}): CompiledPolicy {
  if (options.custom !== undefined && typeof options.custom !== 'function') throw new TypeError('options.custom must be a function');
  const t = options.customTimeoutMs ?? 1000;
  if (!(t > 0 && Number.isFinite(t))) throw new RangeError('options.customTimeoutMs must be a positive number of milliseconds');
  return Object.freeze({
    spec,
    rules: compileRules([...spec.deny, ...spec.allow]),
    mode: spec.mode,
    strictAnswers: spec.answers === 'strict' ? true : new Set(spec.allow.filter((r) => r.strict).map((r) => r.text)),
    limits: spec.limits,
    custom: options.custom,
    customTimeoutMs: t,
  });
}
