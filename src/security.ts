/**
 * Security parameters (RFC 9622 §6.3): which security a connection
 * must have, whom it trusts and how it identifies itself. Frozen once made.
 *
 * Modes (RFC 9622 §6.3: connections SHOULD use security; disabled and opportunistic
 * security are explicit choices the caller makes, never a silent downgrade):
 * - `required` (the default, `new SecurityParameters()`): only encrypted
 *   stacks are candidates, and the peer is authenticated: by the CA chain and
 *   host name (system roots or `ca`), or by `pinnedServerCertificates`, or by
 *   the `verify` callback. There is no `rejectUnauthorized`: to trust a
 *   certificate no CA vouches for, pin it or verify it yourself.
 * - `disabled` (`SecurityParameters.disabled()`): only unencrypted stacks are
 *   candidates; security is never added (RFC 9622 §6.3).
 * - `opportunistic` (`SecurityParameters.opportunistic()`): encrypted and
 *   unencrypted stacks are both candidates, encrypted ranked first. As RFC 9622 §6.3
 *   says, it "allow[s] Connections without transport security, but will still
 *   attempt to use unauthenticated security": the peer is NOT authenticated
 *   (`authenticatesPeer` false), so `ca`, pins and `verify` are refused here
 *   rather than silently ignored. Use `required` when the peer must be known.
 *
 * Pins are SHA-256 fingerprints of the peer's DER certificate (what Node calls
 * `fingerprint256`), given as hex with or without colons or as base64, kept as
 * lowercase hex. With pins, the leaf must match one pin; `verify` (the RFC 9622 §6.3.8
 * trust-verification callback) then decides too, if given.
 *
 * @example
 * const sec = new SecurityParameters({ alpn: ['h2', 'http/1.1'], pinnedServerCertificates: [fingerprintHex] });
 * sec.mode;                    // 'required'
 * SecurityParameters.disabled().allowsEncrypted(); // false
 */
import { inspect } from 'node:util';
import { canonicalHostName, describe, parseIpLiteral } from './names.js';

/** Whether security is required (default), opportunistic or disabled (RFC 9622 §6.3). */
export type SecurityMode = 'required' | 'opportunistic' | 'disabled';
/** TLS versions that may be allowed. */
export type TlsProtocol = 'tls1.2' | 'tls1.3';
/** PEM text or its bytes. */
export type Pem = string | Buffer;

/** What the trust-verification callback is told about the peer (RFC 9622 §6.3.8). */
export interface TrustContext {
  /** The name the peer must prove (SNI / the endpoint's host name), if any. */
  readonly hostName: string | undefined;
  readonly certificate: {
    /** The peer's leaf certificate, DER. */
    readonly raw: Buffer;
    /** SHA-256 of `raw`, lowercase hex without colons. */
    readonly fingerprint256: string;
  };
  /** The negotiated ALPN protocol, if any. */
  readonly alpn: string | undefined;
  /** Whether the CA chain and host name checked out, when the driver ran that check. */
  readonly chainVerified?: boolean;
  /** Why the chain or name check failed. */
  readonly chainError?: string;
}
/** The trust-verification callback (RFC 9622 §6.3.8): true to accept the peer. */
export type TrustVerifier = (ctx: TrustContext) => boolean | Promise<boolean>;

/** Asked for a local identity when a peer wants one (RFC 9622 §6.3.8); on listeners it can pick a certificate per SNI name. */
export interface IdentityChallengeContext {
  readonly hostName: string | undefined;
}
/** Picks a local identity when the peer asks for one (RFC 9622 §6.3.8). */
export type IdentityChallenge = (ctx: IdentityChallengeContext) =>
  | { certificate: Pem; key: Pem }
  | undefined
  | Promise<{ certificate: Pem; key: Pem } | undefined>;

/** A TLS pre-shared key and its identity. */
export interface PreSharedKey {
  readonly identity: string;
  readonly key: Buffer;
}

/** The fields of {@link SecurityParameters}. */
export interface SecurityInit {
  /** Default both. */
  allowedProtocols?: readonly TlsProtocol[];
  /** Trusted CA certificates (PEM) instead of the system roots. */
  ca?: Pem | readonly Pem[];
  /** The local identity (PEM chain and key): the server certificate when listening, the client certificate when initiating (RFC 9622 §6.3.2). */
  certificate?: Pem;
  key?: Pem;
  passphrase?: string;
  pinnedServerCertificates?: readonly string[];
  alpn?: readonly string[];
  /**
   * Override the name sent in SNI, checked in the certificate and sent as HTTP `Host`. The tenant's policy
   * decides it as a name the tenant may reach (its lookup grant; no query is sent): a name it may not reach
   * denies the candidate instead of going out.
   */
  serverName?: string;
  verify?: TrustVerifier;
  identityChallenge?: IdentityChallenge;
  /** RFC 9622 §6.3.6: OpenSSL names; the TLS driver maps them to `ciphers`, `ecdhCurve`, `sigalgs`. */
  ciphersuites?: readonly string[];
  groups?: readonly string[];
  signatureAlgorithms?: readonly string[];
  /** RFC 9622 §6.3.7 maxCachedSessions (0 turns resumption off) and cachedSessionLifetimeSeconds. */
  sessionCacheLimit?: number;
  sessionLifetimeSeconds?: number;
  /** RFC 9622 §6.3.7 pre-shared key. Node's TLS supports PSK only up to TLS 1.2. */
  psk?: { identity: string; key: Buffer | Uint8Array };
}

const KEYS = new Set<string>([
  'allowedProtocols', 'ca', 'certificate', 'key', 'passphrase', 'pinnedServerCertificates', 'alpn', 'serverName', 'verify',
  'identityChallenge', 'ciphersuites', 'groups', 'signatureAlgorithms', 'sessionCacheLimit', 'sessionLifetimeSeconds', 'psk',
]);
const NOT_OPPORTUNISTIC = ['ca', 'pinnedServerCertificates', 'verify'] as const;
const ALGORITHM = /^[A-Za-z0-9_+.-]{1,64}$/;
/** Set by the static factories for the one synchronous constructor call that follows. */
let factoryMode: SecurityMode | undefined;

function pemList(v: unknown, field: string, marker: RegExp): readonly Pem[] {
  const list: unknown[] = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new RangeError(`${field} must not be an empty array`);
  return Object.freeze(list.map((item, i) => {
    const name = Array.isArray(v) ? `${field}[${i}]` : field;
    let pem: Pem;
    if (typeof item === 'string') pem = item;
    else if (item instanceof Uint8Array) pem = Buffer.from(item);
    else throw new TypeError(`${name} must be PEM text (string or Buffer), got ${describe(item)}`);
    const text = typeof pem === 'string' ? pem : pem.toString('latin1');
    if (!marker.test(text)) throw new TypeError(`${name} is not PEM (no ${marker.source.replace(/\\/g, '')} block; give the file's contents, not its path)`);
    return pem;
  }));
}

/** A SHA-256 fingerprint as lowercase hex: from hex (with or without colons) or base64. */
export function normalizeFingerprint(v: unknown, field = 'fingerprint'): string {
  if (typeof v !== 'string') throw new TypeError(`${field} must be a string, got ${describe(v)}`);
  let hex: string;
  if (/^[0-9a-fA-F]+$/.test(v) || /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})*$/.test(v)) hex = v.replace(/:/g, '').toLowerCase();
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(v)) hex = Buffer.from(v, 'base64').toString('hex');
  else throw new TypeError(`${field} must be a SHA-256 fingerprint in hex (colons optional) or base64, got ${describe(v)}`);
  if (hex.length !== 64) throw new RangeError(`${field} must be a SHA-256 fingerprint (32 bytes), got ${hex.length} hex digits`);
  return hex;
}

function strings(v: unknown, field: string, check: (s: string, f: string) => void): readonly string[] {
  if (!Array.isArray(v)) throw new TypeError(`${field} must be an array of strings, got ${describe(v)}`);
  const out: string[] = [];
  v.forEach((s: unknown, i) => {
    const f = `${field}[${i}]`;
    if (typeof s !== 'string') throw new TypeError(`${f} must be a string, got ${describe(s)}`);
    check(s, f);
    if (out.includes(s)) throw new TypeError(`${f} repeats ${JSON.stringify(s)}`);
    out.push(s);
  });
  return Object.freeze(out);
}

function count(v: unknown, field: string, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${field} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`${field} must be an integer from 0 to ${max}, got ${v}`);
  return v;
}

/** Security parameters (RFC 9622 §6.3): required, opportunistic or disabled; trust, identity, ALPN. Frozen once made. */
export class SecurityParameters {
  readonly mode: SecurityMode;
  readonly allowedProtocols: readonly TlsProtocol[];
  readonly ca?: readonly Pem[];
  readonly certificate?: Pem;
  readonly key?: Pem;
  readonly passphrase?: string;
  /** Lowercase hex SHA-256 fingerprints of accepted peer certificates. */
  readonly pinnedServerCertificates: readonly string[];
  /** Undefined: the driver picks ALPN for its protocol (RFC 9622 §6.3.5). */
  readonly alpn?: readonly string[];
  readonly serverName?: string;
  readonly verify?: TrustVerifier;
  readonly identityChallenge?: IdentityChallenge;
  readonly ciphersuites?: readonly string[];
  readonly groups?: readonly string[];
  readonly signatureAlgorithms?: readonly string[];
  readonly sessionCacheLimit?: number;
  readonly sessionLifetimeSeconds?: number;
  readonly psk?: PreSharedKey;

  constructor(init?: SecurityInit) {
    this.mode = factoryMode ?? 'required';
    factoryMode = undefined;
    const s = (field: string): string => `security.${field}`;
    if (init !== undefined && init !== null && (typeof init !== 'object' || Array.isArray(init))) {
      throw new TypeError(`security parameters must be an object, got ${describe(init)}`);
    }
    const o = (init ?? {}) as Record<string, unknown>;
    const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined;
    for (const k of Object.keys(o)) {
      if (KEYS.has(k)) continue;
      if (k === 'rejectUnauthorized') {
        throw new TypeError('security.rejectUnauthorized is not an option: pin the server certificate (pinnedServerCertificates), give a verify callback, or use SecurityParameters.disabled()');
      }
      throw new TypeError(`unknown security parameter ${JSON.stringify(k.slice(0, 40))}`);
    }
    if (this.mode === 'opportunistic') {
      for (const k of NOT_OPPORTUNISTIC) {
        if (has(k)) throw new TypeError(`${s(k)}: opportunistic security does not authenticate the peer (RFC 9622 §6.3); use required security to verify it`);
      }
    }

    this.allowedProtocols = has('allowedProtocols')
      ? strings(o.allowedProtocols, s('allowedProtocols'), (p, f) => {
        if (p !== 'tls1.2' && p !== 'tls1.3') throw new RangeError(`${f} must be 'tls1.2' or 'tls1.3', got ${describe(p)}`);
      }) as readonly TlsProtocol[]
      : Object.freeze(['tls1.2', 'tls1.3'] as TlsProtocol[]);
    if (this.allowedProtocols.length === 0) throw new RangeError(`${s('allowedProtocols')} must name at least one protocol (use SecurityParameters.disabled() for none)`);

    if (has('ca')) this.ca = pemList(o.ca, s('ca'), /-----BEGIN CERTIFICATE-----/);
    if (has('certificate')) this.certificate = pemList(o.certificate, s('certificate'), /-----BEGIN CERTIFICATE-----/)[0];
    if (has('key')) this.key = pemList(o.key, s('key'), /-----BEGIN [A-Z ]*PRIVATE KEY-----/)[0];
    if ((this.certificate === undefined) !== (this.key === undefined)) {
      throw new TypeError(`${s('certificate')} and ${s('key')} must be given together`);
    }
    if (has('passphrase')) {
      if (typeof o.passphrase !== 'string') throw new TypeError(`${s('passphrase')} must be a string`);
      if (this.key === undefined) throw new TypeError(`${s('passphrase')} needs ${s('key')}`);
      this.passphrase = o.passphrase;
    }
    this.pinnedServerCertificates = has('pinnedServerCertificates')
      ? Object.freeze([...new Set(strings(o.pinnedServerCertificates, s('pinnedServerCertificates'), () => undefined)
        .map((p, i) => normalizeFingerprint(p, `${s('pinnedServerCertificates')}[${i}]`)))])
      : Object.freeze([]);
    if (has('alpn')) {
      this.alpn = strings(o.alpn, s('alpn'), (p, f) => {
        const n = Buffer.byteLength(p);
        if (n < 1 || n > 255) throw new RangeError(`${f} must be 1 to 255 bytes long (RFC 7301), got ${n}`);
      });
    }
    if (has('serverName')) {
      const sn = o.serverName;
      if (typeof sn === 'string' && parseIpLiteral(sn) !== undefined) throw new TypeError(`${s('serverName')} must be a host name, not an IP address (RFC 6066 §3)`);
      this.serverName = canonicalHostName(sn, s('serverName'));
    }
    for (const k of ['verify', 'identityChallenge'] as const) {
      if (has(k) && typeof o[k] !== 'function') throw new TypeError(`${s(k)} must be a function, got ${describe(o[k])}`);
    }
    if (has('verify')) this.verify = o.verify as TrustVerifier;
    if (has('identityChallenge')) this.identityChallenge = o.identityChallenge as IdentityChallenge;
    const algos = (f: string, v: unknown): readonly string[] => {
      const list = strings(v, s(f), (a, af) => {
        if (!ALGORITHM.test(a)) throw new TypeError(`${af} is not an algorithm name: ${describe(a)}`);
      });
      if (list.length === 0) throw new RangeError(`${s(f)} must not be empty (leave it out for safe defaults)`);
      return list;
    };
    if (has('ciphersuites')) this.ciphersuites = algos('ciphersuites', o.ciphersuites);
    if (has('groups')) this.groups = algos('groups', o.groups);
    if (has('signatureAlgorithms')) this.signatureAlgorithms = algos('signatureAlgorithms', o.signatureAlgorithms);
    if (has('sessionCacheLimit')) this.sessionCacheLimit = count(o.sessionCacheLimit, s('sessionCacheLimit'), 1_000_000);
    if (has('sessionLifetimeSeconds')) this.sessionLifetimeSeconds = count(o.sessionLifetimeSeconds, s('sessionLifetimeSeconds'), 7 * 24 * 3600);
    if (has('psk')) {
      const p = o.psk as { identity?: unknown; key?: unknown } | null;
      if (typeof p !== 'object' || p === null) throw new TypeError(`${s('psk')} must be { identity, key }`);
      if (typeof p.identity !== 'string' || p.identity.length === 0 || Buffer.byteLength(p.identity) > 128) {
        throw new TypeError(`${s('psk.identity')} must be a non-empty string of at most 128 bytes`);
      }
      if (!(p.key instanceof Uint8Array) || p.key.length === 0) throw new TypeError(`${s('psk.key')} must be a non-empty Buffer`);
      this.psk = Object.freeze({ identity: p.identity, key: Buffer.from(p.key) });
    }
    Object.freeze(this);
  }

  /** RFC 9622 §6.3: plaintext only; security is never added. */
  static disabled(): SecurityParameters {
    factoryMode = 'disabled';
    return new SecurityParameters();
  }

  /** RFC 9622 §6.3: encrypted stacks first, plaintext allowed; the peer is not authenticated. */
  static opportunistic(init?: Omit<SecurityInit, 'ca' | 'pinnedServerCertificates' | 'verify'>): SecurityParameters {
    factoryMode = 'opportunistic';
    return new SecurityParameters(init);
  }

  /** Whether encrypted stacks may be candidates (required or opportunistic). */
  allowsEncrypted(): boolean {
    return this.mode !== 'disabled';
  }
  /** Whether unencrypted stacks may be candidates (disabled or opportunistic). */
  allowsUnencrypted(): boolean {
    return this.mode !== 'required';
  }
  /** True in required mode: a TLS candidate fails unless the peer proves who it is. */
  get authenticatesPeer(): boolean {
    return this.mode === 'required';
  }

  /** Does a peer certificate fingerprint (any accepted format, e.g. Node's `AB:CD:…`) match a pin? */
  isPinned(fingerprint: string): boolean {
    try {
      return this.pinnedServerCertificates.includes(normalizeFingerprint(fingerprint));
    } catch {
      return false;
    }
  }

  /** Node's TLS version range for `allowedProtocols`. */
  tlsVersions(): { minVersion: 'TLSv1.2' | 'TLSv1.3'; maxVersion: 'TLSv1.2' | 'TLSv1.3' } {
    const v = (p: TlsProtocol): 'TLSv1.2' | 'TLSv1.3' => (p === 'tls1.2' ? 'TLSv1.2' : 'TLSv1.3');
    const sorted = [...this.allowedProtocols].sort();
    return { minVersion: v(sorted[0] ?? 'tls1.2'), maxVersion: v(sorted[sorted.length - 1] ?? 'tls1.3') };
  }

  /** Safe to log: keys and PSKs are redacted, certificates summarised. */
  toJSON(): Record<string, unknown> {
    return {
      mode: this.mode, allowedProtocols: this.allowedProtocols, ca: this.ca ? `${this.ca.length} certificate(s)` : undefined,
      certificate: this.certificate === undefined ? undefined : 'set', key: this.key === undefined ? undefined : '[redacted]',
      pinnedServerCertificates: this.pinnedServerCertificates, alpn: this.alpn, serverName: this.serverName,
      verify: this.verify ? 'callback' : undefined, identityChallenge: this.identityChallenge ? 'callback' : undefined,
      ciphersuites: this.ciphersuites, groups: this.groups, signatureAlgorithms: this.signatureAlgorithms,
      sessionCacheLimit: this.sessionCacheLimit, sessionLifetimeSeconds: this.sessionLifetimeSeconds,
      psk: this.psk ? { identity: this.psk.identity, key: '[redacted]' } : undefined,
    };
  }
  /** Console output without key material. */
  [inspect.custom](): string {
    return `SecurityParameters ${inspect(this.toJSON(), { breakLength: Infinity })}`;
  }
}
