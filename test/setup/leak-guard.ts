/**
 * Runs in every test file: fails the file if an unhandled rejection or an
 * uncaught exception happens, or if a socket, timer or server is left open
 * when the file ends (issue 7's leak guard).
 */
import { afterAll, beforeAll } from 'vitest';

const problems: string[] = [];
const onRejection = (reason: unknown) => problems.push(`unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`);
const onException = (err: unknown) => problems.push(`uncaught exception: ${(err as Error)?.stack ?? String(err)}`);

// Resources vitest's own worker keeps open; anything beyond these at the end is ours.
const LEAKY = new Set(['TCPWRAP', 'TCPSocketWrap', 'TCPServerWrap', 'UDPWRAP', 'Timeout', 'TLSWRAP', 'PipeWrap', 'FSReqCallback']);
let baseline = new Map<string, number>();

function counts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

beforeAll(() => {
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  baseline = counts();
});

afterAll(async () => {
  // Let close callbacks scheduled by the last test run.
  for (let i = 0; i < 20; i++) {
    if (leaks().length === 0) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  process.off('unhandledRejection', onRejection);
  process.off('uncaughtException', onException);
  const leaked = leaks();
  if (leaked.length > 0) problems.push(`handles left open: ${leaked.join(', ')}`);
  if (problems.length > 0) throw new Error(problems.join('\n'));
});

function leaks(): string[] {
  const now = counts();
  const out: string[] = [];
  for (const [kind, n] of now) {
    if (!LEAKY.has(kind)) continue;
    // The poll loop above holds one Timeout of its own.
    const extra = n - (baseline.get(kind) ?? 0) - (kind === 'Timeout' ? 1 : 0);
    if (extra > 0) out.push(`${kind}×${extra}`);
  }
  return out;
}
