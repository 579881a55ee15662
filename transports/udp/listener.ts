/**
 * A UDP listener: one bound socket, demultiplexed into one channel per
 * remote address and port (RFC 9623 §5.2: a UDP "listener" yields a connection per
 * peer). The first datagram from a new peer makes its channel; the channel's
 * sends go back with `socket.send(data, port, address)`, each charged to the
 * tenant's byte budget first (the attempt's meter), as a connected socket's are.
 *
 * Choices:
 * - Closing a peer channel frees its slot; a later datagram from that peer
 *   makes a new channel (UDP has no connection to end).
 * - `close()` stops making channels (datagrams from new peers are dropped) and
 *   aborts channels not yet handed out; the socket itself closes when the
 *   last handed-out channel closes.
 * - A local endpoint naming a multicast group binds the group and joins it
 *   (./multicast.ts); each source sending to it becomes a receive-only channel,
 *   and `close()` leaves the group at once.
 * - Driver options: `maxPeers` (default 4096: beyond it, datagrams from new
 *   peers are dropped, so spoofed sources cannot exhaust memory) and
 *   `idleTimeout` (ms; a peer channel that receives nothing for that long
 *   closes with ERR_TAPS_TIMEOUT; default: never).
 *
 * @example
 * const listener = await listenUdp(attempt);
 * listener.start({ connection: (ch) => ch.start(echo(ch)), error: () => {} });
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { debuglog } from 'node:util';
import type { ByteMeter, DriverListener, DriverListenerHandler, ListenAttempt, SocketAddress } from '../../src/driver.js';
import { TapsError, toTapsError } from '../../src/errors.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { AcceptQueue } from '../kit/accept-queue.js';
import { targetAddress } from '../kit/dial.js';
import { channelError } from '../kit/errors.js';
import { DatagramChannel } from './channel.js';
import { joinGroup } from './multicast.js';
import { bufferOptions, grantedBuffers, maxMessageSize, sendHighWater, setUdpOption, singularMax } from './socket.js';
import { meterFor } from '../kit/meter.js';
import { holdUntilClose, listenUnit, takeSocketUnit, wireMeterFor, type SocketUnit, type WireMeter } from '../kit/account.js';

const log = debuglog('taps');

interface Peer {
  readonly channel: DatagramChannel;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** A listener opened outside the library's path: the peer's unit of `limit connections`. */
  unit?: SocketUnit | undefined;
}

/**
 * What the listener counts at its socket. Every datagram read is charged to `limit received` (`meter`; over
 * it, the peer's channel fails with the QuotaExceededError), on the library's path too: a driver keeping a
 * peer's channel from the Listener (reading it itself) reads nothing uncounted, and each channel says
 * receiveMetered so the Connection does not count it again. Outside the library's path (a driver called
 * directly; the library's Listener takes a unit per peer itself) each new peer also takes a unit of
 * `limit connections` from the scope that minted the bind target (`unitsFrom`; over the limit its datagram
 * is dropped, and a later one asks again).
 */
export interface PeerCounting {
  /** Where every datagram read is charged (`limit received`); undefined when the scope sets no such limit. */
  readonly meter: WireMeter | undefined;
  /** Outside the library's path: the bind target whose scope gives each new peer its unit of `limit connections`. */
  readonly unitsFrom?: unknown;
}

export class UdpListener implements DriverListener {
  readonly local: SocketAddress;
  /** Datagrams dropped because the listener was closed or full. */
  dropped = 0;
  readonly #socket: Socket;
  readonly #peers = new Map<string, Peer>();
  readonly #queue = new AcceptQueue();
  readonly #options: Readonly<Record<string, unknown>>;
  readonly #maxPeers: number;
  readonly #idleTimeout: number | undefined;
  readonly #highWater: number | undefined;
  #stopped = false;
  #socketClosed = false;
  /** Leaves the multicast group this listener joined (a no-op for unicast listeners). */
  readonly #leave: () => void;
  readonly #receiveOnly: boolean;
  /** The tenant's byte budget: every peer channel charges its replies to it before they leave. */
  readonly #meter: ByteMeter | undefined;
  readonly #counting: PeerCounting;

  constructor(
    socket: Socket, family: 4 | 6, options: Readonly<Record<string, unknown>>, group?: { readonly leave: () => void }, meter?: ByteMeter,
    counting: PeerCounting = { meter: undefined },
  ) {
    this.#socket = socket;
    this.#counting = counting;
    this.#options = options;
    this.#meter = meter;
    this.#leave = group?.leave ?? (() => {});
    this.#receiveOnly = group !== undefined;
    const addr = socket.address();
    this.local = Object.freeze({ address: addr.address, port: addr.port, family });
    const maxPeers = options['maxPeers'] ?? 4096;
    if (typeof maxPeers !== 'number' || !Number.isInteger(maxPeers) || maxPeers < 1) throw new RangeError(`options.maxPeers must be a positive integer, got ${String(maxPeers)}`);
    this.#maxPeers = maxPeers;
    const idle = options['idleTimeout'];
    if (idle !== undefined && (typeof idle !== 'number' || !(idle > 0))) throw new RangeError(`options.idleTimeout must be a positive number of ms, got ${String(idle)}`);
    this.#idleTimeout = idle;
    this.#highWater = sendHighWater(options);
    socket.on('message', this.#onMessage);
    socket.on('error', this.#onError);
    socket.once('close', () => {
      this.#socketClosed = true;
    });
  }

  start(handler: DriverListenerHandler): void {
    this.#queue.start(handler);
  }

  close(): Promise<void> {
    this.#stopped = true;
    this.#leave(); // at once: channels already handed out stay open, but the host is no longer a member
    this.#queue.close();
    this.#maybeCloseSocket();
    return Promise.resolve();
  }

  #maybeCloseSocket(): void {
    if (this.#stopped && this.#peers.size === 0 && !this.#socketClosed) {
      this.#socketClosed = true;
      this.#socket.close();
    }
  }

  #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let peer = this.#peers.get(key);
    const counting = this.#counting;
    if (!peer) {
      if (this.#stopped || this.#peers.size >= this.#maxPeers) {
        this.dropped++;
        return;
      }
      let unit: SocketUnit | Promise<SocketUnit> | undefined;
      if (counting.unitsFrom !== undefined) {
        try {
          unit = takeSocketUnit(undefined, counting.unitsFrom, 'connection');
        } catch (err) {
          log('udp listener: peer %s refused: %s', key, (err as Error).message);
          this.dropped++;
          return;
        }
      }
      peer = this.#newPeer(key, rinfo);
      const p = peer;
      if (unit instanceof Promise) unit.then((u) => (this.#peers.get(key) === p ? (p.unit = u) : u.release()), () => p.channel.fail(new TapsError('ERR_TAPS_QUOTA_EXCEEDED', 'no connection unit for this peer')));
      else peer.unit = unit;
    }
    if (counting.meter !== undefined) {
      try {
        counting.meter.received(msg.byteLength);
      } catch (err) {
        peer.channel.fail(toTapsError(err, 'ERR_TAPS_QUOTA_EXCEEDED'));
        return;
      }
    }
    if (peer.timer) peer.timer.refresh();
    peer.channel.deliver(msg);
  };

  #newPeer(key: string, rinfo: RemoteInfo): Peer {
    const family: 4 | 6 = rinfo.family === 'IPv6' ? 6 : 4;
    const socket = this.#socket;
    const peer: Peer = {
      timer: undefined,
      channel: new DatagramChannel(
        {
          send: (data, cb) => socket.send(data, rinfo.port, rinfo.address, cb),
          release: (done) => {
            if (peer.timer) clearTimeout(peer.timer);
            peer.timer = undefined;
            peer.unit?.release();
            this.#peers.delete(key);
            this.#maybeCloseSocket();
            queueMicrotask(done);
          },
          setOption: (name, value) => setUdpOption(socket, name, value),
        },
        {
          local: this.local,
          remote: { address: rinfo.address, port: rinfo.port, family },
          maxMessageSize: maxMessageSize(family),
          singularTransmissionMsgMaxLen: singularMax(rinfo.address, family, this.#options),
          info: grantedBuffers(socket),
          highWater: this.#highWater,
          receiveOnly: this.#receiveOnly,
          meter: this.#meter,
          receiveMetered: this.#counting.meter !== undefined,
        },
      ),
    };
    if (this.#idleTimeout !== undefined) {
      const ms = this.#idleTimeout;
      peer.timer = setTimeout(() => {
        peer.timer = undefined;
        peer.channel.fail(new TapsError('ERR_TAPS_TIMEOUT', `no datagram from ${rinfo.address}:${rinfo.port} for ${ms} ms`));
      }, ms);
    }
    this.#peers.set(key, peer);
    this.#queue.offer(peer.channel);
    return peer;
  }

  #onError = (err: Error): void => {
    log('udp listener error: %s', err.message);
    const mapped = channelError(err);
    this.#stopped = true;
    this.#leave();
    // Every peer channel fails with the error, handed out or still waiting (those are then dropped from the queue).
    for (const peer of [...this.#peers.values()]) peer.channel.fail(mapped);
    this.#queue.close();
    this.#maybeCloseSocket();
    this.#queue.fail(mapped);
  };
}

/** Bind a UDP socket at the attempt's checked local target. */
export function listenUdp(attempt: ListenAttempt): Promise<UdpListener> {
  throwIfAborted(attempt.signal, 'udp listen');
  const { address, port, family } = targetAddress(attempt.target, 'udp listen', 'udp listen');
  const { signal, options } = attempt;
  const ipv6Only = options['ipv6Only'] === true;
  // Several listeners of one group share its address and port (RFC 9623 §10: SO_REUSEADDR).
  const group = attempt.local.multicastGroup !== undefined;
  // A unit of `limit listeners` until the socket closes (the Listener's own on the library's path).
  let taken: SocketUnit | Promise<SocketUnit>;
  try {
    taken = listenUnit(attempt.unit, attempt.target);
  } catch (err) {
    return Promise.reject(err);
  }
  if (taken instanceof Promise) return taken.then((unit) => bindUdp(attempt, address, port, family, ipv6Only, group, unit));
  return bindUdp(attempt, address, port, family, ipv6Only, group, taken);
}

function bindUdp(attempt: ListenAttempt, address: string, port: number, family: 4 | 6, ipv6Only: boolean, group: boolean, unit: SocketUnit): Promise<UdpListener> {
  const { signal, options } = attempt;
  let socket: Socket;
  try {
    socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ipv6Only, reuseAddr: group, ...bufferOptions(options, attempt.properties) });
  } catch (err) {
    unit.release();
    return Promise.reject(err);
  }
  holdUntilClose(socket, unit);
  return new Promise<UdpListener>((resolve, reject) => {
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      socket.off('error', onError);
    };
    const closeQuietly = (): void => {
      socket.on('error', () => {});
      unit.release();
      try {
        socket.close();
      } catch {
        /* already closed */
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      closeQuietly();
      reject(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `udp listen on ${address}:${port} failed: ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => {
      cleanup();
      closeQuietly();
      reject(abortedError(signal, 'udp listen'));
    };
    stopListening = whenAborted(signal, onAbort);
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      cleanup();
      try {
        const leave = group ? joinGroup(socket, attempt.local, family) : undefined;
        const counting = { meter: wireMeterFor(undefined, attempt.target), unitsFrom: unit.granted ? undefined : attempt.target };
        resolve(new UdpListener(socket, family, options, leave && { leave }, meterFor(attempt), counting));
      } catch (err) {
        closeQuietly();
        reject(err);
      }
    });
  });
}
