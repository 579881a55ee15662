/**
 * QUIC DATAGRAM (RFC 9221) through the library, over loopback: the selector
 * picks `quic-dgram` for encrypted unreliable datagrams and for per-message
 * reliability, each message goes the way it asks (RFC 9622 §9.1.3.7,
 * §9.1.3.3) and says how it came, datagrams are negotiated per connection
 * (a peer that does not offer them fails the candidate with a typed error),
 * one listener serves `quic` and `quic-dgram` on one port, and a peer's bad
 * datagrams are counted, never thrown. Peers nobody on the project wrote:
 * `@matrixai/quic` used directly, without and with datagrams.
 */
import type { QUICConnection } from '@matrixai/quic';
import { afterAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { Driver } from '../../src/driver.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { Listener } from '../../src/listener.js';
import { createScope } from '../../src/policy/index.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { STREAM_VERSION } from '../../transports/quic/datagram-wire.js';
import { CLIENT_CRYPTO, loadQuic, serverCrypto } from '../../transports/quic/engine.js';
import { quicDgramDriver, quicDriver } from '../../transports/quic/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { testCertificate } from '../helpers/certs.js';
import { faultyUdpRelay } from '../helpers/fault-relay.js';

const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const scope = createScope({ tenant: 'dgram', policy: allow });
const drivers: readonly Driver[] = [tlsDriver, udpDriver, quicDriver, quicDgramDriver];
const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
const serverSecurity = (): SecurityParameters => new SecurityParameters({ certificate: cert.cert, key: cert.key });
const clientSecurity = (): SecurityParameters => new SecurityParameters({ ca: cert.caCert as string });
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Served {
  readonly listener: Listener;
  readonly accepted: Connection[];
  readonly refused: string[];
}

/** A listener that echoes every message the way it came (reliable or not, ordered or not). */
async function echoServer(properties: TransportProperties, init: { framers?: boolean; port?: number } = {}): Promise<Served> {
  const listener = await new Preconnection({
    scope,
    local: { ipAddress: '127.0.0.1', port: init.port ?? 0 },
    properties,
    security: serverSecurity(),
    drivers,
    framers: init.framers === true ? [lengthPrefixFramer()] : [],
  }).listen();
  const accepted: Connection[] = [];
  const refused: string[] = [];
  listener.on('refused', (_peer, reason) => refused.push(reason));
  listener.on('connectionReceived', (c) => {
    accepted.push(c);
    const echo = (conn: Connection): void => {
      conn.on('received', (m) => {
        const ctx = m.context.msgReliable === undefined ? {} : { msgReliable: m.context.msgReliable, msgOrdered: m.context.msgOrdered };
        conn.send(m.data, ctx).catch(() => {});
      });
      conn.on('receivedEnd', () => void conn.close().catch(() => {}));
    };
    echo(c);
    c.on('connectionReceived', (s) => {
      accepted.push(s);
      echo(s);
    });
  });
  cleanups.push(async () => {
    await listener.stop();
    for (const c of accepted) c.abort();
  });
  return { listener, accepted, refused };
}

interface ClientInit {
  framers?: boolean;
  drivers?: readonly Driver[];
  racing?: { mode: 'failover' };
}

function client(port: number, properties: TransportProperties, init: ClientInit = {}): Preconnection {
  return new Preconnection({
    scope,
    remote: { hostName: 'localhost', ipAddress: '127.0.0.1', port },
    properties,
    security: clientSecurity(),
    drivers: init.drivers ?? drivers,
    framers: init.framers === true ? [lengthPrefixFramer()] : [],
    ...(init.racing ? { racing: init.racing } : {}),
  });
}

async function open(port: number, properties: TransportProperties, init: ClientInit = {}): Promise<Connection> {
  const conn = await client(port, properties, init).initiate({ signal: AbortSignal.timeout(5000) });
  cleanups.push(() => conn.abortGroup());
  return conn;
}

/** The next message, or a rejection after 5 s. */
function next(conn: Connection): Promise<{ text: string; reliable: boolean | undefined; ordered: boolean | undefined }> {
  return conn.receive({ signal: AbortSignal.timeout(5000) }).then((m) => ({ text: m.text(), reliable: m.context.msgReliable, ordered: m.context.msgOrdered }));
}

/** Send unreliably until one comes back (a datagram may be lost, even on loopback). */
async function datagramRoundTrip(conn: Connection, body: string, ctx: { msgOrdered?: boolean } = {}): Promise<{ text: string; reliable: boolean | undefined; ordered: boolean | undefined }> {
  for (let i = 0; i < 50; i++) {
    await conn.send(body, { msgReliable: false, ...ctx });
    const got = await Promise.race([next(conn), new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
    if (got !== undefined) return got;
  }
  throw new Error(`no datagram came back for ${body}`);
}

interface Stats {
  readonly sent: number;
  readonly received: number;
  readonly malformed: number;
  readonly unknownFlow: number;
  readonly stale: number;
}
const stats = (c: Connection): Stats => c.info['datagramStats'] as Stats;

describe('QUIC datagrams through Preconnection', () => {
  it('unreliableDatagram() with security required (the default) picks quic-dgram; messages go and come back as datagrams', async () => {
    const server = await echoServer(TransportProperties.unreliableDatagram());
    expect(server.listener.stacks).toEqual(['quic-dgram']);
    const conn = await open(server.listener.port, TransportProperties.unreliableDatagram());
    const fate = (id: string) => conn.report.candidates.find((c) => c.driver === id);
    expect(fate('quic-dgram')?.fate).toBe('won');
    expect(fate('udp')?.reason).toMatch(/unencrypted and security is required/);
    expect(fate('quic')?.reason).toMatch(/preserveMsgBoundaries is required but quic is a byte stream/);
    expect(conn.stack).toEqual(['quic-dgram', 'quic', 'udp']);
    expect(conn.transportProperties).toMatchObject({ reliability: false, preserveOrder: false, preserveMsgBoundaries: true, perMsgReliability: true });
    expect(conn.info).toMatchObject({ protocol: 'quic', datagrams: true, authenticated: true });
    const max = conn.getProperty('singularTransmissionMsgMaxLen') as number;
    console.log(`quic-dgram on loopback: sendMsgMaxLen ${conn.getProperty('sendMsgMaxLen')}, singularTransmissionMsgMaxLen ${max}`);
    expect(conn.getProperty('sendMsgMaxLen')).toBe(max);
    expect(max).toBeGreaterThan(1000);
    expect(await datagramRoundTrip(conn, 'position 1')).toEqual({ text: 'position 1', reliable: false, ordered: false });
    // A datagram one byte over the negotiated size: a sendError, never fragmented nor sent on a stream.
    const err = await conn.send(Buffer.alloc(max + 1)).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'SendError', code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    expect((err as Error).message).toMatch(/must fit in one datagram/);
    expect(stats(server.accepted[0]!).received).toBeGreaterThanOrEqual(1);
    await conn.close();
  });

  it("perMsgReliability: 'require' picks quic-dgram: reliable and ordered by default, msgReliable false goes as a datagram", async () => {
    const props = new TransportProperties({ perMsgReliability: 'require' });
    const server = await echoServer(props);
    const conn = await open(server.listener.port, props);
    expect(conn.driver.id).toBe('quic-dgram');
    expect(conn.transportProperties).toMatchObject({ reliability: true, preserveOrder: true, perMsgReliability: true });
    expect(conn.getProperty('sendMsgMaxLen')).toBe(16 * 1024 * 1024);
    const single = conn.getProperty('singularTransmissionMsgMaxLen') as number;
    await conn.send('input 1');
    expect(await next(conn)).toEqual({ text: 'input 1', reliable: true, ordered: true });
    const big = 'x'.repeat(200_000);
    await conn.send(big);
    expect((await next(conn)).text).toBe(big);
    expect(await datagramRoundTrip(conn, 'position 2')).toEqual({ text: 'position 2', reliable: false, ordered: true });
    await expect(conn.send(Buffer.alloc(single + 1), { msgReliable: false })).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    await conn.close();
  });

  it('each message goes its own way on one connection: reliable ordered ones in order, whatever the datagrams do', async () => {
    const props = new TransportProperties({ perMsgReliability: 'require' });
    const server = await echoServer(props);
    const conn = await open(server.listener.port, props);
    const got: { text: string; reliable: boolean | undefined; ordered: boolean | undefined }[] = [];
    conn.on('received', (m) => got.push({ text: m.text(), reliable: m.context.msgReliable, ordered: m.context.msgOrdered }));
    const N = 500;
    for (let i = 0; i < N; i++) {
      void conn.send(`r${i}`).catch(() => {});
      void conn.send(`d${i}`, { msgReliable: false }).catch(() => {});
      if (i % 50 === 0) void conn.send(`u${i}`, { msgReliable: true, msgOrdered: false }).catch(() => {});
      if (conn.sendBlocked) await new Promise<void>((r) => conn.once('drain', () => r()));
    }
    while (got.filter((g) => g.text.startsWith('r')).length < N || got.filter((g) => g.text.startsWith('u')).length < N / 50) await new Promise((r) => setTimeout(r, 10));
    const reliable = got.filter((g) => g.text.startsWith('r'));
    expect(reliable.map((g) => g.text)).toEqual(Array.from({ length: N }, (_, i) => `r${i}`));
    expect(reliable.every((g) => g.reliable === true && g.ordered === true)).toBe(true);
    const alone = got.filter((g) => g.text.startsWith('u'));
    expect(new Set(alone.map((g) => g.text)).size).toBe(N / 50);
    expect(alone.every((g) => g.reliable === true && g.ordered === false)).toBe(true);
    const datagrams = got.filter((g) => g.text.startsWith('d'));
    expect(datagrams.every((g) => g.reliable === false)).toBe(true);
    // Never duplicated: QUIC drops a duplicate packet (RFC 9000 §12.3).
    expect(new Set(datagrams.map((g) => g.text)).size).toBe(datagrams.length);
    console.log(`500 reliable in order, 10 reliable unordered, ${datagrams.length}/500 datagrams came back`);
    await conn.close();
  });

  it('ordered datagrams through a reordering relay: a late one is dropped as stale and counted, never delivered after a newer one', async () => {
    const props = new TransportProperties({ perMsgReliability: 'require' });
    const server = await echoServer(props);
    const relay = await faultyUdpRelay('127.0.0.1', server.listener.port, { seed: 11, toServer: { reorder: 0.3 } });
    cleanups.push(() => relay.close());
    const conn = await open(relay.port, props);
    const seen: number[] = [];
    server.accepted.length = 0;
    await conn.send('hello');
    await next(conn);
    const peer = server.accepted[0]!;
    peer.on('received', (m) => {
      if (m.context.msgReliable === false) seen.push(Number(m.text()));
    });
    for (let i = 0; i < 400; i++) {
      await conn.send(String(i), { msgReliable: false, msgOrdered: true });
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
    const s = stats(peer);
    console.log(`ordered datagrams through a reordering relay: ${seen.length} delivered, ${s.stale} stale dropped, relay reordered ${relay.stats.toServer.reordered}`);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    expect(relay.stats.toServer.reordered).toBeGreaterThan(0);
    expect(s.stale).toBeGreaterThan(0);
    await conn.close();
  });

  it('a listener whose properties need no datagrams does not offer them: the quic-dgram candidate fails with a typed error, never a stream in its place', async () => {
    const server = await echoServer(new TransportProperties({ multistreaming: 'require' }), { framers: true });
    expect(server.listener.stacks).toEqual(['quic']);
    const err = await client(server.listener.port, TransportProperties.unreliableDatagram(), { drivers: [quicDgramDriver] })
      .initiate({ signal: AbortSignal.timeout(5000) })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    const c = (err as { report: { candidates: { driver: string; code?: string; reason?: string }[] } }).report.candidates.find((x) => x.driver === 'quic-dgram');
    expect(c).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(c?.reason).toMatch(/does not accept QUIC DATAGRAM frames/);
    expect(server.accepted).toHaveLength(0);
  });

  it('unreliableDatagram() with a framer: quic-dgram ranks above a reliable QUIC stream; with a peer that has no datagrams the stream wins only after the datagram candidate failed, and says so', async () => {
    // Failover racing: the next candidate starts only when one fails, so the ranking alone decides, however
    // long a QUIC handshake takes on a busy machine (staggered racing would start the stream after 250 ms).
    const racing = { mode: 'failover' } as const;
    const datagrams = await echoServer(TransportProperties.unreliableDatagram());
    const ranked = await open(datagrams.listener.port, TransportProperties.unreliableDatagram(), { framers: true, racing });
    expect(ranked.driver.id).toBe('quic-dgram');
    await ranked.close();
    const streamsOnly = await echoServer(new TransportProperties({ multistreaming: 'require' }), { framers: true });
    const fallback = await open(streamsOnly.listener.port, TransportProperties.unreliableDatagram(), { framers: true, racing });
    const dg = fallback.report.candidates.find((c) => c.driver === 'quic-dgram');
    expect(dg).toMatchObject({ fate: 'failed', code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(fallback.driver.id).toBe('quic');
    expect(fallback.transportProperties.reliability).toBe(true);
    await fallback.close();
  });

  it('msgReliable false on a stack without datagrams is a sendError, never a reliable send', async () => {
    const server = await echoServer(new TransportProperties({ multistreaming: 'require' }), { framers: true });
    const conn = await open(server.listener.port, new TransportProperties({ multistreaming: 'require' }), { framers: true });
    expect(conn.driver.id).toBe('quic');
    const errors: string[] = [];
    conn.on('sendError', (_ctx, e) => errors.push(e.code));
    await expect(conn.send('position', { msgReliable: false })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    expect(errors).toEqual(['ERR_TAPS_INVALID_MESSAGE_PROPERTIES']);
    await conn.send('still fine');
    expect((await conn.receive({ signal: AbortSignal.timeout(5000) })).text()).toBe('still fine');
    await conn.close();
  });

  it('one port, both stacks: a listener that allows both binds one QUIC socket and hands each peer over with its own stack', async () => {
    const props = new TransportProperties({ perMsgReliability: 'prefer' });
    const server = await echoServer(props, { framers: true });
    const skipped = server.listener.report.candidates.find((c) => c.fate === 'skipped' && /shared listener quic/.test(c.reason ?? ''));
    expect(skipped).toBeDefined();
    const dg = await open(server.listener.port, new TransportProperties({ perMsgReliability: 'require' }));
    const plain = await open(server.listener.port, new TransportProperties({ multistreaming: 'require' }), { framers: true });
    expect([dg.driver.id, plain.driver.id]).toEqual(['quic-dgram', 'quic']);
    await dg.send('via flow');
    await plain.send('via stream');
    expect((await next(dg)).text).toBe('via flow');
    expect((await next(plain)).text).toBe('via stream');
    expect(server.accepted.map((c) => c.driver.id).sort()).toEqual(['quic', 'quic-dgram']);
    await Promise.all([dg.close(), plain.close()]);
  });

  it('a listener bound for datagrams only refuses a plain QUIC stream peer (its stack does not meet the properties)', async () => {
    const server = await echoServer(TransportProperties.unreliableDatagram());
    const conn = await open(server.listener.port, new TransportProperties({ multistreaming: 'require' }), { framers: true });
    const ended = new Promise<Error>((resolve) => conn.once('connectionError', resolve));
    void conn.send('anyone?').catch(() => {});
    await ended;
    expect(server.refused.some((r) => /speaks quic, which this listener's properties do not allow/.test(r))).toBe(true);
    expect(server.accepted).toHaveLength(0);
  });

  it('clone(): another flow of the same QUIC connection, its datagrams kept apart', async () => {
    const props = new TransportProperties({ perMsgReliability: 'require' });
    const server = await echoServer(props);
    const conn = await open(server.listener.port, props);
    const second = await conn.clone();
    expect(second.driver.id).toBe('quic-dgram');
    expect((await datagramRoundTrip(second, 'on flow 4')).text).toBe('on flow 4');
    expect((await datagramRoundTrip(conn, 'on flow 0')).text).toBe('on flow 0');
    await conn.closeGroup();
  });

  it('a peer nobody here wrote (@matrixai/quic used directly) sending bad datagrams: each is dropped and counted, nothing crashes, good ones still arrive', async () => {
    const server = await echoServer(TransportProperties.unreliableDatagram());
    const { api, logger } = await loadQuic();
    const raw = await api.QUICClient.createQUICClient({
      host: '127.0.0.1',
      port: server.listener.port,
      localHost: '127.0.0.1',
      crypto: CLIENT_CRYPTO,
      logger,
      config: { verifyPeer: false, applicationProtos: ['taps'], enableDgram: [true, 64, 64] },
    });
    cleanups.push(() => raw.destroy({ force: true }));
    const conn = raw.connection as QUICConnection & { conn: { dgramSend(d: Uint8Array): void }; send(): Promise<void> };
    const stream = conn.newStream('bidi');
    const w = stream.writable.getWriter();
    await w.write(Uint8Array.of(STREAM_VERSION));
    while (server.accepted.length === 0) await new Promise((r) => setTimeout(r, 5));
    const peer = server.accepted[0]!;
    const got: string[] = [];
    peer.on('received', (m) => got.push(m.text()));
    const bad = [
      new Uint8Array(0), // nothing at all
      Uint8Array.of(0x40), // a truncated 2-byte varint
      Uint8Array.of(0, 7, 0, 0, 0, 1, 0x41), // unknown kind 7
      Uint8Array.of(0, 0, 0, 0), // shorter than a header
      Uint8Array.of(0x3f, 0, 0, 0, 0, 1, 0x41), // flow 63: a unidirectional stream id
      Uint8Array.of(0x3d, 0, 0, 0, 0, 1, 0x41), // flow 61: the server's to open, and it never did
    ];
    for (let round = 0; round < 20 && got.length === 0; round++) {
      for (const b of bad) conn.conn.dgramSend(b);
      conn.conn.dgramSend(Buffer.from([0, 0, 0, 0, 0, round, ...Buffer.from('good')]));
      await conn.send();
      await new Promise((r) => setTimeout(r, 50));
    }
    const s = stats(peer);
    console.log(`bad datagrams from a raw peer: ${JSON.stringify(s)}`);
    expect(got[0]).toBe('good');
    expect(s.malformed).toBeGreaterThanOrEqual(5);
    expect(s.unknownFlow).toBeGreaterThanOrEqual(1);
    expect(peer.state).toBe('established');
    await raw.destroy({ force: true });
  });

  it('the package directly as a server without datagrams: the quic-dgram candidate fails, typed', async () => {
    const { api, logger } = await loadQuic();
    const server = new api.QUICServer({ crypto: serverCrypto(), config: { cert: cert.cert, key: cert.key, verifyPeer: false, applicationProtos: ['taps'] }, logger });
    await server.start({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => server.stop({ force: true }));
    const err = await client(server.port as number, TransportProperties.unreliableDatagram()).initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    const c = (err as { report: { candidates: { driver: string; code?: string; reason?: string }[] } }).report.candidates.find((x) => x.driver === 'quic-dgram');
    expect(c?.reason).toMatch(/does not accept QUIC DATAGRAM frames/);
  });

  it("the tenant's policy checks a quic-dgram candidate exactly as a quic one: protocol quic, the address and port", async () => {
    const server = await echoServer(TransportProperties.unreliableDatagram());
    const seen: string[] = [];
    const strict = createScope({
      tenant: 'strict',
      policy: {
        decide: (r) => {
          seen.push(`${r.use}:${r.protocol}`);
          return r.protocol === 'quic' ? { allow: false, code: 'denied' as const, reason: 'no quic', rule: 'deny quic' } : { allow: true, rule: 'rest' };
        },
      },
    });
    const pre = new Preconnection({ scope: strict, remote: { ipAddress: '127.0.0.1', port: server.listener.port }, properties: TransportProperties.unreliableDatagram(), security: clientSecurity(), drivers });
    const err = await pre.initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    expect(seen).toContain('connect:quic');
    expect(server.accepted).toHaveLength(0);
  });
});
