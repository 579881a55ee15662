/**
 * The QUIC drivers on `@matrixai/quic` (quiche over UDP, TLS 1.3). `quic` is
 * a reliable, encrypted, congestion-controlled stack whose connections carry
 * many independent bidirectional streams — multistreaming without
 * head-of-line blocking, what the selector chooses when `multistreaming` is
 * preferred (RFC 9623 §4.2.1 ranks it first then; on a UDP-blocked path the
 * TLS candidate takes over after one attempt delay). `quic-dgram` adds QUIC
 * DATAGRAM (RFC 9221): encrypted unreliable messages, and per message a
 * choice of reliable or not, ordered or not, on one connection.
 *
 * | id           | stack                  | a channel is              | capabilities |
 * |--------------|------------------------|---------------------------|--------------|
 * | `quic`       | quic, udp              | one bidirectional stream  | reliable, ordered (per stream), encrypted, multistream, congestion controlled, full checksum |
 * | `quic-dgram` | quic-dgram, quic, udp  | one flow of messages: datagrams and a stream (./message-channel.ts) | message boundaries, per-message reliability and order, encrypted, multistream, congestion controlled, full checksum, no duplicates; messages unreliable and unordered unless the caller asks for per-message reliability (src/provided.ts) |
 *
 * - Framing: `quic` streams carry bytes (`framing: 'stream'`); add a framer
 *   for messages. `quic-dgram` carries messages (its wire form:
 *   ./datagram-wire.ts, docs/quic-datagrams.md), so the selector picks it for
 *   `TransportProperties.unreliableDatagram()` with security required, and for
 *   `perMsgReliability: 'require'`. The package has no public datagram API;
 *   ./datagram-mux.ts reaches quiche's. No 0-RTT (the package offers none that
 *   works).
 * - Datagrams are negotiated per connection: a `quic-dgram` candidate whose
 *   peer does not offer them fails (./client.ts), never falls back to a stream.
 *   One listener serves both stacks on one UDP port (./server.ts).
 * - Groups: `clone()` opens another stream of the same connection; streams
 *   the peer opens arrive as new grouped connections; the connection closes
 *   with its last stream (./group.ts).
 * - Policy: checked as protocol `quic` with the address and port, like every
 *   UDP candidate; the package gets the IP literal only (./client.ts).
 * - Security: always encrypted; authentication by CA + the checked name,
 *   pinned SHA-256, or the verify callback, like the tls driver (./verify.ts, ../kit/tls-verify.ts).
 *   ALPN is required by QUIC: `security.alpn`, else the `alpn` option, else
 *   `taps` (./config.ts); a mismatch fails with ERR_TAPS_ESTABLISHMENT_FAILED.
 * - The package and its native module load lazily; where they cannot load,
 *   the driver is reported unavailable with the reason.
 * - A vanished peer: a client's socket is connected, so the kernel reports
 *   the ICMP unreachables its packets draw. During the handshake one ends
 *   the attempt at once; after it each is a `softError`, and the connection
 *   ends with ERR_TAPS_CONNECTION_RESET once they keep coming and the peer
 *   left a packet unanswered for a probe timeout (ICMP is unauthenticated:
 *   ./peer-loss.ts). A listener's connections have no such report (one
 *   unconnected socket for all, to which Linux reports no ICMP): their
 *   peer's end is only seen by the idle timeout (`idleTimeout`, off by
 *   default) or the next write that is never acknowledged.
 * - Errors: ./errors.ts. Options: ./config.ts.
 *
 * @example
 * const pre = new Preconnection({ scope, remote: { hostName: 'localhost', port: 4433 },
 *   properties: new TransportProperties({ multistreaming: 'prefer' }),
 *   security: new SecurityParameters({ ca: caPem, alpn: ['myproto'] }), framers: [lengthPrefixFramer()] });
 * const conn = await pre.initiate();     // QUIC when it can be had, else TLS
 * const second = await conn.clone();     // another stream, same QUIC connection
 *
 * // Encrypted datagrams, reliable ones where a message asks (quic-dgram):
 * const game = await new Preconnection({ scope, remote, properties: TransportProperties.unreliableDatagram(),
 *   security: new SecurityParameters({ ca: caPem }) }).initiate();
 * await game.send(position, { msgLifetime: 16 });                  // a QUIC DATAGRAM
 * await game.send(input, { msgReliable: true, msgOrdered: true });  // on the connection's stream
 *
 * @module taps-node/quic
 */
export { quicDriver, quicDgramDriver, quicDrivers, QUIC_CAPABILITIES, QUIC_DGRAM_CAPABILITIES } from './drivers.js';
export { QuicError } from './errors.js';
export { DEFAULT_ALPN, type QuicOptions } from './config.js';
