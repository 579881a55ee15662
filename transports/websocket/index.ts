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
export { wsDriver, wssDriver, websocketDrivers } from './drivers.js';
export { WebSocketCloseError } from './errors.js';
export { DEFAULT_MAX_PAYLOAD } from './config.js';
