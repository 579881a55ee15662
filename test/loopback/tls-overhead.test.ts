/**
 * TLS counts on the wire: the handshake, record headers and tags are charged
 * against the tenant's byte budgets, measured against a real TLS server's TCP
 * socket (what it read is what the client put on the wire): a handshake alone
 * is charged (roughly a ClientHello and a Finished), a budget smaller than a
 * handshake refuses the connection with the budget's error code and the next
 * attempt sends no ClientHello at all, and after sends the tenant's count is
 * exactly what the server's TCP socket read. Received: every byte the TCP
 * socket read, once, at the socket (the Connection counts none of it again),
 * on the library's path as for a TLS socket a driver opened directly; a reply
 * of many records, read several at a time, is counted exactly. QUIC counts the datagrams its client
 * socket sends (Initial padding, headers, acknowledgements), measured at a UDP
 * relay in front of the library's own QUIC listener; a QUIC listener counts
 * every datagram its socket sends and reads for the listening tenant,
 * measured at a relay in front of it. A wss listener counts its handshakes,
 * records and everything its TCP socket reads for the listening tenant,
 * measured at the client's own TCP socket under its TLS one.
 */
import { createSocket } from 'node:dgram';
import { connect as netConnect, type Socket } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { NEVER_ABORTED, type ChannelReceiver } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { createScope, type TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { wssDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { echoEach } from '../helpers/echo.js';
import { rawWebSocket, wrote, type RawWebSocket } from '../helpers/raw-websocket.js';
import { quotaTenants } from '../helpers/tenants.js';

const cert = testCertificate({ kind: 'ec', days: 10 });
const trust = (): SecurityParameters => new SecurityParameters({ ca: cert.cert });
const { host, cleanups, tenant } = quotaTenants('tls-oh', 'allow tls://@loopback:*');

/** A TLS server; `wire()`: the bytes its TCP sockets read (the client's bytes on the wire), `wrote()`: what they wrote. */
async function tlsServer(reply?: Uint8Array): Promise<{ port: number; wire: () => number; wrote: () => number; connections: () => number; cleartext: () => number }> {
  const raws = new Set<Socket>();
  let cleartext = 0;
  const server = tls.createServer({ cert: cert.cert, key: cert.key }, (s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => (cleartext += d.byteLength));
    if (reply !== undefined) s.write(reply);
  });
  server.on('connection', (raw: Socket) => {
    raws.add(raw);
    raw.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of raws) s.destroy();
    server.close(() => r());
  }));
  const sum = (f: (s: Socket) => number) => (): number => [...raws].reduce((n, s) => n + f(s), 0);
  return { port: (server.address() as { port: number }).port, wire: sum((s) => s.bytesRead), wrote: sum((s) => s.bytesWritten), connections: () => raws.size, cleartext: () => cleartext };
}

/** Let what was written reach the server: a few turns of the event loop. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 20));
}

const connect = (scope: TenantScope, port: number): Promise<Connection> =>
  new Preconnection({ scope, remote: `tls://127.0.0.1:${port}`, drivers: [tlsDriver], security: trust() }).initiate();

describe('TLS overhead counts against the byte budgets', () => {
  it('a handshake alone is charged: exactly the bytes the server\'s TCP socket read, and after sends the count is still exactly the wire', async () => {
    const server = await tlsServer();
    const { id, scope } = await tenant('limit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const conn = await connect(scope, server.port);
    await settle();
    const handshake = host.usage(id).sent;
    console.log(`TLS handshake (${process.version}): ${handshake} bytes sent, ${host.usage(id).received} received (server's TCP socket read ${server.wire()}, wrote ${server.wrote()})`);
    expect(handshake).toBeGreaterThan(100); // at least a ClientHello
    expect(handshake).toBe(server.wire());
    // The server's flight (ServerHello … Finished, and tickets that came by now) is received on the wire.
    expect(host.usage(id).received).toBeGreaterThan(0);
    expect(host.usage(id).received).toBeLessThanOrEqual(server.wrote());

    await conn.send(new Uint8Array(1000).fill(0x61));
    await conn.send(new Uint8Array(3000).fill(0x62));
    await settle();
    expect(server.cleartext()).toBe(4000);
    console.log(`after 4000 bytes of cleartext: ${host.usage(id).sent} charged, the wire carried ${server.wire()}`);
    expect(host.usage(id).sent).toBe(server.wire());
    expect(host.usage(id).sent).toBeGreaterThan(handshake + 4000); // record headers and tags
    await conn.close();
  });

  it('a budget smaller than a handshake refuses the connection with the budget error code; the next attempt sends no ClientHello', async () => {
    const server = await tlsServer();
    const { id, scope } = await tenant('limit sent 100B per 60s');
    const err = await connect(scope, server.port).catch((e: unknown) => e);
    console.log(`handshake over a 100-byte budget: ${(err as Error).message}; ${host.usage(id).sent} bytes counted`);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await settle();
    const first = server.wire();
    expect(first).toBeGreaterThan(100);
    expect(host.usage(id).sent).toBe(first); // what went out was counted
    const again = await connect(scope, server.port).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await settle();
    expect(server.wire()).toBe(first); // no second ClientHello
    expect(host.usage(id).connections).toBe(0);
  });

  it('received: the library\'s path counts each byte once, at the socket; a direct TLS socket counts all it read', async () => {
    const reply = new Uint8Array(2000).fill(0x63);
    const server = await tlsServer(reply);
    const a = await tenant('limit received 64KiB per 60s');
    const conn = await connect(a.scope, server.port);
    let got = 0;
    conn.on('received', (m: { data: Uint8Array }) => (got += m.data.byteLength));
    for (let i = 0; i < 100 && got < 2000; i++) await new Promise((r) => setTimeout(r, 10));
    await settle();
    expect(got).toBe(2000);
    console.log(`library path: ${a.id} received ${host.usage(a.id).received} counted; the server wrote ${server.wrote()}`);
    expect(host.usage(a.id).received).toBe(server.wrote());
    await conn.close();

    const other = await tlsServer(reply);
    const b = await tenant('limit received 64KiB per 60s');
    const target = await b.scope.guard.authorize({ use: 'connect', protocol: 'tls', address: '127.0.0.1', port: other.port });
    const channel = await tlsDriver.connect({
      signal: NEVER_ABORTED, target, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port: other.port }), security: trust(),
      properties: new TransportProperties(), options: {}, guard: b.scope.guard,
    });
    let direct = 0;
    const receiver: ChannelReceiver = { data: (c) => (direct += c.byteLength), end: () => {}, drain: () => {}, closed: () => {} };
    channel.start(receiver);
    for (let i = 0; i < 100 && direct < 2000; i++) await new Promise((r) => setTimeout(r, 10));
    await settle();
    expect(direct).toBe(2000);
    console.log(`direct socket: ${b.id} received ${host.usage(b.id).received} counted; the server wrote ${other.wrote()}`);
    expect(host.usage(b.id).received).toBe(other.wrote());
    channel.abort();
  });

  it('received: a reply of many records, read several at a time, is counted once: exactly what the server wrote', async () => {
    // The TCP socket reads records TLS has not decrypted yet; counting "TCP bytes less cleartext" then overcounted.
    const server = await tlsServer(new Uint8Array(300_000).fill(0x65));
    const { id, scope } = await tenant('limit received 1MiB per 60s');
    const conn = await connect(scope, server.port);
    let got = 0;
    conn.on('received', (m: { data: Uint8Array }) => (got += m.data.byteLength));
    for (let i = 0; i < 500 && got < 300_000; i++) await new Promise((r) => setTimeout(r, 10));
    await settle();
    console.log(`a 300000-byte reply: ${host.usage(id).received} counted; the server wrote ${server.wrote()}`);
    expect(got).toBe(300_000);
    expect(host.usage(id).received).toBe(server.wrote());
    await conn.close();
  });
});

/** A UDP relay in front of `upstream`: what the client sent through it, in datagram bytes (its wire, UDP headers aside). */
async function udpRelay(upstream: number): Promise<{ port: number; fromClient: () => number; toClient: () => number }> {
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  let fromClient = 0;
  let toClient = 0;
  front.on('message', (msg, from) => {
    client = { address: from.address, port: from.port };
    fromClient += msg.byteLength;
    back.send(msg, upstream, '127.0.0.1');
  });
  back.on('message', (msg) => {
    if (client === undefined) return;
    toClient += msg.byteLength;
    front.send(msg, client.port, client.address);
  });
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => back.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => front.close(() => back.close(() => r()))));
  return { port: front.address().port, fromClient: () => fromClient, toClient: () => toClient };
}

describe('QUIC counts its datagrams against the byte budgets', () => {
  const quicListener = async (): Promise<number> => {
    const listener = await new Preconnection({
      scope: createScope({ tenant: 'quic-oh-server', policy: { decide: () => ({ allow: true, rule: 'server' }) } }),
      local: 'quic://127.0.0.1:0',
      properties: new TransportProperties({ multistreaming: 'require' }),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
      framers: [lengthPrefixFramer()],
      drivers: [quicDriver],
    }).listen();
    echoEach(listener);
    cleanups.push(() => listener.stop());
    return listener.port;
  };
  const dial = (scope: TenantScope, port: number): Promise<Connection> => new Preconnection({
    scope, remote: `quic://127.0.0.1:${port}`, drivers: [quicDriver], security: trust(), properties: new TransportProperties({ multistreaming: 'require' }), framers: [lengthPrefixFramer()],
  }).initiate();

  it('the handshake and every packet count, both ways: the tenant\'s counts are the datagram bytes the relay carried', async () => {
    const relay = await udpRelay(await quicListener());
    const { id, scope } = await tenant('allow quic://@loopback:*\nlimit sent 1MiB per 60s\nlimit received 1MiB per 60s');
    const conn = await dial(scope, relay.port);
    await settle();
    const handshake = host.usage(id).sent;
    console.log(`QUIC handshake: ${handshake} bytes charged, the relay carried ${relay.fromClient()}`);
    expect(handshake).toBeGreaterThanOrEqual(1200); // an Initial is padded to 1200 bytes (RFC 9000 §14.1)
    expect(handshake).toBe(relay.fromClient());
    const echoed = conn.receive();
    await conn.send(new Uint8Array(3000).fill(0x61));
    expect((await echoed).data.byteLength).toBe(3000);
    await settle();
    console.log(`after 3000 bytes of payload: ${host.usage(id).sent} charged, the relay carried ${relay.fromClient()}`);
    expect(host.usage(id).sent).toBe(relay.fromClient());
    expect(host.usage(id).sent).toBeGreaterThan(handshake + 3000);
    // Received: every datagram at the socket, the 3000 echoed bytes among them (the Connection does not count them again).
    console.log(`received: ${host.usage(id).received} charged, the relay carried ${relay.toClient()} to the client`);
    expect(host.usage(id).received).toBeGreaterThan(0);
    expect(host.usage(id).received).toBe(relay.toClient());
    await conn.close();
  });

  it('a budget smaller than a handshake refuses the connection with the budget error code; the next sends nothing', async () => {
    const relay = await udpRelay(await quicListener());
    const { id, scope } = await tenant('allow quic://@loopback:*\nlimit sent 1000B per 60s');
    const err = await dial(scope, relay.port).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await settle();
    const first = relay.fromClient();
    console.log(`QUIC handshake over a 1000-byte budget: ${(err as Error).message}; ${host.usage(id).sent} counted, the relay carried ${first}`);
    expect(first).toBeGreaterThan(1000);
    expect(host.usage(id).sent).toBe(first);
    expect(await dial(scope, relay.port).catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await settle();
    expect(relay.fromClient()).toBe(first);
  });
});

describe('a TLS listener counts what it answers and reads on the wire', () => {
  it('the handshake it answers and every record count, each byte once, against the listening tenant\'s budgets', async () => {
    const id = `tls-oh-${process.pid}-listener`;
    host.setPolicy(id, 'allow bind:tls://@loopback:*\nallow accept:tls://@loopback:*\nlimit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const listener = await new Preconnection({
      scope: await host.tenant(id), local: 'tls://127.0.0.1:0', drivers: [tlsDriver], security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    }).listen();
    cleanups.push(() => listener.stop());
    let got = 0;
    const peers: Connection[] = [];
    listener.on('connectionReceived', (c: Connection) => {
      peers.push(c);
      c.on('received', (m: { data: Uint8Array }) => (got += m.data.byteLength));
      c.on('connectionError', () => {});
    });
    // The client's own TCP socket under its TLS one: its counters are the wire both ways.
    const raw = netConnect(listener.port, '127.0.0.1');
    raw.on('error', () => {});
    await new Promise<void>((r) => raw.once('connect', () => r()));
    const client = tls.connect({ socket: raw, ca: cert.cert, checkServerIdentity: () => undefined });
    client.on('error', () => {});
    await new Promise<void>((r) => client.once('secureConnect', () => r()));
    await settle();
    const wireIn = (): number => (raw as Socket & { _bytesDispatched: number })._bytesDispatched;
    console.log(`listener handshake: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wireIn()})`);
    expect(host.usage(id).sent).toBeGreaterThan(0);
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wireIn());
    client.write(new Uint8Array(1000).fill(0x64));
    for (let i = 0; i < 100 && got < 1000; i++) await new Promise((r) => setTimeout(r, 10));
    await settle();
    expect(got).toBe(1000);
    expect(host.usage(id).received).toBe(wireIn()); // everything at the socket, once (the Connection counts none of it)
    client.write(new Uint8Array(50_000).fill(0x65)); // four records, read several at a time
    for (let i = 0; i < 500 && got < 51_000; i++) await new Promise((r) => setTimeout(r, 10));
    await settle();
    expect(got).toBe(51_000);
    console.log(`listener after 50000 more bytes: ${host.usage(id).received} received (the client wrote ${wireIn()})`);
    expect(host.usage(id).received).toBe(wireIn());
    const closed = new Promise<void>((r) => raw.once('close', () => r()));
    for (const c of peers) c.abort();
    client.destroy();
    await closed;
    await listener.stop();
  });
});

describe('a QUIC listener counts every datagram its socket sends and reads', () => {
  /** A QUIC listener of tenant `id` (budgets in `limits`); `got()`: the Connections it handed over. */
  const listenAs = async (id: string, limits: string): Promise<{ port: number; got: () => Connection[] }> => {
    host.setPolicy(id, `allow bind:quic://@loopback:*\nallow accept:quic://@loopback:*\n${limits}`);
    const listener = await new Preconnection({
      scope: await host.tenant(id), local: 'quic://127.0.0.1:0', properties: new TransportProperties({ multistreaming: 'require' }),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }), framers: [lengthPrefixFramer()], drivers: [quicDriver],
    }).listen();
    cleanups.push(() => listener.stop());
    return { port: listener.port, got: echoEach(listener) };
  };
  const client = createScope({ tenant: 'quic-oh-client', policy: { decide: () => ({ allow: true, rule: 'client' }) } });
  const dial = (port: number): Promise<Connection> => new Preconnection({
    scope: client, remote: `quic://127.0.0.1:${port}`, drivers: [quicDriver], security: trust(), properties: new TransportProperties({ multistreaming: 'require' }), framers: [lengthPrefixFramer()],
  }).initiate();

  it('the handshake it answers and every packet count, each byte once: the listening tenant\'s counts are what the relay carried', async () => {
    const id = `quic-oh-${process.pid}-listener`;
    const server = await listenAs(id, 'limit sent 1MiB per 60s\nlimit received 1MiB per 60s');
    const relay = await udpRelay(server.port);
    const conn = await dial(relay.port);
    await settle();
    console.log(`QUIC listener handshake: ${host.usage(id).sent} sent (the relay carried ${relay.toClient()}), ${host.usage(id).received} received (carried ${relay.fromClient()})`);
    expect(host.usage(id).sent).toBeGreaterThan(1000);
    expect(host.usage(id).sent).toBe(relay.toClient());
    expect(host.usage(id).received).toBe(relay.fromClient());
    const echoed = conn.receive();
    await conn.send(new Uint8Array(3000).fill(0x62));
    expect((await echoed).data.byteLength).toBe(3000);
    await settle();
    console.log(`after a 3000-byte echo: ${host.usage(id).sent} sent (carried ${relay.toClient()}), ${host.usage(id).received} received (carried ${relay.fromClient()})`);
    expect(server.got()).toHaveLength(1);
    expect(host.usage(id).sent).toBe(relay.toClient());
    expect(host.usage(id).received).toBe(relay.fromClient()); // the Connection does not count the 3000 bytes again
    expect(host.usage(id).received).toBeGreaterThan(3000);
    await conn.close();
  });

  it('a connection whose handshake spent the listener\'s sent budget is stopped before it is handed over', async () => {
    const id = `quic-oh-${process.pid}-listener-small`;
    const server = await listenAs(id, 'limit sent 1000B per 60s');
    const relay = await udpRelay(server.port);
    const conn = await dial(relay.port);
    conn.on('connectionError', () => {});
    const ended = new Promise<unknown>((resolve) => {
      conn.once('closed', () => resolve('closed'));
      conn.once('connectionError', (e: unknown) => resolve(e));
    });
    await conn.send(new Uint8Array(10).fill(0x63)).catch(() => {});
    const outcome = await ended;
    await settle();
    console.log(`QUIC listener over a 1000-byte budget: the client saw ${outcome instanceof Error ? outcome.message : String(outcome)}; ${host.usage(id).sent} counted, the relay carried ${relay.toClient()}`);
    expect(server.got()).toHaveLength(0);
    expect(host.usage(id).sent).toBeGreaterThan(1000);
    expect(host.usage(id).sent).toBe(relay.toClient());
  });

  it('a received budget the handshake exceeds at the listener\'s socket ends the connection before it is handed over', async () => {
    const id = `quic-oh-${process.pid}-listener-recv`;
    const server = await listenAs(id, 'limit received 2000B per 60s');
    const relay = await udpRelay(server.port);
    const outcome = await dial(relay.port).then(async (conn) => {
      conn.on('connectionError', () => {});
      const ended = new Promise<unknown>((resolve) => {
        conn.once('closed', () => resolve('closed'));
        conn.once('connectionError', (e: unknown) => resolve(e));
      });
      await conn.send(new Uint8Array(10).fill(0x64)).catch(() => {});
      return ended;
    }, (e: unknown) => e);
    await settle();
    console.log(`QUIC listener over a 2000-byte received budget: the client saw ${outcome instanceof Error ? outcome.message : String(outcome)}; ${host.usage(id).received} counted, the relay carried ${relay.fromClient()}`);
    expect(server.got()).toHaveLength(0);
    expect(host.usage(id).received).toBeGreaterThan(2000);
    expect(host.usage(id).received).toBe(relay.fromClient());
  });
});

describe('a wss listener counts its TLS on the wire', () => {
  /** A wss listener of tenant `id` (budgets in `limits`) that echoes each message; `got()`: the Connections it handed over. */
  const listenAs = async (id: string, limits: string): Promise<{ port: number; got: () => Connection[] }> => {
    host.setPolicy(id, `allow bind:wss://@loopback:*\nallow accept:wss://@loopback:*\n${limits}`);
    const listener = await new Preconnection({
      scope: await host.tenant(id), local: 'wss://127.0.0.1:0', drivers: [wssDriver], properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
    }).listen();
    cleanups.push(() => listener.stop());
    return { port: listener.port, got: echoEach(listener) };
  };
  const dialRaw = (port: number): Promise<RawWebSocket> => rawWebSocket(port, cleanups, { ca: cert.cert });

  it('the handshake, the upgrade and each frame count, each byte once: the listening tenant\'s counts are what its TCP socket carried', async () => {
    const id = `wss-oh-${process.pid}-listener`;
    const server = await listenAs(id, 'limit sent 64KiB per 60s\nlimit received 64KiB per 60s');
    const { raw, ws, opened } = await dialRaw(server.port);
    await opened;
    await settle();
    console.log(`wss listener handshake + upgrade: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wrote(raw)})`);
    expect(server.got()).toHaveLength(1);
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wrote(raw));
    const echoed = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send(new Uint8Array(1000).fill(0x64));
    expect((await echoed).byteLength).toBe(1000);
    await settle();
    console.log(`after a 1000-byte echo: ${host.usage(id).sent} sent (the client read ${raw.bytesRead}), ${host.usage(id).received} received (the client wrote ${wrote(raw)})`);
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wrote(raw)); // the Connection does not count the 1000 bytes again
    expect(host.usage(id).received).toBeGreaterThan(1000);
    // A pong is ws's own frame, written without the channel: its record counts as carried all the same.
    const ponged = new Promise<void>((r) => ws.once('pong', () => r()));
    ws.ping(Buffer.from('are you there'));
    await ponged;
    await settle();
    expect(host.usage(id).sent).toBe(raw.bytesRead);
    expect(host.usage(id).received).toBe(wrote(raw));
    ws.terminate();
  });

  it.each([
    ['received', 'limit received 300B per 60s'],
    ['sent', 'limit sent 300B per 60s'],
  ])('a %s budget smaller than the handshake stops the peer before its upgrade', async (what, limit) => {
    const id = `wss-oh-${process.pid}-small-${what}`;
    const server = await listenAs(id, limit);
    const { raw, ws, opened } = await dialRaw(server.port);
    const closed = new Promise<void>((r) => raw.once('close', () => r()));
    await expect(opened).rejects.toThrow('closed before open');
    await closed;
    console.log(`wss listener under ${limit}: ${host.usage(id).sent} sent, ${host.usage(id).received} received; the peer was closed before its upgrade`);
    expect(server.got()).toHaveLength(0);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
  });
});
