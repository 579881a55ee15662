/**
 * `taps-node/certificates`: X.509 certificates made at run time — self-signed
 * ones for a local service or for WebTransport's `serverCertificateHashes`
 * (ECDSA P-256, valid at most 14 days, so they rotate: docs/certificates.md),
 * and throwaway CAs with leaves for tests and examples of CA verification.
 *
 * Keys come from `crypto.generateKeyPairSync` (EC P-256 by default, or
 * RSA-2048); the TBSCertificate is built with node-forge's ASN.1 and signed
 * with `crypto.sign`, because forge itself signs only with RSA. Names that
 * are IP literals go into the SAN as IP addresses, the others as DNS names;
 * the first name is also the CN. This entry loads node-forge; the drivers
 * never import it.
 *
 * @example
 * import { selfSignedCertificate, certificateAuthority, issueCertificate } from 'taps-node/certificates';
 * const { cert, key, fingerprint256, notAfter } = selfSignedCertificate({ names: ['localhost', '127.0.0.1', '::1'] });
 * const ca = certificateAuthority();
 * const leaf = issueCertificate(ca, { names: ['localhost'] }); // trust with new SecurityParameters({ ca: ca.cert })
 *
 * @module taps-node/certificates
 */
import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

const DAY_MS = 24 * 60 * 60 * 1000;
const OID_SHA256_RSA = '1.2.840.113549.1.1.11';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const { asn1, pki } = forge;

/** What to put in a generated certificate; every field has a default. */
export interface CertificateOptions {
  /** DNS names and IP literals; the first is the CN. Default ['localhost', '127.0.0.1', '::1']. */
  readonly names?: readonly string[] | undefined;
  /** Key type. Default 'ec' (ECDSA P-256 with SHA-256, what WebTransport's certificate hashes require). */
  readonly kind?: 'rsa' | 'ec' | undefined;
  /** Days of validity from `notBefore`. Default 10 (WebTransport accepts at most 14). */
  readonly days?: number | undefined;
  /** Start of validity. Default: one hour ago. */
  readonly notBefore?: Date | undefined;
}

/** A generated certificate with its private key, in the forms TLS options and pins take. */
export interface GeneratedCertificate {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM private key (PKCS#8). */
  readonly key: string;
  /** DER certificate. */
  readonly der: Buffer;
  /** SHA-256 of the DER, lowercase hex (what `pinnedServerCertificates` takes). */
  readonly fingerprint256: string;
  /** Start of validity. */
  readonly notBefore: Date;
  /** End of validity: replace the certificate before then (docs/certificates.md). */
  readonly notAfter: Date;
}

interface Signer {
  readonly name: forge.asn1.Asn1;
  readonly key: KeyObject;
  readonly kind: 'rsa' | 'ec';
}

function algorithm(kind: 'rsa' | 'ec'): forge.asn1.Asn1 {
  const oid = kind === 'rsa' ? OID_SHA256_RSA : OID_ECDSA_SHA256;
  const parts = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes())];
  // RFC 4055: RSA algorithms carry an explicit NULL; RFC 5758: ECDSA ones carry no parameters.
  if (kind === 'rsa') parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

function time(date: Date): forge.asn1.Asn1 {
  const y = date.getUTCFullYear();
  return y >= 1950 && y < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function nameAsn1(commonName: string): forge.asn1.Asn1 {
  const helper = pki.createCertificate();
  helper.setSubject([{ name: 'commonName', value: commonName }]);
  return pki.distinguishedNameToAsn1(helper.subject);
}

function extensionsAsn1(extensions: unknown[]): forge.asn1.Asn1 {
  const helper = pki.createCertificate();
  helper.setExtensions(extensions as never[]);
  // Exported by forge at run time but missing from @types/node-forge.
  return (pki as unknown as { certificateExtensionsToAsn1(exts: unknown[]): forge.asn1.Asn1 }).certificateExtensionsToAsn1(helper.extensions);
}

function keyPair(kind: 'rsa' | 'ec'): { publicKey: KeyObject; privateKey: KeyObject } {
  return kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function validity(options: CertificateOptions): { notBefore: Date; notAfter: Date } {
  const days = options.days ?? 10;
  if (typeof days !== 'number' || !(days > 0)) throw new RangeError(`options.days must be a positive number, got ${String(days)}`);
  if (options.notBefore !== undefined && !(options.notBefore instanceof Date && !Number.isNaN(options.notBefore.getTime()))) {
    throw new TypeError('options.notBefore must be a valid Date');
  }
  const notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY_MS) };
}

function kindOf(options: CertificateOptions): 'rsa' | 'ec' {
  const kind = options.kind ?? 'ec';
  if (kind !== 'rsa' && kind !== 'ec') throw new RangeError(`options.kind must be 'rsa' or 'ec', got ${String(kind)}`);
  return kind;
}

function namesOf(options: CertificateOptions): readonly string[] {
  const names = options.names ?? ['localhost', '127.0.0.1', '::1'];
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string' && n.length > 0)) {
    throw new TypeError('options.names must be a non-empty array of host names and IP addresses');
  }
  return names;
}

/** Build, sign and encode one certificate. */
function build(publicKey: KeyObject, privateKey: KeyObject, subject: forge.asn1.Asn1, signer: Signer, options: CertificateOptions, extensions: unknown[]): GeneratedCertificate {
  const { notBefore, notAfter } = validity(options);
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive INTEGER
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(2).getBytes())]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, serial.toString('binary')),
    algorithm(signer.kind),
    signer.name,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [time(notBefore), time(notAfter)]),
    subject,
    asn1.fromDer(spki.toString('binary')),
    extensionsAsn1(extensions),
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign('sha256', tbsDer, signer.key);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm(signer.kind),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\u0000' + signature.toString('binary')),
  ]);
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    der,
    fingerprint256: createHash('sha256').update(der).digest('hex'),
    notBefore,
    notAfter,
  };
}

function leafExtensions(names: readonly string[], kind: 'rsa' | 'ec'): unknown[] {
  return [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: kind === 'rsa', critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
  ];
}

/** A self-signed leaf certificate for `names`. */
export function selfSignedCertificate(options: CertificateOptions = {}): GeneratedCertificate {
  const kind = kindOf(options);
  const names = namesOf(options);
  const { publicKey, privateKey } = keyPair(kind);
  const subject = nameAsn1(names[0] as string);
  return build(publicKey, privateKey, subject, { name: subject, key: privateKey, kind }, options, leafExtensions(names, kind));
}

/** A self-signed CA certificate (CN from `names[0]`, default 'taps-node local CA'; default 30 days). */
export function certificateAuthority(options: CertificateOptions = {}): GeneratedCertificate {
  const kind = kindOf(options);
  const { publicKey, privateKey } = keyPair(kind);
  const subject = nameAsn1(options.names?.[0] ?? 'taps-node local CA');
  return build(publicKey, privateKey, subject, { name: subject, key: privateKey, kind }, { days: 30, ...options }, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
  ]);
}

/** A leaf certificate for `names`, signed by `ca` (from certificateAuthority). */
export function issueCertificate(ca: Pick<GeneratedCertificate, 'cert' | 'key'>, options: CertificateOptions = {}): GeneratedCertificate {
  if (typeof ca !== 'object' || ca === null || typeof ca.cert !== 'string' || typeof ca.key !== 'string') {
    throw new TypeError('ca must be { cert, key } in PEM');
  }
  const caKey = createPrivateKey(ca.key);
  const caKind = caKey.asymmetricKeyType === 'rsa' ? 'rsa' : caKey.asymmetricKeyType === 'ec' ? 'ec' : undefined;
  if (caKind === undefined) throw new TypeError(`ca.key must be an RSA or EC key, got ${String(caKey.asymmetricKeyType)}`);
  // The issuer Name is the CA's subject, byte for byte (TBSCertificate field 6).
  const caTbs = asn1.fromDer(new X509Certificate(ca.cert).raw.toString('binary')).value[0] as forge.asn1.Asn1;
  const caSubject = (caTbs.value as forge.asn1.Asn1[])[5] as forge.asn1.Asn1;
  const kind = kindOf(options);
  const names = namesOf(options);
  const { publicKey, privateKey } = keyPair(kind);
  return build(publicKey, privateKey, nameAsn1(names[0] as string), { name: caSubject, key: caKey, kind: caKind }, options, leafExtensions(names, kind));
}
