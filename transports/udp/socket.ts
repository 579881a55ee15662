/**
 * dgram plumbing shared by the udp connect and listen paths: socket options
 * (receive buffer), message-size limits, and the run-time options a UDP
 * channel accepts.
 *
 * Sizes (RFC 9623 §5.2; RFC 768/8200):
 * - maxMessageSize: 65507 bytes over IPv4 (65535 − 20 IP − 8 UDP), 65527 over
 *   IPv6 (65535 payload − 8 UDP; no jumbograms).
 * - singularTransmissionMsgMaxLen (RFC 9622 §8.1.11.1): Node cannot read the path MTU,
 *   so it is the Ethernet figure, 1472 (IPv4) / 1452 (IPv6), except to a
 *   loopback address, whose MTU (65536 on Linux) lets every datagram go in one
 *   packet. Override with the driver option `pathMtu`.
 *
 * @example
 * const socket = createSocket({ type: 'udp4', ...bufferOptions(attempt) });
 */
import type { Socket, SocketOptions } from 'node:dgram';
import type { TransportProperties } from '../../src/properties.js';

/** Default socket receive buffer: 4 MiB (with Linux's default, a 200,000-datagram loopback burst lost 3–5%; with 4 MiB none). */
export const DEFAULT_RECV_BUFFER = 4 * 1024 * 1024;

/** Largest UDP payload an IP datagram can carry: 65507 bytes over IPv4, 65527 over IPv6. */
export function maxMessageSize(family: 4 | 6): number {
  return family === 6 ? 65527 : 65507;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** Largest datagram that fits one IP packet on the path to `address`. */
export function singularMax(address: string, family: 4 | 6, options: Readonly<Record<string, unknown>>): number {
  const mtu = options['pathMtu'];
  const headers = family === 6 ? 48 : 28;
  if (mtu !== undefined) {
    if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65536) {
      throw new RangeError(`options.pathMtu must be an integer from 576 to 65536, got ${String(mtu)}`);
    }
    return Math.min(mtu - headers, maxMessageSize(family));
  }
  if (isLoopback(address)) return maxMessageSize(family);
  return 1500 - headers;
}

function positiveInt(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** recvBufferSize: driver option, else the `udp.recvBufferSize` property, else 4 MiB. sendBufferSize: driver option. */
export function bufferOptions(options: Readonly<Record<string, unknown>>, properties: TransportProperties | undefined): Pick<SocketOptions, 'recvBufferSize' | 'sendBufferSize'> {
  let fromProps: unknown;
  try {
    fromProps = properties?.get('udp.recvBufferSize');
  } catch {
    fromProps = undefined;
  }
  const recv = positiveInt(options['recvBufferSize'], 'options.recvBufferSize') ?? positiveInt(fromProps, 'udp.recvBufferSize') ?? DEFAULT_RECV_BUFFER;
  const send = positiveInt(options['sendBufferSize'], 'options.sendBufferSize');
  return send === undefined ? { recvBufferSize: recv } : { recvBufferSize: recv, sendBufferSize: send };
}

/** What the OS actually granted (Linux doubles the request and caps it at rmem_max). */
export function grantedBuffers(socket: Socket): { recvBufferSize?: number; sendBufferSize?: number } {
  try {
    return { recvBufferSize: socket.getRecvBufferSize(), sendBufferSize: socket.getSendBufferSize() };
  } catch {
    return {};
  }
}

/** The `sendHighWater` driver option (see DEFAULT_SEND_HIGH_WATER in ./channel.ts). */
export function sendHighWater(options: Readonly<Record<string, unknown>>): number | undefined {
  return positiveInt(options['sendHighWater'], 'options.sendHighWater');
}

/** Run-time options on a UDP socket; true when handled. */
export function setUdpOption(socket: Socket, name: string, value: unknown): boolean {
  switch (name.toLowerCase()) {
    case 'udp.recvbuffersize':
    case 'recvbuffersize': {
      const n = positiveInt(value, name) as number;
      socket.setRecvBufferSize(n);
      return true;
    }
    case 'sendbuffersize': {
      const n = positiveInt(value, name) as number;
      socket.setSendBufferSize(n);
      return true;
    }
    case 'ttl': {
      const n = positiveInt(value, name) as number;
      socket.setTTL(n);
      return true;
    }
    default:
      return false;
  }
}
