/**
 * The HTTP driver objects (`http`, `https`, `https2`), light to import: the default driver set
 * (../defaults.ts) loads this module for every process, and undici with the exchange code loads only when
 * an HTTP candidate is attempted. ./index.ts documents the stack.
 *
 * @example
 * import { httpDrivers } from './drivers.js';
 */
import type { Capabilities, ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { lazy } from '../kit/lazy.js';
import type { HopDrivers } from './dial.js';
import type { HttpFlavour } from './connect.js';

const connecting = lazy(() => import('./connect.js'));

/** Connect as `self`, following redirect hops with {@link HOPS}. */
const connectAs = async (attempt: ConnectAttempt, flavour: HttpFlavour, self: Driver): Promise<TransportChannel> => (await connecting()).connectHttp(attempt, flavour, { self, hops: HOPS });

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
  connect: (attempt) => connectAs(attempt, { secure: false, alpn: [] }, httpDriver),
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
  connect: (attempt) => connectAs(attempt, { secure: true, alpn: ['http/1.1'] }, httpsDriver),
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
  connect: (attempt) => connectAs(attempt, { secure: true, alpn: ['h2'], requireAlpn: 'h2' }, https2Driver),
} satisfies Driver);

/**
 * An https: redirect hop: the `https` driver offering both h2 and http/1.1 (whichever the hop's server
 * speaks). Not registered: only a redirect hop opens it, through the scope's network (`follow`).
 */
const httpsHopDriver: Driver = Object.freeze({
  ...httpsDriver,
  stack: Object.freeze(['http/1.1|h2', 'tls', 'tcp']),
  connect: (attempt: ConnectAttempt) => connectAs(attempt, { secure: true, alpn: ['h2', 'http/1.1'] }, httpsHopDriver),
} satisfies Driver);

const HOPS: HopDrivers = Object.freeze({ http: httpDriver, https: httpsHopDriver });

/** All three HTTP drivers, for transports/defaults.ts. */
export const httpDrivers: readonly Driver[] = Object.freeze([httpDriver, httpsDriver, https2Driver]);
