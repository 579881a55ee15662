/**
 * Stacks for the fault suite, set up through the public API only:
 * `Preconnection.listen()` on loopback, optionally a fault relay in front of
 * it, `Preconnection.initiate()` to the relay. Each stack is the profile an
 * application would use: tcp and tls with the length-prefix framer, ws and
 * wss (message stacks), udp (unreliable datagrams).
 *
 * @example
 * const p = await connectedPair('tls', { relay: { seed: 3, toServer: { split: 7 } } });
 * await p.client.send('hi');
 * await p.cleanup();
 */
import { TapsError } from '../../src/errors.js';
import type { Connection } from '../../src/connection/connection.js';
import type { Driver } from '../../src/driver.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { Listener } from '../../src/listener.js';
import { createScope, type NetworkScope } from '../../src/policy/index.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { faultyTcpRelay, faultyUdpRelay, type FaultRelay, type TcpFaultPlan, type UdpFaultPlan } from '../helpers/fault-relay.js';

export type Stack = 'tcp' | 'tls' | 'ws' | 'wss' | 'udp';

export const allow: NetworkPolicy = Object.freeze({ decide: () => ({ allow: true, rule: 'faults: allow all' }) as const });
export const scope: NetworkScope = createScope({ tenant: 'faults', policy: allow });
const cert = testCertificate({ kind: 'ec' });

export interface Profile {
  readonly drivers: readonly Driver[];
  readonly properties: TransportProperties;
  readonly server: SecurityParameters;
  readonly client: SecurityParameters;
  readonly framers: ReturnType<typeof lengthPrefixFramer>[];
  readonly scheme: string | undefined;
}

export function profile(stack: Stack): Profile {
  const tlsServer = new SecurityParameters({ certificate: cert.cert, key: cert.key });
  const tlsClient = new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
  const off = SecurityParameters.disabled();
  switch (stack) {
    case 'tcp':
      return { drivers: [tcpDriver], properties: TransportProperties.reliableMessage(), server: off, client: off, framers: [lengthPrefixFramer()], scheme: undefined };
    case 'tls':
      return { drivers: [tlsDriver], properties: TransportProperties.reliableMessage(), server: tlsServer, client: tlsClient, framers: [lengthPrefixFramer()], scheme: undefined };
    case 'ws':
      return { drivers: [wsDriver], properties: TransportProperties.reliableMessage(), server: off, client: off, framers: [], scheme: 'ws' };
    case 'wss':
      return { drivers: [wssDriver], properties: TransportProperties.reliableMessage(), server: tlsServer, client: tlsClient, framers: [], scheme: 'wss' };
    case 'udp':
      return { drivers: [udpDriver], properties: TransportProperties.unreliableDatagram(), server: off, client: off, framers: [], scheme: undefined };
  }
}

export interface Pair {
  readonly client: Connection;
  readonly server: Connection;
  readonly listener: Listener;
  readonly relay: FaultRelay | undefined;
  cleanup(): Promise<void>;
}

export interface PairOptions {
  readonly relay?: TcpFaultPlan | UdpFaultPlan;
  readonly host?: string;
  readonly connectionProperties?: Readonly<Record<string, unknown>>;
  readonly serverConnectionProperties?: Readonly<Record<string, unknown>>;
  readonly driverOptions?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** A listener for `stack` on loopback port 0. */
export async function listenOn(stack: Stack, host = '127.0.0.1', connectionProperties?: Readonly<Record<string, unknown>>, driverOptions?: PairOptions['driverOptions']): Promise<Listener> {
  const p = profile(stack);
  const pre = new Preconnection({
    scope,
    local: { ipAddress: host, port: 0, ...(p.scheme ? { scheme: p.scheme } : {}) },
    properties: p.properties,
    security: p.server,
    framers: p.framers,
    drivers: p.drivers,
    connectionProperties,
    driverOptions,
  });
  return pre.listen();
}

/** A Preconnection for `stack` to `host`:`port`. */
export function dialer(stack: Stack, host: string, port: number, init: Pick<PairOptions, 'connectionProperties' | 'driverOptions'> = {}): Preconnection {
  const p = profile(stack);
  return new Preconnection({
    scope,
    remote: { ipAddress: host, port, ...(p.scheme ? { scheme: p.scheme } : {}) },
    properties: p.properties,
    security: p.client,
    framers: p.framers,
    drivers: p.drivers,
    connectionProperties: init.connectionProperties,
    driverOptions: init.driverOptions,
  });
}

/** Listener, optional relay, client connection, and the server's side of it. */
export async function connectedPair(stack: Stack, options: PairOptions = {}): Promise<Pair> {
  const host = options.host ?? '127.0.0.1';
  const listener = await listenOn(stack, host, options.serverConnectionProperties, options.driverOptions);
  const accepted = new Promise<Connection>((resolve) => listener.once('connectionReceived', resolve));
  let relay: FaultRelay | undefined;
  const cleanups: (() => unknown)[] = [() => listener.stop()];
  try {
    if (options.relay !== undefined) {
      relay = stack === 'udp' ? await faultyUdpRelay(host, listener.port, options.relay as UdpFaultPlan) : await faultyTcpRelay(host, listener.port, options.relay as TcpFaultPlan);
      cleanups.push(() => relay!.close());
    }
    const pre = dialer(stack, host, relay?.port ?? listener.port, options);
    const client = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    cleanups.push(() => client.abort());
    // UDP: the listener sees the peer only when its first datagram arrives (resent: a lossy path may drop it).
    let server: Connection | undefined;
    void accepted.then((c) => (server = c));
    if (stack === 'udp') {
      for (let i = 0; i < 100 && server === undefined; i++) {
        await client.send(new Uint8Array(0), { safelyReplayable: true });
        await Promise.race([accepted, new Promise((r) => setTimeout(r, 20))]);
      }
    }
    const srv = server ?? (await accepted);
    cleanups.push(() => srv.abort());
    return {
      client,
      server: srv,
      listener,
      relay,
      cleanup: async () => {
        for (const c of cleanups.splice(0).reverse()) await c();
      },
    };
  } catch (err) {
    for (const c of cleanups.splice(0).reverse()) await c();
    throw err;
  }
}

/** Resolves once `check()` holds (checked on every poll tick); the test timeout bounds it. */
export async function until(check: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Resolves when the connection is closed, cleanly or not (at once if it already is): `closed` or `connectionError`, never both. */
export function closed(conn: Connection): Promise<void> {
  if (conn.state === 'closed') return Promise.resolve();
  return new Promise((resolve) => {
    conn.once('closed', () => resolve());
    conn.once('connectionError', () => resolve());
  });
}

/**
 * What an application serving untrusted peers does against a slowloris: abort a connection on which no whole
 * message arrived for `ms` (connTimeout is about data we send, RFC 9622 §8.1.3, not about a silent peer).
 */
export function receiveDeadline(conn: Connection, ms: number): void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => conn.abort(new TapsError('ERR_TAPS_TIMEOUT', `no whole message for ${ms} ms (receive deadline)`)), ms);
  };
  arm();
  conn.on('received', arm);
  const stop = (): void => clearTimeout(timer);
  conn.once('closed', stop);
  conn.once('connectionError', stop);
}
