/**
 * The QUIC driver objects (`quic`, `quic-dgram`), light to import: the default driver set (../defaults.ts)
 * loads this module for every process; the client and server code loads when a QUIC candidate is
 * attempted or a listener bound, and the package with its native module when `available()` is first
 * asked (./engine.ts). ./index.ts documents the stack.
 *
 * @example
 * import { quicDrivers } from './drivers.js';
 */
import { NO_CAPABILITIES, type Capabilities, type Driver } from '../../src/driver.js';
import { messageDefaults } from '../../src/provided.js';
import { lazy } from '../kit/lazy.js';
import { quicLoaded, quicState } from './engine.js';

const client = lazy(() => import('./client.js'));
const server = lazy(() => import('./server.js'));

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

/**
 * What a `quic-dgram` flow gives: see the table above. Its messages go unreliably and unordered unless they
 * (or, with perMsgReliability, the selection properties) say otherwise.
 */
export const QUIC_DGRAM_CAPABILITIES: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  reliable: false,
  ordered: false,
  messageBoundaries: true,
  perMsgReliability: true,
  encrypted: true,
  multistream: true,
  congestionControl: true,
  fullChecksum: true,
  duplicateFree: true,
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
  sharedListener: 'quic',
  available: quicState,
  loaded: quicLoaded,
  connect: async (attempt) => (await client()).connectQuic(attempt),
  listen: async (attempt) => (await server()).listenQuic(attempt, { bound: quicDriver, streams: quicDriver, messages: quicDgramDriver }),
} satisfies Driver);

/** QUIC with datagrams: encrypted messages, reliable or not per message (`@matrixai/quic`, RFC 9221). */
export const quicDgramDriver: Driver = Object.freeze({
  id: 'quic-dgram',
  stack: Object.freeze(['quic-dgram', 'quic', 'udp']),
  protocol: 'quic',
  ipProtocol: 'udp',
  framing: 'message',
  security: 'tls',
  capabilities: QUIC_DGRAM_CAPABILITIES,
  schemes: Object.freeze(['quic']),
  sharedListener: 'quic',
  available: quicState,
  loaded: quicLoaded,
  connect: async (attempt) => (await client()).connectQuic(attempt, messageDefaults(quicDgramDriver, attempt.properties)),
  listen: async (attempt) => (await server()).listenQuic(attempt, { bound: quicDgramDriver, streams: quicDriver, messages: quicDgramDriver }),
} satisfies Driver);

/** The QUIC drivers, for transports/defaults.ts. */
export const quicDrivers: readonly Driver[] = Object.freeze([quicDriver, quicDgramDriver]);
