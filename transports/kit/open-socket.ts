/**
 * Open one TCP or TLS socket to a {@link CheckedTarget}: the only way the
 * WebSocket, HTTP and WebTransport-over-HTTP/2 drivers reach the network. The
 * TCP part is `connectTcp` (./dial.ts: the checked IP and port, never a name,
 * so neither ws nor undici nor Node resolves anything); TLS uses the options
 * of ./tls-options.ts (SNI and certificate identity from the checked name,
 * pins, the caller's verification callback) with the driver's own ALPN list, so the
 * negotiated application protocol is the one the driver declared, and the one
 * client handshake of ./tls-client.ts (session resumption included). An abort
 * at any moment destroys the sockets and rejects with a TapsError (RFC 9623
 * RFC 9623 §4.2: a cancelled attempt releases everything).
 *
 * @example
 * const { socket } = await openSocket({ target, signal, tls: { security, alpn: ['http/1.1'] }, what: 'wss' });
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { LocalEndpoint } from '../../src/endpoints.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import type { SecurityParameters } from '../../src/security.js';
import { connectTcp } from './dial.js';
import { clientHandshake, tlsInfo as tlsSocketInfo } from './tls-client.js';
import { tlsClientOptions, type ClientTlsPlan } from './tls-options.js';
import type { PeerLeaf, PeerRecord } from './tls-verify.js';

export interface OpenSocketOptions {
  readonly target: CheckedTarget;
  readonly signal: AbortSignal;
  readonly local?: LocalEndpoint | undefined;
  /** Present: speak TLS, offering exactly `alpn`. */
  readonly tls?: { readonly security: SecurityParameters; readonly alpn: readonly string[] } | undefined;
  /** For error messages: 'ws', 'https', ... */
  readonly what: string;
  /** ms the TLS handshake may take (default: the kit's, ./tls-client.ts). */
  readonly handshakeTimeout?: number | undefined;
  /** The attempt's `unit` (./account.ts): the socket counts under it, or takes a connection unit of its own. */
  readonly unit?: unknown;
}

export interface OpenedSocket {
  /** What to speak on: the TLS socket, or the TCP socket. */
  readonly socket: net.Socket;
  /** The TCP socket underneath (keep-alive, addresses). */
  readonly raw: net.Socket;
  /** For TLS: the peer as the handshake checked it (on a resumed session, as its full handshake did). */
  readonly peer: PeerRecord | undefined;
}

/** Resolve with the connected (and, for TLS, verified) socket; reject with a TapsError. */
export async function openSocket(options: OpenSocketOptions): Promise<OpenedSocket> {
  const { target, signal, what } = options;
  const raw = await connectTcp(target, options.local, signal, what, undefined, options.unit);
  if (!options.tls) return { socket: raw, raw, peer: undefined };
  let plan: ClientTlsPlan;
  try {
    plan = tlsClientOptions(options.tls.security, target, options.tls.alpn);
  } catch (err) {
    raw.destroy();
    throw err;
  }
  const label = `${what} TLS handshake with ${plan.identity} at ${target.address}:${target.port}`;
  const { socket, peer } = await clientHandshake(raw, plan, target, options.tls.security, signal, label, options.handshakeTimeout);
  checked.set(socket, { authenticated: plan.authenticate, leaf: peer.leaf });
  return { socket, raw, peer };
}

/** `host[:port]` for a URL authority: the checked name, else the bracketed IP. */
export function authority(target: CheckedTarget, defaultPort: number): string {
  const host = target.hostName ?? (target.family === 6 ? `[${target.address}]` : target.address);
  return target.port === defaultPort ? host : `${host}:${target.port}`;
}

/** What the client handshake of a socket opened here checked (a resumed session shows no certificate itself). */
const checked = new WeakMap<net.Socket, { readonly authenticated: boolean; readonly leaf: PeerLeaf | undefined }>();

/** Facts about a TLS socket for `channel.info` (empty for plain TCP). */
export function tlsInfo(socket: net.Socket): Record<string, unknown> {
  if (!(socket instanceof tls.TLSSocket)) return {};
  const name = (socket as tls.TLSSocket & { servername?: string | false }).servername || undefined;
  const client = checked.get(socket);
  return client === undefined ? tlsSocketInfo(socket, name, undefined) : tlsSocketInfo(socket, name, client.authenticated, client.leaf);
}
