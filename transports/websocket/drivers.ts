/**
 * The WebSocket driver objects (`ws`, `wss`), light to import: the default driver set (../defaults.ts)
 * loads this module for every process, and `ws` with the handshake and listener code loads only when a
 * WebSocket candidate is attempted or a listener bound. ./index.ts documents the stack.
 *
 * @example
 * import { websocketDrivers } from './drivers.js';
 */
import type { Capabilities, Driver } from '../../src/driver.js';
import { lazy } from '../kit/lazy.js';

const connecting = lazy(() => import('./connect.js'));
const listening = lazy(() => import('./listener.js'));

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
  connect: async (attempt) => (await connecting()).connectWebSocket(attempt, { secure: false }),
  listen: async (attempt) => (await listening()).listenWebSocket(attempt, false),
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
  connect: async (attempt) => (await connecting()).connectWebSocket(attempt, { secure: true }),
  listen: async (attempt) => (await listening()).listenWebSocket(attempt, true),
} satisfies Driver);

/** Both WebSocket drivers, for transports/defaults.ts. */
export const websocketDrivers: readonly Driver[] = Object.freeze([wsDriver, wssDriver]);
