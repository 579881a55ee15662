/**
 * undici's failures as TapsErrors with stable codes (STYLE §6: wrap, keep
 * the cause, never rewrite the message).
 *
 * | undici code                                   | TAPS code                    |
 * |-----------------------------------------------|------------------------------|
 * | UND_ERR_BODY_TIMEOUT, UND_ERR_HEADERS_TIMEOUT | ERR_TAPS_TIMEOUT             |
 * | UND_ERR_RES_EXCEEDED_MAX_SIZE                 | ERR_TAPS_MESSAGE_TOO_LARGE   |
 * | UND_ERR_SOCKET, ECONNRESET, EPIPE             | ERR_TAPS_CONNECTION_RESET    |
 * | HPE_* (malformed HTTP/1.1), ERR_HTTP2_*       | ERR_TAPS_PROTOCOL_FAILED     |
 * | UND_ERR_ABORTED, AbortError                   | ERR_TAPS_ABORTED             |
 * | anything else                                 | ERR_TAPS_PROTOCOL_FAILED     |
 *
 * @example
 * onResponseError(_c, err) { fail(httpError(err)) }
 */
import { TapsError, isTapsError, toTapsError } from '../../src/errors.js';

/** An error from undici or the socket, as a TapsError with a stable code (the original as `cause`). */
export function httpError(err: unknown): TapsError {
  if (isTapsError(err)) return err;
  const code = (err as { code?: unknown } | undefined)?.code;
  const message = (err as Error | undefined)?.message ?? String(err);
  switch (code) {
    case 'UND_ERR_BODY_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new TapsError('ERR_TAPS_TIMEOUT', message, { cause: err });
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new TapsError('ERR_TAPS_MESSAGE_TOO_LARGE', message, { cause: err });
    case 'UND_ERR_SOCKET':
      return new TapsError('ERR_TAPS_CONNECTION_RESET', message, { cause: err });
    case 'UND_ERR_ABORTED':
      return new TapsError('ERR_TAPS_ABORTED', message, { cause: err });
    default:
      break;
  }
  if (typeof code === 'string' && (code.startsWith('HPE_') || code.startsWith('ERR_HTTP2_'))) {
    return new TapsError('ERR_TAPS_PROTOCOL_FAILED', message, { cause: err });
  }
  return toTapsError(err, 'ERR_TAPS_PROTOCOL_FAILED');
}
