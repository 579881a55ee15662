/**
 * Fleet benchmarks, against a private redis-server on loopback started here
 * (skipped, with a row saying so, when redis-server is not installed):
 *
 * - TCP establishment (initiate + close to a loopback IP literal) from a Host
 *   whose quotas are the fleet's against a Host with the same limit counted in
 *   process, paired in one run (≤ 1.2×: spares keep Redis off the path).
 * - Decision records to the Redis Stream: records per second sustained
 *   (decided and written), and establishment with the stream sink on against
 *   the same fleet Host without it (≤ 1.1×).
 * - 1,000 tenants × 4 hosts (worker threads, each its own Fleet and Host):
 *   time from `publish` to the revision being applied on all four, p50/p99.
 *
 *   npx tsx bench/fleet.ts        # table + bench/results/fleet.json
 *   npm run bench -- fleet        # as part of the whole bench
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Fleet } from '../fleet/index.js';
import { Host } from '../src/policy/host.js';
import type { NetworkScope } from '../src/policy/chokepoint.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { tcpDriver } from '../transports/tcp/index.js';
import { REDIS_SERVER, startRedis, type TestRedis } from '../test/helpers/redis.js';
import { formatTable, row, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export async function run(): Promise<BenchRow[]> {
  if (REDIS_SERVER === undefined) {
    return [row('fleet suite', NaN, NaN, '-', 'report', 'SKIPPED: redis-server is not installed (apt-get install redis-server)')];
  }
  const redis = await startRedis();
  const peers = new Set<Socket>();
  const server = createServer((s: Socket) => {
    peers.add(s);
    s.on('error', () => {});
    s.on('close', () => peers.delete(s));
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return [...(await establishmentRows(redis, port)), ...(await recordRows(redis)), ...(await propagationRows(redis))];
  } finally {
    for (const p of peers) p.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await redis.close();
  }
}

async function establishmentRows(redis: TestRedis, port: number): Promise<BenchRow[]> {
  const policy = `allow tcp://127.0.0.1:${port}\nlimit connections 100000`;
  const local = new Host();
  local.setPolicy('acme', policy);
  const fleet = await Fleet.open({ redis: redis.url, name: 'bench-est' });
  const fleetHost = new Host(fleet.hostOptions());
  await fleet.attach(fleetHost);
  await fleet.publish('acme', policy);
  const sinkFleet = await Fleet.open({ redis: redis.url, name: 'bench-est', records: { maxLen: 10_000 } });
  const sinkHost = new Host(sinkFleet.hostOptions());
  await sinkFleet.attach(sinkHost);
  try {
    const [withFleet, withLocal] = await establishment([await fleetHost.tenant('acme'), await local.tenant('acme')], port);
    const [withSink, withoutSink] = await establishment([await sinkHost.tenant('acme'), await fleetHost.tenant('acme')], port);
    await sinkFleet.records!.flushed();
    return [
      pairedRow('TCP establishment, fleet quotas vs single-process quotas', withFleet!, withLocal!, 'µs', '≤ 1.2×', 'loopback IP literal, limit 100,000, local Redis'),
      pairedRow('TCP establishment, decision stream on vs off (fleet quotas both)', withSink!, withoutSink!, 'µs', '≤ 1.1×', `records written ${sinkFleet.records!.written}, dropped ${sinkFleet.records!.dropped}`),
    ];
  } finally {
    await Promise.all([fleet.close(), sinkFleet.close()]);
  }
}

/** µs per initiate()+close() for each scope, paired back to back, order swapped every pair. */
async function establishment(scopes: NetworkScope[], port: number, pairs = 1500): Promise<number[][]> {
  const pres = scopes.map(
    (scope) =>
      new Preconnection({
        scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(),
        security: SecurityParameters.disabled(), drivers: [tcpDriver],
      }),
  );
  const once = async (pre: Preconnection): Promise<number> => {
    const t0 = performance.now();
    const conn = await pre.initiate();
    const t = performance.now() - t0;
    await conn.close();
    return t * 1000;
  };
  for (const pre of pres) for (let i = 0; i < 200; i++) await once(pre);
  const samples = pres.map((): number[] => []);
  for (let r = 0; r < pairs; r++) {
    for (let k = 0; k < pres.length; k++) {
      const i = r % 2 === 0 ? k : pres.length - 1 - k;
      samples[i]!.push(await once(pres[i]!));
    }
  }
  return samples;
}

async function recordRows(redis: TestRedis): Promise<BenchRow[]> {
  const fleet = await Fleet.open({ redis: redis.url, name: 'bench-rec', records: { maxLen: 100_000, maxQueued: 1_000_000 } });
  const host = new Host(fleet.hostOptions());
  await fleet.attach(host);
  await fleet.publish('acme', 'allow tcp://10.0.0.0/8:443');
  const scope = await host.tenant('acme');
  const N = 100_000;
  const decide = (i: number) => scope.guard.decideSync({ use: 'connect', protocol: 'tcp', address: `10.0.${(i >> 8) & 255}.${i & 255}`, port: 443 });
  try {
    // Sustained: decisions in batches of 1,000 (a turn of the event loop each), until all are written.
    const t0 = performance.now();
    for (let i = 0; i < N; i += 1000) {
      for (let j = i; j < i + 1000; j++) decide(j);
      await new Promise((r) => setImmediate(r));
    }
    await fleet.records!.flushed();
    const streamRate = (fleet.records!.written * 1000) / (performance.now() - t0);
    // What a host would write by hand: ioredis pipelines of 1,000 XADDs of the same fields.
    const { Redis } = await import('ioredis');
    const raw = new Redis(redis.url);
    const fields = ['id', '1', 'node', 'h', 'tenant', 'acme', 'time', '1', 'mode', 'enforce', 'allow', 'true', 'use', 'connect', 'protocol', 'tcp',
      'address', '10.0.0.1', 'port', '443', 'rule', 'allow tcp://10.0.0.0/8:443', 'reason', '', 'revision', '1', 'fleetRevision', '1',
      'request', '{"use":"connect","protocol":"tcp","address":"10.0.0.1","port":443}', 'decision', '{"allow":true,"rule":"allow tcp://10.0.0.0/8:443"}'];
    const t1 = performance.now();
    for (let i = 0; i < N; i += 1000) {
      const p = raw.pipeline();
      for (let j = 0; j < 1000; j++) p.xadd('bench-raw', 'MAXLEN', '~', 100_000, '*', ...fields);
      await p.exec();
    }
    const rawRate = (N * 1000) / (performance.now() - t1);
    await raw.quit();
    return [
      row('decision records to the Redis Stream, sustained (vs hand-written XADD pipelines)', streamRate, rawRate, 'records/s', 'report', `${fleet.records!.written} written, ${fleet.records!.dropped} dropped; ours includes making the 100,000 decisions`),
    ];
  } finally {
    await fleet.close();
  }
}

async function propagationRows(redis: TestRedis): Promise<BenchRow[]> {
  const TENANTS = 1000;
  const HOSTS = 4;
  const name = 'bench-prop';
  const admin = await Fleet.open({ redis: redis.url, name });
  for (let t = 0; t < TENANTS; t++) await admin.publish(`t${t}`, `allow tcp://svc${t}.example.com:443\nlimit connections 100`);
  const applied = new Map<number, number[]>();
  const workers = [...Array(HOSTS)].map(
    () => new Worker(new URL('./fleet-host.js', import.meta.url), { workerData: { redis: redis.url, name } }),
  );
  try {
    const ready = workers.map(
      (w) =>
        new Promise<number>((resolve, reject) => {
          w.once('error', reject);
          w.on('message', (m: { ready?: boolean; tenants?: number; revision?: number; at?: number }) => {
            if (m.ready) resolve(m.tenants!);
            else if (m.revision !== undefined) applied.set(m.revision, [...(applied.get(m.revision) ?? []), m.at!]);
          });
        }),
    );
    const loaded = await Promise.all(ready);
    if (loaded.some((n) => n !== TENANTS)) throw new Error(`hosts loaded ${loaded.join(', ')} tenants, not ${TENANTS}`);
    // One revision at a time, each for another tenant: the time until all four hosts applied it.
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t = (i * 7) % TENANTS;
      const start = performance.timeOrigin + performance.now();
      const rev = await admin.publish(`t${t}`, `allow tcp://svc${t}.example.com:443\nallow tcp://r${i}.example.com:443\nlimit connections 100`);
      while ((applied.get(rev)?.length ?? 0) < HOSTS) await new Promise((r) => setImmediate(r));
      times.push(Math.max(...applied.get(rev)!) - start);
    }
    return [
      row('policy revision to all of 4 hosts, 1,000 tenants: p50', percentile(times, 50), NaN, 'ms', 'report', '500 revisions, one at a time; publish to applied on the last host'),
      row('policy revision to all of 4 hosts, 1,000 tenants: p99', percentile(times, 99), NaN, 'ms', 'report', 'worker threads, each its own Fleet and Host'),
    ];
  } finally {
    for (const w of workers) w.postMessage({ stop: true });
    await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
    await admin.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'fleet' })))}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'fleet.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
