/**
 * Ranking suitable stacks (RFC 9623 §4.1.3: prohibit and require are already
 * applied; now order by prefer, break ties by avoid). Built from small
 * comparators joined in order, so each rule reads on its own line (after
 * js-libp2p's address sorter). Equal inputs give equal orders: the last
 * tie-breaker is the driver's registration order.
 *
 * Order of the rules: security level; preferences (then avoidances) the caller set explicitly;
 * then experience (the racing cache, racing-cache.ts): a stack that won at
 * this endpoint before first, and a QUIC stack that never answered here after
 * the TCP ones, so a default selection costs what a TLS connect costs against
 * the TLS-only servers most endpoints still are, and QUIC leads once it
 * answered (RFC 9623 §4.1.1.3); then preferences left at their defaults,
 * avoided properties, stack depth, registration order.
 *
 * @example
 * const ordered = rankStacks(stacks, { properties, security, framerCount: 1 });
 */
import type { Driver } from '../driver.js';
import type { PreferenceProperty, TransportProperties } from '../properties.js';
import type { SecurityParameters } from '../security.js';
import { provided } from '../provided.js';
import type { RacingCacheEntry } from './racing-cache.js';
import { JUDGED } from './suitability.js';

export type Comparator<T> = (a: T, b: T) => number;

/** Join comparators: the first that tells two items apart decides. */
export function compose<T>(...comparators: readonly Comparator<T>[]): Comparator<T> {
  return (a, b) => {
    for (const c of comparators) {
      const r = c(a, b);
      if (r !== 0) return r;
    }
    return 0;
  };
}

export interface RankedStack {
  readonly driver: Driver;
  /** Registration order: the stable last tie-breaker. */
  readonly order: number;
  readonly provides: Readonly<Record<PreferenceProperty, boolean>>;
}

export interface RankContext {
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framerCount: number;
  /**
   * What the racing cache remembers of each driver at this endpoint (wins only matter here). Given (even
   * empty) for an active open, so a QUIC stack without a win on record goes after TCP; absent for a
   * listener, which races nothing.
   */
  readonly history?: ReadonlyMap<Driver, RacingCacheEntry> | undefined;
}

/** Encrypted stacks before unencrypted ones (matters only for opportunistic security). */
export const bySecurity: Comparator<RankedStack> = (a, b) => (a.driver.security === 'none' ? 1 : 0) - (b.driver.security === 'none' ? 1 : 0);

/** How many of the stack's properties are at `level` (only those set explicitly, or only defaults, when `explicit` says). */
function count(props: TransportProperties, level: 'prefer' | 'avoid', s: RankedStack, explicit?: boolean): number {
  // Counted once per `provides` (one frozen object per driver and framer choice) and properties: a frozen
  // snapshot serves every initiate() of a Preconnection, and a sort asks each stack several times.
  const key = explicit === undefined ? level : explicit ? EXPLICIT[level] : DEFAULTED[level];
  let byProps = counted.get(s.provides);
  if (byProps === undefined) counted.set(s.provides, (byProps = new WeakMap()));
  let memo = props.frozen ? byProps.get(props) : undefined;
  if (memo === undefined) {
    memo = new Map();
    if (props.frozen) byProps.set(props, memo);
  }
  let n = memo.get(key);
  if (n !== undefined) return n;
  n = 0;
  for (const name of JUDGED) {
    if (explicit !== undefined && props.isExplicit(name) !== explicit) continue;
    if (props.preference(name) === level && s.provides[name]) n++;
  }
  memo.set(key, n);
  return n;
}

const counted = new WeakMap<object, WeakMap<TransportProperties, Map<string, number>>>();
const EXPLICIT = { prefer: 'prefer explicit', avoid: 'avoid explicit' } as const;
const DEFAULTED = { prefer: 'prefer default', avoid: 'avoid default' } as const;

/**
 * More preferred properties met ranks higher; preferences the caller set
 * explicitly weigh more than defaults (RFC 9623 §4.1.3).
 */
export const byPreferred = (props: TransportProperties): Comparator<RankedStack> => (a, b) =>
  byExplicitPreferred(props)(a, b) || byDefaultPreferred(props)(a, b);

/** More explicitly preferred properties met ranks higher. */
export const byExplicitPreferred = (props: TransportProperties): Comparator<RankedStack> => (a, b) => count(props, 'prefer', b, true) - count(props, 'prefer', a, true);

/** More properties met that are preferred by default ranks higher. */
export const byDefaultPreferred = (props: TransportProperties): Comparator<RankedStack> => (a, b) => count(props, 'prefer', b, false) - count(props, 'prefer', a, false);

/** A stack that won at this endpoint before ranks first; of two, the one that connected faster. */
export const byHistory = (history: ReadonlyMap<Driver, RacingCacheEntry> | undefined): Comparator<RankedStack> => (a, b) => {
  if (history === undefined) return 0;
  const ta = wonIn(history, a);
  const tb = wonIn(history, b);
  return ta === tb ? 0 : ta === undefined ? 1 : tb === undefined ? -1 : ta - tb;
};

/** A QUIC stack with no win on record here goes after the others: it is not raced blind ahead of TCP. */
export const byAnswered = (history: ReadonlyMap<Driver, RacingCacheEntry> | undefined): Comparator<RankedStack> => (a, b) =>
  (blind(history, a) ? 1 : 0) - (blind(history, b) ? 1 : 0);

function wonIn(history: ReadonlyMap<Driver, RacingCacheEntry>, s: RankedStack): number | undefined {
  const e = history.get(s.driver);
  return e?.outcome === 'won' ? (e.connectTime ?? 0) : undefined;
}

/** Over QUIC (RFC 9000), in an active open, and never seen to win here. */
export function blind(history: ReadonlyMap<Driver, RacingCacheEntry> | undefined, s: RankedStack): boolean {
  return history !== undefined && s.driver.stack.includes('quic') && wonIn(history, s) === undefined;
}

/** Fewer explicitly avoided properties present ranks higher. */
export const byExplicitAvoided = (props: TransportProperties): Comparator<RankedStack> => (a, b) => count(props, 'avoid', a, true) - count(props, 'avoid', b, true);

/** Fewer avoided properties present ranks higher (the tie-breaker). */
export const byAvoided = (props: TransportProperties): Comparator<RankedStack> => (a, b) => count(props, 'avoid', a) - count(props, 'avoid', b);

/** Fewer layers first: less to set up for the same properties. */
export const byStackDepth: Comparator<RankedStack> = (a, b) => a.driver.stack.length - b.driver.stack.length;

export const byRegistration: Comparator<RankedStack> = (a, b) => a.order - b.order;

export function rankStacks(drivers: readonly Driver[], ctx: RankContext): RankedStack[] {
  const stacks = drivers.map((driver, order) => ({ driver, order, provides: provided(driver, ctx.framerCount, ctx.properties) }));
  if (stacks.length < 2) return stacks;
  const p = ctx.properties;
  const cmp = compose(
    bySecurity, byExplicitPreferred(p), byExplicitAvoided(p), byHistory(ctx.history), byAnswered(ctx.history), byDefaultPreferred(p), byAvoided(p), byStackDepth, byRegistration,
  );
  return stacks.sort(cmp);
}

/** Path-level properties every stack meets alike: mentioned only when the caller set them. */
const QUIET: ReadonlySet<PreferenceProperty> = new Set(['useTemporaryLocalAddress', 'activeReadBeforeSend']);

/**
 * Why a stack sits where it does, for the report:
 * "requires met: reliability, preserveOrder; prefers met: multistreaming; prefers missed: zeroRttMsg".
 */
export function explainRank(s: RankedStack, props: TransportProperties): string {
  if (!props.frozen) return buildExplanation(s, props);
  // A Preconnection's frozen snapshot serves many initiates: explain each stack once, share the string.
  // Keyed by the stack's `provides` (one frozen object per driver and framer choice) and its security.
  let byStack = explained.get(props);
  if (!byStack) explained.set(props, (byStack = new WeakMap()));
  let bySecurity = byStack.get(s.provides);
  if (!bySecurity) byStack.set(s.provides, (bySecurity = new Map()));
  let text = bySecurity.get(s.driver.security);
  if (text === undefined) bySecurity.set(s.driver.security, (text = buildExplanation(s, props)));
  return text;
}

const explained = new WeakMap<TransportProperties, WeakMap<object, Map<string, string>>>();

function buildExplanation(s: RankedStack, props: TransportProperties): string {
  const named = JUDGED.filter((n) => !QUIET.has(n) || props.isExplicit(n));
  const at = (level: 'require' | 'prefer' | 'avoid', has: boolean): PreferenceProperty[] =>
    named.filter((n) => props.preference(n) === level && s.provides[n] === has);
  const parts: string[] = [];
  const required = at('require', true);
  if (required.length) parts.push(`requires met: ${required.join(', ')}`);
  const met = at('prefer', true);
  const missed = at('prefer', false);
  if (met.length) parts.push(`prefers met: ${met.join(', ')}`);
  if (missed.length) parts.push(`prefers missed: ${missed.join(', ')}`);
  const avoided = at('avoid', true);
  if (avoided.length) parts.push(`has avoided: ${avoided.join(', ')}`);
  if (s.driver.security !== 'none') parts.push('encrypted');
  return parts.length ? parts.join('; ') : 'no preference set: ranked by stack depth and registration order';
}
