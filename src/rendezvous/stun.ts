/**
 * STUN messages (RFC 8489) for rendezvous: Binding requests and responses
 * with the ICE attributes connectivity checks carry (RFC 8445 §7.1: PRIORITY,
 * ICE-CONTROLLING / ICE-CONTROLLED, USE-CANDIDATE) and FINGERPRINT, encoded
 * and decoded by the `@msimerson/stun` package (a maintained fork of `stun`),
 * loaded the first time a rendezvous needs it.
 *
 * {@link looksLikeStun} is the cheap first test of RFC 7983 §7 a datagram
 * socket uses to tell STUN from application data: the first byte is 0–3 and
 * the magic cookie follows the length; only then is the message decoded, and
 * it counts only with a valid FINGERPRINT.
 *
 * @example
 * const stun = await loadStun();
 * const req = stun.request({ priority: 1, role: 'controlling', tieBreaker, useCandidate: false });
 * const msg = stun.parse(datagram); // undefined unless a well-formed STUN message with a valid fingerprint
 */
import { randomBytes } from 'node:crypto';
import { TapsError } from '../errors.js';

const MAGIC_COOKIE = 0x2112a442;

/** A parsed STUN message: what rendezvous reads from it. */
export interface StunMessage {
  readonly kind: 'request' | 'success' | 'error' | 'other';
  /** 12 bytes, hex. */
  readonly transaction: string;
  readonly xorAddress?: { readonly address: string; readonly port: number } | undefined;
  readonly errorCode?: number | undefined;
  readonly controlling?: bigint | undefined;
  readonly controlled?: bigint | undefined;
  readonly useCandidate: boolean;
  readonly priority?: number | undefined;
}

/** What a Binding request carries. */
export interface RequestInit {
  readonly priority?: number;
  readonly role?: 'controlling' | 'controlled';
  readonly tieBreaker?: bigint;
  readonly useCandidate?: boolean;
}

/** The STUN codec rendezvous uses. */
export interface Stun {
  /** A Binding request; returns its bytes and transaction id (hex). */
  request(init?: RequestInit): { readonly bytes: Uint8Array; readonly transaction: string };
  /** A Binding success response to `transaction`, telling the requester its address as seen here. */
  success(transaction: string, address: string, port: number): Uint8Array;
  /** A Binding error response (487 Role Conflict, RFC 8445 §7.3.1.1). */
  roleConflict(transaction: string): Uint8Array;
  /** The message, or undefined when the bytes are not a well-formed STUN message with a valid fingerprint. */
  parse(bytes: Uint8Array): StunMessage | undefined;
}

/** The cheap RFC 7983 test: could these bytes be a STUN message? */
export function looksLikeStun(bytes: Uint8Array): boolean {
  if (bytes.byteLength < 20 || bytes[0]! > 3) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return v.getUint32(4) === MAGIC_COOKIE && v.getUint16(2) + 20 === bytes.byteLength;
}

// The package's own surface, as far as rendezvous uses it (it ships no types).
interface PackageMessage {
  readonly type: number;
  readonly transactionId: Buffer;
  addPriority(n: number): unknown;
  addIceControlling(tb: Buffer): unknown;
  addIceControlled(tb: Buffer): unknown;
  addUseCandidate(): unknown;
  addXorAddress(address: string, port: number): unknown;
  addError(code: number, reason: string): unknown;
  addFingerprint(): unknown;
  toBuffer(): Buffer;
  getXorAddress(): { address: string; port: number } | undefined;
  getError(): { code: number } | undefined;
  getIceControlling(): Buffer | undefined;
  getIceControlled(): Buffer | undefined;
  getPriority(): number | undefined;
  getAttribute(type: number): unknown;
}
interface Package {
  createMessage(type: number, transaction?: Buffer): PackageMessage;
  decode(bytes: Buffer): PackageMessage;
  validateFingerprint(message: PackageMessage): boolean;
  constants: Record<string, number>;
}

let loading: Promise<Stun> | undefined;

/** Load the STUN package once; a missing package is ERR_TAPS_UNAVAILABLE, not a crash at import. */
export function loadStun(): Promise<Stun> {
  loading ??= import('@msimerson/stun').then(
    (m) => codec(((m as { default?: Package }).default ?? m) as Package),
    (err: unknown) => {
      loading = undefined;
      throw new TapsError('ERR_TAPS_UNAVAILABLE', 'rendezvous needs the @msimerson/stun package', { cause: err });
    },
  );
  return loading;
}

const tb = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};

function codec(pkg: Package): Stun {
  const c = pkg.constants;
  const BINDING_REQUEST = c['STUN_BINDING_REQUEST']!;
  const BINDING_RESPONSE = c['STUN_BINDING_RESPONSE']!;
  const BINDING_ERROR = c['STUN_BINDING_ERROR_RESPONSE']!;
  const USE_CANDIDATE = c['STUN_ATTR_USE_CANDIDATE']!;
  return {
    request(init = {}) {
      const m = pkg.createMessage(BINDING_REQUEST, randomBytes(12));
      if (init.priority !== undefined) m.addPriority(init.priority);
      if (init.role !== undefined && init.tieBreaker !== undefined) {
        if (init.role === 'controlling') m.addIceControlling(tb(init.tieBreaker));
        else m.addIceControlled(tb(init.tieBreaker));
      }
      if (init.useCandidate === true) m.addUseCandidate();
      m.addFingerprint();
      return { bytes: m.toBuffer(), transaction: m.transactionId.toString('hex') };
    },
    success(transaction, address, port) {
      const m = pkg.createMessage(BINDING_RESPONSE, Buffer.from(transaction, 'hex'));
      m.addXorAddress(address, port);
      m.addFingerprint();
      return m.toBuffer();
    },
    roleConflict(transaction) {
      const m = pkg.createMessage(BINDING_ERROR, Buffer.from(transaction, 'hex'));
      m.addError(487, 'Role Conflict');
      m.addFingerprint();
      return m.toBuffer();
    },
    parse(bytes) {
      if (!looksLikeStun(bytes)) return undefined;
      let m: PackageMessage;
      try {
        m = pkg.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        if (!pkg.validateFingerprint(m)) return undefined;
      } catch {
        return undefined; // malformed: a peer can never crash the process
      }
      const big = (b: Buffer | undefined): bigint | undefined => (b?.length === 8 ? b.readBigUInt64BE() : undefined);
      const kind = m.type === BINDING_REQUEST ? 'request' : m.type === BINDING_RESPONSE ? 'success' : m.type === BINDING_ERROR ? 'error' : 'other';
      const xor = kind === 'success' ? m.getXorAddress() : undefined;
      return {
        kind,
        transaction: m.transactionId.toString('hex'),
        xorAddress: xor ? { address: xor.address, port: xor.port } : undefined,
        errorCode: kind === 'error' ? m.getError()?.code : undefined,
        controlling: big(m.getIceControlling()),
        controlled: big(m.getIceControlled()),
        useCandidate: m.getAttribute(USE_CANDIDATE) !== undefined,
        priority: m.getPriority(),
      };
    },
  };
}
