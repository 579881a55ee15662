/**
 * The soak half of `npm run bench:load` (see bench/load.ts): `initiate()` at
 * a target rate (default 1000/s) for a duration (default 60 s) against a
 * loopback listener made with the library in another process. The remote is
 * a name an injected resolver answers with `::1` and `127.0.0.1`; the
 * listener is bound on 127.0.0.1 only, so every initiate races two
 * candidates and one of them — the preferred IPv6 one — is refused. Each
 * connection is closed gracefully as soon as it is ready.
 *
 * Reported: launches and completions per second (the rate held), latency
 * percentiles, failures by code, candidate fates (half refused), resident
 * and heap memory sampled every second after a full GC, with their slope
 * after warm-up (MiB/min; flat is ~0), and the handles still open in the client process
 * once everything closed (should be none beyond the baseline).
 *
 *   TAPS_SOAK_SECONDS=10 TAPS_SOAK_RATE=500 npx tsx bench/load.ts soak
 */
import { median, row, type BenchRow } from './harness.js';

type Child = (args: readonly string[], onLine?: (line: string) => void, env?: NodeJS.ProcessEnv) => { done: Promise<string[]>; stdinEnd: () => void; write: (line: string) => void };

export interface SoakResult {
  readonly seconds: number;
  readonly targetRate: number;
  readonly launched: number;
  readonly completed: number;
  readonly skipped: number;
  readonly failures: Record<string, number>;
  readonly fates: Record<string, number>;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly samples: readonly { t: number; completed: number; inflight: number; rss: number; heap: number }[];
  readonly rssSlopeMiBPerMin: number;
  readonly heapSlopeMiBPerMin: number;
  readonly handlesBefore: Record<string, number>;
  readonly handlesAfter: Record<string, number>;
  readonly handlesLeft: string[];
  readonly listenerHandlesLeft?: string[] | undefined;
}

const mb = (b: number): number => b / (1024 * 1024);

function counts(): Record<string, number> {
  const m: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) m[r] = (m[r] ?? 0) + 1;
  return m;
}

function extra(before: Record<string, number>, after: Record<string, number>): string[] {
  return Object.entries(after)
    .filter(([k, n]) => n > (before[k] ?? 0))
    .map(([k, n]) => `${k}×${n - (before[k] ?? 0)}`);
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** Child: the listener (library, tcp, 127.0.0.1 only); closes each connection when its peer does. */
export async function listenerChild(): Promise<void> {
  const { Preconnection, TransportProperties, SecurityParameters, createScope } = await import('../src/index.js');
  const { tcpDriver } = await import('../transports/index.js');
  const scope = createScope({ tenant: 'soak-server', policy: { decide: () => ({ allow: true, rule: 'soak: allow all' }) } });
  const pre = new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver] });
  const listener = await pre.listen();
  const open = new Set<{ abort(): void }>();
  listener.on('connectionReceived', (c) => {
    open.add(c);
    c.on('received', () => {});
    c.on('receivedEnd', () => void c.close().catch(() => {}));
    c.on('closed', () => open.delete(c));
    c.on('connectionError', () => open.delete(c));
  });
  const before = counts();
  process.stdout.write(`PORT ${listener.port}\n`);
  process.stdin.resume();
  process.stdin.once('end', () => {
    void (async () => {
      await listener.stop();
      for (const c of open) c.abort();
      await new Promise((r) => setTimeout(r, 200));
      process.stdout.write(`LEFT ${JSON.stringify(extra(before, counts()))}\n`);
    })();
  });
}

/** Child: the initiating side; prints `RESULT {...}`. */
export async function clientChild(port: number): Promise<void> {
  const seconds = Number(process.env['TAPS_SOAK_SECONDS'] ?? 60);
  const rate = Number(process.env['TAPS_SOAK_RATE'] ?? 1000);
  const { Preconnection, TransportProperties, SecurityParameters, createScope } = await import('../src/index.js');
  const { tcpDriver, tlsDriver, udpDriver } = await import('../transports/index.js');
  const resolver = (host: string, family: 4 | 6): Promise<{ address: string; family: 4 | 6 }[]> =>
    host === 'svc.test' ? Promise.resolve([{ address: family === 6 ? '::1' : '127.0.0.1', family }]) : Promise.reject(Object.assign(new Error(`unknown ${host}`), { code: 'ENOTFOUND' }));
  const scope = createScope({ tenant: 'soak', policy: { decide: () => ({ allow: true, rule: 'soak: allow all' }) }, resolver });
  const pre = new Preconnection({
    scope,
    remote: { hostName: 'svc.test', port },
    properties: TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(),
    drivers: [tcpDriver, tlsDriver, udpDriver],
  });
  // Warm the code paths, then take the handle baseline.
  for (let i = 0; i < 20; i++) await (await pre.initiate({ timeout: 5000 })).close();
  await new Promise((r) => setTimeout(r, 200));
  const handlesBefore = counts();

  const MAX_INFLIGHT = 4 * rate;
  let launched = 0;
  let completed = 0;
  let skipped = 0;
  let inflight = 0;
  const failures: Record<string, number> = {};
  const fates: Record<string, number> = {};
  // Preallocated: a growing array of samples would show as the process's own heap slope (8 B per initiate).
  const latencyBuffer = new Float64Array(Math.ceil(rate * seconds * 1.1) + 1000);
  let latencyCount = 0;
  const samples: { t: number; completed: number; inflight: number; rss: number; heap: number }[] = [];
  const one = async (): Promise<void> => {
    const t0 = performance.now();
    inflight++;
    try {
      const conn = await pre.initiate({ timeout: 5000 });
      if (latencyCount < latencyBuffer.length) latencyBuffer[latencyCount++] = performance.now() - t0;
      for (const c of conn.report.candidates) fates[c.fate] = (fates[c.fate] ?? 0) + 1;
      await conn.close();
      completed++;
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'other';
      failures[code] = (failures[code] ?? 0) + 1;
    } finally {
      inflight--;
    }
  };
  const start = performance.now();
  const end = start + seconds * 1000;
  let nextSample = start + 1000;
  const pending = new Set<Promise<void>>();
  while (performance.now() < end) {
    const now = performance.now();
    const due = Math.floor(((now - start) / 1000) * rate);
    while (launched + skipped < due) {
      if (inflight >= MAX_INFLIGHT) {
        skipped++;
        continue;
      }
      launched++;
      const p = one();
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    if (now >= nextSample) {
      // After a full GC, so the slope is what stays, not where the collector's sawtooth happens to be.
      (globalThis as { gc?: () => void }).gc?.();
      const m = process.memoryUsage();
      samples.push({ t: (now - start) / 1000, completed, inflight, rss: m.rss, heap: m.heapUsed });
      nextSample += 1000;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.allSettled([...pending]);
  const elapsed = (performance.now() - start) / 1000;
  await new Promise((r) => setTimeout(r, 500));
  const handlesAfter = counts();
  const warm = samples.filter((s) => s.t >= Math.min(10, seconds * 0.2));
  const latencies = Array.from(latencyBuffer.subarray(0, latencyCount)).sort((a, b) => a - b);
  const result: SoakResult = {
    seconds: elapsed,
    targetRate: rate,
    launched,
    completed,
    skipped,
    failures,
    fates,
    latencyMs: { p50: median(latencies), p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN, max: latencies[latencies.length - 1] ?? NaN },
    samples,
    rssSlopeMiBPerMin: slope(warm.map((s) => s.t / 60), warm.map((s) => mb(s.rss))),
    heapSlopeMiBPerMin: slope(warm.map((s) => s.t / 60), warm.map((s) => mb(s.heap))),
    handlesBefore,
    handlesAfter,
    handlesLeft: extra(handlesBefore, handlesAfter),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** Orchestrate: listener child, client child; rows and a table. */
export async function soak(child: Child, self: string): Promise<{ rows: BenchRow[]; result: SoakResult; table: string }> {
  let port = 0;
  let gotPort!: () => void;
  const ready = new Promise<void>((r) => (gotPort = r));
  let listenerLeft: string[] | undefined;
  const listener = child([self, 'soak-listener'], (l) => {
    if (l.startsWith('PORT ')) {
      port = Number(l.slice(5));
      gotPort();
    } else if (l.startsWith('LEFT ')) listenerLeft = JSON.parse(l.slice(5)) as string[];
  });
  listener.done.catch(() => {});
  await ready;
  let result: SoakResult;
  try {
    process.stdout.write(`soak: ${process.env['TAPS_SOAK_RATE'] ?? 1000} initiate()/s for ${process.env['TAPS_SOAK_SECONDS'] ?? 60} s…\n`);
    const lines = await child([self, 'soak-client', String(port)]).done;
    const line = lines.find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error('soak client printed no result');
    result = JSON.parse(line.slice(7)) as SoakResult;
  } finally {
    listener.stdinEnd();
    await listener.done.catch(() => {});
  }
  result = { ...result, listenerHandlesLeft: listenerLeft };
  const achieved = result.completed / result.seconds;
  const rows: BenchRow[] = [
    row('initiate()+close() per second held', achieved, result.targetRate, 'op/s', '≥ 0.95×', `${result.launched} launched, ${result.skipped} skipped (in-flight cap), failures ${JSON.stringify(result.failures)}`),
  ];
  const first = result.samples[0];
  const last = result.samples[result.samples.length - 1];
  const lines = [
    ['duration', `${result.seconds.toFixed(1)} s`],
    ['completed', `${result.completed} (${achieved.toFixed(0)}/s of ${result.targetRate}/s)`],
    ['failures', JSON.stringify(result.failures)],
    ['candidate fates', JSON.stringify(result.fates)],
    ['initiate latency', `p50 ${result.latencyMs.p50.toFixed(2)} ms, p99 ${result.latencyMs.p99.toFixed(2)} ms, max ${result.latencyMs.max.toFixed(1)} ms`],
    ['rss', first && last ? `${mb(first.rss).toFixed(1)} → ${mb(last.rss).toFixed(1)} MiB, slope ${result.rssSlopeMiBPerMin.toFixed(2)} MiB/min after warm-up` : '-'],
    ['heap used', first && last ? `${mb(first.heap).toFixed(1)} → ${mb(last.heap).toFixed(1)} MiB, slope ${result.heapSlopeMiBPerMin.toFixed(2)} MiB/min after warm-up` : '-'],
    ['handles left (client)', result.handlesLeft.length === 0 ? 'none' : result.handlesLeft.join(', ')],
    ['handles left (listener)', listenerLeft === undefined ? 'not reported' : listenerLeft.length === 0 ? 'none' : listenerLeft.join(', ')],
  ];
  const w = Math.max(...lines.map((l) => l[0]!.length));
  const table = `soak\n${lines.map(([k, v]) => `  ${k!.padEnd(w)}  ${v}`).join('\n')}`;
  return { rows, result, table };
}
