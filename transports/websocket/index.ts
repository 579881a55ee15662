/**
 * WebSocket drivers (RFC 6455 on ws@8): `ws` over TCP and `wss` over TLS.
 * Reliable, ordered and message-preserving; selected for endpoints whose
 * URL scheme is `ws:` / `wss:` (RFC 9622 §6.1 endpoints with a scheme).
 * Endpoint `path` and `subprotocols` shape the opening handshake, which is
 * part of establishment. Options per driver id (`driverOptions.ws` /
 * `driverOptions.wss`): path, subprotocols, headers, maxPayload (also the
 * property `ws.maxPayload`; default 16 MiB), perMessageDeflate (default
 * false), handshakeTimeout (ms), closeTimeout (ms a closing handshake may
 * take before the socket is destroyed; default ws's 30 s).
 *
 * @example
 * import { wsDriver, wssDriver } from 'taps-node/websocket';
 * registerDriver(wssDriver);
 * const pre = new Preconnection({ scope, remote: RemoteEndpoint.from('wss://chat.example/room?x=1') });
 *
 * @module taps-node/websocket
 */
import type { Capabilities, Driver } from '../../src/driver.js';
import { connectWebSocket } from './connect.js';
import { listenWebSocket } from './listener.js';

export { WebSocketCloseError } from './errors.js';
export { DEFAULT_MAX_PAYLOAD } from './config.js';

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
  keepAlive: true,
});

/** WebSocket over TCP (`ws:` URLs): reliable, ordered messages, unencrypted. */
export const wsDriver: Driver = Object.freeze({
  id: 'ws',
  stack: Object.freeze(['websocket', 'tcp']),
  protocol: 'ws',
  ipProtocol: 'tcp',
  framing: 'message',
  security: 'none',
  capabilities: BASE,
  schemes: Object.freeze(['ws']),
  defaultPort: 80,
  available: () => ({ available: true }) as const,
  connect: (attempt) => connectWebSocket(attempt, { secure: false }),
  listen: (attempt) => listenWebSocket(attempt, false),
} satisfies Driver);

/** WebSocket over TLS (`wss:` URLs): reliable, ordered, encrypted messages. */
export const wssDriver: Driver = Object.freeze({
  id: 'wss',
  stack: Object.freeze(['websocket', 'tls', 'tcp']),
  protocol: 'wss',
  ipProtocol: 'tcp',
  framing: 'message',
  security: 'tls',
  capabilities: Object.freeze({ ...BASE, encrypted: true }),
  schemes: Object.freeze(['wss']),
  defaultPort: 443,
  available: () => ({ available: true }) as const,
  connect: (attempt) => connectWebSocket(attempt, { secure: true }),
  listen: (attempt) => listenWebSocket(attempt, true),
} satisfies Driver);

/** Both WebSocket drivers, for transports/defaults.ts. */
export const websocketDrivers: readonly Driver[] = Object.freeze([wsDriver, wssDriver]);
