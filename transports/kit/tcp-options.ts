/**
 * What every driver over one TCP connection (tcp, tls) shares: the
 * capabilities of a TCP byte stream (RFC 9623 §5.1) and the driver options
 * `closeTimeout` (ms a graceful close may take) and `keepAlive` (seconds of
 * idle before TCP keep-alive probes), read and checked before any I/O.
 *
 * @example
 * const closeTimeout = closeTimeoutOption(attempt.options);
 * applyKeepAlive(socket, attempt.options);
 */
import type { Socket } from 'node:net';
import { NO_CAPABILITIES, type Capabilities } from '../../src/driver.js';
import { DEFAULT_CLOSE_TIMEOUT } from './socket-channel.js';

/** What a TCP byte stream offers (RFC 9623 §5.1): reliable, ordered, congestion-controlled, fully checksummed, keep-alive. */
export const TCP_CAPABILITIES: Capabilities = Object.freeze({
  ...NO_CAPABILITIES,
  reliable: true,
  ordered: true,
  congestionControl: true,
  fullChecksum: true,
  keepAlive: true,
});

/** Read `closeTimeout` from driver options (ms). */
export function closeTimeoutOption(options: Readonly<Record<string, unknown>>): number {
  const v = options['closeTimeout'];
  if (v === undefined) return DEFAULT_CLOSE_TIMEOUT;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`options.closeTimeout must be a number of ms >= 0, got ${String(v)}`);
  return v;
}

/** Apply `keepAlive` from driver options to a connected socket. */
export function applyKeepAlive(socket: Socket, options: Readonly<Record<string, unknown>>): void {
  const v = options['keepAlive'];
  if (v === undefined || v === false) return;
  if (v === true) socket.setKeepAlive(true);
  else if (typeof v === 'number' && Number.isFinite(v) && v > 0) socket.setKeepAlive(true, Math.round(v * 1000));
  else throw new RangeError(`options.keepAlive must be true or a number of seconds > 0, got ${String(v)}`);
}
