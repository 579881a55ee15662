/**
 * The tcp driver over real loopback sockets (127.0.0.1 and ::1, port 0):
 * connect, echo, listen, half-close, buffering before start, refused and
 * blackholed connects, close vs abort, run-time options.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalEndpoint } from '../../src/endpoints.js';
import { isTapsError } from '../../src/errors.js';
import { connectTcp, SocketChannel, tcpDriver } from '../../transports/tcp/index.js';
import { blackhole } from '../helpers/blackhole.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, refusedPort, type EchoServer } from '../compliance/harness.js';

const scope = scopeFor();

describe.each(['127.0.0.1', '::1'])('tcp over %s', (address) => {
  let server: EchoServer;
  beforeAll(async () => {
    server = await driverEchoServer(tcpDriver, scope, address);
  });
  afterAll(async () => {
    await server.close();
  });

  const connect = async (port = server.port, init: Parameters<typeof connectAttempt>[2] = {}) =>
    scope.network.connect(tcpDriver, connectAttempt(scope, await checked(scope, { protocol: 'tcp', address, port }), init));

  it('connects, echoes and closes cleanly', async () => {
    const ch = await connect();
    expect(ch.framing).toBe('stream');
    expect(ch.maxMessageSize).toBe(Infinity);
    expect(ch.remote).toEqual({ address, port: server.port, family: address.includes(':') ? 6 : 4 });
    expect(ch.local.address).toBe(address);
    const rx = new Collector();
    ch.start(rx);
    const sent: (Error | undefined)[] = [];
    ch.send(Buffer.from('hello '), {}, (e) => sent.push(e));
    ch.send(Buffer.from('world'), {}, (e) => sent.push(e));
    await rx.untilBytes(11);
    expect(rx.text()).toBe('hello world');
    expect(sent).toEqual([undefined, undefined]);
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
    expect(rx.hasEnded).toBe(true);
    expect(rx.closedCalls).toBe(1);
  });

  it('half-closes with meta.final and still receives the reply', async () => {
    const ch = await connect();
    const rx = new Collector();
    ch.start(rx);
    ch.send(Buffer.from('last words'), { final: true }, () => {});
    // The echo server closes when it sees our FIN, after echoing.
    await rx.untilEnd();
    expect(rx.text()).toBe('last words');
    const late: Error[] = [];
    ch.send(Buffer.from('x'), {}, (e) => e && late.push(e));
    await new Promise((r) => setTimeout(r, 0));
    expect(late[0]).toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
  });

  it('buffers data and FIN that arrive before start()', async () => {
    let serverSocket: Socket | undefined;
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      serverSocket = s;
      s.end('early bird');
    });
    await new Promise<void>((r) => srv.listen(0, address, r));
    const port = (srv.address() as { port: number }).port;
    const ch = await connect(port);
    // Wait until the server has written and closed its side.
    await new Promise<void>((r) => (serverSocket ? r() : srv.once('connection', () => r())));
    await new Promise((r) => setTimeout(r, 20));
    const rx = new Collector();
    ch.start(rx);
    await rx.untilEnd();
    expect(rx.text()).toBe('early bird');
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('connects with Nagle off and half-open allowed (set on the socket, not via constructor options)', async () => {
    const target = await checked(scope, { protocol: 'tcp', address, port: server.port });
    const socket = await connectTcp(target, undefined, new AbortController().signal, 'tcp');
    // Node 20 keeps the TCP_NODELAY request in a private symbol and applies it once connected.
    const flag = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay');
    expect(flag).toBeDefined();
    expect((socket as unknown as Record<symbol, unknown>)[flag!]).toBe(true);
    expect(socket.allowHalfOpen).toBe(true);
    socket.destroy();
  });

  it('still knows its remote address after the socket is gone (Node forgets it)', async () => {
    const target = await checked(scope, { protocol: 'tcp', address, port: server.port });
    const socket = await connectTcp(target, undefined, new AbortController().signal, 'tcp');
    const ch = new SocketChannel(socket);
    socket.destroy();
    await new Promise((r) => socket.once('close', r));
    expect(ch.remote).toEqual({ address, port: server.port, family: address.includes(':') ? 6 : 4 });
    expect(Object.isFrozen(ch.remote)).toBe(true);
  });

  it('knows its local address after it ended the socket itself or saw the peer FIN, though never asked while connected', async () => {
    const peers: number[] = [];
    const srv = createServer((s) => {
      s.on('error', () => {});
      peers.push(s.remotePort!);
      if (peers.length === 3) s.end();
      else s.resume();
    });
    await new Promise<void>((r) => srv.listen(0, address, r));
    try {
      const port = (srv.address() as { port: number }).port;
      const aborted = await connect(port);
      aborted.abort();
      const closed = await connect(port);
      await closed.close();
      const ended = await connect(port);
      const rx = new Collector();
      ended.start(rx);
      await rx.untilEnd();
      await ended.close();
      const family = address.includes(':') ? 6 : 4;
      for (const ch of [aborted, closed, ended]) {
        expect(ch.local).toMatchObject({ address, family });
        expect(peers).toContain(ch.local.port);
      }
      expect(new Set([aborted, closed, ended].map((c) => c.local.port)).size).toBe(3);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('driver options: a bad keepAlive or closeTimeout rejects the connect with a RangeError and leaves no socket', async () => {
    const before = handleCounts();
    await expect(connect(server.port, { options: { keepAlive: -1 } })).rejects.toThrow(RangeError);
    await expect(connect(server.port, { options: { closeTimeout: 'soon' } })).rejects.toThrow(RangeError);
    expect(await extraHandles(before)).toEqual([]);
    const ch = await connect(server.port, { options: { keepAlive: 30 } });
    await ch.close();
  });

  it('binds the local endpoint it is given', async () => {
    const ch = await connect(server.port, { local: LocalEndpoint.from({ ipAddress: address }) });
    expect(ch.local.address).toBe(address);
    expect(ch.local.port).toBeGreaterThan(0);
    ch.abort();
  });

  it('refused: fails fast with ERR_TAPS_ESTABLISHMENT_FAILED, cause ECONNREFUSED', async () => {
    const port = await refusedPort(address);
    const err = await connect(port).catch((e: unknown) => e);
    expect(isTapsError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED', cause: { code: 'ECONNREFUSED' } });
  });

  it('blackholed connect hangs until the signal aborts, then releases everything', async () => {
    const hole = await blackhole(address as '127.0.0.1' | '::1');
    try {
      const before = handleCounts();
      const ac = new AbortController();
      let settled = false;
      const p = connect(hole.port, { signal: ac.signal }).finally(() => (settled = true));
      p.catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
      expect(settled).toBe(false);
      const reason = new Error('give up');
      ac.abort(reason);
      const err = await p.catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
      expect(await extraHandles(before)).toEqual([]);
    } finally {
      await hole.close();
    }
  });

  it('abort sends RST: the peer sees a reset, our receiver an abort', async () => {
    const peerErrors: string[] = [];
    const srv = createServer((s) => s.on('error', (e: NodeJS.ErrnoException) => peerErrors.push(e.code ?? '')));
    await new Promise<void>((r) => srv.listen(0, address, r));
    const peerClosed = new Promise<void>((r) => srv.once('connection', (s: Socket) => s.once('close', () => r())));
    const ch = await connect((srv.address() as { port: number }).port);
    const rx = new Collector();
    ch.start(rx);
    ch.abort(new Error('stop'));
    expect(await rx.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED', cause: { message: 'stop' } });
    await peerClosed;
    expect(peerErrors).toEqual(['ECONNRESET']);
    expect(rx.closedCalls).toBe(1);
    ch.abort(); // idempotent
    await new Promise<void>((r) => srv.close(() => r()));
  });

  it('a peer reset reaches the receiver as ERR_TAPS_CONNECTION_RESET', async () => {
    const srv = createServer((s) => s.once('data', () => s.resetAndDestroy()));
    await new Promise<void>((r) => srv.listen(0, address, r));
    try {
      const ch = await connect((srv.address() as { port: number }).port);
      const rx = new Collector();
      ch.start(rx);
      ch.send(Buffer.from('go'), {}, () => {});
      expect(await rx.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_RESET', cause: { code: 'ECONNRESET' } });
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('setOption: keep-alive applies, TCP UTO and unknown names are not applicable', async () => {
    const ch = await connect();
    expect(() => ch.setOption?.('keepAliveTimeout', 30_000)).not.toThrow();
    expect(() => ch.setOption?.('keepAliveTimeout', Infinity)).not.toThrow();
    expect(() => ch.setOption?.('keepAliveTimeout', 'Disabled')).toThrow(TypeError);
    expect(() => ch.setOption?.('tcp.userTimeoutValue', 10)).toThrow(expect.objectContaining({ code: 'ERR_TAPS_PROPERTY_NOT_APPLICABLE' }));
    expect(() => ch.setOption?.('connPriority', 1)).toThrow(expect.objectContaining({ code: 'ERR_TAPS_PROPERTY_NOT_APPLICABLE' }));
    expect(() => ch.setOption?.('keepAliveTimeout', -1)).toThrow(TypeError);
    ch.abort();
  });

  it('listener: connections that arrive before start() are handed over on start, close() stops accepting', async () => {
    const attempt = await import('../helpers/policy.js').then((m) => m.listenAttempt(scope, 'tcp', address));
    const listener = await scope.network.listen(tcpDriver, attempt);
    expect(listener.local.port).toBeGreaterThan(0);
    const client = await connect(listener.local.port);
    const got: import('../../src/driver.js').TransportChannel[] = [];
    await new Promise((r) => setTimeout(r, 20));
    listener.start({ connection: (c) => got.push(c), error: () => {} });
    expect(got).toHaveLength(1);
    expect(got[0]?.remote.port).toBe(client.local.port);
    await listener.close();
    const err = await connect(listener.local.port).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    // The handed-out channel is still usable after the listener closed.
    const rx = new Collector();
    got[0]?.start(rx);
    client.start(new Collector());
    client.send(Buffer.from('still here'), {}, () => {});
    await rx.untilBytes(10);
    expect(rx.text()).toBe('still here');
    client.abort();
    got[0]?.abort();
  });
});
