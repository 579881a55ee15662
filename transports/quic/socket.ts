/**
 * The client's UDP socket for one QUIC connection, connected to the checked
 * peer so the kernel reports ICMP errors for it.
 *
 * Linux reports ICMP port/host/net unreachable only to *connected* UDP
 * sockets. `@matrixai/quic` makes an unconnected one per client, so a closed
 * port answered by ICMP waited out the whole connect timer. Here the
 * `QUICSocket` is made by the driver and handed to `createQUICClient` as a
 * shared socket: its `dgram` socket is `connect()`ed to the target, its
 * sends go without address (a connected socket refuses one), and an
 * `'error'` listener stays attached for its whole life. An ICMP error
 * (`ECONNREFUSED`, `EHOSTUNREACH`, `ENETUNREACH`) is passed to `onUnreachable`:
 * during the handshake the client ends the attempt with it at once; after it,
 * ./peer-loss.ts weighs the reports (ICMP is unauthenticated) and ends the
 * connection once they keep coming and the peer stopped answering. The
 * kernel may report it on a later send instead of a read: that packet counts
 * as lost, never as an error thrown from the package (a peer going away must
 * not crash the process).
 *
 * The driver owns this socket: the package never stops a shared socket, so
 * {@link ConnectedQuicSocket.stop} must be called when the client is
 * destroyed or its creation failed.
 *
 * @example
 * const s = await connectedQuicSocket(engine, { address, port, family, localHost, localPort, onUnreachable });
 * const client = await QUICClient.createQUICClient({ ..., socket: s.socket }, { timer, signal });
 */
import type { Socket as DgramSocket } from 'node:dgram';
import type { QUICSocket } from '@matrixai/quic';
import { TapsError } from '../../src/errors.js';
import type { QuicEngine } from './engine.js';

/** Errors a connected UDP socket reports for ICMP unreachable messages (RFC 1122 §4.1.3.3). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

export interface ConnectedSocketOptions {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly localHost: string;
  readonly localPort: number;
  /** Called once per ICMP error the kernel reports for the peer (before and after the handshake). */
  readonly onUnreachable: (error: Error) => void;
  /** Receive buffer to ask the OS for (bytes), if not its default. */
  readonly recvBufferSize?: number | undefined;
  /** Called with each datagram's size as it is handed to the socket (the tenant's budget counts the wire). */
  readonly onSent?: ((bytes: number) => void) | undefined;
  /** Called when a datagram left: the kernel took it without error (./peer-loss.ts times the peer's answer from it). */
  readonly onLeft?: (() => void) | undefined;
}

/** A started QUICSocket connected to one peer, and how to release it. */
export interface ConnectedQuicSocket {
  readonly socket: QUICSocket;
  /** The dgram socket under it (the package's): closed by `stop()`. */
  readonly udp: DgramSocket;
  stop(): Promise<void>;
}

/** The package's internals this module reaches: the dgram socket and the send function it calls. */
interface SocketInternals {
  socket: DgramSocket;
  socketSend: (msg: Uint8Array, ...rest: unknown[]) => Promise<number>;
}

/**
 * Ask the OS for a `bytes` receive buffer on a started QUICSocket (its `dgram` socket is package-internal).
 * Linux caps the request at net.core.rmem_max; a refusal leaves the default, which only costs loss under load.
 */
export function setReceiveBuffer(socket: QUICSocket, bytes: number): void {
  try {
    (socket as unknown as SocketInternals).socket.setRecvBufferSize(bytes);
  } catch {
    // Not granted: the OS default stays.
  }
}

/** Whether `err` is an ICMP unreachable report on a connected UDP socket. */
export function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && UNREACHABLE.has(code);
}

export async function connectedQuicSocket(engine: QuicEngine, o: ConnectedSocketOptions): Promise<ConnectedQuicSocket> {
  const socket = new engine.api.QUICSocket({
    logger: engine.logger.getChild('socket'),
    resolveHostname: (h: string) => {
      throw new TapsError('ERR_TAPS_POLICY_PROHIBITED', `quic: ${h} was not checked by the policy`);
    },
  });
  await socket.start({ host: o.localHost, port: o.localPort, ipv6Only: o.family === 6 });
  const internals = socket as unknown as SocketInternals;
  const udp = internals.socket;
  if (o.recvBufferSize !== undefined) setReceiveBuffer(socket, o.recvBufferSize);
  // Attached before connect and kept for the socket's life: an 'error' event without a listener would throw.
  const onError = (err: Error): void => {
    if (isUnreachable(err)) o.onUnreachable(err);
  };
  udp.on('error', onError);
  const stop = async (): Promise<void> => {
    try {
      await socket.stop({ force: true });
    } finally {
      udp.off('error', onError);
    }
  };
  try {
    await new Promise<void>((resolve, reject) => udp.connect(o.port, o.address, (err?: Error) => (err ? reject(err) : resolve())));
  } catch (err) {
    await stop().catch(() => {});
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `quic: could not connect a UDP socket to ${o.address}:${o.port}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
  // A connected socket refuses an address on send: every packet of this socket goes to the one checked peer.
  // An ICMP error for an earlier packet fails the next send instead (ECONNREFUSED): that packet is lost, which
  // QUIC recovers from or times out on. Passed on as an error, the package would throw it where nothing catches.
  const { onSent, onLeft } = o;
  internals.socketSend = (msg: Uint8Array) =>
    new Promise<number>((resolve, reject) => {
      onSent?.(msg.byteLength);
      udp.send(msg, (err, bytes) => {
        if (!err) {
          onLeft?.();
          return resolve(bytes);
        }
        if (!isUnreachable(err)) return reject(err);
        o.onUnreachable(err);
        resolve(0);
      });
    });
  return { socket, udp, stop };
}
