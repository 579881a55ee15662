/**
 * Issue 2's "done means", end to end over real loopback sockets through
 * Preconnection: selection by properties, racing, policy and the report.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { EstablishmentError } from '../../src/errors.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { createScope } from '../../src/policy/index.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { blackhole } from '../helpers/blackhole.js';
import { testCertificate } from '../helpers/certs.js';
import { fakeResolver } from '../helpers/resolver.js';

const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const drivers = [tcpDriver, tlsDriver, udpDriver];
const text = (b: Uint8Array): string => Buffer.from(b).toString();
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function tcpEchoOn(host: string, port = 0): Promise<Server & { accepted: number }> {
  return new Promise((resolve, reject) => {
    const sockets = new Set<Socket>();
    const server = Object.assign(
      createServer((s) => {
        server.accepted++;
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
        s.pipe(s);
      }),
      { accepted: 0 },
    );
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  });
}

describe('initiate() over loopback', () => {
  it('reliable-message reaches a loopback TLS listener by name, and the report explains every candidate', async () => {
    const cert = testCertificate({ kind: 'ec' });
    const resolver = fakeResolver({ 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } });
    const scope = createScope({ tenant: 'a', policy: allow, resolver });
    const server = new Preconnection({
      scope,
      local: { ipAddress: '127.0.0.1', port: 0 },
      properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
      framers: [lengthPrefixFramer()],
      drivers,
    });
    const listener = await server.listen();
    cleanups.push(() => listener.stop());
    listener.on('connectionReceived', async (c) => {
      for await (const m of c) await c.send(`echo:${text(m.data)}`);
      await c.close();
    });
    const pre = new Preconnection({
      scope,
      remote: { hostName: 'svc.test', port: listener.port },
      properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
      framers: [lengthPrefixFramer()],
      drivers,
      racing: { attemptDelay: 100 },
    });
    const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    try {
      expect(conn.report.candidates.find((c) => c.fate === 'won')).toMatchObject({ driver: 'tls', address: '127.0.0.1', hostName: 'svc.test' });
      // ::1 has no listener on that port: refused, so IPv4 started at once rather than after the delay.
      const v6 = conn.report.candidates.find((c) => c.driver === 'tls' && c.address === '::1')!;
      expect(v6.fate).toBe('failed');
      for (const c of conn.report.candidates.filter((x) => x.driver !== 'tls')) expect(c.fate).toBe('unsuitable');
      await conn.send('hi');
      const it = conn[Symbol.asyncIterator]();
      const first = await it.next();
      expect(text(first.value!.data)).toBe('echo:hi');
    } finally {
      await conn.close();
    }
  });

  it('unreliable-datagram picks UDP', async () => {
    const scope = createScope({ tenant: 'a', policy: allow });
    const server = new Preconnection({ scope, local: { ipAddress: '::1', port: 0 }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(), drivers });
    const listener = await server.listen();
    cleanups.push(() => listener.stop());
    listener.on('connectionReceived', async (c) => {
      cleanups.push(() => c.abort());
      for await (const m of c) await c.send(m.data);
    });
    const pre = new Preconnection({ scope, remote: { ipAddress: '::1', port: listener.port }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(), drivers });
    const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    try {
      expect(conn.report.candidates.find((c) => c.fate === 'won')!.driver).toBe('udp');
      const it = conn[Symbol.asyncIterator]();
      let got: string | undefined;
      for (let i = 0; i < 20 && got === undefined; i++) {
        await conn.send('ping');
        const r = await Promise.race([it.next(), new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
        if (r && !r.done) got = text(r.value.data);
      }
      expect(got).toBe('ping');
    } finally {
      await conn.close();
    }
  });

  it('a blackholed first candidate is overtaken after one attempt delay', async () => {
    const hole = await blackhole('::1');
    cleanups.push(() => hole.close());
    const server = await tcpEchoOn('127.0.0.1', hole.port);
    const resolver = fakeResolver({ 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } });
    const scope = createScope({ tenant: 'a', policy: allow, resolver });
    const pre = new Preconnection({ scope, remote: { hostName: 'svc.test', port: hole.port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers, racing: { attemptDelay: 150 } });
    const t0 = performance.now();
    const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    const elapsed = performance.now() - t0;
    try {
      const won = conn.report.candidates.find((c) => c.fate === 'won')!;
      expect(won).toMatchObject({ driver: 'tcp', address: '127.0.0.1' });
      expect(won.startedAt!).toBeGreaterThanOrEqual(150);
      // Cancelled, not failed: the race did not wait for the blackhole to time out.
      expect(conn.report.candidates.find((c) => c.driver === 'tcp' && c.address === '::1')!.fate).toBe('cancelled');
      console.log(`blackholed ::1 overtaken by 127.0.0.1: established in ${elapsed.toFixed(1)} ms (attempt delay 150 ms)`);
      expect(server.accepted).toBe(1);
    } finally {
      await conn.close();
    }
  });

  it('listening on a local name asks the lookup grant first: denied sends no query and binds nothing; granted binds every answer', async () => {
    const resolver = fakeResolver({ 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } });
    const noLookups: NetworkPolicy = {
      decide: (r) => (r.use === 'lookup' ? { allow: false, code: 'no-match', reason: 'no lookups here', rule: null } : { allow: true, rule: 'test' }),
    };
    const server = (policy: NetworkPolicy): Preconnection =>
      new Preconnection({
        scope: createScope({ tenant: 'a', policy, resolver }),
        local: { hostName: 'svc.test', port: 0 },
        properties: TransportProperties.reliableInorderStream(),
        security: SecurityParameters.disabled(),
        drivers: [tcpDriver],
      });
    const err = (await server(noLookups).listen().catch((e: unknown) => e)) as EstablishmentError;
    expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    expect(err.report.candidates).toContainEqual(expect.objectContaining({ driver: 'tcp', hostName: 'svc.test', fate: 'denied', code: 'no-match' }));
    expect(resolver.queries).toEqual([]);
    const listener = await server(allow).listen();
    cleanups.push(() => listener.stop());
    expect(resolver.queries.map((q) => q.family).sort()).toEqual([4, 6]);
    expect(listener.localAddresses.map((a) => a.address).sort()).toEqual(['127.0.0.1', '::1']);
  });

  it('the policy decides every candidate: a denied port is never reached', async () => {
    const server = await tcpEchoOn('127.0.0.1');
    const port = (server.address() as { port: number }).port;
    const policy: NetworkPolicy = { decide: (r) => (r.port === port ? { allow: false, code: 'denied', reason: 'port closed to tenant', rule: `deny tcp://*:${port}` } : { allow: true, rule: 'rest' }) };
    const scope = createScope({ tenant: 'b', policy });
    const pre = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers });
    const err = await pre.initiate().catch((e) => e);
    expect(err.code).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(err.report.candidates.find((c: { driver: string }) => c.driver === 'tcp')).toMatchObject({ fate: 'denied', decision: { rule: `deny tcp://*:${port}` } });
    expect(server.accepted).toBe(0);
  });

  it('without a scope nothing is reached: a TypeError at once, before any socket', async () => {
    const server = await tcpEchoOn('127.0.0.1');
    const port = (server.address() as { port: number }).port;
    const init = { remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers };
    expect(() => new Preconnection(init as never)).toThrow(/scope is required/);
    expect(() => new Preconnection({ ...init, scope: undefined } as never)).toThrow(TypeError);
    expect(server.accepted).toBe(0);
  });

  it('each initiate() uses the properties as they are then: an edit after one connection changes the next, not the first', async () => {
    const server = await tcpEchoOn('127.0.0.1');
    const scope = createScope({ tenant: 'snap', policy: allow });
    const pre = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: (server.address() as { port: number }).port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers });
    const first = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    const again = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    expect(again.driver.id).toBe('tcp');
    pre.properties.set('reliability', 'prohibit').set('preserveOrder', 'noPreference').set('congestionControl', 'noPreference');
    const err = await pre.initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_NO_CANDIDATES' });
    expect(first.driver.id).toBe('tcp');
    first.abort();
    again.abort();
  });
});
