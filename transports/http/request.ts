/**
 * An HTTP request from a TAPS message (draft-ietf-taps-impl §HTTP "Send":
 * header values in the message context, the body as message data).
 *
 * `meta.fields` of a send on an http/https channel:
 *
 * | field        | type                                   | default                                  |
 * |--------------|----------------------------------------|------------------------------------------|
 * | method       | token                                  | `GET` for an empty body, else `POST`     |
 * | path         | origin-form (`/a?b`) or `*`            | the endpoint's path, else `/`            |
 * | headers      | Record<string, string \| string[]>     | none                                     |
 * | redirect     | `'manual' \| 'follow' \| 'error'`      | the channel's (`manual` unless set)      |
 * | stream       | boolean: deliver the response in pieces | false (pieces anyway above maxBufferedBody) |
 * | endOfMessage | false: more body follows in later sends | true                                     |
 * | bodyTimeout  | ms between response body chunks        | the channel's                            |
 *
 * A `Host` (or `:authority`) header naming anything other than the checked
 * name is refused with SendError ERR_TAPS_INVALID_MESSAGE_PROPERTIES (the
 * message is data, so a bad one fails the send, not the caller's stack); a
 * matching one is dropped and undici writes the checked name itself. Headers
 * that belong to the connection (connection, upgrade, transfer-encoding,
 * keep-alive, te, http2-settings) are refused the same way.
 *
 * @example
 * channel.send(body, { fields: { method: 'PUT', path: '/doc/1', headers: { 'content-type': 'text/plain' } } }, done);
 */
import { SendError } from '../../src/errors.js';

/** What an HTTP connection does with a redirect: return it (`manual`), follow it under policy, or fail. */
export type RedirectMode = 'manual' | 'follow' | 'error';
export const REDIRECT_MODES: readonly RedirectMode[] = Object.freeze(['manual', 'follow', 'error']);

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly redirect: RedirectMode;
  readonly stream: boolean;
  readonly endOfMessage: boolean;
  readonly bodyTimeout: number | undefined;
}

export interface RequestDefaults {
  readonly path: string;
  readonly redirect: RedirectMode;
  /** The only Host value allowed (`name[:port]`, lowercase). */
  readonly authority: string;
  /** The same authority with the scheme's default port spelled out, also accepted. */
  readonly authorityWithPort: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
const PATH = /^\/[\x21-\x7e]*$/;
const CONNECTION_HEADERS = new Set(['connection', 'upgrade', 'transfer-encoding', 'keep-alive', 'te', 'http2-settings', 'proxy-connection']);
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACK']);

function refuse(message: string): SendError {
  return new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', message);
}

function headerValue(name: string, v: unknown): string | string[] {
  const one = (x: unknown): string => {
    if (typeof x === 'number') return String(x);
    if (typeof x !== 'string' || BAD_VALUE.test(x)) throw refuse(`header ${name} must be a string without CR, LF or NUL`);
    return x;
  };
  return Array.isArray(v) ? v.map(one) : one(v);
}

/** Read and check one request; throws SendError ERR_TAPS_INVALID_MESSAGE_PROPERTIES. */
export function parseRequest(fields: Readonly<Record<string, unknown>> | undefined, bodyLength: number, d: RequestDefaults): HttpRequest {
  const f = fields ?? {};
  const rawMethod = f['method'] ?? (bodyLength > 0 || f['endOfMessage'] === false ? 'POST' : 'GET');
  if (typeof rawMethod !== 'string' || !TOKEN.test(rawMethod)) throw refuse(`invalid HTTP method ${JSON.stringify(rawMethod)}`);
  const method = rawMethod.toUpperCase() === rawMethod ? rawMethod : rawMethod.toUpperCase();
  if (FORBIDDEN_METHODS.has(method)) throw refuse(`method ${method} is not allowed on an HTTP channel`);
  const path = f['path'] ?? d.path;
  if (typeof path !== 'string' || !(PATH.test(path) || (path === '*' && method === 'OPTIONS'))) {
    throw refuse(`invalid request path ${JSON.stringify(path)}: it must start with '/' and hold only visible ASCII`);
  }
  const headers: Record<string, string | string[]> = {};
  const given = f['headers'];
  if (given !== undefined && given !== null) {
    if (typeof given !== 'object' || Array.isArray(given)) throw refuse('headers must be an object of header name → value');
    for (const [k, v] of Object.entries(given as Record<string, unknown>)) {
      const name = k.toLowerCase();
      if (name === 'host' || name === ':authority') {
        const value = typeof v === 'string' ? v.toLowerCase() : undefined;
        if (value !== d.authority && value !== d.authorityWithPort) {
          throw refuse(`the ${k} header must name the checked host ${d.authority}, got ${JSON.stringify(v)}`);
        }
        continue;
      }
      if (!TOKEN.test(k)) throw refuse(`invalid header name ${JSON.stringify(k)}`);
      if (CONNECTION_HEADERS.has(name)) throw refuse(`header ${k} belongs to the connection and may not be set`);
      headers[name] = headerValue(k, v);
    }
  }
  const redirect = f['redirect'] ?? d.redirect;
  if (!REDIRECT_MODES.includes(redirect as RedirectMode)) throw refuse(`redirect must be one of ${REDIRECT_MODES.join(', ')}, got ${String(redirect)}`);
  const stream = f['stream'] ?? false;
  if (typeof stream !== 'boolean') throw refuse('stream must be a boolean');
  const bodyTimeout = f['bodyTimeout'];
  if (bodyTimeout !== undefined && (typeof bodyTimeout !== 'number' || !(bodyTimeout >= 0))) throw refuse('bodyTimeout must be a number of ms (0: none)');
  return {
    method,
    path,
    headers,
    redirect: redirect as RedirectMode,
    stream,
    endOfMessage: f['endOfMessage'] !== false,
    bodyTimeout: bodyTimeout as number | undefined,
  };
}
