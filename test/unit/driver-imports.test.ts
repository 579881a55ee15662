/**
 * Drivers depend on the kit and the core, never on each other: every file in
 * `transports/<driver>/` imports only its own folder, `transports/kit/`,
 * `src/` and packages; the kit imports only itself and `src/`. Only the
 * default set (`transports/defaults.ts`) and the barrel (`transports/index.ts`)
 * may name every driver. A static scan of each file's import specifiers
 * (static imports, re-exports, dynamic `import()` with a literal), read by
 * TypeScript's own pre-processor, so comments and strings do not count.
 * Also: transports/ listens for an abort only through the kit's
 * `whenAborted()` (one listener, always removed when the attempt settles).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const transports = join(root, 'transports');

/** Every relative module specifier of a TypeScript source. */
function specifiers(source: string): string[] {
  return ts
    .preProcessFile(source, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((s) => s.startsWith('.'));
}

/** The repository folder a specifier of `file` lands in: 'src', 'transports/kit', 'transports/tcp', ... */
function area(file: string, specifier: string): string {
  const target = relative(root, resolve(dirname(file), specifier)).split(sep);
  return target[0] === 'transports' && target.length > 2 ? `transports/${target[1]}` : target[0]!;
}

/** The imports of `file` (in folder `own`) that break the rule, as "file → specifier". */
function violations(file: string, own: string, source: string): string[] {
  const allowed = own === 'transports/kit' ? ['src', own] : ['src', 'transports/kit', own];
  return specifiers(source)
    .filter((s) => !allowed.includes(area(file, s)))
    .map((s) => `${relative(root, file)} → ${s}`);
}

function driverFiles(): { file: string; own: string }[] {
  const out: { file: string; own: string }[] = [];
  for (const entry of readdirSync(transports, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const folder = join(transports, entry.name);
    for (const f of readdirSync(folder, { recursive: true, encoding: 'utf8' })) {
      if (f.endsWith('.ts')) out.push({ file: join(folder, f), own: `transports/${entry.name}` });
    }
  }
  return out;
}

describe('driver imports', () => {
  it('no file in a driver folder imports another driver; the kit imports no driver', () => {
    const files = driverFiles();
    const folders = new Set(files.map((f) => f.own));
    // The scan sees the folders it must: the kit and the drivers that use it.
    for (const must of ['transports/kit', 'transports/tcp', 'transports/tls', 'transports/http', 'transports/quic', 'transports/webtransport']) {
      expect(folders.has(must), must).toBe(true);
    }
    const bad = files.flatMap(({ file, own }) => violations(file, own, readFileSync(file, 'utf8')));
    expect(bad).toEqual([]);
  });

  it('the scan catches a cross-driver import in every form (the check can fail)', () => {
    const file = join(transports, 'quic', 'client.ts');
    const source = [
      "import { connectTcp } from '../tcp/connect.js';",
      "import type { StreamGroup } from '../webtransport/channel.js';",
      "export { Inbox } from '../http/inbox.js';",
      "const m = await import('../tls/index.js');",
      "// import { x } from '../udp/x.js';",
      "import { abortedError } from '../kit/abort.js';",
      "import { TapsError } from '../../src/errors.js';",
      "import { QuicError } from './errors.js';",
      "import { QUICClient } from '@matrixai/quic';",
    ].join('\n');
    expect(violations(file, 'transports/quic', source)).toEqual([
      'transports/quic/client.ts → ../tcp/connect.js',
      'transports/quic/client.ts → ../webtransport/channel.js',
      'transports/quic/client.ts → ../http/inbox.js',
      'transports/quic/client.ts → ../tls/index.js',
    ]);
    // The kit may not lean on a driver either.
    expect(violations(join(transports, 'kit', 'dial.ts'), 'transports/kit', "import { tcpDriver } from '../tcp/driver.js';")).toEqual([
      'transports/kit/dial.ts → ../tcp/driver.js',
    ]);
  });

  it("no file in transports/ adds or removes an 'abort' listener by hand: whenAborted() does", () => {
    const helper = join(transports, 'kit', 'abort.ts');
    const byHand = /(?:add|remove)EventListener\(\s*['"]abort['"]|\.onabort\s*=/;
    const files = [...driverFiles().map((f) => f.file), join(transports, 'defaults.ts'), join(transports, 'index.ts')];
    expect(byHand.test("signal.addEventListener('abort', onAbort, { once: true });")).toBe(true);
    const bad = files.filter((f) => f !== helper && byHand.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f));
    expect(bad).toEqual([]);
    expect(byHand.test(readFileSync(helper, 'utf8'))).toBe(true);
  });
});
