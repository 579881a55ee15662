/**
 * Open one TCP or TLS socket to a {@link CheckedTarget}: the only way the
 * WebSocket, HTTP and WebTransport-over-HTTP/2 drivers reach the network. The
 * TCP part is `connectTcp` (./dial.ts: the checked IP and port, never a name,
 * so neither ws nor undici nor Node resolves anything); TLS uses the options
 * of ./tls-options.ts (SNI and certificate identity from the checked name,
 * pins, the caller's verification callback) with the driver's own ALPN list, so the
 * negotiated application protocol is the one the driver declared. An abort
 * at any moment destroys the sockets and rejects with a TapsError (RFC 9623
 * M §4.2: a cancelled attempt releases everything).
 *
 * @example
 * const { socket } = await openSocket({ target, signal, tls: { security, alpn: ['http/1.1'] }, what: 'wss' });
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { LocalEndpoint } from '../../src/endpoints.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import type { SecurityParameters } from '../../src/security.js';
import { abortedError } from './abort.js';
import { connectTcp } from './dial.js';
import { establishmentError } from './errors.js';
import { tlsInfo as tlsSocketInfo } from './tls-client.js';
import { tlsClientOptions, type ClientTlsPlan } from './tls-options.js';
import { verifyPeer } from './tls-verify.js';

export interface OpenSocketOptions {
  readonly target: CheckedTarget;
  readonly signal: AbortSignal;
  readonly local?: LocalEndpoint | undefined;
  /** Present: speak TLS, offering exactly `alpn`. */
  readonly tls?: { readonly security: SecurityParameters; readonly alpn: readonly string[] } | undefined;
  /** For error messages: 'ws', 'https', ... */
  readonly what: string;
}

export interface OpenedSocket {
  /** What to speak on: the TLS socket, or the TCP socket. */
  readonly socket: net.Socket;
  /** The TCP socket underneath (keep-alive, addresses). */
  readonly raw: net.Socket;
}

/** Resolve with the connected (and, for TLS, verified) socket; reject with a TapsError. */
export async function openSocket(options: OpenSocketOptions): Promise<OpenedSocket> {
  const { target, signal, what } = options;
  const raw = await connectTcp(target, options.local, signal, what);
  if (!options.tls) return { socket: raw, raw };
  let plan: ClientTlsPlan;
  try {
    plan = tlsClientOptions(options.tls.security, target, options.tls.alpn);
  } catch (err) {
    raw.destroy();
    throw err;
  }
  const socket = await handshake(raw, plan, signal, `${what} TLS handshake with ${plan.identity} at ${target.address}:${target.port}`);
  authenticated.set(socket, plan.authenticate);
  return { socket, raw };
}

function handshake(raw: net.Socket, plan: ClientTlsPlan, signal: AbortSignal, label: string): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({ socket: raw, ...plan.options });
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.on('error', () => {});
      raw.on('error', () => {});
      socket.destroy();
      raw.destroy();
      reject(signal.aborted ? abortedError(signal, label) : establishmentError(err, label, true));
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(Object.assign(new Error('the connection closed during the TLS handshake'), { code: 'ECONNRESET' }));
    const onAbort = (): void => fail(signal.reason);
    const cleanup = (): void => {
      signal.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('secureConnect', onSecure);
    };
    const onSecure = (): void => {
      verifyPeer(socket, plan, signal).then(() => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve(socket);
      }, fail);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', onSecure);
    socket.on('error', onError);
    socket.once('close', onClose);
  });
}

/** `host[:port]` for a URL authority: the checked name, else the bracketed IP. */
export function authority(target: CheckedTarget, defaultPort: number): string {
  const host = target.hostName ?? (target.family === 6 ? `[${target.address}]` : target.address);
  return target.port === defaultPort ? host : `${host}:${target.port}`;
}

const authenticated = new WeakMap<net.Socket, boolean>();

/** Facts about a TLS socket for `channel.info` (empty for plain TCP). */
export function tlsInfo(socket: net.Socket): Record<string, unknown> {
  if (!(socket instanceof tls.TLSSocket)) return {};
  const name = (socket as tls.TLSSocket & { servername?: string | false }).servername || undefined;
  return tlsSocketInfo(socket, name, authenticated.get(socket));
}
