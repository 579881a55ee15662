/**
 * The `NODE_DEBUG=taps` trace of a selection: when (and only when) that
 * debug log is on, this subscribes to the library's own channels and logs
 * each candidate as it starts (stack, address, time since the selection
 * began) and each selection's end (the winner or the error, with how many
 * candidates started, failed, were cancelled or denied). The pipeline logs
 * the ranking and each failure itself. Without NODE_DEBUG=taps nothing is
 * subscribed, so no message is ever built.
 *
 * @example
 * // NODE_DEBUG=taps node app.js
 * // TAPS 4242: candidate c12 tls/tcp [::1]:8443 started at 0.4 ms
 * // TAPS 4242: candidate c12 tls failed: connect ECONNREFUSED ::1:8443
 * // TAPS 4242: selection localhost:8443 (tenant me): c13 tls/tcp 127.0.0.1:8443 won at 2.1 ms; 2 started, 1 failed, 0 cancelled, 0 denied
 */
import { subscribe, tracingChannel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { InitiateTraceContext } from './diagnostics.js';
import type { CandidateRecord, SelectionReport } from './report.js';

const log = debuglog('taps');

function where(c: CandidateRecord): string {
  if (c.address === undefined) return c.hostName ?? '';
  return `${c.address.includes(':') ? `[${c.address}]` : c.address}:${c.port ?? ''}`;
}

const ms = (n: number | undefined): string => (n === undefined ? '?' : n.toFixed(1));

/** One line for a finished selection. */
export function selectionLine(report: SelectionReport, error: unknown): string {
  const count = (fate: CandidateRecord['fate']): number => report.candidates.filter((c) => c.fate === fate).length;
  const started = report.candidates.filter((c) => c.startedAt !== undefined).length;
  const tally = `${started} started, ${count('failed')} failed, ${count('cancelled')} cancelled, ${count('denied')} denied`;
  const winner = report.candidates.find((c) => c.id === report.winner);
  const outcome = winner !== undefined
    ? `${winner.id} ${winner.stack.join('/')} ${where(winner)} won at ${ms(winner.endedAt)} ms`
    : `no connection (${(error as { code?: string } | undefined)?.code ?? (error as Error | undefined)?.message ?? 'unknown'}) after ${ms(report.endedAt)} ms`;
  return `selection ${report.remote} (tenant ${report.tenant}): ${outcome}; ${tally}`;
}

if (log.enabled) {
  subscribe('taps:candidate:start', (m) => {
    const c = (m as { candidate: CandidateRecord }).candidate;
    log('candidate %s %s %s started at %s ms', c.id, c.stack.join('/'), where(c), ms(c.startedAt));
  });
  tracingChannel<unknown, InitiateTraceContext>('taps:initiate').subscribe({
    start: () => {},
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (ctx) => {
      const report = ((ctx.result ?? ctx.error) as { report?: SelectionReport } | undefined)?.report;
      if (report !== undefined) log('%s', selectionLine(report, ctx.error));
    },
    error: () => {},
  });
}
