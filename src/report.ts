/**
 * The selection report: every candidate and what became of it (STYLE §4).
 *
 * Errors, logs, the CLI, the demo and tests all read this one record. Each
 * candidate is a leaf of the candidate tree of RFC 9623 §4.1 — one driver
 * stack × one derived endpoint (address and port) — or a whole stack when it
 * was dropped before any endpoint was derived (unsuitable, unavailable).
 *
 * @example
 * for (const c of conn.report.candidates) console.log(c.stack.join('/'), c.address, c.fate, c.reason ?? '');
 */
import type { PolicyDecision } from './policy/types.js';

/** What became of a candidate. */
export type CandidateFate =
  | 'unsuitable' // the stack's capabilities contradict a require/prohibit, or security differs
  | 'unavailable' // the driver cannot run here (optional module missing)
  | 'denied' // the tenant's policy said no
  | 'pending' // in progress: not decided yet (seen only while the selection runs, e.g. by onProgress)
  | 'skipped' // ranked, never started: the race was won or given up first (the reason says which)
  | 'failed' // attempted and failed
  | 'cancelled' // attempted, then aborted because another won or the caller aborted
  | 'won'; // this one became the connection

/** One candidate of a selection and its fate (a leaf of the candidate tree, or a dropped stack). */
export interface CandidateRecord {
  /** Stable id within the report, e.g. `c3`. */
  readonly id: string;
  /** Driver id (`tls`, `udp`, …). */
  readonly driver: string;
  /** Protocol stack, top first. */
  readonly stack: readonly string[];
  readonly hostName?: string | undefined;
  readonly address?: string | undefined;
  readonly family?: 4 | 6 | undefined;
  readonly port?: number | undefined;
  /** The local interface this candidate uses (RFC 9623 §4.1 path branch), when the path was chosen. */
  readonly interface?: string | undefined;
  /** The local address it binds to on that interface. */
  readonly localAddress?: string | undefined;
  fate: CandidateFate;
  /** Why: unsuitable/unavailable reason, denial reason, failure message. */
  reason?: string | undefined;
  /** Stable code for failures (`ERR_TAPS_…`) or denials (`no-match`, …). */
  code?: string | undefined;
  /** The policy decision, for every candidate that reached the policy stage. */
  decision?: PolicyDecision | undefined;
  /** Position in the ranked order (0 = first), for candidates that were ranked. */
  rank?: number | undefined;
  /** Milliseconds since the report began. */
  startedAt?: number | undefined;
  endedAt?: number | undefined;
  /** The error that ended a failed attempt. */
  error?: Error | undefined;
}

/** One name resolution (AAAA or A) made during a selection. */
export interface ResolutionRecord {
  readonly host: string;
  readonly family: 4 | 6;
  readonly startedAt: number;
  endedAt?: number;
  addresses?: readonly string[];
  error?: string;
}

/** Why a selection ended as it did: every candidate, its fate and timing. Errors, logs, the CLI and tests read it. */
export interface SelectionReport {
  /** Wall-clock time (ms since epoch) the selection began; all other times are relative to it. */
  readonly startedAt: number;
  readonly tenant: string;
  readonly remote: string;
  readonly racing: 'staggered' | 'simultaneous' | 'failover';
  readonly attemptDelay: number;
  readonly resolutions: ResolutionRecord[];
  readonly candidates: CandidateRecord[];
  /** The id of the winning candidate, once there is one. */
  winner?: string | undefined;
  endedAt?: number | undefined;
  /** What the tenant's racing cache changed (stacks skipped, order moved), when it changed anything. */
  cache?: string | undefined;
}

/**
 * How a report names a candidate's stack: the stack (`tls/tcp`) when the driver's id is its top protocol,
 * else the id and the stack (`webtransport-h3-datagram (webtransport/h3/quic/udp)`). Driver ids are unique,
 * so two drivers on the same protocols never share a label.
 */
export function candidateLabel(c: Pick<CandidateRecord, 'driver' | 'stack'>): string {
  const stack = c.stack.join('/');
  return c.stack[0] === c.driver ? stack : `${c.driver} (${stack})`;
}

/** Stacks dropped before the race for one and the same reason: one line of a report instead of one each. */
export interface DroppedGroup {
  readonly fate: 'unsuitable' | 'unavailable';
  /** The records, in report order. */
  readonly candidates: readonly CandidateRecord[];
  /**
   * The reason, said once for all of them: the record's own reason when there is one record, else the shared
   * sentence with the stacks as its subject (`8 stacks need a URL scheme naming them`).
   */
  readonly sentence: string;
}

const SUBJECT = '\u0000';
/** A reason whose subject is the stack (`tcp is unencrypted …`) says it of several stacks with the plural verb. */
const PLURAL_VERBS: Readonly<Record<string, string>> = Object.freeze({ is: 'are', needs: 'need', has: 'have', lacks: 'lack', cannot: 'cannot', may: 'may', does: 'do' });

/** The reason with the driver's own id replaced by a placeholder, so equal reasons of different drivers compare equal. */
function reasonKey(c: CandidateRecord): string {
  const reason = c.reason ?? '';
  const id = c.driver.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return reason.replace(new RegExp(`(?<![\\w-])${id}(?![\\w-])`, 'g'), SUBJECT);
}

/** `8 stacks need a URL scheme naming them`, or `2 stacks: reliability is required but each is unreliable`. */
function pluralSentence(key: string, n: number): string {
  const m = /^\u0000 (\S+) ([^]*)$/.exec(key);
  const verb = m === null ? undefined : PLURAL_VERBS[m[1]!];
  if (m !== null && verb !== undefined) return `${n} stacks ${verb} ${m[2]!.replace(/naming it\b/, 'naming them').replaceAll(SUBJECT, 'each')}`;
  return `${n} stacks: ${key.replaceAll(SUBJECT, 'each')}`;
}

/**
 * The stacks dropped before any endpoint was derived (`unsuitable`, `unavailable`), grouped by fate and reason,
 * in the order each group first appears. A stack that also has endpoint candidates is not among them.
 */
export function droppedGroups(report: SelectionReport): DroppedGroup[] {
  const raced = new Set(report.candidates.filter((c) => c.address !== undefined).map((c) => c.driver));
  const groups = new Map<string, { fate: DroppedGroup['fate']; key: string; candidates: CandidateRecord[] }>();
  for (const c of report.candidates) {
    if (c.address !== undefined || raced.has(c.driver) || (c.fate !== 'unsuitable' && c.fate !== 'unavailable')) continue;
    const key = reasonKey(c);
    const k = `${c.fate}\u0001${key}`;
    let g = groups.get(k);
    if (g === undefined) groups.set(k, (g = { fate: c.fate, key, candidates: [] }));
    g.candidates.push(c);
  }
  return [...groups.values()].map((g) => ({
    fate: g.fate,
    candidates: g.candidates,
    sentence: g.candidates.length === 1 ? (g.candidates[0]!.reason ?? '') : pluralSentence(g.key, g.candidates.length),
  }));
}

/**
 * A short human explanation of a report: one line per candidate that reached the policy or the race, in
 * report order, then one line per reason a group of stacks was dropped (`unsuitable: 8 stacks need a URL
 * scheme naming them: ws, wss, …`). Times are `@start→end` in ms since the selection began, `…` while it
 * runs; docs/debugging.md ("Reading a report") explains every fate and reason.
 */
export function explainReport(report: SelectionReport): string {
  const lines = [`selection for ${report.remote} (tenant ${report.tenant}, ${report.racing}, attempt delay ${report.attemptDelay} ms)`];
  if (report.cache !== undefined) lines.push(`  ${report.cache}`);
  const groups = droppedGroups(report);
  const collapsed = new Set(groups.flatMap((g) => g.candidates));
  for (const c of report.candidates) {
    if (collapsed.has(c)) continue;
    const via = c.interface === undefined ? '' : ` via ${c.interface}${c.localAddress === undefined ? '' : ` (${c.localAddress})`}`;
    const where = c.address === undefined ? '' : ` ${c.family === 6 ? `[${c.address}]` : c.address}:${c.port}${via}`;
    const time = c.startedAt === undefined ? '' : ` @${c.startedAt.toFixed(1)}ms→${c.endedAt === undefined ? '…' : `${c.endedAt.toFixed(1)}ms`}`;
    const why = c.reason ? `: ${c.reason}` : '';
    lines.push(`  ${c.id} ${candidateLabel(c)}${where} ${c.fate}${time}${why}`);
  }
  for (const g of groups) {
    if (g.candidates.length === 1) {
      const c = g.candidates[0]!;
      lines.push(`  ${c.id} ${candidateLabel(c)} ${c.fate}: ${g.sentence}`);
    } else {
      lines.push(`  ${g.fate}: ${g.sentence}: ${g.candidates.map((c) => c.driver).join(', ')}`);
    }
  }
  return lines.join('\n');
}
