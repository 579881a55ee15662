/**
 * The `quic` driver on `@matrixai/quic` (quiche over UDP, TLS 1.3): a
 * reliable, encrypted, congestion-controlled stack whose connections carry
 * many independent bidirectional streams — multistreaming without
 * head-of-line blocking, what the selector chooses when `multistreaming` is
 * preferred (RFC 9623 M §4.2.1 ranks it first then; on a UDP-blocked path the
 * TLS candidate takes over after one attempt delay).
 *
 * | id     | stack      | a channel is              | capabilities |
 * |--------|------------|---------------------------|--------------|
 * | `quic` | quic, udp  | one bidirectional stream  | reliable, ordered (per stream), encrypted, multistream, congestion controlled, full checksum |
 *
 * - Framing: streams carry bytes (`framing: 'stream'`); add a framer for
 *   messages. No datagrams: the package has no public QUIC DATAGRAM API
 *   (RFC 9221), so this driver never claims unreliable delivery. No 0-RTT
 *   either (the package offers none that works).
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
 * - Errors: ./errors.ts. Options: ./config.ts.
 *
 * @example
 * const pre = new Preconnection({ scope, remote: { hostName: 'localhost', port: 4433 },
 *   properties: new TransportProperties({ multistreaming: 'prefer' }),
 *   security: new SecurityParameters({ ca: caPem, alpn: ['myproto'] }), framers: [lengthPrefixFramer()] });
 * const conn = await pre.initiate();     // QUIC when it can be had, else TLS
 * const second = await conn.clone();     // another stream, same QUIC connection
 *
 * @module taps-node/quic
 */
import { NO_CAPABILITIES, type Capabilities, type Driver } from '../../src/driver.js';
import { connectQuic } from './client.js';
import { quicState } from './engine.js';
import { listenQuic } from './server.js';

export { QuicError } from './errors.js';
export { DEFAULT_ALPN, type QuicOptions } from './config.js';

/** What a QUIC stream gives: see the table above. */
export const QUIC_CAPABILITIES: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  reliable: true,
  ordered: true,
  encrypted: true,
  multistream: true,
  congestionControl: true,
  fullChecksum: true,
});

/** Raw QUIC streams over UDP (`@matrixai/quic`). */
export const quicDriver: Driver = Object.freeze({
  id: 'quic',
  stack: Object.freeze(['quic', 'udp']),
  protocol: 'quic',
  ipProtocol: 'udp',
  framing: 'stream',
  security: 'tls',
  capabilities: QUIC_CAPABILITIES,
  schemes: Object.freeze(['quic']),
  available: quicState,
  connect: (attempt) => connectQuic(attempt),
  listen: (attempt) => listenQuic(attempt),
} satisfies Driver);

/** The QUIC drivers, for transports/defaults.ts. */
export const quicDrivers: readonly Driver[] = Object.freeze([quicDriver]);
