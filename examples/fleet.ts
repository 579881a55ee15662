/**
 * `npm run example:fleet` — two hosts share one tenant's connection limit
 * and policy through a local Redis (README, "Running a fleet"):
 *
 *     redis-server --port 6379 --save ''          # any Redis 6.2 or later
 *     REDIS_URL=redis://127.0.0.1:6379 npm run example:fleet
 *
 * Both hosts run in this one process to keep the example short; in
 * production each is its own process or machine, with the same two lines
 * (`Fleet.open`, `fleet.attach`). It shows a policy published once reaching
 * both hosts, the limit of 3 counted across them, a unit released on one
 * host taken on the other, and a new revision closing the connections it
 * forbids on every host.
 */
import { createServer, type Socket } from 'node:net';
import { Host, isTapsError, Preconnection, SecurityParameters, TransportProperties, type Connection } from '../src/index.js';
import { Fleet } from '../fleet/index.js';
import { say } from './lib/report.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const NAME = `example-${process.pid}`; // a fleet of its own, so the example never meets another's tenants

// A TCP service on loopback for the guests to reach.
const peers = new Set<Socket>();
const service = createServer((s) => {
  peers.add(s);
  s.on('error', () => {});
  s.on('close', () => peers.delete(s));
});
await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
const port = (service.address() as { port: number }).port;

// ── two hosts, one fleet ──────────────────────────────────────────────────
async function joinFleet(hostId: string): Promise<{ fleet: Fleet; host: Host }> {
  const fleet = await Fleet.open({ redis: REDIS_URL, name: NAME, hostId, records: true });
  const host = new Host({ ...fleet.hostOptions(), onRevoke: 'close' });
  await fleet.attach(host); // loads every stored revision, then follows new ones
  return { fleet, host };
}
const one = await joinFleet('host-1');
const two = await joinFleet('host-2');

// An operator (or a deploy job) publishes once; every host applies it.
const rev = await one.fleet.publish('acme', `allow tcp://127.0.0.1:${port}\nlimit connections 3`);
await two.fleet.reached('acme', rev); // host-1 published it and has applied it already
say(`── revision ${rev} of acme's policy on host-1: ${one.fleet.revision('acme') === rev}, on host-2: ${two.fleet.revision('acme') === rev}`);

async function connect(h: { host: Host }): Promise<Connection | string> {
  try {
    return await new Preconnection({
      scope: await h.host.tenant('acme'), remote: { ipAddress: '127.0.0.1', port },
      properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(),
    }).initiate();
  } catch (err) {
    return isTapsError(err) ? err.code : String(err);
  }
}

say('── acme may hold 3 connections across the fleet');
const a1 = await connect(one);
const a2 = await connect(one);
const b1 = await connect(two);
const b2 = await connect(two);
say(`host-1: ${[a1, a2].map((c) => (typeof c === 'string' ? c : 'open')).join(', ')}; host-2: ${[b1, b2].map((c) => (typeof c === 'string' ? c : 'open')).join(', ')}`);

say('── host-1 closes one; host-2 can take it');
(a1 as Connection).abort();
await one.fleet.quotas.settled();
const b3 = await connect(two);
say(`host-2: ${typeof b3 === 'string' ? b3 : 'open'}`);

say('── a new revision forbids the service: every host closes what it forbids');
const live = [a2, b1, b3].filter((c): c is Connection => typeof c !== 'string');
// A revoked connection ends with connectionError (the policy's denial), not closed.
const revoked = Promise.all(live.map((c) => new Promise<string>((r) => c.once('connectionError', (e) => r(isTapsError(e) ? e.code : String(e))))));
const rev2 = await one.fleet.publish('acme', 'allow tcp://127.0.0.1:1');
const codes = await revoked;
say(`revision ${rev2}: ${live.length} live connections ended (${[...new Set(codes)].join(', ')}); a new one: ${await connect(one)}`);

await one.fleet.records!.flushed();
say(`── decision records in the fleet stream taps:${NAME}:records: ${one.fleet.records!.written + two.fleet.records!.written}`);

await one.fleet.unpublish('acme');
await Promise.all([one.fleet.close(), two.fleet.close()]);
for (const p of peers) p.destroy();
await new Promise<void>((r) => service.close(() => r()));
say('done.');
