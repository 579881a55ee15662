/**
 * The reference docs cannot drift from the code: docs/errors.md names every
 * TapsErrorCode, and docs/debugging.md lists exactly the diagnostics_channel
 * channels the library creates, and the README's quick start is exactly the
 * runnable examples/quick-start.ts (which test/examples.test.ts runs).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The quick start block of the README (a `js` fence under "## Quick start"). */
function snippet(readme: string): string {
  return /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
}

/** The example's relative imports as a package user writes them. */
function asPackageImports(code: string): string {
  return code.replaceAll("'../src/index.js'", "'taps-node'").replaceAll("'../transports/tls/certificates.js'", "'taps-node/certificates'");
}

describe('docs', () => {
  it('docs/errors.md has a row for every TapsErrorCode, and no other', () => {
    const errors = readFileSync('src/errors.ts', 'utf8');
    const union = /export type TapsErrorCode =([^;]+);/.exec(errors)?.[1] ?? '';
    const codes = [...union.matchAll(/'ERR_TAPS_([A-Z_]+)'/g)].map((m) => m[1]!);
    expect(codes.length).toBeGreaterThan(10);
    const table = readFileSync('docs/errors.md', 'utf8').split('## Every code')[1] ?? '';
    const rows = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.sort()).toEqual([...codes].sort());
  });

  it('docs/debugging.md explains every candidate fate in its table', () => {
    const report = readFileSync('src/report.ts', 'utf8');
    const union = /export type CandidateFate =([^;]+);/.exec(report)?.[1] ?? '';
    const fates = [...union.matchAll(/\| '([a-z]+)'/g)].map((m) => m[1]!);
    expect(fates.length).toBeGreaterThan(6);
    const section = readFileSync('docs/debugging.md', 'utf8').split('## Reading a report')[1]?.split('\n## ')[0] ?? '';
    const rows = [...section.matchAll(/^\| `([a-z]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.sort()).toEqual([...fates].sort());
    expect(section).toContain('`@a→b`');
  });

  it('docs/debugging.md lists exactly the diagnostics channels in the code', () => {
    const inCode = new Set<string>();
    for (const file of [...sources('src'), ...sources('transports')]) {
      const text = readFileSync(file, 'utf8');
      if (!text.includes('diagnostics_channel')) continue;
      for (const m of text.matchAll(/['"](taps:[a-z-]+(?::[a-z-]+)*)['"]/g)) inCode.add(m[1]!);
    }
    expect(inCode.size).toBeGreaterThan(0);
    const doc = readFileSync('docs/debugging.md', 'utf8').split('## `diagnostics_channel` channels')[1]?.split('\n## ')[0] ?? '';
    const listed = new Set([...doc.matchAll(/^\| `(taps:[a-z:-]+)` \|/gm)].map((m) => m[1]!));
    expect([...listed].sort()).toEqual([...inCode].sort());
  });

  it("README's quick start is the block of examples/quick-start.ts, verbatim", () => {
    const example = readFileSync('examples/quick-start.ts', 'utf8');
    const block = example.split('// quick-start:begin\n')[1]?.split('// quick-start:end')[0] ?? '';
    expect(block.length).toBeGreaterThan(200);
    const readme = readFileSync('README.md', 'utf8');
    expect(snippet(readme)).toBe(asPackageImports(block));
  });
});
