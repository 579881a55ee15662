/**
 * The fleet with two hosts in one process (each its own Fleet, Redis
 * connections and Host) against a private redis-server: policy publishing
 * and catch-up, shared connection quotas with spares and reclaim, byte
 * budgets, the decision stream, signed policies, option checks. The
 * multi-process tests (processes.test.ts) cover crashes and outages.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet, signPolicy, type PolicyEvent } from '../../fleet/index.js';
import { isTapsError, QuotaExceededError, type TapsError } from '../../src/errors.js';
import { Host } from '../../src/policy/host.js';
import { PolicyParseError } from '../../src/policy/grammar.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import type { Connection } from '../../src/connection/connection.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { REDIS_SERVER, startRedis, type TestRedis } from '../helpers/redis.js';

if (REDIS_SERVER === undefined) process.stderr.write('\n*** fleet tier SKIPPED: redis-server is not installed (apt-get install redis-server) ***\n\n');

let redis: TestRedis;
let server: Server;
let port = 0;
const peers = new Set<Socket>();
let received = 0;
let fleetNo = 0;

beforeAll(async () => {
  if (REDIS_SERVER === undefined) return;
  redis = await startRedis();
  server = createServer((s) => {
    peers.add(s);
    s.on('error', () => {});
    s.on('close', () => peers.delete(s));
    s.on('data', (d) => (received += d.byteLength));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  if (REDIS_SERVER === undefined) return;
  for (const p of peers) p.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  await redis.close();
});

interface Member {
  fleet: Fleet;
  host: Host;
  events: PolicyEvent[];
}

async function member(name: string, extra: Partial<Parameters<typeof Fleet.open>[0]> = {}): Promise<Member> {
  const events: PolicyEvent[] = [];
  const fleet = await Fleet.open({ redis: redis.url, name, leaseMs: 2000, onPolicy: (e) => events.push(e), ...extra });
  const host = new Host(fleet.hostOptions());
  await fleet.attach(host);
  return { fleet, host, events };
}

const connect = async (m: Member, tenant = 'acme'): Promise<Connection> =>
  new Preconnection({
    scope: await m.host.tenant(tenant), remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(), drivers: [tcpDriver],
  }).initiate();

const codeOf = (err: unknown): string | undefined => (isTapsError(err) ? (err as TapsError).code : undefined);
const until = async (ok: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe.skipIf(REDIS_SERVER === undefined)('fleet, two hosts in one process', () => {
  it('a published policy reaches both hosts; a host attached later loads it; a bad policy reaches none', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name);
    const b = await member(name);
    const rev = await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}`);
    await until(() => a.fleet.revision('acme') === rev && b.fleet.revision('acme') === rev, 'the revision on both hosts');
    expect(b.events.map((e) => [e.tenant, e.revision, e.outcome])).toEqual([['acme', rev, 'applied']]);
    const c = await member(name);
    expect(c.fleet.revision('acme')).toBe(rev);
    expect(c.host.policy('acme')).toBeDefined();
    await expect(a.fleet.publish('acme', 'allow nonsense://x')).rejects.toBeInstanceOf(PolicyParseError);
    const rev2 = await a.fleet.unpublish('acme');
    await until(() => b.fleet.revision('acme') === rev2, 'the removal');
    expect(b.host.policy('acme')).toBeUndefined();
    for (const m of [a, b, c]) await m.fleet.close();
  });

  it('two hosts share one connection limit: never more than the limit, spares come back when another host needs them', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name);
    const b = await member(name);
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit connections 6`);
    await until(() => b.host.policy('acme') !== undefined, 'the policy');
    const open: Connection[] = [];
    const refused: string[] = [];
    const attempt = async (m: Member) => {
      try {
        open.push(await connect(m));
      } catch (err) {
        refused.push(String(codeOf(err)));
      }
    };
    await Promise.all([...Array(5)].map(() => attempt(a)).concat([...Array(5)].map(() => attempt(b))));
    expect(open.length).toBe(6);
    expect(refused).toEqual(Array(4).fill('ERR_TAPS_QUOTA_EXCEEDED'));
    await until(() => peers.size === 6, 'six sockets at the server');
    // Everything held by A goes back; B can then take the whole limit.
    const onA = open.filter((_, i) => i < open.length);
    for (const c of onA) c.abort();
    open.length = 0;
    await until(() => peers.size === 0, 'the server to see them go');
    const more: Connection[] = [];
    for (let i = 0; i < 6; i++) more.push(await connect(b));
    await expect(connect(b)).rejects.toBeInstanceOf(QuotaExceededError);
    await expect(connect(a)).rejects.toBeInstanceOf(QuotaExceededError);
    for (const c of more) c.abort();
    await a.fleet.close();
    await b.fleet.close();
  });

  it('near the limit a short host waits for the holders to answer its reclaim request, however slow they are: the fleet grants up to its limit', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name);
    const b = await member(name);
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit connections 4`);
    await until(() => b.host.policy('acme') !== undefined, 'the policy');
    const onA = await connect(a);
    // A keeps a spare it does not use (its claim is 2 of 4).
    expect(a.fleet.quotas.held('acme', 'connection')).toEqual({ inUse: 1, spare: 1 });
    // A hears reclaim requests late (as a loaded host does): far later than a fixed wait of a few ms.
    const quotas = a.fleet.quotas;
    const heard = quotas.reclaim.bind(quotas);
    let late = 0;
    quotas.reclaim = (message: string) => void setTimeout(() => (late++, heard(message)), 300);
    const onB: Connection[] = [];
    for (let i = 0; i < 3; i++) onB.push(await connect(b));
    expect(late).toBeGreaterThan(0);
    expect(a.fleet.quotas.held('acme', 'connection')).toEqual({ inUse: 1, spare: 0 });
    // Now every unit is in use: a refusal, from either host.
    await expect(connect(b)).rejects.toBeInstanceOf(QuotaExceededError);
    await expect(connect(a)).rejects.toBeInstanceOf(QuotaExceededError);
    for (const c of [onA, ...onB]) c.abort();
    await a.fleet.close();
    await b.fleet.close();
  });

  it('a revision announced while a host was not subscribed is caught up when it subscribes again', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name);
    const b = await member(name);
    const rev1 = await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}`);
    await b.fleet.reached('acme', rev1);
    const { Redis } = await import('ioredis');
    const admin = new Redis(redis.url);
    // Drop every subscriber connection, then publish before they are back: the announcement reaches nobody.
    await admin.client('KILL', 'TYPE', 'pubsub');
    expect(await admin.pubsub('NUMSUB', `taps:${name}:policy`)).toEqual([`taps:${name}:policy`, 0]);
    const rev2 = await a.fleet.publish('acme', 'allow tcp://127.0.0.1:1');
    const rev3 = await a.fleet.unpublish('globex'); // a tombstone for a tenant nobody had: ignored
    await admin.quit();
    await b.fleet.reached('acme', rev2);
    expect(b.events.filter((e) => e.tenant === 'acme').map((e) => [e.revision, e.outcome])).toEqual([[rev1, 'applied'], [rev2, 'applied']]);
    expect(b.fleet.revision('globex')).toBe(0);
    expect(rev3).toBeGreaterThan(rev2);
    await a.fleet.close();
    await b.fleet.close();
  });

  it('listeners are counted across the fleet too', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name);
    const b = await member(name);
    await a.fleet.publish('acme', 'allow bind:tcp://127.0.0.1:*\nlimit listeners 1');
    await b.fleet.reached('acme', a.fleet.revision('acme'));
    const listen = async (m: Member) =>
      new Preconnection({
        scope: await m.host.tenant('acme'), local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableInorderStream(),
        security: SecurityParameters.disabled(), drivers: [tcpDriver],
      }).listen();
    const la = await listen(a);
    await expect(listen(b)).rejects.toBeInstanceOf(QuotaExceededError);
    await la.stop();
    await a.fleet.quotas.settled({ spares: false });
    const lb = await listen(b);
    await expect(listen(a)).rejects.toBeInstanceOf(QuotaExceededError);
    await lb.stop();
    await a.fleet.close();
    await b.fleet.close();
  });

  it('far from the limit a host keeps spares: most connections cost no round trip', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name, { unitBlock: 4 });
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit connections 1000`);
    await until(() => a.host.policy('acme') !== undefined, 'the policy');
    const c1 = await connect(a);
    expect(a.fleet.quotas.held('acme', 'connection')).toEqual({ inUse: 1, spare: 4 });
    const scope = await a.host.tenant('acme');
    const lease = scope.lease('connection');
    expect(lease).not.toBeInstanceOf(Promise); // served from a spare, synchronously
    (await lease).release();
    c1.abort();
    await a.fleet.close();
  });

  it('byte budgets are shared: the fleet never sends more than the budget', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name, { byteBlock: 4096 });
    const b = await member(name, { byteBlock: 4096 });
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit sent 64KiB per 24h`);
    await until(() => b.host.policy('acme') !== undefined, 'the policy');
    const before = received;
    const chunk = new Uint8Array(1000);
    const pump = async (m: Member): Promise<number> => {
      const conn = await connect(m);
      let sent = 0;
      let refusals = 0;
      while (refusals < 10) {
        try {
          await conn.send(chunk);
          sent += chunk.byteLength;
          refusals = 0;
        } catch (err) {
          expect(codeOf(err)).toBe('ERR_TAPS_QUOTA_EXCEEDED');
          refusals++;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      conn.abort();
      return sent;
    };
    const [sa, sb] = await Promise.all([pump(a), pump(b)]);
    await until(() => received - before === sa + sb, 'the server to receive everything sent');
    process.stdout.write(`byte budget 65536: host A sent ${sa}, host B sent ${sb}, server got ${received - before}\n`);
    expect(sa + sb).toBeLessThanOrEqual(64 * 1024);
    expect(sa + sb).toBeGreaterThan(60 * 1024); // all but the crumbs are used
    expect(sa).toBeGreaterThan(0);
    expect(sb).toBeGreaterThan(0);
    await a.fleet.close();
    await b.fleet.close();
  });

  it('decision records go to the fleet stream, shaped like the records', async () => {
    const name = `f${++fleetNo}`;
    const a = await member(name, { records: { maxLen: 1000 } });
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}`);
    await until(() => a.host.policy('acme') !== undefined, 'the policy');
    const conn = await connect(a);
    conn.abort();
    const scope = await a.host.tenant('acme');
    await scope.guard.decide({ use: 'connect', protocol: 'tcp', address: '192.0.2.1', port: 80 });
    await scope.guard.decide({ use: 'connect', protocol: 'tcp', host: `${'a'.repeat(60)}.`.repeat(2000), port: 80 }); // a guest's 122 KB name
    await a.fleet.records!.flushed();
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    const entries = await r.xrange(`taps:${name}:records`, '-', '+');
    await r.quit();
    const rows = entries.map(([, f]) => Object.fromEntries(f.reduce<string[][]>((acc, v, i) => (i % 2 ? acc : [...acc, [v, f[i + 1]!]]), [])));
    expect(rows.map((x) => [x.tenant, x.use, x.address, x.port, x.allow, x.code])).toEqual([
      ['acme', 'connect', '127.0.0.1', String(port), 'true', undefined],
      ['acme', 'connect', '192.0.2.1', '80', 'false', 'no-match'],
      ['acme', 'connect', undefined, '80', 'false', rows[2]!.code],
    ]);
    expect(rows[2]!.host!.length).toBeLessThan(2100);
    expect(rows[2]!.host).toMatch(/…\(122000 characters\)$/);
    expect(rows[0]!.node).toBe(a.fleet.hostId);
    expect(rows[0]!.fleetRevision).toBe(String(a.fleet.revision('acme')));
    expect(JSON.parse(rows[1]!.decision!)).toMatchObject({ allow: false, code: 'no-match' });
    expect(a.fleet.records!.written).toBe(3);
    await a.fleet.close();
  });

  it('signed policies: only a policy signed for the tenant by a trusted signer is applied', async () => {
    const name = `f${++fleetNo}`;
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519');
    const signers = [{ issuer: 'https://policy.test', keys: publicKey.export({ format: 'pem', type: 'spki' }) as string }];
    const a = await member(name, { policySigners: signers });
    const signer = { issuer: 'https://policy.test', key: privateKey, algorithm: 'EdDSA' as const };
    const rev = await a.fleet.publish('acme', await signPolicy('acme', `allow tcp://127.0.0.1:${port}`, signer));
    await until(() => a.fleet.revision('acme') === rev, 'the signed revision');
    expect(a.host.policy('acme')).toBeDefined();
    // Unsigned, signed by an untrusted key, or signed for another tenant: refused at publish.
    await expect(a.fleet.publish('acme', 'allow tcp://*:*')).rejects.toThrow(/signed/);
    await expect(a.fleet.publish('acme', await signPolicy('acme', 'allow tcp://*:*', { ...signer, key: other.privateKey }))).rejects.toThrow(/signature/);
    await expect(a.fleet.publish('acme', await signPolicy('globex', 'allow tcp://*:*', signer))).rejects.toThrow(/sub/);
    // Written straight into Redis (someone with Redis access but not the key): the host refuses it, the old revision stays.
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    const forged = JSON.stringify(await signPolicy('globex', 'allow tcp://*:*', signer));
    const frev = await r.incr(`taps:${name}:policyrev`);
    await r.publish(`taps:${name}:policy`, `acme\n${frev}\n${forged}`);
    await r.quit();
    await until(() => a.events.some((e) => e.revision === frev), 'the forged revision to be seen');
    expect(a.events.find((e) => e.revision === frev)).toMatchObject({ outcome: 'rejected' });
    const scope = await a.host.tenant('acme');
    expect(scope.guard.decideSync!({ use: 'connect', protocol: 'tcp', address: '192.0.2.1', port: 80 }).allow).toBe(false);
    await a.fleet.close();
  });

  it('Redis away: a live connection spends past its block up to the outage cap; the bytes are recorded when Redis is back', async () => {
    const name = `f${++fleetNo}`;
    const states: boolean[] = [];
    const a = await member(name, { byteBlock: 1024, onState: (st) => states.push(st.up) });
    await a.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit sent 8000 per 24h`);
    const conn = await connect(a);
    await conn.send(new Uint8Array(1000));
    await redis.stop();
    await until(() => states.includes(false), 'the fleet to see Redis go');
    let sent = 1000;
    let refused: unknown;
    while (refused === undefined) {
      try {
        await conn.send(new Uint8Array(1000));
        sent += 1000;
      } catch (err) {
        refused = err;
      }
    }
    // One host: its cap is the whole budget, counting what it spent before.
    expect(sent).toBe(8000);
    expect(codeOf(refused)).toBe('ERR_TAPS_QUOTA_EXCEEDED');
    expect(conn.state).toBe('established');
    await redis.start();
    await until(() => states.at(-1) === true, 'the fleet to see Redis back');
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    // The Redis that came back is empty (no persistence): what it holds now is what was spent beyond the blocks.
    const window = Math.floor((await r.time()).map(Number).reduce((s, v, i) => (i === 0 ? v * 1000 : s + Math.floor(v / 1000)), 0) / 86_400_000);
    const key = `taps:${name}:b:acme:sent:86400000:${window}`;
    await until(async () => Number(await r.get(key)) > 0, 'the outage bytes to be recorded');
    expect(Number(await r.get(key))).toBeLessThanOrEqual(7000); // at least the first 1,000 came from a block granted before
    await r.quit();
    conn.abort();
    await a.fleet.close();
  });

  it('bad options are programmer errors; an unreachable Redis at start is ERR_TAPS_FLEET_UNAVAILABLE', async () => {
    await expect(Fleet.open({ redis: redis.url, name: 'bad name' })).rejects.toBeInstanceOf(TypeError);
    await expect(Fleet.open({ redis: redis.url, leaseMs: -1 })).rejects.toBeInstanceOf(RangeError);
    await expect(Fleet.open({ redis: redis.url, fallback: { share: 2 } })).rejects.toBeInstanceOf(RangeError);
    const dead = `redis://127.0.0.1:${redis.port === 1 ? 2 : 1}`;
    const err = await Fleet.open({ redis: dead, commandTimeoutMs: 200 }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe('ERR_TAPS_FLEET_UNAVAILABLE');
  });
});
