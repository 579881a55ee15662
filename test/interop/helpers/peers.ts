/**
 * Finding the peer programs the interop tier runs. `peer('nginx')` is the
 * program's path, or undefined after a loud "SKIPPED" line on stderr; under
 * TAPS_REQUIRE_PEERS=1 (CI) a missing peer throws instead, so the tier fails
 * rather than passing without having talked to anyone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/bin', '/sbin'];

/** The path of `program`, or undefined (said loudly) when it is not installed. */
export function peer(program: string, probe?: readonly string[]): string | undefined {
  const path = DIRS.map((d) => `${d}/${program}`).find((p) => existsSync(p));
  let missing = path === undefined ? `${program} is not installed` : undefined;
  if (path !== undefined && probe !== undefined) {
    try {
      execFileSync(path, probe, { stdio: 'ignore', timeout: 10_000 });
    } catch {
      missing = `${program} ${probe.join(' ')} failed`;
    }
  }
  if (missing === undefined) return path;
  if (process.env.TAPS_REQUIRE_PEERS === '1') throw new Error(`interop peer missing (TAPS_REQUIRE_PEERS=1): ${missing}`);
  process.stderr.write(`\n*** interop tier: ${program} tests SKIPPED: ${missing} ***\n\n`);
  return undefined;
}
