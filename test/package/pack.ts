/**
 * Pack the library as npm would publish it and install the tarball into a
 * fresh consumer folder, without touching the repository's own `dist/` and
 * without a registry: the sources are copied into a staging folder and built
 * there, `npm pack` makes the tarball, and the consumer installs it with
 * `npm install --offline` from a lockfile derived from this repository's
 * (the runtime dependencies' tarballs are already in npm's cache once this
 * repository was installed; when they are not, npm may fetch them).
 *
 * @example
 * const packed = await packAndInstall();
 * packed.files;      // ['LICENSE', 'README.md', 'dist/src/index.js', …]
 * packed.consumer;   // a folder whose node_modules holds taps-node and its dependencies
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
export const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

export interface Packed {
  /** Folder holding the staging build, the tarball and the consumer. */
  readonly dir: string;
  readonly tarball: string;
  /** Every path in the tarball, relative to the package root. */
  readonly files: readonly string[];
  /** The packed package.json. */
  readonly manifest: Record<string, unknown> & { version: string; exports: Record<string, unknown> };
  /** A fresh project with the tarball installed (`node_modules/taps-node`, its dependencies, `.bin/taps-node`). */
  readonly consumer: string;
  /** Timings of each step, ms. */
  readonly timings: Readonly<Record<string, number>>;
  remove(): void;
}

async function timed<T>(timings: Record<string, number>, step: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    timings[step] = Math.round(performance.now() - t0);
  }
}

/** Copy what the package is built from into `stage` and build it there. */
async function stageAndBuild(stage: string): Promise<void> {
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'tsconfig.json', 'tsconfig.build.json', 'scripts', 'src', 'transports', 'cli', 'fleet', 'otel', 'docs']) {
    cpSync(join(ROOT, entry), join(stage, entry), { recursive: true, filter: (src) => !src.includes(`${join(ROOT, 'docs', 'api')}`) });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
  // What `npm run build` does: declarations from tsc, the code bundled (scripts/bundle.mjs).
  await run(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: stage });
  await run(process.execPath, ['scripts/bundle.mjs', 'dist'], { cwd: stage });
}

/** A lockfile for `{ dependencies: { taps-node: file:<tarball> } }` whose other entries are this repository's runtime packages. */
function consumerLock(manifest: Packed['manifest'], tarballSpec: string): unknown {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const pick = (k: string): unknown => manifest[k];
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { 'taps-node': tarballSpec } },
    'node_modules/taps-node': {
      version: manifest.version, resolved: tarballSpec, license: pick('license'), dependencies: pick('dependencies'), bin: pick('bin'),
      engines: pick('engines'), peerDependencies: pick('peerDependencies'), peerDependenciesMeta: pick('peerDependenciesMeta'),
    },
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path !== '' && entry['dev'] !== true && entry['devOptional'] !== true) packages[path] = entry;
  }
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages };
}

/** Build, pack and install into a fresh consumer folder. */
export async function packAndInstall(): Promise<Packed> {
  const dir = mkdtempSync(join(tmpdir(), 'taps-pack-'));
  const timings: Record<string, number> = {};
  const stage = join(dir, 'stage');
  const consumer = join(dir, 'consumer');
  mkdirSync(stage);
  mkdirSync(consumer);
  await timed(timings, 'build', () => stageAndBuild(stage));
  const packOut = await timed(timings, 'pack', () => run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: stage }));
  const [info] = JSON.parse(packOut.stdout) as { filename: string; files: { path: string }[] }[];
  if (info === undefined) throw new Error(`npm pack printed no result: ${packOut.stdout}`);
  const tarball = join(dir, info.filename);
  const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8')) as Packed['manifest'];
  const spec = `file:../${info.filename}`;
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { 'taps-node': spec } }));
  writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify(consumerLock(manifest, spec)));
  const npmArgs = ['install', '--no-audit', '--no-fund', '--ignore-scripts'];
  await timed(timings, 'install', () =>
    run('npm', [...npmArgs, '--offline'], { cwd: consumer }).catch(() => run('npm', [...npmArgs, '--prefer-offline'], { cwd: consumer })),
  );
  // What a consumer installs for itself: @types/node for TypeScript, the optional peers ioredis (taps-node/fleet)
  // and @opentelemetry/api (taps-node/otel).
  mkdirSync(join(consumer, 'node_modules/@types'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules/@types/node'), join(consumer, 'node_modules/@types/node'), 'dir');
  symlinkSync(join(ROOT, 'node_modules/ioredis'), join(consumer, 'node_modules/ioredis'), 'dir');
  mkdirSync(join(consumer, 'node_modules/@opentelemetry'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules/@opentelemetry/api'), join(consumer, 'node_modules/@opentelemetry/api'), 'dir');
  return {
    dir,
    tarball,
    files: info.files.map((f) => f.path).sort(),
    manifest,
    consumer,
    timings,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
