/**
 * Rows from alternating rounds (bench/core.ts, bench/core-udp.ts, bench/policy.ts): the
 * medians of each side, and as the ratio the median of the per-pair ratios.
 * A pair ran back to back, so it shares the machine's weather; on a shared,
 * noisy host that is steadier than the ratio of the two medians.
 *
 * @example
 * const r = pairedRow('TCP 1 KiB', oursRates, netRates, 'msg/s', '≥ 0.85×', '21 rounds of 20000');
 */
import { median, row, type BenchRow } from './harness.js';

/** `ours[i]` and `base[i]` ran back to back. */
export function pairedRow(name: string, ours: number[], base: number[], unit: string, goal: string, note: string): BenchRow {
  const pairs = ours.map((o, i) => o / base[i]!);
  const r = row(name, median(ours), median(base), unit, goal, `${note}; ratio = median of per-pair ratios (${Math.min(...pairs).toFixed(2)}–${Math.max(...pairs).toFixed(2)})`);
  const ratio = median(pairs);
  const m = /^([≥≤])\s*([\d.]+)/.exec(goal);
  return { ...r, ratio, met: m ? (m[1] === '≥' ? ratio >= Number(m[2]) : ratio <= Number(m[2])) : r.met };
}
