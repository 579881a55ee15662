/**
 * Options of the `quic` driver (`preconnection.driverOptions.quic`), checked
 * once per attempt; a wrong type is a TypeError naming the option. Options
 * go by driver id: a `quic-dgram` connection reads the same options from
 * `driverOptions['quic-dgram']`, not from `driverOptions.quic`.
 *
 * | option            | default        | meaning |
 * |-------------------|----------------|---------|
 * | `alpn`            | `['taps']`     | ALPN protocols when `security.alpn` gives none (QUIC requires one, RFC 9001 §8.1) |
 * | `connectTimeout`  | 10000 ms       | give up a handshake nobody answers (the package waits forever otherwise) |
 * | `idleTimeout`     | off            | QUIC max_idle_timeout: a peer silent this long ends the connection (ERR_TAPS_TIMEOUT). Off by default like TCP's and like RFC 9622 §8.1.3 connTimeout; the package also runs ~25% slower with it on (a timer reset per packet, bench/quic.ts) |
 * | `closeTimeout`    | 5000 ms        | how long a stream's graceful close may wait for the peer's FIN |
 * | `keepAliveInterval` | off          | send PINGs this often (ms) to keep an idle connection open |
 * | `ipv6Only`        | false          | listeners: a `::` bind takes IPv6 only (by default it is dual-stack, like the tcp and tls listeners) |
 * | `maxUdpPayload`   | 1350 B; 32 KiB on loopback | largest UDP payload sent and accepted (RFC 9000 §14: 1200 is the floor; loopback's MTU is 64 KiB, and the package's speed scales with it) |
 * | `datagramHighWater` | 32           | `quic-dgram`: datagrams one connection hands to QUIC per event-loop turn before `send()` pushes back (./datagram-mux.ts) |
 *
 * @example
 * new Preconnection({ ..., driverOptions: { quic: { alpn: ['myproto'], idleTimeout: 5000 } } });
 */
import type { SecurityParameters } from '../../src/security.js';

/** The `quic` driver's options after checking, defaults applied (see the table above). */
export interface QuicOptions {
  readonly alpn: readonly string[];
  readonly connectTimeout: number;
  readonly idleTimeout: number | undefined;
  readonly closeTimeout: number;
  readonly keepAliveInterval: number | undefined;
  readonly maxUdpPayload: number;
  readonly datagramHighWater: number;
}

/** quiche's queue of received datagrams (drained after every packet; a full queue drops the oldest). */
export const DATAGRAM_RECV_QUEUE = 4096;
/** quiche's queue of datagrams waiting for the congestion window. */
export const DATAGRAM_SEND_QUEUE = 1024;
/** Datagrams waiting in quiche's send queue at which the window counts as full and `send()` pushes back. */
export const DATAGRAM_QUEUE_HIGH_WATER = 64;
/** Receive buffer asked of the OS for a socket that carries datagrams (capped by net.core.rmem_max). */
export const DATAGRAM_RECV_BUFFER = 4 * 1024 * 1024;

/** Payload size off loopback: fits any path that carries QUIC's 1200-byte minimum with room (quiche's default). */
export const DEFAULT_UDP_PAYLOAD = 1350;
/** Payload size between loopback addresses. */
export const LOOPBACK_UDP_PAYLOAD = 32 * 1024;

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(address: string): boolean {
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/** The default ALPN protocol when neither security.alpn nor the `alpn` option names one. */
export const DEFAULT_ALPN = 'taps';

function ms(options: Readonly<Record<string, unknown>>, name: string, fallback: number | undefined): number | undefined {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new TypeError(`driverOptions.quic.${name} must be a positive number of ms, got ${String(v)}`);
  return v;
}

function payload(options: Readonly<Record<string, unknown>>, address: string): number {
  const v = options['maxUdpPayload'];
  if (v === undefined) return isLoopbackAddress(address) ? LOOPBACK_UDP_PAYLOAD : DEFAULT_UDP_PAYLOAD;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1200 || v > 65527) throw new RangeError(`driverOptions.quic.maxUdpPayload must be an integer from 1200 to 65527, got ${String(v)}`);
  return v;
}

function count(options: Readonly<Record<string, unknown>>, name: string, fallback: number): number {
  const v = options[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65536) throw new RangeError(`driverOptions.quic.${name} must be an integer from 1 to 65536, got ${String(v)}`);
  return v;
}

/** Resolve the driver's options (and ALPN from the security parameters first). */
export function quicOptions(options: Readonly<Record<string, unknown>>, security: SecurityParameters, address: string): QuicOptions {
  const alpnOption = options['alpn'];
  if (alpnOption !== undefined && (!Array.isArray(alpnOption) || alpnOption.length === 0 || !alpnOption.every((a) => typeof a === 'string' && a.length > 0 && a.length < 256))) {
    throw new TypeError('driverOptions.quic.alpn must be a non-empty array of protocol names');
  }
  const alpn = security.alpn && security.alpn.length > 0 ? security.alpn : ((alpnOption as string[] | undefined) ?? [DEFAULT_ALPN]);
  return {
    alpn: Object.freeze([...alpn]),
    connectTimeout: ms(options, 'connectTimeout', 10_000)!,
    idleTimeout: ms(options, 'idleTimeout', undefined),
    closeTimeout: ms(options, 'closeTimeout', 5_000)!,
    keepAliveInterval: ms(options, 'keepAliveInterval', undefined),
    maxUdpPayload: payload(options, address),
    datagramHighWater: count(options, 'datagramHighWater', 32),
  };
}

/** Read size of the package's streams: one 64 KiB chunk per read instead of its 4 KiB default. */
export const READ_CHUNK = 64 * 1024;

/** The package config both sides share: ALPN, idle timeout, payload sizes, read size, keep-alive, and QUIC DATAGRAM when `datagrams`. */
export function transportConfig(cfg: QuicOptions, datagrams = false): {
  applicationProtos: string[];
  maxIdleTimeout: number;
  maxSendUdpPayloadSize: number;
  maxRecvUdpPayloadSize: number;
  readableChunkSize: number;
  keepAliveIntervalTime?: number;
  enableDgram?: [boolean, number, number];
} {
  return {
    applicationProtos: [...cfg.alpn],
    maxIdleTimeout: cfg.idleTimeout ?? 0,
    maxSendUdpPayloadSize: cfg.maxUdpPayload,
    maxRecvUdpPayloadSize: cfg.maxUdpPayload,
    readableChunkSize: READ_CHUNK,
    ...(cfg.keepAliveInterval ? { keepAliveIntervalTime: cfg.keepAliveInterval } : {}),
    ...(datagrams ? { enableDgram: [true, DATAGRAM_RECV_QUEUE, DATAGRAM_SEND_QUEUE] as [boolean, number, number] } : {}),
  };
}
