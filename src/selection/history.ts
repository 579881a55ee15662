/**
 * Experience in a selection (RFC 9623 §4.1.1.3, §9.2): before the race, the tenant's racing cache
 * (racing-cache.ts) ranks and prunes the suitable stacks; after it, the race's outcome is written back.
 *
 * - A stack that failed here and has not expired is put off (recorded `skipped`, with why and for how
 *   long), unless every stack failed: then all race again in their usual order. Put off, not refused:
 *   when nothing else connects (denied by the policy, or failed) the selection tries it after all
 *   (pipeline.ts), so an entry never turns a connect to the only allowed stack into a refusal.
 * - A stack that won here ranks first (rank.ts `byHistory`), after what the caller set explicitly.
 * - A QUIC stack with no win here ranks after the TCP ones (rank.ts `byAnswered`), cache or not.
 * - What changed the order is said in one line (`report.cache`).
 * - Learned: each stack's win (with its connect time), and each stack whose every started attempt failed
 *   definitively (not cancelled, not a certificate failure, which says nothing about the stack).
 *
 * @example
 * const { ranked, skipped, note } = rankWithHistory(suitable, ctx, cache, 'example.com', portOf);
 * // ... race ...
 * learn(cache, 'example.com', report);
 */
import type { Driver } from '../driver.js';
import type { SelectionReport } from '../report.js';
import type { Clock } from '../clock.js';
import { failedAt, wonAt, type RacingCache, type RacingCacheEntry } from './racing-cache.js';
import { rankStacks, type RankContext, type RankedStack } from './rank.js';

export interface HistoryRanking {
  readonly ranked: RankedStack[];
  /** Stacks put off because they failed here recently, with the entry that says so (tried last, if nothing else connects). */
  readonly skipped: readonly { readonly driver: Driver; readonly entry: RacingCacheEntry; readonly reason: string }[];
  /** What the cache changed, for the report; undefined when it changed nothing. */
  readonly note: string | undefined;
}

const NO_HISTORY: ReadonlyMap<Driver, RacingCacheEntry> = new Map();
/** Nothing skipped: one shared empty list (a literal with an array literal inside is built by the runtime each time). */
const NO_SKIPPED: HistoryRanking['skipped'] = Object.freeze([]);

/** Rank `suitable` with what `cache` remembers of `endpoint` (see the module comment). */
export function rankWithHistory(
  suitable: readonly Driver[],
  ctx: Omit<RankContext, 'history'>,
  cache: RacingCache | undefined,
  endpoint: string,
  portOf: (driver: Driver) => number | undefined,
): HistoryRanking {
  let history: Map<Driver, RacingCacheEntry> | undefined;
  let won = false;
  if (cache !== undefined && cache.size > 0 && suitable.length > 1) {
    for (const d of suitable) {
      const port = portOf(d);
      const e = port === undefined ? undefined : cache.get(endpoint, port, d.id);
      if (e === undefined) continue;
      (history ??= new Map()).set(d, e);
      won ||= e.outcome === 'won';
    }
  }
  if (history === undefined) return { ranked: rankStacks(suitable, withHistory(ctx, NO_HISTORY)), skipped: NO_SKIPPED, note: undefined };
  const now = cache!.now();
  const failed = suitable.filter((d) => history.get(d)?.outcome === 'failed');
  const kept = failed.length > 0 && failed.length < suitable.length ? suitable.filter((d) => !failed.includes(d)) : suitable;
  const skipped = kept === suitable ? [] : failed.map((driver) => {
    const entry = history.get(driver)!;
    return { driver, entry, reason: `racing cache: ${driver.id} failed here ${seconds(now - entry.at)} ago (${entry.reason}); skipped for ${seconds(entry.expires - now)} more` };
  });
  const ranked = rankStacks(kept, withHistory(ctx, history));
  // Only a win moves a stack (rank.ts byHistory, byAnswered): with failures alone the usual order is this one.
  const usual = won ? rankStacks(kept, withHistory(ctx, NO_HISTORY)) : ranked;
  const moved = usual !== ranked && ranked.some((s, i) => s.driver !== usual[i]!.driver);
  const parts: string[] = [];
  if (skipped.length > 0) parts.push(`skipped ${skipped.map((s) => s.driver.id).join(', ')} (failed here recently)`);
  if (moved) {
    const won = ranked.filter((s) => history.get(s.driver)?.outcome === 'won');
    const why = won.map((s) => `${s.driver.id} won here ${seconds(now - history.get(s.driver)!.at)} ago, ready in ${history.get(s.driver)!.connectTime?.toFixed(1)} ms`);
    parts.push(`order ${ranked.map((s) => s.driver.id).join(' > ')} instead of ${usual.map((s) => s.driver.id).join(' > ')}${why.length > 0 ? ` (${why.join('; ')})` : ''}`);
  }
  return { ranked, skipped, note: parts.length > 0 ? `racing cache: ${parts.join('; ')}` : undefined };
}

/** The context with `history`, built field by field (a spread adding a field takes V8's slow path on every call). */
function withHistory(ctx: Omit<RankContext, 'history'>, history: ReadonlyMap<Driver, RacingCacheEntry>): RankContext {
  return { properties: ctx.properties, security: ctx.security, framerCount: ctx.framerCount, history };
}

/** Write a finished selection's outcome back (see the module comment). */
export function learn(cache: RacingCache | undefined, endpoint: string, report: SelectionReport, clock?: Clock, reading?: number): void {
  if (cache === undefined || cache.maxEntries === 0) return;
  // One started candidate that won (a direct attempt): no per-driver tally needed.
  let only: SelectionReport['candidates'][number] | undefined;
  let started = 0;
  // Indexed, not for-of: before the JIT optimizes this, a for-of allocates an iterator and a result per step.
  const candidates = report.candidates;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (c.startedAt !== undefined && c.port !== undefined && started++ === 0) only = c;
  }
  if (started === 1 && only!.fate === 'won') {
    // The selection's end is the time of the win: the cache reads its clock again only if it keeps another one.
    wonAt(cache, endpoint, only!.port!, only!.driver, Math.round(((only!.endedAt ?? only!.startedAt!) - only!.startedAt!) * 1000) / 1000, clock, reading);
    return;
  }
  // Per driver, in the order first started: its started attempts, whether one won, whether every one failed definitively.
  const seen: Tally[] = [];
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    if (c.startedAt === undefined || c.port === undefined) continue;
    let s: Tally | undefined;
    for (let j = 0; j < seen.length; j++) if (seen[j]!.driver === c.driver) s = seen[j];
    if (s === undefined) seen.push((s = { driver: c.driver, port: c.port, won: undefined, failed: undefined, open: false }));
    if (c.fate === 'won') s.won = (c.endedAt ?? c.startedAt) - c.startedAt;
    else if (c.fate === 'failed' && c.code !== 'ERR_TAPS_SECURITY_FAILED') s.failed ??= c.reason ?? c.code ?? 'failed';
    else s.open = true; // cancelled, or a certificate failure: says nothing about the stack
  }
  // The selection's last reading is the time of its outcome (as for a direct win): no clock reading per entry.
  for (let j = 0; j < seen.length; j++) {
    const s = seen[j]!;
    if (s.won !== undefined) wonAt(cache, endpoint, s.port, s.driver, Math.round(s.won * 1000) / 1000, clock, reading);
    else if (s.failed !== undefined && !s.open) failedAt(cache, endpoint, s.port, s.driver, s.failed, clock, reading);
  }
}

/** One driver's started attempts in a finished selection (`learn`). */
interface Tally {
  readonly driver: string;
  readonly port: number;
  won: number | undefined;
  failed: string | undefined;
  open: boolean;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : `${(ms / 1000).toFixed(1)} s`;
}
