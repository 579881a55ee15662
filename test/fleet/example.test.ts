/**
 * The README's "Running a fleet" example (examples/fleet.ts) runs against a
 * private redis-server and shows what it promises, so it never rots.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_SERVER, startRedis, type TestRedis } from '../helpers/redis.js';

if (REDIS_SERVER === undefined) process.stderr.write('\n*** fleet tier SKIPPED: redis-server is not installed (apt-get install redis-server) ***\n\n');

let redis: TestRedis;
beforeAll(async () => {
  if (REDIS_SERVER !== undefined) redis = await startRedis();
});
afterAll(async () => {
  if (REDIS_SERVER !== undefined) await redis.close();
});

describe.skipIf(REDIS_SERVER === undefined)('examples/fleet.ts', () => {
  it('two hosts share a limit and a policy through Redis', async () => {
    const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
      const child = spawn('node_modules/.bin/tsx', ['examples/fleet.ts'], { env: { ...process.env, REDIS_URL: redis.url, NODE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let o = '';
      let e = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (o += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (e += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('error', (x) => (clearTimeout(timer), reject(x)));
      child.once('close', (c) => (clearTimeout(timer), resolve({ code: c, out: o, err: e })));
    });
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(/on host-1: true, on host-2: true/);
    expect(out).toMatch(/host-1: open, open; host-2: open, ERR_TAPS_QUOTA_EXCEEDED/);
    expect(out).toMatch(/host-1 closes one; host-2 can take it\nhost-2: open/);
    expect(out).toMatch(/3 live connections ended \(ERR_TAPS_POLICY_PROHIBITED\); a new one: ERR_TAPS_POLICY_PROHIBITED/);
    expect(out).toMatch(/decision records in the fleet stream taps:example-\d+:records: \d+/);
    expect(out).toMatch(/done\.\n$/);
  });
});
