/**
 * RemoteEndpoint / LocalEndpoint (RFC 9622 §6.1) and the name canonicaliser
 * behind them (src/names.ts): valid forms, canonical fields, conflicts,
 * rejected inputs, builders and toString round trips.
 */
import { describe, expect, it } from 'vitest';
import { LocalEndpoint, RemoteEndpoint, type RemoteEndpointInit } from '../../src/endpoints.js';
import { canonicalHostName, parseIpLiteral } from '../../src/names.js';

type Want = Partial<Record<'hostName' | 'ipAddress' | 'zone' | 'port' | 'scheme' | 'path' | 'service' | 'interface', unknown>> & { isIpLiteral?: boolean };

function expectFields(ep: RemoteEndpoint | LocalEndpoint, want: Want): void {
  const got: Record<string, unknown> = { ...ep.toJSON(), isIpLiteral: ep.isIpLiteral };
  for (const [k, v] of Object.entries(want)) expect(got[k], k).toEqual(v);
}

describe('RemoteEndpoint.from(string)', () => {
  it.each<[string, Want]>([
    ['wss://example.com:8443/chat', { hostName: 'example.com', port: 8443, scheme: 'wss', path: '/chat', isIpLiteral: false }],
    ['wss://Example.COM/chat?room=1', { hostName: 'example.com', port: 443, scheme: 'wss', path: '/chat?room=1' }],
    ['tcp://host:1', { hostName: 'host', port: 1, scheme: 'tcp', path: '/' }],
    ['tcp://host', { hostName: 'host', port: undefined, scheme: 'tcp' }],
    ['udp://[::1]:9', { ipAddress: '::1', port: 9, scheme: 'udp', isIpLiteral: true }],
    ['UDP://[0:0:0:0:0:0:0:1]:9', { ipAddress: '::1', scheme: 'udp' }],
    ['https://example.com', { hostName: 'example.com', port: 443, scheme: 'https', path: '/' }],
    ['http://example.com/a#frag', { port: 80, path: '/a' }],
    ['https://example.com?x=1', { path: '/?x=1' }],
    ['https://bücher.de/café', { hostName: 'xn--bcher-kva.de', path: '/caf%C3%A9' }],
    ['https://[fe80::1%25eth0]:8443/', { ipAddress: 'fe80::1', zone: 'eth0', port: 8443 }],
    ['http://127.0.0.1:8080/x', { ipAddress: '127.0.0.1', port: 8080, isIpLiteral: true }],
    ['example.com:443', { hostName: 'example.com', port: 443, scheme: undefined, path: '/' }],
    ['EXAMPLE.com.', { hostName: 'example.com', port: undefined }],
    ['[::1]:80', { ipAddress: '::1', port: 80 }],
    ['[2001:DB8::0:1]', { ipAddress: '2001:db8::1', port: undefined }],
    ['::1', { ipAddress: '::1' }],
    ['fe80::1%eth0', { ipAddress: 'fe80::1', zone: 'eth0' }],
    ['[fe80::1%eth0]:80', { ipAddress: 'fe80::1', zone: 'eth0', port: 80 }],
    ['::ffff:7f00:1', { ipAddress: '::ffff:127.0.0.1' }],
    ['192.0.2.21', { ipAddress: '192.0.2.21', isIpLiteral: true }],
    ['192.0.2.21:0', { ipAddress: '192.0.2.21', port: 0 }],
    ['localhost:65535', { hostName: 'localhost', port: 65535 }],
    ['my_host.internal', { hostName: 'my_host.internal' }],
  ])('%s', (text, want) => {
    expectFields(RemoteEndpoint.from(text), want);
  });

  it.each<[string, typeof TypeError | typeof RangeError, RegExp]>([
    ['', TypeError, /empty/],
    ['http://user:pw@example.com/', TypeError, /user information/],
    ['http://example.com\\evil.com', TypeError, /backslash/],
    ['exa mple.com', TypeError, /whitespace/],
    ['example.com\u0000.evil', TypeError, /control/],
    ['example.com\t', TypeError, /whitespace/],
    ['host:65536', RangeError, /port/],
    ['host:99999', RangeError, /port/],
    ['host:', TypeError, /invalid port/],
    ['host:80a', TypeError, /invalid port/],
    ['host:-1', TypeError, /invalid port/],
    ['wss://example.com/#x', TypeError, /fragment/],
    ['http:///path', TypeError, /no host/],
    ['http://::1/', TypeError, /brackets/],
    ['http://[::1/', TypeError, /unclosed/],
    ['http://[1.2.3.4]/', TypeError, /IPv6/],
    ['http://[fe80::1%eth0]/', TypeError, /%25/],
    ['[fe80::1%bad zone]:1', TypeError, /whitespace/],
    ['[fe80::1%a/b]:1', TypeError, /zone/],
    ['1.2.3.4%eth0', TypeError, /zone/],
    ['127.1', TypeError, /number/],
    ['0x7f.0.0.1', TypeError, /number/],
    ['017.0.0.1', TypeError, /number/],
    ['example.123', TypeError, /number/],
    ['a..b', TypeError, /empty label/],
    ['.', TypeError, /dot/],
    [`${'a'.repeat(64)}.com`, TypeError, /63/],
    [`${'a.'.repeat(127)}com`, TypeError, /253/],
    ['-lead.com', TypeError, /label/],
    ['trail-.com', TypeError, /label/],
    ['xn--zz.com', TypeError, /internationalised/],
    ['ex\u200bample.com', TypeError, /invisible/],
    ['ex\u0378ample.com', TypeError, /invisible/],
    ['a%41.com', TypeError, /not allowed/],
    ['example.com/path', TypeError, /not allowed/],
    ['*.example.com', TypeError, /not allowed/],
    ['http://example.com/<script>', TypeError, /not allowed in a URL path/],
    ['http://example.com/%zz', TypeError, /percent/],
    ['http://example.com/\ud800', TypeError, /surrogate/],
    ['1::2:3:4:5:6:7:8', TypeError, /neither/],
  ])('rejects %j', (text, cls, message) => {
    expect(() => RemoteEndpoint.from(text)).toThrow(cls);
    expect(() => RemoteEndpoint.from(text)).toThrow(message);
  });
});

describe('RemoteEndpoint.from(init)', () => {
  it.each<[RemoteEndpointInit, Want]>([
    [{ hostName: 'Example.com', port: 443 }, { hostName: 'example.com', port: 443, isIpLiteral: false }],
    [{ hostName: 'example.com', service: 'HTTPS' }, { port: 443, service: 'https' }],
    [{ hostName: 'example.com', service: 'https', port: 8443 }, { port: 8443, service: 'https' }],
    [{ ipAddress: '2001:db8:4920:e29d:a420:7461:7073:a', port: 443 }, { ipAddress: '2001:db8:4920:e29d:a420:7461:7073:a', isIpLiteral: true }],
    [{ ipAddress: new Uint8Array([192, 0, 2, 21]) }, { ipAddress: '192.0.2.21' }],
    [{ ipAddress: new Uint8Array([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]) }, { ipAddress: '2001:db8::1' }],
    [{ hostName: '127.0.0.1', port: 1 }, { hostName: undefined, ipAddress: '127.0.0.1', isIpLiteral: true }],
    [{ hostName: 'svc.example', ipAddress: '192.0.2.1' }, { hostName: 'svc.example', ipAddress: '192.0.2.1', isIpLiteral: false }],
    [{ url: 'https://a.example/x', hostName: 'A.example.' }, { hostName: 'a.example', path: '/x' }],
    [{ url: 'https://192.0.2.1/', hostName: 'sni.example' }, { hostName: 'sni.example', ipAddress: '192.0.2.1' }],
    [{ url: 'https://a.example:8443', port: 8443 }, { port: 8443 }],
    [{ url: 'wss://a.example', path: '/chat', subprotocols: ['chat.v1', 'chat.v2'] }, { path: '/chat', port: 443 }],
    [{ hostName: 'a.example', scheme: 'WSS' }, { scheme: 'wss', port: 443 }],
    [{ ipAddress: 'fe80::1%eth0', interface: 'eth0' }, { zone: 'eth0', interface: 'eth0' }],
    [{ hostName: 'a.example', interface: 'Ethernet 2' }, { interface: 'Ethernet 2' }],
    [{ hostName: 'a.example', interface: 'R\u00e9seau 2' }, { interface: 'R\u00e9seau 2' }],
  ])('%j', (init, want) => {
    expectFields(RemoteEndpoint.from(init), want);
  });

  it.each<[unknown, typeof TypeError | typeof RangeError, RegExp]>([
    [{ hostName: 'a.example', url: 'https://b.example' }, TypeError, /hostName.*url/],
    [{ ipAddress: '192.0.2.1', url: 'http://192.0.2.2' }, TypeError, /ipAddress.*url/],
    [{ ipAddress: '192.0.2.1', hostName: '192.0.2.2' }, TypeError, /ipAddress.*hostName/],
    [{ url: 'https://a.example:1', port: 2 }, TypeError, /port.*url/],
    [{ url: 'https://a.example', scheme: 'wss' }, TypeError, /scheme.*url/],
    [{ url: 'https://a.example/x', path: '/y' }, TypeError, /path.*url/],
    [{ ipAddress: 'fe80::1%eth0', interface: 'eth1' }, TypeError, /interface.*zone/],
    [{ hostName: 'a.example', port: 65536 }, RangeError, /port/],
    [{ hostName: 'a.example', port: -1 }, RangeError, /port/],
    [{ hostName: 'a.example', port: 1.5 }, RangeError, /port/],
    [{ hostName: 'a.example', port: '80' }, TypeError, /port must be a number/],
    [{ hostName: 'a.example', service: 'no-such-service' }, RangeError, /service/],
    [{ hostName: 'a.example', service: 443 }, TypeError, /service/],
    [{ hostName: 'bad host' }, TypeError, /hostName/],
    [{ hostName: 42 }, TypeError, /hostName/],
    [{ ipAddress: '999.1.1.1' }, TypeError, /ipAddress/],
    [{ ipAddress: new Uint8Array(5) }, TypeError, /ipAddress/],
    [{ url: 'https://u@a.example/' }, TypeError, /user information/],
    [{ url: 'not a url' }, TypeError, /url/],
    [{ url: 5 }, TypeError, /url/],
    [{ hostName: 'a.example', path: 'chat' }, TypeError, /path/],
    [{ hostName: 'a.example', scheme: '1x' }, TypeError, /scheme/],
    [{ hostName: 'a.example', subprotocols: ['a b'] }, TypeError, /subprotocols\[0\]/],
    [{ hostName: 'a.example', subprotocols: ['x', 'x'] }, TypeError, /subprotocols\[1\]/],
    [{ hostName: 'a.example', subprotocols: 'chat' }, TypeError, /subprotocols/],
    [{ hostName: 'a.example', interface: ' eth0' }, TypeError, /interface/],
    [{ hostName: 'a.example', path: '/a\u00a0b' }, TypeError, /invisible/],
    [{ host: 'a.example' }, TypeError, /hostName\?/],
    [{ port: 443 }, TypeError, /needs a hostName/],
    [{}, TypeError, /needs a hostName/],
    [null, TypeError, /init object/],
    [42, TypeError, /init object/],
    [['a.example'], TypeError, /init object/],
  ])('rejects %j', (init, cls, message) => {
    expect(() => RemoteEndpoint.from(init as RemoteEndpointInit)).toThrow(cls);
    expect(() => RemoteEndpoint.from(init as RemoteEndpointInit)).toThrow(message);
  });

  it('is frozen and passes through an existing endpoint', () => {
    const r = RemoteEndpoint.from({ hostName: 'a.example', subprotocols: ['x'] });
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.subprotocols)).toBe(true);
    expect(RemoteEndpoint.from(r)).toBe(r);
    expect(() => {
      (r as { port?: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('builders, toString and round trips', () => {
  it('with…() return new endpoints and leave the original alone (RFC 9622 §6.1)', () => {
    const r = RemoteEndpoint.from('wss://example.com/chat');
    expect(r.withPort(9).toString()).toBe('wss://example.com:9/chat');
    expect(r.withHostName('Other.example').url).toBe('wss://other.example/chat');
    expect(r.withPath('/x').path).toBe('/x');
    expect(r.withScheme('ws').port).toBe(80);
    expect(r.withSubprotocols(['a']).subprotocols).toEqual(['a']);
    expect(r.withIpAddress('::1').toJSON()).toMatchObject({ hostName: 'example.com', ipAddress: '::1' });
    expect(r.withInterface('eth0').interface).toBe('eth0');
    expect(RemoteEndpoint.from({ hostName: 'a.example', service: 'https' }).withService('http').port).toBe(80);
    expect(RemoteEndpoint.from({ hostName: 'a.example', port: 1 }).withService('http').port).toBe(80);
    expect(r.toString()).toBe('wss://example.com/chat');
    expect(() => r.withPort(70000)).toThrow(RangeError);
  });

  it.each([
    'wss://example.com:8443/chat', 'wss://example.com/chat', 'tcp://host:1', 'udp://[::1]:9', 'https://[fe80::1%25eth0]/x?y',
    'example.com:443', '[::1]:80', '[fe80::1%eth0]:80', '192.0.2.1', '192.0.2.1:7', 'host', '[::ffff:127.0.0.1]:1',
  ])('%s → toString → from gives equal fields', (text) => {
    const a = RemoteEndpoint.from(text);
    const b = RemoteEndpoint.from(a.toString());
    expect(b.toJSON()).toEqual(a.toJSON());
    expect(b.equals(a)).toBe(true);
    expect(RemoteEndpoint.from(a.toInit()).equals(a)).toBe(true);
  });

  it('url is the endpoint as a URL only when it has a scheme', () => {
    expect(RemoteEndpoint.from('https://a.example:443/').url).toBe('https://a.example/');
    expect(RemoteEndpoint.from('a.example:443').url).toBeUndefined();
  });
});

describe('LocalEndpoint', () => {
  it.each<[unknown, Want, string]>([
    [{ ipAddress: '::1', port: 0 }, { ipAddress: '::1', port: 0 }, '[::1]:0'],
    [{ interface: 'en0' }, { interface: 'en0', port: undefined }, '*'],
    [{ interface: 'en0', port: 443 }, { interface: 'en0', port: 443 }, ':443'],
    ['127.0.0.1:8080', { ipAddress: '127.0.0.1', port: 8080 }, '127.0.0.1:8080'],
    [':8080', { port: 8080 }, ':8080'],
    ['*', { port: undefined, ipAddress: undefined }, '*'],
    [0, { port: 0 }, ':0'],
    [undefined, { port: undefined }, '*'],
    ['tcp://[::1]:0', { ipAddress: '::1', port: 0, scheme: 'tcp' }, 'tcp://[::1]:0'],
    [{ hostName: 'localhost', service: 'http' }, { hostName: 'localhost', port: 80 }, 'localhost:80'],
  ])('%j', (init, want, text) => {
    const l = LocalEndpoint.from(init as never);
    expectFields(l, want);
    expect(l.toString()).toBe(text);
    // The string carries address, port and scheme (not interface or service).
    expect(LocalEndpoint.from(l.toString()).toString()).toBe(text);
    expect(LocalEndpoint.from(l.toInit()).equals(l)).toBe(true);
    expect(new LocalEndpoint(init as never).equals(l)).toBe(true);
    expect(Object.isFrozen(l)).toBe(true);
  });

  it.each<[unknown, RegExp]>([
    [{ port: 70000 }, /port/], [70000, /port/], ['ws://[::1]:0/x', /path/], [{ url: 'tcp://x:1' }, /unknown local endpoint field/],
    [{ path: '/' }, /unknown/], [':99999', /port/], [null, /init object/], [{ ipAddress: 'x' }, /ipAddress/],
  ])('rejects %j', (init, message) => {
    expect(() => LocalEndpoint.from(init as never)).toThrow(message);
  });

  it('builders', () => {
    const l = LocalEndpoint.from({ ipAddress: '::1' });
    expect(l.withPort(5).toString()).toBe('[::1]:5');
    expect(l.withHostName('localhost').hostName).toBe('localhost');
    expect(l.withIpAddress('127.0.0.1').ipAddress).toBe('127.0.0.1');
    expect(l.withInterface('lo').interface).toBe('lo');
    expect(l.withService('https').port).toBe(443);
  });
});

describe('names.ts canonical forms', () => {
  it.each([
    ['::1', '::1'], ['0:0:0:0:0:0:0:1', '::1'], ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:0db8::0001', '2001:db8::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], ['::', '::'], ['1::', '1::'], ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'], ['::ffff:0102:0304', '::ffff:1.2.3.4'], ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
  ])('IPv6 %s → %s (RFC 5952)', (text, canonical) => {
    expect(parseIpLiteral(text)?.address).toBe(canonical);
  });

  it.each([
    ['Bücher.DE.', 'xn--bcher-kva.de'], ['faß.de', 'xn--fa-hia.de'], ['Ⅻ.com', 'xii.com'], ['EXAMPLE.COM', 'example.com'],
    ['123.example.com', '123.example.com'], ['1e10.com', '1e10.com'], ['a.b.c.', 'a.b.c'],
  ])('host name %s → %s', (text, canonical) => {
    expect(canonicalHostName(text, 'hostName')).toBe(canonical);
  });

  it('rejects non-canonical IPv4 forms that isIP refuses', () => {
    for (const t of ['01.2.3.4', '1.2.3.04', '256.1.1.1']) {
      expect(parseIpLiteral(t)).toBeUndefined();
      expect(() => canonicalHostName(t, 'hostName')).toThrow(TypeError);
    }
  });
});
