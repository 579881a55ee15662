/**
 * Nothing of a QUIC connection or listener outlives it: a process that
 * closed its listener and its connections exits by itself, with no timer
 * and no UDP socket of the library left (`process.getActiveResourcesInfo()`),
 * also when the peer's port vanished under a connection, and when the
 * connection ended by itself because its peer was gone.
 *
 * `@matrixai/quic` keeps a stopped connection for its closing or draining
 * period (three PTOs, RFC 9000 §10.2) and its `stop()` waits for it; the
 * drivers end that period where §10.2 allows: a client that closes its own
 * socket, a listener its owner stopped (transports/quic/closing.ts).
 *
 * Each case runs test/helpers/quic-exit-child.ts in its own process (real
 * sockets on loopback) and reads its checkpoints; the times are printed,
 * never asserted (the overall timeout only guards against a hang).
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const HANG_MS = 60_000;

interface Checkpoint {
  readonly step: string;
  readonly ms: number;
  readonly resources?: string[];
  readonly sites?: string[];
  readonly echo?: string;
}

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly steps: Checkpoint[];
  readonly err: string;
}

function runChild(stack: string, scenario: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/quic-exit-child.ts', stack, scenario], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    child.once('error', (e) => (clearTimeout(timer), reject(e)));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const steps = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Checkpoint);
      resolve({ code, signal, steps, err });
    });
  });
}

const at = (run: Run, step: string): Checkpoint => {
  const c = run.steps.find((s) => s.step === step);
  if (c === undefined) throw new Error(`no checkpoint "${step}" in ${JSON.stringify(run.steps)}\n${run.err}`);
  return c;
};
/** The UDP sockets open at a checkpoint, by who made them. */
const sockets = (c: Checkpoint, maker: RegExp): string[] => (c.sites ?? []).filter((s) => s.startsWith('UDPWRAP') && maker.test(s));
const LISTENER = /QUICServer/;
const CLIENT = /connectedQuicSocket/;

function report(name: string, run: Run): void {
  console.log(`${name}: ${run.steps.filter((s) => s.step !== 'echo').map((s) => `${s.step} ${s.ms} ms`).join(', ')}`);
}

/** Every checkpoint and the child's stderr, for a failure's message. */
const told = (run: Run): string => `${run.steps.map((s) => JSON.stringify(s)).join('\n')}\n${run.err}`;

/** The child ran every step, then exited by itself with nothing of the library left open. */
function exitedClean(run: Run, last: string): void {
  expect(run.signal, told(run)).toBeNull();
  expect(run.code, told(run)).toBe(0);
  expect(at(run, 'echo').echo).toBe('ping');
  expect(at(run, last).resources, told(run)).toEqual([]);
  expect(run.steps.at(-1)?.step, told(run)).toBe('exit');
}

describe.each(['quic', 'quic-dgram'])('%s: closed, the process exits', { timeout: HANG_MS + 10_000 }, (stack) => {
  it('conn.close() leaves no socket of the client; listener.stop() then leaves nothing', async () => {
    const run = await runChild(stack, 'close');
    report(`${stack} close`, run);
    // The server keeps its socket, and its connection's closing period, while it accepts (RFC 9000 §10.2).
    expect(sockets(at(run, 'client closed'), CLIENT), told(run)).toEqual([]);
    expect(sockets(at(run, 'server closed'), LISTENER), told(run)).toHaveLength(1);
    exitedClean(run, 'listener stopped');
  });

  it('listener.stop() first keeps the connection in use (RFC 9622 §7.2); its close then leaves nothing', async () => {
    const run = await runChild(stack, 'stop-first');
    report(`${stack} stop-first`, run);
    const stopped = at(run, 'listener stopped');
    expect(sockets(stopped, LISTENER), told(run)).toHaveLength(1);
    expect(sockets(stopped, CLIENT), told(run)).toHaveLength(1);
    expect(sockets(at(run, 'client closed'), CLIENT), told(run)).toEqual([]);
    exitedClean(run, 'server closed');
  });

  it('abort() on both sides, then listener.stop(): the listener leaves nothing and the process exits', async () => {
    const run = await runChild(stack, 'abort');
    report(`${stack} abort`, run);
    const stopped = at(run, 'aborted, listener stopped');
    expect(sockets(stopped, LISTENER), told(run)).toEqual([]);
    expect(run.signal, told(run)).toBeNull();
    expect(run.code, told(run)).toBe(0);
    expect(run.steps.at(-1)?.step, told(run)).toBe('exit');
  });

  it('the peer port vanishes (ICMP port unreachable on the next sends): no crash, and the process exits', async () => {
    const run = await runChild(stack, 'peer-gone');
    report(`${stack} peer-gone`, run);
    expect(run.err, told(run)).not.toMatch(/ErrorQUIC|ECONNREFUSED/);
    exitedClean(run, 'sent into the void, aborted, listener stopped');
  });

  it('the peer port vanishes while the client keeps sending: the connection ends by itself (ERR_TAPS_CONNECTION_RESET) with its socket released', async () => {
    const run = await runChild(stack, 'peer-lost');
    report(`${stack} peer-lost`, run);
    const lost = at(run, 'peer lost') as Checkpoint & { code?: string; message?: string; softErrors?: number };
    console.log(`${stack} peer-lost: ${lost.message} (${lost.softErrors} soft errors before)`);
    expect(lost.code, told(run)).toBe('ERR_TAPS_CONNECTION_RESET');
    expect(sockets(lost, CLIENT), told(run)).toEqual([]);
    expect((lost.sites ?? []).filter((s) => /transports\/quic\/(client|peer-loss|socket)/.test(s)), told(run)).toEqual([]);
    expect(run.err, told(run)).not.toMatch(/ErrorQUIC|ECONNREFUSED/);
    exitedClean(run, 'listener stopped');
  });
});
