/**
 * SecurityParameters (RFC 9622 §6.3): modes, defaults, validation of every
 * field with errors naming it, pin normalisation, freezing and redaction.
 */
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SecurityParameters, normalizeFingerprint, type SecurityInit } from '../../src/security.js';

// Only the PEM armour is checked here; the TLS driver's tests use real certificates.
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
const EC_KEY = '-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n';
const DIGEST = createHash('sha256').update('a certificate').digest();
const HEX = DIGEST.toString('hex');
const COLONS = HEX.toUpperCase().match(/../g)!.join(':');

describe('modes (RFC 9622 §6.3)', () => {
  it.each([
    ['required', () => new SecurityParameters(), true, false, true],
    ['required', () => new SecurityParameters({}), true, false, true],
    ['disabled', () => SecurityParameters.disabled(), false, true, false],
    ['opportunistic', () => SecurityParameters.opportunistic(), true, true, false],
    ['opportunistic', () => SecurityParameters.opportunistic({ alpn: ['h2'], certificate: CERT, key: KEY }), true, true, false],
  ] as const)('%s', (mode, make, encrypted, unencrypted, authenticates) => {
    const s = make();
    expect(s.mode).toBe(mode);
    expect(s.allowsEncrypted()).toBe(encrypted);
    expect(s.allowsUnencrypted()).toBe(unencrypted);
    expect(s.authenticatesPeer).toBe(authenticates);
    expect(Object.isFrozen(s)).toBe(true);
  });

  it('a factory mode does not leak into the next plain construction', () => {
    expect(() => SecurityParameters.opportunistic({ rejectUnauthorized: false } as never)).toThrow(TypeError);
    expect(new SecurityParameters().mode).toBe('required');
  });

  it.each(['ca', 'pinnedServerCertificates', 'verify'] as const)('opportunistic refuses %s (it does not authenticate the peer)', (field) => {
    const init = { ca: CERT, pinnedServerCertificates: [HEX], verify: () => true }[field];
    expect(() => SecurityParameters.opportunistic({ [field]: init } as never)).toThrow(new RegExp(`security.${field}.*opportunistic`));
  });
});

describe('defaults and accepted values', () => {
  it('defaults', () => {
    const s = new SecurityParameters();
    expect(s.allowedProtocols).toEqual(['tls1.2', 'tls1.3']);
    expect(s.tlsVersions()).toEqual({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
    expect(s.pinnedServerCertificates).toEqual([]);
    expect(s.alpn).toBeUndefined();
    expect(s.ca).toBeUndefined();
    expect(s.verify).toBeUndefined();
  });

  it('keeps every field, frozen, with Buffers copied', () => {
    const caBuf = Buffer.from(CERT);
    const verify = () => true;
    const identityChallenge = () => undefined;
    const s = new SecurityParameters({
      allowedProtocols: ['tls1.3'], ca: [CERT, caBuf], certificate: CERT, key: EC_KEY, passphrase: 'pw', pinnedServerCertificates: [HEX, COLONS],
      alpn: ['h2', 'http/1.1'], serverName: 'Example.COM.', verify, identityChallenge, ciphersuites: ['TLS_AES_128_GCM_SHA256'],
      groups: ['X25519', 'P-256'], signatureAlgorithms: ['ecdsa_secp256r1_sha256'], sessionCacheLimit: 0, sessionLifetimeSeconds: 3600,
      psk: { identity: 'client1', key: new Uint8Array([1, 2, 3]) },
    });
    expect(s.tlsVersions()).toEqual({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
    expect(s.ca).toHaveLength(2);
    caBuf.fill(0);
    expect((s.ca![1] as Buffer).toString()).toBe(CERT);
    expect(s.pinnedServerCertificates).toEqual([HEX]);
    expect(s.serverName).toBe('example.com');
    expect(s.verify).toBe(verify);
    expect(s.identityChallenge).toBe(identityChallenge);
    expect(s.psk?.key).toEqual(Buffer.from([1, 2, 3]));
    for (const v of [s.allowedProtocols, s.ca, s.alpn, s.pinnedServerCertificates, s.psk, s.groups]) expect(Object.isFrozen(v)).toBe(true);
    expect(() => {
      (s as { mode: string }).mode = 'disabled';
    }).toThrow(TypeError);
  });

  it('toJSON and inspect never show keys or PSKs', () => {
    const s = new SecurityParameters({ certificate: CERT, key: KEY, psk: { identity: 'id', key: Buffer.from('secret-psk') } });
    const text = `${JSON.stringify(s)} ${inspect(s)}`;
    expect(text).toContain('[redacted]');
    expect(text).not.toContain('MIIE');
    expect(text).not.toContain('secret-psk');
    expect(text).not.toContain(Buffer.from('secret-psk').toString('hex'));
  });
});

describe('pinned certificates', () => {
  it.each([
    ['lowercase hex', HEX], ['uppercase hex', HEX.toUpperCase()], ['colon hex (Node fingerprint256)', COLONS],
    ['base64', DIGEST.toString('base64')], ['base64 without padding', DIGEST.toString('base64').replace(/=+$/, '')],
    ['base64url', DIGEST.toString('base64url')],
  ])('%s normalises to lowercase hex', (_label, pin) => {
    expect(normalizeFingerprint(pin)).toBe(HEX);
    const s = new SecurityParameters({ pinnedServerCertificates: [pin] });
    expect(s.pinnedServerCertificates).toEqual([HEX]);
    expect(s.isPinned(COLONS)).toBe(true);
    expect(s.isPinned(createHash('sha256').update('other').digest('hex'))).toBe(false);
    expect(s.isPinned('garbage')).toBe(false);
  });

  it.each<[unknown, typeof TypeError | typeof RangeError]>([
    [HEX.slice(2), RangeError], [`${HEX}00`, RangeError], [createHash('sha1').update('x').digest('base64'), RangeError],
    ['zz'.repeat(32), RangeError], [`${HEX.slice(0, 2)}::${HEX.slice(2)}`, TypeError], ['sha256/abc def', TypeError], [42, TypeError],
  ])('rejects %j', (pin, cls) => {
    expect(() => new SecurityParameters({ pinnedServerCertificates: ['0'.repeat(64), pin as string] })).toThrow(cls);
    expect(() => new SecurityParameters({ pinnedServerCertificates: ['0'.repeat(64), pin as string] })).toThrow(/security\.pinnedServerCertificates\[1\]/);
  });
});

describe('validation names the field', () => {
  it.each<[SecurityInit | Record<string, unknown>, typeof TypeError | typeof RangeError, RegExp]>([
    [{ allowedProtocols: ['tls1.3', 'ssl3'] as never }, RangeError, /security\.allowedProtocols\[1\]/],
    [{ allowedProtocols: ['tls1.3', 'tls1.3'] }, TypeError, /security\.allowedProtocols\[1\] repeats/],
    [{ allowedProtocols: [] }, RangeError, /security\.allowedProtocols must name at least one/],
    [{ allowedProtocols: 'tls1.3' as never }, TypeError, /security\.allowedProtocols must be an array/],
    [{ ca: '/etc/ssl/ca.pem' }, TypeError, /security\.ca is not PEM.*path/],
    [{ ca: [CERT, 42] as never }, TypeError, /security\.ca\[1\]/],
    [{ ca: [] }, RangeError, /security\.ca must not be an empty array/],
    [{ certificate: CERT }, TypeError, /security\.certificate and security\.key/],
    [{ key: KEY }, TypeError, /security\.certificate and security\.key/],
    [{ certificate: KEY, key: KEY }, TypeError, /security\.certificate is not PEM/],
    [{ certificate: CERT, key: CERT }, TypeError, /security\.key is not PEM/],
    [{ passphrase: 'x' }, TypeError, /security\.passphrase needs security\.key/],
    [{ alpn: [''] }, RangeError, /security\.alpn\[0\]/],
    [{ alpn: ['x'.repeat(256)] }, RangeError, /security\.alpn\[0\]/],
    [{ alpn: ['h2', 2] as never }, TypeError, /security\.alpn\[1\]/],
    [{ serverName: '192.0.2.1' }, TypeError, /security\.serverName must be a host name, not an IP/],
    [{ serverName: 'bad name' }, TypeError, /security\.serverName/],
    [{ serverName: 7 as never }, TypeError, /security\.serverName/],
    [{ verify: true as never }, TypeError, /security\.verify must be a function/],
    [{ identityChallenge: 'x' as never }, TypeError, /security\.identityChallenge must be a function/],
    [{ ciphersuites: ['TLS AES'] }, TypeError, /security\.ciphersuites\[0\]/],
    [{ groups: [] }, RangeError, /security\.groups must not be empty/],
    [{ sessionCacheLimit: -1 }, RangeError, /security\.sessionCacheLimit/],
    [{ sessionCacheLimit: 1.5 }, RangeError, /security\.sessionCacheLimit/],
    [{ sessionLifetimeSeconds: '1' as never }, TypeError, /security\.sessionLifetimeSeconds/],
    [{ psk: { identity: '', key: Buffer.from('k') } }, TypeError, /security\.psk\.identity/],
    [{ psk: { identity: 'id', key: 'k' as never } }, TypeError, /security\.psk\.key/],
    [{ psk: null as never }, TypeError, /security\.psk/],
    [{ rejectUnauthorized: false }, TypeError, /rejectUnauthorized is not an option.*pin/],
    [{ insecure: true }, TypeError, /unknown security parameter "insecure"/],
  ])('%j', (init, cls, message) => {
    expect(() => new SecurityParameters(init as SecurityInit)).toThrow(cls);
    expect(() => new SecurityParameters(init as SecurityInit)).toThrow(message);
  });

  it.each([[[]], ['required'], [42]])('rejects a non-object init %j', (init) => {
    expect(() => new SecurityParameters(init as never)).toThrow(TypeError);
  });

  it('treats undefined fields as absent', () => {
    expect(new SecurityParameters({ ca: undefined, alpn: undefined }).ca).toBeUndefined();
  });
});
