/**
 * toTapsError: every kind of thrown thing becomes a TapsError with a stable
 * code and the original kept as `cause`.
 */
import { describe, expect, it } from 'vitest';
import { TapsError, isCertificateFailure, isTapsError, toTapsError } from '../../src/errors.js';
import { stackless } from '../../src/stackless.js';

const withCode = (code: string): Error => Object.assign(new Error(code), { code });

describe('toTapsError', () => {
  it.each([
    ['ECONNRESET', 'ERR_TAPS_CONNECTION_RESET'],
    ['EPIPE', 'ERR_TAPS_CONNECTION_RESET'],
    ['ETIMEDOUT', 'ERR_TAPS_TIMEOUT'],
    ['ENOTFOUND', 'ERR_TAPS_RESOLUTION_FAILED'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TAPS_SECURITY_FAILED'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_TAPS_SECURITY_FAILED'],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_TAPS_SECURITY_FAILED'],
    ['ERR_OSSL_EVP_BAD_DECRYPT', 'ERR_TAPS_SECURITY_FAILED'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TAPS_SECURITY_FAILED'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'ERR_TAPS_SECURITY_FAILED'],
    ['CERT_NOT_YET_VALID', 'ERR_TAPS_SECURITY_FAILED'],
    ['HOSTNAME_MISMATCH', 'ERR_TAPS_SECURITY_FAILED'],
    ['EWHATEVER', 'ERR_TAPS_PROTOCOL_FAILED'],
  ])('%s → %s, cause kept', (code, expected) => {
    const original = withCode(code);
    const t = toTapsError(original);
    expect(t.code).toBe(expected);
    expect(t.cause).toBe(original);
    expect(isTapsError(t)).toBe(true);
  });

  it('abort and timeout reasons keep their meaning', () => {
    expect(toTapsError(new DOMException('x', 'AbortError')).code).toBe('ERR_TAPS_ABORTED');
    expect(toTapsError(new DOMException('x', 'TimeoutError')).code).toBe('ERR_TAPS_TIMEOUT');
  });

  it('a TapsError passes through; the fallback code applies to unknown errors and non-errors', () => {
    const t = new TapsError('ERR_TAPS_TIMEOUT', 'slow');
    expect(toTapsError(t)).toBe(t);
    expect(toTapsError('boom', 'ERR_TAPS_SEND_FAILED')).toMatchObject({ code: 'ERR_TAPS_SEND_FAILED', message: 'boom', cause: 'boom' });
    expect(toTapsError(undefined).code).toBe('ERR_TAPS_PROTOCOL_FAILED');
  });
});

describe('isCertificateFailure', () => {
  it('tells a certificate that failed verification from other TLS failures', () => {
    const x509 = (code: string) => toTapsError(Object.assign(new Error(`tls: ${code}`), { code }));
    expect(isCertificateFailure(x509('ERR_TLS_CERT_ALTNAME_INVALID'))).toBe(true);
    expect(isCertificateFailure(x509('DEPTH_ZERO_SELF_SIGNED_CERT'))).toBe(true);
    expect(isCertificateFailure(new TapsError('ERR_TAPS_SECURITY_FAILED', 'the server certificate (SHA-256 AB) matches no pinned certificate'))).toBe(true);
    expect(isCertificateFailure(new TapsError('ERR_TAPS_SECURITY_FAILED', 'wrapped', { cause: Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' }) }))).toBe(true);
    // ALPN: the peer speaks no protocol we offered; another address or stack may well.
    expect(isCertificateFailure(x509('ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'))).toBe(false);
    expect(isCertificateFailure(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', 'refused'))).toBe(false);
    expect(isCertificateFailure(new Error('certificate'))).toBe(false);
  });
});

describe('stackless', () => {
  it('makes errors whose stack is the header only, and restores the stack trace limit after', () => {
    const before = Error.stackTraceLimit;
    const e = stackless(() => new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', 'refused'));
    expect(e.stack).toBe('TapsError: refused');
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error('x').stack!.split('\n').length).toBeGreaterThan(1);
  });

  it('restores the limit when making throws', () => {
    const before = Error.stackTraceLimit;
    expect(() => stackless(() => {
      throw new RangeError('boom');
    })).toThrow(RangeError);
    expect(Error.stackTraceLimit).toBe(before);
  });

  it('a frozen Error.stackTraceLimit: made as usual', () => {
    const desc = Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit')!;
    Object.defineProperty(Error, 'stackTraceLimit', { ...desc, writable: false });
    try {
      expect(stackless(() => new Error('x')).stack!.split('\n').length).toBeGreaterThan(1);
    } finally {
      Object.defineProperty(Error, 'stackTraceLimit', desc);
    }
  });
});
