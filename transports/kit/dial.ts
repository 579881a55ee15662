/**
 * Open a TCP connection to a checked target: the dial of every TCP-based
 * driver (tcp and tls directly, http, websocket and webtransport-h2 through
 * ./open-socket.ts); `targetAddress` and `localBinding` serve the UDP-based
 * ones and every listener too. It dials the target's IP and port only (never
 * a name, so no library DNS runs), with Node's own Happy Eyeballs off (the
 * selector races), Nagle off, and half-open allowed (RFC 9622 §9.1.3.5 final).
 * Resolves after the TCP handshake (RFC 9623 §4.2: "ready" for TCP). Abort destroys
 * the socket, removes every listener and rejects with ERR_TAPS_ABORTED
 * (cause: the signal's reason).
 *
 * `targetAddress` is the run-time half of the chokepoint's brand: every
 * driver socket (TCP connect, TLS, UDP, QUIC, every listener) takes its
 * address from it, and it accepts only a target a scope's guard minted, for
 * a use and protocol that kind of socket can serve, under the minting scope's
 * current policy revision. A driver called directly, outside a scope's
 * network, with a lookalike object or a target granted for another use opens
 * nothing (TypeError); with a target kept across a reload, nothing either
 * (PolicyDeniedError `unverified`: the scope's network decides it again).
 *
 * @example
 * const socket = await connectTcp(attempt.target, attempt.local, attempt.signal, 'tcp');
 */
import { Socket, isIP } from 'node:net';
import type { LocalEndpoint } from '../../src/endpoints.js';
import { PolicyDeniedError, TapsError } from '../../src/errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { currentRevisionOf, isCheckedTarget } from '../../src/policy/admission.js';
import type { NetworkUse, PolicyProtocol } from '../../src/policy/types.js';
import { abortedError, throwIfAborted, whenAborted } from './abort.js';
import { dialUnit, holdUntilClose, meterReads, wireMeterFor, type SocketUnit } from './account.js';
import { establishmentError } from './errors.js';
import { stackless } from '../../src/stackless.js';

/** The kind of socket a target opens: a TCP or UDP socket that dials (or sends to) it, or one that binds it. */
export type SocketKind = 'tcp' | 'udp' | 'tcp listen' | 'udp listen';

const TCP_PROTOCOLS: readonly PolicyProtocol[] = ['tcp', 'tls', 'http', 'https', 'ws', 'wss', 'webtransport'];
const UDP_PROTOCOLS: readonly PolicyProtocol[] = ['udp', 'quic', 'webtransport'];

/**
 * The uses and protocols a target must have been minted for to open each kind of socket: a dial serves
 * `connect` (and, over TCP, an HTTP redirect hop), a listener only `bind`.
 */
const SERVES: Readonly<Record<SocketKind, { readonly uses: readonly NetworkUse[]; readonly protocols: readonly PolicyProtocol[] }>> = {
  tcp: { uses: ['connect', 'redirect'], protocols: TCP_PROTOCOLS },
  udp: { uses: ['connect'], protocols: UDP_PROTOCOLS },
  'tcp listen': { uses: ['bind'], protocols: TCP_PROTOCOLS },
  'udp listen': { uses: ['bind'], protocols: UDP_PROTOCOLS },
};

const families = new WeakMap<CheckedTarget, number>();

/**
 * The address, port and family a socket of `kind` may use: `target` must be a CheckedTarget a guard minted
 * (a lookalike is a TypeError) for a use and protocol that kind serves, naming an IP literal and a port
 * (a name here would reach the library's DNS).
 */
export function targetAddress(target: CheckedTarget, what: string, kind: SocketKind): { address: string; port: number; family: 4 | 6 } {
  if (!isCheckedTarget(target)) throw new TypeError(`${what}: attempt.target must be a CheckedTarget minted by a scope's guard`);
  const serves = SERVES[kind];
  if (!serves.uses.includes(target.use)) throw new TypeError(`${what}: a target checked for ${target.use} cannot open a ${kind} socket`);
  if (!serves.protocols.includes(target.protocol)) throw new TypeError(`${what}: a target checked for ${target.protocol} cannot open a ${kind} socket`);
  const revision = currentRevisionOf(target);
  if (revision !== undefined && revision !== target.revision) {
    throw new PolicyDeniedError({
      allow: false, code: 'unverified', rule: null,
      reason: `${what}: the target was decided under policy revision ${target.revision} and the policy is now at ${revision}; only the scope's network decides it again`,
    });
  }
  // A minted target is frozen: its address is parsed once, however many attempts and probes dial it.
  let family = families.get(target);
  if (family === undefined) families.set(target, (family = isIP(target.address)));
  if (family === 0) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `${what}: target address ${JSON.stringify(target.address)} is not an IP address`);
  }
  if (!Number.isInteger(target.port) || target.port < 0 || target.port > 65535) {
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `${what}: target port ${String(target.port)} is out of range`);
  }
  return { address: target.address, port: target.port, family: family as 4 | 6 };
}

/** The local address/port to bind before connecting, if the endpoint gave one. */
export function localBinding(local: LocalEndpoint | undefined): { localAddress?: string; localPort?: number } {
  const out: { localAddress?: string; localPort?: number } = {};
  if (local?.ipAddress !== undefined) out.localAddress = local.zone === undefined ? local.ipAddress : `${local.ipAddress}%${local.zone}`;
  if (local?.port !== undefined && local.port !== 0) out.localPort = local.port;
  return out;
}

/**
 * Connect a TCP socket; resolves when the handshake is done, with the socket or with what `ready(socket)`
 * makes of it. `unit`: the attempt's (`attempt.unit`); the socket takes a unit of the tenant's
 * `limit connections` unless it is the library's grant for this attempt (./account.ts), and holds it until
 * it closes.
 */
export function connectTcp(target: CheckedTarget, local: LocalEndpoint | undefined, signal: AbortSignal, what: string, ready?: undefined, unit?: unknown): Promise<Socket>;
export function connectTcp<T>(target: CheckedTarget, local: LocalEndpoint | undefined, signal: AbortSignal, what: string, ready: (socket: Socket) => T, unit?: unknown): Promise<T>;
export function connectTcp<T>(target: CheckedTarget, local: LocalEndpoint | undefined, signal: AbortSignal, what: string, ready?: (socket: Socket) => T, unit?: unknown): Promise<T | Socket> {
  throwIfAborted(signal, what);
  const to = targetAddress(target, what, 'tcp');
  let taken: SocketUnit | Promise<SocketUnit>;
  try {
    taken = dialUnit(unit, target);
  } catch (err) {
    return Promise.reject(err);
  }
  if (!(taken instanceof Promise)) return dial(target, to, local, signal, what, ready, taken);
  return taken.then((u) => {
    if (signal.aborted) {
      u.release();
      throwIfAborted(signal, what);
    }
    return dial(target, to, local, signal, what, ready, u);
  });
}

/** What a connected socket is ready as (the socket, or what `ready` makes of it). */
function dial<T>(
  target: CheckedTarget, to: { address: string; port: number; family: 4 | 6 }, local: LocalEndpoint | undefined, signal: AbortSignal, what: string,
  ready: ((socket: Socket) => T) | undefined, unit: SocketUnit,
): Promise<T | Socket> {
  const { address, port, family } = to;
  // Made only for an error: most connects never need it.
  const label = (): string => `${what} connect to ${family === 6 ? `[${address}]` : address}:${port}`;
  return new Promise<T | Socket>((resolve, reject) => {
    // Options set after construction, not passed to it: on Node 20 any options object given to `new Socket()`
    // made the socket markedly slower to create, connect and destroy (docs/performance.md).
    // setNoDelay before connect is applied once connected (Node 20 ignores noDelay among connect() options).
    const socket = new Socket();
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    holdUntilClose(socket, unit);
    // Outside the library's path no Connection counts what this socket reads: it charges it itself.
    const meter = unit.granted ? undefined : wireMeterFor(undefined, target);
    if (meter !== undefined) meterReads(socket, meter);
    granted.set(socket, unit.granted);
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
    const onConnect = (): void => {
      cleanup();
      if (ready === undefined) return resolve(socket);
      // Made here, not after another promise hop: the channel is the caller's as soon as the handshake is done.
      try {
        resolve(ready(socket));
      } catch (err) {
        socket.destroy();
        reject(err);
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(stackless(() => establishmentError(err, label()))); // the attempt's answer, kept in the report
    };
    const onAbort = (): void => {
      cleanup();
      // A connecting socket: destroy (not resetAndDestroy, which would wait for the handshake).
      socket.on('error', () => {});
      socket.destroy();
      reject(abortedError(signal, label()));
    };
    stopListening = whenAborted(signal, onAbort);
    socket.on('connect', onConnect);
    socket.on('error', onError);
    if (local === undefined) socket.connect({ host: address, port, family, autoSelectFamily: false });
    else socket.connect({ host: address, port, family, autoSelectFamily: false, ...localBinding(local) });
  });
}

/** Sockets connectTcp opened → whether they count under the library's own unit (a Connection counts their payload). */
const granted = new WeakMap<Socket, boolean>();

/** True when `socket` was opened by connectTcp on the library's path (see ./account.ts). */
export function onLibraryPath(socket: Socket): boolean {
  return granted.get(socket) === true;
}
