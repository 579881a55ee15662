/**
 * A {@link DriverListener} over a `net.Server` or `tls.Server`, shared by the
 * tcp and tls drivers. Binding resolves once the server listens (port 0
 * picks a free port, read back from `local`). Each accepted (for TLS:
 * handshaken) socket becomes a channel, handed over through an
 * {@link AcceptQueue}: channels that arrive before `start()` wait and are
 * handed over in order. `close()` stops accepting and aborts queued channels
 * nobody took; channels already handed out stay open. A server error after
 * binding closes the server and goes to `handler.error`, at `start()` if it
 * came before.
 *
 * @example
 * const listener = await bindServer(net.createServer({ allowHalfOpen: true }), attempt, 'connection', (s) => new SocketChannel(s), 'tcp');
 * listener.start({ connection: (ch) => serve(ch), error: (e) => log(e) });
 */
import type { Server, Socket } from 'node:net';
import { debuglog } from 'node:util';
import type { DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import { abortedError, throwIfAborted, whenAborted } from './abort.js';
import { AcceptQueue } from './accept-queue.js';
import { holdUntilClose, listenUnit, meterReads, takeSocketUnit, wireMeterFor, type SocketUnit } from './account.js';
import { targetAddress } from './dial.js';
import { channelError } from './errors.js';

const log = debuglog('taps');

export class SocketListener implements DriverListener {
  readonly local: SocketAddress;
  readonly #server: Server;
  readonly #queue = new AcceptQueue();
  #closing: Promise<void> | undefined;
  readonly #sockets = new Set<Socket>();

  /**
   * `admit`: called with each accepted TCP socket first; false drops it at once (a listener opened outside
   * the library's path: each peer takes a unit of `limit connections`, see `bindServer`).
   */
  constructor(server: Server, event: 'connection' | 'secureConnection', wrap: (socket: Socket) => TransportChannel, admit?: (socket: Socket) => boolean) {
    this.#server = server;
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new TypeError('server must be listening on an IP address');
    this.local = Object.freeze({ address: addr.address, port: addr.port, family: addr.family === 'IPv6' ? 6 : 4 });
    // Sockets that have not become channels yet (for TLS: still in the handshake) die with the listener.
    server.on('connection', (socket: Socket) => {
      if (admit !== undefined && !admit(socket)) {
        socket.on('error', () => {});
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    server.on(event, (socket: Socket) => {
      if (socket.destroyed) return; // dropped by `admit`
      // A TLS socket wraps the accepted TCP socket (Node keeps it as `_parent`): that one is handed out now.
      this.#sockets.delete((socket as Socket & { _parent?: Socket })._parent ?? socket);
      if (this.#queue.closed) {
        socket.destroy();
        return;
      }
      let channel: TransportChannel;
      try {
        channel = wrap(socket);
      } catch (err) {
        log('listener: could not wrap an accepted socket: %s', (err as Error).message);
        socket.destroy();
        return;
      }
      this.#queue.offer(channel);
    });
    server.on('error', (err: Error) => {
      log('listener error: %s', err.message);
      void this.close();
      this.#queue.fail(channelError(err));
    });
  }

  start(handler: DriverListenerHandler): void {
    this.#queue.start(handler);
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#queue.close();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    // net.Server's close callback waits for every accepted connection; the listening handle closes now.
    this.#server.close();
    this.#closing = Promise.resolve();
    return this.#closing;
  }
}

/**
 * The peers of a listener opened outside the library's path (a driver called directly): the library's
 * Listener takes a unit per peer itself, nobody else would. Each accepted socket takes a unit of
 * `limit connections` from the scope that minted the bind target, held until it closes (over the limit the
 * peer is dropped at once), and a plain TCP one charges what it reads to `limit received`.
 */
export function peerUnits(target: unknown, plain: boolean): (socket: Socket) => boolean {
  const meter = plain ? wireMeterFor(undefined, target) : undefined;
  return (socket) => {
    let taken: SocketUnit | Promise<SocketUnit>;
    try {
      taken = takeSocketUnit(undefined, target, 'connection');
    } catch (err) {
      log('listener: peer refused: %s', (err as Error).message);
      return false;
    }
    // A quota store answers later: the peer is held until it does, and dropped if it refuses.
    if (taken instanceof Promise) {
      taken.then((u) => (socket.destroyed ? u.release() : holdUntilClose(socket, u)), () => socket.destroy());
    } else {
      holdUntilClose(socket, taken);
    }
    if (meter !== undefined) meterReads(socket, meter);
    return true;
  };
}

/**
 * Bind `server` at the attempt's checked local target; resolves with a SocketListener once listening. `wrap`
 * is told whether the listener is on the library's path (a Listener's Connection will count what each
 * channel receives) or was opened directly (nothing else counts it).
 */
export function bindServer(
  server: Server,
  attempt: ListenAttempt,
  event: 'connection' | 'secureConnection',
  wrap: (socket: Socket, libraryPath: boolean) => TransportChannel,
  what: string,
): Promise<SocketListener> {
  throwIfAborted(attempt.signal, `${what} listen`);
  const { address, port } = targetAddress(attempt.target, `${what} listen`, 'tcp listen');
  // A unit of `limit listeners` until the server closes (the Listener's own when it bound through the library).
  let unit: SocketUnit | Promise<SocketUnit>;
  try {
    unit = listenUnit(attempt.unit, attempt.target);
  } catch (err) {
    return Promise.reject(err);
  }
  if (unit instanceof Promise) return unit.then((u) => listenOn(server, attempt, event, wrap, what, address, port, u));
  return listenOn(server, attempt, event, wrap, what, address, port, unit);
}

function listenOn(
  server: Server, attempt: ListenAttempt, event: 'connection' | 'secureConnection', wrap: (socket: Socket, libraryPath: boolean) => TransportChannel, what: string,
  address: string, port: number, unit: SocketUnit,
): Promise<SocketListener> {
  holdUntilClose(server, unit);
  if (attempt.signal.aborted) server.close();
  throwIfAborted(attempt.signal, `${what} listen`);
  const { signal } = attempt;
  const backlog = typeof attempt.options['backlog'] === 'number' ? attempt.options['backlog'] : undefined;
  const ipv6Only = attempt.options['ipv6Only'] === true;
  return new Promise<SocketListener>((resolve, reject) => {
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      server.off('listening', onListening);
      server.off('error', onError);
    };
    const onListening = (): void => {
      cleanup();
      try {
        const libraryPath = unit.granted;
        resolve(new SocketListener(server, event, (socket) => wrap(socket, libraryPath), libraryPath ? undefined : peerUnits(attempt.target, event === 'connection')));
      } catch (err) {
        server.close();
        reject(err);
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      server.close();
      reject(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what} listen on ${address}:${port} failed: ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => {
      cleanup();
      server.on('error', () => {});
      server.close();
      reject(abortedError(signal, `${what} listen`));
    };
    stopListening = whenAborted(signal, onAbort);
    server.once('listening', onListening);
    server.once('error', onError);
    server.listen({ host: address, port, ipv6Only, ...(backlog === undefined ? {} : { backlog }) });
  });
}
