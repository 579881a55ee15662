/**
 * Quotas counted at the socket, over real loopback listeners: a guest that
 * holds a scope and a driver (`connection.driver`, or any driver object) and
 * mints targets with its own `scope.guard` still dials inside
 * `limit connections`, binds inside `limit listeners` and reads inside
 * `limit received`, because the kit's dial and listen helpers take the units
 * and meter the reads themselves. The library's own path counts each
 * connection and listener once (exact counts through `host.usage`).
 */
import { createSocket } from 'node:dgram';
import { getEventListeners } from 'node:events';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NEVER_ABORTED, type ChannelReceiver, type ConnectAttempt, type Driver, type ListenAttempt, type TransportChannel } from '../../src/driver.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { QuotaExceededError } from '../../src/errors.js';
import { createScope, type TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { testCertificate } from '../helpers/certs.js';
import { quotaTenants } from '../helpers/tenants.js';
import { quicDriver } from '../../transports/quic/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';

const { host, cleanups, tenant } = quotaTenants('sq', 'allow *://@loopback:*\nallow bind:*://@loopback:*\nallow accept:*://@loopback:*');

/** A TCP server counting the connections it accepted; `greeting` is written to each. */
async function tcpServer(greeting?: Uint8Array): Promise<{ port: number; accepted: number }> {
  const c = { port: 0, accepted: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    c.accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
    if (greeting !== undefined) s.write(greeting);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return Object.assign(c, { port: (server.address() as { port: number }).port });
}

/** What a guest holding `scope` and a driver hands the driver: a target its own guard minted. */
async function attempt(scope: TenantScope, driver: Driver, port: number): Promise<ConnectAttempt> {
  const target = await scope.guard.authorize({ use: 'connect', protocol: driver.protocol, address: '127.0.0.1', port });
  return {
    signal: NEVER_ABORTED, target, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port }), security: SecurityParameters.disabled(),
    properties: new TransportProperties(), options: {}, guard: scope.guard,
  };
}

async function listenAttempt(scope: TenantScope, driver: Driver): Promise<ListenAttempt> {
  const target = await scope.guard.authorize({ use: 'bind', protocol: driver.protocol, address: '127.0.0.1', port: 0 });
  return { signal: NEVER_ABORTED, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: scope.guard };
}

/** Start `channel` and resolve with the error it closes with (undefined: closed cleanly). */
function closedWith(channel: TransportChannel): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const receiver: ChannelReceiver = { data: () => {}, end: () => {}, drain: () => {}, closed: (err) => resolve(err) };
    channel.start(receiver);
  });
}

const until = async (what: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
};

const expectQuota = (err: unknown, quota: string): void => {
  expect(err).toBeInstanceOf(QuotaExceededError);
  expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota });
};

describe('limit connections counts every socket, whoever dials it', () => {
  it.each([
    ['tcp', tcpDriver],
    ['udp', udpDriver],
  ] as const)('%s: a connection of the library is one unit; a driver called directly takes its own, and one beyond the limit is refused before a socket exists', async (name, driver) => {
    const { id, scope } = await tenant('limit connections 2');
    let port: number;
    let accepted = (): number => 0;
    if (name === 'tcp') {
      const server = await tcpServer();
      port = server.port;
      accepted = () => server.accepted;
    } else {
      const socket = createSocket('udp4');
      await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
      cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
      port = socket.address().port;
    }
    const properties = name === 'udp' ? TransportProperties.unreliableDatagram() : new TransportProperties();
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, drivers: [driver], security: SecurityParameters.disabled(), properties }).initiate();
    expect(host.usage(id).connections).toBe(1); // the Connection's unit; its socket counted under it, not again

    // The guest: the connection's driver, and targets from its own guard.
    const direct = await conn.driver.connect(await attempt(scope, conn.driver, port));
    expect(host.usage(id).connections).toBe(2);
    const refused = await conn.driver.connect(await attempt(scope, conn.driver, port)).catch((e: unknown) => e);
    expectQuota(refused, 'connections');
    expect(host.usage(id).connections).toBe(2);
    if (name === 'tcp') {
      await until(() => accepted() === 2);
      expect(accepted()).toBe(2); // the refused one never reached the server
    }
    direct.abort();
    await until(() => host.usage(id).connections === 1);
    expect(host.usage(id).connections).toBe(1);
    await conn.close();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
  });

  it('a scope\'s network does not lend its unit either: scope.network.connect with a driver takes one per socket', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const server = await tcpServer();
    const a = await scope.network.connect(tcpDriver, await attempt(scope, tcpDriver, server.port));
    expect(host.usage(id).connections).toBe(1);
    expectQuota(await scope.network.connect(tcpDriver, await attempt(scope, tcpDriver, server.port)).catch((e: unknown) => e), 'connections');
    // An initiate() now is over the limit too.
    expectQuota(
      await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.port }, drivers: [tcpDriver], security: SecurityParameters.disabled() }).initiate().catch((e: unknown) => e),
      'connections',
    );
    a.abort();
    await until(() => host.usage(id).connections === 0);
    expect(server.accepted).toBe(1);
  });
});

describe('a socket grant serves the library\'s own attempt only', () => {
  it('a guest holding an attempt\'s grant cannot make one, nor open a second socket under it: that socket takes its own unit', async () => {
    const { id, scope } = await tenant('limit connections 2');
    const server = await tcpServer();
    let grant: unknown;
    const spy: Driver = Object.freeze({ ...tcpDriver, connect: (a: ConnectAttempt) => ((grant = a.unit), tcpDriver.connect(a)) });
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.port }, drivers: [spy], security: SecurityParameters.disabled() }).initiate();
    expect(host.usage(id).connections).toBe(1);
    expect(typeof grant).toBe('object');
    expect(Object.keys(grant as object)).toEqual([]); // nothing readable on it
    // Its class cannot be called to make one with a lease of the guest's (that would count nothing).
    const Grant = (grant as { constructor: new (...a: unknown[]) => unknown }).constructor;
    const fakeLease = { released: false, sent() {}, received() {}, release() {} };
    for (const key of [undefined, Symbol('socket grant')]) expect(() => new Grant(key, scope, fakeLease, 'connection')).toThrow(TypeError);
    // The grant is busy while the connection's socket is open: a second socket under it takes a unit, a third is over the limit.
    const second = await tcpDriver.connect({ ...(await attempt(scope, tcpDriver, server.port)), unit: grant });
    expect(host.usage(id).connections).toBe(2);
    expectQuota(await tcpDriver.connect({ ...(await attempt(scope, tcpDriver, server.port)), unit: grant }).catch((e: unknown) => e), 'connections');
    // A lookalike (an object of the grant's prototype) is no grant either.
    expectQuota(await tcpDriver.connect({ ...(await attempt(scope, tcpDriver, server.port)), unit: Object.create(Object.getPrototypeOf(grant)) }).catch((e: unknown) => e), 'connections');
    second.abort();
    await conn.close();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    expect(server.accepted).toBe(2);
  });
});

describe('a socket grant\'s class offers a guest nothing', () => {
  it('its statics cannot free a busy grant nor mint another on the same lease: each further socket takes its own unit', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const server = await tcpServer();
    let grant: unknown;
    const spy: Driver = Object.freeze({ ...tcpDriver, connect: (a: ConnectAttempt) => ((grant = a.unit), tcpDriver.connect(a)) });
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.port }, drivers: [spy], security: SecurityParameters.disabled() }).initiate();
    expect(host.usage(id).connections).toBe(1);
    const Grant = (grant as { constructor: Record<string, unknown> }).constructor;
    // Whatever the class offers (static methods a guest reaches through `grant.constructor`) is tried on the grant.
    for (const name of Object.getOwnPropertyNames(Grant)) {
      const f = Grant[name];
      if (typeof f !== 'function') continue;
      for (const args of [[grant], [grant, scope, 'connection'], [grant, scope, 'listener']]) {
        let made: unknown;
        try {
          made = (f as (...a: unknown[]) => unknown)(...args);
        } catch {
          continue;
        }
        // A second grant minted from it, or the grant itself freed: either way a socket must still take a unit.
        for (const unit of [made, grant]) {
          const err = await tcpDriver.connect({ ...(await attempt(scope, tcpDriver, server.port)), unit }).then((ch) => (ch.abort(), undefined), (e: unknown) => e);
          expectQuota(err, 'connections');
        }
      }
    }
    await conn.close();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    expect(server.accepted).toBe(1);
  });
});

describe('limit listeners counts every bound socket', () => {
  it.each([
    ['tcp', tcpDriver],
    ['udp', udpDriver],
  ] as const)('%s: a Listener is one unit whatever it binds; a listener opened directly beyond the limit is refused', async (name, driver) => {
    const { id, scope } = await tenant('limit listeners 1');
    const properties = name === 'udp' ? TransportProperties.unreliableDatagram() : new TransportProperties();
    const listener = await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, drivers: [driver], security: SecurityParameters.disabled(), properties }).listen();
    expect(host.usage(id).listeners).toBe(1);
    expectQuota(await driver.listen!(await listenAttempt(scope, driver)).catch((e: unknown) => e), 'listeners');
    await listener.stop();
    await until(() => host.usage(id).listeners === 0);
    expect(host.usage(id).listeners).toBe(0);
    const direct = await driver.listen!(await listenAttempt(scope, driver));
    expect(host.usage(id).listeners).toBe(1);
    expectQuota(
      await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, drivers: [driver], security: SecurityParameters.disabled(), properties }).listen().catch((e: unknown) => e),
      'listeners',
    );
    await direct.close();
    await until(() => host.usage(id).listeners === 0);
    expect(host.usage(id).listeners).toBe(0);
  });
});

describe('limit received counts what a directly opened socket reads', () => {
  it('tcp: 4 KiB from the peer against a 1 KiB budget stops the socket with the budget error; the library\'s path counts it once', async () => {
    const greeting = new Uint8Array(4096).fill(0x62);
    const server = await tcpServer(greeting);
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    const channel = await tcpDriver.connect(await attempt(scope, tcpDriver, server.port));
    const err = await closedWith(channel);
    console.log(`direct tcp socket: ${host.usage(id).received} bytes received counted, closed with ${(err as { code?: string } | undefined)?.code}`);
    expectQuota(err, 'bytes-received');
    expect(host.usage(id).received).toBeGreaterThan(1024);
    expect(host.usage(id).received).toBeLessThanOrEqual(4096);

    // The library's path: counted by the Connection as delivered, and not again at the socket.
    const small = await tcpServer(new Uint8Array(300).fill(0x63));
    const other = await tenant('limit received 1KiB per 60s');
    const conn = await new Preconnection({ scope: other.scope, remote: { ipAddress: '127.0.0.1', port: small.port }, drivers: [tcpDriver], security: SecurityParameters.disabled() }).initiate();
    let got = 0;
    conn.on('received', (m: { data: Uint8Array }) => (got += m.data.byteLength));
    await until(() => got === 300);
    expect(got).toBe(300);
    expect(host.usage(other.id).received).toBe(300);
    await conn.close();
  });
});

describe('a driver\'s word that its channel counts itself is not taken', () => {
  it('a guest driver wrapping the TCP channel and saying metered / receiveMetered: what arrives is counted all the same', async () => {
    const server = await tcpServer(new Uint8Array(4096).fill(0x64));
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    // The guest's driver: the library's TCP channel (its socket on the library's path, under the attempt's grant), claiming to count itself.
    const liar: Driver = Object.freeze({
      ...tcpDriver,
      connect: async (a: ConnectAttempt) => {
        const inner = await tcpDriver.connect(a);
        return new Proxy(inner, {
          get: (t, k) => (k === 'metered' || k === 'receiveMetered' ? true : typeof Reflect.get(t, k) === 'function' ? (Reflect.get(t, k) as (...x: unknown[]) => unknown).bind(t) : Reflect.get(t, k)),
        });
      },
    });
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.port }, drivers: [liar], security: SecurityParameters.disabled() }).initiate();
    let got = 0;
    const ended = new Promise<unknown>((r) => {
      conn.once('closed', () => r(undefined));
      conn.once('connectionError', (e: unknown) => r(e));
    });
    conn.on('received', (m: { data: Uint8Array }) => (got += m.data.byteLength));
    const err = await ended; // counted, the 4 KiB end the connection; uncounted, they would all arrive and it would stay open
    console.log(`lying driver: ${got} bytes delivered, ${host.usage(id).received} counted received, ended with ${(err as { code?: string } | undefined)?.code ?? String(err)}`);
    expectQuota(err, 'bytes-received');
    expect(got).toBeLessThanOrEqual(1024);
    conn.abort();
  });
});

describe('a guest driver that keeps the library\'s channel to itself', () => {
  it('reads it privately and hands the Connection another: what the socket reads is counted all the same', async () => {
    const server = await tcpServer(new Uint8Array(4096).fill(0x65));
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    let privately = 0;
    const ended = new Promise<Error | undefined>((resolve) => {
      const hoarder: Driver = Object.freeze({
        ...tcpDriver,
        connect: async (a: ConnectAttempt) => {
          const inner = await tcpDriver.connect(a);
          inner.start({ data: (d: Uint8Array) => void (privately += d.byteLength), end: () => {}, drain: () => {}, closed: (err) => resolve(err) });
          // The Connection gets a second channel to the same server, under a unit of its own.
          return tcpDriver.connect({ ...a, unit: undefined });
        },
      });
      void new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: server.port }, drivers: [hoarder], security: SecurityParameters.disabled() })
        .initiate()
        .then((conn) => cleanups.push(() => conn.abort()));
    });
    const err = await ended; // uncounted, all 4 KiB would arrive and the socket stay open
    console.log(`private reader: ${privately} bytes read, ${host.usage(id).received} counted received, its socket ${err === undefined ? 'still open' : `closed with ${(err as { code?: string }).code}`}`);
    expectQuota(err, 'bytes-received');
    expect(privately).toBeLessThanOrEqual(1024);
  });
});

describe('a guest driver that keeps the library\'s UDP channel to itself', () => {
  it('reads it privately and hands the Connection another: what the socket reads is counted all the same', async () => {
    const server = createSocket('udp4');
    // Each datagram is answered with four of 512 bytes.
    server.on('message', (_m, from) => {
      for (let i = 0; i < 4; i++) server.send(new Uint8Array(512).fill(0x66), from.port, from.address);
    });
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = server.address().port;
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    let privately = 0;
    const ended = new Promise<Error | undefined>((resolve) => {
      const hoarder: Driver = Object.freeze({
        ...udpDriver,
        connect: async (a: ConnectAttempt) => {
          const inner = await udpDriver.connect(a);
          inner.start({ data: (d: Uint8Array) => void (privately += d.byteLength), end: () => {}, drain: () => {}, closed: (err) => resolve(err) });
          inner.send(new Uint8Array([1]), {}, () => {});
          return udpDriver.connect({ ...a, unit: undefined });
        },
      });
      void new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, drivers: [hoarder], properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() })
        .initiate()
        .then((conn) => cleanups.push(() => conn.abort()));
    });
    const err = await ended; // uncounted, all 2 KiB would arrive and the socket stay open
    console.log(`private udp reader: ${privately} bytes read, ${host.usage(id).received} counted received, closed with ${(err as { code?: string } | undefined)?.code}`);
    expectQuota(err, 'bytes-received');
    expect(privately).toBeLessThanOrEqual(1024);
  });
});

/**
 * A guest's listen driver that binds `driver`'s listener with the Listener's attempt (and its grant), reads
 * each peer's channel itself and hands the Listener a second listener: `ended` settles when a peer's channel
 * closes (with its error), `end` is called, or once `stopAt` bytes were read privately (uncounted, the peer would stay open).
 */
function hoardingListenDriver(driver: Driver, stopAt: number): { driver: Driver; port: () => number; privately: () => number; ended: Promise<Error | undefined>; end: (err: Error) => void } {
  let privately = 0;
  let port = 0;
  let closed!: (err: Error | undefined) => void;
  const ended = new Promise<Error | undefined>((r) => (closed = r));
  const hoarder: Driver = Object.freeze({
    ...driver,
    listen: async (a: ListenAttempt) => {
      const inner = await driver.listen!(a);
      cleanups.push(() => inner.close());
      port = inner.local.port;
      const data = (d: Uint8Array): void => void ((privately += d.byteLength) >= stopAt && closed(undefined));
      inner.start({ connection: (ch) => ch.start({ data, end: () => {}, drain: () => {}, closed: (err) => closed(err) }), error: () => {} });
      return driver.listen!({ ...a, unit: undefined });
    },
  });
  return { driver: hoarder, port: () => port, privately: () => privately, ended, end: (err) => closed(err) };
}

describe('a guest driver that keeps its listener\'s peers to itself', () => {
  it('tcp: reads each peer privately and hands the Listener another listener: what the peer sends is counted all the same', async () => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    const hoard = hoardingListenDriver(tcpDriver, 4096);
    const hoarder = hoard.driver;
    const listener = await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, drivers: [hoarder], security: SecurityParameters.disabled() }).listen();
    cleanups.push(() => listener.stop());
    const peer = netConnect(hoard.port(), '127.0.0.1');
    peer.on('error', () => {});
    peer.write(new Uint8Array(4096).fill(0x67));
    const err = await hoard.ended; // uncounted, all 4 KiB would arrive and the socket stay open
    peer.destroy();
    console.log(`private listener reader: ${hoard.privately()} bytes read, ${host.usage(id).received} counted received, closed with ${(err as { code?: string } | undefined)?.code}`);
    expectQuota(err, 'bytes-received');
    expect(hoard.privately()).toBeLessThanOrEqual(1024);
  });

  it('udp: reads each peer privately and hands the Listener another listener: what the peer sends is counted all the same', async () => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    const hoard = hoardingListenDriver(udpDriver, 2048);
    const hoarder = hoard.driver;
    const listener = await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, drivers: [hoarder], properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() }).listen();
    cleanups.push(() => listener.stop());
    const peer = createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
    // Four datagrams of 512 bytes, one at a time (each sent once the previous one has left).
    for (let i = 0; i < 4; i++) await new Promise<void>((r) => peer.send(new Uint8Array(512).fill(0x68), hoard.port(), '127.0.0.1', () => r()));
    const err = await hoard.ended;
    console.log(`private udp listener reader: ${hoard.privately()} bytes read, ${host.usage(id).received} counted received, closed with ${(err as { code?: string } | undefined)?.code}`);
    expectQuota(err, 'bytes-received');
    expect(hoard.privately()).toBeLessThanOrEqual(1024);
  });

  it('udp: on the library\'s own path each datagram a peer sends is counted once', async () => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    const listener = await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, drivers: [udpDriver], properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() }).listen();
    cleanups.push(() => listener.stop());
    const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
    const peer = createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => peer.send(new Uint8Array(100).fill(0x69), listener.port, '127.0.0.1', () => r()));
    const conn = await accepted;
    cleanups.push(() => conn.abort());
    let got = 0;
    for (let i = 0; i < 3; i++) got += (await conn.receive()).data.byteLength;
    console.log(`udp listener on the library's path: ${got} bytes delivered, ${host.usage(id).received} counted received`);
    expect(got).toBe(300);
    expect(host.usage(id).received).toBe(300);
  });
});

describe('a guest driver that keeps its QUIC, WebSocket, TLS or WebTransport listener\'s peers to itself', () => {
  const cert = testCertificate({ kind: 'ec', days: 10 });
  it.each([
    ['quic', quicDriver, new SecurityParameters({ certificate: cert.cert, key: cert.key }), new SecurityParameters({ ca: cert.cert }), new TransportProperties({ multistreaming: 'require' }), 'quic'],
    ['ws', wsDriver, SecurityParameters.disabled(), SecurityParameters.disabled(), TransportProperties.reliableMessage(), 'ws'],
    ['wss', wssDriver, new SecurityParameters({ certificate: cert.cert, key: cert.key }), new SecurityParameters({ ca: cert.cert }), TransportProperties.reliableMessage(), 'wss'],
    ['tls', tlsDriver, new SecurityParameters({ certificate: cert.cert, key: cert.key }), new SecurityParameters({ ca: cert.cert }), new TransportProperties(), 'tls'],
    ['webtransport-h2', webtransportH2Driver, new SecurityParameters({ certificate: cert.cert, key: cert.key }), new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }), new TransportProperties({ multistreaming: 'require' }), 'webtransport'],
  ] as const)('%s: reads each peer privately and hands the Listener another listener: what the peer sends is counted all the same', async (_name, driver, security, peerSecurity, properties, scheme) => {
    const { id, scope } = await tenant('limit received 16KiB per 60s');
    const hoard = hoardingListenDriver(driver, 65536);
    const hoarder = hoard.driver;
    const listener = await new Preconnection({ scope, local: `${scheme}://127.0.0.1:0`, drivers: [hoarder], security, properties }).listen();
    cleanups.push(() => listener.stop());
    const peerScope = createScope({ tenant: `sq-hoard-${scheme}-peer`, policy: { decide: () => ({ allow: true, rule: 'peer' }) } });
    const conn = await new Preconnection({ scope: peerScope, remote: `${scheme}://127.0.0.1:${hoard.port()}`, drivers: [driver], security: peerSecurity, properties }).initiate();
    cleanups.push(() => conn.abort());
    // A WebTransport session over the budget ends before any stream reaches the driver: the peer sees it end.
    conn.once('connectionError', (e) => hoard.end(e));
    for (let i = 0; i < 16 && hoard.privately() < 65536; i++) await conn.send(new Uint8Array(4096).fill(0x71)).catch(() => {});
    const err = await hoard.ended;
    console.log(`private ${scheme} listener reader: ${hoard.privately()} bytes read, ${host.usage(id).received} counted received, closed with ${(err as { code?: string } | undefined)?.code}`);
    // The budget is spent at the socket and the peer's channel ends (QUIC's with the connection's abort), or its connection.
    expect(err).toBeInstanceOf(Error);
    expect(host.usage(id).received).toBeGreaterThan(16384);
    expect(hoard.privately()).toBeLessThanOrEqual(16384);
  });
});

describe('peers of a listener opened directly count too', () => {
  it('tcp: each accepted peer takes a unit of limit connections; one over the limit is dropped at once', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const listener = await tcpDriver.listen!(await listenAttempt(scope, tcpDriver));
    const channels: TransportChannel[] = [];
    listener.start({ connection: (ch) => channels.push(ch), error: () => {} });
    const client = (): Promise<{ closed: Promise<void>; socket: Socket }> => new Promise((resolve, reject) => {
      const socket = netConnect(listener.local.port, '127.0.0.1');
      socket.on('error', () => {});
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      socket.once('connect', () => resolve({ closed, socket }));
      socket.once('error', reject);
    });
    const first = await client();
    await until(() => channels.length === 1);
    expect(host.usage(id).connections).toBe(1);
    const second = await client();
    await second.closed; // dropped by the listener
    expect(channels).toHaveLength(1);
    expect(host.usage(id).connections).toBe(1);
    // The peer's unit is held until its socket closes here.
    for (const ch of channels) ch.abort();
    await first.closed;
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    await listener.close();
  });
});

describe('peers of a UDP listener opened directly count too', () => {
  it('udp: each new peer takes a unit of limit connections; a peer over the limit gets no channel; datagrams count against limit received', async () => {
    const { id, scope } = await tenant('limit connections 1\nlimit received 1KiB per 60s');
    const listener = await udpDriver.listen!(await listenAttempt(scope, udpDriver));
    const channels: TransportChannel[] = [];
    listener.start({ connection: (ch) => channels.push(ch), error: () => {} });
    const peer = async (): Promise<ReturnType<typeof createSocket>> => {
      const s = createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
      return s;
    };
    const a = await peer();
    const b = await peer();
    a.send(new Uint8Array(300), listener.local.port, '127.0.0.1');
    await until(() => channels.length === 1);
    expect(host.usage(id).connections).toBe(1);
    b.send(new Uint8Array(300), listener.local.port, '127.0.0.1');
    a.send(new Uint8Array(300), listener.local.port, '127.0.0.1');
    await until(() => host.usage(id).received === 600);
    expect(channels).toHaveLength(1); // b was refused a unit: its datagram dropped, not counted
    expect(host.usage(id).received).toBe(600);
    const failed = closedWith(channels[0]!);
    a.send(new Uint8Array(600), listener.local.port, '127.0.0.1'); // 1200 > 1 KiB
    expectQuota(await failed, 'bytes-received');
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    await listener.close();
  });
});

describe('peers of a WebSocket listener opened directly count too', () => {
  it('ws: each accepted peer takes a unit of limit connections; one over the limit is dropped before its upgrade', async () => {
    const { WebSocket } = await import('ws');
    const { id, scope } = await tenant('limit connections 1');
    const listener = await wsDriver.listen!(await listenAttempt(scope, wsDriver));
    const channels: TransportChannel[] = [];
    listener.start({ connection: (ch) => channels.push(ch), error: () => {} });
    const open = (): Promise<{ ws: InstanceType<typeof WebSocket>; result: Promise<string> }> => {
      const ws = new WebSocket(`ws://127.0.0.1:${listener.local.port}/`);
      const result = new Promise<string>((r) => {
        ws.once('open', () => r('open'));
        ws.once('error', () => r('refused'));
      });
      return Promise.resolve({ ws, result });
    };
    const first = await open();
    expect(await first.result).toBe('open');
    await until(() => channels.length === 1);
    expect(host.usage(id).connections).toBe(1);
    const second = await open();
    expect(await second.result).toBe('refused');
    expect(channels).toHaveLength(1);
    expect(host.usage(id).connections).toBe(1);
    for (const ch of channels) ch.abort();
    first.ws.terminate();
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    await listener.close();
  });
});

describe('a WebSocket listener\'s refusals let the socket go', () => {
  it('ws: a peer refused with 404 (another path) that keeps its side open holds neither the socket nor a unit', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const bind = await listenAttempt(scope, wsDriver);
    const listener = await wsDriver.listen!({ ...bind, options: { path: '/only' } });
    cleanups.push(() => listener.close());
    listener.start({ connection: (ch) => ch.abort(), error: () => {} });
    const peer = netConnect(listener.local.port, '127.0.0.1');
    peer.on('error', () => {});
    const answer = new Promise<string>((r) => {
      let text = '';
      peer.on('data', (d: Buffer) => (text += d.toString()));
      peer.once('end', () => r(text)); // the server's FIN; this side stays open (allowHalfOpen)
    });
    const closed = new Promise<void>((r) => peer.once('close', () => r()));
    peer.setNoDelay(true);
    (peer as Socket & { allowHalfOpen: boolean }).allowHalfOpen = true;
    peer.write('GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    expect(await answer).toMatch(/^HTTP\/1.1 404/);
    await Promise.race([closed, until(() => host.usage(id).connections === 0)]);
    console.log(`404 peer with its side open: ${host.usage(id).connections} units held, peer socket ${peer.destroyed ? 'closed' : 'open'}`);
    expect(host.usage(id).connections).toBe(0);
    peer.destroy();
  });
});

describe('a QUIC attempt over limit connections', () => {
  it('is refused and leaves no listener on the attempt\'s signal', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const server = createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = server.address().port;
    const held = await udpDriver.connect(await attempt(scope, udpDriver, port));
    cleanups.push(() => held.abort());
    expect(host.usage(id).connections).toBe(1);
    const cert = testCertificate({ kind: 'ec', days: 10 });
    const signal = new AbortController().signal;
    const quic = { ...(await attempt(scope, quicDriver, port)), signal, security: new SecurityParameters({ ca: cert.cert }), properties: new TransportProperties({ multistreaming: 'require' }) };
    expectQuota(await quicDriver.connect(quic).catch((e: unknown) => e), 'connections');
    console.log(`quic over the limit: ${getEventListeners(signal, 'abort').length} abort listeners left on the attempt's signal`);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });
});

describe('peers of a QUIC listener opened directly count too', () => {
  it('quic: each connection takes a unit of limit connections; one over the limit is closed and never handed over', async () => {
    const cert = testCertificate({ kind: 'ec', days: 10 });
    const { id, scope } = await tenant('limit connections 1');
    const bind = await listenAttempt(scope, quicDriver);
    const listener = await quicDriver.listen!({ ...bind, security: new SecurityParameters({ certificate: cert.cert, key: cert.key }), properties: new TransportProperties({ multistreaming: 'require' }) });
    const channels: TransportChannel[] = [];
    listener.start({ connection: (ch) => channels.push(ch), error: () => {} });
    const peer = createScope({ tenant: 'sq-quic-peer', policy: { decide: () => ({ allow: true, rule: 'peer' }) } });
    const dial = (): Promise<Connection> => new Preconnection({
      scope: peer, remote: `quic://127.0.0.1:${listener.local.port}`, drivers: [quicDriver], security: new SecurityParameters({ ca: cert.cert }),
      properties: new TransportProperties({ multistreaming: 'require' }), framers: [lengthPrefixFramer()],
    }).initiate();
    const first = await dial();
    await first.send('hello');
    await until(() => channels.length === 1);
    expect(host.usage(id).connections).toBe(1);
    const second = await dial().catch((e: unknown) => e);
    if (!(second instanceof Error)) {
      // The handshake may finish before the listener closes it: it is closed, never handed over.
      await (second as Connection).send('hello').catch(() => {});
      await until(() => (second as Connection).state === 'closed');
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(channels).toHaveLength(1);
    expect(host.usage(id).connections).toBe(1);
    for (const ch of channels) ch.abort();
    await first.close().catch(() => {});
    await until(() => host.usage(id).connections === 0);
    expect(host.usage(id).connections).toBe(0);
    await listener.close();
  });
});
