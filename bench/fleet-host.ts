/**
 * One fleet host in a worker thread, for bench/fleet.ts: joins the fleet
 * given in workerData, attaches a Host, and posts `{ tenant, revision, at }`
 * (epoch ms) for every revision it applies.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Fleet } from '../fleet/index.js';
import { Host } from '../src/policy/host.js';

const { redis, name } = workerData as { redis: string; name: string };
const port = parentPort!;
const fleet = await Fleet.open({
  redis, name,
  onPolicy: (e) => port.postMessage({ tenant: e.tenant, revision: e.revision, at: performance.timeOrigin + performance.now() }),
});
const host = new Host(fleet.hostOptions());
await fleet.attach(host);
port.postMessage({ ready: true, tenants: host.tenants().length });
port.on('message', (m: { stop?: boolean }) => {
  if (m.stop) void fleet.close().then(() => port.close());
});
