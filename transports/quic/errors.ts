/**
 * How `@matrixai/quic` failures surface as TapsErrors. The package throws
 * classes named after what happened (`ErrorQUICConnectionLocalTLS`,
 * `ErrorQUICStreamPeerWrite`, ...); their names decide the code, and the QUIC
 * error number (a stream's RESET_STREAM/STOP_SENDING code, a connection's
 * CONNECTION_CLOSE code) is kept on {@link QuicError}.
 *
 * | when        | what happened                                          | code                          |
 * |-------------|--------------------------------------------------------|-------------------------------|
 * | connect     | no answer within `connectTimeout` (a silent UDP port)  | ERR_TAPS_TIMEOUT              |
 * | connect     | certificate, name, pin, verify callback                | ERR_TAPS_SECURITY_FAILED      |
 * | connect     | ALPN mismatch, peer refused                            | ERR_TAPS_ESTABLISHMENT_FAILED |
 * | connect     | ICMP port/host/net unreachable (at once, ./socket.ts)  | ERR_TAPS_ESTABLISHMENT_FAILED (cause: ECONNREFUSED, ...) |
 * | connect     | signal aborted                                         | ERR_TAPS_ABORTED              |
 * | stream      | the peer reset or stopped the stream                   | ERR_TAPS_CONNECTION_RESET (`quicErrorCode`) |
 * | stream      | the connection closed or idled out under it            | ERR_TAPS_CONNECTION_ABORTED   |
 * | established | one ICMP unreachable for the peer (client, ./peer-loss.ts) | soft error ERR_TAPS_PROTOCOL_FAILED; the connection stays |
 * | established | unreachables keep coming and the peer stopped answering | ERR_TAPS_CONNECTION_RESET (cause: ECONNREFUSED, ...) |
 *
 * @example
 * conn.on('connectionError', (e) => { if (e instanceof QuicError) log(e.quicErrorCode) });
 */
import { TapsError, isTapsError, type TapsErrorCode } from '../../src/errors.js';
import { stackless } from '../../src/stackless.js';

/** A QUIC failure with its protocol error number, when there is one. */
export class QuicError extends TapsError {
  /** RESET_STREAM / STOP_SENDING application code, or the CONNECTION_CLOSE error code. */
  readonly quicErrorCode: number | undefined;
  constructor(code: TapsErrorCode, message: string, quicErrorCode?: number, cause?: unknown) {
    super(code, message, cause === undefined ? {} : { cause });
    this.quicErrorCode = quicErrorCode;
  }
}

interface PackageError {
  readonly name?: string;
  readonly message?: string;
  readonly data?: { errorCode?: number; isApp?: boolean } | number;
  readonly cause?: unknown;
}

/** TLS alert range of QUIC CRYPTO_ERROR codes (RFC 9001 §4.8): 0x100 + alert. */
const CRYPTO_ERROR_START = 0x100;
const CRYPTO_ERROR_END = 0x1ff;
/** TLS alert no_application_protocol (RFC 8446 §6.2, RFC 9001 §8.1). */
const NO_APPLICATION_PROTOCOL = CRYPTO_ERROR_START + 120;

function codeOf(e: PackageError): number | undefined {
  if (typeof e.data === 'number') return e.data;
  if (e.data && typeof e.data.errorCode === 'number') return e.data.errorCode;
  return undefined;
}

function text(e: PackageError): string {
  const why = e.message && e.message.length > 0 ? e.message : (e.name ?? 'unknown QUIC error');
  const cause = (e.cause as Error | undefined)?.message;
  return cause ? `${why} (${cause})` : why;
}

/**
 * The package's `codeToReason`: what a reader or writer rejects with when the
 * peer sent RESET_STREAM (`read`) or STOP_SENDING (`write`) with `code`.
 */
export function codeToReason(type: 'read' | 'write', code: number): QuicError {
  const what = type === 'read' ? 'the peer reset the stream (RESET_STREAM' : 'the peer stopped reading the stream (STOP_SENDING';
  return new QuicError('ERR_TAPS_CONNECTION_RESET', `${what}, code ${code})`, code);
}

/** A failure while establishing a QUIC connection to `where`. */
export function connectError(err: unknown, where: string): TapsError {
  if (isTapsError(err)) return err;
  const e = (err ?? {}) as PackageError;
  const code = codeOf(e);
  const name = e.name ?? '';
  if (name === 'ErrorQUICClientCreateTimeout' || name === 'ErrorQUICConnectionStartTimeout' || name === 'ErrorQUICConnectionIdleTimeout') {
    return new QuicError('ERR_TAPS_TIMEOUT', `quic connect to ${where}: no QUIC handshake completed in time`, code, err);
  }
  if (code === NO_APPLICATION_PROTOCOL) {
    return new QuicError('ERR_TAPS_ESTABLISHMENT_FAILED', `quic connect to ${where}: the server speaks none of the offered ALPN protocols`, code, err);
  }
  if (name.endsWith('TLS') || (code !== undefined && code >= CRYPTO_ERROR_START && code <= CRYPTO_ERROR_END)) {
    return new QuicError('ERR_TAPS_SECURITY_FAILED', `quic connect to ${where}: the TLS handshake failed: ${text(e)}`, code, err);
  }
  return new QuicError('ERR_TAPS_ESTABLISHMENT_FAILED', `quic connect to ${where} failed: ${text(e)}`, code, err);
}

const ICMP_WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'refused (ICMP port unreachable)',
  EHOSTUNREACH: 'host unreachable (ICMP)',
  ENETUNREACH: 'network unreachable (ICMP)',
  EHOSTDOWN: 'host down (ICMP)',
  ENETDOWN: 'network down',
};

/** A QUIC connect ended by an ICMP error the kernel reported on the connected UDP socket (the attempt's answer: no stack, ../../src/stackless.ts). */
export function unreachableError(err: Error, where: string): TapsError {
  const code = (err as { code?: string }).code ?? 'unreachable';
  return stackless(() => new QuicError('ERR_TAPS_ESTABLISHMENT_FAILED', `quic connect to ${where} ${ICMP_WORDS[code] ?? 'failed'}: ${code}`, undefined, err));
}

/** An ICMP unreachable for the peer of an established connection: a soft error (RFC 9622 §8.3.1), the connection stays. */
export function unreachableSoftError(err: Error, where: string): TapsError {
  const code = (err as { code?: string }).code ?? 'unreachable';
  return new QuicError('ERR_TAPS_PROTOCOL_FAILED', `the network reported the QUIC peer ${where} ${ICMP_WORDS[code] ?? 'unreachable'}: ${code}; the connection stays open while the peer answers`, undefined, err);
}

/** The facts ./peer-loss.ts concluded from (ms). */
interface LossFacts {
  readonly reports: number;
  readonly unanswered: number;
  readonly pto: number;
}

/** The peer of an established connection is gone: ICMP unreachables kept coming and it stopped answering. */
export function peerGoneError(err: Error, where: string, facts: LossFacts): TapsError {
  const code = (err as { code?: string }).code ?? 'unreachable';
  return new QuicError(
    'ERR_TAPS_CONNECTION_RESET',
    `the QUIC peer ${where} is gone: ${facts.reports} ICMP reports (${code}: ${ICMP_WORDS[code] ?? 'unreachable'}), and no packet from it for ${Math.round(facts.unanswered)} ms after one was sent (probe timeout ~${Math.round(facts.pto)} ms, RFC 9002 §6.2)`,
    undefined,
    err,
  );
}

/** A reader/writer rejection of an established stream. */
export function quicStreamError(err: unknown): TapsError {
  if (isTapsError(err)) return err;
  const e = (err ?? {}) as PackageError;
  const name = e.name ?? '';
  const code = codeOf(e);
  if (name === 'ErrorQUICStreamPeerRead') return new QuicError('ERR_TAPS_CONNECTION_RESET', `the peer stopped reading the stream (STOP_SENDING, code ${code ?? 'none'})`, code, err);
  if (name === 'ErrorQUICStreamPeerWrite') return new QuicError('ERR_TAPS_CONNECTION_RESET', `the peer reset the stream (RESET_STREAM, code ${code ?? 'none'})`, code, err);
  return new QuicError('ERR_TAPS_CONNECTION_ABORTED', `the QUIC stream failed: ${text(e)}`, code, err);
}

/** What open streams get when their connection ends under them. */
export function connectionGoneError(err: unknown): TapsError {
  if (isTapsError(err)) return err;
  if (err === undefined) return new QuicError('ERR_TAPS_CONNECTION_ABORTED', 'the QUIC connection closed');
  const e = err as PackageError;
  const code = codeOf(e);
  if (e.name === 'ErrorQUICConnectionIdleTimeout') return new QuicError('ERR_TAPS_TIMEOUT', 'the QUIC connection idled out (no packets within maxIdleTimeout)', code, err);
  return new QuicError('ERR_TAPS_CONNECTION_ABORTED', `the QUIC connection closed: ${text(e)}`, code, err);
}
