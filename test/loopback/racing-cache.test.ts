/**
 * The racing cache and the default ranking over real loopback sockets (::1 and 127.0.0.1, a name answered by
 * an injected resolver): with default properties a TLS-only server costs one TLS attempt (QUIC is not raced
 * blind); a stack that failed is skipped by the next selection of that tenant and said so in the report; a
 * QUIC-only server is found through the TLS refusal once and raced first afterwards; tenants never share
 * what they learned; clear() forgets. A cache the guest poisons (tcp, tls or quic "won", the granted
 * stack "failed") reorders or prunes only what its policy allows: an ungranted stack is still denied and
 * its server on the same port sees nothing.
 */
import { createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Host, createScope, type NetworkScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { racingCacheOf } from '../../src/selection/racing-cache.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';
import { allowAll } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['svc.test', 'localhost', '127.0.0.1', '::1'] });
const drivers = [tcpDriver, tlsDriver, quicDriver];
const cleanups: (() => Promise<void> | void)[] = [];
// QUIC's module loaded before any selection: this file is about what the cache learns, not about a stack
// that is still loading (which the race passes by: test/loopback/lazy-race.test.ts).
beforeAll(async () => {
  expect(await quicDriver.available()).toEqual({ available: true });
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A TLS-only server on `address` (nothing on UDP): what most endpoints are. */
async function tlsOnly(address: string): Promise<number> {
  const server: TlsServer = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
    s.on('error', () => {});
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as { port: number }).port;
}

/** A QUIC-only listener of the library on `address` (nothing on TCP). */
async function quicOnly(scope: NetworkScope, address: string): Promise<number> {
  const listener = await new Preconnection({
    scope,
    local: { ipAddress: address, port: 0 },
    properties: new TransportProperties({ multistreaming: 'require' }),
    security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    framers: [lengthPrefixFramer()],
    drivers,
  }).listen();
  listener.on('connectionReceived', (c) => void c.close().catch(() => {}));
  cleanups.push(() => listener.stop());
  return listener.port;
}

function connect(scope: NetworkScope, port: number, properties = new TransportProperties()): Promise<Connection> {
  return new Preconnection({
    scope,
    remote: { hostName: 'svc.test', port },
    properties,
    security: new SecurityParameters({ ca: cert.caCert as string }),
    framers: [lengthPrefixFramer()],
    drivers,
    // The longest attempt delay: a second stack then starts only because the first failed, never because a
    // loaded machine made the first slow, so which attempts start is decided by ranking and the cache alone.
    racing: { attemptDelay: 2000 },
  }).initiate({ signal: AbortSignal.timeout(8000) });
}

const started = (conn: Connection, driver: string) => conn.report.candidates.filter((c) => c.driver === driver && c.startedAt !== undefined);

describe.each(['::1', '127.0.0.1'])('racing over %s', (address) => {
  const v = address.includes(':') ? { v6: [address] } : { v4: [address] };
  const resolver = fakeResolver({ 'svc.test': v });
  let port: number;
  beforeAll(async () => {
    port = await tlsOnly(address);
  });

  it('default properties, a TLS-only server: TLS is ranked first and wins, no QUIC attempt starts', async () => {
    const scope = createScope({ tenant: 'rc-default', policy: allowAll, resolver });
    const conn = await connect(scope, port);
    try {
      const won = conn.report.candidates.find((c) => c.fate === 'won')!;
      expect(won.driver).toBe('tls');
      expect(started(conn, 'quic')).toHaveLength(0);
      console.log(`default selection to a TLS-only ${address}: ready in ${conn.report.endedAt} ms, ${conn.report.candidates.filter((c) => c.startedAt !== undefined).length} attempt(s)`);
    } finally {
      await conn.close();
    }
  });

  it('prefer multistreaming: QUIC is refused, TLS wins; the next selection of the tenant skips QUIC and says why; clear() forgets', async () => {
    const scope = createScope({ tenant: 'rc-skip', policy: allowAll, resolver });
    const multi = new TransportProperties({ multistreaming: 'prefer' });
    const first = await connect(scope, port, multi);
    expect(started(first, 'quic').map((c) => c.fate)).toEqual(['failed']);
    expect(first.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('tls');
    await first.close();
    expect(racingCacheOf(scope)!.entries().map((e) => [e.stack, e.entry.outcome]).sort()).toEqual([['quic', 'failed'], ['tls', 'won']]);

    const second = await connect(scope, port, multi);
    expect(started(second, 'quic')).toHaveLength(0);
    expect(second.report.candidates.find((c) => c.driver === 'quic')).toMatchObject({ fate: 'skipped', reason: expect.stringMatching(/racing cache: quic failed here .* ago/) });
    expect(second.report.cache).toMatch(/skipped quic/);
    await second.close();

    racingCacheOf(scope)!.clear();
    const third = await connect(scope, port, multi);
    expect(started(third, 'quic')).toHaveLength(1);
    expect(third.report.cache).toBeUndefined();
    await third.close();
  });
});

describe.each(['::1', '127.0.0.1'])('a QUIC-only server on %s', (address) => {
  const v = address.includes(':') ? { v6: [address] } : { v4: [address] };
  const resolver = fakeResolver({ 'svc.test': v });

  it('is found through the TLS refusal once, then QUIC is raced first and TLS never starts', async () => {
    const scope = createScope({ tenant: 'rc-quic', policy: allowAll, resolver });
    const port = await quicOnly(scope, address);
    const first = await connect(scope, port);
    expect(started(first, 'tls').map((c) => c.fate)).toEqual(['failed']);
    expect(first.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('quic');
    await first.close();
    const second = await connect(scope, port);
    expect(second.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('quic');
    expect(started(second, 'tls')).toHaveLength(0);
    // TLS failed here: skipped; QUIC won here: first.
    expect(second.report.cache).toMatch(/skipped tls/);
    await second.close();
  });
});

describe('tenants never share a racing cache', () => {
  it('scopes of one Host tenant share theirs; another tenant, and a createScope scope, start from nothing', async () => {
    const resolver = fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } });
    const host = new Host({ resolver });
    cleanups.push(() => host.close());
    const rules = 'allow *://svc.test:*\nallow *://@loopback:*\nallow bind:*://@loopback:*\nallow accept:*://@loopback:*';
    host.setPolicy('alpha', rules);
    host.setPolicy('beta', rules);
    const alpha = await host.tenant('alpha');
    const port = await quicOnly(alpha, '127.0.0.1');
    await (await connect(alpha, port)).close();

    const alphaAgain = await host.tenant('alpha');
    const learned = await connect(alphaAgain, port);
    expect(started(learned, 'tls')).toHaveLength(0);
    await learned.close();
    expect(host.racingCache('alpha')).toBe(racingCacheOf(alphaAgain));

    const beta = await connect(await host.tenant('beta'), port);
    expect(started(beta, 'tls').map((c) => c.fate)).toEqual(['failed']);
    expect(beta.report.cache).toBeUndefined();
    await beta.close();
    expect(host.racingCache('beta')).not.toBe(host.racingCache('alpha'));

    host.racingCache('alpha')!.clear();
    const forgotten = await connect(alpha, port);
    expect(started(forgotten, 'tls')).toHaveLength(1);
    await forgotten.close();
  });

  it('a scope made with racingCache: false remembers nothing', async () => {
    const resolver = fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } });
    const scope = createScope({ tenant: 'rc-none', policy: allowAll, resolver, racingCache: false });
    expect(racingCacheOf(scope)).toBeUndefined();
    const port = await quicOnly(scope, '127.0.0.1');
    for (let i = 0; i < 2; i++) {
      const conn = await connect(scope, port);
      expect(started(conn, 'tls').map((c) => c.fate)).toEqual(['failed']);
      await conn.close();
    }
  });
});

describe('a poisoned cache orders, never widens', () => {
  it('an entry the guest wrote (QUIC won) ranks QUIC first, but a tenant without a QUIC grant is denied it and nothing reaches the QUIC server', async () => {
    const resolver = fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } });
    const host = new Host({ resolver });
    cleanups.push(() => host.close());
    host.setPolicy('server', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*');
    host.setPolicy('guest', 'allow tls://svc.test:*\nallow tls://@loopback:*');
    const tlsPort = await tlsOnly('127.0.0.1');
    // A QUIC server on the same port number: were the guest's QUIC candidate allowed, it would win here.
    let accepted = 0;
    const quicServer = await new Preconnection({
      scope: await host.tenant('server'),
      local: { ipAddress: '127.0.0.1', port: tlsPort },
      properties: new TransportProperties({ multistreaming: 'require' }),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
      framers: [lengthPrefixFramer()],
      drivers,
    }).listen();
    quicServer.on('connectionReceived', () => accepted++);
    cleanups.push(() => quicServer.stop());
    // The guest holds its own scope, so it can write its own cache: it claims QUIC won at the TLS port.
    const guest = await host.tenant('guest');
    racingCacheOf(guest)!.won('svc.test', tlsPort, 'quic', 0.1);
    const conn = await connect(guest, tlsPort);
    try {
      expect(conn.report.cache).toMatch(/order quic > tls/);
      expect(conn.report.candidates.find((c) => c.driver === 'quic')).toMatchObject({ fate: 'denied' });
      expect(conn.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('tls');
      expect(accepted).toBe(0);
      // Another tenant's cache is not reachable from the guest's scope, and is untouched.
      expect(host.racingCache('server')!.entries().some((e) => e.endpoint === 'svc.test')).toBe(false);
    } finally {
      await conn.close();
    }
  });

  it('entries the guest wrote (TCP won, TLS failed) cannot put a tenant granted only TLS on TCP: TLS is tried after the denial, then (TCP won only) TLS wins; the server sees TLS connections alone', async () => {
    const host = new Host({ resolver: fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } }) });
    cleanups.push(() => host.close());
    host.setPolicy('guest-tls', 'allow tls://svc.test:*\nallow tls://@loopback:*');
    let connections = 0;
    const server: TlsServer = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.on('error', () => {});
      s.end();
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const guest = await host.tenant('guest-tls');
    racingCacheOf(guest)!.won('svc.test', port, 'tcp', 0.1);
    // Opportunistic security: plain TCP is a suitable stack too, so only the policy keeps the guest off it.
    const pre = (): Preconnection => new Preconnection({
      scope: guest, remote: { hostName: 'svc.test', port }, security: SecurityParameters.opportunistic(), drivers: [tcpDriver, tlsDriver],
      racing: { attemptDelay: 2000 },
    });
    // Poisoned harder: the granted stack "failed" too, so the cache puts it off; the ungranted one is still
    // denied, and then the put-off stack is tried after all (a cache orders, it does not refuse).
    racingCacheOf(guest)!.failed('svc.test', port, 'tls', 'poisoned');
    const despite = await pre().initiate({ signal: AbortSignal.timeout(8000) });
    console.log(`tcp won + tls failed (poisoned): ${despite.report.candidates.map((c) => `${c.driver} ${c.fate}`).join(', ')}; ${despite.report.cache}`);
    expect(despite.report.candidates.map((c) => [c.driver, c.fate])).toEqual([['tcp', 'denied'], ['tls', 'won']]);
    expect(despite.report.cache).toMatch(/then tried tls anyway/);
    await despite.close();
    expect(connections).toBe(1);
    racingCacheOf(guest)!.clear();
    racingCacheOf(guest)!.won('svc.test', port, 'tcp', 0.1);
    const conn = await pre().initiate({ signal: AbortSignal.timeout(8000) });
    try {
      console.log(`poisoned cache: ${conn.report.candidates.map((c) => `${c.driver} ${c.fate}`).join(', ')}`);
      expect(conn.report.candidates.find((c) => c.driver === 'tcp')).toMatchObject({ fate: 'denied' });
      expect(conn.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('tls');
      expect(connections).toBe(2);
    } finally {
      await conn.close();
    }
  });

  it('an entry the guest wrote (TLS won) cannot put a tenant granted only QUIC on TLS: the TLS server on the same port sees nothing', async () => {
    const host = new Host({ resolver: fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } }) });
    cleanups.push(() => host.close());
    host.setPolicy('server', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*');
    host.setPolicy('guest-quic', 'allow quic://svc.test:*\nallow quic://@loopback:*');
    const quicPort = await quicOnly(await host.tenant('server'), '127.0.0.1');
    // A TLS server on the same port number: were the guest's TLS candidate allowed, it would win here.
    let connections = 0;
    const tls: TlsServer = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.on('error', () => {});
      s.end();
    });
    tls.on('connection', () => connections++);
    const bound = await new Promise<boolean>((r) => tls.once('error', () => r(false)).listen(quicPort, '127.0.0.1', () => r(true)));
    expect(bound).toBe(true);
    cleanups.push(() => new Promise<void>((r) => tls.close(() => r())));
    const guest = await host.tenant('guest-quic');
    racingCacheOf(guest)!.won('svc.test', quicPort, 'tls', 0.1);
    const conn = await connect(guest, quicPort);
    try {
      console.log(`poisoned cache: ${conn.report.candidates.map((c) => `${c.driver} ${c.fate}`).join(', ')}`);
      expect(conn.report.candidates.find((c) => c.driver === 'tls')).toMatchObject({ fate: 'denied' });
      expect(conn.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('quic');
      expect(connections).toBe(0);
    } finally {
      await conn.close();
    }
  });
});

describe('a failure remembered for the only allowed stack', () => {
  it('server down, then up within the failure TTL: the next connect is attempted and connected (the cache does not refuse it)', async () => {
    const host = new Host({ resolver: fakeResolver({ 'svc.test': { v4: ['127.0.0.1'] } }) });
    cleanups.push(() => host.close());
    host.setPolicy('only-tls', 'allow tls://svc.test:*\nallow tls://@loopback:*');
    const guest = await host.tenant('only-tls');
    // The port stays bound throughout (a number freed and bound again can be taken by another test in between):
    // while the server is down every connection is reset at once; once up, each is handed to the TLS server.
    const server: TlsServer = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.on('error', () => {});
      s.end();
    });
    let up = false;
    const gate = createNetServer((s) => (up ? server.emit('connection', s) : s.resetAndDestroy()));
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => gate.close(() => r())));
    const port = (gate.address() as { port: number }).port;
    // Opportunistic security: plain TCP is suitable too, and the policy denies it; TLS is the only allowed stack.
    const pre = (): Preconnection => new Preconnection({
      scope: guest, remote: { hostName: 'svc.test', port }, security: SecurityParameters.opportunistic(), drivers: [tcpDriver, tlsDriver],
    });
    const down = await pre().initiate({ signal: AbortSignal.timeout(8000) }).catch((e: unknown) => e);
    expect(down).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(racingCacheOf(guest)!.get('svc.test', port, 'tls')).toMatchObject({ outcome: 'failed' });

    up = true;
    const conn = await pre().initiate({ signal: AbortSignal.timeout(8000) });
    try {
      console.log(`after the server came up: ${conn.report.candidates.map((c) => `${c.driver} ${c.fate}`).join(', ')}; ${conn.report.cache}`);
      expect(conn.report.candidates.map((c) => [c.driver, c.fate])).toEqual([['tcp', 'denied'], ['tls', 'won']]);
      expect(conn.report.cache).toMatch(/racing cache: skipped tls .*; then tried tls anyway: no other candidate connected/);
      expect(racingCacheOf(guest)!.get('svc.test', port, 'tls')).toMatchObject({ outcome: 'won' });
    } finally {
      await conn.close();
    }
  });
});
