/**
 * The `tcp` driver: a reliable, ordered, congestion-controlled byte stream
 * (M §5.1 TCP mapping). Connects to the checked IP and port only, ready after
 * the TCP handshake. Listens with `net.createServer` at a checked local
 * address (port 0 allowed).
 *
 * Driver options (`preconnection.driverOptions.tcp`):
 * - `closeTimeout` (ms, default 2000): how long a graceful close waits for
 *   the peer's FIN before the socket is destroyed.
 * - `keepAlive` (seconds > 0, or true): enable TCP keep-alive at connect.
 * - listeners: `backlog` (number), `ipv6Only` (boolean).
 *
 * A refused connect rejects with ERR_TAPS_ESTABLISHMENT_FAILED (cause: the
 * ECONNREFUSED error); see ./errors.ts for the full table.
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * const channel = await tcpDriver.connect(attempt); // attempt.target from scope.guard.authorize(...)
 */
import { createServer, type Socket } from 'node:net';
import { NO_CAPABILITIES, type Capabilities, type ConnectAttempt, type Driver, type DriverListener, type ListenAttempt } from '../../src/driver.js';
import { DEFAULT_CLOSE_TIMEOUT, SocketChannel, dialledAddress } from './channel.js';
import { connectTcp } from './connect.js';
import { bindServer } from './listener.js';

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

export const tcpDriver: Driver = Object.freeze({
  id: 'tcp',
  stack: Object.freeze(['tcp']),
  protocol: 'tcp',
  ipProtocol: 'tcp',
  framing: 'stream',
  security: 'none',
  capabilities: TCP_CAPABILITIES,
  available: () => ({ available: true }) as const,

  connect(attempt: ConnectAttempt): Promise<SocketChannel> {
    // Not an async function (returning a promise from one costs extra ticks), so every failure is turned into a rejection here.
    try {
      const closeTimeout = closeTimeoutOption(attempt.options);
      return connectTcp(attempt.target, attempt.local, attempt.signal, 'tcp', (socket) => {
        applyKeepAlive(socket, attempt.options); // a bad option throws: the socket is destroyed and the connect rejects
        return new SocketChannel(socket, { closeTimeout, remote: dialledAddress(attempt.target) });
      });
    } catch (err) {
      return Promise.reject(err);
    }
  },

  listen(attempt: ListenAttempt): Promise<DriverListener> {
    const closeTimeout = closeTimeoutOption(attempt.options);
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    return bindServer(server, attempt, 'connection', (socket) => new SocketChannel(socket, { closeTimeout }), 'tcp');
  },
} satisfies Driver);
