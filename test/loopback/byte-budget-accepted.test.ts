/**
 * Byte budgets count what a tenant's listener puts on the wire, at the
 * socket, as they do for connections it initiates: under `limit sent 1KiB
 * per 60s`, a reply over the budget is refused with QuotaExceededError and
 * never leaves, on every stack that listens (tcp, tls, udp, ws, wss, quic,
 * webtransport-h2). What the stack writes for the listener counts too: the
 * WebSocket 101 and 426 responses and frame headers, the WebTransport
 * response head, a TLS listener's handshakes and records, a QUIC listener's
 * packets. Each peer is a real client counting what it received from
 * the tenant. The attacker's ways around it — a second stream of the
 * accepted connection, a stream the peer opens, a listener opened straight
 * through `scope.network.listen` (no Connection to count anything) — all end
 * at the budget.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { type ChannelSendMeta, type Driver, type DriverListener, NEVER_ABORTED, type TransportChannel } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import { QuotaExceededError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { Listener } from '../../src/listener.js';
import { createScope } from '../../src/policy/index.js';
import type { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { responseHeadSize } from '../../transports/kit/request-path.js';
import { testCertificate } from '../helpers/certs.js';
import { quotaTenants } from '../helpers/tenants.js';

const BUDGET = 1024;
const cert = testCertificate({ kind: 'ec', days: 10 });
const serverSecurity = new SecurityParameters({ certificate: cert.cert, key: cert.key });
const tenants = quotaTenants('bba', 'allow *://@loopback:*\nallow bind,accept:*://@loopback:*');
const { host, cleanups, nextId } = tenants;

/** A new tenant that may listen on and accept from loopback, with a 1 KiB sent budget. */
async function tenant(): Promise<Awaited<ReturnType<Host['tenant']>>> {
  return (await tenants.tenant('limit sent 1KiB per 60s')).scope;
}

/** The client side: an allow-all scope of its own (no budget). */
const peerScope = createScope({ tenant: 'bba-peer', policy: { decide: () => ({ allow: true, rule: 'peer' }) } });

async function listen(scope: Awaited<ReturnType<typeof tenant>>, drivers: Driver[], local: string | object, init: { properties?: TransportProperties; framed?: boolean; plain?: boolean } = {}): Promise<Listener> {
  const listener = await new Preconnection({
    scope, local: local as never, drivers, security: init.plain === true ? SecurityParameters.disabled() : serverSecurity,
    properties: init.properties ?? TransportProperties.reliableMessage(),
    framers: init.framed === false ? [] : [lengthPrefixFramer()],
  }).listen();
  cleanups.push(() => listener.stop());
  return listener;
}

/** The next connection the listener accepts. */
function accepted(listener: Listener): Promise<Connection> {
  return new Promise((resolve) => listener.once('connectionReceived', resolve));
}

/** A client socket that counts every byte it receives. */
function counting(socket: Socket): { socket: Socket; received: () => Buffer } {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  return { socket, received: () => Buffer.concat(chunks) };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 20));
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

const expectQuota = (err: unknown): void => {
  expect(err).toBeInstanceOf(QuotaExceededError);
  expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'bytes-sent' });
};

const bytes = (n: number, fill = 0x62): Uint8Array => new Uint8Array(n).fill(fill);

describe("byte budgets count a listener's replies at the socket", () => {
  it('tls: the handshake it answers and each record count too; a reply over what is left is refused and never leaves', async () => {
    const id = nextId();
    const rules = 'allow *://@loopback:*\nallow bind,accept:*://@loopback:*';
    host.setPolicy(id, `${rules}\nlimit sent 64KiB per 60s`);
    const listener = await listen(await host.tenant(id), [tlsDriver], { ipAddress: '127.0.0.1', port: 0 }, { framed: false, properties: new TransportProperties() });
    const next = accepted(listener);
    const client = counting(tlsConnect({ host: '127.0.0.1', port: listener.port, ca: cert.cert, servername: 'localhost' }));
    client.socket.write('hello');
    const conn = await next;
    await settle();
    // The handshake (and tickets) it answered are spent; exactly BUDGET is left after them.
    const handshake = host.usage(id).sent;
    expect(handshake).toBeGreaterThan(0);
    host.setPolicy(id, `${rules}\nlimit sent ${handshake + BUDGET}B per 60s`);
    await conn.send(bytes(1000));
    expectQuota(await conn.send(bytes(100)).catch((e: unknown) => e)); // 1000 and its record's header and tag left less
    expect(conn.state).toBe('established');
    await until('the reply', () => client.received().byteLength >= 1000);
    await settle();
    console.log(`tls listener: handshake ${handshake} bytes, then 1000 of cleartext charged as ${host.usage(id).sent - handshake}; the peer received ${client.received().byteLength}`);
    expect(client.received().byteLength).toBe(1000);
    expect(host.usage(id).sent - handshake).toBeGreaterThan(1000);
    expect(host.usage(id).sent - handshake).toBeLessThanOrEqual(BUDGET);
    await conn.close();
  });

  it.each([
    ['tcp', tcpDriver, false],
  ] as const)('%s: a reply over the budget is refused and never leaves; what is left still goes', async (name, driver, secure) => {
    const scope = await tenant();
    const listener = await listen(scope, [driver], { ipAddress: '127.0.0.1', port: 0 }, { framed: false, plain: !secure, properties: new TransportProperties() });
    const next = accepted(listener);
    const client = counting(secure ? tlsConnect({ host: '127.0.0.1', port: listener.port, ca: cert.cert, servername: 'localhost' }) : tcpConnect(listener.port, '127.0.0.1'));
    client.socket.write('hello');
    const conn = await next;
    await conn.send(bytes(1000));
    expectQuota(await conn.send(bytes(100)).catch((e: unknown) => e));
    expect(conn.state).toBe('established');
    await conn.send(bytes(24));
    await until('the replies', () => client.received().byteLength >= BUDGET);
    await settle();
    console.log(`${name} listener: the peer received ${client.received().byteLength} bytes (budget ${BUDGET})`);
    expect(client.received().byteLength).toBe(BUDGET);
    await conn.close();
  });

  it('udp: a listener\'s replies count; one over the budget is never sent', async () => {
    const scope = await tenant();
    const listener = await listen(scope, [udpDriver], { ipAddress: '127.0.0.1', port: 0 }, { framed: false, plain: true, properties: TransportProperties.unreliableDatagram() });
    const next = accepted(listener);
    const peer: UdpSocket = createSocket('udp4');
    let received = 0;
    peer.on('message', (m) => (received += m.byteLength));
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
    peer.send('hi', listener.port, '127.0.0.1');
    const conn = await next;
    await conn.send(bytes(700), { safelyReplayable: true } as never);
    expectQuota(await conn.send(bytes(700), { safelyReplayable: true } as never).catch((e: unknown) => e));
    await conn.send(bytes(324), { safelyReplayable: true } as never);
    await until('the replies', () => received >= BUDGET);
    await settle();
    console.log(`udp listener: the peer received ${received} bytes (budget ${BUDGET})`);
    expect(received).toBe(BUDGET);
    await conn.close();
  });

  it.each([
    ['ws', wsDriver, false],
  ] as const)('%s: the 426 to a plain request, the 101 and each frame header count; the budget is spent to the byte', async (name, driver, secure: boolean) => {
    const scope = await tenant();
    const listener = await listen(scope, [driver], `${name}://127.0.0.1:0`, { plain: !secure });
    const open = (): ReturnType<typeof counting> => counting(secure ? tlsConnect({ host: '127.0.0.1', port: listener.port, ca: cert.cert, servername: 'localhost' }) : tcpConnect(listener.port, '127.0.0.1'));
    // A plain HTTP request: the listener answers 426, on the tenant's budget.
    const plain = open();
    plain.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await until('the 426', () => plain.received().includes('\r\n\r\n'));
    const refusal = plain.received().byteLength;
    expect(plain.received().toString()).toMatch(/^HTTP\/1\.1 426/);
    // The upgrade: the 101 counts, then each frame with its 2-byte header (4 with a 16-bit length; no mask).
    const next = accepted(listener);
    const client = open();
    client.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const conn = await next;
    await until('the 101', () => client.received().includes('\r\n\r\n'));
    const upgrade = client.received().byteLength;
    expect(client.received().toString()).toMatch(/^HTTP\/1\.1 101/);
    const fill = BUDGET - refusal - upgrade - 4;
    await conn.send(bytes(fill));
    expectQuota(await conn.send(bytes(1)).catch((e: unknown) => e));
    await until('the frame', () => client.received().byteLength >= upgrade + 4 + fill);
    await settle();
    const total = refusal + client.received().byteLength;
    console.log(`${name} listener: 426 ${refusal} bytes, 101 ${upgrade} bytes, then one ${fill}-byte message; the peers received ${total} bytes (budget ${BUDGET})`);
    expect(total).toBe(BUDGET);
    expect(conn.state).toBe('established');
    conn.abort();
  });

  it('wss: the handshakes it answers, the 426, the 101 and each frame count; a reply over what is left is refused and never leaves', async () => {
    const id = nextId();
    const rules = 'allow *://@loopback:*\nallow bind,accept:*://@loopback:*';
    host.setPolicy(id, `${rules}\nlimit sent 64KiB per 60s`);
    const listener = await listen(await host.tenant(id), [wssDriver], 'wss://127.0.0.1:0');
    const open = (): ReturnType<typeof counting> => counting(tlsConnect({ host: '127.0.0.1', port: listener.port, ca: cert.cert, servername: 'localhost' }));
    const plain = open();
    plain.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await until('the 426', () => plain.received().includes('\r\n\r\n'));
    expect(plain.received().toString()).toMatch(/^HTTP\/1\.1 426/);
    const next = accepted(listener);
    const client = open();
    client.socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const conn = await next;
    await until('the 101', () => client.received().includes('\r\n\r\n'));
    await settle();
    // Two handshakes (and tickets) in TLS records, the 426 and the 101; exactly BUDGET is left after them.
    const before = host.usage(id).sent;
    const cleartext = plain.received().byteLength + client.received().byteLength;
    expect(before).toBeGreaterThan(cleartext);
    host.setPolicy(id, `${rules}\nlimit sent ${before + BUDGET}B per 60s`);
    const upgrade = client.received().byteLength;
    await conn.send(bytes(900));
    expectQuota(await conn.send(bytes(100)).catch((e: unknown) => e)); // 904, its record's header and tag left less
    expect(conn.state).toBe('established');
    await until('the frame', () => client.received().byteLength >= upgrade + 904);
    await settle();
    console.log(`wss listener: handshakes, 426 and 101 ${before} bytes (${cleartext} of them cleartext), then a 900-byte message charged as ${host.usage(id).sent - before}`);
    expect(client.received().byteLength).toBe(upgrade + 904);
    expect(host.usage(id).sent - before).toBeGreaterThan(904);
    expect(host.usage(id).sent - before).toBeLessThanOrEqual(BUDGET);
    conn.abort();
  });

  it('quic: replies on the first stream, on a second the tenant opens and on one the peer opens all draw on the budget', async () => {
    // Every datagram the listener sends counts (test/loopback/tls-overhead.test.ts): room for the handshake first.
    const id = nextId();
    const rules = 'allow *://@loopback:*\nallow bind,accept:*://@loopback:*';
    host.setPolicy(id, `${rules}\nlimit sent 64KiB per 60s`);
    const properties = new TransportProperties({ multistreaming: 'require' });
    const listener = await listen(await host.tenant(id), [quicDriver], 'quic://127.0.0.1:0', { properties });
    const next = accepted(listener);
    const client = await new Preconnection({
      scope: peerScope, remote: `quic://127.0.0.1:${listener.port}`, drivers: [quicDriver], properties, framers: [lengthPrefixFramer()],
      security: new SecurityParameters({ ca: cert.cert }),
    }).initiate();
    cleanups.push(() => client.abort());
    let received = 0;
    const count = (c: Connection): void => {
      c.on('received', (m: { data: Uint8Array }) => (received += m.data.byteLength));
      c.on('connectionReceived', (s: Connection) => count(s));
    };
    count(client);
    await client.send('hi');
    const conn = await next;
    await settle();
    const handshake = host.usage(id).sent;
    const limit = handshake + 2 * BUDGET;
    host.setPolicy(id, `${rules}\nlimit sent ${limit}B per 60s`);
    await conn.send(bytes(300));
    // A second stream the tenant opens.
    const mine = await conn.clone();
    await mine.send(bytes(300));
    // A stream the peer opens, answered by the tenant.
    const theirs = new Promise<Connection>((resolve) => conn.once('connectionReceived', resolve));
    const peerStream = await client.clone();
    count(peerStream);
    await peerStream.send('again');
    const answered = await theirs;
    await answered.send(bytes(300));
    await settle();
    // 3 x (4 + 300) and their packets spent: a message one byte over what is left is refused on every stream.
    const left = limit - host.usage(id).sent;
    expect(left).toBeLessThan(2 * BUDGET - 912);
    for (const c of [conn, mine, answered]) expectQuota(await c.send(bytes(left - 3)).catch((e: unknown) => e));
    await answered.send(bytes(100));
    await until(`the replies (${received} so far)`, () => received >= 1000);
    await settle();
    console.log(`quic listener: handshake ${handshake} bytes; three 300-byte replies cost ${limit - left - handshake}; the peer received ${received} bytes of messages over three streams`);
    expect(received).toBe(1000);
    for (const c of [answered, mine, conn]) await c.close().catch(() => {});
    for (const c of [peerStream, client]) await c.close().catch(() => {});
  });

  it('webtransport-h2: the handshake, the response head and what the session sends count; a reply over what is left is refused and never leaves', async () => {
    // Its TLS counts on the wire (test/loopback/h2-overhead.test.ts): room for the handshake and the 200 first.
    const id = nextId();
    const rules = 'allow *://@loopback:*\nallow bind,accept:*://@loopback:*';
    host.setPolicy(id, `${rules}\nlimit sent 64KiB per 60s`);
    const properties = new TransportProperties({ multistreaming: 'require' });
    const listener = await listen(await host.tenant(id), [webtransportH2Driver], 'webtransport://127.0.0.1:0', { properties, framed: false });
    const next = accepted(listener);
    const client = await new Preconnection({
      scope: peerScope, remote: `webtransport://127.0.0.1:${listener.port}`, drivers: [webtransportH2Driver], properties,
      security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
    }).initiate();
    cleanups.push(() => client.abort());
    let received = 0;
    client.on('received', (m: { data: Uint8Array }) => (received += m.data.byteLength));
    await client.send('hi');
    const conn = await next;
    await settle();
    const before = host.usage(id).sent;
    expect(before).toBeGreaterThan(responseHeadSize(200));
    host.setPolicy(id, `${rules}\nlimit sent ${before + BUDGET}B per 60s`);
    await conn.send(bytes(900));
    await until('the reply', () => received >= 900);
    await settle();
    // 900 bytes, their HTTP/2 frame, capsule and TLS record: less than 124 bytes are left.
    expectQuota(await conn.send(bytes(124)).catch((e: unknown) => e));
    await settle();
    console.log(`webtransport-h2 listener: handshake and 200 ${before} bytes, then a 900-byte message charged as ${host.usage(id).sent - before}; the peer received ${received} bytes`);
    expect(received).toBe(900);
    expect(host.usage(id).sent - before).toBeGreaterThan(900);
    expect(host.usage(id).sent - before).toBeLessThanOrEqual(BUDGET);
    await conn.close().catch(() => {});
    await client.close().catch(() => {});
  });
});

describe('byte budgets of a listener: a guest reaching around them', () => {
  /** A listener opened straight through the scope's network: its channels reach no Connection. */
  async function rawListener(scope: Awaited<ReturnType<typeof tenant>>, driver: Driver): Promise<{ listener: DriverListener; channels: TransportChannel[] }> {
    const target = await scope.guard.authorize({ use: 'bind', protocol: driver.protocol, address: '127.0.0.1', port: 0 });
    const listener = await scope.network.listen(driver, {
      signal: NEVER_ABORTED, target, local: new LocalEndpoint({ ipAddress: '127.0.0.1', port: 0 }), security: serverSecurity,
      properties: new TransportProperties(), options: {}, meter: { sent: () => {} },
    } as never);
    cleanups.push(() => listener.close());
    const channels: TransportChannel[] = [];
    listener.start({ connection: (ch) => {
      channels.push(ch);
      ch.start({ data: () => {}, end: () => {}, drain: () => {}, closed: () => {} });
    }, error: () => {} });
    return { listener, channels };
  }

  const send = (ch: TransportChannel, n: number): Promise<Error | undefined> => new Promise((r) => ch.send(bytes(n), {} as ChannelSendMeta, r));

  it.each([
    ['tcp', tcpDriver],
    ['udp', udpDriver],
  ] as const)('%s: channels of a listener opened through scope.network.listen are metered by the scope, whatever meter the attempt names', async (name, driver) => {
    const scope = await tenant();
    const { listener, channels } = await rawListener(scope, driver);
    let received = 0;
    if (name === 'tcp') {
      const client = counting(tcpConnect(listener.local.port, '127.0.0.1'));
      client.socket.write('x');
      await until('the accepted channel', () => channels.length === 1);
      for (let i = 0; i < 4; i++) await send(channels[0]!, 400).then((e) => e && expectQuota(e));
      await settle();
      received = client.received().byteLength;
    } else {
      const peer = createSocket('udp4');
      peer.on('message', (m) => (received += m.byteLength));
      await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
      cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
      peer.send('x', listener.local.port, '127.0.0.1');
      await until('the accepted channel', () => channels.length === 1);
      for (let i = 0; i < 4; i++) await send(channels[0]!, 400).then((e) => e && expectQuota(e));
      await settle();
    }
    console.log(`${name} via network.listen: the peer received ${received} bytes (budget ${BUDGET})`);
    expect(channels[0]!.metered).toBe(true);
    expect(received).toBe(800);
    for (const ch of channels) ch.abort();
  });
});
