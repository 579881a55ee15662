/**
 * `taps probe` with the default drivers to a loopback port nobody listens on (TCP or UDP): every candidate
 * — QUIC on UDP and TLS on TCP, over ::1 and 127.0.0.1 — is refused by the kernel, and the probe says so
 * with ECONNREFUSED, never a timeout. Run in-process (the CLI's `main`) and once as a real process, as
 * someone would type it; the times are printed, not asserted (bench/ has the ratio against net.connect).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../cli/exit-codes.js';
import { main } from '../../cli/main.js';
import { bufferIO } from '../../cli/output.js';
import { refusedPort } from '../helpers/ports.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface ProbeJson {
  exitCode: number;
  error: { code: string; message: string };
  report: { candidates: { id: string; driver: string; address?: string; fate: string; error?: { code: string; message: string } }[]; endedAt: number };
}

describe('taps probe to a refused port', () => {
  it('in-process: every attempted candidate is refused (ECONNREFUSED), the probe exits 1 with ERR_TAPS_ESTABLISHMENT_FAILED', async () => {
    const port = await refusedPort();
    const io = bufferIO();
    const t0 = performance.now();
    const code = await main(['probe', `localhost:${port}`, '--json'], io);
    const took = performance.now() - t0;
    const doc = JSON.parse(io.stdout) as ProbeJson;
    console.log(`taps probe localhost:${port} (in-process, default drivers): ${took.toFixed(1)} ms, selection ${doc.report.endedAt.toFixed(1)} ms`);
    expect(code).toBe(EXIT.failed);
    expect(doc.error.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(doc.error.message).toMatch(/ECONNREFUSED/);
    const attempted = doc.report.candidates.filter((c) => c.address !== undefined);
    expect(attempted.map((c) => c.driver).sort()).toEqual(['quic', 'quic', 'tls', 'tls']);
    for (const c of attempted) {
      expect(c.fate).toBe('failed');
      expect(c.error?.message).toMatch(/ECONNREFUSED/);
      expect(c.error?.code).not.toBe('ERR_TAPS_TIMEOUT');
    }
  }, 30_000);

  it('as a process: the text output names ECONNREFUSED and exits 1', async () => {
    const port = await refusedPort();
    const t0 = performance.now();
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', 'cli/taps.ts', 'probe', `localhost:${port}`], { cwd: root, timeout: 30_000 });
      let out = '';
      let err = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (err += b.toString()));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, out, err }));
    });
    console.log(`taps probe localhost:${port} (a fresh process, with tsx): ${(performance.now() - t0).toFixed(0)} ms\n${r.out}`);
    expect(r.err).toBe('');
    expect(r.code).toBe(EXIT.failed);
    expect(r.out).toMatch(/not connected: ERR_TAPS_ESTABLISHMENT_FAILED: .*ECONNREFUSED/);
    expect(r.out).toMatch(/quic connect to \[::1\]:\d+ refused \(ICMP port unreachable\): ECONNREFUSED/);
    expect(r.out).toMatch(/tls connect to 127\.0\.0\.1:\d+ failed: connect ECONNREFUSED/);
  }, 40_000);
});
