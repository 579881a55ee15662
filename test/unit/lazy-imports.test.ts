/**
 * Importing the library loads no package at all: jose (claims), undici (http),
 * ws (websocket) and the QUIC/WebTransport packages load on first use, so a host that only dials TCP does
 * not pay ~35 MB of resident memory for them. Checked in a child process
 * whose module hooks report every package it resolves.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const hooks = pathToFileURL(fileURLToPath(new URL('../helpers/report-loads.mjs', import.meta.url))).href;

function packagesLoadedBy(code: string): string[] {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', `data:text/javascript,import { register } from "node:module"; register(${JSON.stringify(hooks)});`, '--input-type=module', '-e', code],
    { cwd: root, encoding: 'utf8', timeout: 30_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain('imported');
  return [...new Set([...r.stderr.matchAll(/^LOADED (\S+)$/gm)].map((m) => m[1]!))];
}

describe('lazy imports', () => {
  it('the library and every driver import without loading any package', () => {
    const loaded = packagesLoadedBy("await import('./src/index.ts'); await import('./transports/index.ts'); console.log('imported');");
    // Not one package: jose, undici, ws, the QUIC and WebTransport packages all load on first use.
    expect(loaded).toEqual([]);
  }, 30_000);

  it('the hook does see a package that is imported (the check can fail)', () => {
    const loaded = packagesLoadedBy("await import('./src/index.ts'); await import('undici'); await import('ws'); console.log('imported');");
    expect(loaded).toEqual(expect.arrayContaining(['undici', 'ws']));
  }, 30_000);
});
