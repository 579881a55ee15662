/**
 * Peer processes for the interop tier: start a program on loopback, wait
 * until it says it is ready, keep everything it prints (what the peer saw),
 * and stop it for good at the end of the file. Every process is bounded in
 * time (killed after `lifetimeMs`) and killed by `stopAll()`.
 *
 * @example
 * const p = await startPeer('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, ...], { ready: /ACCEPT/ });
 * ...; await p.stop(); expect(p.output()).toMatch(/Protocol version: TLSv1.3/);
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Peer {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved as they came. */
  output(): string;
  /** Resolves when the output matches `re` (rejects after `ms`, naming what was printed). */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  /** SIGTERM (SIGKILL after 2 s) and wait for the exit. */
  stop(): Promise<void>;
  /** Resolves with the exit code when the process ends by itself. */
  readonly exited: Promise<number | null>;
}

const running = new Set<Peer>();

export interface StartOptions {
  /** Ready when the output matches this. */
  readonly ready?: RegExp;
  /** Killed after this long whatever happens (default 60 s). */
  readonly lifetimeMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly stdin?: string;
}

export async function startPeer(cmd: string, args: readonly string[], opts: StartOptions = {}): Promise<Peer> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString('utf8');
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  if (opts.stdin !== undefined) child.stdin!.write(opts.stdin);
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      out += `\n[spawn error: ${e.message}]`;
      resolve(null);
    });
    child.on('exit', (code) => resolve(code));
  });
  const lifetime = setTimeout(() => child.kill('SIGKILL'), opts.lifetimeMs ?? 60_000);
  void exited.then(() => {
    clearTimeout(lifetime);
    for (const w of waiters) w();
  });
  let done = false;
  void exited.then(() => (done = true));
  const peer: Peer = {
    child,
    exited,
    output: () => out,
    waitFor(re, ms = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (re.test(out)) finish();
          else if (done) finish(new Error(`${cmd} exited before printing ${re}: ${out.slice(-2000)}`));
        };
        const timer = setTimeout(() => finish(new Error(`${cmd} did not print ${re} within ${ms} ms: ${out.slice(-2000)}`)), ms);
        const finish = (err?: Error): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      running.delete(peer);
      if (!done) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(t);
      }
      child.stdin?.destroy();
    },
  };
  running.add(peer);
  if (opts.ready) {
    try {
      await peer.waitFor(opts.ready);
    } catch (err) {
      await peer.stop();
      throw err;
    }
  }
  return peer;
}

/** Stop every peer still running (afterAll / afterEach). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** Run a program to its end with `input` on stdin (killed after `ms`); its exit code and output. */
export function run(cmd: string, args: readonly string[], input: Buffer | string = '', ms = 15_000, env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: ms, env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

/** A loopback port free at this moment for `proto` (the peer binds it right after). */
export async function freePort(proto: 'tcp' | 'udp' = 'tcp', address = '127.0.0.1'): Promise<number> {
  if (proto === 'udp') {
    const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((r) => s.bind(0, address, r));
    const port = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, address, r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix: string): { dir: string; path: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `taps-interop-${prefix}-`));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
