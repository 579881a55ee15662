/**
 * Fleet hosts as separate processes against one private redis-server, with
 * the counting done at the listener (real loopback sockets): 2 and 4 hosts
 * share one tenant's connection limit and byte budget and never exceed
 * them; a killed host's units come back after its lease; Redis stopped
 * mid-run fails new connections closed (ERR_TAPS_FLEET_UNAVAILABLE) while
 * live ones keep working, and a restarted Redis is used again without
 * restarting the hosts; one published revision reaches every host, and the
 * connections it forbids are closed or kept per each host's choice.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../fleet/index.js';
import { HostCallError, startHost, type HostProcess } from '../helpers/fleet-hosts.js';
import { REDIS_SERVER, startRedis, type TestRedis } from '../helpers/redis.js';

if (REDIS_SERVER === undefined) process.stderr.write('\n*** fleet tier SKIPPED: redis-server is not installed (apt-get install redis-server) ***\n\n');

const LEASE_MS = 1000;
let redis: TestRedis;
let server: Server;
let port = 0;
const sockets = new Set<Socket>();
let maxConcurrent = 0;
let received = 0;
let fleetNo = 0;
const hosts: HostProcess[] = [];

beforeAll(async () => {
  if (REDIS_SERVER === undefined) return;
  redis = await startRedis();
  server = createServer((s) => {
    sockets.add(s);
    maxConcurrent = Math.max(maxConcurrent, sockets.size);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => (received += d.byteLength));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.stop()));
  if (REDIS_SERVER !== undefined) await redis.start(); // after a test that stopped it and failed
  for (const s of sockets) s.destroy();
});

afterAll(async () => {
  if (REDIS_SERVER === undefined) return;
  await new Promise<void>((r) => server.close(() => r()));
  await redis.close();
});

async function fleetOf(n: number, extra: Partial<Parameters<typeof startHost>[0]> = {}): Promise<{ name: string; members: HostProcess[] }> {
  const name = `p${++fleetNo}`;
  const members = await Promise.all([...Array(n)].map(() => startHost({ redis: redis.url, name, leaseMs: LEASE_MS, spareIdleMs: 200, ...extra })));
  hosts.push(...members);
  return { name, members };
}

async function publish(name: string, tenant: string, policy: string, members: readonly HostProcess[]): Promise<number> {
  const admin = await Fleet.open({ redis: redis.url, name });
  const rev = await admin.publish(tenant, policy);
  await admin.close();
  await Promise.all(members.map((m) => m.waitFor((e) => e.event === 'policy' && e.revision === rev, `revision ${rev}`)));
  return rev;
}

const until = async (ok: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

interface Opened {
  opened: number;
  refused: string[];
}

describe.skipIf(REDIS_SERVER === undefined)('fleet host processes', () => {
  for (const n of [2, 4]) {
    it(`${n} hosts share one connection limit: never above it at the listener, and what one host releases another can take`, async () => {
      const LIMIT = 8;
      const { name, members } = await fleetOf(n);
      await publish(name, 'acme', `allow tcp://127.0.0.1:${port}\nlimit connections ${LIMIT}`, members);
      maxConcurrent = 0;
      // Every host asks for 5 at once: 10 or 20 asks for 8 units.
      const results = await Promise.all(members.map((m) => m.call<Opened>('connect', { port, count: 5 })));
      const opened = results.reduce((s, r) => s + r.opened, 0);
      const refusals = results.flatMap((r) => r.refused);
      await until(() => sockets.size === opened, 'the listener to see every opened connection');
      process.stdout.write(`${n} hosts, limit ${LIMIT}: opened ${results.map((r) => r.opened).join('+')} = ${opened}, listener max ${maxConcurrent}\n`);
      expect(maxConcurrent).toBeLessThanOrEqual(LIMIT);
      // Exactly the limit: a take is refused only once every host holding units has answered its reclaim
      // request, so a refusal means the units are in use, never that a spare came back late.
      expect(opened).toBe(LIMIT);
      expect(new Set(refusals)).toEqual(new Set(['ERR_TAPS_QUOTA_EXCEEDED']));
      // Everyone lets go; then one host can take the whole limit, and not one more.
      await Promise.all(members.map((m) => m.call('closeAll')));
      await until(() => sockets.size === 0, 'the listener to see them close');
      const last = members[n - 1]!;
      const again = await last.call<Opened>('connect', { port, count: LIMIT + 2 });
      expect(again.opened).toBe(LIMIT);
      expect(again.refused).toEqual(['ERR_TAPS_QUOTA_EXCEEDED', 'ERR_TAPS_QUOTA_EXCEEDED']);
      await until(() => sockets.size === LIMIT, 'the listener to see the whole limit from one host');
      const other = await members[0]!.call<Opened>('connect', { port, count: 1 });
      expect(other).toEqual({ opened: 0, refused: ['ERR_TAPS_QUOTA_EXCEEDED'] });
      expect(maxConcurrent).toBeLessThanOrEqual(LIMIT);
    });

    it(`${n} hosts share one byte budget: the listener never receives more than the budget`, async () => {
      const BUDGET = 48 * 1024;
      const { name, members } = await fleetOf(n);
      await publish(name, 'acme', `allow tcp://127.0.0.1:${port}\nlimit sent 48KiB per 24h`, members);
      const before = received;
      const sent = await Promise.all(members.map((m) => m.call<number>('pump', { port })));
      const total = sent.reduce((a, b) => a + b, 0);
      await until(() => received - before === total, 'the listener to receive everything sent');
      process.stdout.write(`${n} hosts, budget ${BUDGET} B: sent ${sent.join('+')} = ${total}, listener got ${received - before}\n`);
      expect(received - before).toBeLessThanOrEqual(BUDGET);
      expect(total).toBeGreaterThan(BUDGET / 2); // the budget is used, not refused wholesale
    });
  }

  it('a killed host holding units: they come back after its lease time', async () => {
    const { name, members } = await fleetOf(2);
    const [a, b] = members as [HostProcess, HostProcess];
    await publish(name, 'acme', `allow tcp://127.0.0.1:${port}\nlimit connections 4`, members);
    expect(await a.call<Opened>('connect', { port, count: 4 })).toEqual({ opened: 4, refused: [] });
    expect(await b.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 0, refused: ['ERR_TAPS_QUOTA_EXCEEDED'] });
    const killedAt = performance.now();
    await a.kill();
    // Right after the crash the units are still A's (its lease runs; B waits up to reclaimWaitMs for A's answer,
    // which never comes): refused as a quota; B gets them once the lease ran out (or already, on a slow machine).
    const first = await b.call<Opened>('connect', { port, count: 1 });
    let got = first.opened;
    while (got === 0) {
      await new Promise((r) => setTimeout(r, 50));
      got = (await b.call<Opened>('connect', { port, count: 1 })).opened;
    }
    const back = performance.now() - killedAt;
    process.stdout.write(`units of a killed host back after ${back.toFixed(0)} ms (lease ${LEASE_MS} ms)\n`);
    expect(first.refused).toEqual(first.opened === 1 ? [] : ['ERR_TAPS_QUOTA_EXCEEDED']);
    expect(await b.call<Opened>('connect', { port, count: 4 })).toEqual({ opened: 3, refused: ['ERR_TAPS_QUOTA_EXCEEDED'] });
  });

  it('Redis stopped mid-run: new connections fail closed with ERR_TAPS_FLEET_UNAVAILABLE, live ones go on; restarted, the hosts recover by themselves', async () => {
    const { name, members } = await fleetOf(1);
    const [b] = await Promise.all([startHost({ redis: redis.url, name, leaseMs: LEASE_MS, fallback: { share: 0.5 } })]);
    hosts.push(b!);
    const a = members[0]!;
    const all = [a, b!];
    await publish(name, 'acme', `allow tcp://127.0.0.1:${port}\nlimit connections 4`, all);
    expect(await a.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 1, refused: [] });
    expect(await b!.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 1, refused: [] });
    // Spares are returned first: while its lease lasts a host may still use units it holds, and this is about new ones.
    await Promise.all(all.map((h) => h.call('dropSpares')));
    await redis.stop();
    await Promise.all(all.map((h) => h.waitFor((e) => e.event === 'state' && e.up === false, 'Redis down')));
    // A fails closed; B (fallback share 0.5 of 4) admits one more on its own, then fails closed too.
    expect(await a.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 0, refused: ['ERR_TAPS_FLEET_UNAVAILABLE'] });
    expect(await b!.call<Opened>('connect', { port, count: 2 })).toEqual({ opened: 1, refused: ['ERR_TAPS_FLEET_UNAVAILABLE'] });
    // The live connections are not touched.
    const before = received;
    await a.call('send', { index: 0, bytes: 100 });
    await until(() => received - before === 100, 'the live connection to deliver');
    expect(await a.call('state')).toEqual(['established']);
    await redis.start();
    await Promise.all(all.map((h) => h.waitFor((e, i = h.events.indexOf(e)) => e.event === 'state' && e.up === true && i > 0, 'Redis back')));
    let r: Opened;
    do r = await a.call<Opened>('connect', { port, count: 1 });
    while (r.opened === 0 && r.refused[0] === 'ERR_TAPS_FLEET_UNAVAILABLE');
    expect(r).toEqual({ opened: 1, refused: [] });
    // The claims were re-asserted into the empty Redis: 2 + 2 of 4 are held, nothing more fits.
    await until(async () => (await b!.call<Opened>('connect', { port, count: 1 })).refused[0] === 'ERR_TAPS_QUOTA_EXCEEDED', 'the limit to count every live connection');
  });

  it('one published revision reaches every host; the connections it forbids are closed or kept per host', async () => {
    const name = `p${++fleetNo}`;
    const closers = await Promise.all([0, 1].map(() => startHost({ redis: redis.url, name, leaseMs: LEASE_MS, onRevoke: 'close' })));
    const keeper = await startHost({ redis: redis.url, name, leaseMs: LEASE_MS, onRevoke: 'keep' });
    const all = [...closers, keeper];
    hosts.push(...all);
    await publish(name, 'acme', `allow tcp://127.0.0.1:${port}`, all);
    for (const h of all) expect(await h.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 1, refused: [] });
    const rev = await publish(name, 'acme', 'allow tcp://127.0.0.1:1', all);
    for (const h of closers) {
      const e = await h.waitFor((x) => x.event === 'connectionError', 'the revoked connection');
      expect(e.code).toBe('ERR_TAPS_POLICY_PROHIBITED');
      expect(await h.call('state')).toEqual(['closed']);
    }
    expect(await keeper.call('state')).toEqual(['established']);
    expect(await keeper.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 0, refused: ['ERR_TAPS_POLICY_PROHIBITED'] });
    // A host that starts now loads the current revision.
    const late = await startHost({ redis: redis.url, name, leaseMs: LEASE_MS });
    hosts.push(late);
    expect(await late.call('revision')).toBe(rev);
    expect(await late.call<Opened>('connect', { port, count: 1 })).toEqual({ opened: 0, refused: ['ERR_TAPS_POLICY_PROHIBITED'] });
  });

  it('a host call that fails reports its code', async () => {
    const { members } = await fleetOf(1);
    await expect(members[0]!.call('send', { index: 5 })).rejects.toBeInstanceOf(HostCallError);
  });
});
