/**
 * The quota store seam (src/policy/store.ts), with a store written here that
 * answers every `take` a turn later, as a remote one does: initiate(),
 * listen() and accepted peers wait for it; its refusals and its "cannot
 * tell" keep their own codes; units and bytes go through it; a Host without
 * a store never waits. Real TCP on loopback.
 */
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuotaExceededError, TapsError, isTapsError } from '../../src/errors.js';
import { Host } from '../../src/policy/host.js';
import type { QuotaStore, QuotaUnit } from '../../src/policy/store.js';
import type { PolicyLimits } from '../../src/policy/source.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';

/** Counts in memory, answers takes a turn later; `down` makes it answer "unavailable". */
class TurnStore implements QuotaStore {
  readonly held = new Map<string, number>();
  readonly log: string[] = [];
  charged = 0;
  down = false;
  take(tenant: string, kind: QuotaUnit, limits: PolicyLimits): Promise<void> {
    const limit = kind === 'connection' ? limits.connections : limits.listeners;
    const key = `${tenant}/${kind}`;
    this.log.push(`take ${key} ${String(limit)}`);
    return new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        if (this.down) return reject(new TapsError('ERR_TAPS_FLEET_UNAVAILABLE', 'store down'));
        const n = this.held.get(key) ?? 0;
        if (limit !== undefined && n >= limit) return reject(new QuotaExceededError(`${kind}s`, `${key} at ${limit}`));
        this.held.set(key, n + 1);
        resolve();
      }),
    );
  }
  give(tenant: string, kind: QuotaUnit): void {
    const key = `${tenant}/${kind}`;
    this.log.push(`give ${key}`);
    this.held.set(key, (this.held.get(key) ?? 0) - 1);
  }
  charge(_tenant: string, direction: 'sent' | 'received', bytes: number, limits: PolicyLimits): void {
    const budget = limits[direction] ?? limits.bytes!;
    if (this.charged + bytes > budget.bytes) throw new QuotaExceededError(`bytes-${direction}`, 'store budget spent');
    this.charged += bytes;
  }
}

let server: Server;
let port = 0;
const peers = new Set<Socket>();

beforeAll(async () => {
  server = createServer((s) => {
    peers.add(s);
    s.on('error', () => {});
    s.on('close', () => peers.delete(s));
    s.on('data', (d) => s.write(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const p of peers) p.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const pre = (scope: Awaited<ReturnType<Host['tenant']>>, p = port) =>
  new Preconnection({
    scope, remote: { ipAddress: '127.0.0.1', port: p }, properties: TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(), drivers: [tcpDriver],
  });

describe('a Host with a quota store', () => {
  it('initiate() waits for the store, its refusal opens nothing, release gives the unit back', async () => {
    const store = new TurnStore();
    const host = new Host({ quotaStore: store });
    host.setPolicy('acme', `allow tcp://127.0.0.1:${port}\nlimit connections 1`);
    const acme = await host.tenant('acme');
    const leased = acme.lease('connection');
    expect(leased).toBeInstanceOf(Promise); // the store answers a turn later
    (await leased).release();
    const conn = await pre(acme).initiate();
    const before = peers.size;
    const err = await pre(acme).initiate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(peers.size).toBe(before);
    await conn.close();
    expect(store.log).toEqual([
      'take acme/connection 1', 'give acme/connection', 'take acme/connection 1', 'take acme/connection 1', 'give acme/connection',
    ]);
    host.close();
  });

  it('a store that cannot answer fails the connection with ERR_TAPS_FLEET_UNAVAILABLE, not a denial or a quota', async () => {
    const store = new TurnStore();
    const host = new Host({ quotaStore: store });
    host.setPolicy('acme', `allow tcp://127.0.0.1:${port}`);
    const acme = await host.tenant('acme');
    const live = await pre(acme).initiate();
    store.down = true;
    const err = await pre(acme).initiate().catch((e: unknown) => e);
    expect(isTapsError(err) && err.code).toBe('ERR_TAPS_FLEET_UNAVAILABLE');
    // The live connection is not affected.
    await live.send('still here');
    const [echo] = await Promise.all([live.receive()]);
    expect(new TextDecoder().decode(echo.data)).toBe('still here');
    await live.close();
    store.down = false;
    await (await pre(acme).initiate()).close();
    host.close();
  });

  it('bytes are charged through the store; an accepted peer waits for its unit too', async () => {
    const store = new TurnStore();
    const host = new Host({ quotaStore: store });
    host.setPolicy('acme', 'allow tcp://127.0.0.1:*\nallow bind,accept:tcp://127.0.0.1:*\nlimit sent 10 per 1m');
    const acme = await host.tenant('acme');
    const listener = await new Preconnection({
      scope: acme, local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableInorderStream(),
      security: SecurityParameters.disabled(), drivers: [tcpDriver],
    }).listen();
    const accepted = new Promise((r) => listener.once('connectionReceived', r));
    const conn = await pre(acme, listener.port).initiate();
    const peer = (await accepted) as { abort(): void };
    await conn.send('12345678');
    const err = await conn.send('too much').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(store.charged).toBe(8);
    peer.abort();
    conn.abort();
    await listener.stop();
    expect(store.log.filter((l) => l.startsWith('take')).sort()).toEqual(['take acme/connection undefined', 'take acme/connection undefined', 'take acme/listener undefined']);
    expect([...store.held.values()]).toEqual([0, 0]);
    host.close();
  });

  it('an accepted peer the store refuses is dropped with the store\'s own code: QUOTA_EXCEEDED at the limit, FLEET_UNAVAILABLE when it cannot answer', async () => {
    const store = new TurnStore();
    const host = new Host({ quotaStore: store });
    host.setPolicy('acme', 'allow tcp://127.0.0.1:*\nallow bind,accept:tcp://127.0.0.1:*\nlimit connections 2');
    const acme = await host.tenant('acme');
    const listener = await new Preconnection({
      scope: acme, local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableInorderStream(),
      security: SecurityParameters.disabled(), drivers: [tcpDriver],
    }).listen();
    const refusals: string[] = [];
    listener.on('refused', (_peer, _reason, decision, error) => refusals.push(`${error.code}${decision === undefined ? '' : ' with a decision'}`));
    const accepted = new Promise<{ abort(): void }>((r) => listener.once('connectionReceived', r));
    // The client takes one unit and the accepted peer the second: the limit is reached.
    const conn = await pre(acme, listener.port).initiate();
    const peer = await accepted;
    const refusedNext = () => new Promise<void>((r) => listener.once('refused', () => r()));
    // A raw TCP client (no unit of its own) knocks: the store refuses its unit.
    const knock = async (): Promise<void> => {
      const next = refusedNext();
      const s = tcpConnect(listener.port, '127.0.0.1');
      s.on('error', () => {});
      await next;
      s.destroy();
    };
    await knock();
    store.down = true;
    await knock();
    expect(refusals).toEqual(['ERR_TAPS_QUOTA_EXCEEDED', 'ERR_TAPS_FLEET_UNAVAILABLE']);
    peer.abort();
    conn.abort();
    await listener.stop();
    host.close();
  });

  it('without a store nothing waits: lease() answers synchronously', async () => {
    const host = new Host();
    host.setPolicy('acme', 'limit connections 1');
    const acme = await host.tenant('acme');
    const lease = acme.lease('connection');
    expect(lease).not.toBeInstanceOf(Promise);
    expect(() => acme.lease('connection')).toThrow(QuotaExceededError);
    (await lease).release();
  });
});
