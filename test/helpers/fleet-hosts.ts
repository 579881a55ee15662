/**
 * Fleet host processes for the fleet tier: each is test/fleet/host-process.ts
 * under `node --import tsx`, driven over IPC. `call` sends an operation and
 * resolves with its value (or rejects with its code); `events` collects what
 * the host reported; `kill()` is a crash (SIGKILL), `stop()` a clean exit.
 *
 * @example
 * const h = await startHost({ redis: url, name: 'f1', leaseMs: 1000 });
 * await h.call('connect', { port, count: 3 });
 * await h.stop();
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../fleet/host-process.ts', import.meta.url));

export interface HostConfig {
  redis: string;
  name: string;
  leaseMs: number;
  onRevoke?: 'close' | 'keep';
  fallback?: { share: number };
  spareIdleMs?: number;
}

export interface HostEvent {
  event: string;
  [k: string]: unknown;
}

export interface HostProcess {
  readonly hostId: string;
  readonly events: HostEvent[];
  readonly child: ChildProcess;
  call<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  /** Resolves when an event matching `match` has been reported (already or later). */
  waitFor(match: (e: HostEvent) => boolean, what: string, ms?: number): Promise<HostEvent>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export class HostCallError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export async function startHost(config: HostConfig): Promise<HostProcess> {
  const child = fork(SCRIPT, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, FLEET_HOST: JSON.stringify(config), NODE_DEBUG: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const events: HostEvent[] = [];
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const watchers = new Set<() => void>();
  let nextId = 1;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.on('message', (raw) => {
    const m = raw as { id?: number; ok?: boolean; value?: unknown; code?: string; message?: string } & HostEvent;
    if (m.id !== undefined) {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new HostCallError(m.code ?? 'unknown', m.message ?? ''));
      return;
    }
    events.push(m);
    for (const w of [...watchers]) w();
  });
  child.once('exit', () => {
    for (const p of pending.values()) p.reject(new HostCallError('exited', 'the host process exited'));
    pending.clear();
  });
  const waitFor = (match: (e: HostEvent) => boolean, what: string, ms = 20_000): Promise<HostEvent> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = events.find(match);
        if (hit === undefined) return false;
        watchers.delete(onEvent);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const onEvent = (): void => void check();
      const timer = setTimeout(() => {
        watchers.delete(onEvent);
        reject(new Error(`host ${config.name} did not report ${what}; events: ${JSON.stringify(events)}`));
      }, ms);
      watchers.add(onEvent);
      check();
    });
  const ready = await waitFor((e) => e.event === 'ready', 'ready', 30_000);
  return {
    hostId: ready.hostId as string,
    events,
    child,
    call: <T>(op: string, args: Record<string, unknown> = {}) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, op, ...args });
      }),
    waitFor,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.disconnect();
      await exited;
    },
  };
}
