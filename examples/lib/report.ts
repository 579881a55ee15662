/**
 * Shared printing for the examples: which candidate won a selection and,
 * for every other stack, one line saying why it did not.
 *
 * @example
 * say(winnerLine(conn.report));
 * for (const line of whyNot(conn.report)) say(`    ${line}`);
 */
import type { CandidateRecord, SelectionReport } from '../../src/index.js';

/** Print one line (examples print; the library never does). */
export const say = (s = ''): void => void process.stdout.write(`${s}\n`);

const endpoint = (c: CandidateRecord): string =>
  c.address === undefined ? '' : ` ${c.family === 6 ? `[${c.address}]` : c.address}:${c.port}`;

/** `won: tls (tls/tcp) 127.0.0.1:4433 in 5.1 ms — requires met: …` */
export function winnerLine(report: SelectionReport, rankWhy?: ReadonlyMap<string, string>): string {
  const w = report.candidates.find((c) => c.id === report.winner);
  if (!w) return 'no winner';
  const why = rankWhy?.get(w.id) ?? w.reason;
  return `won: ${w.driver} (${w.stack.join('/')})${endpoint(w)} in ${(w.endedAt ?? 0).toFixed(1)} ms${why ? ` — ${why}` : ''}`;
}

/**
 * Keep each candidate's ranking reason as `onProgress` reports it (the
 * report replaces it with the outcome later). Pass `onProgress` to
 * `initiate()` and `reasons` to {@link whyNot}.
 */
export function rankReasons(): { readonly reasons: Map<string, string>; onProgress(c: CandidateRecord): void } {
  const reasons = new Map<string, string>();
  return {
    reasons,
    onProgress: (c) => {
      if (c.fate === 'pending' && c.startedAt === undefined && c.reason !== undefined && !reasons.has(c.id)) reasons.set(c.id, c.reason);
    },
  };
}

/** One line per driver that did not win: its fate(s) and the reason. */
export function whyNot(report: SelectionReport, rankWhy?: ReadonlyMap<string, string>): string[] {
  const byDriver = new Map<string, CandidateRecord[]>();
  for (const c of report.candidates) byDriver.set(c.driver, [...(byDriver.get(c.driver) ?? []), c]);
  const winner = report.candidates.find((c) => c.id === report.winner);
  const width = Math.max(...[...byDriver.keys()].map((d) => d.length));
  const out: string[] = [];
  for (const [driver, cs] of byDriver) {
    const others = cs.filter((c) => c !== winner);
    if (others.length === 0) continue;
    const parts = others.map((c) => {
      switch (c.fate) {
        case 'skipped':
          return `not attempted${endpoint(c)}: ranked below the winner${rankWhy?.has(c.id) ? ` (${rankWhy.get(c.id)})` : ''}`;
        case 'cancelled':
          return `started${endpoint(c)} but lost the race`;
        case 'won':
          return 'won';
        default:
          return `${c.fate}${endpoint(c)}: ${c.reason ?? ''}`;
      }
    });
    out.push(`${driver.padEnd(width)}  ${[...new Set(parts)].join('; ')}`);
  }
  return out;
}
