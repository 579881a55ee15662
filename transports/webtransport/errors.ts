/**
 * How WebTransport failures surface: the package reports nearly everything as
 * "Opening handshake failed." or as a WebTransportError whose message holds
 * the detail; this module turns them into TapsErrors with stable codes and
 * keeps the numbers (HTTP status, stream error code, session close code) on a
 * {@link WebTransportError} so callers can branch on them.
 *
 * | when                    | what happened                                  | code                          |
 * |-------------------------|------------------------------------------------|-------------------------------|
 * | connect                 | TCP refused / unreachable                      | ERR_TAPS_ESTABLISHMENT_FAILED |
 * | connect                 | certificate, name, pin, ≤ 14-day rule, expiry  | ERR_TAPS_SECURITY_FAILED      |
 * | connect                 | no HTTP/2 (ALPN) or no extended CONNECT        | ERR_TAPS_ESTABLISHMENT_FAILED |
 * | connect                 | the server answered the CONNECT with non-2xx   | ERR_TAPS_ESTABLISHMENT_FAILED (`httpStatus`) |
 * | connect / listen        | signal aborted                                 | ERR_TAPS_ABORTED (cause: the reason) |
 * | established stream      | peer sent RESET_STREAM or STOP_SENDING         | ERR_TAPS_CONNECTION_RESET (`streamErrorCode`) |
 * | established stream      | the session closed under it                    | ERR_TAPS_CONNECTION_ABORTED (`sessionCloseCode`) |
 * | established stream      | local abort()                                  | ERR_TAPS_CONNECTION_ABORTED   |
 *
 * @example
 * conn.on('connectionError', (err) => { if (err instanceof WebTransportError) log(err.streamErrorCode) });
 */
import { TapsError, isTapsError, type TapsErrorCode } from '../../src/errors.js';

export interface WebTransportErrorDetail {
  /** The HTTP status of a refused extended CONNECT. */
  readonly httpStatus?: number;
  /** The application error code of RESET_STREAM / STOP_SENDING. */
  readonly streamErrorCode?: number;
  /** The code of the session close (CLOSE_WEBTRANSPORT_SESSION). */
  readonly sessionCloseCode?: number;
  readonly cause?: unknown;
}

/** A WebTransport failure with the protocol numbers that explain it. */
export class WebTransportError extends TapsError {
  readonly httpStatus: number | undefined;
  readonly streamErrorCode: number | undefined;
  readonly sessionCloseCode: number | undefined;
  constructor(code: TapsErrorCode, message: string, detail: WebTransportErrorDetail = {}) {
    super(code, message, detail.cause === undefined ? {} : { cause: detail.cause });
    this.httpStatus = detail.httpStatus;
    this.streamErrorCode = detail.streamErrorCode;
    this.sessionCloseCode = detail.sessionCloseCode;
  }
}

const RESET = /^Resetstream with code:(\d+)/;
const STOP = /^StopSending with code:(\d+)/;
const SESSION = /^Session closed .*with code (\S+) and reason ?(.*)$/s;

/** A rejection from a stream's reader or writer (the package's WebTransportError messages) as a TapsError. */
export function streamError(err: unknown): TapsError {
  if (isTapsError(err)) return err;
  const message = (err as Error | undefined)?.message ?? String(err);
  let m = RESET.exec(message);
  if (m) return new WebTransportError('ERR_TAPS_CONNECTION_RESET', `the peer reset the stream (RESET_STREAM, code ${m[1]})`, { streamErrorCode: Number(m[1]), cause: err });
  m = STOP.exec(message);
  if (m) return new WebTransportError('ERR_TAPS_CONNECTION_RESET', `the peer stopped reading the stream (STOP_SENDING, code ${m[1]})`, { streamErrorCode: Number(m[1]), cause: err });
  m = SESSION.exec(message);
  if (m) {
    const code = Number(m[1]);
    return sessionClosedError(Number.isFinite(code) ? code : undefined, m[2] ?? '', err);
  }
  return new WebTransportError('ERR_TAPS_CONNECTION_ABORTED', `the WebTransport stream failed: ${message}`, { cause: err });
}

/** What open streams get when their session closes under them. */
export function sessionClosedError(closeCode: number | undefined, reason: string, cause?: unknown): WebTransportError {
  const why = reason ? `: ${reason}` : '';
  return new WebTransportError('ERR_TAPS_CONNECTION_ABORTED', `the WebTransport session closed (code ${closeCode ?? 'none'})${why}`, {
    ...(closeCode === undefined ? {} : { sessionCloseCode: closeCode }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A refused extended CONNECT (RFC 8441 §4: the response to the CONNECT decides). */
export function handshakeRefused(status: number, path: string): WebTransportError {
  const what = status === 404 ? `no WebTransport endpoint at ${path}` : `the server refused the WebTransport session at ${path}`;
  return new WebTransportError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what} (HTTP ${status})`, { httpStatus: status });
}
