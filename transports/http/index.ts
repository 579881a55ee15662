/**
 * HTTP drivers on undici@7 (draft-ietf-taps-impl §HTTP, §HTTP/2): messages
 * are requests and responses, selected for endpoints whose URL scheme is
 * `http:` / `https:`.
 *
 * | id       | stack                    | ALPN       | multistream | openStream()                 |
 * |----------|--------------------------|------------|-------------|------------------------------|
 * | `http`   | http/1.1, tcp            | —          | no          | a parallel connection        |
 * | `https`  | http/1.1, tls, tcp       | http/1.1   | no          | a parallel connection        |
 * | `https2` | h2, tls, tcp             | h2 only    | yes         | a stream of the same session |
 *
 * Capabilities are declared per driver, so they are true before connecting:
 * `https2` fails establishment when the server does not negotiate h2, and
 * `https` never speaks h2. With both registered, an `https:` endpoint races
 * them (same security, RFC 9621 §3.3) and the default `multistreaming:
 * prefer` ranks `https2` first. See request.ts / exchange.ts for the message
 * fields, redirect.ts for redirects under policy, connect.ts for options.
 *
 * @example
 * import { httpDrivers } from 'taps-node/http';
 * for (const d of httpDrivers) registerDriver(d);
 *
 * @module taps-node/http
 */
export { httpDriver, httpsDriver, https2Driver, httpDrivers } from './drivers.js';
export { HttpChannel } from './channel.js';
export { httpError } from './errors.js';
export { DEFAULT_MAX_REDIRECTIONS } from './redirect.js';
export { DEFAULT_MAX_BUFFERED_BODY } from './connect.js';
export type { RedirectMode } from './request.js';
