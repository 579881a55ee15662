/**
 * A UDP peer socket for rendezvous (RFC 9622 §7.3): one bound, unconnected
 * socket that sends connectivity checks and STUN requests to checked targets
 * and hands every datagram to the library's handler; `connect()` then fixes
 * it on the peer that answered and makes it the connection's datagram
 * channel — the same socket, so the NAT bindings the checks opened stay in
 * use. After that, datagrams the library claims (the peer's late checks) still
 * go to the handler and everything else to the channel. Every datagram sent,
 * checks and STUN requests included, is charged to the tenant's byte budget
 * first (the attempt's meter), as a connected UDP socket's are.
 *
 * The socket holds a unit of the tenant's `limit connections` until it
 * closes (a rendezvous is a connection): the library's grant when
 * `Preconnection.resolve()`/`rendezvous()` opened it (their lease, taken
 * before the bind), otherwise a unit of its own from the scope that minted
 * the bind target, so a guest calling the driver directly counts too. Every
 * datagram the socket reads is charged to `limit received` there, on the
 * library's path too (a driver keeping the socket from the library, reading
 * it itself, reads nothing uncounted; its channel says receiveMetered, so the
 * Connection counts none of it again): over the budget it fails with the
 * budget error and closes.
 *
 * @example
 * const socket = await openPeerSocket(attempt);
 * socket.start({ datagram: (data, from) => …, error: () => {} });
 * socket.sendTo(check, target, () => {});
 * const channel = await socket.connect(target, isStun);
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { debuglog } from 'node:util';
import type { ByteMeter, ListenAttempt, PeerSocket, PeerSocketHandler, SocketAddress, TransportChannel } from '../../src/driver.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { TapsError, toTapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { targetAddress } from '../kit/dial.js';
import { channelError } from '../kit/errors.js';
import { DatagramChannel, SOFT_ERRORS } from './channel.js';
import { bufferOptions, grantedBuffers, maxMessageSize, sendHighWater, setUdpOption, singularMax } from './socket.js';
import { meterFor } from '../kit/meter.js';
import { dialUnit, holdUntilClose, wireMeterFor, type SocketUnit, type WireMeter } from '../kit/account.js';

const log = debuglog('taps');

class UdpPeerSocket implements PeerSocket {
  readonly local: SocketAddress;
  readonly #socket: Socket;
  readonly #family: 4 | 6;
  readonly #options: Readonly<Record<string, unknown>>;
  readonly #meter: ByteMeter | undefined;
  /** Where every datagram it reads is charged (undefined when the scope sets no `limit received`). */
  readonly #readMeter: WireMeter | undefined;
  #handler: PeerSocketHandler | undefined;
  readonly #early: [Buffer, SocketAddress][] = [];
  #channel: DatagramChannel | undefined;
  #intercept: ((data: Uint8Array) => boolean) | undefined;
  #peer: { address: string; port: number } | undefined;
  #closed = false;
  /** The socket is being closed by us (close() or the channel's release), not by an error. */
  #closing = false;

  constructor(socket: Socket, family: 4 | 6, options: Readonly<Record<string, unknown>>, meter: ByteMeter | undefined, readMeter: WireMeter | undefined) {
    this.#socket = socket;
    this.#family = family;
    this.#options = options;
    this.#meter = meter;
    this.#readMeter = readMeter;
    const a = socket.address();
    this.local = Object.freeze({ address: a.address, port: a.port, family });
    socket.on('message', this.#onMessage);
    socket.on('error', this.#onError);
    socket.once('close', () => {
      this.#closed = true;
      if (!this.#closing) this.#channel?.released();
    });
  }

  start(handler: PeerSocketHandler): void {
    if (this.#handler) throw new TypeError('start() was already called');
    this.#handler = handler;
    for (const [data, from] of this.#early.splice(0)) handler.datagram(data, from);
  }

  sendTo(data: Uint8Array, target: CheckedTarget, done: (err?: Error) => void): void {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    if (this.#closed) {
      queueMicrotask(() => done(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer socket is closed')));
      return;
    }
    const { address, port } = targetAddress(target, 'udp send-to', 'udp');
    try {
      this.#meter?.sent(data.byteLength);
    } catch (err) {
      queueMicrotask(() => done(err as Error));
      return;
    }
    const cb = (err: Error | null): void => done(err ?? undefined);
    const peer = this.#peer;
    if (peer === undefined) this.#socket.send(data, port, address, cb);
    else if (peer.address === address && peer.port === port) this.#socket.send(data, cb);
    else queueMicrotask(() => done(new TapsError('ERR_TAPS_INVALID_STATE', `the socket is connected to ${peer.address}:${peer.port}`)));
  }

  connect(target: CheckedTarget, intercept: (data: Uint8Array) => boolean): Promise<TransportChannel> {
    if (this.#closed) return Promise.reject(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer socket is closed'));
    if (this.#peer !== undefined) return Promise.reject(new TypeError('connect() was already called'));
    const { address, port } = targetAddress(target, 'udp rendezvous', 'udp');
    this.#peer = { address, port };
    this.#intercept = intercept;
    return new Promise<TransportChannel>((resolve, reject) => {
      const onError = (err: Error): void => reject(channelError(err));
      this.#socket.once('error', onError);
      this.#socket.connect(port, address, () => {
        this.#socket.off('error', onError);
        const local = this.#socket.address();
        const socket = this.#socket;
        this.#channel = new DatagramChannel(
          {
            send: (data, cb) => socket.send(data, cb),
            release: (done) => this.#closeSocket(done),
            setOption: (name, value) => setUdpOption(socket, name, value),
          },
          {
            local: { address: local.address, port: local.port, family: this.#family },
            remote: { address, port, family: this.#family },
            maxMessageSize: maxMessageSize(this.#family),
            singularTransmissionMsgMaxLen: singularMax(address, this.#family, this.#options),
            info: { ...grantedBuffers(socket), rendezvous: true },
            highWater: sendHighWater(this.#options),
            meter: this.#meter,
            receiveMetered: this.#readMeter !== undefined,
          },
        );
        resolve(this.#channel);
      });
    });
  }

  close(): Promise<void> {
    if (this.#closed || this.#channel !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#closeSocket(resolve));
  }

  #closeSocket(done: () => void): void {
    if (this.#closed) {
      done();
      return;
    }
    this.#closing = true;
    this.#socket.once('close', () => done());
    try {
      this.#socket.close();
    } catch {
      done();
    }
  }

  #onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    const channel = this.#channel;
    if (this.#readMeter !== undefined && !this.#charged(msg.byteLength)) return;
    const from: SocketAddress = { address: rinfo.address, port: rinfo.port, family: rinfo.family === 'IPv6' ? 6 : 4 };
    if (channel !== undefined && !this.#intercept!(msg)) {
      channel.deliver(msg);
      return;
    }
    if (this.#handler) this.#handler.datagram(msg, from);
    else if (this.#early.length < 64) this.#early.push([msg, from]);
  };

  /** Charge a datagram read; over the budget, fail the channel (or the handler) and close the socket. */
  #charged(bytes: number): boolean {
    try {
      this.#readMeter!.received(bytes);
      return true;
    } catch (err) {
      const mapped = toTapsError(err, 'ERR_TAPS_QUOTA_EXCEEDED');
      if (this.#channel !== undefined) this.#channel.fail(mapped);
      else {
        this.#handler?.error(mapped);
        this.#closeSocket(() => {});
      }
      return false;
    }
  }

  #onError = (err: NodeJS.ErrnoException): void => {
    if (typeof err.code === 'string' && SOFT_ERRORS.has(err.code)) {
      this.#channel?.softError(err);
      return;
    }
    log('udp peer socket error %s: %s', err.code, err.message);
    const mapped = channelError(err);
    this.#channel?.fail(mapped);
    this.#handler?.error(mapped);
    if (this.#channel === undefined) this.#closeSocket(() => {});
  };
}

/**
 * Bind a UDP peer socket at the attempt's checked local target, under the attempt's connection grant or a
 * connection unit of its own (QuotaExceededError over `limit connections`, before anything is bound).
 */
export function openPeerSocket(attempt: ListenAttempt): Promise<PeerSocket> {
  throwIfAborted(attempt.signal, 'udp rendezvous bind');
  const to = targetAddress(attempt.target, 'udp rendezvous bind', 'udp listen');
  let taken: SocketUnit | Promise<SocketUnit>;
  try {
    taken = dialUnit(attempt.unit, attempt.target);
  } catch (err) {
    return Promise.reject(err);
  }
  if (!(taken instanceof Promise)) return bindPeerSocket(attempt, to, taken);
  return taken.then((unit) => {
    if (attempt.signal.aborted) {
      unit.release();
      throwIfAborted(attempt.signal, 'udp rendezvous bind');
    }
    return bindPeerSocket(attempt, to, unit);
  });
}

/** Bind the socket; `unit` is given back when it closes (or at once when the bind fails or is aborted). */
function bindPeerSocket(attempt: ListenAttempt, to: { address: string; port: number; family: 4 | 6 }, unit: SocketUnit): Promise<PeerSocket> {
  const { address, port, family } = to;
  const { signal, options } = attempt;
  let socket: Socket;
  try {
    socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ...bufferOptions(options, attempt.properties) });
  } catch (err) {
    unit.release();
    return Promise.reject(err);
  }
  holdUntilClose(socket, unit);
  return new Promise<PeerSocket>((resolve, reject) => {
    let stopListening = (): void => {};
    const fail = (err: Error): void => {
      stopListening();
      socket.on('error', () => {});
      unit.release();
      try {
        socket.close();
      } catch {
        /* never bound */
      }
      reject(err);
    };
    const onError = (err: Error): void => fail(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `udp bind on ${address}:${port} failed: ${err.message}`, { cause: err }));
    const onAbort = (): void => {
      socket.off('error', onError);
      fail(abortedError(signal, 'udp rendezvous bind'));
    };
    stopListening = whenAborted(signal, onAbort);
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      stopListening();
      socket.off('error', onError);
      const readMeter = wireMeterFor(undefined, attempt.target);
      resolve(new UdpPeerSocket(socket, family, options, meterFor(attempt), readMeter));
    });
  });
}
