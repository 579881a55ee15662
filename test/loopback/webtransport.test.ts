/**
 * WebTransport over HTTP/2 on real loopback sockets, our own listener as the
 * peer: several MiB each way (the 16 KiB session-window stall is gone),
 * streams of one session as a connection group (three streams, a
 * peer-opened one, the session closing with its last stream), a peer reset,
 * an abort at each stage of establishment, and the HTTP/3 drivers reporting
 * themselves unavailable without a word on stdout/stderr.
 * Certificates and failure mapping: webtransport-security.test.ts.
 */
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { TransportChannel } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { HTTP3_MISSING, loadHttp2Engine } from '../../transports/webtransport/engine.js';
import { WebTransportError, webtransportH2Driver, webtransportH3DatagramDriver, webtransportH3Driver } from '../../transports/webtransport/index.js';
import { Collector, driverEchoServer, echo, extraHandles, handleCounts, tcpRelay, waitFor } from '../compliance/harness.js';
import { testCertificate } from '../helpers/certs.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';

const cert = testCertificate({ kind: 'ec', days: 10 });
const serverSecurity = (): SecurityParameters => new SecurityParameters({ certificate: cert.cert, key: cert.key });
const pinned = (): SecurityParameters => new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
const scope = scopeFor();
const MiB = 1024 * 1024;

interface ConnectInit {
  readonly address?: '127.0.0.1' | '::1';
  readonly signal?: AbortSignal;
  readonly path?: string;
}

async function connect(port: number, init: ConnectInit = {}): Promise<TransportChannel> {
  const address = init.address ?? '127.0.0.1';
  const target = await checked(scope, { protocol: 'webtransport', address, port, hostName: 'localhost' });
  const base = connectAttempt(scope, target, { security: pinned(), ...(init.signal ? { signal: init.signal } : {}) });
  const remote = RemoteEndpoint.from({ hostName: 'localhost', ipAddress: address, port, scheme: 'webtransport', path: init.path ?? '/' });
  return scope.network.connect(webtransportH2Driver, { ...base, remote });
}

/** Deterministic bytes: `seed` picks the pattern. */
function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 12)) & 0xff;
  return b;
}

/** Sockets open (client, accepted, TLS wraps). */
const sockets = (m: Map<string, number>): number => (m.get('TCPSocketWrap') ?? 0) + (m.get('TCPWRAP') ?? 0) + (m.get('TLSWRAP') ?? 0);

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Send `data` in 64 KiB pieces honouring backpressure, then FIN. */
async function sendAll(ch: TransportChannel, rx: Collector, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += 64 * 1024) {
    const last = at + 64 * 1024 >= data.length;
    if (!ch.send(data.subarray(at, at + 64 * 1024), { final: last }, () => {}) && !last) {
      const drains = rx.drains;
      await rx.until(() => rx.drains > drains, 'drain');
    }
  }
}

describe('webtransport-h3: not installed here', () => {
  it('both HTTP/3 drivers report the reason, print nothing, and the HTTP/2 engine loads silently', async () => {
    const written: string[] = [];
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    const capture = (chunk: unknown): boolean => {
      written.push(String(chunk));
      return true;
    };
    process.stdout.write = capture as typeof process.stdout.write;
    process.stderr.write = capture as typeof process.stderr.write;
    let states: unknown[];
    try {
      states = await Promise.all([webtransportH3Driver.available(), webtransportH3DatagramDriver.available(), webtransportH2Driver.available()]);
      await loadHttp2Engine();
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
    }
    expect(states).toEqual([
      { available: false, reason: HTTP3_MISSING },
      { available: false, reason: HTTP3_MISSING },
      { available: true },
    ]);
    expect(written).toEqual([]);
  });

  it('an HTTP/3 connect fails with ERR_TAPS_UNAVAILABLE, before any I/O', async () => {
    const target = await checked(scope, { protocol: 'webtransport', address: '127.0.0.1', port: 4433, hostName: 'localhost' });
    const before = handleCounts();
    await expect(webtransportH3Driver.connect(connectAttempt(scope, target, { security: pinned() }))).rejects.toMatchObject({ code: 'ERR_TAPS_UNAVAILABLE', message: HTTP3_MISSING });
    // Without pins the native client could not authenticate the server anyway: said before anything else.
    await expect(webtransportH3DatagramDriver.connect(connectAttempt(scope, target, { security: new SecurityParameters({ ca: cert.cert }) }))).rejects.toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    expect(await extraHandles(before)).toEqual([]);
  });
});

describe('webtransport-h2: bulk data', () => {
  it.each(['127.0.0.1', '::1'] as const)('moves 8 MiB each way at once over %s (no 16 KiB session stall)', async (address) => {
    const up = pattern(8 * MiB, 1);
    const down = pattern(8 * MiB, 2);
    const serverRx = new Collector();
    const server = await driverEchoServer(webtransportH2Driver, scope, address, {
      security: serverSecurity(),
      handler: (ch) => {
        ch.start(serverRx);
        void sendAll(ch, serverRx, down);
      },
    });
    try {
      const ch = await connect(server.port, { address });
      const rx = new Collector();
      ch.start(rx);
      await sendAll(ch, rx, up);
      await Promise.all([rx.untilEnd(), serverRx.untilEnd()]);
      expect(serverRx.bytes).toBe(up.length);
      expect(sha(serverRx.all())).toBe(sha(up));
      expect(rx.bytes).toBe(down.length);
      expect(sha(rx.all())).toBe(sha(down));
      expect(await rx.untilClosed()).toBeUndefined();
      expect(await serverRx.untilClosed()).toBeUndefined();
    } finally {
      await server.close();
    }
  });

  it('pause() holds data back (flow control stops the peer) and resume() delivers it all', async () => {
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: serverSecurity() });
    try {
      const ch = await connect(server.port);
      const rx = new Collector();
      ch.start(rx);
      ch.pause();
      const data = pattern(4 * MiB, 3);
      const results: (Error | undefined)[] = [];
      for (let at = 0; at < data.length; at += 64 * 1024) ch.send(data.subarray(at, at + 64 * 1024), {}, (e) => results.push(e));
      // The echo comes back into a paused channel: nothing is delivered, the windows fill up.
      await new Promise((r) => setTimeout(r, 100));
      expect(rx.bytes).toBe(0);
      ch.resume();
      await rx.untilBytes(data.length);
      expect(sha(rx.all())).toBe(sha(data));
      await waitFor(() => results.length === 64);
      expect(results.every((e) => e === undefined)).toBe(true);
      await ch.close();
    } finally {
      await server.close();
    }
  });
});

describe('webtransport-h2: streams of one session (connection group)', () => {
  it('three streams and a peer-opened one share the session; it closes with its last stream', async () => {
    const accepted: TransportChannel[] = [];
    const serverStreams: TransportChannel[] = [];
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', {
      security: serverSecurity(),
      handler: (ch) => {
        accepted.push(ch);
        // The first stream of the session: the connection. Later client streams arrive at its receiver.stream.
        let pending = 0;
        ch.start({
          data: (chunk) => void ch.send(chunk, {}, () => {}),
          end: () => void ch.close(),
          drain: () => pending++,
          closed: () => {},
          stream: (s) => {
            serverStreams.push(s);
            echo(s);
          },
        });
      },
    });
    try {
      const before = handleCounts();
      const a = await connect(server.port);
      const b = await a.openStream!();
      const c = await b.openStream!();
      const rxs = [new Collector(), new Collector(), new Collector()];
      [a, b, c].forEach((ch, i) => ch.start(rxs[i]!));
      [a, b, c].forEach((ch, i) => ch.send(Buffer.from(`stream ${i}`), {}, () => {}));
      await Promise.all(rxs.map((rx, i) => rx.untilBytes(`stream ${i}`.length)));
      expect(rxs.map((rx) => rx.text())).toEqual(['stream 0', 'stream 1', 'stream 2']);
      expect(accepted.length).toBe(1);
      expect(serverStreams.length).toBe(2);
      expect([a, b, c].every((ch) => ch.local.port === a.local.port)).toBe(true);
      // connPriority is per stream (sendOrder); keepAlive is the shared TCP connection's.
      b.setOption!('connPriority', 1);
      c.setOption!('keepAlive', true);
      expect(() => c.setOption!('noSuchOption', 1)).toThrow(expect.objectContaining({ code: 'ERR_TAPS_PROPERTY_NOT_APPLICABLE' }));

      // The server opens a stream: it arrives at the client's oldest open stream.
      const fromServer = await accepted[0]!.openStream!();
      fromServer.start(new Collector());
      fromServer.send(Buffer.from('pushed'), { final: true }, () => {});
      await rxs[0]!.until(() => rxs[0]!.streams.length === 1, 'a peer-opened stream');
      const pushed = rxs[0]!.streams[0]!;
      const pushedRx = new Collector();
      pushed.start(pushedRx);
      await pushedRx.untilEnd();
      expect(pushedRx.text()).toBe('pushed');
      pushed.send(Buffer.alloc(0), { final: true }, () => {});
      expect(await pushedRx.untilClosed()).toBeUndefined();

      // Closing all but one keeps the session (and its TCP connection) up.
      await a.close();
      await b.close();
      expect(sockets(handleCounts())).toBeGreaterThan(sockets(before));
      c.send(Buffer.from(' again'), {}, () => {});
      await rxs[2]!.untilBytes('stream 2 again'.length);
      // The last one closes the session and its connection.
      await c.close();
      expect(rxs.map((rx) => rx.closedCalls)).toEqual([1, 1, 1]);
      expect(await extraHandles(before)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('a stream reset by the peer ends with ERR_TAPS_CONNECTION_RESET; the session and its other streams go on', async () => {
    let serverSide: TransportChannel | undefined;
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', {
      security: serverSecurity(),
      handler: (ch) => {
        serverSide = ch;
        ch.start({ data: () => ch.abort(new Error('go away')), end() {}, drain() {}, closed() {}, stream: (s) => echo(s) });
      },
    });
    try {
      const a = await connect(server.port);
      const b = await a.openStream!();
      const rxA = new Collector();
      const rxB = new Collector();
      a.start(rxA);
      b.start(rxB);
      a.send(Buffer.from('reset me'), {}, () => {});
      const err = await rxA.untilClosed();
      expect(err).toBeInstanceOf(WebTransportError);
      expect(err).toMatchObject({ code: 'ERR_TAPS_CONNECTION_RESET', streamErrorCode: 0 });
      const late: (Error | undefined)[] = [];
      a.send(Buffer.from('x'), {}, (e) => late.push(e));
      await waitFor(() => late.length === 1);
      expect(late[0]).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
      b.send(Buffer.from('still here'), {}, () => {});
      await rxB.untilBytes(10);
      expect(rxB.text()).toBe('still here');
      await b.close();
      expect(serverSide).toBeDefined();
    } finally {
      await server.close();
    }
  });
});

describe('webtransport through the library (Preconnection, Listener, clone)', () => {
  it('the webtransport: scheme selects the HTTP/2 stack (HTTP/3 reported unavailable); messages, clone and peer streams work', async () => {
    const drivers = [webtransportH3Driver, webtransportH3DatagramDriver, webtransportH2Driver];
    const common = { scope, drivers, framers: [lengthPrefixFramer()], properties: TransportProperties.reliableMessage() };
    const listener = await new Preconnection({ ...common, local: 'webtransport://127.0.0.1:0', security: serverSecurity() }).listen();
    const echoConn = (conn: import('../../src/connection/connection.js').Connection): void => {
      conn.on('received', (msg) => void conn.send(msg.data).catch(() => {}));
      conn.on('receivedEnd', () => void conn.close());
      conn.on('connectionReceived', echoConn);
    };
    listener.on('connectionReceived', echoConn);
    try {
      const pre = new Preconnection({ ...common, remote: `webtransport://localhost:${listener.port}/`, security: pinned() });
      const conn = await pre.initiate({ timeout: 5000 });
      expect(conn.driver.id).toBe('webtransport-h2');
      expect(conn.report.candidates.find((c) => c.driver === 'webtransport-h3')).toMatchObject({ fate: 'unavailable', reason: HTTP3_MISSING });
      await conn.send('hello');
      expect((await conn.receive()).text()).toBe('hello');
      const clone = await conn.clone();
      await clone.send('from the clone');
      expect((await clone.receive()).text()).toBe('from the clone');
      expect(conn.groupedConnections()).toHaveLength(2);
      await conn.closeGroup();
    } finally {
      await listener.stop();
    }
  });
});

describe('webtransport-h2: both ends abort at once', () => {
  it('each HTTP/2 connection goes after its flush grace, not closeTimeout: no socket or timer is left', async () => {
    const before = handleCounts();
    // A closeTimeout far over the test's timeout: waiting for it would fail the test, not slow it.
    const common = { scope, drivers: [webtransportH2Driver], framers: [lengthPrefixFramer()], properties: TransportProperties.reliableMessage(), driverOptions: { 'webtransport-h2': { closeTimeout: 60_000 } } };
    const listener = await new Preconnection({ ...common, local: 'webtransport://127.0.0.1:0', security: serverSecurity() }).listen();
    const served = new Promise<import('../../src/connection/connection.js').Connection>((resolve) => listener.once('connectionReceived', resolve));
    const conn = await new Preconnection({ ...common, remote: `webtransport://localhost:${listener.port}/`, security: pinned() }).initiate({ timeout: 5000 });
    await conn.send('hello');
    const server = await served;
    expect((await server.receive()).text()).toBe('hello');
    const t0 = performance.now();
    conn.abort();
    server.abort();
    await listener.stop();
    await waitFor(() => [...handleCounts()].every(([k, n]) => k === 'Timeout' ? n <= (before.get(k) ?? 0) + 1 : n <= (before.get(k) ?? 0)));
    console.log(`webtransport-h2, both ends aborted: sockets and timers gone after ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await extraHandles(before)).toEqual([]);
  });
});

describe('webtransport-h2: the connection under a session dies', () => {
  it('every stream of the session ends with ERR_TAPS_CONNECTION_ABORTED on both sides; nothing is left open', async () => {
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', {
      security: serverSecurity(),
      handler: (ch) => ch.start({ data() {}, end() {}, drain() {}, closed() {}, stream: (s) => s.start(new Collector()) }),
    });
    const relay = await tcpRelay('127.0.0.1', server.port);
    try {
      const before = handleCounts();
      const a = await connect(relay.port);
      const b = await a.openStream!();
      const rxA = new Collector();
      const rxB = new Collector();
      a.start(rxA);
      b.start(rxB);
      b.send(Buffer.from('hi'), {}, () => {});
      await waitFor(() => server.channels.length === 1);
      await relay.close(); // both TCP connections of the relay are destroyed
      expect(await rxA.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
      expect(await rxB.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
      expect(await extraHandles(before)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('webtransport-h2: abort at any stage of establishment', () => {
  /** Aborts once the server has seen the stage `reached` names (not after a delay, which a loaded machine can outrun). */
  const settles = async (port: number, reached: () => boolean): Promise<void> => {
    const before = handleCounts();
    const ac = new AbortController();
    let settled = false;
    const p = connect(port, { signal: ac.signal }).finally(() => (settled = true));
    p.catch(() => {});
    await waitFor(() => reached() || settled);
    expect(settled).toBe(false);
    const reason = new Error('changed my mind');
    ac.abort(reason);
    expect(await p.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
    expect(await extraHandles(before)).toEqual([]);
  };

  it('a TCP listener that accepts and never speaks: the abort settles it and leaves nothing open', async () => {
    const accepted = new Set<Socket>();
    const silent = createServer((s) => {
      accepted.add(s);
      s.on('error', () => {});
      s.resume(); // reads (and ignores) the ClientHello, so it sees the client's FIN and closes
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      await settles((silent.address() as { port: number }).port, () => accepted.size === 1);
      expect(accepted.size).toBe(1);
    } finally {
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('an HTTP/2 server that never answers the CONNECT: the abort settles it and leaves nothing open', async () => {
    const h2 = http2.createSecureServer({ cert: cert.cert, key: cert.key, settings: { enableConnectProtocol: true } });
    const streams: http2.ServerHttp2Stream[] = [];
    h2.on('stream', (s) => {
      streams.push(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      await settles((h2.address() as { port: number }).port, () => streams.length === 1);
      expect(streams.length).toBe(1);
    } finally {
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });

  it('an HTTP/2 server without extended CONNECT: ERR_TAPS_ESTABLISHMENT_FAILED naming RFC 8441', async () => {
    const h2 = http2.createSecureServer({ cert: cert.cert, key: cert.key });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    try {
      const before = handleCounts();
      await expect(connect((h2.address() as { port: number }).port)).rejects.toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED', message: expect.stringContaining('RFC 8441') });
      expect(await extraHandles(before)).toEqual([]);
    } finally {
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });
});
