/**
 * A private Redis for one test file: Debian's `redis-server` on a free
 * loopback port, in a temporary directory, with persistence off. It can be
 * stopped and started again on the same port (the "Redis goes away" tests)
 * and is stopped for good by `close()`. When redis-server is not installed,
 * `REDIS_SERVER` is undefined and the fleet tier says so and skips.
 *
 * @example
 * const redis = await startRedis();
 * const fleet = await Fleet.open({ redis: redis.url, name: 't1' });
 * await redis.stop(); await redis.start();
 * await redis.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'];
/** The redis-server binary, if this machine has one. */
export const REDIS_SERVER = [process.env.REDIS_SERVER, ...CANDIDATES].find((p) => p !== undefined && p !== '' && existsSync(p));

export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Stop the server (SIGTERM, no save) and wait for it to exit. */
  stop(): Promise<void>;
  /** Start it again on the same port (if stopped); resolves when it accepts connections. */
  start(): Promise<void>;
  /** Stop it and remove its directory. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function startRedis(): Promise<TestRedis> {
  if (REDIS_SERVER === undefined) throw new Error('redis-server is not installed');
  const dir = await mkdtemp(join(tmpdir(), 'taps-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    if (child !== undefined && child.exitCode === null) return;
    const c = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    let log = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start on ${port}: ${log}`)), 10_000);
      const poll = (): void => {
        if (c.exitCode !== null) return void (clearTimeout(timer), reject(new Error(`redis-server exited: ${log}`)));
        const probe = connect(port, '127.0.0.1');
        let answer = '';
        probe.setEncoding('utf8');
        probe.on('connect', () => probe.write('PING\r\n'));
        probe.on('data', (d: string) => {
          answer += d;
          if (answer.includes('+PONG')) {
            probe.destroy();
            clearTimeout(timer);
            resolve();
          }
        });
        probe.on('error', () => setTimeout(poll, 20));
      };
      poll();
    });
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null) return;
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.kill('SIGKILL');
    await closed;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
