/**
 * The WebTransport driver objects (`webtransport-h2`, `webtransport-h3`, `webtransport-h3-datagram`),
 * light to import: the default driver set (../defaults.ts) loads this module for every process, and the
 * session code only when a WebTransport candidate is attempted or a listener bound. Whether each can run
 * here is answered from what is installed (./engine.ts). ./index.ts documents the stack.
 *
 * @example
 * import { webtransportDrivers } from './drivers.js';
 */
import { NO_CAPABILITIES, type Availability, type Capabilities, type Driver } from '../../src/driver.js';
import { lazy } from '../kit/lazy.js';
import { http2State, http3State } from './engine.js';

const h2Client = lazy(() => import('./h2-client.js'));
const h2Server = lazy(() => import('./h2-server.js'));
const h3 = lazy(() => import('./h3.js'));

const STREAMS: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  reliable: true,
  ordered: true,
  encrypted: true,
  multistream: true,
  congestionControl: true,
  fullChecksum: true,
  keepAlive: true,
});

const DATAGRAMS: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  messageBoundaries: true,
  encrypted: true,
  congestionControl: true,
  fullChecksum: true,
});

const SCHEMES = Object.freeze(['webtransport']);

function stateOf(state: () => Availability): () => Availability {
  return () => {
    try {
      return state();
    } catch (err) {
      return { available: false, reason: `cannot tell whether WebTransport is installed: ${(err as Error)?.message ?? String(err)}` };
    }
  };
}

/** WebTransport over HTTP/2 (pure JS): reliable streams only; see the table above. */
export const webtransportH2Driver: Driver = Object.freeze({
  id: 'webtransport-h2',
  stack: Object.freeze(['webtransport', 'h2', 'tls', 'tcp']),
  protocol: 'webtransport',
  ipProtocol: 'tcp',
  framing: 'stream',
  security: 'tls',
  capabilities: STREAMS,
  schemes: SCHEMES,
  defaultPort: 443,
  available: stateOf(http2State),
  connect: async (attempt) => (await h2Client()).connectH2(attempt),
  listen: async (attempt) => (await h2Server()).listenH2(attempt),
} satisfies Driver);

/** WebTransport over HTTP/3 streams; unavailable without the native module. */
export const webtransportH3Driver: Driver = Object.freeze({
  id: 'webtransport-h3',
  stack: Object.freeze(['webtransport', 'h3', 'quic', 'udp']),
  protocol: 'webtransport',
  ipProtocol: 'udp',
  framing: 'stream',
  security: 'tls',
  // keepAlive: QUIC PING frames are the native client's business, not something this driver can switch.
  capabilities: Object.freeze({ ...STREAMS, keepAlive: false }),
  schemes: SCHEMES,
  defaultPort: 443,
  available: stateOf(http3State),
  installed: stateOf(http3State),
  connect: async (attempt) => (await h3()).connectH3(attempt, 'streams'),
  listen: async (attempt) => (await h3()).listenH3(attempt, 'streams'),
} satisfies Driver);

/** WebTransport over HTTP/3 datagrams: unreliable, unordered messages; unavailable without the native module. */
export const webtransportH3DatagramDriver: Driver = Object.freeze({
  id: 'webtransport-h3-datagram',
  stack: Object.freeze(['webtransport', 'h3', 'quic', 'udp']),
  protocol: 'webtransport',
  ipProtocol: 'udp',
  framing: 'message',
  security: 'tls',
  capabilities: DATAGRAMS,
  schemes: SCHEMES,
  defaultPort: 443,
  available: stateOf(http3State),
  installed: stateOf(http3State),
  connect: async (attempt) => (await h3()).connectH3(attempt, 'datagrams'),
  listen: async (attempt) => (await h3()).listenH3(attempt, 'datagrams'),
} satisfies Driver);

/** Every WebTransport driver, for transports/defaults.ts (HTTP/3 first: it is preferred when it can run). */
export const webtransportDrivers: readonly Driver[] = Object.freeze([webtransportH3Driver, webtransportH3DatagramDriver, webtransportH2Driver]);
