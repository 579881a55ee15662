/**
 * The race as Trace Event JSON (`taps-node probe --format trace`), the format
 * Perfetto (ui.perfetto.dev) and chrome://tracing open: one track per name
 * resolution and per endpoint candidate, a complete event (`ph: 'X'`) for
 * each attempt from its start to its outcome with the fate in `args`, and an
 * instant event (`ph: 'i'`) where each attempt delay ended. Times are
 * microseconds from the start of the selection.
 *
 * @example
 * writeFileSync('race.json', JSON.stringify(traceEvents(conn.report)));
 */
import type { SelectionReport } from '../src/index.js';
import { attemptDelayMarks } from './waterfall.js';

/** One event of the Trace Event Format. */
export interface TraceEvent {
  readonly name: string;
  readonly ph: 'X' | 'i' | 'M';
  readonly pid: number;
  readonly tid: number;
  readonly ts?: number;
  readonly dur?: number;
  readonly cat?: string;
  readonly s?: 'g' | 'p' | 't';
  readonly args?: Readonly<Record<string, unknown>>;
}

const PID = 1;
const us = (ms: number): number => Math.round(ms * 1000);

/** The report as `{ traceEvents, displayTimeUnit }`. */
export function traceEvents(report: SelectionReport): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms'; otherData: Record<string, unknown> } {
  const events: TraceEvent[] = [{ name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: `taps-node selection ${report.remote}` } }];
  const end = report.endedAt ?? Math.max(0, ...report.candidates.map((c) => c.endedAt ?? c.startedAt ?? 0));
  let tid = 1;
  for (const r of report.resolutions) {
    const name = `${r.family === 6 ? 'AAAA' : 'A'} ${r.host}`;
    events.push({ name: 'thread_name', ph: 'M', pid: PID, tid, args: { name } });
    events.push({
      name, cat: 'resolution', ph: 'X', pid: PID, tid, ts: us(r.startedAt), dur: us((r.endedAt ?? end) - r.startedAt),
      args: { addresses: r.addresses ?? [], ...(r.error !== undefined ? { error: r.error } : {}) },
    });
    tid++;
  }
  for (const c of report.candidates) {
    if (c.address === undefined) continue;
    const where = c.address.includes(':') ? `[${c.address}]:${c.port}` : `${c.address}:${c.port}`;
    const name = `${c.id} ${c.stack.join('/')} ${where}`;
    events.push({ name: 'thread_name', ph: 'M', pid: PID, tid, args: { name } });
    if (c.startedAt !== undefined) {
      events.push({
        name: `${c.driver} ${c.fate}`, cat: 'candidate', ph: 'X', pid: PID, tid, ts: us(c.startedAt), dur: us((c.endedAt ?? end) - c.startedAt),
        args: { candidate: c.id, fate: c.fate, stack: c.stack, address: c.address, port: c.port, ...(c.code ? { code: c.code } : {}), ...(c.reason ? { reason: c.reason } : {}) },
      });
    }
    tid++;
  }
  for (const t of attemptDelayMarks(report)) {
    events.push({ name: 'attempt delay ended', cat: 'race', ph: 'i', s: 'p', pid: PID, tid: 0, ts: us(t), args: { attemptDelay: report.attemptDelay } });
  }
  return {
    traceEvents: events,
    displayTimeUnit: 'ms',
    otherData: { remote: report.remote, tenant: report.tenant, racing: report.racing, attemptDelay: report.attemptDelay, winner: report.winner, startedAt: new Date(report.startedAt).toISOString() },
  };
}
