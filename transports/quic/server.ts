/**
 * `quic` listen: a QUIC server on the attempt's checked local address. Each
 * peer connection is a connection group (./group.ts): its first
 * peer-opened stream is delivered as a new connection (the library then
 * checks the peer against the tenant's `accept` rules), its later streams
 * arrive in that group.
 *
 * One listener serves `quic` and `quic-dgram` alike (their drivers share it,
 * `sharedListener: 'quic'`): it offers QUIC DATAGRAM (RFC 9221) when it was
 * bound as `quic-dgram` or the listener's properties allow `quic-dgram` too,
 * and each connection whose peer offered datagrams back is a `quic-dgram`
 * connection (its channels are message flows, handed over with that
 * driver), every other a `quic` one. What each connection sends (every
 * stream it or its peer opens, every message) is charged to the tenant's
 * byte budget first, as on a client; every datagram the listener's socket
 * sends and reads counts on the wire for the listening tenant (./wire.ts:
 * beyond the payload sent; its channels say their reads are counted), and a
 * connection whose handshake spent the sent budget is stopped before its
 * first stream is handed over.
 *
 * The server owns one UDP socket for all its connections, so `close()` stops
 * accepting at once (new connections are closed on arrival, connections with
 * no delivered stream are dropped) while connections already handed out keep
 * running; the socket goes when the last of them ends (RFC 9622 §7.2: stop
 * affects only new connections).
 *
 * A peer that vanishes without a CONNECTION_CLOSE (its process killed, its
 * host gone) is not seen here as a client sees it (./peer-loss.ts): the
 * listener's one socket is not connected to any peer, and Linux reports
 * ICMP errors only to connected UDP sockets, so its connection ends at the
 * idle timeout (`idleTimeout`; off by default, then only when the
 * application closes it). Set `idleTimeout` (and `keepAliveInterval` on
 * clients) where a listener must notice.
 *
 * A connection that ends stays in its closing or draining period (RFC 9000
 * §10.2, ./closing.ts) while the listener accepts: a server that keeps its
 * socket open for new connections SHOULD NOT end it early. Its `close()`
 * does not wait for that period, only for its CONNECTION_CLOSE to leave.
 * Once the listener is closed the periods are ended (at once for those
 * running, as soon as the frame left for the later ones), so when no
 * connection is in use any more `close()` resolves with the socket closed
 * and no timer left.
 *
 * @example
 * const listener = await listenQuic(attempt); // certificate + key in attempt.security
 * listener.start({ connection: (ch) => use(ch), error: (e) => log(e) });
 */
import type { QUICConnection, QUICServer } from '@matrixai/quic';
import type { ByteMeter, Driver, DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import { messageDefaults, type MessageDefaults } from '../../src/provided.js';
import { judgeStackOnce } from '../../src/selection/suitability.js';
import { abortedError, throwIfAborted } from '../kit/abort.js';
import { AcceptQueue } from '../kit/accept-queue.js';
import { targetAddress } from '../kit/dial.js';
import { holdUntilClose, listenUnit, takeSocketUnit, wireMeterFor, type SocketUnit, type WireMeter } from '../kit/account.js';
import { offersDatagrams } from './client.js';
import { DATAGRAM_QUEUE_HIGH_WATER, DATAGRAM_RECV_BUFFER, quicOptions, transportConfig, type QuicOptions } from './config.js';
import { loadQuic, serverCrypto, type QuicEngine } from './engine.js';
import { closeSent, endClosingPeriod } from './closing.js';
import { codeToReason } from './errors.js';
import { QuicGroup } from './group.js';
import { setReceiveBuffer } from './socket.js';
import { QuicWire } from './wire.js';
import { meterFor } from '../kit/meter.js';

/** The two stacks one QUIC listener serves, and which of them it was bound as. */
export interface QuicStacks {
  readonly bound: Driver;
  readonly streams: Driver;
  readonly messages: Driver;
}

export async function listenQuic(attempt: ListenAttempt, stacks: QuicStacks): Promise<DriverListener> {
  const { signal, target, security } = attempt;
  throwIfAborted(signal, 'quic listen');
  const { address, port, family } = targetAddress(target, 'quic listen', 'udp listen');
  if (security.certificate === undefined || security.key === undefined) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'a QUIC listener needs security.certificate and security.key');
  }
  const cfg = quicOptions(attempt.options, security, address);
  const engine = await loadQuic().catch((err: unknown) => {
    throw new TapsError('ERR_TAPS_UNAVAILABLE', `quic: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  });
  throwIfAborted(signal, 'quic listen');
  const requestClientCertificate = security.ca !== undefined && security.ca.length > 0;
  // Datagrams are offered only to be used: a peer that asks for them at a listener that could not take a
  // quic-dgram connection fails at its handshake instead of being dropped after it.
  const datagrams = stacks.bound === stacks.messages || judgeStackOnce(stacks.messages, { properties: attempt.properties, security, framerCount: 0 }).ok;
  const server = new engine.api.QUICServer({
    crypto: serverCrypto(),
    config: {
      cert: String(security.certificate),
      key: String(security.key),
      ...(requestClientCertificate ? { ca: security.ca!.map(String), verifyPeer: true } : { verifyPeer: false }),
      ...transportConfig(cfg, datagrams),
    },
    resolveHostname: (h: string) => {
      throw new TapsError('ERR_TAPS_POLICY_PROHIBITED', `quic listen: ${h} was not checked by the policy`);
    },
    codeToReason,
    logger: engine.logger,
  });
  const what = `quic listen on ${family === 6 ? `[${address}]` : address}:${port}`;
  // A unit of `limit listeners` until the UDP socket closes (the Listener's own on the library's path).
  const taken = listenUnit(attempt.unit, target);
  const unit = taken instanceof Promise ? await taken : taken;
  try {
    // `::` is dual-stack unless the `ipv6Only` option says otherwise, like the tcp and tls listeners.
    await server.start({ host: address, port, ipv6Only: attempt.options['ipv6Only'] === true });
  } catch (err) {
    unit.release();
    await server.stop({ force: true }).catch(() => {});
    closeUnboundSocket(server);
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what} failed: ${(err as Error)?.message ?? String(err)}${cause ? ` (${cause})` : ''}`, { cause: err });
  }
  const dgram = (server as unknown as { socket?: { socket?: { on(event: 'close', listener: () => void): unknown } } }).socket?.socket;
  if (dgram === undefined) unit.release();
  else holdUntilClose(dgram, unit);
  if (signal.aborted) {
    await server.stop({ force: true }).catch(() => {});
    throw abortedError(signal, what);
  }
  const serverSocket = (server as unknown as { socket?: Parameters<typeof setReceiveBuffer>[0] }).socket;
  if (datagrams && serverSocket !== undefined) setReceiveBuffer(serverSocket, DATAGRAM_RECV_BUFFER);
  const wireMeter = wireMeterFor(undefined, target);
  const wire = wireMeter === undefined || serverSocket === undefined ? undefined : new QuicWire(wireMeter);
  const served = {
    stacks, datagrams: datagrams ? messageDefaults(stacks.messages, attempt.properties) : undefined,
    meter: wire === undefined ? meterFor(attempt) : wire.payload(meterFor(attempt)),
    direct: unit.granted ? undefined : { target },
    wire: wire === undefined ? undefined : wireMeter,
  };
  const listener = new QuicListener(engine, server, { address: server.host as string, port: server.port as number, family }, cfg, served);
  if (wire !== undefined) meterServerSocket(serverSocket as unknown as ServerSocketInternals, wire, wireMeter!, (err) => listener.overBudget(err));
  return listener;
}

/** The package's internals of the server's QUICSocket: its dgram socket and the send function it calls. */
interface ServerSocketInternals {
  socket: { prependListener(event: 'message', listener: (msg: Buffer) => void): unknown };
  socketSend: (msg: Uint8Array, ...rest: unknown[]) => Promise<number>;
}

/** Count every datagram the server's socket sends (beyond the payload, `wire`) and reads (`meter.received`). */
function meterServerSocket(socket: ServerSocketInternals, wire: QuicWire, meter: WireMeter, over: (err: Error) => void): void {
  const send = socket.socketSend;
  // (msg, port, host) or, for a Retry or Version Negotiation packet, (buffer, offset, length, port, host).
  socket.socketSend = (msg: Uint8Array, ...rest: unknown[]) => {
    wire.sent(rest.length === 4 ? (rest[1] as number) : msg.byteLength);
    return send(msg, ...rest);
  };
  // Ahead of the package's own listener: a datagram over the budget ends the connections before it is read.
  socket.socket.prependListener('message', (msg: Buffer) => {
    try {
      meter.received(msg.byteLength);
    } catch (err) {
      over(err as Error);
    }
  });
}

/**
 * A bind that fails (EADDRINUSE) leaves the package's dgram socket open: `QUICSocket.start` throws without
 * closing the socket it made, and `stop()` of a server that never started does nothing. Close it here.
 */
function closeUnboundSocket(server: QUICServer): void {
  const udp = (server as unknown as { socket?: { socket?: { close(): void } } }).socket?.socket;
  try {
    udp?.close();
  } catch {
    // already closed
  }
}

/** What a listener serves: its stacks, and the defaults of a quic-dgram connection's messages when it offers datagrams. */
interface Served {
  readonly stacks: QuicStacks;
  readonly datagrams: MessageDefaults | undefined;
  /** The tenant's byte budget: every channel of every connection (each stream, each message) charges it first. */
  readonly meter: ByteMeter | undefined;
  /**
   * Set for a listener opened outside the library's path (whose Listener would take a unit per peer): each
   * connection takes a unit of `limit connections` from the scope that minted this bind target, held until
   * it is torn down; one over the limit is closed at once.
   */
  readonly direct?: { readonly target: unknown } | undefined;
  /** The listening tenant's wire meter when its socket counts every datagram (./wire.ts); undefined without budgets. */
  readonly wire?: WireMeter | undefined;
}

class QuicListener implements DriverListener {
  readonly local: SocketAddress;
  readonly #server: QUICServer;
  readonly #queue = new AcceptQueue();
  /** Every live connection; the socket is released when the listener is closed and this is empty. */
  readonly #groups = new Set<QuicGroup>();
  /** Connections none of whose streams reached the handler yet. */
  readonly #untaken = new Set<QuicGroup>();
  /** Connections stopped and in their closing or draining period, until their `stop()` resolves. */
  readonly #lingering = new Map<QUICConnection, Promise<void>>();
  #stopped: Promise<void> | undefined;

  readonly #engine: QuicEngine;
  readonly #served: Served;

  constructor(engine: QuicEngine, server: QUICServer, local: SocketAddress, cfg: QuicOptions, served: Served) {
    this.#engine = engine;
    this.#server = server;
    this.local = local;
    this.#served = served;
    const { events } = engine.api;
    server.addEventListener(events.EventQUICServerConnection.name, (evt: Event) => {
      this.#connection(engine, (evt as unknown as { detail: QUICConnection }).detail, cfg);
    });
    server.addEventListener(events.EventQUICServerError.name, (evt: Event) => {
      this.#queue.fail((evt as unknown as { detail: unknown }).detail);
      void this.close();
    });
  }

  #connection(engine: QuicEngine, connection: QUICConnection, cfg: QuicOptions): void {
    if (this.#queue.closed) {
      void this.#stopConnection(connection);
      return;
    }
    let unit: SocketUnit | Promise<SocketUnit> | undefined;
    if (this.#served.direct !== undefined) {
      try {
        unit = takeSocketUnit(undefined, this.#served.direct.target, 'connection');
      } catch {
        void this.#stopConnection(connection);
        return;
      }
    }
    let released = false;
    const release = (): void => {
      released = true;
      if (unit !== undefined && !(unit instanceof Promise)) unit.release();
    };
    if (unit instanceof Promise) unit.then((u) => (released ? u.release() : (unit = u)), () => group.abort(new TapsError('ERR_TAPS_QUOTA_EXCEEDED', 'no connection unit for this peer')));
    const remote: SocketAddress = { address: connection.remoteHost as string, port: connection.remotePort as number, family: this.local.family };
    const facts = { protocol: 'quic', alpn: cfg.alpn.length === 1 ? cfg.alpn[0] : undefined };
    const defaults = this.#served.datagrams !== undefined && offersDatagrams(connection) ? this.#served.datagrams : undefined;
    const stack = defaults === undefined ? this.#served.stacks.streams : this.#served.stacks.messages;
    const info = defaults === undefined ? Object.freeze(facts) : Object.freeze({ ...facts, datagrams: true, get datagramStats() { return group.mux.stats; } });
    const group: QuicGroup = new QuicGroup(
      engine,
      connection,
      {
        local: this.local,
        remote,
        info,
        teardown: async () => {
          const stopped = this.#stopConnection(connection);
          await Promise.race([closeSent(engine, connection), stopped]);
          // Its closing period runs on while the listener accepts; once the listener is closed it was ended.
          if (this.#queue.closed) await stopped;
          this.#groups.delete(group);
          this.#untaken.delete(group);
          release();
          await this.#maybeStop();
        },
      },
      {
        closeTimeout: cfg.closeTimeout,
        accept: (channel) => {
          // The handshake was charged as it went: one that spent the sent budget leaves nothing to send.
          try {
            this.#served.wire?.check();
          } catch (err) {
            group.abort(err as Error);
            return;
          }
          this.#untaken.delete(group);
          this.#queue.offer(channel, stack);
        },
        messages: defaults === undefined ? undefined : { defaults, highWater: cfg.datagramHighWater, queueHighWater: DATAGRAM_QUEUE_HIGH_WATER },
        meter: this.#served.meter,
        receiveMetered: this.#served.wire !== undefined,
      },
    );
    this.#groups.add(group);
    this.#untaken.add(group);
  }

  /** The received budget was exceeded at the socket: every connection of this listener ends with that error. */
  overBudget(err: Error): void {
    for (const g of [...this.#groups]) g.abort(err);
  }

  start(handler: DriverListenerHandler): void {
    this.#queue.start(handler);
  }

  async close(): Promise<void> {
    if (!this.#queue.closed) {
      this.#queue.close();
      const gone = new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the listener closed before the connection was taken');
      for (const g of [...this.#untaken]) g.abort(gone);
      // Accepting nothing more, the listener may end the closing periods (RFC 9000 §10.2).
      for (const c of this.#lingering.keys()) void endClosingPeriod(this.#engine, c);
    }
    const ending = [...this.#groups].map((g) => g.ending);
    // A connection still in use keeps the socket (RFC 9622 §7.2); the last one to end stops the server.
    if (ending.some((e) => e === undefined)) return;
    await Promise.all(ending);
    await Promise.all(this.#lingering.values());
    await this.#maybeStop();
  }

  /** Stop a connection (application close, code 0); its closing period is ended at once if the listener is closed. */
  #stopConnection(connection: QUICConnection): Promise<void> {
    const known = this.#lingering.get(connection);
    if (known !== undefined) return known;
    const stopped = connection
      .stop({ isApp: true, errorCode: 0, force: true })
      .catch(() => {})
      .finally(() => {
        this.#lingering.delete(connection);
        void this.#maybeStop();
      });
    this.#lingering.set(connection, stopped);
    if (this.#queue.closed) void endClosingPeriod(this.#engine, connection);
    return stopped;
  }

  /** Stop the server (its socket) once it is closed and no connection is in use or closing; resolves when stopped. */
  #maybeStop(): Promise<void> {
    if (this.#queue.closed && this.#groups.size === 0 && this.#lingering.size === 0) this.#stopped ??= this.#server.stop({ force: true }).catch(() => {});
    return this.#stopped ?? Promise.resolve();
  }
}
