/**
 * Test certificates, made once per test process and memoised per options, on
 * top of transports/tls/certificates.ts (RSA-2048 or EC P-256, forge ASN.1
 * signed with `crypto.sign`). Leaves name `localhost`, 127.0.0.1 and ::1 by
 * default. A leaf is self-signed unless `issuer: 'ca'`; then it is signed by
 * the memoised test CA of the same kind (`testCA(kind)`) and `caCert` holds the
 * CA's PEM, for CA-verification tests.
 *
 * @example
 * const { cert, key, fingerprint256 } = testCertificate({ kind: 'ec' });
 * const expired = testCertificate({ issuer: 'ca', notBefore: new Date(Date.now() - 30 * DAY), days: 10 });
 * const tooLong = testCertificate({ kind: 'ec', days: 30 }); // over WebTransport's 14 days
 */
import { certificateAuthority, issueCertificate, selfSignedCertificate, type GeneratedCertificate } from '../../transports/tls/certificates.js';

export const DAY = 24 * 60 * 60 * 1000;

export interface TestCertificateOptions {
  /** Key type: RSA-2048 or EC P-256. Default 'rsa'. */
  readonly kind?: 'rsa' | 'ec';
  /** Days of validity from `notBefore`. Default 10. */
  readonly days?: number;
  /** Start of validity. Default: one hour before the first certificate of this process. */
  readonly notBefore?: Date;
  /** DNS names and IP literals; the first is the CN. Default ['localhost', '127.0.0.1', '::1']. */
  readonly names?: readonly string[];
  /** 'self' (default): self-signed. 'ca': signed by `testCA(kind)`. */
  readonly issuer?: 'self' | 'ca';
}

export interface TestCertificate extends GeneratedCertificate {
  /** PEM of the issuing CA when `issuer: 'ca'`. */
  readonly caCert?: string;
}

const memo = new Map<string, TestCertificate>();
const cas = new Map<'rsa' | 'ec', GeneratedCertificate>();
let defaultNotBefore: Date | undefined;

/** The memoised test CA of a key kind (valid from a day ago for 30 days). */
export function testCA(kind: 'rsa' | 'ec' = 'rsa'): GeneratedCertificate {
  let ca = cas.get(kind);
  if (!ca) {
    ca = certificateAuthority({ kind, names: [`taps-node test CA (${kind})`], notBefore: new Date(Date.now() - DAY), days: 30 });
    cas.set(kind, ca);
  }
  return ca;
}

/** A memoised leaf certificate. */
export function testCertificate(options: TestCertificateOptions = {}): TestCertificate {
  const kind = options.kind ?? 'rsa';
  defaultNotBefore ??= new Date(Date.now() - 60 * 60 * 1000);
  const notBefore = options.notBefore ?? defaultNotBefore;
  const issuer = options.issuer ?? 'self';
  const key = JSON.stringify([kind, options.days ?? 10, notBefore.getTime(), options.names ?? null, issuer]);
  const hit = memo.get(key);
  if (hit) return hit;
  const base = { kind, notBefore, ...(options.days === undefined ? {} : { days: options.days }), ...(options.names ? { names: options.names } : {}) };
  let made: TestCertificate;
  if (issuer === 'ca') {
    const ca = testCA(kind);
    made = { ...issueCertificate(ca, base), caCert: ca.cert };
  } else {
    made = selfSignedCertificate(base);
  }
  memo.set(key, made);
  return made;
}
