/**
 * The package as a consumer gets it: packed once for this file (test/package/
 * pack.ts: built in a staging copy, `npm pack`, installed from the tarball
 * into a fresh folder), then
 * - the tarball holds LICENSE, README, CHANGELOG, the built code with its
 *   declarations and maps, the sources the maps point to, and no `docs/api`
 *   or tests; every `exports` target is in it;
 * - strict TypeScript consumers (`skipLibCheck: false`; NodeNext and Bundler
 *   resolution; with and without `exactOptionalPropertyTypes`) compile
 *   against every subpath, and the typed surfaces reject typos;
 * - `require()` of the package works on this Node (≥ 20.19);
 * - the README's quick start runs as pasted (`node quick-start.mjs`);
 * - `npx taps-node` runs from the consumer folder: `--version`, and a probe
 *   of a real loopback server;
 * - an esbuild bundle of a consumer holds every driver the package ships
 *   (the library in the bundle, its dependencies in node_modules) and makes
 *   a loopback connection.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, TSC, packAndInstall, type Packed } from './pack.js';

const run = promisify(execFile);
const FIXTURES = join(ROOT, 'test/package/fixtures');
let packed: Packed;

beforeAll(async () => {
  packed = await packAndInstall();
  console.log(`packed ${packed.files.length} files; ms: ${JSON.stringify(packed.timings)}`);
}, 300_000);
afterAll(() => packed?.remove());

describe('the tarball', () => {
  it('holds LICENSE, README, CHANGELOG, docs, code, declarations and maps; no docs/api, no tests', () => {
    const f = packed.files;
    for (const must of ['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'docs/errors.md', 'docs/certificates.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/index.d.ts.map', 'dist/cli/taps.js', 'src/index.ts']) {
      expect(f).toContain(must);
    }
    // The entries re-export from shared chunks (scripts/bundle.mjs); the code, with its map, is in the chunks.
    expect(f.filter((p) => /^dist\/chunks\/core-[\w-]+\.js(\.map)?$/.test(p))).toHaveLength(2);
    expect(f.filter((p) => p.startsWith('docs/api') || p.startsWith('test/') || p.startsWith('bench/') || p.startsWith('examples/') || p.endsWith('.tsbuildinfo'))).toEqual([]);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(packed.manifest['license']).toBe('MIT');
  });

  it('every exports target is packed, and ./package.json is exported', () => {
    const targets: string[] = [];
    for (const [key, value] of Object.entries(packed.manifest.exports)) {
      if (typeof value === 'string') targets.push(value);
      else targets.push(...Object.values(value as Record<string, string>));
      if (key !== '.' && key !== './package.json') expect(readFileSync(join(FIXTURES, 'every-subpath.ts'), 'utf8')).toContain(`'taps-node/${key.slice(2)}'`);
    }
    expect(packed.manifest.exports['./package.json']).toBe('./package.json');
    for (const t of targets) expect(packed.files).toContain(t.replace(/^\.\//, ''));
  });

  it('every source map and declaration map points at a packed file', () => {
    const maps = packed.files.filter((p) => p.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(100);
    const missing: string[] = [];
    const root = join(packed.consumer, 'node_modules/taps-node');
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(root, m), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      for (const s of map.sources) {
        const target = join(root, m, '..', s);
        if (!existsSync(target) && map.sourcesContent === undefined) missing.push(`${m} → ${s}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('engines is what require() of an ES module needs, and the bin is taps-node', () => {
    expect(packed.manifest['engines']).toEqual({ node: '^20.19.0 || >=22.12.0' });
    expect(packed.manifest['bin']).toEqual({ 'taps-node': './dist/cli/taps.js' });
  });
});

describe('strict TypeScript consumers (skipLibCheck: false)', () => {
  const configs = [
    { name: 'NodeNext', module: 'NodeNext', moduleResolution: 'NodeNext', exactOptionalPropertyTypes: false },
    { name: 'NodeNext + exactOptionalPropertyTypes', module: 'NodeNext', moduleResolution: 'NodeNext', exactOptionalPropertyTypes: true },
    { name: 'Bundler', module: 'ESNext', moduleResolution: 'Bundler', exactOptionalPropertyTypes: false },
    { name: 'Bundler + exactOptionalPropertyTypes', module: 'ESNext', moduleResolution: 'Bundler', exactOptionalPropertyTypes: true },
  ];

  /** Compile the fixture under one configuration; '' when clean, else the compiler's output. */
  async function compile(dir: string, c: (typeof configs)[number], i: number): Promise<{ name: string; out: string; ms: number }> {
    const tsconfig = `tsconfig.${i}.json`;
    writeFileSync(join(dir, tsconfig), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', lib: ['ES2023', 'ESNext.Disposable'], module: c.module, moduleResolution: c.moduleResolution, strict: true, skipLibCheck: false,
        exactOptionalPropertyTypes: c.exactOptionalPropertyTypes, noUncheckedIndexedAccess: true, noEmit: true, types: ['node'],
      },
      files: ['consumer.ts'],
    }));
    const t0 = performance.now();
    const out = await run(process.execPath, [TSC, '-p', tsconfig], { cwd: dir }).then(
      () => '',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    return { name: c.name, out, ms: Math.round(performance.now() - t0) };
  }

  it('compile every subpath; the typed surfaces reject typos (each @ts-expect-error is used)', async () => {
    const dir = packed.consumer;
    for (const f of ['consumer.ts', 'every-subpath.ts']) copyFileSync(join(FIXTURES, f), join(dir, f));
    // One compiler at a time: the suite runs test files in parallel on few cores.
    const results = [];
    for (const [i, c] of configs.entries()) results.push(await compile(dir, c, i));
    console.log(results.map((r) => `${r.name}: ${r.out === '' ? 'ok' : 'errors'} in ${r.ms} ms`).join('\n'));
    expect(results.filter((r) => r.out !== '').map((r) => `${r.name}:\n${r.out}`).join('\n')).toBe('');
  }, 240_000);
});

describe('at run time, from the consumer folder', () => {
  it('require() loads the package and its subpaths (CommonJS consumer)', async () => {
    const script = [
      "const taps = require('taps-node');",
      "const tcp = require('taps-node/tcp');",
      "const certs = require('taps-node/certificates');",
      "console.log(JSON.stringify({ pre: typeof taps.Preconnection, tcp: tcp.tcpDriver.id, cert: typeof certs.selfSignedCertificate, version: require('taps-node/package.json').version }));",
    ].join('\n');
    const { stdout } = await run(process.execPath, ['-e', script], { cwd: packed.consumer });
    expect(JSON.parse(stdout)).toEqual({ pre: 'function', tcp: 'tcp', cert: 'function', version: packed.manifest.version });
  });

  it("the README's quick start runs as pasted, as quick-start.mjs", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const code = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(code).toContain("from 'taps-node'");
    writeFileSync(join(packed.consumer, 'quick-start.mjs'), code);
    const { stdout, stderr } = await run(process.execPath, ['quick-start.mjs'], { cwd: packed.consumer, timeout: 30_000 });
    expect(stderr).toBe('');
    expect(stdout).toMatch(/tls\/tcp 127\.0\.0\.1:\d+ won/);
    expect(stdout).toMatch(/\nhello\n$/);
  });

  it('an esbuild bundle lists every driver the unbundled package lists, and connects over loopback', async () => {
    const { build } = await import('esbuild');
    const manifest = packed.manifest as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
    // What a bundling consumer does with packages that carry native code: leave them (and here every other
    // dependency of the library) to node_modules; the library's own modules go into the bundle.
    const external = [...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})].flatMap((d) => [d, `${d}/*`]);
    copyFileSync(join(FIXTURES, 'bundled.mjs'), join(packed.consumer, 'bundled.mjs'));
    const result = await build({
      entryPoints: ['bundled.mjs'], absWorkingDir: packed.consumer, outfile: 'bundle/app.mjs', bundle: true, platform: 'node', format: 'esm',
      target: 'node20', external, logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    const unbundled = await run(process.execPath, ['--input-type=module', '-e', "import { registeredDrivers } from 'taps-node'; console.log(JSON.stringify((await registeredDrivers()).map((d) => d.id)))"], { cwd: packed.consumer });
    const { stdout, stderr } = await run(process.execPath, ['bundle/app.mjs'], { cwd: packed.consumer, timeout: 30_000 });
    const out = JSON.parse(stdout) as { ids: string[]; stack: string[]; reply: string };
    console.log(`bundled drivers: ${out.ids.join(', ')}`);
    expect(stderr).toBe('');
    expect(out.ids).toEqual(JSON.parse(unbundled.stdout));
    expect(out.ids).toEqual(expect.arrayContaining(['tcp', 'tls', 'udp', 'ws', 'wss', 'http', 'https', 'https2', 'quic', 'webtransport-h2']));
    expect(out).toMatchObject({ stack: ['tcp'], reply: 'ping' });
  });

  it('npx taps-node --version prints the package version', async () => {
    const { stdout } = await run('npx', ['--no', '--', 'taps-node', '--version'], { cwd: packed.consumer });
    expect(stdout.trim()).toBe(packed.manifest.version);
  });

  describe('npx taps-node probe', () => {
    let server: Server;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      server = createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('reaches a loopback TCP server from a fresh folder and reports the winner', async () => {
      const port = (server.address() as { port: number }).port;
      const { stdout } = await run('npx', ['--no', '--', 'taps-node', 'probe', `127.0.0.1:${port}`, '--security', 'disabled', '--json'], { cwd: packed.consumer, timeout: 30_000 });
      const out = JSON.parse(stdout) as { ok: boolean; connection?: { stack: string[] }; report: { winner?: string; candidates: { id: string; driver: string; fate: string }[] } };
      expect(out).toMatchObject({ ok: true, connection: { stack: ['tcp'] } });
      expect(out.report.candidates.find((c) => c.id === out.report.winner)).toMatchObject({ driver: 'tcp', fate: 'won' });
    });
  });
});
