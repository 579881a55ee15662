/**
 * `NODE_DEBUG=taps` traces a selection: each candidate as it starts (stack,
 * address, time), each failure, and the end (winner, time, tally). Run on
 * the quick start example in a child process, the way a user turns it on.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('NODE_DEBUG=taps', () => {
  it('logs every candidate start with its time, each failure, and the selection end with the winner and a tally', async () => {
    const { stderr } = await run(process.execPath, ['--import', 'tsx', 'examples/quick-start.ts'], { env: { ...process.env, NODE_DEBUG: 'taps' }, timeout: 60_000 });
    const lines = stderr.split('\n').filter((l) => l.startsWith('TAPS '));
    console.log(lines.join('\n'));
    expect(lines.some((l) => /candidate c\d+ tls\/tcp \[::1\]:\d+ started at \d+\.\d ms$/.test(l))).toBe(true);
    expect(lines.some((l) => /candidate c\d+ tls failed: .*ECONNREFUSED/.test(l))).toBe(true);
    expect(lines.some((l) => /candidate c\d+ tls\/tcp 127\.0\.0\.1:\d+ started at \d+\.\d ms$/.test(l))).toBe(true);
    expect(lines.some((l) => /selection localhost:\d+ \(tenant me\): c\d+ tls\/tcp 127\.0\.0\.1:\d+ won at \d+\.\d ms; 2 started, 1 failed, 0 cancelled, \d+ denied$/.test(l))).toBe(true);
  });

  it('logs nothing without it', async () => {
    const env = { ...process.env };
    delete env['NODE_DEBUG'];
    const { stderr } = await run(process.execPath, ['--import', 'tsx', 'examples/quick-start.ts'], { env, timeout: 60_000 });
    expect(stderr).toBe('');
  });
});
