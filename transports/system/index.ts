/**
 * The system pieces the library uses when the host supplies none: the
 * system resolver (getaddrinfo via `dns.lookup`).
 *
 * @example
 * import { systemResolver } from 'taps-node/node';
 * await systemResolver('localhost', 4, AbortSignal.timeout(1000));
 */
export { systemResolver } from './resolver.js';
