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
}

/** A short human explanation of a report, one candidate per line. */
export function explainReport(report: SelectionReport): string {
  const lines = [`selection for ${report.remote} (tenant ${report.tenant}, ${report.racing}, attempt delay ${report.attemptDelay} ms)`];
  for (const c of report.candidates) {
    const via = c.interface === undefined ? '' : ` via ${c.interface}${c.localAddress === undefined ? '' : ` (${c.localAddress})`}`;
    const where = c.address === undefined ? '' : ` ${c.family === 6 ? `[${c.address}]` : c.address}:${c.port}${via}`;
    const time = c.startedAt === undefined ? '' : ` @${c.startedAt.toFixed(1)}ms→${c.endedAt === undefined ? '…' : `${c.endedAt.toFixed(1)}ms`}`;
    const why = c.reason ? `: ${c.reason}` : '';
    lines.push(`  ${c.id} ${c.stack.join('/')}${where} ${c.fate}${time}${why}`);
  }
  return lines.join('\n');
}
