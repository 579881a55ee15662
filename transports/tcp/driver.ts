/**
 * The `tcp` driver: a reliable, ordered, congestion-controlled byte stream
 * (RFC 9623 §5.1 TCP mapping). Connects to the checked IP and port only, ready after
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
 * ECONNREFUSED error); see ../kit/errors.ts for the full table.
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * const channel = await tcpDriver.connect(attempt); // attempt.target from scope.guard.authorize(...)
 */
import { createServer } from 'node:net';
import type { ConnectAttempt, Driver, DriverListener, ListenAttempt } from '../../src/driver.js';
import { meterReads, wireMeterFor } from '../kit/account.js';
import { connectTcp, onLibraryPath } from '../kit/dial.js';
import { SocketChannel, dialledAddress } from '../kit/socket-channel.js';
import { lazy } from '../kit/lazy.js';
import { TCP_CAPABILITIES, applyKeepAlive, closeTimeoutOption } from '../kit/tcp-options.js';
import { meterFor } from '../kit/meter.js';

// The listening code (../kit/socket-listener.ts) loads at the first listen(): a process that only connects,
// which is what the default set serves first, never compiles it.
const listening = lazy(() => import('../kit/socket-listener.js'));

/** The `tcp` driver: a reliable, ordered, unencrypted byte stream (RFC 9293), connect and listen. */
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
        // Every byte the socket reads is charged there, once, on the library's path too (the Connection counts none
        // of it): a driver keeping this channel from its Connection (reading it itself) reads nothing uncounted.
        const wire = wireMeterFor(undefined, attempt.target);
        if (wire !== undefined && onLibraryPath(socket)) meterReads(socket, wire);
        return new SocketChannel(socket, { closeTimeout, remote: dialledAddress(attempt.target), meter: meterFor(attempt), receiveMetered: wire !== undefined });
      }, attempt.unit);
    } catch (err) {
      return Promise.reject(err);
    }
  },

  listen(attempt: ListenAttempt): Promise<DriverListener> {
    const closeTimeout = closeTimeoutOption(attempt.options);
    return listening().then(({ bindServer }) => {
      const server = createServer({ allowHalfOpen: true, noDelay: true });
      // What each peer sends is charged at its socket, on the library's path too (off it, as it is accepted): a driver
      // keeping a peer's channel from the Listener (reading it itself) reads nothing uncounted.
      const wire = wireMeterFor(undefined, attempt.target);
      return bindServer(server, attempt, 'connection', (socket, libraryPath) => {
        if (wire !== undefined && libraryPath) meterReads(socket, wire);
        return new SocketChannel(socket, { closeTimeout, meter: meterFor(attempt), receiveMetered: wire !== undefined });
      }, 'tcp');
    });
  },
} satisfies Driver);
