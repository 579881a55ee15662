/**
 * The race as a picture, like a browser's network panel: `taps-node probe
 * --format svg` (a standalone SVG) and `--format html` (the SVG in a page
 * with a table of every candidate). One row per name resolution and per
 * endpoint candidate; a candidate that started has one bar from its start to
 * its outcome, coloured by its fate (won, failed, cancelled, still running
 * when the report was taken); one that never started has its row and no bar.
 * Dashed lines mark where each attempt delay after the first start ended
 * (RFC 8305 §5, RFC 9623 §4.2.1): in a staggered race the next candidate
 * starts there unless an earlier one failed first.
 *
 * Pure functions of the {@link SelectionReport}: no I/O, no clock. Every bar
 * is a `<rect class="bar fate-…" data-candidate="c3">`, so tools (and the
 * tests, through a headless browser's DOM) can count them.
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * writeFileSync('race.svg', renderWaterfallSvg(conn.report));
 */
import type { CandidateRecord, SelectionReport } from '../src/index.js';

/** Bar colours by fate (CSS colours; the tests look for them in screenshots). */
export const FATE_COLOURS = Object.freeze({
  won: '#2e7d32',
  failed: '#c62828',
  cancelled: '#f9a825',
  running: '#1565c0',
  resolution: '#7e57c2',
});

const ROW = 24;
const BAR = 14;
const LABEL_WIDTH = 300;
const PLOT_WIDTH = 640;
const TOP = 56;
const RIGHT = 150;

interface Row {
  readonly label: string;
  readonly start: number | undefined;
  readonly end: number | undefined;
  readonly kind: keyof typeof FATE_COLOURS | 'never';
  readonly id: string;
  readonly note: string;
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function endpoint(c: CandidateRecord): string {
  if (c.address === undefined) return c.hostName ?? '';
  const host = c.address.includes(':') ? `[${c.address}]` : c.address;
  return c.port === undefined ? host : `${host}:${c.port}`;
}

function kindOf(c: CandidateRecord): Row['kind'] {
  if (c.startedAt === undefined) return 'never';
  if (c.fate === 'won' || c.fate === 'failed' || c.fate === 'cancelled') return c.fate;
  return 'running';
}

/** The rows, resolutions first, then every endpoint candidate in report order. */
function rows(report: SelectionReport): Row[] {
  const out: Row[] = report.resolutions.map((r, i) => ({
    label: `${r.family === 6 ? 'AAAA' : 'A'} ${r.host}`,
    start: r.startedAt,
    end: r.endedAt,
    kind: 'resolution',
    id: `r${i + 1}`,
    note: r.error !== undefined ? `error: ${r.error}` : (r.addresses ?? []).join(', ') || 'no answer',
  }));
  for (const c of report.candidates) {
    if (c.address === undefined) continue;
    out.push({
      label: `${c.id} ${c.stack.join('/')} ${endpoint(c)}`,
      start: c.startedAt,
      end: c.endedAt,
      kind: kindOf(c),
      id: c.id,
      note: c.fate === 'won' ? 'won' : `${c.fate}${c.reason ? `: ${c.reason}` : ''}`,
    });
  }
  return out;
}

/** The last moment the report knows of, in ms since it began (at least 1). */
function span(report: SelectionReport): number {
  let end = report.endedAt ?? 0;
  for (const c of report.candidates) end = Math.max(end, c.endedAt ?? 0, c.startedAt ?? 0);
  for (const r of report.resolutions) end = Math.max(end, r.endedAt ?? 0, r.startedAt);
  return Math.max(1, end);
}

/** Where each attempt delay after the first candidate's start ends, within the span. */
export function attemptDelayMarks(report: SelectionReport): number[] {
  const starts = report.candidates.map((c) => c.startedAt).filter((t): t is number => t !== undefined);
  if (starts.length === 0 || !(report.attemptDelay > 0) || report.racing !== 'staggered') return [];
  const first = Math.min(...starts);
  const total = span(report);
  const marks: number[] = [];
  for (let t = first + report.attemptDelay; t <= total && marks.length < 50; t += report.attemptDelay) marks.push(t);
  return marks;
}

function ms(n: number): string {
  return n < 10 ? n.toFixed(1) : n.toFixed(0);
}

/** The waterfall as a standalone SVG document. */
export function renderWaterfallSvg(report: SelectionReport): string {
  const all = rows(report);
  const total = span(report);
  const x = (t: number): number => LABEL_WIDTH + (Math.max(0, Math.min(t, total)) / total) * PLOT_WIDTH;
  const width = LABEL_WIDTH + PLOT_WIDTH + RIGHT;
  const height = TOP + all.length * ROW + 40;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${escape(`selection for ${report.remote} · tenant ${report.tenant}`)}</text>`,
    `<text x="8" y="36" fill="#555">${escape(`racing ${report.racing}, attempt delay ${report.attemptDelay} ms · ${ms(total)} ms`)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const t = (total * i) / 4;
    out.push(`<line x1="${x(t)}" y1="${TOP - 6}" x2="${x(t)}" y2="${height - 34}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${x(t)}" y="${height - 20}" text-anchor="middle" fill="#555">${ms(t)} ms</text>`);
  }
  for (const t of attemptDelayMarks(report)) {
    out.push(`<text x="${x(t)}" y="${TOP - 10}" text-anchor="middle" font-size="10" fill="#757575">+${report.attemptDelay} ms</text>`);
    out.push(`<line class="attempt-delay" x1="${x(t)}" y1="${TOP - 6}" x2="${x(t)}" y2="${height - 34}" stroke="#757575" stroke-dasharray="4 3"><title>attempt delay ends at ${ms(t)} ms</title></line>`);
  }
  all.forEach((r, i) => {
    const y = TOP + i * ROW;
    if (i % 2 === 1) out.push(`<rect x="0" y="${y - 4}" width="${width}" height="${ROW}" fill="#f5f5f5"/>`);
    out.push(`<text x="8" y="${y + BAR - 3}">${escape(r.label)}</text>`);
    if (r.start !== undefined && r.kind !== 'never') {
      const a = x(r.start);
      const b = Math.max(a + 3, x(r.end ?? total));
      const cls = r.kind === 'resolution' ? 'resolution' : `bar fate-${r.kind}`;
      out.push(`<rect class="${cls}" data-candidate="${r.id}" x="${a.toFixed(1)}" y="${y}" width="${(b - a).toFixed(1)}" height="${BAR}" rx="2" fill="${FATE_COLOURS[r.kind]}"><title>${escape(`${r.label}: ${ms(r.start)}→${r.end === undefined ? '…' : ms(r.end)} ms, ${r.note}`)}</title></rect>`);
      out.push(`<text x="${Math.min(b + 6, LABEL_WIDTH + PLOT_WIDTH + 4)}" y="${y + BAR - 3}" fill="#333">${escape(r.kind === 'resolution' ? r.note : r.note.split(':')[0] ?? '')}</text>`);
    } else {
      out.push(`<text class="never" x="${LABEL_WIDTH + 4}" y="${y + BAR - 3}" fill="#9e9e9e">${escape(`never started (${r.note})`)}</text>`);
    }
  });
  const legend = (['won', 'failed', 'cancelled', 'running', 'resolution'] as const).map((k, i) => {
    const lx = LABEL_WIDTH + i * 110;
    return `<rect x="${lx}" y="${height - 12}" width="10" height="10" fill="${FATE_COLOURS[k]}"/><text x="${lx + 14}" y="${height - 3}">${k}</text>`;
  });
  out.push(...legend, '</svg>');
  return `${out.join('\n')}\n`;
}

/** The waterfall in an HTML page, with a table of every candidate (those dropped before the race too). */
export function renderWaterfallHtml(report: SelectionReport): string {
  const rowsHtml = report.candidates
    .map((c) => `<tr class="fate-${c.fate}"><td>${c.id}</td><td>${escape(c.stack.join('/'))}</td><td>${escape(endpoint(c))}</td><td>${c.fate}</td><td>${c.startedAt === undefined ? '' : ms(c.startedAt)}</td><td>${c.endedAt === undefined ? '' : ms(c.endedAt)}</td><td>${escape(c.reason ?? '')}${c.decision?.rule ? ` <em>(rule ${escape(c.decision.rule)})</em>` : ''}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(`taps-node probe ${report.remote}`)}</title>
<style>body{font-family:sans-serif;margin:16px}table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
tr.fate-won td{color:${FATE_COLOURS.won}}tr.fate-failed td{color:${FATE_COLOURS.failed}}</style></head>
<body><h1 style="font-size:18px">${escape(`Race for ${report.remote}`)}</h1>
${renderWaterfallSvg(report)}
<h2 style="font-size:16px">Every candidate</h2>
<table><thead><tr><th>id</th><th>stack</th><th>endpoint</th><th>fate</th><th>start ms</th><th>end ms</th><th>why</th></tr></thead><tbody>
${rowsHtml}
</tbody></table></body></html>
`;
}
