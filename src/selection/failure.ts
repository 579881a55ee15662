/**
 * The error a failed selection rejects with: the most informative across its attempts (docs/errors.md).
 *
 * @example
 * throw failure(err, report, selectionSignal, callerSignal);
 */
import { EstablishmentError, abortCode, isCertificateFailure, isTapsError } from '../errors.js';
import type { CandidateRecord, SelectionReport } from '../report.js';

/**
 * Pick the one error that best says why nothing was established: the most informative across attempts.
 * A certificate that failed verification (ERR_TAPS_SECURITY_FAILED) first, then a definitive failure such
 * as a refusal (ERR_TAPS_ESTABLISHMENT_FAILED naming it), even when a timeout ended what still ran;
 * ERR_TAPS_TIMEOUT only when nothing definitive happened. A caller's own abort stays ERR_TAPS_ABORTED; when the
 * tenant's quota stopped every attempt, ERR_TAPS_QUOTA_EXCEEDED.
 */
export function failure(err: unknown, report: SelectionReport, signal: AbortSignal | undefined, callerSignal: AbortSignal | undefined): Error {
  if (err instanceof EstablishmentError || err instanceof TypeError || err instanceof RangeError) return err;
  const timedOut = timeoutOf(signal, callerSignal);
  const callerAborted = callerSignal?.aborted === true && abortCode(callerSignal.reason) !== 'ERR_TAPS_TIMEOUT';
  if (callerAborted) {
    return new EstablishmentError('ERR_TAPS_ABORTED', `establishment aborted by the caller (${(callerSignal!.reason as Error)?.message ?? String(callerSignal!.reason)})`, report, { cause: callerSignal!.reason });
  }
  const t = tally(report.candidates);
  const failed = t.failed;
  const detail = (list: readonly CandidateRecord[]): string => list.map((c) => `${c.id} ${c.driver} ${c.address ?? ''}: ${c.reason}`).join('; ');
  const after = timedOut === undefined ? '' : `; the rest ended: ${timedOut.message}`;
  if (t.insecure !== undefined) {
    const first = t.insecure[0]!;
    return new EstablishmentError('ERR_TAPS_SECURITY_FAILED', `${report.remote}: the peer failed verification (${detail(t.insecure)})${after}`, report, { cause: first.error ?? err });
  }
  // Every attempt stopped by the tenant's quota (a TLS handshake that spent the byte budget): that is the answer.
  if (failed.length > 0 && t.allQuota) {
    return new EstablishmentError('ERR_TAPS_QUOTA_EXCEEDED', `${report.remote}: the tenant's quota stopped every attempt (${detail(failed)})`, report, { cause: failed[0]!.error ?? err });
  }
  if (timedOut !== undefined && failed.length === 0) return new EstablishmentError('ERR_TAPS_TIMEOUT', timedOut.message, report, { cause: timedOut.cause });
  if (timedOut !== undefined) {
    return new EstablishmentError('ERR_TAPS_ESTABLISHMENT_FAILED', `no candidate for ${report.remote} could be established (${detail(failed)})${after}`, report, { cause: failed[0]!.error ?? err });
  }
  if (t.attempted === 0 && t.denied === undefined && t.pathless !== undefined && !t.open) {
    return new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', `no allowed interface reaches ${report.remote}: ${t.pathless.map((c) => `${c.interface}: ${c.reason}`).join('; ')}`, report, { cause: err });
  }
  if (t.attempted === 0 && t.denied !== undefined) {
    return new EstablishmentError('ERR_TAPS_POLICY_PROHIBITED', `every candidate for ${report.remote} was denied by the tenant's policy: ${t.denied.reason}`, report, { cause: err });
  }
  if (t.attempted === 0 && report.resolutions.length > 0 && report.resolutions.every((r) => !r.addresses?.length)) {
    const why = report.resolutions.map((r) => `${r.family === 6 ? 'AAAA' : 'A'}: ${r.error ?? 'no addresses'}`).join('; ');
    return new EstablishmentError('ERR_TAPS_RESOLUTION_FAILED', `could not resolve ${report.remote} (${why})`, report, { cause: err });
  }
  const text = detail(failed);
  return new EstablishmentError('ERR_TAPS_ESTABLISHMENT_FAILED', `no candidate for ${report.remote} could be established${text ? ` (${text})` : ''}`, report, { cause: err });
}

/** What the candidates' fates add up to, in one pass over the report (every failure path reads it). */
interface Tally {
  /** Failed attempts, in report order. */
  readonly failed: CandidateRecord[];
  /** Failed attempts whose peer failed certificate verification, if any. */
  readonly insecure: CandidateRecord[] | undefined;
  /** Every failed attempt was stopped by the tenant's quota. */
  readonly allQuota: boolean;
  /** Attempts that ran: failed, cancelled or won. */
  readonly attempted: number;
  /** The first candidate the policy denied, if any. */
  readonly denied: CandidateRecord | undefined;
  /** Candidates without an allowed interface (unsuitable with one named), if any. */
  readonly pathless: CandidateRecord[] | undefined;
  /** A candidate is still pending or was skipped. */
  readonly open: boolean;
}

function tally(cs: readonly CandidateRecord[]): Tally {
  const failed: CandidateRecord[] = [];
  let insecure: CandidateRecord[] | undefined;
  let allQuota = true;
  let attempted = 0;
  let denied: CandidateRecord | undefined;
  let pathless: CandidateRecord[] | undefined;
  let open = false;
  for (const c of cs) {
    switch (c.fate) {
      case 'failed':
        failed.push(c);
        attempted++;
        if (isCertificateFailure(c.error)) (insecure ??= []).push(c);
        if (c.code !== 'ERR_TAPS_QUOTA_EXCEEDED') allQuota = false;
        break;
      case 'cancelled':
      case 'won':
        attempted++;
        break;
      case 'denied':
        denied ??= c;
        break;
      case 'unsuitable':
        if (c.interface !== undefined) (pathless ??= []).push(c);
        break;
      case 'pending':
      case 'skipped':
        open = true;
        break;
    }
  }
  return { failed, insecure, allQuota, attempted, denied, pathless, open };
}

/** The timeout that ended the selection, if one did: its own budget, or a caller's signal that timed out. */
function timeoutOf(signal: AbortSignal | undefined, callerSignal: AbortSignal | undefined): { message: string; cause: unknown } | undefined {
  if (signal?.aborted && signal.reason !== undefined && !(callerSignal?.aborted && signal.reason === callerSignal.reason)) {
    const r = signal.reason;
    if (isTapsError(r) && r.code === 'ERR_TAPS_TIMEOUT') return { message: r.message, cause: r };
  }
  if (callerSignal?.aborted && abortCode(callerSignal.reason) === 'ERR_TAPS_TIMEOUT') {
    return { message: `establishment timed out: the caller's signal (${(callerSignal.reason as Error)?.message ?? String(callerSignal.reason)})`, cause: callerSignal.reason };
  }
  return undefined;
}
