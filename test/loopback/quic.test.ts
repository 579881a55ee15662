/**
 * QUIC through the library, end to end over loopback: selection picks QUIC
 * when multistreaming is preferred and falls back to TLS when UDP is
 * blackholed (RFC 9623 §4.2.1 staggered racing), clone() and peer streams
 * share one QUIC connection, and bad peers give typed errors with nothing
 * left open (the leak guard checks every file).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { afterAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { createScope } from '../../src/policy/index.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';

const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const scope = createScope({ tenant: 'q', policy: allow });
const drivers = [tcpDriver, tlsDriver, quicDriver];
const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
const text = (b: Uint8Array): string => Buffer.from(b).toString();
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

const serverSecurity = (): SecurityParameters => new SecurityParameters({ certificate: cert.cert, key: cert.key });
const clientSecurity = (init: ConstructorParameters<typeof SecurityParameters>[0] = {}): SecurityParameters =>
  new SecurityParameters({ ca: cert.caCert as string, ...init });

/** An echo listener of one stack on `port` (0: any), every connection and peer stream echoed with a prefix. */
async function echo(kind: 'quic' | 'tls', port = 0, driverOptions: Record<string, Record<string, unknown>> = {}): Promise<{ port: number; accepted: Connection[] }> {
  const properties = new TransportProperties({ multistreaming: kind === 'quic' ? 'require' : 'prohibit' });
  const listener = await new Preconnection({
    scope,
    local: { ipAddress: '127.0.0.1', port },
    properties,
    security: serverSecurity(),
    framers: [lengthPrefixFramer()],
    drivers,
    driverOptions,
  }).listen();
  const accepted: Connection[] = [];
  listener.on('connectionReceived', async (c) => {
    accepted.push(c);
    c.on('connectionReceived', (s) => void serve(s, accepted));
    void serve(c, accepted);
  });
  cleanups.push(() => listener.stop());
  return { port: listener.port, accepted };
}

async function serve(c: Connection, seen: Connection[]): Promise<void> {
  if (!seen.includes(c)) seen.push(c);
  try {
    for await (const m of c) {
      const body = text(m.data);
      if (body === 'reset me') c.abort(new Error('the test asked for a reset'));
      else await c.send(`echo:${body}`);
    }
    await c.close();
  } catch {
    // The peer went away: nothing to serve.
  }
}

function client(port: number, init: { properties?: TransportProperties; security?: SecurityParameters; attemptDelay?: number; driverOptions?: Record<string, Record<string, unknown>> } = {}): Preconnection {
  return new Preconnection({
    scope,
    remote: { hostName: 'localhost', ipAddress: '127.0.0.1', port },
    properties: init.properties ?? new TransportProperties({ multistreaming: 'prefer' }),
    security: init.security ?? clientSecurity(),
    framers: [lengthPrefixFramer()],
    drivers,
    racing: { attemptDelay: init.attemptDelay ?? 250 },
    driverOptions: init.driverOptions ?? {},
  });
}

async function roundTrip(conn: Connection, body: string): Promise<string> {
  await conn.send(body);
  return text((await conn.receive({ signal: AbortSignal.timeout(5000) })).data);
}

/** A UDP socket that reads and ignores: a QUIC peer that never answers. */
async function silentUdp(port = 0): Promise<UdpSocket> {
  const s = createSocket('udp4');
  s.on('message', () => {});
  await new Promise<void>((r) => s.bind(port, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

/** A UDP port on `address` that nothing listens on (bound once, then closed): the kernel answers ICMP port unreachable. */
async function closedUdpPort(address: string): Promise<number> {
  const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('QUIC through Preconnection', () => {
  it('prefer multistreaming: QUIC wins over TLS on the same port number; clone() is a second stream of one connection', async () => {
    const tls = await echo('tls');
    const quic = await echo('quic', tls.port);
    const conn = await client(tls.port).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      const won = conn.report.candidates.find((c) => c.fate === 'won')!;
      expect(won.driver).toBe('quic');
      // Ranked first, so started first; TLS was never needed.
      const tlsCandidate = conn.report.candidates.find((c) => c.driver === 'tls')!;
      expect(tlsCandidate.fate === 'cancelled' || tlsCandidate.startedAt === undefined).toBe(true);
      expect(await roundTrip(conn, 'one')).toBe('echo:one');
      const second = await conn.clone();
      expect(await roundTrip(second, 'two')).toBe('echo:two');
      expect(second.report.candidates.find((c) => c.fate === 'won')?.driver).toBe('quic');
      // Two streams, one QUIC connection: the server saw both streams from one local port of ours.
      expect(quic.accepted).toHaveLength(2);
      expect(tls.accepted).toHaveLength(0);
      expect(new Set(quic.accepted.map((c) => `${c.remoteEndpoint?.ipAddress}:${c.remoteEndpoint?.port}`)).size).toBe(1);
      await second.close();
    } finally {
      await conn.closeGroup();
    }
  });

  it('UDP blackholed: the TLS candidate starts one attempt delay after QUIC and wins; QUIC is cancelled', async () => {
    const tls = await echo('tls');
    await silentUdp(tls.port);
    const delay = 100;
    const conn = await client(tls.port, { attemptDelay: delay }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      const q = conn.report.candidates.find((c) => c.driver === 'quic')!;
      const t = conn.report.candidates.find((c) => c.driver === 'tls')!;
      expect(t.fate).toBe('won');
      expect(q.fate).toBe('cancelled');
      // Staggered, not sequential: TLS started when the attempt delay ran out, while QUIC was still trying
      // (QUIC cancelled, not failed: it never reached its connect timeout).
      expect(t.startedAt! - q.startedAt!).toBeGreaterThanOrEqual(delay - 5);
      expect(await roundTrip(conn, 'fallback')).toBe('echo:fallback');
    } finally {
      await conn.close();
    }
  });

  it('streams the peer opens arrive as grouped connections', async () => {
    const quic = await echo('quic');
    const conn = await client(quic.port, { properties: new TransportProperties({ multistreaming: 'require' }) }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      expect(await roundTrip(conn, 'hello')).toBe('echo:hello');
      const server = quic.accepted[0]!;
      const arrived = new Promise<Connection>((resolve) => conn.once('connectionReceived', resolve));
      const pushed = await server.clone();
      await pushed.send('from the server');
      const incoming = await arrived;
      expect(text((await incoming.receive({ signal: AbortSignal.timeout(5000) })).data)).toBe('from the server');
      // Each side's close waits for the other's FIN (TCP-like): close both at once.
      await Promise.all([incoming.close(), pushed.close()]);
    } finally {
      await conn.closeGroup();
    }
  });

  it('a pinned certificate is accepted; a wrong pin is ERR_TAPS_SECURITY_FAILED', async () => {
    const quic = await echo('quic');
    const required = new TransportProperties({ multistreaming: 'require' });
    const ok = await client(quic.port, { properties: required, security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }) }).initiate({ signal: AbortSignal.timeout(5000) });
    expect(await roundTrip(ok, 'pinned')).toBe('echo:pinned');
    await ok.close();
    const wrong = client(quic.port, { properties: required, security: new SecurityParameters({ pinnedServerCertificates: ['00'.repeat(32)] }) });
    const err = await wrong.initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    const q = (err as { report: { candidates: { driver: string; code?: string; reason?: string }[] } }).report.candidates.find((c) => c.driver === 'quic');
    expect(q).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    expect(q?.reason).toMatch(/matches no pinned certificate/);
  });

  it('an ALPN mismatch fails the QUIC candidate with ERR_TAPS_ESTABLISHMENT_FAILED', async () => {
    const quic = await echo('quic', 0, { quic: { alpn: ['server-proto'] } });
    const pre = client(quic.port, { properties: new TransportProperties({ multistreaming: 'require' }), driverOptions: { quic: { alpn: ['client-proto'] } } });
    const err = await pre.initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    const q = (err as { report: { candidates: { driver: string; code?: string; reason?: string }[] } }).report.candidates.find((c) => c.driver === 'quic');
    expect(q).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(q?.reason).toMatch(/ALPN/);
  });

  it('a peer that never answers fails within connectTimeout with ERR_TAPS_TIMEOUT', async () => {
    const dead = await silentUdp();
    const pre = client(dead.address().port, { properties: new TransportProperties({ multistreaming: 'require' }), driverOptions: { quic: { connectTimeout: 300 } } });
    const err = await pre.initiate({ signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    const q = (err as { report: { candidates: { driver: string; code?: string }[] } }).report.candidates.find((c) => c.driver === 'quic');
    expect(q).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
  });

  it.each(['127.0.0.1', '::1'])('a closed UDP port on %s: the ICMP port unreachable ends the QUIC attempt at once (ECONNREFUSED), not the connect timeout', async (address) => {
    const port = await closedUdpPort(address);
    const pre = new Preconnection({
      scope,
      remote: { ipAddress: address, port },
      properties: new TransportProperties({ multistreaming: 'require' }),
      security: clientSecurity(),
      drivers,
      // A connect timeout far beyond the test's own budget: only the ICMP error can end the attempt in time.
      driverOptions: { quic: { connectTimeout: 60_000 } },
    });
    const t0 = performance.now();
    const err = await pre.initiate().catch((e: unknown) => e);
    console.log(`quic to closed ${address}:${port} rejected after ${(performance.now() - t0).toFixed(1)} ms`);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    const q = (err as { report: { candidates: { driver: string; code?: string; reason?: string; error?: Error }[] } }).report.candidates.find((c) => c.driver === 'quic');
    expect(q).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(q?.reason).toMatch(/refused \(ICMP port unreachable\): ECONNREFUSED/);
    expect((q?.error?.cause as { code?: string }).code).toBe('ECONNREFUSED');
  });

  it('a connected QUIC socket still carries a whole connection, and closing it releases the socket (leak guard)', async () => {
    const quic = await echo('quic');
    const conn = await client(quic.port, { properties: new TransportProperties({ multistreaming: 'require' }) }).initiate({ signal: AbortSignal.timeout(5000) });
    expect(await roundTrip(conn, 'x'.repeat(100_000))).toBe(`echo:${'x'.repeat(100_000)}`);
    await conn.close();
  });

  it('connPriority orders the streams of one QUIC connection (RFC 9218 urgency in quiche): the urgent stream sent second arrives first', async () => {
    const arrivals: string[] = [];
    const listener = await new Preconnection({ scope, local: { ipAddress: '127.0.0.1', port: 0 }, properties: new TransportProperties({ multistreaming: 'require' }), security: serverSecurity(), framers: [lengthPrefixFramer()], drivers }).listen();
    cleanups.push(() => listener.stop());
    const record = (c: Connection): void => {
      c.on('received', (m) => {
        arrivals.push(text(m.data.subarray(0, 4)));
        void c.send('ok').catch(() => {});
      });
      c.on('receivedEnd', () => void c.close().catch(() => {}));
    };
    listener.on('connectionReceived', (c) => {
      record(c);
      c.on('connectionReceived', record);
    });
    const conn = await client(listener.port, { properties: new TransportProperties({ multistreaming: 'require' }) }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      const urgent = await conn.clone();
      // Both streams must exist at the server before the race: one round trip each.
      await conn.send('bulk-hello');
      await urgent.send('urgt-hello');
      await Promise.all([conn.receive(), urgent.receive()]);
      conn.setProperty('connPriority', 250); // urgency 7
      urgent.setProperty('connPriority', 0); // urgency 0
      const size = 4 * 1024 * 1024;
      const slow = conn.send(Buffer.concat([Buffer.from('bulk'), Buffer.alloc(size, 1)]));
      const fast = urgent.send(Buffer.concat([Buffer.from('urgt'), Buffer.alloc(size, 2)]));
      await Promise.all([slow, fast]);
      await Promise.all([conn.receive({ signal: AbortSignal.timeout(20_000) }), urgent.receive({ signal: AbortSignal.timeout(20_000) })]);
      console.log(`arrival order at the server: ${arrivals.join(', ')}`);
      expect(arrivals.slice(2)).toEqual(['urgt', 'bulk']);
      expect(conn.getProperty('connPriority')).toBe(250);
      await conn.closeGroup();
    } finally {
      conn.abortGroup();
    }
  });

  it('a peer that resets the stream: the connection ends with ERR_TAPS_CONNECTION_RESET', async () => {
    const quic = await echo('quic');
    const conn = await client(quic.port, { properties: new TransportProperties({ multistreaming: 'require' }) }).initiate({ signal: AbortSignal.timeout(5000) });
    const failed = new Promise<Error>((resolve) => conn.once('connectionError', resolve));
    await conn.send('reset me');
    expect(await failed).toMatchObject({ code: 'ERR_TAPS_CONNECTION_RESET' });
    conn.abort();
  });
});
