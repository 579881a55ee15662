/**
 * Signed claims: a JWT that grants a tenant extra network rules, verified
 * against keys the host trusts (like wasmCloud's capability claims).
 *
 * Verification, never decoding, is what makes claims count: the signature
 * (EdDSA, ES256 or RS256 only, so `alg: none` and HMAC-with-a-public-key
 * confusion are impossible), the issuer (one of the host's trusted issuers),
 * `exp` (required) and `nbf` with a small clock tolerance, and `sub`, which
 * must be the tenant the scope is for — a token issued to tenant A grants
 * tenant B nothing. The token's `iss` is read before verification only to
 * pick which issuer's keys to verify with. Grants are allow rules only:
 *
 *     { "iss": "https://issuer.example", "sub": "acme", "exp": 1767225600,
 *       "taps": { "allow": ["tcp://db.internal.example:5432"] } }
 *
 * @example
 * const issuers = prepareIssuers([{ issuer: 'https://issuer.example', keys: publicKeyPem }]);
 * const claims = await verifyClaims(jwt, issuers, { tenant: 'acme', now: new Date(), clockTolerance: 5 });
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import type { CryptoKey, JSONWebKeySet, JWK, createLocalJWKSet } from 'jose';
import { compileRules, type CompiledRules } from './compile.js';
import { parseRule, type JsonRule, type PolicyRule } from './grammar.js';

/** Signature algorithms accepted for claims. */
export type ClaimsAlgorithm = 'EdDSA' | 'ES256' | 'RS256';
/** Every accepted claims algorithm (no `none`, no HMAC). */
export const CLAIMS_ALGORITHMS: readonly ClaimsAlgorithm[] = Object.freeze(['EdDSA', 'ES256', 'RS256']);

/** A key set the host trusts for one issuer. */
export interface TrustedIssuer {
  readonly issuer: string;
  /** A JWK set `{ keys: [...] }`, one public JWK, a PEM (SPKI or certificate), a KeyObject or a CryptoKey. */
  readonly keys: JSONWebKeySet | JWK | string | KeyObject | CryptoKey;
  /** Subset of EdDSA, ES256, RS256 (default: all three; the key type must still match). */
  readonly algorithms?: readonly ClaimsAlgorithm[];
  /** When set, the token's `aud` must contain it. */
  readonly audience?: string;
}

/** A JWK set is turned into jose's key lookup on first use (jose loads only when claims are verified). */
interface KeySet {
  readonly jwks: JSONWebKeySet;
  lookup?: ReturnType<typeof createLocalJWKSet>;
}

type VerifyKey = KeyObject | CryptoKey | KeySet;

// jose is ~50 modules and ~10 MB of resident memory: loaded when the first token is verified, not at import.
let joseModule: Promise<typeof import('jose')> | undefined;
const loadJose = (): Promise<typeof import('jose')> => (joseModule ??= import('jose'));

export interface PreparedIssuer {
  readonly issuer: string;
  readonly key: VerifyKey;
  readonly algorithms: ClaimsAlgorithm[];
  readonly audience: string | undefined;
}

/** What a verified token grants. */
export interface VerifiedClaims {
  readonly issuer: string;
  readonly subject: string;
  /** Milliseconds since the epoch after which the grants stop counting. */
  readonly expiresAt: number;
  readonly allow: readonly PolicyRule[];
  readonly rules: CompiledRules;
}

/** A token that did not verify. The host turns it into a `policy-error` denial. */
export class ClaimsError extends Error {
  override readonly name = 'ClaimsError';
}

function toKey(keys: TrustedIssuer['keys'], issuer: string): VerifyKey {
  const where = `trustedIssuers[${JSON.stringify(issuer)}].keys`;
  if (keys instanceof KeyObject) {
    if (keys.type === 'secret') throw new TypeError(`${where}: a secret key cannot verify claims; give a public key`);
    return keys.type === 'private' ? createPublicKey(keys) : keys;
  }
  if (typeof keys === 'string') {
    try {
      return createPublicKey(keys);
    } catch (err) {
      throw new TypeError(`${where}: not a PEM public key or certificate`, { cause: err });
    }
  }
  if (typeof keys === 'object' && keys !== null) {
    if (Array.isArray((keys as JSONWebKeySet).keys)) {
      for (const k of (keys as JSONWebKeySet).keys as unknown[]) {
        // The structure jose's createLocalJWKSet demands, checked now so a bad set fails at configuration.
        if (typeof k !== 'object' || k === null || Array.isArray(k) || typeof (k as JWK).kty !== 'string') {
          throw new TypeError(`${where}: JSON Web Key Set malformed (every key needs a "kty")`);
        }
        if ((k as JWK).kty === 'oct') throw new TypeError(`${where}: symmetric (oct) keys are not accepted`);
      }
      return { jwks: keys as JSONWebKeySet } satisfies KeySet;
    }
    if (typeof (keys as JWK).kty === 'string') {
      if ((keys as JWK).kty === 'oct') throw new TypeError(`${where}: symmetric (oct) keys are not accepted`);
      try {
        return createPublicKey({ key: keys as import('node:crypto').JsonWebKey, format: 'jwk' });
      } catch (err) {
        throw new TypeError(`${where}: not a usable public JWK`, { cause: err });
      }
    }
    if ((keys as CryptoKey).type === 'public') return keys as CryptoKey;
  }
  throw new TypeError(`${where} must be a JWK set, a public JWK, a PEM string, a KeyObject or a public CryptoKey`);
}

/** Check and prepare the host's trusted issuers once. Throws TypeError/RangeError on bad configuration. */
export function prepareIssuers(list: readonly TrustedIssuer[] | undefined): Map<string, PreparedIssuer> {
  const out = new Map<string, PreparedIssuer>();
  if (list === undefined) return out;
  if (!Array.isArray(list)) throw new TypeError('options.trustedIssuers must be an array');
  for (const t of list) {
    if (typeof t !== 'object' || t === null || typeof t.issuer !== 'string' || t.issuer.length === 0) {
      throw new TypeError('each trusted issuer needs a non-empty issuer string');
    }
    if (out.has(t.issuer)) throw new RangeError(`trusted issuer ${JSON.stringify(t.issuer)} is listed twice`);
    const algorithms = [...(t.algorithms ?? CLAIMS_ALGORITHMS)];
    for (const a of algorithms) {
      if (!CLAIMS_ALGORITHMS.includes(a)) throw new RangeError(`algorithm ${JSON.stringify(a)} is not accepted for claims (use EdDSA, ES256 or RS256)`);
    }
    if (algorithms.length === 0) throw new RangeError(`trusted issuer ${JSON.stringify(t.issuer)} allows no algorithm`);
    out.set(t.issuer, { issuer: t.issuer, key: toKey(t.keys, t.issuer), algorithms, audience: t.audience });
  }
  return out;
}

export interface VerifyOptions {
  readonly tenant: string;
  readonly now: Date;
  /** Seconds of clock skew accepted on exp/nbf. */
  readonly clockTolerance: number;
}

/** Verify a compact JWT and compile its grants. Rejects with ClaimsError. */
export async function verifyClaims(token: string, issuers: ReadonlyMap<string, PreparedIssuer>, o: VerifyOptions): Promise<VerifiedClaims> {
  if (typeof token !== 'string' || token.split('.').length !== 3) throw new ClaimsError('claims must be a compact JWS (header.payload.signature)');
  const { createLocalJWKSet, decodeJwt, errors: joseErrors, jwtVerify } = await loadJose();
  let iss: unknown;
  try {
    // Read only to choose the key set; nothing in it is trusted until jwtVerify succeeds.
    iss = decodeJwt(token).iss;
  } catch (err) {
    throw new ClaimsError(`claims do not decode: ${(err as Error).message}`);
  }
  const issuer = typeof iss === 'string' ? issuers.get(iss) : undefined;
  if (issuer === undefined) throw new ClaimsError(`claims issuer ${JSON.stringify(iss)} is not trusted`);
  let payload: Record<string, unknown>;
  try {
    const key = issuer.key;
    const verifyKey = 'jwks' in key ? (key.lookup ??= createLocalJWKSet(key.jwks)) : key;
    const verified = await jwtVerify(token, verifyKey as Parameters<typeof jwtVerify>[1], {
      issuer: issuer.issuer,
      algorithms: issuer.algorithms,
      subject: o.tenant,
      audience: issuer.audience,
      currentDate: o.now,
      clockTolerance: o.clockTolerance,
      requiredClaims: ['exp', 'sub'],
    });
    payload = verified.payload as Record<string, unknown>;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const why = err instanceof joseErrors.JOSEError ? `${e.code}: ${e.message}` : String(e?.message ?? err);
    throw new ClaimsError(`claims rejected: ${why}`);
  }
  const grants = payload.taps;
  const allow: PolicyRule[] = [];
  if (grants !== undefined) {
    if (typeof grants !== 'object' || grants === null || Array.isArray(grants)) throw new ClaimsError('the "taps" claim must be an object { allow: [...] }');
    for (const k of Object.keys(grants)) {
      if (k !== 'allow') throw new ClaimsError(`the "taps" claim may only grant ("allow"), found ${JSON.stringify(k)}`);
    }
    const list = (grants as { allow?: unknown }).allow;
    if (list !== undefined && !Array.isArray(list)) throw new ClaimsError('taps.allow must be an array of rules');
    try {
      (list ?? []).forEach((r: string | JsonRule, i: number) => allow.push(parseRule(r, 'allow', { source: `claims of ${issuer.issuer}`, path: `taps.allow[${i}]` })));
    } catch (err) {
      throw new ClaimsError(`claims grant an invalid rule: ${(err as Error).message}`);
    }
  }
  return Object.freeze({
    issuer: issuer.issuer,
    subject: payload.sub as string,
    expiresAt: (payload.exp as number) * 1000,
    allow: Object.freeze(allow),
    rules: compileRules(allow),
  });
}
