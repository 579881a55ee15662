/**
 * `quic` connect: one QUIC connection to the attempt's checked address and
 * port, its first bidirectional stream as the channel (RFC 9622 §7.4: more
 * streams come from `clone()`).
 *
 * - The package is given the IP literal the policy checked, never a name, and
 *   its `resolveHostname` hook refuses anything else; SNI (`serverName`) and
 *   certificate checks use the checked name (./verify.ts).
 * - It binds the endpoint's local address, else loopback for a loopback
 *   target, else the unspecified address of the target's family (never `::`
 *   for an IPv4 target).
 * - Its wait is bounded: `connectTimeout` (package `timer`) and the attempt's
 *   signal (package `signal`), so a silent UDP port costs at most that; on
 *   abort the half-made client is destroyed with `force`.
 * - Its UDP socket is connected to the target (./socket.ts), so an ICMP port,
 *   host or net unreachable ends the attempt at once with
 *   ERR_TAPS_ESTABLISHMENT_FAILED naming it (a refused port fails in
 *   milliseconds, as TCP's does, instead of waiting out `connectTimeout`).
 * - Once established, ICMP reports are weighed, not obeyed (./peer-loss.ts):
 *   each is a soft error, and the connection ends with
 *   ERR_TAPS_CONNECTION_RESET only when they keep coming and the peer has
 *   left a packet unanswered for a probe timeout, a few PTOs after the peer
 *   vanished instead of at the idle timeout (off by default: never).
 * - Closing it ends its closing period as soon as its CONNECTION_CLOSE left
 *   and closes its socket (RFC 9000 §10.2 allows it to an endpoint that
 *   closes its UDP socket, ./closing.ts): nothing of it outlives `close()`.
 * - `quic-dgram` (`messages` given): the client offers QUIC DATAGRAM (RFC
 *   9221) and the connection's channels are message flows (./group.ts). A
 *   peer that does not offer it back fails the attempt with
 *   ERR_TAPS_ESTABLISHMENT_FAILED saying so: never a stream in its place.
 *
 * @example
 * const channel = await connectQuic(attempt); // attempt.target: { address: '127.0.0.1', port: 4433, protocol: 'quic' }
 */
import type { QUICClient, QUICConnection } from '@matrixai/quic';
import type { ConnectAttempt, TransportChannel } from '../../src/driver.js';
import { QuotaExceededError, TapsError } from '../../src/errors.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { targetAddress, localBinding } from '../kit/dial.js';
import { dialUnit, holdUntilClose, wireMeterFor, type SocketUnit, type WireMeter } from '../kit/account.js';
import { QuicWire } from './wire.js';
import type { MessageDefaults } from '../../src/provided.js';
import { DATAGRAM_QUEUE_HIGH_WATER, DATAGRAM_RECV_BUFFER, isLoopbackAddress, quicOptions, transportConfig, type QuicOptions } from './config.js';
import { endClosingPeriod } from './closing.js';
import { CLIENT_CRYPTO, loadQuic, type QuicEngine } from './engine.js';
import { codeToReason, connectError, peerGoneError, QuicError, unreachableError, unreachableSoftError } from './errors.js';
import { PeerLoss, quicheProbe } from './peer-loss.js';
import { QuicGroup } from './group.js';
import { udpRefusal } from './probe.js';
import { connectedQuicSocket, type ConnectedQuicSocket } from './socket.js';
import { serverVerifier } from './verify.js';
import { meterFor } from '../kit/meter.js';

/** Whether the peer's transport parameters allow QUIC DATAGRAM frames (quiche reports a writable size only then). */
export function offersDatagrams(connection: QUICConnection): boolean {
  const conn = (connection as unknown as { conn?: { dgramMaxWritableLen?(): number | null } }).conn;
  return typeof conn?.dgramMaxWritableLen === 'function' && conn.dgramMaxWritableLen() !== null;
}

/**
 * The address to bind when the endpoint names none: the target's own
 * loopback for a loopback target (its packets can only come from there, and
 * the package runs ~25% faster on a specifically bound socket: bench/quic.ts),
 * else the unspecified address of the target's family.
 */
function defaultLocalHost(address: string, family: 4 | 6): string {
  if (isLoopbackAddress(address)) return family === 6 ? '::1' : '127.0.0.1';
  return family === 6 ? '::' : '0.0.0.0';
}

/** What an attempt settled before any packet: the checked peer, the options, the engine and where to bind. */
interface Plan {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** The peer as messages name it (`[::1]:4433`). */
  readonly where: string;
  readonly cfg: QuicOptions;
  readonly engine: QuicEngine;
  readonly localHost: string;
  readonly localPort: number | undefined;
  readonly datagrams: boolean;
}

/** The client's UDP socket with what is charged to it, and how the attempt ends early. */
interface Link {
  readonly udp: ConnectedQuicSocket;
  readonly wireMeter: WireMeter | undefined;
  readonly wire: QuicWire | undefined;
  /** Aborted by the caller's signal, an ICMP unreachable or a spent budget: the handshake's signal. */
  readonly ended: AbortController;
  /** The ICMP error that ended the attempt, if one did. */
  readonly unreachable: () => Error | undefined;
  /** Stop following the caller's signal (once the handshake settled). */
  readonly stopListening: () => void;
  /** The connection is built: a spent received budget ends its group, and ICMP reports go to `loss`. */
  adopt(group: QuicGroup, loss: PeerLoss | undefined): void;
}

/** Connect a `quic` stream, or with `messages` (the defaults of its messages) a `quic-dgram` flow. */
export async function connectQuic(attempt: ConnectAttempt, messages?: MessageDefaults): Promise<TransportChannel> {
  const plan = await planAttempt(attempt, messages !== undefined);
  const verifier = serverVerifier(attempt.security, attempt.target);
  const link = await openLink(attempt, plan);
  const client = await handshake(attempt, plan, link, verifier);
  return establish(attempt, plan, link, client, messages);
}

/**
 * Check the target and options, load the package, and find a refused port before the client is built
 * (./probe.ts; a fixed local port is left to the handshake).
 */
async function planAttempt(attempt: ConnectAttempt, datagrams: boolean): Promise<Plan> {
  const { signal, target, security } = attempt;
  throwIfAborted(signal, 'quic');
  const { address, port, family } = targetAddress(target, 'quic', 'udp');
  const where = `${family === 6 ? `[${address}]` : address}:${port}`;
  if (security.mode === 'disabled') throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', 'security is disabled; QUIC is always encrypted');
  const cfg = quicOptions(attempt.options, security, address);
  const engine = await loadQuic().catch((err: unknown) => {
    throw new TapsError('ERR_TAPS_UNAVAILABLE', `quic: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  });
  throwIfAborted(signal, 'quic');
  const bind = localBinding(attempt.local);
  const localHost = bind.localAddress ?? defaultLocalHost(address, family);
  if (bind.localPort === undefined) {
    const refused = await udpRefusal(target, localHost);
    if (refused !== undefined) throw unreachableError(refused, where);
    throwIfAborted(signal, 'quic');
  }
  return { address, port, family, where, cfg, engine, localHost, localPort: bind.localPort, datagrams };
}

/**
 * Take the attempt's unit of `limit connections` (held until the UDP socket closes), check the sent budget,
 * and open the UDP socket connected to the peer (./socket.ts), every datagram it reads charged to the
 * received budget. The attempt ends on the caller's abort or at once on an ICMP unreachable for the peer.
 */
async function openLink(attempt: ConnectAttempt, plan: Plan): Promise<Link> {
  const { signal, target } = attempt;
  const ended = new AbortController();
  let unreachable: Error | undefined;
  let group: QuicGroup | undefined;
  let loss: PeerLoss | undefined;
  const stopListening = whenAborted(signal, () => ended.abort(signal.reason));
  let unit: SocketUnit;
  try {
    const taken = dialUnit(attempt.unit, target);
    unit = taken instanceof Promise ? await taken : taken;
  } catch (err) {
    stopListening(); // over the limit: the attempt's signal keeps no listener of this attempt
    throw err;
  }
  // Every datagram counts against the sent budget (./wire.ts); none leaves once it is spent.
  const wireMeter = wireMeterFor(undefined, target);
  const wire = wireMeter === undefined ? undefined : new QuicWire(wireMeter);
  let udp: ConnectedQuicSocket;
  try {
    wireMeter?.check();
    udp = await connectedQuicSocket(plan.engine, {
      address: plan.address,
      port: plan.port,
      family: plan.family,
      localHost: plan.localHost,
      localPort: plan.localPort ?? 0,
      recvBufferSize: plan.datagrams ? DATAGRAM_RECV_BUFFER : undefined,
      onSent: wire?.sent,
      onLeft: () => loss?.left(),
      onUnreachable: (err) => {
        if (loss !== undefined) return loss.unreachable(err);
        if (unreachable !== undefined || ended.signal.aborted) return;
        unreachable = err;
        ended.abort(err);
      },
    });
  } catch (err) {
    stopListening();
    unit.release();
    throw connectError(err, plan.where);
  }
  holdUntilClose(udp.udp, unit);
  // Every datagram read is charged here, on the wire (its channels say so: no Connection counts it again).
  if (wireMeter !== undefined) {
    udp.udp.on('message', (msg: Buffer) => {
      try {
        wireMeter.received(msg.byteLength);
      } catch (err) {
        if (group !== undefined) group.abort(err as Error);
        else ended.abort(err);
      }
    });
  }
  return { udp, wireMeter, wire, ended, unreachable: () => unreachable, stopListening, adopt: (g, l) => void ((group = g), (loss = l)) };
}

/** The QUIC handshake over the link, bounded by `connectTimeout` and the attempt's signal; its failure releases the socket. */
async function handshake(attempt: ConnectAttempt, plan: Plan, link: Link, verifier: ReturnType<typeof serverVerifier>): Promise<QUICClient> {
  const { signal, security, target } = attempt;
  const serverName = target.hostName;
  try {
    return await plan.engine.api.QUICClient.createQUICClient(
      {
        host: plan.address,
        port: plan.port,
        ...(serverName ? { serverName } : {}),
        socket: link.udp.socket,
        crypto: CLIENT_CRYPTO,
        config: {
          verifyPeer: true,
          verifyCallback: verifier.callback,
          ...transportConfig(plan.cfg, plan.datagrams),
          ...(security.certificate !== undefined && security.key !== undefined ? { cert: String(security.certificate), key: String(security.key) } : {}),
        },
        // `host` is the checked IP literal (the package resolves nothing for one); the socket's own resolver refuses any name.
        codeToReason,
        logger: plan.engine.logger,
      },
      { timer: plan.cfg.connectTimeout, signal: link.ended.signal },
    );
  } catch (err) {
    await link.udp.stop().catch(() => {});
    const unreachable = link.unreachable();
    if (unreachable !== undefined) throw unreachableError(unreachable, plan.where);
    if (signal.aborted) throw abortedError(signal, `quic connect to ${plan.where}`);
    if (link.ended.signal.reason instanceof QuotaExceededError) throw link.ended.signal.reason;
    throw verifier.failure() ?? connectError(err, plan.where);
  } finally {
    link.stopListening();
  }
}

/**
 * The established connection as a group whose first channel is its first bidirectional stream, once
 * nothing stands in the way: the caller did not abort meanwhile, the handshake left some sent budget, and a
 * `quic-dgram` peer offered QUIC DATAGRAM. Anything else tears it down.
 */
async function establish(attempt: ConnectAttempt, plan: Plan, link: Link, client: QUICClient, messages: MessageDefaults | undefined): Promise<TransportChannel> {
  const { signal, security, target } = attempt;
  const { engine, where, cfg, datagrams, address, port, family } = plan;
  const connection = client.connection;
  let loss: PeerLoss | undefined;
  // The socket is the driver's, not the package's: it goes after the client. Since it closes, the closing
  // period ends once the CONNECTION_CLOSE left (RFC 9000 §10.2, ./closing.ts), not three PTOs later.
  const teardown = async (): Promise<void> => {
    loss?.stop();
    try {
      const destroyed = client.destroy({ isApp: true, errorCode: 0, force: true });
      void endClosingPeriod(engine, connection);
      await destroyed;
    } finally {
      await link.udp.stop();
    }
  };
  if (signal.aborted) {
    await teardown().catch(() => {});
    throw abortedError(signal, `quic connect to ${where}`);
  }
  // The handshake is charged as it went: one that spent the sent budget leaves nothing to send.
  try {
    link.wireMeter?.check();
  } catch (err) {
    await teardown().catch(() => {});
    throw err;
  }
  if (datagrams && !offersDatagrams(connection)) {
    await teardown().catch(() => {});
    throw new QuicError(
      'ERR_TAPS_ESTABLISHMENT_FAILED',
      `quic-dgram connect to ${where}: the peer does not accept QUIC DATAGRAM frames (no max_datagram_frame_size, RFC 9221 §3), so unreliable messages cannot be sent; no stream is used in their place`,
    );
  }
  const serverName = target.hostName;
  const local = { address: connection.localHost as string, port: connection.localPort as number, family };
  const remote = { address, port, family };
  const facts = { protocol: 'quic', alpn: cfg.alpn.length === 1 ? cfg.alpn[0] : undefined, serverName, authenticated: security.mode === 'required' };
  const messagesOf = datagrams ? { defaults: messages!, highWater: cfg.datagramHighWater, queueHighWater: DATAGRAM_QUEUE_HIGH_WATER } : undefined;
  let group: QuicGroup | undefined;
  const info = datagrams ? Object.freeze({ ...facts, datagrams: true, get datagramStats() { return group?.mux.stats; } }) : Object.freeze(facts);
  const meter = link.wire === undefined ? meterFor(attempt) : link.wire.payload(meterFor(attempt));
  const built = new QuicGroup(engine, connection, { local, remote, info, teardown }, { closeTimeout: cfg.closeTimeout, messages: messagesOf, meter, receiveMetered: link.wireMeter !== undefined });
  group = built;
  // ICMP unreachables from here on are weighed, not obeyed (./peer-loss.ts).
  const probe = quicheProbe(connection);
  if (probe !== undefined) {
    loss = new PeerLoss({
      probe,
      soft: (err) => built.softError(unreachableSoftError(err, where)),
      lost: (err, facts) => built.lost(peerGoneError(err, where, facts)),
    });
  }
  link.adopt(built, loss);
  return built.add(connection.newStream('bidi'));
}
