/**
 * The library as an HTTP and WebSocket client of nginx (Debian's nginx-light, run in the foreground from
 * a configuration written to a temporary directory, on a loopback port): HTTP/1.1 and HTTP/2 over TLS,
 * with the protocol and ALPN read back from nginx's access log; a 302 followed with a redirect grant and
 * refused without one (the target never requested); two requests on one connection (nginx's connection
 * serial and request count); a WebSocket that nginx proxies to a Python `websockets` echo server, which
 * prints the type of every frame it gets.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';
import { startNginx, type NginxSite } from './helpers/nginx.js';
import { peer } from './helpers/peers.js';
import { freePort, startPeer, stopAll, tempDir, type Peer } from './helpers/process.js';

const NGINX = peer('nginx');
const PYTHON = peer('python3', ['-c', 'import websockets']);
const ready = NGINX !== undefined && PYTHON !== undefined;

const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const tmp = tempDir('nginx');
const host = new Host();
let port = 0;
let echo: Peer;

/** A websockets echo server: prints "text <message>" or "binary <hex>" for every message, then echoes it. */
const PY_ECHO = `
import asyncio, sys, websockets
async def echo(ws, path=None):
    async for m in ws:
        print(("text " + m) if isinstance(m, str) else ("binary " + m.hex()), flush=True)
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        print("ready", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
`;

/** What nginx serves: a text reply, a redirect to it, and a WebSocket proxied to the Python echo server. */
function site(dir: string, listen: number, wsPort: number): NginxSite {
  return {
    dir,
    port: listen,
    http: `log_format taps '$connection $connection_requests "$request" $status $server_protocol alpn=$ssl_alpn_protocol sni=$ssl_server_name';
  access_log ${dir}/access.log taps;`,
    server: `    keepalive_requests 100;
    location = /hello { default_type text/plain; return 200 "hello from nginx over $server_protocol"; }
    location = /go { return 302 https://localhost:${listen}/hello; }
    location = /ws {
      proxy_pass http://127.0.0.1:${wsPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
    }`,
  };
}

beforeAll(async () => {
  if (!ready) return;
  echo = await startPeer(PYTHON!, ['-c', PY_ECHO], { ready: /ready \d+/ });
  const wsPort = Number(/ready (\d+)/.exec(echo.output())![1]);
  port = await freePort();
  writeFileSync(tmp.path('cert.pem'), cert.cert);
  writeFileSync(tmp.path('key.pem'), cert.key);
  await startNginx(NGINX!, site(tmp.dir, port, wsPort));
});
afterAll(async () => {
  await stopAll();
  host.close();
  tmp.remove();
});

/** nginx's access log lines (each written when its request ends: wait for `n`). */
async function accessLog(n: number): Promise<string[]> {
  for (let i = 0; i < 100; i++) {
    const lines = readFileSync(tmp.path('access.log'), 'utf8').split('\n').filter(Boolean);
    if (lines.length >= n) return lines;
    await new Promise((r) => setTimeout(r, 50));
  }
  return readFileSync(tmp.path('access.log'), 'utf8').split('\n').filter(Boolean);
}

async function connect(tenant: string, url: string, properties: TransportProperties, follow = false): Promise<Connection> {
  return new Preconnection({
    scope: await host.tenant(tenant),
    remote: url,
    properties,
    security: new SecurityParameters({ ca: cert.caCert! }),
    ...(follow ? { driverOptions: { https: { redirect: 'follow' }, https2: { redirect: 'follow' } } } : {}),
  }).initiate({ signal: AbortSignal.timeout(10_000) });
}

async function get(conn: Connection, path: string): Promise<{ status: unknown; text: string; fields: Readonly<Record<string, unknown>> | undefined }> {
  await conn.send('', { fields: { method: 'GET', path } });
  const m = await conn.receive({ signal: AbortSignal.timeout(5000) });
  return { status: m.context.fields?.['status'], text: m.text(), fields: m.context.fields };
}

describe.skipIf(!ready)('nginx · library as client', () => {
  it('HTTP/1.1 over TLS: nginx logs HTTP/1.1 with ALPN http/1.1 and SNI localhost', async () => {
    host.setPolicy('h1', `allow https://@loopback:${port}`);
    const conn = await connect('h1', `https://localhost:${port}/hello`, TransportProperties.reliableMessage().prohibit('multistreaming'));
    try {
      expect(conn.info).toMatchObject({ alpn: 'http/1.1' });
      const r = await get(conn, '/hello');
      expect(r).toMatchObject({ status: 200, text: 'hello from nginx over HTTP/1.1' });
    } finally {
      await conn.close();
    }
    expect((await accessLog(1)).at(-1)).toMatch(/"GET \/hello HTTP\/1\.1" 200 HTTP\/1\.1 alpn=http\/1\.1 sni=localhost$/);
  });

  it('HTTP/2 over TLS: ALPN h2 in nginx log, and two requests share one connection', async () => {
    host.setPolicy('h2', `allow https://@loopback:${port}`);
    const before = (await accessLog(0)).length;
    const conn = await connect('h2', `https://localhost:${port}/hello`, TransportProperties.reliableMessage().require('multistreaming'));
    try {
      expect(conn.info).toMatchObject({ alpn: 'h2' });
      expect((await get(conn, '/hello')).text).toBe('hello from nginx over HTTP/2.0');
      expect((await get(conn, '/hello')).text).toBe('hello from nginx over HTTP/2.0');
    } finally {
      await conn.close();
    }
    const mine = (await accessLog(before + 2)).slice(before);
    expect(mine).toHaveLength(2);
    for (const l of mine) expect(l).toMatch(/"GET \/hello HTTP\/2\.0" 200 HTTP\/2\.0 alpn=h2 sni=localhost$/);
    // Same nginx connection serial, request 1 then 2.
    const [a, b] = mine.map((l) => l.split(' '));
    expect(a![0]).toBe(b![0]);
    expect([a![1], b![1]]).toEqual(['1', '2']);
  });

  it('HTTP/1.1 keep-alive: a second request reuses the connection (nginx counts request 2 on it)', async () => {
    host.setPolicy('reuse', `allow https://@loopback:${port}`);
    const before = (await accessLog(0)).length;
    const conn = await connect('reuse', `https://localhost:${port}/hello`, TransportProperties.reliableMessage().prohibit('multistreaming'));
    try {
      await get(conn, '/hello');
      await get(conn, '/hello');
    } finally {
      await conn.close();
    }
    const [a, b] = (await accessLog(before + 2)).slice(before).map((l) => l.split(' '));
    expect(a![0]).toBe(b![0]);
    expect([a![1], b![1]]).toEqual(['1', '2']);
  });

  it('a 302 with a redirect grant is followed: the reply is the target, marked redirected', async () => {
    host.setPolicy('follow', `allow connect,redirect:https://@loopback:${port}`);
    const before = (await accessLog(0)).length;
    const conn = await connect('follow', `https://localhost:${port}/go`, TransportProperties.reliableMessage().prohibit('multistreaming'), true);
    try {
      const r = await get(conn, '/go');
      expect(r).toMatchObject({ status: 200, text: 'hello from nginx over HTTP/1.1' });
      expect(r.fields).toMatchObject({ redirected: true });
    } finally {
      await conn.close();
    }
    const mine = (await accessLog(before + 2)).slice(before);
    expect(mine.map((l) => /"GET (\S+)/.exec(l)![1])).toEqual(['/go', '/hello']);
    expect(mine[0]).toMatch(/ 302 /);
  });

  it('a 302 without a redirect grant fails with ERR_TAPS_POLICY_PROHIBITED; the target is never requested', async () => {
    host.setPolicy('nofollow', `allow https://@loopback:${port}`);
    const before = (await accessLog(0)).length;
    const conn = await connect('nofollow', `https://localhost:${port}/go`, TransportProperties.reliableMessage().prohibit('multistreaming'), true);
    try {
      const failed = new Promise<Error>((resolve) => conn.once('connectionError', resolve));
      await conn.send('', { fields: { method: 'GET', path: '/go' } }).catch(() => {});
      expect(await failed).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    } finally {
      conn.abort();
    }
    const mine = (await accessLog(before + 1)).slice(before);
    expect(mine.map((l) => /"GET (\S+)/.exec(l)![1])).toEqual(['/go']);
  });

  it('a WebSocket through nginx to Python websockets: a string arrives as a text frame, bytes as binary, both echoed', async () => {
    host.setPolicy('ws', `allow connect:wss://@loopback:${port}`);
    const conn = await connect('ws', `wss://localhost:${port}/ws`, TransportProperties.reliableMessage());
    try {
      expect(conn.stack[0]).toBe('websocket');
      await conn.send('hello through nginx');
      const text = await conn.receive({ signal: AbortSignal.timeout(5000) });
      await conn.send(new Uint8Array([1, 2, 3]));
      const bin = await conn.receive({ signal: AbortSignal.timeout(5000) });
      expect(text.text()).toBe('hello through nginx');
      expect(text.context.fields?.['binary']).toBe(false);
      expect([...bin.data]).toEqual([1, 2, 3]);
      expect(bin.context.fields?.['binary']).toBe(true);
    } finally {
      await conn.close();
    }
    await echo.waitFor(/binary 010203/);
    expect(echo.output()).toMatch(/^text hello through nginx$/m);
    expect((await accessLog(1)).some((l) => /"GET \/ws HTTP\/1\.1" 101 /.test(l))).toBe(true);
  });
});
