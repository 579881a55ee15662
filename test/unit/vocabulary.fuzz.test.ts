/**
 * Property-based tests for the vocabulary (fast-check): whatever a caller
 * passes, TransportProperties, RemoteEndpoint/LocalEndpoint and
 * SecurityParameters fail only with TypeError, RangeError or
 * InvalidPropertiesError; canonical forms are stable; endpoints survive
 * toString → from.
 */
import { SocketAddress } from 'node:net';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InvalidPropertiesError } from '../../src/errors.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { canonicalHostName, parseIpLiteral } from '../../src/names.js';
import { canonicalHost, formatIPv6, parseIPv6 } from '../../src/policy/canonical.js';
import { PREFERENCE_PROPERTIES, TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';

const RUNS = { numRuns: 300 };

function onlyExpectedErrors(fn: () => unknown, allowInvalidProperties = false): void {
  try {
    fn();
  } catch (err) {
    const okClass = err instanceof TypeError || err instanceof RangeError || (allowInvalidProperties && err instanceof InvalidPropertiesError);
    if (!okClass) throw new Error(`unexpected ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`, { cause: err });
    expect((err as Error).message.length).toBeGreaterThan(0);
  }
}

const anything = fc.anything({
  withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true,
  withTypedArray: true, withSparseArray: true, withObjectString: true, withUnicodeString: true,
});

const NAMES = [
  ...PREFERENCE_PROPERTIES, 'interface', 'pvd', 'multipath', 'advertisesAltaddr', 'direction', 'safelyReplayable',
  'tcp.userTimeoutValue', 'tcp.userTimeoutEnabled', 'udp.recvBufferSize', 'ws.maxPayload', 'tcp.unknown', 'RELIABILITY', '__proto__',
];
const propValue = fc.oneof(
  fc.constantFrom('require', 'prefer', 'noPreference', 'avoid', 'prohibit', 'Require', 'active', 'unidirectional-send', 'x'),
  fc.array(fc.tuple(fc.constantFrom('require', 'avoid', 'prohibit', 'bogus'), fc.string({ maxLength: 6 })), { maxLength: 3 }),
  fc.boolean(), fc.integer(), fc.double(), anything,
);

describe('TransportProperties never fails unexpectedly', () => {
  it('constructor with anything', () => {
    fc.assert(fc.property(anything, (init) => onlyExpectedErrors(() => new TransportProperties(init as never), true)), RUNS);
  });

  it('constructor with real names and arbitrary values; success means a valid, frozen-able object', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...NAMES), propValue, { maxKeys: 6 }), (init) => {
        onlyExpectedErrors(() => {
          const p = new TransportProperties(init);
          const f = p.freeze();
          expect(new TransportProperties(f.toJSON()).toJSON()).toEqual(f.toJSON());
          for (const n of PREFERENCE_PROPERTIES) expect(['require', 'prefer', 'noPreference', 'avoid', 'prohibit']).toContain(p.preference(n));
        }, true);
      }),
      RUNS,
    );
  });

  it('set/get/preference with anything', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...NAMES), anything), anything, (name, value) => {
        const p = new TransportProperties();
        onlyExpectedErrors(() => p.set(name as string, value), true);
        onlyExpectedErrors(() => p.get(name as string), true);
        onlyExpectedErrors(() => p.preference(name as never), true);
        onlyExpectedErrors(() => p.namespaced(name as string), true);
      }),
      RUNS,
    );
  });
});

describe('endpoints never fail unexpectedly', () => {
  const hostish = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((v) => `[${v}]`), fc.string({ maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 }));
  const urlish = fc.tuple(
    fc.constantFrom('', 'http://', 'https://', 'wss://', 'tcp://', 'udp://', 'x+y://', '//'),
    fc.option(fc.constantFrom('user@', 'a:b@'), { nil: undefined }),
    hostish,
    fc.option(fc.oneof(fc.integer({ min: -5, max: 70000 }).map((n) => `:${n}`), fc.constantFrom(':', ':x', '::')), { nil: undefined }),
    fc.option(fc.oneof(fc.webPath(), fc.string({ maxLength: 10 }), fc.constantFrom('#f', '?q', '/\\', '/%zz')), { nil: undefined }),
  ).map(([s, u, h, p, path]) => `${s}${u ?? ''}${h}${p ?? ''}${path ?? ''}`);

  it('RemoteEndpoint.from with anything', () => {
    fc.assert(fc.property(anything, (x) => onlyExpectedErrors(() => RemoteEndpoint.from(x as never))), RUNS);
  });

  it('RemoteEndpoint.from / LocalEndpoint.from with URL-like strings; success round-trips', () => {
    fc.assert(
      fc.property(fc.oneof(urlish, fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string()), (text) => {
        onlyExpectedErrors(() => {
          const r = RemoteEndpoint.from(text);
          expect(RemoteEndpoint.from(r.toString()).toJSON()).toEqual(r.toJSON());
        });
        onlyExpectedErrors(() => {
          const l = LocalEndpoint.from(text);
          expect(LocalEndpoint.from(l.toString()).toJSON()).toEqual(l.toJSON());
        });
      }),
      RUNS,
    );
  });

  it('RemoteEndpoint.from with init objects of arbitrary field values', () => {
    const field = fc.record(
      {
        hostName: fc.oneof(hostish, anything), ipAddress: fc.oneof(fc.ipV4(), fc.ipV6(), anything), port: fc.oneof(fc.integer({ min: -1, max: 70000 }), anything),
        service: fc.oneof(fc.constantFrom('https', 'http', 'nope'), anything), url: fc.oneof(urlish, anything), path: fc.oneof(fc.webPath(), anything),
        scheme: fc.oneof(fc.constantFrom('wss', 'tcp', '1x'), anything), interface: fc.oneof(fc.constantFrom('eth0', 'en 0', ''), anything),
        subprotocols: fc.oneof(fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), anything),
      },
      { requiredKeys: [] },
    );
    fc.assert(fc.property(field, (init) => onlyExpectedErrors(() => RemoteEndpoint.from(init as never))), RUNS);
  });

  it('valid endpoints survive toString → from with equal fields', () => {
    const host = fc.oneof(
      fc.domain().map((hostName) => ({ hostName })),
      fc.ipV4().map((ipAddress) => ({ ipAddress })),
      fc.ipV6().map((ipAddress) => ({ ipAddress })),
      // A zone only where it names a link: link-local unicast (and multicast).
      fc.tuple(fc.nat(0xffff), fc.nat(0xffff), fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/)).map(([a, b, zone]) => ({ ipAddress: `fe80::${a.toString(16)}:${b.toString(16)}%${zone}` })),
    );
    const ep = fc.record({
      host,
      port: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
      scheme: fc.option(fc.constantFrom('wss', 'ws', 'https', 'http', 'tcp', 'udp', 'quic'), { nil: undefined }),
      path: fc.option(fc.webPath().filter((p) => p.startsWith('/')), { nil: undefined }),
    });
    fc.assert(
      fc.property(ep, ({ host: h, port, scheme, path }) => {
        const init = { ...h, ...(port === undefined ? {} : { port }), ...(scheme === undefined ? {} : { scheme, ...(path === undefined ? {} : { path }) }) };
        const a = RemoteEndpoint.from(init);
        const b = RemoteEndpoint.from(a.toString());
        expect(b.toJSON()).toEqual(a.toJSON());
        expect(RemoteEndpoint.from(a.toInit()).equals(a)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe('canonical forms', () => {
  it('IPv6 text is RFC 5952 (checked against the WHATWG serialiser) and idempotent', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const ip = parseIpLiteral(text);
        expect(ip?.family).toBe(6);
        const canonical = ip!.address;
        expect(parseIpLiteral(canonical)?.address).toBe(canonical);
        // One spelling with the policy's canonicaliser, the one a socket reports; all hex, the WHATWG one.
        expect(canonicalHost(text)).toMatchObject({ ok: true, host: canonical });
        expect(canonical).toBe(new SocketAddress({ address: text, family: 'ipv6' }).address);
        expect(formatIPv6(parseIPv6(canonical)!, false)).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });

  it('a valid domain name canonicalises to itself in lowercase', () => {
    fc.assert(fc.property(fc.domain(), (d) => {
      expect(canonicalHostName(d.toUpperCase(), 'h')).toBe(d.toLowerCase());
    }), RUNS);
  });
});

describe('SecurityParameters never fails unexpectedly', () => {
  it('with anything, and with real fields holding arbitrary values', () => {
    const init = fc.oneof(
      anything,
      fc.dictionary(
        fc.constantFrom('allowedProtocols', 'ca', 'certificate', 'key', 'pinnedServerCertificates', 'alpn', 'serverName', 'verify', 'psk', 'sessionCacheLimit', 'groups'),
        fc.oneof(anything, fc.array(fc.oneof(fc.string(), fc.constantFrom('tls1.2', 'tls1.3')), { maxLength: 3 })),
        { maxKeys: 4 },
      ),
    );
    fc.assert(
      fc.property(init, (x) => {
        onlyExpectedErrors(() => new SecurityParameters(x as never));
        onlyExpectedErrors(() => SecurityParameters.opportunistic(x as never));
      }),
      RUNS,
    );
  });
});
