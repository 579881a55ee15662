/**
 * Issue 3's "done means", end to end through the public API: one Host, several
 * tenants with different textual (and JSON) policies in one process, every
 * candidate made by Preconnection.initiate() / listen() over real loopback
 * sockets with the real tcp, tls and udp drivers. Every target listener counts
 * what reaches it, so "denied" always means "that listener was never reached".
 * Names go through an injected resolver (test/helpers/resolver.ts).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { generateKeyPairSync } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { Driver } from '../../src/driver.js';
import { EstablishmentError, PolicyDeniedError, QuotaExceededError } from '../../src/errors.js';
import type { Listener } from '../../src/listener.js';
import { DECISION_CHANNEL, Host, type DecisionRecord, type TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import type { CandidateRecord } from '../../src/report.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { waitFor } from '../compliance/harness.js';
import { testCertificate } from '../helpers/certs.js';
import { fakeResolver } from '../helpers/resolver.js';

// ── real loopback targets that count what reaches them ─────────────────────

interface Target {
  port: number;
  /** TCP: connections accepted (TLS: handshakes completed). UDP: datagrams received. */
  reached: number;
  /** TCP/TLS: peer sockets that have closed. */
  closed: number;
  bytes: number;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
const liveSockets = new Set<Socket>();

function track(s: Socket, t: Target, echo: boolean): void {
  liveSockets.add(s);
  s.on('error', () => {});
  s.on('data', (d: Buffer) => {
    t.bytes += d.length;
    if (echo) s.write(d);
  });
  s.on('close', () => {
    liveSockets.delete(s);
    t.closed++;
  });
}

async function tcpTarget(echo = true): Promise<Target> {
  const t: Target = { port: 0, reached: 0, closed: 0, bytes: 0 };
  const server: Server = createServer((s) => {
    t.reached++;
    track(s, t, echo);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return t;
}

const leaf = testCertificate({ issuer: 'ca' });
async function tlsTarget(): Promise<Target> {
  const t: Target = { port: 0, reached: 0, closed: 0, bytes: 0 };
  const server: TlsServer = createTlsServer({ cert: leaf.cert, key: leaf.key }, (s) => track(s, t, true));
  server.on('secureConnection', () => t.reached++);
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return t;
}

async function udpTarget(): Promise<Target> {
  const t: Target = { port: 0, reached: 0, closed: 0, bytes: 0 };
  const socket: UdpSocket = createSocket('udp4');
  socket.on('message', (m) => {
    t.reached++;
    t.bytes += m.length;
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  t.port = socket.address().port;
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return t;
}

// ── the host, its tenants, and every decision record ───────────────────────

const records: DecisionRecord[] = [];
const published: DecisionRecord[] = [];
const onPublish = (r: unknown): void => void published.push(r as DecisionRecord);
const resolver = fakeResolver({ localhost: { v4: ['127.0.0.1'] }, 'db.acme.test': { v4: ['127.0.0.1'] } });
const ISS = 'https://issuer.test';
const ed = generateKeyPairSync('ed25519');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
let host: Host;
let tcpA: Target, tcpB: Target, tls: Target, udpA: Target, udpB: Target;

beforeAll(async () => {
  subscribe(DECISION_CHANNEL, onPublish);
  [tcpA, tcpB, tls, udpA, udpB] = await Promise.all([tcpTarget(), tcpTarget(), tlsTarget(), udpTarget(), udpTarget()]);
  host = new Host({
    resolver,
    onDecision: (r) => records.push(r),
    trustedIssuers: [{ issuer: ISS, keys: { keys: [{ ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed' }, { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec' }] } }],
  });
  // Two tenants, two policies: one textual, one JSON.
  host.setPolicy('acme', `
    # acme: its own TCP service (by address and by name), TLS on loopback, one UDP port
    allow tcp://127.0.0.1:${tcpA.port}
    allow tcp://db.acme.test:${tcpA.port}
    allow tls://@loopback:${tls.port}
    allow udp://127.0.0.1:${udpA.port}
    deny  tcp://127.0.0.1:${tcpB.port}
    allow bind:tcp://127.0.0.1:0
    allow accept:tcp://@loopback:*
  `);
  host.setPolicy('globex', {
    allow: [`tcp://127.0.0.1:${tcpB.port}`, `udp://127.0.0.1:${udpB.port}`, { use: ['bind'], scheme: 'tcp', host: '127.0.0.1', port: 0 }],
  });
});

afterAll(async () => {
  unsubscribe(DECISION_CHANNEL, onPublish);
  host.close();
  for (const s of liveSockets) s.destroy();
  for (const c of cleanups.reverse()) await c();
});

// ── helpers ────────────────────────────────────────────────────────────────

type Kind = 'tcp' | 'tls' | 'udp';
const DRIVERS: Record<Kind, Driver> = { tcp: tcpDriver, tls: tlsDriver, udp: udpDriver };

function preconnection(scope: TenantScope, kind: Kind, remote: { port: number; hostName?: string; ipAddress?: string }): Preconnection {
  return new Preconnection({
    scope,
    remote: remote.hostName !== undefined ? { hostName: remote.hostName, port: remote.port } : { ipAddress: remote.ipAddress ?? '127.0.0.1', port: remote.port },
    properties: kind === 'udp' ? TransportProperties.unreliableDatagram() : TransportProperties.reliableInorderStream(),
    security: kind === 'tls' ? new SecurityParameters({ ca: leaf.caCert! }) : SecurityParameters.disabled(),
    drivers: [DRIVERS[kind]],
  });
}

async function initiate(scope: TenantScope, kind: Kind, remote: { port: number; hostName?: string }): Promise<Connection> {
  const conn = await preconnection(scope, kind, remote).initiate({ signal: AbortSignal.timeout(5000) });
  cleanups.push(() => conn.abort());
  return conn;
}

/** Initiate expecting a policy denial; returns the report's candidates. */
async function denied(scope: TenantScope, kind: Kind, remote: { port: number; hostName?: string }): Promise<CandidateRecord[]> {
  const err = await preconnection(scope, kind, remote).initiate({ signal: AbortSignal.timeout(5000) }).then(
    (c) => (c.abort(), new Error('connected, but the policy should have denied it')),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EstablishmentError);
  expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
  return (err as EstablishmentError).report!.candidates;
}

/** Send `text` and read it back (the targets echo). */
async function echo(conn: Connection, text: string): Promise<void> {
  await conn.send(text);
  const it = conn[Symbol.asyncIterator]();
  let got = '';
  while (got.length < text.length) {
    const r = await it.next();
    if (r.done) break;
    got += Buffer.from(r.value.data).toString();
  }
  expect(got).toBe(text);
}

const since = (n: number): DecisionRecord[] => records.slice(n);

/** Each candidate that reached the policy has exactly one record, on the callback and on the channel. */
function expectRecordPerCandidate(candidates: readonly CandidateRecord[], mine: readonly DecisionRecord[], tenant: string): void {
  const connects = mine.filter((r) => r.use === 'connect');
  const policed = candidates.filter((c) => c.address !== undefined && c.fate !== 'unsuitable');
  expect(connects).toHaveLength(policed.length);
  for (const c of policed) {
    const r = connects.find((x) => x.address === c.address && x.port === c.port && x.protocol === (c.driver as Kind));
    expect(r, `record for ${c.driver} ${c.address}:${c.port}`).toBeDefined();
    expect(r).toMatchObject({ tenant, allow: c.decision!.allow, rule: c.decision!.rule });
  }
  for (const r of mine) {
    expect(r.tenant).toBe(tenant);
    expect(published.some((p) => p.id === r.id)).toBe(true);
  }
}

// ── 1. two tenants, TCP / TLS / UDP, exactly as each policy says ───────────

describe('two tenants, one host: every candidate as its own policy says', () => {
  const cases: Array<{ tenant: 'acme' | 'globex'; kind: Kind; target: () => Target; name?: string; expect: true | string }> = [
    { tenant: 'acme', kind: 'tcp', target: () => tcpA, expect: true },
    { tenant: 'acme', kind: 'tcp', target: () => tcpA, name: 'db.acme.test', expect: true },
    { tenant: 'acme', kind: 'tcp', target: () => tcpB, expect: 'denied' },
    { tenant: 'acme', kind: 'tls', target: () => tls, name: 'localhost', expect: true },
    { tenant: 'acme', kind: 'udp', target: () => udpA, expect: true },
    { tenant: 'acme', kind: 'udp', target: () => udpB, expect: 'no-match' },
    { tenant: 'globex', kind: 'tcp', target: () => tcpA, expect: 'no-match' },
    { tenant: 'globex', kind: 'tcp', target: () => tcpA, name: 'db.acme.test', expect: 'no-match' },
    { tenant: 'globex', kind: 'tcp', target: () => tcpB, expect: true },
    { tenant: 'globex', kind: 'tls', target: () => tls, name: 'localhost', expect: 'no-match' },
    { tenant: 'globex', kind: 'udp', target: () => udpA, expect: 'no-match' },
    { tenant: 'globex', kind: 'udp', target: () => udpB, expect: true },
  ];

  it.each(cases.map((c) => [`${c.tenant} ${c.kind}://${c.name ?? '127.0.0.1'} → ${c.expect === true ? 'allowed' : c.expect}`, c] as const))('%s', async (_label, c) => {
    const scope = await host.tenant(c.tenant);
    const target = c.target();
    const before = target.reached;
    const n = records.length;
    const remote = { port: target.port, ...(c.name ? { hostName: c.name } : {}) };
    if (c.expect === true) {
      const conn = await initiate(scope, c.kind, remote);
      expect(conn.report.tenant).toBe(c.tenant);
      if (c.kind === 'udp') {
        await conn.send('datagram');
        await waitFor(() => target.reached === before + 1);
      } else {
        await echo(conn, `hello from ${c.tenant}`);
      }
      await conn.close();
      expect(target.reached).toBe(before + 1);
      expectRecordPerCandidate(conn.report.candidates, since(n), c.tenant);
    } else {
      const candidates = await denied(scope, c.kind, remote);
      const refusal = candidates.find((x) => x.fate === 'denied')!;
      expect(refusal.code).toBe(c.expect);
      expect(refusal.decision).toMatchObject({ allow: false, code: c.expect });
      expectRecordPerCandidate(candidates, since(n), c.tenant);
      // Give a wrongly sent datagram or connection time to show up.
      await new Promise((r) => setTimeout(r, 20));
      expect(target.reached).toBe(before);
    }
    if (c.name) {
      // A name costs one lookup decision per protocol, recorded once (not once per AAAA/A query).
      const lookups = since(n).filter((r) => r.use === 'lookup');
      expect(lookups).toHaveLength(1);
      expect(lookups[0]).toMatchObject({ tenant: c.tenant, protocol: c.kind, host: c.name, canonicalHost: c.name });
    }
  });

  it('a named TLS candidate uses the checked name for SNI and the certificate, and the record says which rule', async () => {
    const n = records.length;
    const conn = await initiate(await host.tenant('acme'), 'tls', { hostName: 'localhost', port: tls.port });
    const won = conn.report.candidates.find((c) => c.fate === 'won')!;
    expect(won).toMatchObject({ hostName: 'localhost', address: '127.0.0.1', decision: { allow: true, rule: `tls://@loopback:${tls.port}` } });
    expect(since(n).find((r) => r.use === 'connect')).toMatchObject({ host: 'localhost', canonicalHost: 'localhost', address: '127.0.0.1', rule: `tls://@loopback:${tls.port}`, revision: expect.any(Number) });
    await conn.close();
  });

  it('records carry the full context: id, tenant, use, protocol, names, address, port, rule, verdict, mode, revision, time', async () => {
    const n = records.length;
    await denied(await host.tenant('acme'), 'tcp', { port: tcpB.port });
    const [r] = since(n);
    expect(r).toMatchObject({
      tenant: 'acme', use: 'connect', protocol: 'tcp', host: undefined, canonicalHost: '127.0.0.1', address: '127.0.0.1', port: tcpB.port,
      rule: `tcp://127.0.0.1:${tcpB.port}`, allow: false, code: 'denied', mode: 'enforce', revision: host.policy('acme')!.revision,
    });
    expect(r!.id).toBeGreaterThan(0);
    expect(Math.abs(r!.time - Date.now())).toBeLessThan(60_000);
  });
});

describe('the same question twice', () => {
  it('is recorded twice with the same answer; after a reload the new revision answers', async () => {
    host.setPolicy('memo', `allow tcp://127.0.0.1:${tcpA.port}`);
    const scope = await host.tenant('memo');
    const q = { use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpA.port } as const;
    const n = records.length;
    expect(scope.guard.decideSync(q)).toMatchObject({ allow: true });
    expect((await scope.guard.authorize(q)).decision).toMatchObject({ allow: true });
    const revision = host.setPolicy('memo', `allow tcp://127.0.0.1:${tcpB.port}`);
    expect(scope.guard.decideSync(q)).toMatchObject({ allow: false, code: 'no-match' });
    await expect(scope.guard.authorize(q)).rejects.toBeInstanceOf(PolicyDeniedError);
    const mine = since(n);
    expect(mine.map((r) => [r.allow, r.revision === revision])).toEqual([[true, false], [true, false], [false, true], [false, true]]);
    expect(new Set(mine.map((r) => r.id)).size).toBe(4);
  });
});

// ── 2. listeners: bind and accept are separate grants ──────────────────────

async function listen(scope: TenantScope): Promise<Listener> {
  const l = await new Preconnection({
    scope, local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver],
  }).listen();
  cleanups.push(() => l.stop());
  return l;
}

/** A raw peer (not a tenant) connecting to `port`; resolves when the socket closes, with whether it ever got data back. */
function peer(port: number): { socket: Socket; closed: Promise<void> } {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  cleanups.push(() => socket.destroy());
  return { socket, closed };
}

describe('listeners per tenant', () => {
  it('acme accepts a loopback peer; globex binds but may not accept, so its application never sees the peer', async () => {
    const a = await listen(await host.tenant('acme'));
    const g = await listen(await host.tenant('globex'));
    const got = { a: 0, g: 0 };
    const refused: string[] = [];
    a.on('connectionReceived', (c) => (got.a++, cleanups.push(() => c.abort())));
    g.on('connectionReceived', (c) => (got.g++, cleanups.push(() => c.abort())));
    g.on('refused', (_peer, _reason, d) => refused.push(d && !d.allow ? d.code : '?'));
    const n = records.length;
    peer(a.port);
    const pg = peer(g.port);
    await waitFor(() => got.a === 1 && refused.length === 1);
    await pg.closed;
    expect(got.g).toBe(0);
    expect(refused).toEqual(['no-match']);
    const accepts = since(n).filter((r) => r.use === 'accept');
    expect(accepts.map((r) => `${r.tenant}:${r.allow}`).sort()).toEqual(['acme:true', 'globex:false']);
  });

  it('a tenant with no bind grant cannot listen at all', async () => {
    host.setPolicy('nobind', `allow tcp://127.0.0.1:${tcpA.port}`);
    const err = await listen(await host.tenant('nobind')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    expect((err as EstablishmentError).report!.candidates.find((c) => c.fate === 'denied')).toMatchObject({ code: 'no-match' });
  });

  it('connecting from a chosen local address is a bind too: without the grant the candidate is denied', async () => {
    host.setPolicy('nobind', `allow tcp://127.0.0.1:${tcpA.port}`);
    const scope = await host.tenant('nobind');
    const reached = tcpA.reached;
    const n = records.length;
    const err = await new Preconnection({
      scope, remote: { ipAddress: '127.0.0.1', port: tcpA.port }, local: { ipAddress: '127.0.0.1' },
      properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver],
    }).initiate().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    expect(since(n)).toEqual([expect.objectContaining({ tenant: 'nobind', use: 'bind', address: '127.0.0.1', port: 0, allow: false })]);
    expect(tcpA.reached).toBe(reached);
    const conn = await initiate(scope, 'tcp', { port: tcpA.port }); // control: the same connect without a local address
    await conn.close();
    expect(tcpA.reached).toBe(reached + 1);
  });
});

// ── 3. audit mode ──────────────────────────────────────────────────────────

describe('audit mode', () => {
  it('lets the candidate through and records the would-be denial', async () => {
    host.setPolicy('initech', `mode audit\nallow tcp://127.0.0.1:${tcpA.port}`);
    const before = tcpB.reached;
    const n = records.length;
    const conn = await initiate(await host.tenant('initech'), 'tcp', { port: tcpB.port });
    await echo(conn, 'audited');
    await conn.close();
    expect(tcpB.reached).toBe(before + 1);
    expect(since(n)).toEqual([expect.objectContaining({ tenant: 'initech', use: 'connect', allow: false, code: 'no-match', mode: 'audit', port: tcpB.port })]);
    const won = conn.report.candidates.find((c) => c.fate === 'won')!;
    expect(won.decision).toMatchObject({ allow: true });
    expect(won.decision!.reason).toMatch(/^audit: would deny \(no-match\)/);
  });
});

// ── 4. quotas: their own error, never a wait ───────────────────────────────

describe('quotas', () => {
  it('connections: the next initiate fails at once with QuotaExceededError — no lookup, no decision, nothing reached', async () => {
    host.setPolicy('q-conn', `allow tcp://db.acme.test:${tcpA.port}\nallow tcp://127.0.0.1:${tcpA.port}\nlimit connections 1`);
    const scope = await host.tenant('q-conn');
    const first = await initiate(scope, 'tcp', { port: tcpA.port });
    const reached = tcpA.reached;
    const queries = resolver.queries.length;
    const n = records.length;
    const err = await preconnection(scope, 'tcp', { hostName: 'db.acme.test', port: tcpA.port }).initiate().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).not.toBeInstanceOf(PolicyDeniedError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'connections' });
    expect(resolver.queries.length).toBe(queries);
    expect(records.length).toBe(n);
    expect(tcpA.reached).toBe(reached);
    await first.close();
    const again = await initiate(scope, 'tcp', { hostName: 'db.acme.test', port: tcpA.port });
    await again.close();
    expect(tcpA.reached).toBe(reached + 1);
  });

  it('listeners: a second listen() fails with QuotaExceededError until the first stops', async () => {
    host.setPolicy('q-listen', 'allow bind:tcp://127.0.0.1:0\nlimit listeners 1');
    const scope = await host.tenant('q-listen');
    const first = await listen(scope);
    const err = await listen(scope).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'listeners' });
    await first.stop();
    await (await listen(scope)).stop();
  });

  it('bytes sent: a send over the budget is refused with QuotaExceededError and nothing of it leaves', async () => {
    host.setPolicy('q-sent', `allow tcp://127.0.0.1:${tcpA.port}\nlimit sent 16 per 60s`);
    const conn = await initiate(await host.tenant('q-sent'), 'tcp', { port: tcpA.port });
    const bytes = tcpA.bytes;
    await echo(conn, '0123456789');
    const err = await conn.send('0123456789').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'bytes-sent' });
    expect(conn.state).toBe('established');
    await conn.send('012345'); // what is left of the budget still goes
    await waitFor(() => tcpA.bytes === bytes + 16);
    await conn.close();
  });

  it('bytes received: a connection that receives over the budget is aborted with ERR_TAPS_QUOTA_EXCEEDED', async () => {
    host.setPolicy('q-recv', `allow tcp://127.0.0.1:${tcpA.port}\nlimit received 8 per 60s`);
    const conn = await initiate(await host.tenant('q-recv'), 'tcp', { port: tcpA.port });
    const failed = new Promise<Error>((r) => conn.on('connectionError', r));
    await conn.send('0123456789'); // echoed back: 10 > 8
    expect(await failed).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'bytes-received' });
    expect(conn.state).toBe('closed');
  });
});

// ── 5. hot reload ──────────────────────────────────────────────────────────

describe('hot reload', () => {
  it('new candidates use the new revision; live connections it forbids are closed through the Connection', async () => {
    host.setPolicy('reload', `allow tcp://127.0.0.1:${tcpA.port}\nallow tcp://127.0.0.1:${tcpB.port}`);
    const scope = await host.tenant('reload');
    const toA = await initiate(scope, 'tcp', { port: tcpA.port });
    const toB = await initiate(scope, 'tcp', { port: tcpB.port });
    await echo(toA, 'a');
    const closedA = tcpA.closed;
    const errors: Error[] = [];
    toA.on('connectionError', (e) => errors.push(e));
    const revision = host.setPolicy('reload', `allow tcp://127.0.0.1:${tcpB.port}`);
    expect(toA.state).toBe('closed');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PolicyDeniedError);
    expect((errors[0] as PolicyDeniedError).decision).toMatchObject({ allow: false, code: 'revoked' });
    await waitFor(() => tcpA.closed === closedA + 1); // the peer really saw it go
    await echo(toB, 'b still allowed');
    const n = records.length;
    const reached = tcpA.reached;
    const candidates = await denied(scope, 'tcp', { port: tcpA.port });
    expect(candidates.find((c) => c.fate === 'denied')!.code).toBe('no-match');
    expect(since(n)[0]).toMatchObject({ tenant: 'reload', allow: false, revision });
    expect(tcpA.reached).toBe(reached);

    // The host may choose to keep live connections: toB survives a reload that forbids it.
    host.setPolicy('reload', `allow tcp://127.0.0.1:${tcpA.port}`, { onRevoke: 'keep' });
    await echo(toB, 'kept');
    expect(toB.state).toBe('established');
    await denied(scope, 'tcp', { port: tcpB.port });
    await toB.close();
  });

  it('accepted peers the new revision forbids are closed; a forbidden bind stops the listener', async () => {
    host.setPolicy('reload-l', 'allow bind:tcp://127.0.0.1:0\nallow accept:tcp://127.0.0.1:*');
    const l = await listen(await host.tenant('reload-l'));
    const conns: Connection[] = [];
    l.on('connectionReceived', (c) => conns.push(c));
    const p = peer(l.port);
    await waitFor(() => conns.length === 1);
    const errors: Error[] = [];
    conns[0]!.on('connectionError', (e) => errors.push(e));
    host.setPolicy('reload-l', 'allow bind:tcp://127.0.0.1:0\nallow accept:tcp://[::1]:*');
    expect(conns[0]!.state).toBe('closed');
    expect((errors[0] as PolicyDeniedError).decision).toMatchObject({ code: 'revoked' });
    await p.closed;

    const stopped = new Promise<void>((r) => l.on('stopped', r));
    const listenerErrors: Error[] = [];
    l.on('error', (e) => listenerErrors.push(e));
    host.setPolicy('reload-l', 'allow accept:tcp://[::1]:*');
    await stopped;
    expect(listenerErrors[0]).toBeInstanceOf(PolicyDeniedError);
    expect((listenerErrors[0] as PolicyDeniedError).decision).toMatchObject({ code: 'revoked' });
  });
});

// ── 6. claims ──────────────────────────────────────────────────────────────

async function token(alg: 'EdDSA' | 'ES256', tenant: string, allow: string[]): Promise<string> {
  return new SignJWT({ taps: { allow } })
    .setProtectedHeader({ alg, kid: alg === 'EdDSA' ? 'ed' : 'ec' })
    .setIssuer(ISS)
    .setSubject(tenant)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(alg === 'EdDSA' ? ed.privateKey : ec.privateKey);
}

describe('claims', () => {
  it.each(['EdDSA', 'ES256'] as const)('a %s-signed token grants the tenant what its own policy does not; deny rules still win', async (alg) => {
    host.setPolicy('hooli', `deny tcp://127.0.0.1:${tcpB.port}`);
    await denied(await host.tenant('hooli'), 'tcp', { port: tcpA.port });
    const scope = await host.tenant('hooli', { claims: await token(alg, 'hooli', [`tcp://127.0.0.1:${tcpA.port}`, `tcp://127.0.0.1:${tcpB.port}`]) });
    const reachedB = tcpB.reached;
    const n = records.length;
    const conn = await initiate(scope, 'tcp', { port: tcpA.port });
    await echo(conn, alg);
    await conn.close();
    expect(since(n)[0]).toMatchObject({ tenant: 'hooli', allow: true, rule: `tcp://127.0.0.1:${tcpA.port}` });
    const candidates = await denied(scope, 'tcp', { port: tcpB.port });
    expect(candidates.find((c) => c.fate === 'denied')!.code).toBe('denied');
    expect(tcpB.reached).toBe(reachedB);
  });

  it("a token for another tenant grants nothing: host.tenant() rejects with policy-error", async () => {
    const err = await host.tenant('hooli', { claims: await token('EdDSA', 'acme', [`tcp://127.0.0.1:${tcpA.port}`]) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).decision).toMatchObject({ code: 'policy-error' });
  });
});

// ── 7. any failure inside the policy denies ────────────────────────────────

describe('a failing policy denies', () => {
  const failures: Array<[string, () => unknown, number?]> = [
    ['a custom rule that throws', () => {
      throw new Error('rule crashed');
    }],
    ['a custom rule that never answers (timeout)', () => new Promise(() => {}), 20],
    ['a custom rule that rejects', () => Promise.reject(new Error('backend down'))],
    ['a custom rule that answers nonsense', () => ({ allow: 'yes' })],
  ];
  it.each(failures)('%s', async (_label, custom, customTimeoutMs) => {
    host.setPolicy('fragile', `allow tcp://127.0.0.1:${tcpA.port}`, { custom: custom as never, customTimeoutMs });
    const reached = tcpA.reached;
    const n = records.length;
    const candidates = await denied(await host.tenant('fragile'), 'tcp', { port: tcpA.port });
    expect(candidates.find((c) => c.fate === 'denied')).toMatchObject({ code: 'policy-error' });
    expect(since(n)).toEqual([expect.objectContaining({ tenant: 'fragile', allow: false, code: 'policy-error' })]);
    expect(tcpA.reached).toBe(reached);
  });
});
