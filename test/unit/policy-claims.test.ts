/**
 * Signed claims: grants only from a verified token of a trusted issuer for
 * this very tenant; every forgery and every expired or premature token is a
 * `policy-error`, and decoding is never mistaken for verifying.
 */
import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, UnsecuredJWT, base64url, decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { PolicyDeniedError } from '../../src/errors.js';
import { Host } from '../../src/policy/host.js';
import type { PolicyRequest } from '../../src/policy/types.js';

const NOW = Date.UTC(2030, 0, 1) ; // fixed wall clock, ms
const sec = Math.floor(NOW / 1000);
const ISS = 'https://issuer.example';

const ed = generateKeyPairSync('ed25519');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('ed25519');

const grant = { allow: ['tcp://db.internal.example:5432', 'tcp://10.9.0.0/16:5432'] };

interface SignOptions { iss?: string; sub?: string | undefined; exp?: number | undefined; nbf?: number; taps?: unknown }

/** Sign a claims token; `sub: undefined` / `exp: undefined` leave the claim out. */
async function sign(key: KeyObject, alg: string, o: SignOptions = {}): Promise<string> {
  const iss = o.iss ?? ISS;
  const sub = 'sub' in o ? o.sub : 'acme';
  const exp = 'exp' in o ? o.exp : sec + 3600;
  const nbf = o.nbf;
  const taps = 'taps' in o ? o.taps : grant;
  const extra = {};
  const jwt = new SignJWT({ taps, ...extra } as Record<string, unknown>).setProtectedHeader({ alg }).setIssuer(iss).setIssuedAt(sec);
  if (sub !== undefined) jwt.setSubject(sub);
  if (exp !== undefined) jwt.setExpirationTime(exp);
  if (nbf !== undefined) jwt.setNotBefore(nbf);
  return jwt.sign(key);
}

function makeHost(now = () => NOW) {
  const host = new Host({
    resolver: async () => [],
    now,
    trustedIssuers: [
      { issuer: ISS, keys: { keys: [{ ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed' }, { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec' }] } },
      { issuer: 'https://rsa.example', keys: rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string, algorithms: ['RS256'] },
      { issuer: 'https://keyobject.example', keys: ed.publicKey },
    ],
  });
  host.setPolicy('acme', 'allow tcp://api.example.com:443\ndeny tcp://10.9.9.0/24:*');
  return host;
}

const db: PolicyRequest = { use: 'connect', protocol: 'tcp', host: 'db.internal.example', address: '93.184.216.34', port: 5432 };
const net: PolicyRequest = { use: 'connect', protocol: 'tcp', address: '10.9.1.1', port: 5432 };
const denied: PolicyRequest = { use: 'connect', protocol: 'tcp', address: '10.9.9.9', port: 5432 };

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PolicyDeniedError);
  const d = (err as PolicyDeniedError).decision;
  expect(d).toMatchObject({ allow: false, code: 'policy-error' });
  return d.allow ? '' : d.reason;
}

describe('claims: valid tokens grant rules', () => {
  it.each([
    ['EdDSA via JWK set', () => sign(ed.privateKey, 'EdDSA')],
    ['ES256 via JWK set', () => sign(ec.privateKey, 'ES256')],
    ['RS256 via PEM', () => sign(rsa.privateKey, 'RS256', { iss: 'https://rsa.example' })],
    ['EdDSA via KeyObject', () => sign(ed.privateKey, 'EdDSA', { iss: 'https://keyobject.example' })],
  ])('%s', async (_n, make) => {
    const host = makeHost();
    const plain = await host.tenant('acme');
    const withClaims = await host.tenant('acme', { claims: await make() });
    expect((await plain.guard.decide(db)).allow).toBe(false);
    expect(await withClaims.guard.decide(db)).toMatchObject({ allow: true, rule: 'tcp://db.internal.example:5432' });
    expect((await withClaims.guard.decide(net)).allow).toBe(true);
    expect(withClaims.claims).toMatchObject({ issuer: expect.any(String), subject: 'acme' });
  });

  it('claims never override the tenant policy’s deny', async () => {
    const host = makeHost();
    const s = await host.tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA') });
    expect(await s.guard.decide(denied)).toMatchObject({ allow: false, code: 'denied' });
  });

  it('grants stop counting when the token expires, even on a live scope', async () => {
    let now = NOW;
    const host = makeHost(() => now);
    const s = await host.tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { exp: sec + 60 }) });
    expect((await s.guard.decide(db)).allow).toBe(true);
    now = NOW + 70_000;
    expect(await s.guard.decide(db)).toMatchObject({ allow: false, code: 'no-match' });
  });

  it('a tenant without a policy can still use claims grants', async () => {
    const host = makeHost();
    const s = await host.tenant('newcomer', { claims: await sign(ed.privateKey, 'EdDSA', { sub: 'newcomer' }) });
    expect((await s.guard.decide(db)).allow).toBe(true);
    expect(await s.guard.decide({ ...db, port: 1 })).toMatchObject({ allow: false, code: 'no-policy' });
  });
});

describe('claims: forgeries and bad tokens are policy-error', () => {
  it('wrong signature', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(other.privateKey, 'EdDSA') }))).toMatch(/signature/i);
  });

  it('payload swapped under a valid signature', async () => {
    const good = await sign(ed.privateKey, 'EdDSA', { taps: { allow: [] } });
    const [h, , sig] = good.split('.');
    const payload = base64url.encode(JSON.stringify({ ...decodeJwt(good), taps: { allow: ['*://@any:*'] } }));
    expect(await refusal(makeHost().tenant('acme', { claims: `${h}.${payload}.${sig}` }))).toMatch(/signature/i);
  });

  it('expired, beyond the clock tolerance', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { exp: sec - 10 }) }))).toMatch(/exp/);
  });

  it('expired within the clock tolerance is accepted', async () => {
    await expect(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { exp: sec - 2 }) })).resolves.toBeDefined();
  });

  it('not yet valid (nbf in the future)', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { nbf: sec + 600 }) }))).toMatch(/nbf/);
  });

  it('no exp at all', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { exp: undefined }) }))).toMatch(/exp/);
  });

  it('untrusted issuer', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { iss: 'https://evil.example' }) }))).toMatch(/not trusted/);
  });

  it('a trusted issuer name with another issuer’s key', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { iss: 'https://rsa.example' }) }))).toMatch(/alg|signature|key/i);
  });

  it('issued to another tenant, or to nobody', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { sub: 'globex' }) }))).toMatch(/sub/);
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { sub: undefined }) }))).toMatch(/sub/);
  });

  it('alg none (unsecured JWT)', async () => {
    const none = new UnsecuredJWT({ taps: grant }).setIssuer(ISS).setSubject('acme').setExpirationTime(sec + 3600).encode();
    expect(await refusal(makeHost().tenant('acme', { claims: none }))).toMatch(/alg|compact JWS/i);
  });

  it('HS256 signed with the public key as an HMAC secret (algorithm confusion)', async () => {
    const pem = ed.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const token = await new SignJWT({ taps: grant }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://keyobject.example')
      .setSubject('acme').setExpirationTime(sec + 3600).sign(createSecretKey(Buffer.from(pem)));
    expect(await refusal(makeHost().tenant('acme', { claims: token }))).toMatch(/alg/i);
  });

  it('garbage and truncated tokens', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: 'not-a-jwt' }))).toMatch(/compact JWS/);
    const good = await sign(ed.privateKey, 'EdDSA');
    expect(await refusal(makeHost().tenant('acme', { claims: good.slice(0, good.lastIndexOf('.') + 1) }))).toBeTruthy();
  });

  it('claims that try to deny, or grant an invalid rule', async () => {
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { taps: { allow: [], deny: ['tcp://*:*'] } }) }))).toMatch(/may only grant/);
    expect(await refusal(makeHost().tenant('acme', { claims: await sign(ed.privateKey, 'EdDSA', { taps: { allow: ['tcp://x:99999'] } }) }))).toMatch(/invalid rule/);
  });

  it('a decoded (unsigned) payload object is refused, never trusted', async () => {
    const decoded = decodeJwt(await sign(ed.privateKey, 'EdDSA'));
    await expect(makeHost().tenant('acme', { claims: decoded as never })).rejects.toThrow(TypeError);
  });
});

describe('claims: host configuration', () => {
  it('refuses secret keys, unknown algorithms and duplicate issuers', () => {
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: createSecretKey(Buffer.alloc(32)) }] })).toThrow(TypeError);
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: { keys: [{ kty: 'oct', k: 'AAAA' }] } }] })).toThrow(TypeError);
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: ed.publicKey, algorithms: ['HS256' as never] }] })).toThrow(RangeError);
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: ed.publicKey }, { issuer: 'x', keys: ed.publicKey }] })).toThrow(RangeError);
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: 'not a pem' }] })).toThrow(TypeError);
    // A malformed JWK set fails at configuration, although jose itself loads only when a token is verified.
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: { keys: [{ n: 'no kty' }] } as never }] })).toThrow(/malformed/);
    expect(() => new Host({ trustedIssuers: [{ issuer: 'x', keys: { keys: [null] } as never }] })).toThrow(TypeError);
  });
});
