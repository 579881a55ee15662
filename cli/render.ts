/**
 * Pure text rendering of a {@link SelectionReport} for `taps probe`: the
 * resolutions, the candidate tree (RFC 9623 §4.1: protocol stack → endpoint)
 * and the race timeline (one row per candidate that reached the race, a bar
 * from its start to its outcome on a shared time axis, its fate and reason).
 * No I/O here: the functions return strings, so tests feed them reports.
 *
 * @example
 * const text = renderTimeline(report, { width: 48, ascii: false });
 * // c3 tls [::1]:8443       ✗                           failed   0.0→0.8 ms  connect ECONNREFUSED
 * // c4 tls 127.0.0.1:8443   ├──────────────────────────● won      0.9→301.2 ms
 */
import { droppedGroups, type CandidateRecord, type SelectionReport } from '../src/index.js';

export interface RenderOptions {
  /** Columns of the bar area (default 48). */
  readonly width?: number;
  /** ASCII only (`|-*xo`) instead of box drawing. */
  readonly ascii?: boolean;
  /** Why each stack ranks where it does, by candidate id (captured by onProgress before a failure overwrote `reason`). */
  readonly rankReasons?: ReadonlyMap<string, string>;
  /** When nothing won: why the candidates still running were cut off (e.g. the timeout's message). */
  readonly cutOff?: string | undefined;
}

const GLYPHS = {
  unicode: { start: '├', line: '─', won: '●', failed: '✗', cancelled: '○', pending: '…', branch: '├─', last: '└─', pipe: '│ ' },
  ascii: { start: '|', line: '-', won: '*', failed: 'x', cancelled: 'o', pending: '.', branch: '+-', last: '`-', pipe: '| ' },
} as const;

const ms = (n: number | undefined): string => (n === undefined ? '?' : n < 10 ? n.toFixed(1) : n.toFixed(0));

/** `127.0.0.1:443`, `[::1]:443`, or the host name when there is no address. */
export function where(c: CandidateRecord): string {
  if (c.address === undefined) return c.hostName ?? '';
  const host = c.family === 6 || c.address.includes(':') ? `[${c.address}]` : c.address;
  return c.port === undefined ? host : `${host}:${c.port}`;
}

/** The candidates that reached the race stage: one endpoint each. */
export function leaves(report: SelectionReport): CandidateRecord[] {
  return report.candidates.filter((c) => c.address !== undefined);
}

/** The last moment the report knows of, in ms since it began (at least 1). */
export function timeSpan(report: SelectionReport): number {
  let end = report.endedAt ?? 0;
  for (const c of report.candidates) end = Math.max(end, c.endedAt ?? 0, c.startedAt ?? 0);
  return Math.max(1, end);
}

export function renderHeader(report: SelectionReport, policy: string): string {
  return `probe ${report.remote} · tenant ${report.tenant} (${policy}) · racing ${report.racing}, attempt delay ${report.attemptDelay} ms\n`;
}

export function renderResolutions(report: SelectionReport): string {
  if (report.resolutions.length === 0) return '';
  const lines = ['resolution'];
  for (const r of report.resolutions) {
    const rr = r.family === 6 ? 'AAAA' : 'A   ';
    const took = r.endedAt === undefined ? '(no answer before the race ended)' : `${ms(r.endedAt - r.startedAt)} ms`;
    const answer = r.error !== undefined ? `error: ${r.error}` : r.addresses === undefined ? '…' : r.addresses.length === 0 ? '(none)' : r.addresses.join(', ');
    lines.push(`  ${rr} ${r.host} → ${answer}  ${took}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The candidate tree: each stack with its verdict, and its endpoints below it. Stacks dropped for one and the
 * same reason share one line (`unsuitable: 3 stacks need a URL scheme naming them: ws, wss, http`).
 */
export function renderTree(report: SelectionReport, options: RenderOptions = {}): string {
  const g = options.ascii ? GLYPHS.ascii : GLYPHS.unicode;
  const shared = droppedGroups(report).filter((d) => d.candidates.length > 1);
  const inShared = new Set(shared.flatMap((d) => d.candidates.map((c) => c.driver)));
  const groups = new Map<string, CandidateRecord[]>();
  for (const c of report.candidates) if (!inShared.has(c.driver)) groups.set(c.driver, [...(groups.get(c.driver) ?? []), c]);
  const sharedNames = shared.map((d) => d.candidates.map((c) => c.driver).join(', '));
  const stackWidth = Math.max(...[...groups.values()].map((cs) => label(cs[0]!).length), 8);
  const lines = ['candidate tree (stack → endpoint)'];
  let rank = 0;
  // Stacks that reached the race first, in rank order; then those dropped before it.
  const ordered = [...groups.values()].sort((a, b) => Number(b.some((c) => c.address !== undefined)) - Number(a.some((c) => c.address !== undefined)));
  for (const cs of ordered) {
    const first = cs[0]!;
    const stackLevel = cs.filter((c) => c.address === undefined);
    const endpoints = cs.filter((c) => c.address !== undefined);
    let verdict: string;
    if (endpoints.length === 0) {
      verdict = stackLevel.map((c) => `${c.fate}: ${c.reason ?? ''}`).join('; ');
    } else {
      rank++;
      const why = endpoints.map((c) => options.rankReasons?.get(c.id)).find((r) => r !== undefined);
      verdict = `ranked #${rank}${why ? `: ${why}` : ''}`;
      for (const c of stackLevel) verdict += `; ${c.fate}: ${c.reason ?? ''}`;
    }
    lines.push(`  ${label(first).padEnd(stackWidth)}  ${verdict}`);
    const epWidth = Math.max(0, ...endpoints.map((c) => `${c.id} ${where(c)}`.length));
    endpoints.forEach((c, i) => {
      const branch = i === endpoints.length - 1 ? g.last : g.branch;
      const rule = c.decision?.rule ? `policy: ${c.decision.rule}` : '';
      const reason = c.fate === 'won' ? '' : cancelledWhy(report, c, options);
      const tail = [reason, rule].filter((s) => s.length > 0).join(' · ');
      lines.push(`    ${branch} ${`${c.id} ${where(c)}`.padEnd(epWidth)}  ${c.fate.padEnd(10)}${tail}`.trimEnd());
    });
  }
  shared.forEach((d, i) => lines.push(`  ${d.fate}: ${d.sentence}: ${sharedNames[i]!}`));
  return `${lines.join('\n')}\n`;
}

/** `tcp`, `tls (tls/tcp)`: the driver id (unique), with its stack when they differ. */
function label(c: CandidateRecord): string {
  const stack = c.stack.join('/');
  return stack === c.driver ? stack : `${c.driver} (${stack})`;
}

/** A candidate's reason; for one cancelled because the whole selection gave up, that cause. */
function cancelledWhy(report: SelectionReport, c: CandidateRecord, options: RenderOptions): string {
  if (c.fate === 'cancelled' && report.winner === undefined && options.cutOff !== undefined) return `still connecting when the selection ended: ${options.cutOff}`;
  return c.reason ?? '';
}


/** The race timeline: a shared axis, one bar per endpoint candidate. */
export function renderTimeline(report: SelectionReport, options: RenderOptions = {}): string {
  const rows = leaves(report);
  if (rows.length === 0) return 'race timeline: no candidate reached the race\n';
  const g = options.ascii ? GLYPHS.ascii : GLYPHS.unicode;
  const width = Math.max(10, options.width ?? 48);
  const span = timeSpan(report);
  const col = (t: number): number => Math.min(width - 1, Math.max(0, Math.round((t / span) * (width - 1))));
  const names = rows.map((c) => `${c.id} ${c.driver} ${where(c)}`);
  const nameWidth = Math.max(...names.map((n) => n.length));
  const lines = [`race timeline (ms; ${g.won} won  ${g.failed} failed  ${g.cancelled} cancelled  blank: never started)`];
  lines.push(`${' '.repeat(nameWidth + 2)}${axis(span, width)}`);
  rows.forEach((c, i) => {
    const bar = Array<string>(width).fill(' ');
    if (c.startedAt !== undefined) {
      const a = col(c.startedAt);
      const end = c.endedAt ?? report.endedAt ?? span;
      const b = Math.max(a, col(end));
      for (let k = a; k < b; k++) bar[k] = k === a ? g.start : g.line;
      bar[b] = c.fate === 'won' ? g.won : c.fate === 'failed' ? g.failed : c.fate === 'cancelled' ? g.cancelled : g.pending;
    }
    const time = c.startedAt === undefined ? '—' : `${ms(c.startedAt)}→${c.endedAt === undefined ? '…' : ms(c.endedAt)}`;
    const why = c.fate === 'won' ? '' : c.fate === 'denied' ? `${c.reason ?? ''}${c.decision?.rule ? ` (rule ${c.decision.rule})` : ''}` : cancelledWhy(report, c, options);
    lines.push(`${names[i]!.padEnd(nameWidth)}  ${bar.join('')} ${c.fate.padEnd(10)}${time.padEnd(14)}${why}`.trimEnd());
  });
  return `${lines.join('\n')}\n`;
}

/** `0    75   150   225   300` spread over the bar width. */
function axis(span: number, width: number): string {
  const out = Array<string>(width + 8).fill(' ');
  const ticks = width >= 40 ? 4 : 2;
  for (let i = 0; i <= ticks; i++) {
    const t = (span * i) / ticks;
    const text = ms(t);
    const at = Math.round((i / ticks) * (width - 1));
    const from = i === ticks ? Math.max(0, at - text.length + 1) : at;
    for (let k = 0; k < text.length; k++) out[from + k] = text[k]!;
  }
  return out.join('').trimEnd();
}
