/**
 * Shared benchmark plumbing: the row shape every suite returns, ratio
 * helpers, and a table printer. A row compares ours against a baseline
 * measured in the same run; `higherIsBetter` says which way the ratio reads.
 */
import { fileURLToPath } from 'node:url';

/**
 * bench/results/ at the project root, whether this runs from source (tsx) or
 * compiled (`npm run bench` builds bench/ into dist-bench/ and runs that, so
 * the library is measured as users run it: compiled JavaScript).
 */
export const RESULTS_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist-bench/') ? '../../bench/results/' : './results/', import.meta.url));

export interface BenchRow {
  suite?: string;
  name: string;
  ours: number;
  baseline: number;
  unit: string;
  /** Always ours / baseline; `higherIsBetter` says which way is good. */
  ratio: number;
  /** The goal, e.g. '≥ 0.85×' or '≤ 1.3×'. */
  goal: string;
  /** Whether the goal was met. */
  met?: boolean;
  higherIsBetter?: boolean;
  note?: string;
}

export function row(name: string, ours: number, baseline: number, unit: string, goal: string, note?: string): BenchRow {
  const ratio = baseline === 0 ? NaN : ours / baseline;
  const m = /^([≥≤])\s*([\d.]+)/.exec(goal);
  const met = m ? (m[1] === '≥' ? ratio >= Number(m[2]) : ratio <= Number(m[2])) : undefined;
  return { name, ours, baseline, unit, ratio, goal, met, higherIsBetter: m?.[1] !== '≤', note };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (n: number): string => (Number.isNaN(n) ? '-' : n >= 1000 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(3));

export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['suite', 'benchmark', 'ours', 'baseline', 'unit', 'ratio', 'goal', 'met'];
  const body = rows.map((r) => [r.suite ?? '', r.name, fmt(r.ours), fmt(r.baseline), r.unit, `${r.ratio.toFixed(3)}×`, r.goal, r.met === undefined ? '' : r.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Run `fn` repeatedly for about `ms` and return the per-second rate of `units` it reports. */
export async function rate(fn: () => Promise<number>, ms: number): Promise<number> {
  const start = performance.now();
  let units = 0;
  while (performance.now() - start < ms) units += await fn();
  return (units * 1000) / (performance.now() - start);
}

/**
 * Run `ours` and `base` `rounds` times each, alternating which goes first so
 * neither always runs on a warmer (or more tired) process; returns both
 * series of results.
 */
export async function alternate<T>(rounds: number, ours: () => Promise<T>, base: () => Promise<T>): Promise<{ ours: T[]; base: T[] }> {
  const out = { ours: [] as T[], base: [] as T[] };
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      out.ours.push(await ours());
      out.base.push(await base());
    } else {
      out.base.push(await base());
      out.ours.push(await ours());
    }
  }
  return out;
}
