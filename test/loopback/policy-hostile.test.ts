/**
 * Hostile inputs against the policy, through the public API, over real
 * loopback listeners that must never be reached: every spelling of loopback,
 * private, unspecified and metadata addresses, confusing URLs, a rebinding
 * resolver, redirects to internal hosts (http driver), forged tenant fields
 * and bad claims. Names always go through an injected resolver that points
 * everything it can at loopback (test/helpers/resolver.ts).
 *
 * The guest tenant may reach "the internet": `allow tcp://*:*`. Its host's
 * virtual network (a DelegatingNetwork, as hosts may supply) carries the one
 * public stand-in address to a loopback listener (`internet`), passes
 * loopback through untouched (so a wrong allow would really reach the
 * forbidden listeners) and refuses to dial anything else.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { EstablishmentError, PolicyDeniedError } from '../../src/errors.js';
import { DelegatingNetwork, SystemNetwork, type ResolvedAddress, type Resolver } from '../../src/network.js';
import { canonicalAddress, canonicalHost, createScope, Host, type DecisionRecord, type TenantScope } from '../../src/policy/index.js';
import { Preconnection, type PreconnectionInit } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { waitFor } from '../compliance/harness.js';
import { fakeResolver } from '../helpers/resolver.js';

const PUBLIC = '93.184.216.34';
const cleanups: (() => unknown)[] = [];
const sockets = new Set<Socket>();

interface Counter { port: number; reached: number }
async function counter(address: string): Promise<Counter> {
  const c: Counter = { port: 0, reached: 0 };
  const server: Server = createServer((s) => {
    c.reached++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  c.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return c;
}

// ── the injected resolver: rebinding, mixed answers, junk, and "everything is internal" ──
const queries: string[] = [];
const table = fakeResolver({
  'public.test': { v4: [PUBLIC] },
  'mixed.test': { v4: [PUBLIC, '127.0.0.1', '0.0.0.0'], v6: ['::1', '::ffff:7f00:1'] },
  'junk.test': { v4: ['localhost', 'not-an-ip', '127.1', '::1', ''] },
  'evil.test': { v4: ['169.254.169.254'], v6: ['fd00:ec2::254'] },
});
let rebinds = 0;
const hostile: Resolver = (host, family, signal) => {
  queries.push(`${host}/${family}`);
  if (host === 'rebind.test') return Promise.resolve(family === 6 ? [] : [{ address: rebinds++ === 0 ? PUBLIC : '127.0.0.1', family: 4 as const }]);
  if (['public.test', 'mixed.test', 'junk.test', 'evil.test'].includes(host)) return table(host, family, signal);
  return Promise.resolve([family === 4 ? { address: '127.0.0.1', family: 4 as const } : { address: '::1', family: 6 as const }]);
};

/** Where the virtual internet really sends a connection: decided (and minted) by a scope of the host's own. */
const routes = createScope({ tenant: 'virtual-internet', policy: { decide: (r) => (r.address === '127.0.0.1' ? { allow: true, rule: 'route' } : { allow: false, code: 'no-match', reason: 'not a route', rule: null }) } });

/**
 * The host's virtual network: PUBLIC goes to the `internet` listener, loopback passes through, anything else
 * is refused. The drivers dial only minted targets, so the re-aimed one comes from the host's own scope.
 */
class VirtualInternet extends DelegatingNetwork {
  override async connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    const { address } = attempt.target;
    if (address === PUBLIC) {
      const target = await routes.guard.authorize({ use: 'connect', protocol: attempt.target.protocol, address: '127.0.0.1', port: internet.port });
      return driver.connect({ ...attempt, target });
    }
    const c = canonicalAddress(address);
    const local = c.ok && /^(127\.|0\.0\.0\.0$|::1$|::$|::ffff:7f)/.test(c.host);
    return local ? super.connect(driver, attempt) : Promise.reject(new Error(`test network: will not dial ${address}`));
  }
}

const ISS = 'https://issuer.test';
const ed = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const records: DecisionRecord[] = [];
let internet: Counter, forbidden4: Counter, forbidden6: Counter, claimsOnly: Counter;
let host: Host;
let guest: TenantScope;
let admin: TenantScope;

beforeAll(async () => {
  [internet, forbidden4, forbidden6, claimsOnly] = await Promise.all([counter('127.0.0.1'), counter('127.0.0.1'), counter('::1'), counter('127.0.0.1')]);
  host = new Host({ network: new VirtualInternet(new SystemNetwork(hostile)), onDecision: (r) => records.push(r), trustedIssuers: [{ issuer: ISS, keys: ed.publicKey }] });
  host.setPolicy('guest', 'allow tcp://*:*\ndeny *://@cloud-metadata:*');
  host.setPolicy('admin', `allow tcp://@loopback:*`);
  host.setPolicy('claimant', 'deny *://@cloud-metadata:*');
  [guest, admin] = await Promise.all([host.tenant('guest'), host.tenant('admin')]);
});

afterAll(async () => {
  host.close();
  for (const s of sockets) s.destroy();
  for (const c of cleanups.reverse()) await c();
});

/** What became of one initiate: refused at construction, denied (codes), connected (to which address) or failed. */
async function outcome(scope: TenantScope, remote: PreconnectionInit['remote'], extra: Record<string, unknown> = {}): Promise<string> {
  let pre: Preconnection;
  try {
    pre = new Preconnection({ scope, remote, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver], ...extra });
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) return 'refused';
    throw err;
  }
  try {
    const conn = await pre.initiate({ signal: AbortSignal.timeout(3000) });
    conn.abort();
    return `connected ${conn.report.candidates.find((c) => c.fate === 'won')!.address}`;
  } catch (err) {
    if (!(err instanceof EstablishmentError) || err.code !== 'ERR_TAPS_POLICY_PROHIBITED') return `failed ${(err as Error).message}`;
    return `denied ${[...new Set(err.report!.candidates.filter((c) => c.fate === 'denied').map((c) => c.code))].sort().join(',')}`;
  }
}

/** Run `fn`; the forbidden listeners must not have been reached meanwhile. */
async function neverReached<T>(fn: () => Promise<T>): Promise<T> {
  const before = [forbidden4.reached, forbidden6.reached];
  const r = await fn();
  await new Promise((res) => setTimeout(res, 5));
  expect([forbidden4.reached, forbidden6.reached]).toEqual(before);
  return r;
}

type Row = [label: string, remote: () => PreconnectionInit['remote'], expected: string];

describe('address spellings and names through initiate()', () => {
  const F = () => forbidden4.port;
  const F6 = () => forbidden6.port;
  const rows: Row[] = [
    // controls: the internet is reachable, so the denials below are the policy's doing
    ['control: public name', () => ({ hostName: 'public.test', port: F() }), `connected ${PUBLIC}`],
    ['control: public address', () => `${PUBLIC}:${F()}`, `connected ${PUBLIC}`],
    ['control: NAT64 of a public address', () => ({ ipAddress: `64:ff9b::${PUBLIC}`, port: F() }), 'failed'],
    // IPv4 loopback in every form inet_aton accepts: refused as endpoints, or denied
    ...['127.0.0.1'].map((h): Row => [`ipAddress ${h}`, () => ({ ipAddress: h, port: F() }), 'denied no-match']),
    ...['127.1', '0x7f.1', '0x7f000001', '2130706433', '0177.0.0.1', '017700000001', '127.0.0.1.', '１２７.０.０.１', '127。0。0。1', '0', '[127.0.0.1]'].map(
      (h): Row => [`hostName ${h}`, () => ({ hostName: h, port: F() }), 'refused'],
    ),
    ['string 127.1:port', () => `127.1:${F()}`, 'refused'],
    ['url tcp://2130706433', () => `tcp://2130706433:${F()}`, 'refused'],
    ['url tcp://0x7f.1', () => ({ url: `tcp://0x7f.1:${F()}` }), 'refused'],
    // unspecified addresses reach this host
    ['ipAddress 0.0.0.0', () => ({ ipAddress: '0.0.0.0', port: F() }), 'denied no-match'],
    ['ipAddress ::', () => ({ ipAddress: '::', port: F6() }), 'denied no-match'],
    // IPv6 loopback and IPv6 forms that embed 127.0.0.1 (mapped, compatible, translated, NAT64, 6to4, Teredo)
    ...['::1', '0:0:0:0:0:0:0:1', '::1%lo', '::ffff:127.0.0.1', '::FFFF:7F00:1', '::127.0.0.1', '::ffff:0:127.0.0.1', '64:ff9b::127.0.0.1', '64:ff9b:1::7f00:1', '2002:7f00:1::1', '2001:0:4136:e378:8000:63bf:80ff:fffe', 'fe80::1%lo'].map(
      // A zone on ::1 names no link: refused when the endpoint is made, like by the policy.
      (h): Row => [`ipAddress ${h}`, () => ({ ipAddress: h, port: h.includes('7f') || h.includes('127') ? F() : F6() }), h === '::1%lo' ? 'refused' : 'denied no-match'],
    ),
    ['url tcp://[::ffff:127.0.0.1]', () => `tcp://[::ffff:127.0.0.1]:${F()}`, 'denied no-match'],
    // names whose answers are internal (name grants cover public answers only), IDN and case lookalikes
    ...['localhost', 'LOCALHOST', 'localhost.', 'ⓛⓞⓒⓐⓛⓗⓞⓢⓣ', 'lоcalhost', 'xn--lcalhost-nbh', '127.0.0.1.nip.io', 'internal.corp', 'rebind.test'].map(
      (h): Row => [`name ${h}`, () => ({ hostName: h, port: F() }), h === 'rebind.test' ? `connected ${PUBLIC}` : 'denied no-match'],
    ),
    ['name junk.test (answers: names, junk, 127.1)', () => ({ hostName: 'junk.test', port: F() }), 'denied no-match'],
    // cloud metadata names: denied before any query
    ...['metadata.google.internal', 'METADATA.GOOGLE.INTERNAL.', 'metadata', 'instance-data'].map(
      (h): Row => [`name ${h}`, () => ({ hostName: h, port: F() }), 'denied denied'],
    ),
    // confusing URLs and authorities
    ['userinfo naming the public host', () => `tcp://public.test@127.0.0.1:${F()}`, 'refused'],
    ['userinfo naming loopback', () => `tcp://127.0.0.1@public.test:${F()}`, 'refused'],
    ['backslash before @', () => `tcp://public.test\\@127.0.0.1:${F()}`, 'refused'],
    ['percent-encoded host', () => `tcp://%31%32%37.0.0.1:${F()}`, 'refused'],
    ['percent-encoded slash in userinfo', () => `tcp://public.test%2f@127.0.0.1:${F()}`, 'refused'],
    ['fragment hiding the host', () => `tcp://127.0.0.1:${F()}#@public.test`, 'refused'],
    ['whitespace in the host', () => ({ hostName: 'public.test 127.0.0.1', port: F() }), 'refused'],
    ['NUL in the host', () => ({ hostName: 'public.test\u0000.127.0.0.1', port: F() }), 'refused'],
    ['zone id on an IPv4 address', () => ({ ipAddress: '127.0.0.1%lo', port: F() }), 'refused'],
  ];
  it.each(rows.map(([label, remote, expected]) => [label, expected, remote] as const))('%s → %s', async (_label, expected, remote) => {
    const got = await neverReached(() => outcome(guest, remote()));
    if (expected === 'failed') expect(got.startsWith('failed') || got === `connected ${PUBLIC}`).toBe(true);
    else expect(got).toBe(expected);
  });

  it('metadata names are never sent to the resolver; every name it was sent is canonical (lowercase A-labels, no dot)', () => {
    expect(queries.filter((q) => /metadata|instance-data/.test(q))).toEqual([]);
    for (const q of queries) {
      const name = q.slice(0, q.lastIndexOf('/'));
      expect(canonicalHost(name)).toMatchObject({ ok: true, kind: 'name', host: name });
    }
    expect(queries).toContain('xn--lcalhost-nbh/4');
    expect(queries.some((q) => /[A-Z]|\.\/|ⓛ/.test(q))).toBe(false);
  });
});

describe('rebinding and mixed answers', () => {
  it('connects only to what it checked: one query per family, no second lookup (the rebinding answer is never seen)', async () => {
    rebinds = 0;
    const before = queries.length;
    const reached = internet.reached;
    expect(await neverReached(() => outcome(guest, { hostName: 'rebind.test', port: forbidden4.port }))).toBe(`connected ${PUBLIC}`);
    expect(queries.slice(before).sort()).toEqual(['rebind.test/4', 'rebind.test/6']);
    expect(internet.reached).toBe(reached + 1);
    // The next selection asks again and gets the internal answer: denied.
    expect(await neverReached(() => outcome(guest, { hostName: 'rebind.test', port: forbidden4.port }))).toBe('denied no-match');
  });

  it('a mixed answer loses only its forbidden addresses, each recorded as denied; the public one wins', async () => {
    const pre = new Preconnection({ scope: guest, remote: { hostName: 'mixed.test', port: forbidden4.port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver] });
    const conn = await neverReached(() => pre.initiate({ signal: AbortSignal.timeout(3000) }));
    conn.abort();
    const fates = conn.report.candidates.map((c) => `${c.address} ${c.fate} ${c.code ?? ''}`.trim()).sort();
    expect(fates).toEqual([`${PUBLIC} won`, '0.0.0.0 denied no-match', '127.0.0.1 denied no-match', '::1 denied no-match', '::ffff:127.0.0.1 denied no-match'].sort());
  });

  it('names resolving to cloud metadata are denied by the deny rule, by address', async () => {
    const signal = AbortSignal.timeout(3000);
    for (const family of [4, 6] as const) {
      for (const a of await guest.guard.lookup('evil.test', family, 'tcp', signal)) {
        const err = await guest.guard.authorize({ use: 'connect', protocol: 'tcp', address: a.address, port: 80, hostName: 'evil.test' }).catch((e: unknown) => e);
        expect((err as PolicyDeniedError).decision, a.address).toMatchObject({ allow: false, code: 'denied', rule: '*://@cloud-metadata:*' });
      }
    }
  });
});

describe('private, link-local and metadata spellings (decisions only; nothing to listen on)', () => {
  const spellings: Array<[string, string]> = [
    ['10.0.0.1', 'no-match'], ['012.0.0.1', 'no-match'], ['167772161', 'no-match'], ['::ffff:10.0.0.1', 'no-match'], ['64:ff9b::a00:1', 'no-match'],
    ['192.168.1.1', 'no-match'], ['0xc0a80101', 'no-match'], ['172.16.0.1', 'no-match'], ['100.64.0.1', 'no-match'], ['fd12::1', 'no-match'],
    ['169.254.1.1', 'no-match'], ['fe80::1%eth0', 'no-match'], ['169.254.169.254', 'denied'], ['169.254.43518', 'denied'], ['0xa9fea9fe', 'denied'],
    ['2852039166', 'denied'], ['0251.0376.0251.0376', 'denied'], ['::ffff:169.254.169.254', 'denied'], ['64:ff9b::a9fe:a9fe', 'denied'],
    ['fd00:ec2::254', 'denied'], ['[FD00:EC2:0:0:0:0:0:254]', 'denied'], ['100.100.100.200', 'denied'], ['169.254.170.2', 'denied'],
    ['255.255.255.255', 'no-match'], ['224.0.0.1', 'no-match'], ['240.0.0.1', 'no-match'], ['::1%eth0', 'invalid-host'], ['1.2.3.4.5', 'invalid-host'],
  ];
  it.each(spellings)('%s → %s', (spelling, code) => {
    for (const req of [{ host: spelling }, { address: spelling }]) {
      const d = guest.guard.decideSync({ use: 'connect', protocol: 'tcp', port: 80, ...req });
      expect(d).toMatchObject({ allow: false, code });
    }
  });
});

describe('a deny without uses is not sidestepped by another use', () => {
  it('covers connect and redirects (binds and peers are denied only when named)', async () => {
    const h = new Host({ resolver: async () => [] });
    h.setPolicy('t', 'allow connect,redirect,bind,accept:*://@private:*\ndeny *://10.0.0.0/8:*\ndeny connect:udp://192.168.0.9:*\ndeny tcp://bad.example:*');
    const s = await h.tenant('t');
    const verdict = (use: string, protocol: string) => s.guard.decideSync({ use, protocol, address: '10.1.2.3', port: 80 } as never);
    for (const [use, protocol] of [['connect', 'tcp'], ['connect', 'ws'], ['redirect', 'http']]) {
      expect(verdict(use!, protocol!), use).toMatchObject({ allow: false, code: 'denied', rule: '*://10.0.0.0/8:*' });
    }
    expect(verdict('bind', 'udp')).toMatchObject({ allow: true });
    expect(verdict('accept', 'tcp')).toMatchObject({ allow: true });
    // A deny that names its uses covers only those.
    expect(s.guard.decideSync({ use: 'redirect', protocol: 'http', address: '192.168.0.9', port: 53 })).toMatchObject({ allow: true });
    expect(s.guard.decideSync({ use: 'connect', protocol: 'udp', address: '192.168.0.9', port: 53 })).toMatchObject({ allow: false, code: 'denied' });
    // By name too, and only for its scheme.
    expect(s.guard.decideSync({ use: 'redirect', protocol: 'tcp', host: 'bad.example', address: '10.9.9.9', port: 1 })).toMatchObject({ allow: false, rule: 'tcp://bad.example:*' });
    expect(s.guard.decideSync({ use: 'connect', protocol: 'ws', host: 'bad.example', address: '192.168.1.1', port: 80 })).toMatchObject({ allow: true });
  });
});

describe('redirects to internal hosts (http driver)', () => {
  it('every redirect to an internal host is denied hop by hop; the forbidden listener is never reached', async () => {
    const web = new Host({ resolver: (h, f, s) => hostile(h === 'public.test' ? 'internal.test' : h, f, s) });
    const F = forbidden4.port;
    const targets = [
      `http://127.0.0.1:${F}/`, `http://localhost:${F}/`, `http://LOCALHOST.:${F}/`, `http://[::1]:${forbidden6.port}/`, `http://[::ffff:127.0.0.1]:${F}/`,
      `http://2130706433:${F}/`, `http://0x7f.1:${F}/`, `http://0177.0.0.1:${F}/`, `http://127.1:${F}/`, `http://0.0.0.0:${F}/`, `http://[::]:${F}/`,
      `http://internal.test:${F}/`, `http://public.test@127.0.0.1:${F}/`, `http://127.0.0.1:${F}\\@public.test/`, `//127.0.0.1:${F}/`,
      'http://metadata.google.internal/computeMetadata/v1/', 'http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://2852039166/',
      `file:///etc/passwd`, `gopher://127.0.0.1:${F}/_stats`,
    ];
    const origin = createHttpServer((req, res) => {
      const i = Number(req.url!.slice(3));
      if (req.url === '/ok') res.end('ok');
      else if (req.url === '/r/ok') res.writeHead(302, { location: '/ok' }).end();
      else res.writeHead(302, { location: targets[i] }).end();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    const O = (origin.address() as { port: number }).port;
    cleanups.push(() => new Promise<void>((r) => (origin.closeAllConnections(), origin.close(() => r()))));
    web.setPolicy('web', `allow connect,redirect:http://127.0.0.1:${O}\nallow redirect:http://*:*\ndeny *://@cloud-metadata:*`);
    const scope = await web.tenant('web');
    const request = async (path: string): Promise<string> => {
      const conn: Connection = await new Preconnection({
        scope, remote: { url: `http://127.0.0.1:${O}/` }, properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), drivers: [httpDriver],
      }).initiate({ signal: AbortSignal.timeout(3000) });
      const failed = new Promise<string>((r) => conn.on('connectionError', (e) => r(e instanceof PolicyDeniedError && !e.decision.allow ? `denied ${e.decision.code}` : `error ${e.code}`)));
      // The request names another tenant in a header and a field: it changes nothing.
      await conn.send('', { fields: { path, redirect: 'follow', headers: { 'x-taps-tenant': 'admin' } } }).catch(() => {});
      const it = conn[Symbol.asyncIterator]();
      const got = await Promise.race([failed, it.next().then((m) => (m.done ? 'closed' : Buffer.from(m.value.data).toString()))]);
      conn.abort();
      return got;
    };
    expect(await request('/r/ok')).toBe('ok');
    for (let i = 0; i < targets.length; i++) {
      const got = await neverReached(() => request(`/r/${i}`));
      const t = targets[i]!;
      // Cloud metadata is refused by the deny rule itself (a deny without uses covers redirects too).
      const expected = /metadata|169\.254|fd00:ec2|2852039166/.test(t) ? 'denied denied' : /^(file|gopher):/.test(t) ? 'denied bad-scheme' : 'denied no-match';
      expect(got, t).toBe(expected);
    }
  });
});

describe('forged tenant fields', () => {
  it('endpoints, URLs, init objects and requests cannot name a tenant', async () => {
    const F = forbidden4.port;
    expect(await outcome(admin, { ipAddress: '127.0.0.1', port: internet.port })).toBe('connected 127.0.0.1'); // control: admin may
    await neverReached(async () => {
      expect(await outcome(guest, { ipAddress: '127.0.0.1', port: F, tenant: 'admin' } as never)).toBe('refused');
      expect(await outcome(guest, `tcp://admin@127.0.0.1:${F}`)).toBe('refused');
      expect(await outcome(guest, `tcp://127.0.0.1:${F}/?tenant=admin`)).toMatch(/^(refused|denied no-match)$/);
      expect(await outcome(guest, { ipAddress: '127.0.0.1', port: F }, { tenant: 'admin' })).toBe('refused'); // an unknown init key is a TypeError
      const n = records.length;
      const d = await guest.guard.decide({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: F, tenant: 'admin' } as never);
      expect(d).toMatchObject({ allow: false, code: 'no-match' });
      expect(records.slice(n).map((r) => r.tenant)).toEqual(['guest']);
    });
  });

  it("a lookalike scope, or another tenant's target, is refused", async () => {
    const F = forbidden4.port;
    expect(() => new Preconnection({ scope: { tenant: 'admin', guard: admin.guard, network: admin.network, lease: admin.lease.bind(admin) } as never })).toThrow(TypeError);
    const target = await admin.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: F });
    const attempt = { signal: AbortSignal.timeout(3000), target, remote: undefined, local: undefined, security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: guest.guard } as never;
    await neverReached(async () => {
      await expect(guest.network.connect(tcpDriver, attempt)).rejects.toMatchObject({ decision: { code: 'unverified' } });
      await expect(guest.network.connect(tcpDriver, { ...(attempt as object), target: { ...target, tenant: 'guest' } } as never)).rejects.toMatchObject({ decision: { code: 'unverified' } });
    });
  });

  it('mutating an answer it was given changes no later answer', async () => {
    const q = { use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: forbidden4.port } as const;
    await neverReached(async () => {
      for (let i = 0; i < 2; i++) {
        const d = guest.guard.decideSync(q) as { allow: boolean; rule: string | null };
        expect(d.allow).toBe(false);
        d.allow = true;
        d.rule = 'forged';
      }
      await expect(guest.guard.authorize(q)).rejects.toMatchObject({ decision: { allow: false, code: 'no-match' } });
      expect(await outcome(guest, { ipAddress: '127.0.0.1', port: forbidden4.port })).toBe('denied no-match');
    });
    const t = await guest.guard.authorize({ use: 'connect', protocol: 'tcp', address: PUBLIC, port: 1 });
    expect(Object.isFrozen(t) && Object.isFrozen(t.decision)).toBe(true);
  });

  it('a request with a getter is refused before anything is read or decided (a getter could answer twice)', async () => {
    let reads = 0;
    const shifty = { use: 'connect', protocol: 'tcp', port: forbidden4.port, get address() { return reads++ === 0 ? PUBLIC : '127.0.0.1'; } };
    await expect(guest.guard.authorize(shifty as never)).rejects.toThrow(TypeError);
    expect(reads).toBe(0);
  });
});

describe('bad claims', () => {
  const sign = (key: Parameters<SignJWT['sign']>[0], o: { iss?: string; sub?: string; exp?: number | string; nbf?: string; alg?: string; allow?: string[] } = {}) => {
    const jwt = new SignJWT({ taps: { allow: o.allow ?? [`tcp://127.0.0.1:${claimsOnly.port}`] } }).setProtectedHeader({ alg: o.alg ?? 'EdDSA' }).setIssuer(o.iss ?? ISS).setSubject(o.sub ?? 'claimant').setIssuedAt();
    if (o.exp !== undefined) jwt.setExpirationTime(o.exp);
    if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
    return jwt.sign(key);
  };
  const now = () => Math.floor(Date.now() / 1000);

  it.each<[string, () => Promise<string>]>([
    ['expired', () => sign(ed.privateKey, { exp: now() - 60 })],
    ['not yet valid', () => sign(ed.privateKey, { exp: '1h', nbf: '10m' })],
    ['no expiry', () => sign(ed.privateKey)],
    ['untrusted issuer', () => sign(ed.privateKey, { exp: '1h', iss: 'https://evil.test' })],
    ['wrong key', () => sign(stranger.privateKey, { exp: '1h' })],
    ['another tenant', () => sign(ed.privateKey, { exp: '1h', sub: 'admin' })],
    ['alg none', async () => new UnsecuredJWT({ taps: { allow: ['tcp://*:*'] } }).setIssuer(ISS).setSubject('claimant').setExpirationTime('1h').encode()],
    ['HS256 keyed with the public key', () => sign(new Uint8Array(ed.publicKey.export({ format: 'der', type: 'spki' })), { exp: '1h', alg: 'HS256' })],
    ['payload swapped after signing', async () => {
      const [h, , s] = (await sign(ed.privateKey, { exp: '1h' })).split('.');
      const p = Buffer.from(JSON.stringify({ iss: ISS, sub: 'claimant', exp: now() + 3600, taps: { allow: ['tcp://@any:*'] } })).toString('base64url');
      return `${h}.${p}.${s}`;
    }],
  ])('%s: host.tenant() refuses it and the granted listener is never reached', async (_label, make) => {
    const reached = claimsOnly.reached;
    const err = await host.tenant('claimant', { claims: await make() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).decision).toMatchObject({ code: 'policy-error' });
    expect(await outcome(await host.tenant('claimant'), { ipAddress: '127.0.0.1', port: claimsOnly.port })).toBe('denied no-match');
    expect(claimsOnly.reached).toBe(reached);
  });

  it('a decoded payload is never taken for claims; a valid token is (control)', async () => {
    await expect(host.tenant('claimant', { claims: { taps: { allow: ['tcp://*:*'] } } as never })).rejects.toThrow(TypeError);
    const scope = await host.tenant('claimant', { claims: await sign(ed.privateKey, { exp: '1h' }) });
    expect(await outcome(scope, { ipAddress: '127.0.0.1', port: claimsOnly.port })).toBe('connected 127.0.0.1');
    await waitFor(() => claimsOnly.reached === 1);
  });
});

describe('the canonicaliser and the resolver path agree on what an address is', () => {
  /** An IPv4 value and a spelling of it a resolver (or a hostile one) might answer with. */
  const spelled = fc.record({ v: fc.integer({ min: 0, max: 0xffffffff }), form: fc.constantFrom('dotted', 'mapped', 'mapped-hex', 'nat64', 'upper-mapped') }).map(({ v, form }) => {
    const q = [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
    const hex = `${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
    const text = { dotted: q, mapped: `::ffff:${q}`, 'mapped-hex': `::ffff:${hex}`, nat64: `64:ff9b::${q}`, 'upper-mapped': `::FFFF:${hex.toUpperCase()}` }[form];
    return { v, text, family: (form === 'dotted' ? 4 : 6) as 4 | 6 };
  });

  it('an answer is dialled exactly as canonicalised, and decided exactly as its canonical form would be', async () => {
    await fc.assert(
      fc.asyncProperty(spelled, async ({ text, family }) => {
        const resolver: Resolver = async () => [{ address: text, family }];
        const h = new Host({ resolver });
        h.setPolicy('p', 'allow tcp://*:443\nallow tcp://@private:443\ndeny tcp://@cloud-metadata:*');
        const scope = await h.tenant('p');
        const answers: ResolvedAddress[] = await scope.guard.lookup('any.test', family, 'tcp', AbortSignal.timeout(1000));
        const c = canonicalAddress(text);
        expect(c.ok).toBe(true);
        expect(answers).toEqual([{ address: (c as { host: string }).host, family }]);
        const viaAnswer = scope.guard.decideSync({ use: 'connect', protocol: 'tcp', host: 'any.test', address: answers[0]!.address, port: 443 });
        const viaSpelling = scope.guard.decideSync({ use: 'connect', protocol: 'tcp', host: 'any.test', address: text, port: 443 });
        expect(viaAnswer).toEqual(viaSpelling);
        if (viaAnswer.allow) {
          const t = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: text, port: 443, hostName: 'any.test' });
          expect(t.address).toBe(answers[0]!.address);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('whatever the canonicaliser calls an address never reaches the resolver, and comes back as that address', async () => {
    const asked: string[] = [];
    const h = new Host({ resolver: async (name) => (asked.push(name), []) });
    h.setPolicy('p', 'allow tcp://*:*');
    const scope = await h.tenant('p');
    const radix = fc.constantFrom(8, 10, 16);
    const literal = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), radix).map(([v, r]) => (r === 10 ? String(v) : r === 8 ? `0${v.toString(8)}` : `0x${v.toString(16)}`));
    await fc.assert(
      fc.asyncProperty(fc.oneof(literal, spelled.map((s) => s.text)), async (text) => {
        const c = canonicalHost(text);
        if (!c.ok || c.kind === 'name') return;
        const family = c.kind === 'ipv4' ? 4 : 6;
        expect(await scope.guard.lookup(text, family, 'tcp', AbortSignal.timeout(1000))).toEqual([{ address: c.host, family }]);
      }),
      { numRuns: 300 },
    );
    expect(asked).toEqual([]);
  });
});
