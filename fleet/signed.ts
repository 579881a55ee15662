/**
 * Signed policies: a tenant's whole policy carried in a compact JWT signed
 * by an issuer the hosts trust, with the same keys, algorithms (EdDSA,
 * ES256, RS256; never `none` or HMAC) and checks as signed claims: the
 * issuer must be trusted, `sub` must be the tenant the policy is stored
 * under (a policy signed for tenant A cannot be stored as tenant B's), and
 * `exp`/`nbf`, when present, hold. The policy is the `taps_policy` claim,
 * as text or as the JSON form.
 *
 *     { "iss": "https://policy.example", "sub": "acme", "iat": 1767225600,
 *       "taps_policy": "allow tcp://api.example.com:443\nlimit connections 100" }
 *
 * @example
 * const jwt = await signPolicy('acme', policyText, { issuer: 'https://policy.example', key: privateKey, algorithm: 'EdDSA' });
 * await fleet.publish('acme', jwt);
 */
import type { KeyObject } from 'node:crypto';
import type { CryptoKey } from 'jose';
import type { ClaimsAlgorithm, PreparedIssuer } from '../src/policy/claims.js';

/** How {@link signPolicy} signs. */
export interface PolicySigner {
  readonly issuer: string;
  /** The issuer's private key. */
  readonly key: KeyObject | CryptoKey;
  readonly algorithm: ClaimsAlgorithm;
  /** Seconds until the signature expires (default: no `exp`; a revision stays valid until replaced). */
  readonly expiresInSeconds?: number;
}

/** Sign a tenant's policy (text or JSON form) for publishing to a fleet that requires signed policies. */
export async function signPolicy(tenant: string, policy: string | object, signer: PolicySigner): Promise<string> {
  const { SignJWT } = await import('jose');
  let jwt = new SignJWT({ taps_policy: policy as never })
    .setProtectedHeader({ alg: signer.algorithm })
    .setIssuer(signer.issuer)
    .setSubject(tenant)
    .setIssuedAt();
  if (signer.expiresInSeconds !== undefined) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + signer.expiresInSeconds);
  return jwt.sign(signer.key);
}

/** Verify a stored signed policy for `tenant` and return the policy it carries; throws on anything else. */
export async function verifySignedPolicy(payload: string, tenant: string, issuers: ReadonlyMap<string, PreparedIssuer>): Promise<string | object> {
  const token = JSON.parse(payload) as unknown;
  if (typeof token !== 'string' || token.split('.').length !== 3) throw new TypeError('this fleet requires signed policies: the stored policy is not a compact JWS');
  const { createLocalJWKSet, decodeJwt, jwtVerify } = await import('jose');
  const iss = decodeJwt(token).iss; // read only to pick the keys; trusted after jwtVerify
  const issuer = typeof iss === 'string' ? issuers.get(iss) : undefined;
  if (issuer === undefined) throw new TypeError(`the policy's signer ${JSON.stringify(iss)} is not trusted`);
  const key = issuer.key;
  const verifyKey = 'jwks' in key ? (key.lookup ??= createLocalJWKSet(key.jwks)) : key;
  const { payload: claims } = await jwtVerify(token, verifyKey as Parameters<typeof jwtVerify>[1], {
    issuer: issuer.issuer,
    algorithms: issuer.algorithms,
    subject: tenant,
    audience: issuer.audience,
    requiredClaims: ['sub', 'iat'],
  });
  const policy = (claims as { taps_policy?: unknown }).taps_policy;
  if (typeof policy !== 'string' && (typeof policy !== 'object' || policy === null)) throw new TypeError('the signed policy has no taps_policy claim');
  return policy as string | object;
}
