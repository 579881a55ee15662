/**
 * `npm run bench:load` (load; not part of `npm test`):
 *
 * 1. Idle connections: N (default 10,000) concurrent idle TCP connections
 *    on loopback, opened through the library (`Preconnection.initiate()`,
 *    tcp/tls/udp drivers judged, policy checked, raced) and, in the same run,
 *    with plain `net.connect`. Each side runs in its own child process (so
 *    each has a clean heap and its own descriptor limit) against a third
 *    process that accepts and holds every connection. Reported: resident
 *    memory of each process with all N open (goal: library ≤ 1.5× net), and
 *    the per-connection bytes (RSS growth / N) of each.
 * 2. Soak (bench/load-soak.ts): initiate()/s at a target rate for a duration
 *    against a loopback listener, every initiate raced over two candidates
 *    of which one is refused; throughput, latency, memory slope, handles left.
 *
 * Prints tables, writes bench/results/load.json.
 *
 *   npm run bench:load                                  # 10k idle + 60 s soak at 1000/s
 *   TAPS_LOAD_CONNECTIONS=2000 TAPS_SOAK_SECONDS=10 npm run bench:load
 *   npx tsx bench/load.ts idle                          # only the idle part (or: soak)
 *
 * Descriptor limits: each process needs N descriptors (+ a few). Children are
 * started through `sh -c 'ulimit -n <hard>'`, which raises the soft limit to
 * the hard one (Node has no setrlimit); if N still does not fit, the run
 * measures the largest count that opened and says why.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, row, type BenchRow, RESULTS_DIR } from './harness.js';

const self = fileURLToPath(import.meta.url);
const N = Number(process.env['TAPS_LOAD_CONNECTIONS'] ?? 10_000);
const CONCURRENCY = 256;

interface IdleResult {
  readonly mode: 'net' | 'taps';
  readonly asked: number;
  readonly opened: number;
  readonly error?: string | undefined;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly heapBefore: number;
  readonly heapAfter: number;
  /** V8's committed heap (used + free pages it kept) after the connections opened. */
  readonly heapTotalBefore: number;
  readonly heapTotalAfter: number;
  /** Memory outside V8's heap that V8 knows of (Buffers and the like). */
  readonly externalBefore: number;
  readonly externalAfter: number;
  readonly openMs: number;
  readonly fdLimit: string;
}

const mb = (b: number): number => b / (1024 * 1024);

/** The soft and hard "Max open files" of this process. */
async function fdLimit(): Promise<string> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const m = /Max open files\s+(\S+)\s+(\S+)/.exec(text);
    return m ? `${m[1]}/${m[2]}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

async function settleMemory(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage();
}

/** Child: open `n` idle connections to 127.0.0.1:`port` one way or the other, report memory, close. */
async function idleChild(mode: 'net' | 'taps', port: number, n: number): Promise<void> {
  let open: () => Promise<{ close: () => void }>;
  if (mode === 'net') {
    open = () =>
      new Promise((resolve, reject) => {
        const s: Socket = connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true });
        s.once('error', reject);
        s.once('connect', () => {
          s.off('error', reject);
          s.on('error', () => {});
          s.on('data', () => {}); // reading, as an application would
          resolve({ close: () => s.destroy() });
        });
      });
  } else {
    const { Preconnection, TransportProperties, SecurityParameters, createScope } = await import('../src/index.js');
    // Each driver from its own module (taps-node/tcp, /tls, /udp), as a host that uses these three imports them.
    const [{ tcpDriver }, { tlsDriver }, { udpDriver }] = await Promise.all([
      import('../transports/tcp/index.js'),
      import('../transports/tls/index.js'),
      import('../transports/udp/index.js'),
    ]);
    const scope = createScope({ tenant: 'load', policy: { decide: () => ({ allow: true, rule: 'load: allow all' }) } });
    const pre = new Preconnection({
      scope,
      remote: { ipAddress: '127.0.0.1', port },
      properties: TransportProperties.reliableInorderStream(),
      security: SecurityParameters.disabled(),
      drivers: [tcpDriver, tlsDriver, udpDriver],
    });
    open = async () => {
      const conn = await pre.initiate({ timeout: 30_000 });
      conn.on('received', () => {}); // reading, as an application would
      return { close: () => conn.abort() };
    };
  }
  const before = await settleMemory();
  const conns: { close: () => void }[] = [];
  let error: string | undefined;
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n && error === undefined) {
      next++;
      try {
        conns.push(await open());
      } catch (err) {
        error ??= `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.trim();
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const openMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const after = await settleMemory();
  const result: IdleResult = {
    mode, asked: n, opened: conns.length, error, openMs, fdLimit: await fdLimit(),
    rssBefore: before.rss, rssAfter: after.rss, heapBefore: before.heapUsed, heapAfter: after.heapUsed,
    heapTotalBefore: before.heapTotal, heapTotalAfter: after.heapTotal,
    externalBefore: before.external, externalAfter: after.external,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  // Wait until the holder has closed its ends first (its side then keeps the TIME_WAITs, not our ephemeral ports).
  await new Promise<void>((r) => {
    process.stdin.resume();
    process.stdin.once('end', () => r());
  });
  for (const c of conns) c.close();
}

/** Child: accept and hold every connection; print the port; exit when stdin closes. */
async function holdChild(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', () => {});
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, r));
  process.stdout.write(`PORT ${(server.address() as { port: number }).port}\n`);
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    if (!d.includes('drop')) return;
    const n = sockets.size;
    for (const s of sockets) s.destroy();
    process.stdout.write(`DROPPED ${n}\n`);
  });
  process.stdin.once('end', () => {
    for (const s of sockets) s.destroy();
    server.close();
  });
}

/** Run this file as a child with `args`, under the raised descriptor limit; resolves with its stdout lines. */
export function child(args: readonly string[], onLine?: (line: string) => void, env: NodeJS.ProcessEnv = {}): { done: Promise<string[]>; stdinEnd: () => void; write: (line: string) => void } {
  const node = [process.execPath, '--expose-gc', ...process.execArgv, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const p = spawn('/bin/sh', ['-c', `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec ${node}`], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let buf = '';
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      onLine?.(line);
    }
  });
  const done = new Promise<string[]>((resolve, reject) => {
    p.once('error', reject);
    p.once('close', (code) => (code === 0 ? resolve(lines) : reject(new Error(`${args.join(' ')} exited with ${code}`))));
  });
  return { done, stdinEnd: () => p.stdin.end(), write: (line) => void p.stdin.write(`${line}\n`) };
}

async function idle(): Promise<{ rows: BenchRow[]; results: IdleResult[] }> {
  let port = 0;
  let gotPort!: () => void;
  const portReady = new Promise<void>((r) => (gotPort = r));
  let dropped: (() => void) | undefined;
  const holder = child([self, 'hold'], (l) => {
    if (l.startsWith('PORT ')) {
      port = Number(l.slice(5));
      gotPort();
    } else if (l.startsWith('DROPPED ')) dropped?.();
  });
  holder.done.catch(() => {});
  await portReady;
  const results: IdleResult[] = [];
  try {
    for (const mode of ['net', 'taps'] as const) {
      process.stdout.write(`idle: ${N} connections with ${mode}…\n`);
      let got!: (line: string) => void;
      const result = new Promise<string>((r) => (got = r));
      const c = child([self, 'idle-child', mode, String(port), String(N)], (l) => {
        if (l.startsWith('RESULT ')) got(l);
      });
      const line = await Promise.race([result, c.done.then(() => '')]);
      if (!line) throw new Error(`idle-child ${mode} printed no result`);
      results.push(JSON.parse(line.slice(7)) as IdleResult);
      // The holder closes first, then the child lets go.
      await new Promise<void>((r) => {
        dropped = r;
        holder.write('drop');
      });
      c.stdinEnd();
      await c.done;
    }
  } finally {
    holder.stdinEnd();
    await holder.done.catch(() => {});
  }
  const [net, taps] = results as [IdleResult, IdleResult];
  const per = (r: IdleResult): number => (r.rssAfter - r.rssBefore) / Math.max(1, r.opened);
  const note = net.opened < N || taps.opened < N ? `only ${Math.min(net.opened, taps.opened)} of ${N} opened: ${net.error ?? taps.error ?? ''} (fd limit ${taps.fdLimit})` : undefined;
  const rows: BenchRow[] = [
    row(`${taps.opened} idle TCP connections: resident memory`, mb(taps.rssAfter), mb(net.rssAfter), 'MiB', '≤ 1.5×', note),
    row('idle TCP: bytes per connection (RSS growth / N)', per(taps), per(net), 'B', '', `heap used per connection: ${((taps.heapAfter - taps.heapBefore) / Math.max(1, taps.opened)).toFixed(0)} B ours, ${((net.heapAfter - net.heapBefore) / Math.max(1, net.opened)).toFixed(0)} B net; heap committed per connection: ${((taps.heapTotalAfter - taps.heapTotalBefore) / Math.max(1, taps.opened)).toFixed(0)} B ours, ${((net.heapTotalAfter - net.heapTotalBefore) / Math.max(1, net.opened)).toFixed(0)} B net; external per connection: ${((taps.externalAfter - taps.externalBefore) / Math.max(1, taps.opened)).toFixed(0)} B ours, ${((net.externalAfter - net.externalBefore) / Math.max(1, net.opened)).toFixed(0)} B net; RSS before: ${mb(taps.rssBefore).toFixed(1)} MiB ours, ${mb(net.rssBefore).toFixed(1)} MiB net`),
    row('idle TCP: time to open all', taps.openMs, net.openMs, 'ms', '', `${CONCURRENCY} at a time`),
  ];
  return { rows, results };
}

async function main(): Promise<void> {
  const what = process.argv[2];
  if (what === 'idle-child') return idleChild(process.argv[3] as 'net' | 'taps', Number(process.argv[4]), Number(process.argv[5]));
  if (what === 'hold') return holdChild();
  if (what === 'soak-listener') return (await import('./load-soak.js')).listenerChild();
  if (what === 'soak-client') return (await import('./load-soak.js')).clientChild(Number(process.argv[3]));
  const parts = what === 'idle' || what === 'soak' ? [what] : ['idle', 'soak'];
  const rows: BenchRow[] = [];
  const out: Record<string, unknown> = { node: process.version, date: new Date().toISOString(), cpus: (await import('node:os')).cpus().length, fdLimit: await fdLimit() };
  if (parts.includes('idle')) {
    const r = await idle();
    rows.push(...r.rows.map((x) => ({ ...x, suite: 'idle' })));
    out['idle'] = r.results;
  }
  if (parts.includes('soak')) {
    const { soak } = await import('./load-soak.js');
    const r = await soak(child, self);
    rows.push(...r.rows.map((x) => ({ ...x, suite: 'soak' })));
    out['soak'] = r.result;
    process.stdout.write(`\n${r.table}\n`);
  }
  out['rows'] = rows;
  process.stdout.write(`\n${formatTable(rows)}\n`);
  for (const r of rows) if (r.note) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'load.json'), JSON.stringify(out, null, 2));
}

await main();
