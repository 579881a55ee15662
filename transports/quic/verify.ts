/**
 * Server authentication for QUIC clients, done here rather than by quiche:
 * with a `verifyCallback` the package skips its native check and hands us the
 * peer's DER chain, so the rules are exactly the tls driver's
 * (../kit/tls-options.ts, ../kit/tls-verify.ts):
 *
 * - opportunistic security: encrypted, the peer is not authenticated;
 * - pinned certificates: the leaf's SHA-256 must be pinned and valid now
 *   (checkPins), the chain is not consulted;
 * - a `verify` callback: it decides, told whether chain and name checked out;
 * - otherwise: the chain must lead to `ca` (or the system roots), every link
 *   valid now and correctly signed, and the leaf must carry the checked name
 *   (or the IP when reached by address) — the name the policy saw, never one
 *   from the wire.
 *
 * A refusal is a TLS alert as a QUIC CRYPTO_ERROR (0x100 + alert, RFC 9001
 * §4.8); `failure()` keeps the readable reason for the TapsError.
 *
 * @example
 * const v = serverVerifier(attempt.security, attempt.target);
 * config.verifyCallback = v.callback;  // later: throw v.failure() ?? mapped error
 */
import { X509Certificate, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { TapsError } from '../../src/errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import type { SecurityParameters } from '../../src/security.js';
import { checkPins } from '../kit/tls-verify.js';

/** TLS alerts (RFC 8446 §6.2) as QUIC CRYPTO_ERROR codes. */
const BAD_CERTIFICATE = 0x100 + 42;
const CERTIFICATE_EXPIRED = 0x100 + 45;
const UNKNOWN_CA = 0x100 + 48;

/** The longest chain followed (leaf + intermediates). */
const MAX_DEPTH = 10;

/** The verifier handed to the package, and why it last refused. */
export interface ServerVerifier {
  readonly callback: (certs: Uint8Array[], ca: Uint8Array[]) => Promise<number | undefined>;
  failure(): TapsError | undefined;
}

function validNow(c: X509Certificate, now: number): boolean {
  return now >= Date.parse(c.validFrom) && now <= Date.parse(c.validTo);
}

function signedBy(c: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return c.checkIssued(issuer) && c.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Walk leaf → intermediates → an anchor. Returns the problem, or undefined when the chain holds. */
export function chainProblem(chain: readonly X509Certificate[], anchors: readonly X509Certificate[], now = Date.now()): string | undefined {
  let current = chain[0];
  if (!current) return 'the server sent no certificate';
  const intermediates = chain.slice(1);
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (!validNow(current, now)) return `certificate ${current.subject.replace(/\n/g, ', ')} is not valid now (valid ${current.validFrom} to ${current.validTo})`;
    const anchor = anchors.find((a) => signedBy(current!, a) || a.raw.equals(current!.raw));
    if (anchor) return validNow(anchor, now) ? undefined : `the trusted certificate ${anchor.subject.replace(/\n/g, ', ')} is not valid now`;
    const next = intermediates.find((i) => i !== current && signedBy(current!, i));
    if (!next) return `unable to get the issuer of ${current.subject.replace(/\n/g, ', ')}: no trusted certificate signed it`;
    current = next;
  }
  return `the certificate chain is longer than ${MAX_DEPTH}`;
}

/** Does the leaf carry `identity` (a DNS name, or an IP when reached by address)? */
function nameProblem(leaf: X509Certificate, identity: string): string | undefined {
  const ok = isIP(identity) === 0 ? leaf.checkHost(identity) !== undefined : leaf.checkIP(identity) !== undefined;
  return ok ? undefined : `the server certificate is not valid for ${identity}`;
}

let systemAnchors: X509Certificate[] | undefined;

/** Parsed trust anchors per SecurityParameters (immutable), so a connect does not parse the CA again. */
const parsedAnchors = new WeakMap<SecurityParameters, X509Certificate[]>();

function anchorsOf(security: SecurityParameters): X509Certificate[] {
  if (!security.ca || security.ca.length === 0) {
    systemAnchors ??= rootCertificates.map((pem) => new X509Certificate(pem));
    return systemAnchors;
  }
  let anchors = parsedAnchors.get(security);
  if (!anchors) {
    anchors = security.ca.flatMap((pem) => splitPem(String(pem)).map((p) => new X509Certificate(p)));
    parsedAnchors.set(security, anchors);
  }
  return anchors;
}

/**
 * Leaves whose chain and name already checked out, per SecurityParameters: the same certificate (the same
 * DER, so the same signature) for the same name needs no second chain walk while every certificate of that
 * chain is still valid. Only successes are kept (a chain that failed may succeed with other intermediates).
 */
const verifiedLeaves = new WeakMap<SecurityParameters, Map<string, { readonly from: number; readonly until: number }>>();
const VERIFIED_LEAVES_MAX = 256;

function rememberVerified(security: SecurityParameters, key: string, chain: readonly X509Certificate[], anchors: readonly X509Certificate[]): void {
  let byLeaf = verifiedLeaves.get(security);
  if (byLeaf === undefined) verifiedLeaves.set(security, (byLeaf = new Map()));
  if (byLeaf.size >= VERIFIED_LEAVES_MAX) byLeaf.delete(byLeaf.keys().next().value!);
  // The window in which every certificate that could have been on the path is valid (a conservative bound).
  let from = -Infinity;
  let until = Infinity;
  for (const c of [...chain, ...anchors.filter((a) => chain.some((x) => x.checkIssued(a)))]) {
    from = Math.max(from, Date.parse(c.validFrom));
    until = Math.min(until, Date.parse(c.validTo));
  }
  byLeaf.set(key, { from, until });
}

function wasVerified(security: SecurityParameters, key: string, now: number): boolean {
  const hit = verifiedLeaves.get(security)?.get(key);
  return hit !== undefined && now >= hit.from && now <= hit.until;
}

function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Build the verifier for one connection attempt to `target`. */
export function serverVerifier(security: SecurityParameters, target: CheckedTarget): ServerVerifier {
  let failure: TapsError | undefined;
  const refuse = (alert: number, why: string): number => {
    failure = new TapsError('ERR_TAPS_SECURITY_FAILED', why);
    return alert;
  };
  const named = target.hostName;
  const hostName = named !== undefined && named.length > 0 && isIP(named) === 0 ? named : undefined;
  const identity = hostName ?? target.address;
  const pins = new Set(security.pinnedServerCertificates);
  const verify = security.verify;
  const callback = async (certs: Uint8Array[]): Promise<number | undefined> => {
    if (security.mode !== 'required') return undefined;
    // Seen and verified before for this name: no parsing, no signature checks (pins and callbacks always run).
    const cacheable = pins.size === 0 && !verify && certs[0] !== undefined;
    const key = cacheable ? `${identity}\0${createHash('sha256').update(certs[0]!).digest('hex')}` : '';
    if (cacheable && wasVerified(security, key, Date.now())) return undefined;
    let chain: X509Certificate[];
    try {
      chain = certs.map((der) => new X509Certificate(Buffer.from(der)));
    } catch (err) {
      return refuse(BAD_CERTIFICATE, `the server certificate could not be parsed: ${(err as Error).message}`);
    }
    const leaf = chain[0];
    if (!leaf) return refuse(BAD_CERTIFICATE, 'the server sent no certificate');
    const raw = leaf.raw;
    const fingerprint256 = createHash('sha256').update(raw).digest('hex');
    if (pins.size > 0) {
      const pinFailure = checkPins({ raw, fingerprint256, validFrom: Date.parse(leaf.validFrom), validTo: Date.parse(leaf.validTo) }, pins);
      if (pinFailure) {
        failure = pinFailure;
        return validNow(leaf, Date.now()) ? BAD_CERTIFICATE : CERTIFICATE_EXPIRED;
      }
      if (!verify) return undefined;
    }
    let problem: string | undefined;
    try {
      problem = chainProblem(chain, anchorsOf(security)) ?? nameProblem(leaf, identity);
    } catch (err) {
      problem = `the trusted certificates could not be read: ${(err as Error).message}`;
    }
    if (verify) {
      let verdict: unknown;
      try {
        verdict = await verify({ hostName, certificate: { raw, fingerprint256 }, alpn: undefined, chainVerified: problem === undefined, ...(problem ? { chainError: problem } : {}) });
      } catch (err) {
        return refuse(BAD_CERTIFICATE, `the verification callback failed: ${(err as Error)?.message ?? String(err)}`);
      }
      return verdict === true ? undefined : refuse(BAD_CERTIFICATE, `the verification callback did not accept the server certificate (it returned ${String(verdict)})`);
    }
    if (problem === undefined) {
      if (cacheable) rememberVerified(security, key, chain, anchorsOf(security));
      return undefined;
    }
    return refuse(/not valid now/.test(problem) ? CERTIFICATE_EXPIRED : /issuer|chain/.test(problem) ? UNKNOWN_CA : BAD_CERTIFICATE, problem);
  };
  return { callback, failure: () => failure };
}
