/**
 * Runs in every test file (vitest `setupFiles`): fails the file if an
 * unhandled rejection or an uncaught exception happens while it runs, or if
 * it leaves anything open when it ends — a socket, server, timer, immediate,
 * child process, pipe, pending DNS or connect request: every kind of handle
 * and request `process.getActiveResourcesInfo()` reports, counted against
 * what was open before the file's first test.
 *
 * The check waits a little for close callbacks the last test scheduled, then
 * names what is left, e.g. `handles left open: TCPSocketWrap×1, Timeout×2`.
 * Its own polling timer has fired before each count, so it is never counted.
 * Only ref'd resources count (an unref'd one does not keep a process alive).
 *
 * @example
 * // vitest.config.ts
 * test: { setupFiles: ['test/setup/leak-guard.ts'] }
 */
import { afterAll, beforeAll } from 'vitest';

const problems: string[] = [];
const describe = (x: unknown): string => (x as Error)?.stack ?? String(x);
const onRejection = (reason: unknown): void => void problems.push(`unhandled rejection: ${describe(reason)}`);
const onException = (err: unknown): void => void problems.push(`uncaught exception: ${describe(err)}`);

/**
 * Kinds that the test runner itself opens and closes at its own pace
 * (its file reads and terminal writes), never a library's.
 */
const RUNNER = new Set(['FSReqCallback', 'FSReqPromise', 'TTYWrap', 'StatWatcher', 'FSEventWrap']);

/**
 * Timers and immediates are never part of the baseline: the runner's own are
 * short-lived (its 100 ms output flush), so counting the one that happened to
 * be armed when the file started would hide a timer the file leaked.
 */
const EPHEMERAL = new Set(['Timeout', 'Immediate']);

let baseline = new Map<string, number>();

function counts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

function leaks(): string[] {
  const out: string[] = [];
  for (const [kind, n] of counts()) {
    if (RUNNER.has(kind)) continue;
    const extra = n - (EPHEMERAL.has(kind) ? 0 : (baseline.get(kind) ?? 0));
    if (extra > 0) out.push(`${kind}×${extra}`);
  }
  return out;
}

beforeAll(() => {
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  baseline = counts();
});

afterAll(async () => {
  // Let close callbacks the last test scheduled run (up to ~1 s: a socket's close, a child's exit).
  for (let i = 0; i < 40 && leaks().length > 0; i++) await new Promise((r) => setTimeout(r, 25));
  process.off('unhandledRejection', onRejection);
  process.off('uncaughtException', onException);
  const leaked = leaks();
  if (leaked.length > 0) problems.push(`handles left open: ${leaked.join(', ')}`);
  if (problems.length > 0) throw new Error(problems.splice(0).join('\n'));
});
