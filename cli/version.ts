/**
 * The package's version for `taps-node --version`: read from the
 * package.json above this module, which is `../package.json` from the sources
 * and `../../package.json` from the built `dist/cli/`.
 *
 * @example
 * packageVersion(); // '0.1.0'
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The version of the taps-node package this CLI belongs to. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 3; depth++) {
    dir = dirname(dir);
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'taps-node' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      /* not here: look one folder up */
    }
  }
  throw new Error('taps-node: package.json not found above the CLI');
}
