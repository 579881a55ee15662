/**
 * HTTP redirects under the tenant's policy, over real loopback sockets: each
 * hop is looked up and authorized again (use 'redirect'); a hop the policy
 * forbids fails with PolicyDeniedError and its listener is never reached.
 */
import https from 'node:https';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { ChannelReceiveMeta, TransportChannel } from '../../src/driver.js';
import { PolicyDeniedError } from '../../src/errors.js';
import { createScope } from '../../src/policy/index.js';
import type { NetworkPolicy, PolicyRequest } from '../../src/policy/types.js';
import { SecurityParameters } from '../../src/security.js';
import { httpsDriver } from '../../transports/http/index.js';
import { testCertificate } from '../helpers/certs.js';
import { connectAttempt } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', names: ['api.test', 'cdn.test', 'evil.test', '127.0.0.1'] });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Listener {
  port: number;
  connections: number;
  requests: { method: string; url: string; host: string; body: string; authorization?: string }[];
}

/** An https listener; `route` answers each request (default: 200 echo of method, url and body). */
async function listener(route?: (url: string, method: string) => { status: number; location?: string } | undefined): Promise<Listener> {
  const l: Listener = { port: 0, connections: 0, requests: [] };
  const sockets = new Set<Socket>();
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      l.requests.push({ method: req.method!, url: req.url!, host: req.headers.host!, body, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      const r = route?.(req.url!, req.method!);
      if (r) {
        res.writeHead(r.status, r.location ? { location: r.location } : {});
        res.end('redirect body');
      } else {
        res.end(`${req.method} ${req.url} ${body}`);
      }
    });
  });
  server.on('secureConnection', (s: Socket) => {
    l.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  l.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return l;
}

/** Allowed: names api.test and cdn.test, only the given ports, only the given protocols; every request recorded. */
function allowList(ports: number[], protocols: string[] = ['https']): NetworkPolicy & { requests: PolicyRequest[] } {
  const requests: PolicyRequest[] = [];
  return {
    requests,
    decide(req) {
      requests.push(req);
      const ok =
        protocols.includes(req.protocol) &&
        (req.host === undefined || req.host === 'api.test' || req.host === 'cdn.test') &&
        (req.port === undefined || ports.includes(req.port)) &&
        (req.address === undefined || req.address === '127.0.0.1');
      return ok ? { allow: true, rule: 'allow-list' } : { allow: false, code: 'no-match', reason: `${req.use} ${req.protocol}://${req.host ?? req.address}:${req.port ?? ''} not allowed`, rule: null };
    },
  };
}

const resolver = () => fakeResolver({ 'api.test': { v4: ['127.0.0.1'] }, 'cdn.test': { v4: ['127.0.0.1'] }, 'evil.test': { v4: ['127.0.0.1'] } });

/** Connect to api.test:port through the guard (lookup → authorize → connect), with redirect options. */
async function connectApi(policy: NetworkPolicy, port: number, options: Record<string, unknown> = {}) {
  const scope = createScope({ tenant: 't', policy, resolver: resolver() });
  const [a] = await scope.guard.lookup('api.test', 4, 'https', AbortSignal.timeout(2000));
  const target = await scope.guard.authorize({ use: 'connect', protocol: 'https', address: a!.address, port, hostName: 'api.test' });
  const ch = await scope.network.connect(httpsDriver, connectAttempt(scope, target, { security: new SecurityParameters({ ca: cert.cert }), options }));
  cleanups.push(() => ch.abort());
  return ch;
}

function responses(ch: TransportChannel) {
  const got: { data: Uint8Array; meta: ChannelReceiveMeta | undefined }[] = [];
  let wake: (() => void) | undefined;
  let error: Error | undefined | null = null;
  ch.start({
    data: (data, meta) => (got.push({ data, meta }), wake?.()),
    end() {},
    drain() {},
    closed: (e) => ((error = e), wake?.()),
  });
  return {
    async next() {
      while (got.length === 0 && error === null) await new Promise<void>((r) => (wake = r));
      if (got.length === 0) throw error ?? new Error('closed');
      return got.shift()!;
    },
    async closed() {
      while (error === null) await new Promise<void>((r) => (wake = r));
      return error;
    },
  };
}

const send = (ch: TransportChannel, body: Uint8Array, fields: Record<string, unknown>) => new Promise<Error | undefined>((r) => ch.send(body, { fields }, r));
const fieldsOf = (m: { meta: ChannelReceiveMeta | undefined }) => m.meta!.fields!;

describe('redirects under policy', () => {
  it('by default (manual) a 3xx is delivered as the response and nothing is followed', async () => {
    const cdn = await listener();
    const api = await listener(() => ({ status: 302, location: `https://cdn.test:${cdn.port}/x` }));
    const ch = await connectApi(allowList([api.port, cdn.port]), api.port);
    const r = responses(ch);
    await send(ch, new Uint8Array(), { path: '/start' });
    const m = await r.next();
    expect(fieldsOf(m)).toMatchObject({ status: 302, redirected: false, headers: { location: `https://cdn.test:${cdn.port}/x` } });
    expect(cdn.connections).toBe(0);
  });

  it("follows an allowed cross-origin redirect: the hop is looked up and authorized with use 'redirect', Host is the new name, credentials are dropped", async () => {
    const cdn = await listener();
    const api = await listener((url) => (url === '/start' ? { status: 302, location: `https://cdn.test:${cdn.port}/file?v=1` } : undefined));
    const policy = allowList([api.port, cdn.port]);
    const ch = await connectApi(policy, api.port);
    const r = responses(ch);
    await send(ch, new Uint8Array(), { path: '/start', redirect: 'follow', headers: { authorization: 'Bearer secret', accept: 'text/plain' } });
    const m = await r.next();
    expect(text(m.data)).toBe('GET /file?v=1 ');
    expect(fieldsOf(m)).toMatchObject({ status: 200, redirected: true, url: `https://cdn.test:${cdn.port}/file?v=1` });
    expect(api.requests[0]!.authorization).toBe('Bearer secret');
    expect(cdn.requests[0]).toMatchObject({ host: `cdn.test:${cdn.port}` });
    expect(cdn.requests[0]!.authorization).toBeUndefined();
    const hop = policy.requests.filter((q) => q.host === 'cdn.test');
    expect(hop.map((q) => q.use)).toEqual(['lookup', 'lookup', 'redirect']);
    expect(hop[2]).toMatchObject({ protocol: 'https', address: '127.0.0.1', port: cdn.port, url: `https://cdn.test:${cdn.port}/file?v=1` });
  });

  it('a redirect to a forbidden host fails with PolicyDeniedError and the forbidden listener is never reached', async () => {
    const evil = await listener();
    const api = await listener((url) =>
      url === '/by-name' ? { status: 301, location: `https://evil.test:${evil.port}/steal` } : { status: 307, location: `https://cdn.test:${evil.port}/wrong-port` },
    );
    for (const path of ['/by-name', '/by-port']) {
      const policy = allowList([api.port]);
      const ch = await connectApi(policy, api.port, { redirect: 'follow' });
      const r = responses(ch);
      await send(ch, enc('payload'), { path });
      const err = await r.closed();
      expect(err).toBeInstanceOf(PolicyDeniedError);
      expect(err).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    }
    expect(evil.connections).toBe(0);
    expect(evil.requests).toHaveLength(0);
  });

  it('redirects to non-network schemes (file:, data:, javascript:) are refused as bad-scheme', async () => {
    const targets = ['file:///etc/passwd', 'data:text/plain,hi', 'javascript:alert(1)', 'ftp://cdn.test/x'];
    const api = await listener((url) => ({ status: 302, location: targets[Number(url.slice(1))]! }));
    for (let i = 0; i < targets.length; i++) {
      const ch = await connectApi(allowList([api.port]), api.port);
      const r = responses(ch);
      await send(ch, new Uint8Array(), { path: `/${i}`, redirect: 'follow' });
      const err = await r.closed();
      expect(err).toBeInstanceOf(PolicyDeniedError);
      expect((err as PolicyDeniedError).decision).toMatchObject({ allow: false, code: 'bad-scheme' });
    }
  });

  it('a downgrade to http: is decided as protocol http, and denied where the tenant may not use it', async () => {
    const api = await listener(() => ({ status: 302, location: `http://api.test:${0}/plain` }));
    const policy = allowList([api.port, 0, 80], ['https']);
    const ch = await connectApi(policy, api.port, { redirect: 'follow' });
    const r = responses(ch);
    await send(ch, new Uint8Array(), { path: '/' });
    expect(await r.closed()).toBeInstanceOf(PolicyDeniedError);
    expect(policy.requests.some((q) => q.protocol === 'http' && q.use === 'lookup')).toBe(true);
  });

  it("redirect: 'error' fails on a 3xx; too many hops fail with ERR_TAPS_PROTOCOL_FAILED", async () => {
    const api = await listener((url) => ({ status: 302, location: url === '/loop' ? '/loop' : '/elsewhere' }));
    const ch = await connectApi(allowList([api.port]), api.port);
    const r = responses(ch);
    await send(ch, new Uint8Array(), { path: '/x', redirect: 'error' });
    expect(await r.closed()).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED' });

    const before = api.requests.length;
    const ch2 = await connectApi(allowList([api.port]), api.port, { redirect: 'follow', maxRedirections: 3 });
    const r2 = responses(ch2);
    await send(ch2, new Uint8Array(), { path: '/loop' });
    expect(await r2.closed()).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED' });
    expect(api.requests.length - before).toBe(4);
  });

  it('303 turns a POST into a body-less GET; 307 keeps method and body; a streamed body cannot be replayed', async () => {
    const api = await listener((url) => {
      if (url === '/see-other') return { status: 303, location: '/done' };
      if (url === '/temporary') return { status: 307, location: '/done' };
      return undefined;
    });
    const ch = await connectApi(allowList([api.port]), api.port, { redirect: 'follow' });
    const r = responses(ch);
    await send(ch, enc('form'), { method: 'POST', path: '/see-other' });
    expect(text((await r.next()).data)).toBe('GET /done ');
    await send(ch, enc('again'), { method: 'POST', path: '/temporary' });
    expect(text((await r.next()).data)).toBe('POST /done again');
    expect(api.connections).toBe(1);

    await send(ch, enc('part'), { method: 'PUT', path: '/temporary', endOfMessage: false });
    await send(ch, enc('-rest'), {});
    expect(await r.closed()).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED' });
  });
});
