/**
 * How a WebSocket ends, as a TapsError: close codes (RFC 6455 §7.4) and ws's
 * own protocol errors map onto stable TAPS codes, and the close code and
 * reason travel on the error (`closeCode`, `closeReason`) and in
 * `channel.info`. A normal close (1000), "going away" (1001) and "no status"
 * (1005) are clean ends, not errors.
 *
 * | what happened                               | code                         |
 * |---------------------------------------------|------------------------------|
 * | peer closed 1002/1003/1007/1010/1011/1015   | ERR_TAPS_PROTOCOL_FAILED     |
 * | peer closed 1009, or we got a too-big frame | ERR_TAPS_MESSAGE_TOO_LARGE   |
 * | a malformed frame from the peer             | ERR_TAPS_PROTOCOL_FAILED     |
 * | socket reset                                | ERR_TAPS_CONNECTION_RESET    |
 * | TLS record failure under wss (ERR_SSL_*)    | ERR_TAPS_SECURITY_FAILED     |
 * | no close frame (1006), any other code       | ERR_TAPS_CONNECTION_ABORTED  |
 *
 * @example
 * conn.on('connectionError', (err) => { if (err instanceof WebSocketCloseError) log(err.closeCode, err.closeReason) });
 */
import { TapsError, type TapsErrorCode } from '../../src/errors.js';
import { channelError } from '../kit/errors.js';

/** A WebSocket that ended abnormally: carries the close code and reason. */
export class WebSocketCloseError extends TapsError {
  readonly closeCode: number;
  readonly closeReason: string;
  constructor(code: TapsErrorCode, message: string, closeCode: number, closeReason: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.closeCode = closeCode;
    this.closeReason = closeReason;
  }
}

/** Close codes that end a WebSocket cleanly. */
export function isCleanClose(code: number): boolean {
  return code === 1000 || code === 1001 || code === 1005;
}

function codeForClose(closeCode: number): TapsErrorCode {
  switch (closeCode) {
    case 1009:
      return 'ERR_TAPS_MESSAGE_TOO_LARGE';
    case 1002:
    case 1003:
    case 1007:
    case 1010:
    case 1011:
    case 1015:
      return 'ERR_TAPS_PROTOCOL_FAILED';
    default:
      return 'ERR_TAPS_CONNECTION_ABORTED';
  }
}

/** The error for a close the peer (or the network) caused; undefined for a clean close. */
export function closeError(closeCode: number, closeReason: string, socketError: Error | undefined): WebSocketCloseError | undefined {
  if (closeCode === 1006) {
    if (socketError) {
      // channelError: a TLS record failure under wss (bad MAC, bad record) is a security failure, as under tls.
      const t = channelError(socketError);
      return new WebSocketCloseError(t.code, `websocket closed abnormally: ${socketError.message}`, 1006, '', { cause: socketError });
    }
    return new WebSocketCloseError('ERR_TAPS_CONNECTION_ABORTED', 'websocket closed without a close frame (1006)', 1006, '');
  }
  if (isCleanClose(closeCode)) return undefined;
  const why = closeReason ? `: ${closeReason}` : '';
  return new WebSocketCloseError(codeForClose(closeCode), `peer closed the websocket with ${closeCode}${why}`, closeCode, closeReason);
}

/** ws's receiver errors (RangeError/Error with a WS_ERR_* code) → the close code ws sent and a TapsError. */
export function protocolError(err: Error & { code?: string }): WebSocketCloseError {
  const c = err.code ?? '';
  let closeCode = 1002;
  if (c === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') closeCode = 1009;
  else if (c === 'WS_ERR_INVALID_UTF8') closeCode = 1007;
  const code: TapsErrorCode = closeCode === 1009 ? 'ERR_TAPS_MESSAGE_TOO_LARGE' : 'ERR_TAPS_PROTOCOL_FAILED';
  return new WebSocketCloseError(code, `websocket protocol error: ${err.message}`, closeCode, '', { cause: err });
}
