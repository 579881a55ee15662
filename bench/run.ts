/**
 * `npm run bench`: every benchmark row, each a ratio against plain Node (or
 * the protocol package used directly) measured side by side in this one run.
 * Prints a table and writes bench/results/bench.json.
 *
 *   npm run bench                 # all suites
 *   npm run bench -- core policy  # only these suites
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { formatTable, type BenchRow, RESULTS_DIR } from './harness.js';

const SUITES: Record<string, string> = {
  core: './core.js',
  defaults: './defaults.js',
  'first-use': './first-use.js',
  policy: './policy.js',
  websocket: './websocket.js',
  http: './http.js',
  quic: './quic.js',
  'quic-dgram': './quic-datagrams.js',
  webtransport: './webtransport.js',
  fleet: './fleet.js',
  partial: './partial.js',
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length > 0 ? wanted : Object.keys(SUITES);
const rows: BenchRow[] = [];
const failures: string[] = [];
for (const name of names) {
  const spec = SUITES[name];
  if (!spec) {
    process.stderr.write(`unknown suite ${name}; known: ${Object.keys(SUITES).join(', ')}\n`);
    process.exit(2);
  }
  process.stdout.write(`running ${name}…\n`);
  try {
    const mod = (await import(spec)) as { run: () => Promise<BenchRow[]> };
    const got = await mod.run();
    rows.push(...got.map((r) => ({ ...r, suite: name })));
  } catch (err) {
    failures.push(`${name}: ${(err as Error)?.stack ?? String(err)}`);
  }
}
process.stdout.write(`\nNode ${process.version}, ${process.platform}/${process.arch}\n${formatTable(rows)}\n`);
await mkdir(RESULTS_DIR, { recursive: true });
await writeFile(join(RESULTS_DIR, 'bench.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows, failures }, null, 2));
if (failures.length > 0) {
  process.stderr.write(`\n${failures.length} suite(s) failed:\n${failures.join('\n')}\n`);
  process.exitCode = 1;
}
