/**
 * Decision semantics, table-driven, with hostile inputs: encodings, embedded
 * and mapped addresses, DNS rebinding answers, confusing URLs, redirects and
 * hops to internal hosts, forged fields.
 */
import { describe, expect, it } from 'vitest';
import { canonicalRequest } from '../../src/policy/decide.js';
import { Host } from '../../src/policy/host.js';
import type { DecisionRecord } from '../../src/policy/index.js';
import type { PolicyRequest } from '../../src/policy/types.js';

const POLICY = `
allow tcp://api.example.com:443
allow tls://*.example.com:443
allow tcp://10.0.0.0/8:5432
allow tcp://[2001:db8:1::/48]:*
allow udp://@loopback:53
allow connect,redirect:https://*.example.com
allow lookup:tcp://lookup-only.example.net
allow bind:tcp://127.0.0.1:8000-8100
allow bind:tcp://@unspecified:0
allow accept:tcp://@private:*
allow tcp://169.254.169.254:80
allow tcp://169.254.0.0/16:81
allow tcp://@any:82
allow *://@public:8080
deny tcp://evil.example.com:*
deny tcp://10.66.0.0/16:*
deny tcp://[::ffff:10.77.0.0/112]:*
deny tcp://[64:ff9b::/96]:*
`;

const records: DecisionRecord[] = [];
const host = new Host({ resolver: async () => [], onDecision: (r) => records.push(r) });
host.setPolicy('acme', POLICY);
host.setPolicy('empty', '');
const acme = await host.tenant('acme');
const empty = await host.tenant('empty');
const nobody = await host.tenant('nobody');

type Case = [string, PolicyRequest, true | string];
const c = (use: PolicyRequest['use'], protocol: PolicyRequest['protocol'], rest: Partial<PolicyRequest>): PolicyRequest => ({ use, protocol, ...rest });
const conn = (host: string | undefined, address: string | undefined, port: number, protocol: PolicyRequest['protocol'] = 'tcp') =>
  c('connect', protocol, { host, address, port });

const cases: Case[] = [
  // A name grant covers public answers only (DNS rebinding).
  ['name grant, public answer', conn('api.example.com', '93.184.216.34', 443), true],
  ['name grant, public IPv6 answer', conn('api.example.com', '2606:4700::1', 443), true],
  ['name grant, wrong port', conn('api.example.com', '93.184.216.34', 444), 'no-match'],
  ['name grant, name before resolution', conn('api.example.com', undefined, 443), true],
  ['name canonicalised (case, trailing dot)', conn('API.Example.COM.', '93.184.216.34', 443), true],
  ['rebind to loopback', conn('api.example.com', '127.0.0.1', 443), 'no-match'],
  ['rebind to metadata', conn('api.example.com', '169.254.169.254', 443), 'no-match'],
  ['rebind to private', conn('api.example.com', '10.0.0.1', 443), 'no-match'],
  ['rebind to CGNAT', conn('api.example.com', '100.64.0.1', 443), 'no-match'],
  ['rebind to 0.0.0.0', conn('api.example.com', '0.0.0.0', 443), 'no-match'],
  ['rebind to mapped loopback', conn('api.example.com', '::ffff:127.0.0.1', 443), 'no-match'],
  ['rebind to mapped loopback, hex', conn('api.example.com', '::ffff:7f00:1', 443), 'no-match'],
  ['rebind to translated loopback', conn('api.example.com', '::ffff:0:7f00:1', 443), 'no-match'],
  ['rebind to compatible loopback', conn('api.example.com', '::127.0.0.1', 443), 'no-match'],
  ['rebind to NAT64 loopback (denied as IPv6)', conn('api.example.com', '64:ff9b::127.0.0.1', 443), 'denied'],
  ['rebind to local NAT64', conn('api.example.com', '64:ff9b:1::7f00:1', 443), 'no-match'],
  ['rebind to 6to4', conn('api.example.com', '2002:7f00:1::1', 443), 'no-match'],
  ['rebind to Teredo', conn('api.example.com', '2001:0:4136:e378:8000:63bf:3fff:fdd2', 443), 'no-match'],
  ['rebind to link-local v6 with zone', conn('api.example.com', 'fe80::1%eth0', 443), 'no-match'],
  ['rebind to ULA', conn('api.example.com', 'fd12::1', 443), 'no-match'],
  ['rebind to AWS IMDS v6', conn('api.example.com', 'fd00:ec2::254', 443), 'no-match'],
  ['rebind to ::1', conn('api.example.com', '::1', 443), 'no-match'],
  ['rebind to multicast', conn('api.example.com', '224.0.0.1', 443), 'no-match'],
  ['rebind to documentation range', conn('api.example.com', '192.0.2.1', 443), 'no-match'],
  // Wildcards never match the apex or lookalikes.
  ['suffix grant, child', conn('a.example.com', '93.184.216.34', 443, 'tls'), true],
  ['suffix grant, grandchild', conn('a.b.example.com', '93.184.216.34', 443, 'tls'), true],
  ['suffix grant, apex', conn('example.com', '93.184.216.34', 443, 'tls'), 'no-match'],
  ['suffix grant, lookalike', conn('aexample.com', '93.184.216.34', 443, 'tls'), 'no-match'],
  ['suffix grant, suffix attack', conn('example.com.evil.net', '93.184.216.34', 443, 'tls'), 'no-match'],
  ['suffix grant, other scheme', conn('a.example.com', '93.184.216.34', 443, 'tcp'), 'no-match'],
  ['deny by name wins', conn('evil.example.com', '93.184.216.34', 443), 'denied'],
  // Address grants and their encodings.
  ['CIDR grant', conn(undefined, '10.1.2.3', 5432), true],
  ['CIDR grant, octal spelling', conn(undefined, '012.1.2.3', 5432), true],
  ['CIDR grant, mapped spelling', conn(undefined, '::ffff:10.1.2.3', 5432), true],
  ['CIDR grant, other port', conn(undefined, '10.1.2.3', 5433), 'no-match'],
  ['CIDR grant with a name: the address grant counts', conn('db.internal', '10.1.2.3', 5432), true],
  ['deny CIDR inside allow CIDR', conn(undefined, '10.66.1.1', 5432), 'denied'],
  ['deny CIDR, mapped spelling', conn(undefined, '::ffff:10.66.1.1', 5432), 'denied'],
  ['deny written as mapped IPv6', conn(undefined, '10.77.1.1', 5432), 'denied'],
  ['deny as IPv6 reaches the embedded form', conn(undefined, '64:ff9b::10.1.2.3', 5432), 'denied'],
  ['IPv6 CIDR grant', conn(undefined, '2001:db8:1::5', 1), true],
  ['IPv6 CIDR grant, other prefix', conn(undefined, '2001:db8:2::5', 1), 'no-match'],
  // Cloud metadata: only exact grants reach it.
  ['metadata by exact grant', conn(undefined, '169.254.169.254', 80), true],
  ['metadata by exact grant, hex spelling', conn(undefined, '0xa9fea9fe', 80), true],
  ['metadata not by a wider CIDR', conn(undefined, '169.254.169.254', 81), 'no-match'],
  ['link-local by the wider CIDR', conn(undefined, '169.254.1.1', 81), true],
  ['metadata not by @any', conn(undefined, '169.254.169.254', 82), 'no-match'],
  ['metadata (ECS) not by @any', conn(undefined, '169.254.170.2', 82), 'no-match'],
  ['mapped metadata not by @any', conn(undefined, '::ffff:169.254.169.254', 82), 'no-match'],
  ['@any covers private', conn(undefined, '10.0.0.1', 82), true],
  ['@any covers loopback', conn(undefined, '127.0.0.1', 82), true],
  // @public and `*`.
  ['@public, public address', conn(undefined, '8.8.8.8', 8080), true],
  ['@public, any scheme', conn(undefined, '8.8.8.8', 8080, 'quic'), true],
  ['@public, private address', conn(undefined, '10.0.0.1', 8080), 'no-match'],
  ['@public with a name', conn('anything.test', '8.8.8.8', 8080), true],
  ['@public does not grant lookups', c('lookup', 'tcp', { host: 'anything.test' }), 'no-match'],
  // Presets by scheme; preset names grant lookups only.
  ['loopback preset', conn(undefined, '127.0.0.53', 53, 'udp'), true],
  ['loopback preset, ::1', conn(undefined, '::1', 53, 'udp'), true],
  ['loopback preset, other scheme', conn(undefined, '127.0.0.1', 53, 'tcp'), 'no-match'],
  ['loopback preset lets localhost be looked up', c('lookup', 'udp', { host: 'localhost' }), true],
  ['localhost answering a public address', conn('localhost', '8.8.8.8', 53, 'udp'), 'no-match'],
  // Lookups derive from name rules.
  ['lookup derived from a connect rule', c('lookup', 'tcp', { host: 'api.example.com' }), true],
  ['lookup derived from a suffix rule', c('lookup', 'tls', { host: 'x.example.com' }), true],
  ['lookup denied by a name deny', c('lookup', 'tcp', { host: 'evil.example.com' }), 'denied'],
  ['lookup of the denied name for another scheme', c('lookup', 'tls', { host: 'evil.example.com' }), true],
  ['lookup of an exfiltration label', c('lookup', 'tcp', { host: 'secret-data.attacker.net' }), 'no-match'],
  ['explicit lookup rule', c('lookup', 'tcp', { host: 'lookup-only.example.net' }), true],
  ['lookup rule grants no connect', conn('lookup-only.example.net', '1.1.1.1', 80), 'no-match'],
  ['lookup of an address literal', c('lookup', 'tcp', { host: '127.0.0.1' }), 'invalid-host'],
  // Bind and accept are separate grants.
  ['bind in range', c('bind', 'tcp', { address: '127.0.0.1', port: 8080 }), true],
  ['bind out of range', c('bind', 'tcp', { address: '127.0.0.1', port: 9000 }), 'no-match'],
  ['bind wildcard ephemeral', c('bind', 'tcp', { address: '0.0.0.0', port: 0 }), true],
  ['bind wildcard fixed port', c('bind', 'tcp', { address: '0.0.0.0', port: 8080 }), 'no-match'],
  ['connect to 0.0.0.0 is not a bind', conn(undefined, '0.0.0.0', 0), 'no-match'],
  ['a bind grant is not a connect grant', conn(undefined, '127.0.0.1', 8080), 'no-match'],
  ['accept from private', c('accept', 'tcp', { address: '192.168.1.5', port: 54321 }), true],
  ['accept from public', c('accept', 'tcp', { address: '8.8.8.8', port: 54321 }), 'no-match'],
  // Redirect hops.
  ['redirect within the grant', c('redirect', 'https', { url: 'https://a.example.com/next' }), true],
  ['redirect to the apex', c('redirect', 'https', { url: 'https://example.com/' }), 'no-match'],
  ['redirect downgrading to http', c('redirect', 'https', { url: 'http://a.example.com/' }), 'no-match'],
  ['redirect to loopback', c('redirect', 'https', { url: 'https://127.0.0.1/' }), 'no-match'],
  ['redirect to metadata, decimal', c('redirect', 'http', { url: 'http://2852039166/latest/meta-data' }), 'no-match'],
  ['redirect to a name resolving to loopback', c('redirect', 'https', { url: 'https://a.example.com/', address: '127.0.0.1' }), 'no-match'],
  ['redirect to a name resolving publicly', c('redirect', 'https', { url: 'https://a.example.com/', address: '93.184.216.34' }), true],
  ['redirect with userinfo', c('redirect', 'https', { url: 'https://a.example.com@127.0.0.1/' }), 'invalid-host'],
  ['redirect with userinfo, reversed', c('redirect', 'https', { url: 'https://127.0.0.1@a.example.com/' }), 'invalid-host'],
  ['redirect with backslash', c('redirect', 'https', { url: 'https://a.example.com\\@127.0.0.1/' }), 'invalid-host'],
  ['redirect with percent-encoded host', c('redirect', 'https', { url: 'https://%61.example.com/' }), 'invalid-host'],
  ['redirect to file:', c('redirect', 'https', { url: 'file:///etc/passwd' }), 'bad-scheme'],
  ['redirect to javascript:', c('redirect', 'https', { url: 'javascript:alert(1)' }), 'bad-scheme'],
  ['redirect: url and host disagree', c('redirect', 'https', { url: 'https://a.example.com/', host: 'b.example.com' }), 'invalid-host'],
  ['redirect: url and port disagree', c('redirect', 'https', { url: 'https://a.example.com/', port: 8443 }), 'invalid-host'],
  ['a retired use (sendto) is no use', c('sendto' as never, 'udp', { address: '192.0.2.10', port: 9999 }), 'policy-error'],
  ['a retired use (upgrade) is no use', c('upgrade' as never, 'wss', { url: 'wss://ws.example.com/chat' }), 'policy-error'],
  // Malformed requests.
  ['unknown protocol', c('connect', 'ftp' as never, { address: '10.1.2.3', port: 5432 }), 'bad-scheme'],
  ['unknown use', c('exec' as never, 'tcp', { address: '10.1.2.3', port: 5432 }), 'policy-error'],
  ['port out of range', conn(undefined, '10.1.2.3', 70000), 'invalid-host'],
  ['fractional port', conn(undefined, '10.1.2.3', 5432.5), 'invalid-host'],
  ['address that is a name', conn(undefined, 'localhost', 5432), 'invalid-host'],
  ['address with junk', conn(undefined, '10.1.2.3 ', 5432), 'invalid-host'],
  ['host literal and address disagree', conn('10.1.2.3', '10.1.2.4', 5432), 'invalid-host'],
  ['host with userinfo', conn('127.0.0.1@api.example.com', '93.184.216.34', 443), 'invalid-host'],
  ['host with backslash', conn('api.example.com\\@x', '93.184.216.34', 443), 'invalid-host'],
  ['host with NUL', conn('api.example.com\0.evil', '93.184.216.34', 443), 'invalid-host'],
  ['numeric host that is no address', conn('1.2.3.4.5', undefined, 443), 'invalid-host'],
  ['zone on a global address', conn(undefined, '2001:db8:1::5%eth0', 1), 'invalid-host'],
  ['neither host nor address', c('connect', 'tcp', { port: 1 }), 'invalid-host'],
  // Found by test/fuzz: fields whose String() throws must still give a reasoned deny, not an exception.
  ['protocol whose toString is not callable', { use: 'lookup', protocol: { toString: 0 } } as never, 'bad-scheme'],
  ['use that cannot be printed', { use: Object.create(null), protocol: 'tcp', address: '10.1.2.3', port: 1 } as never, 'policy-error'],
  ['port that cannot be printed', { use: 'connect', protocol: 'tcp', address: '10.1.2.3', port: { [Symbol.toPrimitive]: () => { throw new Error('no'); } } } as never, 'invalid-host'],
  // Encodings of names and addresses.
  ['homoglyph name (Cyrillic a)', conn('\u0430pi.example.com', '93.184.216.34', 443), 'no-match'],
  ['fullwidth name', conn('ａｐｉ.example.com', '93.184.216.34', 443), true],
  ['fullwidth digits are an address, not a name', conn('１０.１.２.３', undefined, 5432), true],
  ['ideographic full stops', conn('api。example。com', '93.184.216.34', 443), true],
  ['name too long', conn(`${'a'.repeat(60)}.`.repeat(5) + 'com', '93.184.216.34', 443), 'invalid-host'],
  ['redirect to mapped loopback literal', c('redirect', 'https', { url: 'https://[::ffff:127.0.0.1]/' }), 'no-match'],
  ['redirect to octal loopback', c('redirect', 'https', { url: 'https://0177.0.0.1/' }), 'no-match'],
  ['redirect to fullwidth loopback', c('redirect', 'https', { url: 'https://１２７.0.0.1/' }), 'no-match'],
];

describe('decide: hostile table (tenant acme)', () => {
  it.each(cases)('%s', async (_name, req, expected) => {
    const sync = acme.guard.decideSync(req);
    const d = await acme.guard.decide(req);
    expect(d).toEqual(sync);
    if (expected === true) expect(d).toMatchObject({ allow: true });
    else expect(d).toMatchObject({ allow: false, code: expected });
  });
});

describe('decide: tenants without rules', () => {
  it('an empty policy matches nothing, a missing one says no-policy', async () => {
    expect(await empty.guard.decide(conn(undefined, '127.0.0.1', 1))).toMatchObject({ allow: false, code: 'no-match' });
    expect(await nobody.guard.decide(conn(undefined, '127.0.0.1', 1))).toMatchObject({ allow: false, code: 'no-policy' });
  });
});

describe('decide: forged and tricky request objects', () => {
  it('a tenant field on the request is never read', async () => {
    const forged = { ...conn(undefined, '10.1.2.3', 5432), tenant: 'acme' } as PolicyRequest;
    records.length = 0;
    expect(await empty.guard.decide(forged)).toMatchObject({ allow: false, code: 'no-match' });
    expect(records.at(-1)).toMatchObject({ tenant: 'empty', allow: false });
  });

  it('a getter is never run: a request is read as own data properties only', async () => {
    let reads = 0;
    const req = {
      use: 'connect', protocol: 'tcp', port: 443, host: 'api.example.com',
      get address() {
        reads++;
        return reads === 1 ? '127.0.0.1' : '93.184.216.34';
      },
    } as PolicyRequest;
    const d = await acme.guard.decide(req);
    expect(reads).toBe(0);
    expect(d).toMatchObject({ allow: false, code: 'policy-error' });
    expect(acme.guard.decideSync(req)).toMatchObject({ allow: false, code: 'policy-error' });
    expect(reads).toBe(0);
  });

  it('a throwing getter or a non-object request denies with policy-error', async () => {
    const req = { use: 'connect', protocol: 'tcp', get address(): string { throw new Error('boom'); } } as unknown as PolicyRequest;
    expect(await acme.guard.decide(req)).toMatchObject({ allow: false, code: 'policy-error' });
    expect(acme.guard.decideSync(req)).toMatchObject({ allow: false, code: 'policy-error' });
    expect(await acme.guard.decide(null as never)).toMatchObject({ allow: false, code: 'policy-error' });
  });

  it('one address asked for again, alone or between others, is decided as the first time (the last IPv4 literal is remembered)', () => {
    const seq = ['127.0.0.1', '127.0.0.1', '169.254.169.254', '127.0.0.1', '0x7f.1', '127.0.0.1', '10.0.0.1', '10.0.0.1'];
    const fresh = seq.map((a) => canonicalRequest({ use: 'connect', protocol: 'tcp', address: a, port: 80 }));
    const again = seq.map((a) => canonicalRequest({ use: 'connect', protocol: 'tcp', address: a, port: 80 }));
    expect(again).toEqual(fresh);
    expect(fresh.map((c) => (c.ok ? c.cls : c.code))).toEqual(['loopback', 'loopback', 'cloud-metadata', 'loopback', 'loopback', 'loopback', 'private', 'private']);
    const c = canonicalRequest({ use: 'connect', protocol: 'tcp', address: '10.0.0.1', port: 80 });
    if (!c.ok) throw new Error('expected a canonical request');
    expect(Object.isFrozen(c.address)).toBe(true); // shared between requests: nobody holding one can change the next
  });

  it('the same request again gets the same frozen answer; one field changed is canonicalised afresh', () => {
    const base = { use: 'connect', protocol: 'tcp', host: 'api.example.com', address: '127.0.0.1', port: 443 } as const;
    const a = canonicalRequest(base);
    expect(canonicalRequest({ ...base })).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    const changed: PolicyRequest[] = [
      { ...base, use: 'bind' }, { ...base, protocol: 'tls' }, { ...base, host: 'API.example.com' }, { ...base, host: undefined },
      { ...base, address: '127.0.0.2' }, { ...base, port: 444 }, { ...base, port: -0 }, { ...base, url: 'tcp://api.example.com:443' },
    ];
    for (const r of changed) {
      const c = canonicalRequest(r);
      expect(c).not.toBe(a);
      expect(canonicalRequest(base)).toEqual(a);
      expect(canonicalRequest(structuredClone(r))).toEqual(c); // as decided afresh (the last request was another)
    }
    expect(canonicalRequest({ ...base, port: -0 })).toMatchObject({ ok: true, port: -0 });
    expect(canonicalRequest({ ...base, port: 0 })).toMatchObject({ ok: true, port: 0 });
    expect(Object.is((canonicalRequest({ ...base, port: 0 }) as { port: number }).port, 0)).toBe(true);
  });

  it('records carry the canonical form next to what was given', async () => {
    records.length = 0;
    await acme.guard.decide(conn('API.EXAMPLE.COM.', '::FFFF:7F00:1', 443));
    const r = records.at(-1)!;
    expect(r).toMatchObject({
      tenant: 'acme', use: 'connect', protocol: 'tcp', host: 'API.EXAMPLE.COM.', canonicalHost: 'api.example.com',
      address: '::ffff:127.0.0.1', port: 443, rule: null, allow: false, code: 'no-match', mode: 'enforce',
      revision: host.policy('acme')!.revision,
    });
    expect(r.reason).toMatch(/embeds 127\.0\.0\.1.*loopback address; a name grant covers public addresses only/);
    expect(Object.isFrozen(r)).toBe(true);
  });
});
