/**
 * Bundle the package's JavaScript: one ES module per `exports` target and the `bin`, plus shared chunks
 * (esbuild with code splitting), built from the TypeScript sources. Importing `taps-node` then reads a
 * handful of files instead of ~80: each ES module costs its own resolution, read, compile and link, and
 * that was most of a fresh process's first connection (docs/performance.md, "cold start"). The chunks keep
 * every module's state in one place across entries (one registry, one class per error), a stack imported
 * lazily (`import()` of a driver's code) stays its own chunk, loaded on first use, and the source maps point
 * at the shipped sources. Declarations come from `tsc` (tsconfig.build.json: declarations only).
 *
 *   node scripts/bundle.mjs dist              # npm run build
 *   node scripts/bundle.mjs dist-bench/package  # what bench/first-use.ts starts fresh processes on
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = process.argv[2];
if (outdir === undefined) throw new TypeError('usage: node scripts/bundle.mjs <outdir>');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** `./dist/src/index.js` → [`src/index`, `<root>/src/index.ts`]: where the entry goes, and its source. */
function entry(target) {
  const path = target.replace(/^\.\/dist\//, '').replace(/\.js$/, '');
  return [path, join(root, `${path}.ts`)];
}

const targets = [...Object.values(manifest.exports).flatMap((e) => (typeof e === 'string' ? [] : [e.default])), ...Object.values(manifest.bin)];
await build({
  absWorkingDir: root,
  entryPoints: Object.fromEntries(targets.map(entry)),
  outdir: join(root, outdir),
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  keepNames: true,
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});
console.log(`bundled ${targets.length} entries into ${relative(root, join(root, outdir)) || '.'}`);
