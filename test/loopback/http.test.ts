/**
 * HTTP drivers (http, https, https2) over real loopback sockets at the driver
 * + guard level, against Node's own http, https and http2 servers.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChannelReceiveMeta, TransportChannel } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import type { NetworkScope } from '../../src/policy/index.js';
import type { NetworkPolicy, PolicyRequest } from '../../src/policy/types.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver, httpsDriver, https2Driver } from '../../transports/http/index.js';
import { testCertificate } from '../helpers/certs.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', names: ['api.test', 'localhost', '127.0.0.1', '::1'] });
const clientSecurity = new SecurityParameters({ ca: cert.cert });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Handlers use the HTTP/1 types; the HTTP/2 compatibility API offers the same methods. */
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What the test servers saw. */
interface Seen {
  port: number;
  connections: number;
  requests: { method: string; url: string; host: string | undefined; body: string; httpVersion: string; servername?: string | undefined }[];
  sockets: Set<Socket>;
}

/** Echo: status 200, the request body back, x-method / x-url headers. */
const echo: Handler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('x-method', req.method ?? '');
    res.setHeader('x-url', req.url ?? '');
    res.end(Buffer.concat(chunks));
  });
};

async function serve(kind: 'http' | 'https' | 'h2' | 'h2+h1', handler: Handler = echo, host = '127.0.0.1'): Promise<Seen> {
  const seen: Seen = { port: 0, connections: 0, requests: [], sockets: new Set() };
  const wrapped: Handler = (req, res) => {
    const chunks: Buffer[] = [];
    const record = { method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? (req.headers[':authority'] as string | undefined), body: '', httpVersion: req.httpVersion, servername: (req.socket as TLSSocket).servername || undefined };
    seen.requests.push(record);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => (record.body = Buffer.concat(chunks).toString()));
    handler(req, res);
  };
  const tls = { cert: cert.cert, key: cert.key };
  const server =
    kind === 'http'
      ? http.createServer(wrapped)
      : kind === 'https'
        ? https.createServer({ ...tls, ALPNProtocols: ['http/1.1'] }, wrapped)
        : http2.createSecureServer({ ...tls, allowHTTP1: kind === 'h2+h1' }, wrapped as never);
  server.on(kind === 'http' ? 'connection' : 'secureConnection', (s: Socket) => {
    seen.connections++;
    seen.sockets.add(s);
    s.on('close', () => seen.sockets.delete(s));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  seen.port = (server.address() as { port: number }).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        for (const s of seen.sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return seen;
}

interface Response {
  data: Uint8Array;
  meta: ChannelReceiveMeta | undefined;
}

function collect(ch: TransportChannel) {
  let wake: (() => void) | undefined;
  let read = 0;
  const c = {
    messages: [] as Response[],
    ended: false,
    closedWith: undefined as Error | undefined | 'open',
    closed: undefined as unknown as Promise<Error | undefined>,
    async next(): Promise<Response> {
      while (c.messages.length <= read) {
        if (c.closedWith !== 'open') throw c.closedWith ?? new Error('channel closed');
        await new Promise<void>((r) => (wake = r));
      }
      return c.messages[read++]!;
    },
    /** Gather pieces until one is complete; return the whole body and the last meta. */
    async whole(): Promise<Response & { pieces: number }> {
      const parts: Uint8Array[] = [];
      for (;;) {
        const m = await c.next();
        parts.push(m.data);
        if (m.meta?.complete !== false) return { data: Buffer.concat(parts), meta: m.meta, pieces: parts.length };
      }
    },
  };
  c.closedWith = 'open';
  c.closed = new Promise((resolve) =>
    ch.start({
      data: (data, meta) => {
        c.messages.push({ data, meta });
        wake?.();
      },
      end: () => (c.ended = true),
      drain: () => {},
      closed: (err) => {
        c.closedWith = err;
        resolve(err);
        wake?.();
      },
    }),
  );
  return c;
}

const send = (ch: TransportChannel, body: Uint8Array, fields: Record<string, unknown> = {}, final = false): Promise<Error | undefined> =>
  new Promise((r) => ch.send(body, { fields, final }, r));

async function open(scope: NetworkScope, kind: 'http' | 'https' | 'https2', port: number, init: { address?: string; hostName?: string; options?: Record<string, unknown> } = {}) {
  const driver = kind === 'http' ? httpDriver : kind === 'https' ? httpsDriver : https2Driver;
  const target = await checked(scope, { protocol: driver.protocol, address: init.address ?? '127.0.0.1', port, ...(init.hostName ? { hostName: init.hostName } : {}) });
  const attempt = connectAttempt(scope, target, { security: kind === 'http' ? SecurityParameters.disabled() : clientSecurity, options: init.options ?? {} });
  const ch = await scope.network.connect(driver, attempt);
  cleanups.push(() => ch.abort());
  return ch;
}

describe('http drivers: capabilities', () => {
  it('declare ids, stacks and truthful capabilities before connecting', () => {
    expect(httpDriver).toMatchObject({ id: 'http', protocol: 'http', schemes: ['http'], stack: ['http/1.1', 'tcp'], defaultPort: 80, security: 'none', framing: 'message' });
    expect(httpsDriver).toMatchObject({ id: 'https', protocol: 'https', schemes: ['https'], defaultPort: 443, security: 'tls' });
    expect(https2Driver).toMatchObject({ id: 'https2', protocol: 'https', schemes: ['https'], stack: ['h2', 'tls', 'tcp'], defaultPort: 443 });
    expect(httpDriver.capabilities).toMatchObject({ reliable: true, ordered: true, messageBoundaries: true, multistream: false, encrypted: false });
    expect(httpsDriver.capabilities).toMatchObject({ multistream: false, encrypted: true });
    expect(https2Driver.capabilities).toMatchObject({ multistream: true, encrypted: true });
  });
});

describe('http over HTTP/1.1', () => {
  it('a send is a request and the response arrives as one message with status and headers, in order', async () => {
    const scope = scopeFor();
    const server = await serve('http');
    const ch = await open(scope, 'http', server.port);
    expect(ch.info).toMatchObject({ httpVersion: '1.1' });
    const c = collect(ch);
    expect(await send(ch, new Uint8Array(), { path: '/a?b=1' })).toBeUndefined();
    await send(ch, enc('posted'), { path: '/p', headers: { 'content-type': 'text/plain' } });
    await send(ch, enc('put body'), { method: 'PUT', path: '/q' });
    const r1 = await c.next();
    expect(r1.meta).toMatchObject({ complete: true, fields: { status: 200, httpVersion: '1.1', redirected: false } });
    expect((r1.meta!.fields!['headers'] as Record<string, string>)['x-url']).toBe('/a?b=1');
    expect((r1.meta!.fields!['headers'] as Record<string, string>)['x-method']).toBe('GET');
    const r2 = await c.next();
    expect(text(r2.data)).toBe('posted');
    expect((r2.meta!.fields!['headers'] as Record<string, string>)['x-method']).toBe('POST');
    expect(text((await c.next()).data)).toBe('put body');
    expect(server.requests.map((r) => r.host)).toEqual([`127.0.0.1:${server.port}`, `127.0.0.1:${server.port}`, `127.0.0.1:${server.port}`]);
    expect(server.connections).toBe(1);
    await ch.close();
    expect(await c.closed).toBeUndefined();
  });

  it('a request naming another Host is refused with ERR_TAPS_INVALID_MESSAGE_PROPERTIES and nothing is sent', async () => {
    const scope = scopeFor();
    const server = await serve('http');
    const ch = await open(scope, 'http', server.port, { hostName: 'localhost' });
    const c = collect(ch);
    for (const headers of [{ Host: 'evil.test' }, { host: `localhost:${server.port + 1}` }, { ':authority': 'evil.test' }, { connection: 'upgrade' }, { 'x-bad': 'a\r\nb' }]) {
      expect(await send(ch, new Uint8Array(), { headers })).toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    }
    expect(await send(ch, new Uint8Array(), { method: 'CONNECT' })).toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    expect(await send(ch, new Uint8Array(), { path: 'http://evil.test/' })).toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    expect(server.requests).toHaveLength(0);
    // The checked name itself is fine (case-insensitive).
    await send(ch, new Uint8Array(), { headers: { HOST: `LOCALHOST:${server.port}` } });
    await c.next();
    expect(server.requests.map((r) => r.host)).toEqual([`localhost:${server.port}`]);
  });

  it('openStream() on HTTP/1.1 opens a parallel connection to the same checked target', async () => {
    const scope = scopeFor();
    const server = await serve('http');
    const ch = await open(scope, 'http', server.port);
    const other = await ch.openStream!();
    cleanups.push(() => other.abort());
    const [a, b] = [collect(ch), collect(other)];
    await send(ch, enc('1'));
    await send(other, enc('2'));
    expect(text((await a.next()).data)).toBe('1');
    expect(text((await b.next()).data)).toBe('2');
    expect(server.connections).toBe(2);
    expect(other.remote.port).toBe(server.port);
  });

  it('streams bodies both ways: endOfMessage:false uploads in pieces; stream:true delivers pieces with complete:false', async () => {
    const scope = scopeFor();
    const server = await serve('http', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      req.on('data', (d: Buffer) => res.write(d.toString().toUpperCase()));
      req.on('end', () => res.end('!'));
    });
    const ch = await open(scope, 'http', server.port);
    const c = collect(ch);
    await send(ch, enc('abc'), { method: 'POST', path: '/up', stream: true, endOfMessage: false });
    const first = await c.next();
    expect(first.meta).toMatchObject({ complete: false, fields: { status: 200 } });
    await send(ch, enc('def'), { endOfMessage: false });
    await send(ch, enc('ghi'));
    const rest = await c.whole();
    expect(text(rest.data)).toBe('ABCDEFGHI!');
    expect(rest.meta?.complete).toBe(true);
    expect(server.requests[0]!.body).toBe('abcdefghi');
  });

  it('a response larger than maxBufferedBody arrives in pieces', async () => {
    const scope = scopeFor();
    const big = Buffer.alloc(300_000, 7);
    const server = await serve('http', (_req, res) => res.end(big));
    const ch = await open(scope, 'http', server.port, { options: { maxBufferedBody: 64 * 1024 } });
    const c = collect(ch);
    await send(ch, new Uint8Array());
    const r = await c.whole();
    expect(r.data.byteLength).toBe(big.byteLength);
    expect(r.pieces).toBeGreaterThan(1);
  });

  it('a final request ends the channel after its response: end(), then closed()', async () => {
    const scope = scopeFor();
    const server = await serve('http');
    const ch = await open(scope, 'http', server.port);
    const c = collect(ch);
    await send(ch, enc('bye'), {}, true);
    expect(await send(ch, enc('late'))).toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    expect(text((await c.next()).data)).toBe('bye');
    expect(await c.closed).toBeUndefined();
    expect(c.ended).toBe(true);
  });

  it('after the server closes an idle connection, the next request reconnects after a new policy decision', async () => {
    const requests: PolicyRequest[] = [];
    const policy: NetworkPolicy = { decide: (r) => (requests.push(r), { allow: true, rule: 'all' }) };
    const scope = scopeFor(policy);
    const server = await serve('http', (req, res) => {
      res.setHeader('connection', 'close');
      echo(req, res);
    });
    const ch = await open(scope, 'http', server.port);
    const c = collect(ch);
    await send(ch, enc('1'));
    expect(text((await c.next()).data)).toBe('1');
    await send(ch, enc('2'));
    expect(text((await c.next()).data)).toBe('2');
    expect(server.connections).toBe(2);
    expect(requests.filter((r) => r.use === 'connect')).toHaveLength(2);
  });
});

describe('https and https2', () => {
  it('https: reaches an allowed endpoint by name (fake resolver → 127.0.0.1 and ::1) with SNI and Host from the checked name', async () => {
    const resolver = fakeResolver({ 'api.test': { v4: ['127.0.0.1'], v6: ['::1'] } });
    const policy: NetworkPolicy = {
      decide: (r) => (r.host === undefined || r.host === 'api.test' ? { allow: true, rule: 'api' } : { allow: false, code: 'no-match', reason: 'no', rule: null }),
    };
    const scope = scopeFor(policy, resolver);
    for (const family of [6, 4] as const) {
      const address = family === 6 ? '::1' : '127.0.0.1';
      const server = await serve('https', echo, address);
      const [answer] = await scope.guard.lookup('api.test', family, 'https', AbortSignal.timeout(2000));
      const target = await scope.guard.authorize({ use: 'connect', protocol: 'https', address: answer!.address, port: server.port, hostName: 'api.test' });
      const attempt = { ...connectAttempt(scope, target, { security: clientSecurity }), remote: RemoteEndpoint.from(`https://api.test:${server.port}/base`) };
      const ch = await scope.network.connect(httpsDriver, attempt);
      const c = collect(ch);
      expect(ch.info).toMatchObject({ httpVersion: '1.1', alpn: 'http/1.1', origin: `https://api.test:${server.port}` });
      await send(ch, enc('hi'));
      const r = await c.next();
      expect(text(r.data)).toBe('hi');
      expect(server.requests[0]).toMatchObject({ host: `api.test:${server.port}`, url: '/base', servername: 'api.test' });
      ch.abort();
      expect(await c.closed).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
    }
  });

  it('https2: HTTP/2 over TLS; openStream() is another stream of the same connection; requests multiplex', async () => {
    const scope = scopeFor();
    const server = await serve('h2', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      // The first request is answered last.
      req.on('end', () => setTimeout(() => res.end(Buffer.concat(chunks)), req.url === '/slow' ? 30 : 0));
    });
    const ch = await open(scope, 'https2', server.port, { hostName: 'localhost' });
    expect(ch.info).toMatchObject({ httpVersion: '2', alpn: 'h2' });
    const other = await ch.openStream!();
    const [a, b] = [collect(ch), collect(other)];
    await send(ch, enc('slow'), { path: '/slow' });
    await send(ch, enc('fast'), { path: '/fast' });
    await send(other, enc('other'));
    // Responses come back in request order on each channel, even when the server answers out of order.
    expect(text((await a.next()).data)).toBe('slow');
    expect(text((await a.next()).data)).toBe('fast');
    expect(text((await b.next()).data)).toBe('other');
    expect(server.connections).toBe(1);
    expect(server.requests.every((r) => r.httpVersion === '2.0')).toBe(true);
    await other.close();
    // The first channel still works after its sibling closed.
    await send(ch, enc('again'));
    expect(text((await a.next()).data)).toBe('again');
    await ch.close();
    expect(await a.closed).toBeUndefined();
  });

  it('https2 fails establishment when the server does not negotiate h2; https never speaks h2', async () => {
    const scope = scopeFor();
    const h1 = await serve('https');
    const err = await open(scope, 'https2', h1.port, { hostName: 'localhost' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: expect.stringMatching(/^ERR_TAPS_(ESTABLISHMENT|SECURITY)_FAILED$/) });
    const both = await serve('h2+h1');
    const ch = await open(scope, 'https', both.port, { hostName: 'localhost' });
    expect(ch.info['httpVersion']).toBe('1.1');
  });
});

describe('http bad peers', () => {
  async function rawServer(onSocket: (s: Socket) => void) {
    const sockets = new Set<Socket>();
    const server = createNetServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
      onSocket(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
    return (server.address() as { port: number }).port;
  }

  it('a server that stalls its body: bodyTimeout ends the channel with ERR_TAPS_TIMEOUT', async () => {
    const scope = scopeFor();
    const server = await serve('http', (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const ch = await open(scope, 'http', server.port, { options: { bodyTimeout: 100 } });
    const c = collect(ch);
    await send(ch, new Uint8Array());
    expect(await c.closed).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    expect(c.messages).toHaveLength(0);
  });

  it('a malformed response is ERR_TAPS_PROTOCOL_FAILED; a reset mid-body is ERR_TAPS_CONNECTION_RESET', async () => {
    const scope = scopeFor();
    const garbage = await rawServer((s) => s.once('data', () => s.write('HTTP/1.1 abc nonsense\r\n\r\n')));
    const ch = await open(scope, 'http', garbage);
    const c = collect(ch);
    await send(ch, new Uint8Array());
    expect(await c.closed).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED' });

    const resetter = await rawServer((s) => s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc');
      setImmediate(() => s.resetAndDestroy());
    }));
    const ch2 = await open(scope, 'http', resetter);
    const c2 = collect(ch2);
    await send(ch2, new Uint8Array());
    expect(await c2.closed).toMatchObject({ code: 'ERR_TAPS_CONNECTION_RESET' });
  });

  it('abort before connect, and abort during connect to a silent TLS server, reject with ERR_TAPS_ABORTED and release the socket', async () => {
    const scope = scopeFor();
    let closed = 0;
    const port = await rawServer((s) => {
      s.resume();
      s.on('close', () => closed++);
    });
    const target = await checked(scope, { protocol: 'https', address: '127.0.0.1', port });
    const ac = new AbortController();
    ac.abort();
    await expect(scope.network.connect(httpsDriver, connectAttempt(scope, target, { signal: ac.signal, security: clientSecurity }))).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    const ac2 = new AbortController();
    const p = scope.network.connect(httpsDriver, connectAttempt(scope, target, { signal: ac2.signal, security: clientSecurity }));
    setTimeout(() => ac2.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    while (closed === 0) await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(1);
  });
});
