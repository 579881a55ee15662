/**
 * The rule grammar and policy documents: what parses, to what, and how every
 * mistake is reported (rule, line, column, position) without ever becoming
 * an allow.
 */
import { describe, expect, it } from 'vitest';
import { isTapsError } from '../../src/errors.js';
import { parseRule, PolicyParseError } from '../../src/policy/grammar.js';
import { parseBudget, parsePolicy, parsePolicyFile } from '../../src/policy/source.js';

const show = (text: string) => {
  const r = parseRule(text, 'allow');
  const h = r.host;
  const host =
    h.kind === 'name' ? h.name
    : h.kind === 'suffix' ? `*.${h.suffix}`
    : h.kind === 'preset' ? `@${h.preset}`
    : h.kind === 'any' ? '*'
    : `v${h.family}/${h.prefix}:${[...h.words].map((w) => w.toString(16)).join('.')}`;
  return `${r.uses.join(',')} ${r.scheme} ${host} ${r.ports === null ? '*' : r.ports.toString()}`;
};

describe('parseRule: accepted forms', () => {
  const table: Array<[string, string]> = [
    ['tcp://api.example.com:443', 'connect tcp api.example.com 443'],
    ['TCP://API.Example.COM.:443', 'connect tcp api.example.com 443'],
    ['tls://bücher.de:443', 'connect tls xn--bcher-kva.de 443'],
    ['https://*.example.com', 'connect https *.example.com 443'],
    ['http://example.com', 'connect http example.com 80'],
    ['ws://example.com', 'connect ws example.com 80'],
    ['wss://example.com', 'connect wss example.com 443'],
    ['webtransport://example.com', 'connect webtransport example.com 443'],
    ['*://example.com:*', 'connect * example.com *'],
    ['udp://10.0.0.0/8:53', 'connect udp v4/8:a000000 53'],
    ['udp://10.1.2.3:53', 'connect udp v4/32:a010203 53'],
    ['tcp://[::1]:80', 'connect tcp v6/128:0.0.0.1 80'],
    ['tcp://[fd00::/8]:80', 'connect tcp v6/8:fd000000.0.0.0 80'],
    ['tcp://[fd00::]/8:80', 'connect tcp v6/8:fd000000.0.0.0 80'],
    ['tcp://[::ffff:10.0.0.0/104]:80', 'connect tcp v4/8:a000000 80'],
    ['tcp://[::ffff:127.0.0.1]:80', 'connect tcp v4/32:7f000001 80'],
    ['tcp://@loopback:8000-8100', 'connect tcp @loopback 8000-8100'],
    ['tcp://@cloud-metadata:*', 'connect tcp @cloud-metadata *'],
    ['tcp://*:80,443,8000-8100,81', 'connect tcp * 80-81,443,8000-8100'],
    ['tcp://*:0', 'connect tcp * 0'],
    ['lookup:tcp://*.example.com', 'lookup tcp *.example.com *'],
    ['lookup:tcp://*.example.com:*', 'lookup tcp *.example.com *'],
    ['connect,redirect:https://example.com', 'connect,redirect https example.com 443'],
    ['bind:tcp://0.0.0.0:8080', 'bind tcp v4/32:0 8080'],
    ['accept:udp://@private:*', 'accept udp @private *'],
  ];
  it.each(table)('%s', (text, expected) => expect(show(text)).toBe(expected));

  it('JSON rules render to the same rule', () => {
    const r = parseRule({ use: ['connect', 'redirect'], scheme: 'https', host: '*.example.com', port: [443, '8443'] }, 'allow');
    expect(r.text).toBe('connect,redirect:https://*.example.com:443,8443');
    expect(parseRule({ scheme: 'tcp', host: '::1', port: 80 }, 'deny').text).toBe('tcp://[::1]:80');
  });
});

describe('parseRule: every mistake names the rule and the position', () => {
  const table: Array<[string, number, RegExp]> = [
    ['tcp://a.com:99999', 12, /out of range/],
    ['tcp://a.com', 11, /port is required/],
    ['tcp//a.com:1', 0, /expected "scheme:\/\/host:port"|expected "\/\/"|unknown use/],
    ['ftp://a.com:1', 0, /unknown scheme "ftp"/],
    ['conect:tcp://a.com:1', 0, /unknown use "conect"/],
    ['connect,bnd:tcp://a.com:1', 8, /unknown use "bnd"/],
    // No library path asks these any more: a rule naming one is refused, saying what to write instead.
    ['sendto:udp://a.com:53', 0, /"sendto" is not a use: .*connected peer/],
    ['accept,upgrade:wss://a.com', 7, /"upgrade" is not a use: .*ws: or wss: connect/],
    ['tcp://a.com:80-70', 12, /reversed/],
    ['tcp://a.com:8x', 12, /invalid port/],
    ['tcp://a.com:80,', 15, /invalid port ""/],
    ['tcp://a.com:', 12, /missing port/],
    ['tcp://:80', 6, /missing host/],
    ['tcp://foo*.example.com:1', 9, /wildcard is only allowed/],
    ['tcp://*.*.example.com:1', 8, /"\*\." must be followed by a host name/],
    ['tcp://*.10.0.0.1:1', 8, /got an address/],
    ['tcp://@nope:1', 6, /unknown preset "@nope"/],
    ['tcp://10.0.0.1/8:1', 6, /host bits are set.*10\.0\.0\.0\/8/],
    ['tcp://10.0.0.0/33:1', 15, /invalid prefix length/],
    ['tcp://127.1:80', 6, /four decimal octets.*127\.0\.0\.1/],
    ['tcp://0x7f.0.0.1:80', 6, /four decimal octets/],
    ['tcp://::1:80', 6, /missing host/],
    ['tcp://[::1:80', 6, /unterminated/],
    ['tcp://[fe80::1%eth0]:80', 14, /zone id/],
    ['tcp://[fd00::1/8]:80', 6, /host bits/],
    ['tcp://a.com:80/path', 14, /no path/],
    ['tcp://a b.com:80', 7, /whitespace/],
    ['tcp://a\\b.com:80', 7, /backslash/],
    ['tcp://user@a.com:80', 6, /forbidden character/],
    ['lookup:tcp://a.com:443', 19, /lookup rules take no port/],
    ['lookup:tcp://10.0.0.0/8', 13, /lookup rule names host names/],
    ['', 0, /empty rule/],
  ];
  it.each(table)('%j', (text, position, message) => {
    let err: unknown;
    try {
      parseRule(text, 'allow', { source: 'p.txt', line: 3, column: 7 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyParseError);
    const e = err as PolicyParseError;
    expect(isTapsError(e) && e.code).toBe('ERR_TAPS_INVALID_CONFIGURATION');
    expect(e.rule).toBe(text);
    expect(e.position).toBe(position);
    expect(e.line).toBe(3);
    expect(e.column).toBe(7 + position);
    expect(e.message).toMatch(message);
    expect(e.message).toContain(`p.txt:3:${7 + position}`);
    if (text !== '') expect(e.message).toContain(JSON.stringify(text));
  });
});

describe('parsePolicy', () => {
  it('reads directives, comments and limits', () => {
    const spec = parsePolicy(`
      # acme's policy
      mode audit
      allow tcp://api.example.com:443   # the API
      allow connect,redirect:https://*.example.com
      deny  *://@cloud-metadata:*
      limit connections 10
      limit listeners 2
      limit sent 10MiB per 60s
      limit received 1kb/1s
      limit bytes 5 per 100ms
    `);
    expect(spec.mode).toBe('audit');
    expect(spec.allow.map((r) => r.text)).toEqual(['tcp://api.example.com:443', 'connect,redirect:https://*.example.com']);
    expect(spec.deny.map((r) => r.text)).toEqual(['*://@cloud-metadata:*']);
    expect(spec.allow[0]!.where).toBe('policy:4:13');
    expect(spec.limits).toEqual({
      connections: 10,
      listeners: 2,
      sent: { bytes: 10 * 1024 * 1024, windowMs: 60_000 },
      received: { bytes: 1000, windowMs: 1000 },
      bytes: { bytes: 5, windowMs: 100 },
    });
  });

  it('reports the line and column of a bad rule in a multi-line policy', () => {
    const src = 'allow tcp://a.com:1\n\n  deny  tcp://b.com:7000-6000\n';
    expect(() => parsePolicy(src, 'acme.policy')).toThrow(/^acme\.policy:3:21: port range "7000-6000" is reversed in rule "tcp:\/\/b\.com:7000-6000" \(position 12\)$/);
  });

  it('refuses unknown directives, duplicate modes, bad limits, tenant sections', () => {
    expect(() => parsePolicy('alow tcp://a.com:1')).toThrow(/1:1: unknown directive "alow"/);
    expect(() => parsePolicy('mode audit\nmode enforce')).toThrow(/2:1: mode is set twice/);
    expect(() => parsePolicy('mode permissive')).toThrow(/mode must be/);
    expect(() => parsePolicy('limit connections ten')).toThrow(/non-negative integer/);
    expect(() => parsePolicy('limit sent 10MiB')).toThrow(/<size> per <duration>/);
    expect(() => parsePolicy('limit speed 1')).toThrow(/expected "limit/);
    expect(() => parsePolicy('tenant acme')).toThrow(/policy files/);
    expect(() => parsePolicy('allow')).toThrow(/needs a rule/);
  });

  it('takes JSON text and objects, strictly', () => {
    const spec = parsePolicy('{ "allow": ["tcp://a.com:1", { "scheme": "udp", "host": "10.0.0.0/8", "port": "*" }], "limits": { "connections": 3, "sent": "1KiB/1s" } }');
    expect(spec.allow.map((r) => r.text)).toEqual(['tcp://a.com:1', 'udp://10.0.0.0/8:*']);
    expect(spec.limits).toEqual({ connections: 3, sent: { bytes: 1024, windowMs: 1000 } });
    expect(() => parsePolicy({ alow: [] } as never)).toThrow(/unknown field "alow"/);
    expect(() => parsePolicy({ allow: 'tcp://a.com:1' } as never)).toThrow(/allow must be an array/);
    expect(() => parsePolicy({ allow: ['tcp://a.com:1', 'tcp://b.com'] })).toThrow(/port is required.*at allow\[1\]/);
    expect(() => parsePolicy({ allow: [{ scheme: 'tcp', host: 'a.com', port: 1, extra: 1 } as never] })).toThrow(/unknown rule field "extra"/);
    expect(() => parsePolicy({ limits: { connections: -1 } })).toThrow(/non-negative integer/);
    expect(() => parsePolicy({ limits: { sent: { bytes: 1 } } as never })).toThrow(/limits\.sent/);
    expect(() => parsePolicy('{ "allow": [ "tcp://a.com:1", ] }', 'x.json')).toThrow(/^x\.json:1:\d+: invalid JSON/);
  });

  it('an empty policy allows nothing and has no limits', () => {
    expect(parsePolicy('')).toMatchObject({ mode: 'enforce', allow: [], deny: [], limits: {} });
  });
});

describe('parsePolicyFile', () => {
  it('reads text sections per tenant', () => {
    const m = parsePolicyFile('tenant acme\nallow tcp://a.com:1\ntenant globex\nmode audit\ndeny tcp://*:*\n', 'f');
    expect([...m.keys()]).toEqual(['acme', 'globex']);
    expect(m.get('globex')!.mode).toBe('audit');
    expect(m.get('acme')!.allow[0]!.where).toBe('f:2:7');
  });
  it('reads JSON files', () => {
    const m = parsePolicyFile(JSON.stringify({ tenants: { acme: { allow: ['tcp://a.com:1'] }, b: {} } }));
    expect([...m.keys()]).toEqual(['acme', 'b']);
  });
  it('refuses rules before a section, duplicate and bad tenant ids, bad JSON shapes', () => {
    expect(() => parsePolicyFile('allow tcp://a.com:1')).toThrow(/expected "tenant <id>"/);
    expect(() => parsePolicyFile('tenant a\ntenant a')).toThrow(/appears twice/);
    expect(() => parsePolicyFile('tenant a b')).toThrow(/invalid tenant id/);
    expect(() => parsePolicyFile('{ "acme": {} }')).toThrow(/"tenants"/);
    expect(() => parsePolicyFile(JSON.stringify({ tenants: { acme: { allow: ['tcp://x'] } } }))).toThrow(/tenants\.acme\.allow\[0\]/);
  });
});

describe('parseBudget', () => {
  it.each([
    ['10MiB per 60s', { bytes: 10485760, windowMs: 60000 }],
    ['1.5kb/500ms', { bytes: 1500, windowMs: 500 }],
    ['100 per 1h', { bytes: 100, windowMs: 3600000 }],
    ['1GB per 1m', { bytes: 1e9, windowMs: 60000 }],
  ])('%s', (t, v) => expect(parseBudget(t)).toEqual(v));
  it.each(['', '10', '10MiB', 'x per 1s', '1 per 0s', '1 per 1d'])('refuses %j', (t) => expect(parseBudget(t)).toBeUndefined());
});
