/**
 * Issue 4's "done means" through the whole library: a tenant of a Host, with
 * real policy rules, reaches an allowed `wss:` and `https:` endpoint by name
 * (the name resolved by the library, the certificate checked against it), and
 * is refused, with the forbidden listener never reached, when a redirect
 * leads somewhere its policy does not allow. Names resolve through an
 * injected resolver to 127.0.0.1: a name grant covers public answers only,
 * so each tenant also holds the address grant a loopback answer needs.
 */
import https from 'node:https';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { createScope, type DecisionRecord } from '../../src/policy/index.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', names: ['api.test', 'ws.test', 'evil.test', '127.0.0.1'] });
const trust = (): SecurityParameters => new SecurityParameters({ ca: cert.cert });
const resolver = fakeResolver({ 'api.test': { v4: ['127.0.0.1'] }, 'ws.test': { v4: ['127.0.0.1'] }, 'evil.test': { v4: ['127.0.0.1'] } });
const records: DecisionRecord[] = [];
const host = new Host({ resolver, onDecision: (r) => records.push(r) });
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  host.close();
});

interface HttpsListener {
  readonly port: number;
  connections: number;
  readonly paths: string[];
}

/** An https listener that records every connection; `route` may answer a path with a redirect. */
async function httpsListener(route: (path: string) => string | undefined = () => undefined): Promise<HttpsListener> {
  const sockets = new Set<Socket>();
  const l = { port: 0, connections: 0, paths: [] as string[] };
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    l.paths.push(req.url!);
    req.resume();
    req.on('end', () => {
      const location = route(req.url!);
      if (location) res.writeHead(302, { location }).end();
      else res.end(`hello from ${req.headers.host}${req.url}`);
    });
  });
  server.on('secureConnection', (s: Socket) => {
    l.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  Object.assign(l, { port: (server.address() as { port: number }).port });
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return l;
}

describe('web stacks through the policy chokepoint (Host tenant, real rules)', () => {
  it('reaches an allowed wss: endpoint by name; the certificate is checked against that name', async () => {
    const server = await new Preconnection({
      scope: createScope({ tenant: 'server', policy: { decide: () => ({ allow: true, rule: 'server' }) } }),
      local: { ipAddress: '127.0.0.1', port: 0, scheme: 'wss' },
      properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    }).listen();
    cleanups.push(() => server.stop());
    server.on('connectionReceived', async (c) => {
      for await (const m of c) await c.send(`echo:${m.text()}`);
      await c.close();
    });
    host.setPolicy('chat', `allow connect:wss://ws.test:${server.port}\nallow connect:wss://127.0.0.1:${server.port}`);
    const conn = await new Preconnection({
      scope: await host.tenant('chat'),
      remote: `wss://ws.test:${server.port}/room`,
      properties: TransportProperties.reliableMessage(),
      security: trust(),
    }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      expect(conn.report.candidates.find((c) => c.fate === 'won')).toMatchObject({ driver: 'wss', hostName: 'ws.test', address: '127.0.0.1' });
      await conn.send('hi');
      expect((await conn.receive({ signal: AbortSignal.timeout(5000) })).text()).toBe('echo:hi');
    } finally {
      await conn.close();
    }
    const mine = records.filter((r) => r.tenant === 'chat');
    expect(mine.some((r) => r.use === 'lookup' && r.allow)).toBe(true);
    expect(mine.some((r) => r.use === 'connect' && r.allow && r.port === server.port)).toBe(true);
  });

  it('the same wss: endpoint under a policy without the grant: denied before any socket, nothing reached', async () => {
    const server = await httpsListener();
    host.setPolicy('nochat', `allow wss://other.test:${server.port}`);
    const err = await new Preconnection({
      scope: await host.tenant('nochat'),
      remote: `wss://ws.test:${server.port}/room`,
      properties: TransportProperties.reliableMessage(),
      security: trust(),
    })
      .initiate({ signal: AbortSignal.timeout(5000) })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    expect(server.connections).toBe(0);
  });

  it('reaches an allowed https: endpoint by name: Host is the checked name, the response arrives as the reply', async () => {
    const api = await httpsListener();
    host.setPolicy('web', `allow https://api.test:${api.port}\nallow https://127.0.0.1:${api.port}`);
    const conn = await new Preconnection({
      scope: await host.tenant('web'),
      remote: `https://api.test:${api.port}/hello`,
      properties: TransportProperties.reliableMessage(),
      security: trust(),
    }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      expect(conn.report.candidates.find((c) => c.fate === 'won')).toMatchObject({ hostName: 'api.test', address: '127.0.0.1' });
      await conn.send('', { fields: { method: 'GET' } });
      const reply = await conn.receive({ signal: AbortSignal.timeout(5000) });
      expect(reply.text()).toBe(`hello from api.test:${api.port}/hello`);
    } finally {
      await conn.close();
    }
  });

  it.each([
    ['a forbidden host', (evil: number) => `https://evil.test:${evil}/steal`],
    ['a forbidden port of an allowed host', (evil: number) => `https://api.test:${evil}/steal`],
    ['a loopback literal', (evil: number) => `https://127.0.0.1:${evil}/steal`],
    ['a scheme the tenant may not use', (evil: number) => `http://api.test:${evil}/steal`],
    ['a non-network scheme', () => 'file:///etc/passwd'],
  ])('a redirect to %s is refused with a policy error, and the forbidden listener is never reached', async (_what, where) => {
    const evil = await httpsListener();
    const api = await httpsListener((path) => (path === '/go' ? where(evil.port) : undefined));
    const tenant = `redirects-${api.port}`;
    host.setPolicy(tenant, `allow connect,redirect:https://api.test:${api.port}\nallow connect,redirect:https://127.0.0.1:${api.port}`);
    const conn = await new Preconnection({
      scope: await host.tenant(tenant),
      remote: `https://api.test:${api.port}/go`,
      properties: TransportProperties.reliableMessage(),
      security: trust(),
      driverOptions: { https: { redirect: 'follow' }, https2: { redirect: 'follow' } },
    }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      const failed = new Promise<Error>((resolve) => conn.once('connectionError', resolve));
      await conn.send('', { fields: { method: 'GET' } }).catch(() => {});
      expect(await failed).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    } finally {
      conn.abort();
    }
    expect(api.paths).toEqual(['/go']);
    expect(evil.connections).toBe(0);
    expect(evil.paths).toEqual([]);
    const denials = records.filter((r) => r.tenant === tenant && !r.allow);
    expect(denials.length, JSON.stringify(records.filter((r) => r.tenant === tenant).map((r) => [r.use, r.protocol, r.host, r.address, r.port, r.allow, r.code]))).toBeGreaterThan(0);
  });
});
