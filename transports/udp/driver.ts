/**
 * The `udp` driver: connected datagrams (RFC 9623 §5.2 UDP mapping). Unreliable,
 * unordered, message-preserving, not congestion controlled, checksummed
 * (RFC 768's checksum, mandatory over IPv6 and on by default over IPv4 on
 * Linux, covers the whole datagram). ICMP errors surface as soft errors
 * (`ChannelReceiver.softError`, RFC 9622 §8.3.1).
 *
 * Driver options (`driverOptions.udp`): `recvBufferSize` (bytes; else the
 * property `udp.recvBufferSize`; default 4 MiB, which made a 200k-datagram
 * loopback blast lossless here), `sendBufferSize`, `pathMtu` (for
 * singularTransmissionMsgMaxLen), `sendHighWater` (sends in flight before
 * `send()` returns false; default 32); listeners: `maxPeers`, `idleTimeout` (ms),
 * `ipv6Only`. Channel `info`: `recvBufferSize`/`sendBufferSize` as granted by
 * the OS (Linux reports double the request).
 *
 * @example
 * import { udpDriver } from 'taps-node/udp';
 * const channel = await udpDriver.connect(attempt);
 * channel.send(new TextEncoder().encode('ping'), {}, (err) => {});
 */
import { NO_CAPABILITIES, type Capabilities, type Driver } from '../../src/driver.js';
import { lazy } from '../kit/lazy.js';

// The code behind connect, listen and the rendezvous socket loads on first use (../kit/lazy.ts): the default
// driver set holds this driver, and a process that never uses UDP never compiles it.
const connecting = lazy(() => import('./connect.js'));
const listening = lazy(() => import('./listener.js'));
const peerSockets = lazy(() => import('./peer-socket.js'));

/** What the `udp` stack honours: message boundaries only (no reliability, order or congestion control). */
export const UDP_CAPABILITIES: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  reliable: false,
  ordered: false,
  messageBoundaries: true,
  perMsgReliability: false,
  congestionControl: false,
  fullChecksum: true,
  keepAlive: false,
});

/** The `udp` driver: connected datagrams (RFC 768), listeners that demultiplex by peer. */
export const udpDriver: Driver = Object.freeze({
  id: 'udp',
  stack: Object.freeze(['udp']),
  protocol: 'udp',
  ipProtocol: 'udp',
  framing: 'message',
  security: 'none',
  capabilities: UDP_CAPABILITIES,
  multicast: true,
  available: () => ({ available: true }) as const,
  connect: async (attempt) => (await connecting()).connectUdp(attempt),
  listen: async (attempt) => (await listening()).listenUdp(attempt),
  openPeerSocket: async (attempt) => (await peerSockets()).openPeerSocket(attempt),
} satisfies Driver);
