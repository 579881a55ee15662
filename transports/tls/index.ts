/**
 * `taps-node/tls`: the TLS-over-TCP driver and the helper that turns
 * SecurityParameters into `node:tls` options (for wss/https drivers too).
 *
 * @example
 * import { tlsDriver, tlsClientOptions } from 'taps-node/tls';
 * registerDriver(tlsDriver);
 *
 * @module taps-node/tls
 */
export { tlsDriver, TLS_CAPABILITIES } from './driver.js';
export { tlsInfo } from '../kit/tls-client.js';
export { tlsClientOptions, tlsServerOptions, type ClientTlsPlan } from '../kit/tls-options.js';
export { verifyPeer, checkPins, peerLeaf, type PeerLeaf } from '../kit/tls-verify.js';
export { clearSessions, DEFAULT_SESSION_LIMIT, DEFAULT_SESSION_LIFETIME_S } from '../kit/tls-sessions.js';
