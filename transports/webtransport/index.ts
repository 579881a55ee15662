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
export { webtransportH2Driver, webtransportH3Driver, webtransportH3DatagramDriver, webtransportDrivers } from './drivers.js';
export { WebTransportError } from './errors.js';
export { StreamChannel, COALESCE_LIMIT } from '../kit/web-stream-channel.js';
export { DatagramChannel } from './datagram.js';
export { DEFAULT_WINDOWS, DEFAULT_CLOSE_TIMEOUT } from './config.js';
export { MAX_PINNED_VALIDITY_MS } from './h2-client.js';
