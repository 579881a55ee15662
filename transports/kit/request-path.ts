/**
 * The request path of an HTTP-based handshake (the WebSocket upgrade, the
 * WebTransport extended CONNECT): it must start with '/' and hold only
 * visible ASCII without '#'; none or empty is '/'. Bad input is a TapsError
 * ERR_TAPS_INVALID_CONFIGURATION.
 *
 * @example
 * validatePath(undefined); // '/'
 * validatePath('/chat');   // '/chat'
 */
import { TapsError } from '../../src/errors.js';

const PATH = /^\/[\x21-\x22\x24-\x7e]*$/; // visible ASCII without '#'

/** The path to request: `path` checked, or '/' when none is given. */
export function validatePath(path: unknown): string {
  if (path === undefined || path === null || path === '') return '/';
  if (typeof path !== 'string' || !PATH.test(path)) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `invalid request path ${JSON.stringify(path)}: it must start with '/' and hold only visible ASCII without '#'`);
  }
  return path;
}
