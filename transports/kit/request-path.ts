/**
 * The request path of an HTTP-based handshake (the WebSocket upgrade, the
 * WebTransport extended CONNECT): it must start with '/' and hold only
 * visible ASCII without '#'; none or empty is '/'. Bad input is a TapsError
 * ERR_TAPS_INVALID_CONFIGURATION. Also the size a request head is charged
 * to the tenant's byte budget as ({@link headSize}), and a response head
 * ({@link responseHeadSize}).
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

/**
 * The bytes a request head puts on the wire, counted as its HTTP/1.1 text as undici writes it (request
 * line, `host`, `connection: keep-alive`, each field line, `content-length` when there is a body, the
 * blank line): what the tenant's byte budget is charged for the fields. HPACK (HTTP/2) usually sends fewer.
 */
export function headSize(method: string, path: string, authority: string, headers: Readonly<Record<string, string | string[]>>, bodyLength = 0): number {
  // "M P HTTP/1.1\r\n", "host: a\r\n", "connection: keep-alive\r\n", "\r\n"
  let n = method.length + path.length + 12 + 8 + Buffer.byteLength(authority) + 24 + 2;
  if (bodyLength > 0) n += 18 + String(bodyLength).length; // "content-length: N\r\n"
  for (const name in headers) {
    const v = headers[name]!;
    if (typeof v === 'string') n += name.length + 4 + Buffer.byteLength(v);
    else for (const one of v) n += name.length + 4 + Buffer.byteLength(one);
  }
  return n;
}

/**
 * The bytes a response head puts on the wire, counted as its HTTP/1.1 text (status line with an empty
 * reason phrase, each field line, the blank line): what a listener's byte budget is charged for a response
 * it answers with. HPACK (HTTP/2) usually sends fewer.
 */
export function responseHeadSize(status: number, headers: Readonly<Record<string, string>> = {}): number {
  // "HTTP/1.1 200 \r\n", "\r\n"
  let n = 15 + 2;
  for (const name in headers) n += name.length + 4 + Buffer.byteLength(headers[name]!);
  return n;
}
