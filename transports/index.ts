/**
 * `taps-node/node`: every Node driver this package ships, the default set
 * the registry loads, and the system resolver. Import a single stack from its
 * own subpath (`taps-node/tcp`, `taps-node/tls`, `taps-node/udp`) to load
 * only that one.
 *
 * @example
 * import { tcpDriver, tlsDriver, udpDriver, wssDriver, systemResolver } from 'taps-node/node';
 *
 * @module taps-node/node
 */
export * from './tcp/index.js';
export * from './tls/index.js';
export * from './udp/index.js';
export { wsDriver, wssDriver, websocketDrivers } from './websocket/index.js';
export { httpDriver, httpsDriver, https2Driver, httpDrivers } from './http/index.js';
export { quicDriver, quicDrivers, QuicError, QUIC_CAPABILITIES } from './quic/index.js';
export {
  webtransportH2Driver,
  webtransportH3Driver,
  webtransportH3DatagramDriver,
  webtransportDrivers,
  WebTransportError,
} from './webtransport/index.js';
export { systemResolver } from './system/resolver.js';
export { drivers, BUILTIN_DRIVERS, OPTIONAL_DRIVERS, type OptionalDrivers } from './defaults.js';
