/**
 * `limit connections` counts the UDP peer socket of a rendezvous (RFC 9622
 * §7.3) over real loopback sockets: a guest opening one directly (the driver,
 * or `scope.network.openPeerSocket`, with a target its own guard minted) takes
 * a unit until the socket closes; the library's `resolve()`/`rendezvous()`
 * take one lease before binding and the socket counts under it, so a
 * rendezvous is exactly one unit; a failed, aborted or refused open keeps
 * none. A peer socket charges what it reads to `limit received` at the
 * socket, opened directly or by the library (whose Connection then counts
 * it no more: exact counts through `host.usage`).
 */
import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { NEVER_ABORTED, type Driver, type ListenAttempt, type PeerSocket } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import { QuotaExceededError, TapsError } from '../../src/errors.js';
import type { TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { udpDriver } from '../../transports/udp/index.js';
import { quotaTenants } from '../helpers/tenants.js';

const { host, cleanups, tenant } = quotaTenants('psq', 'allow *://@loopback:*\nallow bind:*://@loopback:*');

/** What a guest holding `scope` hands the driver: a bind target its own guard minted (and, if it likes, a unit of its making). */
async function bindAttempt(scope: TenantScope, port = 0, extra: Partial<ListenAttempt> = {}): Promise<ListenAttempt> {
  const target = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port });
  return {
    signal: NEVER_ABORTED, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port }), security: SecurityParameters.disabled(),
    properties: new TransportProperties(), options: {}, guard: scope.guard, ...extra,
  };
}

async function udpSocket(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

const peer = (scope: TenantScope): Preconnection =>
  new Preconnection({ scope, drivers: [udpDriver], local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
};

const expectQuota = (err: unknown): void => {
  expect(err).toBeInstanceOf(QuotaExceededError);
  expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'connections' });
};

describe('a peer socket opened directly takes a unit of limit connections', () => {
  it('the first takes the one unit; a second (driver, scope.network, a lookalike grant) and an initiate() are refused; closing it frees the unit', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const server = await udpSocket();
    const first: PeerSocket = await udpDriver.openPeerSocket!(await bindAttempt(scope));
    expect(host.usage(id).connections).toBe(1);

    expectQuota(await udpDriver.openPeerSocket!(await bindAttempt(scope)).catch((e: unknown) => e));
    expectQuota(await scope.network.openPeerSocket!(udpDriver, await bindAttempt(scope)).catch((e: unknown) => e));
    expectQuota(await udpDriver.openPeerSocket!(await bindAttempt(scope, 0, { unit: Object.freeze({}) })).catch((e: unknown) => e));
    const initiate = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.address().port }, drivers: [udpDriver], properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
    expectQuota(await initiate.initiate().catch((e: unknown) => e));
    // resolve() takes its lease before it binds: refused too, nothing bound.
    expectQuota(await peer(scope).resolve().catch((e: unknown) => e));
    expect(host.usage(id).connections).toBe(1);

    await first.close();
    expect(host.usage(id).connections).toBe(0);
    const conn = await initiate.initiate();
    expect(host.usage(id).connections).toBe(1);
    await conn.close();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
  });

  it('a bind that fails or is aborted keeps no unit', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const taken = await udpSocket();
    const err = await udpDriver.openPeerSocket!(await bindAttempt(scope, taken.address().port)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapsError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(host.usage(id).connections).toBe(0);

    const controller = new AbortController();
    const opening = scope.network.openPeerSocket!(udpDriver, await bindAttempt(scope, 0, { signal: controller.signal }));
    controller.abort();
    expect(await opening.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);

    const socket = await udpDriver.openPeerSocket!(await bindAttempt(scope)); // the unit is free again
    expect(host.usage(id).connections).toBe(1);
    await socket.close();
    expect(host.usage(id).connections).toBe(0);
  });

  it('a connected peer socket holds its unit until its channel is released', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const server = await udpSocket();
    const socket = await udpDriver.openPeerSocket!(await bindAttempt(scope));
    socket.start({ datagram: () => {}, error: () => {} });
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: server.address().port });
    const channel = await socket.connect(target, () => false);
    expect(host.usage(id).connections).toBe(1);
    const closed = new Promise<void>((r) => channel.start({ data: () => {}, end: () => {}, drain: () => {}, closed: () => r() }));
    channel.close();
    await closed;
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
  });
});

describe('a peer socket opened directly charges what it reads to limit received', () => {
  it('before connect() the handler, after it the channel, fails with the budget error; the socket closes and frees its unit', async () => {
    const { id, scope } = await tenant('limit connections 1\nlimit received 1KiB per 60s');
    const sender = await udpSocket();
    const socket = await udpDriver.openPeerSocket!(await bindAttempt(scope));
    const errors: Error[] = [];
    let datagrams = 0;
    socket.start({ datagram: () => datagrams++, error: (e) => errors.push(e) });
    sender.send(new Uint8Array(600), socket.local.port, '127.0.0.1');
    await until(() => datagrams === 1);
    expect(host.usage(id).received).toBe(600);
    sender.send(new Uint8Array(600), socket.local.port, '127.0.0.1'); // 1200 > 1 KiB
    await until(() => errors.length === 1);
    expect(datagrams).toBe(1); // the datagram over the budget is not delivered
    expect(errors[0]).toBeInstanceOf(QuotaExceededError);
    expect(errors[0]).toMatchObject({ quota: 'bytes-received' });
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);

    const { id: id2, scope: scope2 } = await tenant('limit connections 1\nlimit received 1KiB per 60s');
    const connected = await udpDriver.openPeerSocket!(await bindAttempt(scope2));
    connected.start({ datagram: () => {}, error: () => {} });
    const target = await scope2.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: sender.address().port });
    const channel = await connected.connect(target, () => false);
    const closed = new Promise<Error | undefined>((r) => channel.start({ data: () => {}, end: () => {}, drain: () => {}, closed: (e) => r(e) }));
    sender.send(new Uint8Array(1200), connected.local.port, '127.0.0.1');
    const err = await closed;
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ quota: 'bytes-received' });
    await until(() => host.usage(id2).connections === 0);
    expect(host.usage(id2).connections).toBe(0);
  });
});

describe('a guest driver that keeps the library\'s peer socket to itself', () => {
  it('reads it privately and hands resolve() another: what the socket reads is counted all the same', async () => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    let privately = 0;
    let port = 0;
    let ended!: (err: Error | undefined) => void;
    const outcome = new Promise<Error | undefined>((r) => (ended = r));
    const hoarder: Driver = Object.freeze({
      ...udpDriver,
      openPeerSocket: async (a: ListenAttempt) => {
        const inner = await udpDriver.openPeerSocket!(a);
        cleanups.push(() => inner.close());
        port = inner.local.port;
        // All 2 KiB read privately ends the test too (uncounted, the socket would stay open).
        inner.start({ datagram: (d) => void ((privately += d.byteLength) >= 2048 && ended(undefined)), error: (err) => ended(err) });
        return udpDriver.openPeerSocket!({ ...a, unit: undefined });
      },
    });
    const pre = new Preconnection({ scope, drivers: [hoarder], local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
    cleanups.push(() => pre[Symbol.asyncDispose]());
    await pre.resolve();
    const sender = await udpSocket();
    for (let i = 0; i < 4; i++) await new Promise<void>((r) => sender.send(new Uint8Array(512).fill(0x70), port, '127.0.0.1', () => r()));
    const err = await outcome;
    console.log(`private peer-socket reader: ${privately} bytes read, ${host.usage(id).received} counted received, ended with ${(err as { code?: string } | undefined)?.code}`);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ quota: 'bytes-received' });
    expect(privately).toBeLessThanOrEqual(1024);
  });
});

describe('the library\'s rendezvous counts once', () => {
  it('resolve() takes the one unit before binding, rendezvous() keeps it for the connection (not a second), close frees it', async () => {
    const a = await tenant('limit connections 1');
    const b = await tenant('limit connections 1\nlimit received 1MiB per 60s');
    const pa = peer(a.scope);
    const pb = peer(b.scope);
    const [ra, rb] = [await pa.resolve(), await pb.resolve()];
    expect([host.usage(a.id).connections, host.usage(b.id).connections]).toEqual([1, 1]);
    const [x, y] = await Promise.all([pa.rendezvous({ remote: rb.local }), pb.rendezvous({ remote: ra.local })]);
    expect([host.usage(a.id).connections, host.usage(b.id).connections]).toEqual([1, 1]);
    // The unit is the connection's: anything more is over the limit.
    expectQuota(await udpDriver.openPeerSocket!(await bindAttempt(a.scope)).catch((e: unknown) => e));
    const got = new Promise<string>((r) => y.once('received', (m) => r(m.text())));
    const checks = host.usage(b.id).received; // the connectivity checks its socket read, charged there
    const message = 'counted once'.padEnd(1000, '.');
    await x.send(message);
    expect(await got).toBe(message);
    const after = host.usage(b.id).received - checks;
    console.log(`rendezvous: ${checks} bytes of checks counted, then ${after} for a 1000-byte message (late checks included)`);
    expect(checks).toBeGreaterThan(0);
    // Once, at its socket (its channel says so, and its Connection counts nothing more); a late check may add a few dozen bytes.
    expect(after).toBeGreaterThanOrEqual(1000);
    expect(after).toBeLessThan(2000);
    await Promise.all([x.close(), y.close()]);
    await until(() => host.usage(a.id).connections === 0 && host.usage(b.id).connections === 0);
    expect([host.usage(a.id).connections, host.usage(b.id).connections]).toEqual([0, 0]);
  });

  it('a rendezvous without resolve() holds one unit while it checks; aborted or failed, it frees it; so does an aborted resolve()', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const silent = await udpSocket();
    const remote = [`127.0.0.1:${silent.address().port}`];

    const controller = new AbortController();
    const aborted = peer(scope).rendezvous({ remote, signal: controller.signal });
    await until(() => host.usage(id).connections === 1);
    expect(host.usage(id).connections).toBe(1);
    controller.abort();
    expect(await aborted.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    expect(host.usage(id).connections).toBe(0);

    const timedOut = await peer(scope).rendezvous({ remote, timeout: 100 }).catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    expect(host.usage(id).connections).toBe(0);

    const resolving = new AbortController();
    await peer(scope).resolve({ signal: resolving.signal });
    expect(host.usage(id).connections).toBe(1);
    resolving.abort();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
  });
});

/** UDP sockets open in this process now (their handles). */
const udpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;

describe('what resolve() holds for a rendezvous is released', () => {
  it('after holdFor without a rendezvous: the socket closes, the unit comes back, and a late rendezvous() says why', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const before = udpHandles();
    const pre = peer(scope);
    const { local } = await pre.resolve({ holdFor: 50 });
    expect(host.usage(id).connections).toBe(1);
    expect(udpHandles()).toBe(before + 1);
    await until(() => host.usage(id).connections === 0 && udpHandles() === before);
    console.log(`resolve({ holdFor: 50 }) at port ${local[0]!.port}, never followed by rendezvous(): ${host.usage(id).connections} units and ${udpHandles() - before} sockets left`);
    expect(host.usage(id).connections).toBe(0);
    expect(udpHandles()).toBe(before);
    const late = await pre.rendezvous({ remote: ['127.0.0.1:9'], timeout: 100 }).catch((e: unknown) => e);
    expect(late).toMatchObject({ code: 'ERR_TAPS_TIMEOUT', message: expect.stringMatching(/released after 50 ms.*call resolve\(\) again/) });
    expect(host.usage(id).connections).toBe(0);
    // resolve() again prepares a new socket, held by the default time until the preconnection is disposed of.
    const again = await pre.resolve();
    expect(again.local[0]!.port).not.toBe(0);
    expect(host.usage(id).connections).toBe(1);
    await pre[Symbol.asyncDispose]();
    expect(host.usage(id).connections).toBe(0);
    await until(() => udpHandles() === before); // the handle goes once its close is done
    expect(udpHandles()).toBe(before);
  });

  it('calls that overlap bind one socket and take one unit; each call restarts the hold', async () => {
    const { id, scope } = await tenant('limit connections 2');
    const before = udpHandles();
    const pre = peer(scope);
    const [a, b] = await Promise.all([pre.resolve({ holdFor: 60_000 }), pre.resolve({ holdFor: 60_000 })]);
    expect(a.local).toEqual(b.local);
    expect(host.usage(id).connections).toBe(1);
    expect(udpHandles()).toBe(before + 1);
    await pre.resolve({ holdFor: 30 }); // the last call's hold counts
    await until(() => host.usage(id).connections === 0 && udpHandles() === before);
    expect(host.usage(id).connections).toBe(0);
    expect(udpHandles()).toBe(before);
  });

  it('a rendezvous takes the held socket: the hold running out later leaves its connection alone', async () => {
    const { id, scope } = await tenant('limit connections 2');
    const [a, b] = [peer(scope), peer(scope)];
    const [ra, rb] = [await a.resolve({ holdFor: 200 }), await b.resolve({ holdFor: 200 })];
    const [x, y] = await Promise.all([a.rendezvous({ remote: rb.local }), b.rendezvous({ remote: ra.local })]);
    expect(host.usage(id).connections).toBe(2);
    await new Promise((r) => setTimeout(r, 250)); // past both holds
    const got = new Promise<string>((r) => y.once('received', (m) => r(m.text())));
    await x.send('still here');
    expect(await got).toBe('still here');
    expect(host.usage(id).connections).toBe(2);
    await Promise.all([x.close(), y.close()]);
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
  });

  it('refuses a hold that is not a number of ms at once, before binding', async () => {
    const { id, scope } = await tenant('limit connections 1');
    for (const holdFor of [0, -1, Infinity, Number.NaN, 2 ** 31, '50']) {
      await expect(peer(scope).resolve({ holdFor: holdFor as number })).rejects.toThrow(RangeError);
    }
    expect(host.usage(id).connections).toBe(0);
  });
});
