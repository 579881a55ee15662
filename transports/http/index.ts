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
import type { Capabilities, ConnectAttempt, Driver } from '../../src/driver.js';
import type { HopDrivers } from './dial.js';
import { connectHttp } from './connect.js';

export { HttpChannel } from './channel.js';
export { httpError } from './errors.js';
export { DEFAULT_MAX_REDIRECTIONS } from './redirect.js';
export { DEFAULT_MAX_BUFFERED_BODY } from './connect.js';
export type { RedirectMode } from './request.js';

const BASE: Capabilities = Object.freeze({
  reliable: true,
  ordered: true,
  messageBoundaries: true,
  perMsgReliability: false,
  encrypted: false,
  multistream: false,
  zeroRtt: false,
  congestionControl: true,
  fullChecksum: true,
  keepAlive: false,
});

const available = () => ({ available: true }) as const;

/** HTTP/1.1 over TCP (`http:` URLs): each message a request, its response the reply. */
export const httpDriver: Driver = Object.freeze({
  id: 'http',
  stack: Object.freeze(['http/1.1', 'tcp']),
  protocol: 'http',
  ipProtocol: 'tcp',
  framing: 'message',
  security: 'none',
  capabilities: BASE,
  schemes: Object.freeze(['http']),
  defaultPort: 80,
  available,
  connect: (attempt) => connectHttp(attempt, { secure: false, alpn: [] }, { self: httpDriver, hops: HOPS }),
} satisfies Driver);

/** HTTP/1.1 over TLS (`https:` URLs); `clone()` opens a pooled parallel connection. */
export const httpsDriver: Driver = Object.freeze({
  id: 'https',
  stack: Object.freeze(['http/1.1', 'tls', 'tcp']),
  protocol: 'https',
  ipProtocol: 'tcp',
  framing: 'message',
  security: 'tls',
  capabilities: Object.freeze({ ...BASE, encrypted: true }),
  schemes: Object.freeze(['https']),
  defaultPort: 443,
  available,
  connect: (attempt) => connectHttp(attempt, { secure: true, alpn: ['http/1.1'] }, { self: httpsDriver, hops: HOPS }),
} satisfies Driver);

/** HTTP/2 over TLS (`https:` URLs, ALPN h2): requests are streams of one connection; `clone()` is another stream. */
export const https2Driver: Driver = Object.freeze({
  id: 'https2',
  stack: Object.freeze(['h2', 'tls', 'tcp']),
  protocol: 'https',
  ipProtocol: 'tcp',
  framing: 'message',
  security: 'tls',
  capabilities: Object.freeze({ ...BASE, encrypted: true, multistream: true }),
  schemes: Object.freeze(['https']),
  defaultPort: 443,
  available,
  connect: (attempt) => connectHttp(attempt, { secure: true, alpn: ['h2'], requireAlpn: 'h2' }, { self: https2Driver, hops: HOPS }),
} satisfies Driver);

/**
 * An https: redirect hop: the `https` driver offering both h2 and http/1.1 (whichever the hop's server
 * speaks). Not registered: only a redirect hop opens it, through the scope's network (`follow`).
 */
const httpsHopDriver: Driver = Object.freeze({
  ...httpsDriver,
  stack: Object.freeze(['http/1.1|h2', 'tls', 'tcp']),
  connect: (attempt: ConnectAttempt) => connectHttp(attempt, { secure: true, alpn: ['h2', 'http/1.1'] }, { self: httpsHopDriver, hops: HOPS }),
} satisfies Driver);

const HOPS: HopDrivers = Object.freeze({ http: httpDriver, https: httpsHopDriver });

/** All three HTTP drivers, for transports/defaults.ts. */
export const httpDrivers: readonly Driver[] = Object.freeze([httpDriver, httpsDriver, https2Driver]);
