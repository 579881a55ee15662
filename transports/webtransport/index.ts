/**
 * WebTransport drivers on `@fails-components/webtransport`: sessions of
 * bidirectional streams (a connection group, RFC 9622 §7.4) and, over
 * HTTP/3, datagrams. The policy sees every one of them as protocol
 * `webtransport` with the checked address and port.
 *
 * | id                          | stack                          | a channel is           | capabilities |
 * |-----------------------------|--------------------------------|------------------------|--------------|
 * | `webtransport-h2`           | webtransport, h2, tls, tcp     | one bidirectional stream | reliable, ordered, encrypted, multistream (streams share one TCP connection: head-of-line blocking stays), congestion controlled |
 * | `webtransport-h3`           | webtransport, h3, quic, udp    | one bidirectional stream | the same, multistream without head-of-line blocking |
 * | `webtransport-h3-datagram`  | webtransport, h3, quic, udp    | the session's datagrams  | unreliable, unordered, message boundaries, encrypted, congestion controlled |
 *
 * - Framing: stream channels carry bytes (`framing: 'stream'`; use a framer
 *   for messages). WebTransport's "datagrams" over HTTP/2 ride the TCP stream
 *   (reliable and ordered), so webtransport-h2 does not offer them at all: an
 *   unreliable-datagram request can never get them from it by mistake.
 * - Groups: `openStream()` (Connection `clone()`) opens another stream in the
 *   same session; streams the peer opens arrive at `receiver.stream` of the
 *   group's oldest open channel; the session closes with its last stream.
 * - Listeners: each session's first peer-opened stream is a new connection
 *   (`handler.connection`), its later ones arrive in that group as above.
 * - Endpoints: scheme `webtransport` names these stacks, e.g.
 *   `webtransport://chat.example:4433/room` means the WebTransport session
 *   at `https://chat.example:4433/room` (the `https` scheme names plain HTTP).
 *   The path is the endpoint's, or the driver option `path`.
 * - Security: encryption is always on. webtransport-h2 authenticates the
 *   server like the tls driver (CA + the checked name, pins, verify callback)
 *   on a socket of its own; pinned certificates must in addition be valid for
 *   at most 14 days (WebTransport `serverCertificateHashes`). HTTP/3 can use
 *   pins only (see ./h3.ts).
 * - HTTP/3 needs the optional native module
 *   `@fails-components/webtransport-transport-http3-quiche`; without it both
 *   h3 drivers report `{ available: false, reason: 'native HTTP/3 transport
 *   not installed (…; the HTTP/3 path is unverified)' }` from `installed()`
 *   as well, so a selection says `unavailable` whatever it asked for; they
 *   print nothing and load nothing.
 * - Options (per driver id): see ./config.ts. Errors: see ./errors.ts.
 *
 * @example
 * import { webtransportDrivers } from 'taps-node/webtransport';
 * for (const d of webtransportDrivers) registerDriver(d);
 * const pre = new Preconnection({ scope, remote: RemoteEndpoint.from('webtransport://localhost:4433/chat'),
 *   security: new SecurityParameters({ pinnedServerCertificates: [fingerprint256] }) });
 *
 * @module taps-node/webtransport
 */
import { NO_CAPABILITIES, type Availability, type Capabilities, type Driver } from '../../src/driver.js';
import { http2State, http3State } from './engine.js';
import { connectH2 } from './h2-client.js';
import { listenH2 } from './h2-server.js';
import { connectH3, listenH3 } from './h3.js';

export { WebTransportError } from './errors.js';
export { StreamChannel, COALESCE_LIMIT } from '../kit/web-stream-channel.js';
export { DatagramChannel } from './datagram.js';
export { DEFAULT_WINDOWS, DEFAULT_CLOSE_TIMEOUT } from './config.js';
export { MAX_PINNED_VALIDITY_MS } from './h2-client.js';

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
  connect: (attempt) => connectH2(attempt),
  listen: (attempt) => listenH2(attempt),
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
  connect: (attempt) => connectH3(attempt, 'streams'),
  listen: (attempt) => listenH3(attempt, 'streams'),
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
  connect: (attempt) => connectH3(attempt, 'datagrams'),
  listen: (attempt) => listenH3(attempt, 'datagrams'),
} satisfies Driver);

/** Every WebTransport driver, for transports/defaults.ts (HTTP/3 first: it is preferred when it can run). */
export const webtransportDrivers: readonly Driver[] = Object.freeze([webtransportH3Driver, webtransportH3DatagramDriver, webtransportH2Driver]);
