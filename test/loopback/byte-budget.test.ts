/**
 * Byte budgets count what the tenant puts on the wire, on every stack: under
 * `limit sent 1KiB per 60s`, a send the budget cannot take is refused with
 * QuotaExceededError and never leaves, HTTP request lines and header fields,
 * WebSocket upgrade requests and frame headers and the WebTransport CONNECT
 * included. Each stack talks to a real loopback listener that counts what it
 * received from the client: plaintext TCP bytes at a relay (tcp, http,
 * ws), decrypted bytes at a TLS-terminating relay (tls, https, https2, wss),
 * datagram bytes (udp) and payload at our own listener (quic,
 * webtransport-h2). Over TLS the handshake and each record's header and tag
 * count too, as do QUIC's packets (test/loopback/tls-overhead.test.ts): a
 * TLS or QUIC stack's tenant is left exactly the budget once connected. The attacker's ways around it — ten requests of 64 KB of
 * fields, a second connection, a channel opened straight through
 * `scope.network.connect`, an attempt carrying its own meter (own field,
 * getter, polluted prototype), datagrams sent from a rendezvous peer socket
 * opened through `scope.network.openPeerSocket` — all end at the budget. A
 * UDP connection to a name that can move to its next address is charged
 * once, not twice.
 */
import { createSocket } from 'node:dgram';
import http from 'node:http';
import http2 from 'node:http2';
import { createServer, Socket, type Server } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { type ChannelSendMeta, type Driver, NEVER_ABORTED, type TransportChannel } from '../../src/driver.js';
import { QuotaExceededError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { createScope } from '../../src/policy/index.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver, httpsDriver, https2Driver } from '../../transports/http/index.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { headSize } from '../../transports/kit/request-path.js';
import { testCertificate } from '../helpers/certs.js';
import { fakeResolver } from '../helpers/resolver.js';
import { quotaTenants } from '../helpers/tenants.js';
import { LocalEndpoint } from '../../src/endpoints.js';

const BUDGET = 1024;
const cert = testCertificate({ kind: 'ec', days: 10 });
const trust = (): SecurityParameters => new SecurityParameters({ ca: cert.cert });
const RULES = 'allow *://@loopback:*\nallow bind:*://@loopback:*';
const tenants = quotaTenants('bb', RULES);
const { host, cleanups } = tenants;

const limits = (sent: string, extra = ''): string => `limit sent ${sent} per 60s${extra}`;
const policyText = (sent: string, extra = ''): string => `${RULES}\n${limits(sent, extra)}`;

/** A new tenant allowed every loopback port, with a 1 KiB sent budget. */
async function tenant(extra = '', sent = '1KiB'): Promise<Awaited<ReturnType<Host['tenant']>>> {
  return (await tenants.tenant(limits(sent, extra))).scope;
}

/**
 * A TLS or QUIC stack's tenant: room for any handshake first (a ClientHello is ~350 bytes on Node 20 and ~1.6 KB with
 * Node 24's post-quantum key share), then, once connected, a budget of exactly BUDGET more than what the
 * connection put on the wire so far (the budget follows a reload; its count stays).
 */
async function secureTenant(): Promise<{ scope: Awaited<ReturnType<Host['tenant']>>; leaveBudget: () => Promise<number> }> {
  const scope = await tenant('', '64KiB');
  return {
    scope,
    leaveBudget: async () => {
      await settle();
      const spent = host.usage(scope.tenant).sent;
      host.setPolicy(scope.tenant, policyText(`${spent + BUDGET}B`));
      return spent;
    },
  };
}

/** What a counting relay or listener received from clients, in bytes. */
interface Counted {
  readonly port: number;
  received: number;
}

function track(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return sockets;
}

async function listening(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

/** Pipe `client` to a new connection to `upstream`, counting the client's bytes into `c`. */
function relay(client: Socket, upstream: number, c: Counted): void {
  const up = new Socket();
  up.on('error', () => client.destroy());
  client.on('error', () => up.destroy());
  up.connect(upstream, '127.0.0.1');
  client.on('data', (d: Buffer) => {
    c.received += d.byteLength;
    up.write(d);
  });
  up.on('data', (d: Buffer) => client.write(d));
  client.on('close', () => up.destroy());
  up.on('close', () => client.destroy());
}

/** A plain TCP relay in front of `upstream` (or a sink when none) counting what clients send. */
async function tcpCounter(upstream?: number): Promise<Counted> {
  const c = { port: 0, received: 0 };
  const server = createServer((s) => {
    if (upstream === undefined) s.on('data', (d: Buffer) => (c.received += d.byteLength));
    else relay(s, upstream, c);
  });
  track(server);
  return Object.assign(c, { port: await listening(server) });
}

/** A TLS-terminating relay in front of plaintext `upstream` (or a sink) counting decrypted client bytes. */
async function tlsCounter(upstream?: number): Promise<Counted> {
  const c = { port: 0, received: 0 };
  const server = tls.createServer({ cert: cert.cert, key: cert.key, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
    if (upstream === undefined) s.on('data', (d: Buffer) => (c.received += d.byteLength));
    else relay(s, upstream, c);
  });
  track(server);
  return Object.assign(c, { port: await listening(server) });
}

async function httpBackend(): Promise<number> {
  const server = http.createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  track(server);
  return listening(server);
}

async function h2cBackend(): Promise<number> {
  const server = http2.createServer({ maxSendHeaderBlockLength: 256 * 1024 }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  track(server as unknown as Server);
  return listening(server as unknown as Server);
}

async function wsBackend(): Promise<number> {
  const { WebSocketServer } = await import('ws');
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', () => {}));
  track(server);
  cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
  return listening(server);
}

/** Our own listener of `drivers` counting the bytes of every message it receives. */
async function ownCounter(drivers: Driver[], local: string, properties: TransportProperties): Promise<Counted> {
  const c = { port: 0, received: 0 };
  const listener = await new Preconnection({
    scope: createScope({ tenant: 'bb-server', policy: { decide: () => ({ allow: true, rule: 'server' }) } }),
    local,
    properties,
    security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    framers: [lengthPrefixFramer()],
    drivers,
  }).listen();
  cleanups.push(() => listener.stop());
  const count = async (conn: Connection): Promise<void> => {
    conn.on('connectionReceived', (stream: Connection) => void count(stream)); // a peer's further stream
    try {
      for await (const m of conn) c.received += m.data.byteLength;
      await conn.close();
    } catch {
      /* the client went away */
    }
  };
  listener.on('connectionReceived', (conn: Connection) => void count(conn));
  return Object.assign(c, { port: listener.port });
}

async function udpCounter(): Promise<Counted> {
  const c = { port: 0, received: 0 };
  const socket = createSocket('udp4');
  socket.on('message', (m) => (c.received += m.byteLength));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return Object.assign(c, { port: socket.address().port });
}

/** Let what was written reach the counter: a round trip through the event loop a few times. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 20));
}

const expectQuota = (err: unknown): void => {
  expect(err).toBeInstanceOf(QuotaExceededError);
  expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'bytes-sent' });
};

const bytes = (n: number, fill = 0x61): Uint8Array => new Uint8Array(n).fill(fill);

/** Ten requests, each with 64 KB of header fields and path: none may leave. */
const bigFields = (i: number): Record<string, unknown> => ({
  method: 'GET',
  path: `/${'p'.repeat(8 * 1024)}?${i}`,
  headers: Object.fromEntries(Array.from({ length: 7 }, (_, k) => [`x-pad-${k}`, 'v'.repeat(8 * 1024)])),
});

describe('byte budgets count at the socket on every stack', () => {
  it('tls: the handshake and each record count too; a send over what is left is refused and never leaves', async () => {
    const counter = await tlsCounter();
    const { scope, leaveBudget } = await secureTenant();
    const conn = await new Preconnection({ scope, remote: `tls://127.0.0.1:${counter.port}`, drivers: [tlsDriver], security: trust() }).initiate();
    const handshake = await leaveBudget();
    expect(handshake).toBeGreaterThan(0);
    await conn.send(bytes(1000));
    expectQuota(await conn.send(bytes(100)).catch((e: unknown) => e)); // 1000 and its record's header and tag left less
    expect(conn.state).toBe('established');
    await settle();
    const sent = host.usage(scope.tenant).sent;
    console.log(`tls: handshake ${handshake} bytes, then 1000 of cleartext charged as ${sent - handshake}; the listener received ${counter.received} (budget ${BUDGET} after the handshake)`);
    expect(counter.received).toBe(1000);
    expect(sent - handshake).toBeGreaterThan(1000);
    expect(sent - handshake).toBeLessThanOrEqual(BUDGET);
    await conn.close();
  });

  it.each([
    ['tcp', tcpDriver, 'tcp', false],
  ] as const)('%s: a send over the budget is refused and never leaves; what is left still goes', async (_name, driver, scheme, secure) => {
    const counter = secure ? await tlsCounter() : await tcpCounter();
    const conn = await new Preconnection({
      scope: await tenant(), remote: secure ? `tls://127.0.0.1:${counter.port}` : { ipAddress: "127.0.0.1", port: counter.port }, drivers: [driver], security: secure ? trust() : SecurityParameters.disabled(),
    }).initiate();
    await conn.send(bytes(1000));
    expectQuota(await conn.send(bytes(100)).catch((e: unknown) => e));
    expect(conn.state).toBe('established');
    await conn.send(bytes(24));
    await settle();
    console.log(`${scheme}: the listener received ${counter.received} bytes (budget ${BUDGET})`);
    expect(counter.received).toBe(BUDGET);
    await conn.close();
  });

  it.each([
    ['http', httpDriver, false],
    ['https', httpsDriver, true],
    ['https2', https2Driver, true],
  ] as const)('%s: ten requests with 64 KB of fields each are refused; the listener sees at most the budget', async (name, driver, secure) => {
    const backend = name === 'https2' ? await h2cBackend() : await httpBackend();
    const counter = secure ? await tlsCounter(backend) : await tcpCounter(backend);
    const tenancy = secure ? await secureTenant() : { scope: await tenant(), leaveBudget: async () => 0 };
    const conn = await new Preconnection({
      scope: tenancy.scope, remote: `${secure ? 'https' : 'http'}://127.0.0.1:${counter.port}/`, drivers: [driver], security: secure ? trust() : SecurityParameters.disabled(),
      properties: TransportProperties.reliableMessage(),
    }).initiate();
    await tenancy.leaveBudget();
    const replies: unknown[] = [];
    conn.on('received', (m: { data: Uint8Array }) => replies.push(m));
    await conn.send('', { fields: { method: 'GET', path: '/small' } } as never);
    await settle();
    const small = counter.received; // counted as undici writes it: the budget is charged this much
    for (let i = 0; i < 10; i++) expectQuota(await conn.send('', { fields: bigFields(i) } as never).catch((e: unknown) => e));
    // Fields count as much as a body: a request whose head alone would cross the budget goes nowhere either.
    expectQuota(await conn.send(bytes(1000), { fields: { method: 'POST', path: '/body' } } as never).catch((e: unknown) => e));
    await settle();
    // HTTP/2 sends its connection preface and SETTINGS (not the tenant's: about 60 bytes) besides the requests.
    const slack = name === 'https2' ? 128 : 0;
    console.log(`${name}: the listener received ${counter.received} bytes (budget ${BUDGET}${slack ? `, + HTTP/2 preface ${slack}` : ''})`);
    expect(counter.received).toBe(small);
    expect(counter.received).toBeLessThanOrEqual(BUDGET + slack);
    if (name !== 'https2') expect(small).toBe(headSize('GET', '/small', `127.0.0.1:${counter.port}`, {}));
    expect(conn.state).toBe('established');
    await conn.close();
  });

  it.each([
    ['ws', wsDriver, false],
    ['wss', wssDriver, true],
  ] as const)('%s: the upgrade request and each frame header count; an over-budget message is refused', async (name, driver, secure) => {
    const backend = await wsBackend();
    const counter = secure ? await tlsCounter(backend) : await tcpCounter(backend);
    // Over TLS the upgrade request and the handshake are in what was spent before the budget is left.
    const tenancy = secure ? await secureTenant() : { scope: await tenant(), leaveBudget: async () => 0 };
    const conn = await new Preconnection({
      scope: tenancy.scope, remote: `${name}://127.0.0.1:${counter.port}/${'q'.repeat(200)}`, drivers: [driver], security: secure ? trust() : SecurityParameters.disabled(),
      properties: TransportProperties.reliableMessage(),
    }).initiate();
    await tenancy.leaveBudget();
    const handshake = counter.received;
    await conn.send(bytes(500));
    expectQuota(await conn.send(bytes(600)).catch((e: unknown) => e));
    await settle();
    console.log(`${name}: upgrade request ${handshake} bytes; the listener received ${counter.received} bytes (budget ${BUDGET})`);
    expect(counter.received).toBe(handshake + 500 + 6 + 2); // payload, mask, header with 16-bit length
    expect(counter.received).toBeLessThanOrEqual(BUDGET);
    expect(conn.state).toBe('established');
    await conn.close();
  });

  it('udp: a datagram over the budget is never sent', async () => {
    const counter = await udpCounter();
    const conn = await new Preconnection({
      scope: await tenant(), remote: { ipAddress: '127.0.0.1', port: counter.port }, drivers: [udpDriver], security: SecurityParameters.disabled(), properties: TransportProperties.unreliableDatagram(),
    }).initiate();
    await conn.send(bytes(700), { safelyReplayable: true } as never);
    expectQuota(await conn.send(bytes(700), { safelyReplayable: true } as never).catch((e: unknown) => e));
    await conn.send(bytes(324), { safelyReplayable: true } as never);
    await settle();
    console.log(`udp: the listener received ${counter.received} bytes (budget ${BUDGET})`);
    expect(counter.received).toBe(BUDGET);
    await conn.close();
  });

  it.each([
    ['quic', quicDriver, 'quic'],
    ['webtransport-h2', webtransportH2Driver, 'webtransport'],
  ] as const)('%s: stream data over the budget is refused; the listener sees at most the budget', async (name, driver, scheme) => {
    const properties = new TransportProperties({ multistreaming: 'require' });
    const counter = await ownCounter([driver], `${scheme}://127.0.0.1:0`, properties);
    const security = name === 'quic' ? trust() : new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
    // QUIC's handshake and WebTransport's TLS one are spent before the budget is left.
    const tenancy = await secureTenant();
    const conn = await new Preconnection({
      scope: tenancy.scope, remote: `${scheme}://127.0.0.1:${counter.port}`, drivers: [driver], security, properties, framers: [lengthPrefixFramer()],
    }).initiate();
    await tenancy.leaveBudget();
    await conn.send(bytes(600));
    expectQuota(await conn.send(bytes(600)).catch((e: unknown) => e));
    // A second stream of the same connection draws on the same budget.
    const stream = await conn.clone();
    await stream.send(bytes(100));
    expectQuota(await stream.send(bytes(600)).catch((e: unknown) => e));
    await settle();
    console.log(`${name}: the listener received ${counter.received} bytes of messages (budget ${BUDGET})`);
    expect(counter.received).toBe(700);
    await stream.close();
    await conn.close();
  });
});

describe('byte budgets: a guest reaching around them', () => {
  it('a second connection of the tenant shares the budget', async () => {
    const counter = await tcpCounter();
    const scope = await tenant();
    const pre = (): Preconnection => new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: counter.port }, drivers: [tcpDriver], security: SecurityParameters.disabled() });
    const a = await pre().initiate();
    const b = await pre().initiate();
    await a.send(bytes(800));
    expectQuota(await b.send(bytes(800)).catch((e: unknown) => e));
    await settle();
    expect(counter.received).toBe(800);
    await a.close();
    await b.close();
  });

  it('a channel opened straight through scope.network.connect is metered by the scope, whatever meter the attempt names', async () => {
    const counter = await tcpCounter();
    const scope = await tenant();
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: counter.port });
    const base = { signal: NEVER_ABORTED, target, remote: undefined, security: new SecurityParameters(), properties: new TransportProperties(), options: {} };
    const free = { sent: () => {} };
    const polluted = Object.prototype as { meter?: unknown };
    polluted.meter = free;
    const channels: TransportChannel[] = [];
    try {
      channels.push(await scope.network.connect(tcpDriver, { ...base, meter: free } as never));
      channels.push(await scope.network.connect(tcpDriver, Object.defineProperty({ ...base }, 'meter', { get: () => free, enumerable: true }) as never));
      channels.push(await scope.network.connect(tcpDriver, base as never));
    } catch (err) {
      // A getter on the attempt is refused outright: that too is a way of not reaching the listener.
      expect(err).toBeInstanceOf(TypeError);
    } finally {
      delete polluted.meter;
    }
    expect(channels.length).toBeGreaterThanOrEqual(2);
    const send = (ch: TransportChannel, n: number): Promise<Error | undefined> =>
      new Promise((r) => ch.send(bytes(n), {} as ChannelSendMeta, r));
    let refused = 0;
    for (const ch of channels) {
      ch.start({ data: () => {}, end: () => {}, drain: () => {}, closed: () => {} });
      for (let i = 0; i < 4; i++) if ((await send(ch, 400)) instanceof QuotaExceededError) refused++;
    }
    await settle();
    console.log(`network.connect: ${channels.length} channels, ${refused} sends refused, listener received ${counter.received} bytes`);
    expect(channels.every((c) => c.metered === true)).toBe(true);
    expect(counter.received).toBeLessThanOrEqual(BUDGET);
    expect(refused).toBe(channels.length * 4 - 2);
    for (const ch of channels) ch.abort();
  });

  it('a peer socket opened through scope.network.openPeerSocket: every datagram sent to a checked target, and its connected channel, draw on the budget', async () => {
    const counter = await udpCounter();
    const scope = await tenant();
    const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
    const to = await scope.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: counter.port });
    const socket = await scope.network.openPeerSocket!(udpDriver, {
      signal: NEVER_ABORTED, target: bind, local: new LocalEndpoint({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(),
      properties: new TransportProperties(), options: {}, meter: { sent: () => {} },
    } as never);
    socket.start({ datagram: () => {}, error: () => {} });
    const sendTo = (n: number): Promise<Error | undefined> => new Promise((r) => socket.sendTo(bytes(n), to, r));
    const outcomes = [await sendTo(400), await sendTo(400), await sendTo(400)];
    expect(outcomes.slice(0, 2)).toEqual([undefined, undefined]);
    expectQuota(outcomes[2]);
    const channel = await socket.connect(to, () => false);
    channel.start({ data: () => {}, end: () => {}, drain: () => {}, closed: () => {} });
    expect(channel.metered).toBe(true);
    expect(await new Promise((r) => channel.send(bytes(224), {} as ChannelSendMeta, r))).toBeUndefined();
    expectQuota(await new Promise((r) => channel.send(bytes(1), {} as ChannelSendMeta, r)));
    await settle();
    console.log(`peer socket: the sink received ${counter.received} bytes (budget ${BUDGET})`);
    expect(counter.received).toBe(BUDGET);
    channel.abort();
  });

  it('udp to a name with a next address to move to is charged once: the whole budget is usable, no more', async () => {
    // One counter port on ::1 and 127.0.0.1: the race picks ::1, 127.0.0.1 stays the address to move to.
    let counter = await udpCounter();
    for (let i = 0; i < 5; i++) {
      const v6 = createSocket('udp6');
      v6.on('message', (m) => (counter.received += m.byteLength));
      const bound = await new Promise<boolean>((r) => v6.once('error', () => r(false)).bind(counter.port, '::1', () => r(true)));
      if (bound) {
        cleanups.push(() => new Promise<void>((r) => v6.close(() => r())));
        break;
      }
      v6.close();
      counter = await udpCounter();
    }
    const name = `bb-failover-${process.pid}.test`;
    const own = new Host({ resolver: fakeResolver({ [name]: { v6: ['::1'], v4: ['127.0.0.1'] } }) });
    cleanups.push(() => own.close());
    own.setPolicy('bb-failover', `allow udp://${name}:*\nallow udp://@loopback:*\nlimit sent 1KiB per 60s`);
    const conn = await new Preconnection({
      scope: await own.tenant('bb-failover'), remote: { hostName: name, port: counter.port }, drivers: [udpDriver],
      security: SecurityParameters.disabled(), properties: TransportProperties.unreliableDatagram(),
    }).initiate();
    expect(conn.report.candidates.map((c) => `${c.address} ${c.fate}`)).toEqual(['::1 won', '127.0.0.1 skipped']); // a next address was kept
    await conn.send(bytes(1000), { safelyReplayable: true } as never);
    expectQuota(await conn.send(bytes(100), { safelyReplayable: true } as never).catch((e: unknown) => e));
    await conn.send(bytes(24), { safelyReplayable: true } as never);
    await settle();
    console.log(`udp with a fallback address: the listener received ${counter.received} bytes (budget ${BUDGET})`);
    expect(counter.received).toBe(BUDGET);
    await conn.close();
  });

  it("a driver called directly (a guest holding connection.driver) with its own meter, or none, charges the tenant that minted the target", async () => {
    const counter = await tcpCounter();
    const scope = await tenant();
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: counter.port }, drivers: [tcpDriver], security: SecurityParameters.disabled() }).initiate();
    const driver = conn.driver; // what the library hands the guest
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: counter.port });
    const base = { signal: NEVER_ABORTED, target, remote: undefined, security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {} };
    const channels = [await driver.connect({ ...base, meter: { sent: () => {} } } as never), await driver.connect(base as never)];
    let refused = 0;
    for (const ch of channels) {
      ch.start({ data: () => {}, end: () => {}, drain: () => {}, closed: () => {} });
      for (let i = 0; i < 2; i++) if ((await new Promise((r) => ch.send(bytes(400), {} as ChannelSendMeta, r))) instanceof QuotaExceededError) refused++;
    }
    await settle();
    console.log(`direct driver calls: ${refused} of 4 sends refused, listener received ${counter.received} bytes (budget ${BUDGET})`);
    expect(channels.every((c) => c.metered === true)).toBe(true);
    expect(refused).toBe(2);
    expect(counter.received).toBe(800);
    for (const ch of channels) ch.abort();
    await conn.close();
  });
});
