/**
 * WebSocket drivers (ws, wss) over real loopback sockets, at the driver +
 * guard level: scope.guard.lookup → scope.guard.authorize → scope.network.connect.
 * Our own listener is the peer, so both sides of the driver are exercised.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChannelReceiveMeta, DriverListener, TransportChannel } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { isTapsError } from '../../src/errors.js';
import type { NetworkScope } from '../../src/policy/index.js';
import type { NetworkPolicy, PolicyRequest } from '../../src/policy/types.js';
import { SecurityParameters } from '../../src/security.js';
import { TransportProperties } from '../../src/properties.js';
import { WebSocketCloseError, wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { checked, connectAttempt, listenAttempt, scopeFor } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', names: ['chat.test', 'localhost', '127.0.0.1', '::1'] });
const serverSecurity = new SecurityParameters({ certificate: cert.cert, key: cert.key });
const clientSecurity = new SecurityParameters({ ca: cert.cert });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Allow-list policy: names in `names`, loopback addresses, and nothing else. */
function allowList(names: readonly string[]): NetworkPolicy & { requests: PolicyRequest[] } {
  const requests: PolicyRequest[] = [];
  return {
    requests,
    decide(req) {
      requests.push(req);
      const hostOk = req.host === undefined || names.includes(req.host);
      const addrOk = req.address === undefined || req.address === '127.0.0.1' || req.address === '::1';
      return hostOk && addrOk ? { allow: true, rule: 'allow-list' } : { allow: false, code: 'no-match', reason: `${req.host ?? req.address} is not allowed`, rule: null };
    },
  };
}

interface Collected {
  readonly messages: { data: Uint8Array; meta: ChannelReceiveMeta | undefined }[];
  readonly closed: Promise<Error | undefined>;
  ended: boolean;
  drains: number;
  next(): Promise<{ data: Uint8Array; meta: ChannelReceiveMeta | undefined }>;
}

function collect(ch: TransportChannel): Collected {
  let wake: (() => void) | undefined;
  let read = 0;
  const c: Collected = {
    messages: [],
    ended: false,
    drains: 0,
    closed: new Promise((resolve) =>
      ch.start({
        data: (data, meta) => {
          c.messages.push({ data, meta });
          wake?.();
        },
        end: () => (c.ended = true),
        drain: () => c.drains++,
        closed: (err) => {
          resolve(err);
          wake?.();
        },
      }),
    ),
    async next() {
      while (c.messages.length <= read) await new Promise<void>((r) => (wake = r));
      return c.messages[read++]!;
    },
  };
  return c;
}

/** A ws/wss listener of ours that echoes every message (same type), tracking its channels. */
async function echoListener(scope: NetworkScope, secure: boolean, address = '127.0.0.1', options: Record<string, unknown> = {}) {
  const driver = secure ? wssDriver : wsDriver;
  const attempt = await listenAttempt(scope, driver.protocol, address, 0, { security: secure ? serverSecurity : {}, options });
  const listener: DriverListener = await scope.network.listen(driver, attempt);
  const accepted: TransportChannel[] = [];
  listener.start({
    connection(ch) {
      accepted.push(ch);
      ch.start({
        data: (d, meta) => ch.send(d, { fields: { text: meta?.fields?.['binary'] === false } }, () => {}),
        end() {},
        drain() {},
        closed() {},
      });
    },
    error() {},
  });
  cleanups.push(async () => {
    for (const ch of accepted) ch.abort();
    await listener.close();
  });
  return { listener, accepted, port: listener.local.port };
}

describe('ws and wss drivers', () => {
  it('declare truthful capabilities and ids', () => {
    expect(wsDriver).toMatchObject({ id: 'ws', protocol: 'ws', schemes: ['ws'], stack: ['websocket', 'tcp'], framing: 'message', security: 'none' });
    expect(wssDriver).toMatchObject({ id: 'wss', protocol: 'wss', schemes: ['wss'], stack: ['websocket', 'tls', 'tcp'], defaultPort: 443, security: 'tls' });
    expect(wsDriver.capabilities).toMatchObject({ reliable: true, ordered: true, messageBoundaries: true, encrypted: false, multistream: false });
    expect(wssDriver.capabilities.encrypted).toBe(true);
  });

  it('ws: echoes binary and text messages, keeping boundaries, over 127.0.0.1 and ::1', async () => {
    const scope = scopeFor();
    for (const address of ['127.0.0.1', '::1']) {
      const { port, accepted } = await echoListener(scope, false, address);
      const target = await checked(scope, { protocol: 'ws', address, port });
      const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
      expect(ch.framing).toBe('message');
      expect(ch.remote).toMatchObject({ address, port });
      const c = collect(ch);
      for (const m of ['one', 'two', '']) ch.send(enc(m), { fields: { text: true } }, () => {});
      ch.send(new Uint8Array([0, 255, 1]), {}, () => {});
      expect(text((await c.next()).data)).toBe('one');
      expect(text((await c.next()).data)).toBe('two');
      expect((await c.next()).data.byteLength).toBe(0);
      const bin = await c.next();
      expect([...bin.data]).toEqual([0, 255, 1]);
      expect(bin.meta?.fields?.['binary']).toBe(true);
      expect(c.messages[0]!.meta?.fields?.['binary']).toBe(false);
      expect(accepted).toHaveLength(1);
      await ch.close();
      expect(await c.closed).toBeUndefined();
      expect(ch.info['closeCode']).toBe(1000);
    }
  });

  it('wss: reaches an allowed endpoint by name (fake resolver → 127.0.0.1 and ::1), with SNI, Host and certificate from the checked name', async () => {
    const resolver = fakeResolver({ 'chat.test': { v4: ['127.0.0.1'], v6: ['::1'] } });
    const policy = allowList(['chat.test']);
    const scope = scopeFor(policy, resolver);
    for (const family of [6, 4] as const) {
      const address = family === 6 ? '::1' : '127.0.0.1';
      const { port, accepted } = await echoListener(scope, true, address, { subprotocols: ['v2', 'v1'] });
      const [answer] = await scope.guard.lookup('chat.test', family, 'wss', AbortSignal.timeout(2000));
      const target = await scope.guard.authorize({ use: 'connect', protocol: 'wss', address: answer!.address, port, hostName: 'chat.test' });
      const attempt = {
        ...connectAttempt(scope, target, { security: clientSecurity }),
        remote: RemoteEndpoint.from({ url: `wss://chat.test:${port}/room?x=1`, subprotocols: ['v1', 'v2'] }),
      };
      const ch = await scope.network.connect(wssDriver, attempt);
      expect(ch.info).toMatchObject({ subprotocol: 'v2', path: '/room?x=1', alpn: 'http/1.1', url: `wss://chat.test:${port}/room?x=1` });
      expect(accepted[0]!.info).toMatchObject({ path: '/room?x=1', serverName: 'chat.test', subprotocol: 'v2' });
      const c = collect(ch);
      ch.send(enc('over tls'), {}, () => {});
      expect(text((await c.next()).data)).toBe('over tls');
      ch.abort();
      expect(await c.closed).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
    }
    expect(policy.requests.filter((r) => r.use === 'lookup').map((r) => r.host)).toEqual(['chat.test', 'chat.test']);
  });

  it('wss: a certificate the client does not trust fails with ERR_TAPS_SECURITY_FAILED and leaks nothing', async () => {
    const scope = scopeFor();
    const { port, accepted } = await echoListener(scope, true);
    const target = await checked(scope, { protocol: 'wss', address: '127.0.0.1', port, hostName: 'chat.test' });
    const err = await scope.network.connect(wssDriver, connectAttempt(scope, target, { security: new SecurityParameters() })).catch((e: unknown) => e);
    expect(isTapsError(err) && err.code).toBe('ERR_TAPS_SECURITY_FAILED');
    expect(accepted).toHaveLength(0);
  });

  it('a message larger than maxPayload ends the channel with ERR_TAPS_MESSAGE_TOO_LARGE and close code 1009', async () => {
    const scope = scopeFor();
    const { port } = await echoListener(scope, false);
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const properties = new TransportProperties({ 'ws.maxPayload': 1024 });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target, { properties }));
    expect(ch.maxMessageSize).toBe(1024);
    const c = collect(ch);
    // Our own send limit refuses at once, without touching the connection.
    const refused = await new Promise<Error | undefined>((r) => ch.send(new Uint8Array(2048), {}, r));
    expect(refused).toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    // A peer sending too much: the echo of a fragmented message of 3 × 512 bytes exceeds our 1024.
    ch.send(new Uint8Array(512), { fields: { endOfMessage: false } }, () => {});
    ch.send(new Uint8Array(512), { fields: { endOfMessage: false } }, () => {});
    ch.send(new Uint8Array(512), {}, () => {});
    const err = await c.closed;
    expect(err).toBeInstanceOf(WebSocketCloseError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE', closeCode: 1009 });
    expect(c.messages).toHaveLength(0);
  });

  it('close codes and reasons from the peer surface on closed() and in info', async () => {
    const scope = scopeFor();
    const { port, accepted } = await echoListener(scope, false);
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
    const c = collect(ch);
    ch.send(enc('x'), {}, () => {});
    await c.next();
    accepted[0]!.setOption!('closeCode', 4001);
    const err = await c.closed;
    expect(err).toBeInstanceOf(WebSocketCloseError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED', closeCode: 4001 });
    expect(ch.info['closeCode']).toBe(4001);
  });

  it('a final message sends a close frame after it; the peer sees the message, then a clean end', async () => {
    const scope = scopeFor();
    const { port, accepted } = await echoListener(scope, false);
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
    const c = collect(ch);
    ch.send(enc('last'), { final: true }, () => {});
    const late = await new Promise<Error | undefined>((r) => ch.send(enc('too late'), {}, r));
    expect(late).toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    expect(await c.closed).toBeUndefined();
    expect(accepted[0]!.info['closeCode']).toBe(1000);
  });

  it('send backpressure: send() returns false when the socket buffer is full and drain() follows', async () => {
    const scope = scopeFor();
    const { port } = await echoListener(scope, false);
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
    const c = collect(ch);
    ch.pause();
    const big = new Uint8Array(256 * 1024);
    let sent = 0;
    while (ch.send(big, {}, () => {})) sent++;
    expect(sent).toBeLessThan(100);
    await new Promise<void>((r) => {
      const t = setInterval(() => c.drains > 0 && (clearInterval(t), r()), 5);
    });
    ch.resume();
    for (let i = 0; i <= sent; i++) await c.next();
    expect(c.messages).toHaveLength(sent + 1);
    await ch.close();
  });
});

describe('ws bad input and hostile peers', () => {
  function rawServer(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number; connections: number }> {
    return new Promise((resolve) => {
      const sockets = new Set<Socket>();
      const state = { server: createServer((s) => {
        state.connections++;
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => sockets.delete(s));
        onSocket(s);
        if (s.listenerCount('data') === 0) s.resume(); // read, so the peer's FIN is seen
      }), port: 0, connections: 0 };
      state.server.listen(0, '127.0.0.1', () => {
        state.port = (state.server.address() as { port: number }).port;
        resolve(state);
      });
      cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); state.server.close(() => r()); }));
    });
  }

  it('invalid subprotocol names and paths are ERR_TAPS_INVALID_CONFIGURATION before any socket opens', async () => {
    const scope = scopeFor();
    const peer = await rawServer(() => {});
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port: peer.port });
    for (const options of [{ subprotocols: ['bad name'] }, { subprotocols: ['a', 'a'] }, { path: 'no-slash' }, { path: '/a b' }, { maxPayload: -1 }, { headers: { Host: 'evil.test' } }]) {
      const err = await scope.network.connect(wsDriver, connectAttempt(scope, target, { options })).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_TAPS_INVALID_CONFIGURATION' });
    }
    expect(peer.connections).toBe(0);
  });

  it('a server that never completes the upgrade: connect waits until the signal aborts, then releases the socket', async () => {
    const scope = scopeFor();
    let closed = 0;
    const peer = await rawServer((s) => s.on('close', () => closed++));
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port: peer.port });
    const ac = new AbortController();
    const p = scope.network.connect(wsDriver, connectAttempt(scope, target, { signal: ac.signal }));
    while (peer.connections === 0) await new Promise((r) => setTimeout(r, 5));
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    while (closed === 0) await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(1);
  });

  it('handshakeTimeout bounds the wait with ERR_TAPS_TIMEOUT', async () => {
    const scope = scopeFor();
    const peer = await rawServer(() => {});
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port: peer.port });
    const err = await scope.network.connect(wsDriver, connectAttempt(scope, target, { options: { handshakeTimeout: 50 } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
  });

  it('a refused upgrade (HTTP 404) is ERR_TAPS_ESTABLISHMENT_FAILED', async () => {
    const scope = scopeFor();
    const { port } = await echoListener(scope, false, '127.0.0.1', { path: '/only-here' });
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const attempt = { ...connectAttempt(scope, target), remote: RemoteEndpoint.from(`ws://127.0.0.1:${port}/elsewhere`) };
    const err = await scope.network.connect(wsDriver, attempt).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    expect(String((err as Error).message)).toMatch(/404/);
  });

  it('a malformed frame from the server ends the channel with ERR_TAPS_PROTOCOL_FAILED, no crash', async () => {
    const scope = scopeFor();
    const { createHash } = await import('node:crypto');
    const peer = await rawServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString('latin1');
        if (!buf.includes('\r\n\r\n')) return;
        const key = /sec-websocket-key: *(.+)\r\n/i.exec(buf)![1]!.trim();
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        s.write(Buffer.from([0x85, 0x01, 0x00])); // opcode 5 is reserved (RFC 6455 §5.2)
        buf = '';
      });
    });
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port: peer.port });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
    const err = await collect(ch).closed;
    expect(err).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED', closeCode: 1002 });
  });

  it('a peer that resets the connection ends the channel with ERR_TAPS_CONNECTION_RESET', async () => {
    const scope = scopeFor();
    const { port, accepted } = await echoListener(scope, false);
    const target = await checked(scope, { protocol: 'ws', address: '127.0.0.1', port });
    const ch = await scope.network.connect(wsDriver, connectAttempt(scope, target));
    const c = collect(ch);
    ch.send(enc('x'), {}, () => {});
    await c.next();
    accepted[0]!.abort();
    const err = await c.closed;
    expect(err).toMatchObject({ closeCode: 1006 });
    expect(['ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_CONNECTION_ABORTED']).toContain((err as unknown as { code: string }).code);
  });
});
