/**
 * TLS under HTTP/2 counts on the wire. Node's HTTP/2 reads and writes the TLS
 * socket below JavaScript, so these stacks are settled on the session's
 * events (transports/kit/h2-account.ts); measured here at a counting TCP
 * relay between the two ends, each the library, each of a tenant with
 * budgets. WebTransport over HTTP/2 charges its whole wire both ways (records,
 * HTTP/2 frames, capsules): at close the listening tenant's counts are what
 * the relay carried to and from the client, and so are the client tenant's.
 * A received budget exceeded mid-session ends the listener's session with
 * `ERR_TAPS_QUOTA_EXCEEDED`; a handshake over the received budget ends the
 * peer before any session, one over the sent budget gets no 200.
 * https2 charges its whole wire too (TLS records, HTTP/2 frames, HPACK), as
 * the exchange goes: while the session lives and at close, sent is what the
 * server's TCP socket read and received what it wrote.
 */
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { https2Driver } from '../../transports/http/index.js';
import { testCertificate } from '../helpers/certs.js';
import { countingRelay, type CountingRelay } from '../helpers/counting-relay.js';
import { quotaTenants } from '../helpers/tenants.js';
import { headSize } from '../../transports/kit/request-path.js';

const cert = testCertificate({ kind: 'ec', days: 10 });
/** Each test writes its tenant's whole policy. */
const { host, cleanups, tenant } = quotaTenants('h2-oh', '');

const wtCommon = { drivers: [webtransportH2Driver], framers: [lengthPrefixFramer()], properties: TransportProperties.reliableMessage() };

/** A WebTransport-over-HTTP/2 listener of a tenant with `limits` that echoes every message, behind a counting relay. */
async function wtListener(limits: string): Promise<{ id: string; relay: CountingRelay; got: Connection[]; errors: unknown[] }> {
  const { id, scope } = await tenant(`allow bind:webtransport://@loopback:*\nallow accept:webtransport://@loopback:*\n${limits}`);
  const listener = await new Preconnection({
    ...wtCommon, scope, local: 'webtransport://127.0.0.1:0', security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  }).listen();
  cleanups.push(() => listener.stop());
  const got: Connection[] = [];
  const errors: unknown[] = [];
  listener.on('connectionReceived', (c: Connection) => {
    got.push(c);
    c.on('connectionError', (e: unknown) => errors.push(e));
    void (async () => {
      try {
        for await (const m of c) await c.send(m.data);
      } catch {
        /* gone */
      }
    })();
  });
  const relay = await countingRelay(listener.port);
  cleanups.push(() => relay.close());
  return { id, relay, got, errors };
}

const dialWt = (scope: TenantScope, port: number): Promise<Connection> => new Preconnection({
  ...wtCommon, scope, remote: `webtransport://127.0.0.1:${port}/`, security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
}).initiate({ timeout: 5000 });

/** Wait (a bounded number of turns) until `ready()`: a socket's last 'close' may follow the relay's by a turn. */
async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ready(); i++) await new Promise((r) => setTimeout(r, 10));
}

const CLIENT = 'allow webtransport://@loopback:*';

describe('WebTransport over HTTP/2 counts its whole wire', () => {
  it('listener and client: at close each tenant was charged exactly what the relay carried, each way', async () => {
    const server = await wtListener('limit sent 1MiB per 60s\nlimit received 1MiB per 60s');
    const client = await tenant(`${CLIENT}\nlimit sent 1MiB per 60s\nlimit received 1MiB per 60s`);
    const conn = await dialWt(client.scope, server.relay.port);
    for (const size of [1000, 20_000, 3]) {
      const echoed = conn.receive();
      await conn.send(new Uint8Array(size).fill(0x61));
      expect((await echoed).data.byteLength).toBe(size);
    }
    const s = host.usage(server.id);
    const c = host.usage(client.id);
    console.log(`webtransport-h2 (${process.version}) before close: listener sent ${s.sent}/received ${s.received}, client sent ${c.sent}/received ${c.received}; relay to server ${server.relay.toServer()}, to client ${server.relay.toClient()}`);
    // Mid-session nothing is charged twice: at most what the relay carried (what HTTP/2 wrote last is charged by its next event).
    expect(c.sent).toBeGreaterThan(21_003);
    expect(s.received).toBeLessThanOrEqual(server.relay.toServer());
    expect(c.received).toBeLessThanOrEqual(server.relay.toClient());
    await conn.close();
    await server.relay.idle();
    const r = server.relay;
    await until(() => host.usage(server.id).sent === r.fromServer() && host.usage(client.id).sent === r.fromClient());
    const sEnd = host.usage(server.id);
    const cEnd = host.usage(client.id);
    console.log(`webtransport-h2 (${process.version}) at close: listener sent ${sEnd.sent}/received ${sEnd.received}, client sent ${cEnd.sent}/received ${cEnd.received}; relay from client ${r.fromClient()} (passed on ${r.toServer()}), from server ${r.fromServer()} (passed on ${r.toClient()})`);
    expect(server.got).toHaveLength(1);
    expect(sEnd.sent).toBe(r.fromServer());
    expect(sEnd.received).toBe(r.toServer());
    expect(cEnd.sent).toBe(r.fromClient());
    expect(cEnd.received).toBe(r.toClient());
  });

  it('a received budget exceeded mid-session ends the listener\'s session with ERR_TAPS_QUOTA_EXCEEDED', async () => {
    const server = await wtListener('limit received 16KiB per 60s');
    const client = await tenant(CLIENT);
    const conn = await dialWt(client.scope, server.relay.port);
    conn.on('connectionError', () => {});
    const closed = new Promise<void>((r) => {
      conn.once('closed', () => r());
      conn.once('connectionError', () => r());
    });
    const echoed = conn.receive();
    await conn.send(new Uint8Array(100).fill(0x62));
    expect((await echoed).data.byteLength).toBe(100);
    conn.send(new Uint8Array(40_000).fill(0x63)).catch(() => {});
    await closed;
    await server.relay.idle();
    const used = host.usage(server.id).received;
    console.log(`webtransport-h2 listener over a 16 KiB received budget: ${used} counted, the relay carried ${server.relay.toServer()}; the listener's connection saw ${String((server.errors[0] as Error | undefined)?.message)}`);
    expect(server.got).toHaveLength(1);
    expect(server.errors[0]).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(used).toBeGreaterThan(16 * 1024);
    expect(used).toBeLessThanOrEqual(server.relay.toServer());
  });

  it.each([
    ['received', 'limit received 300B per 60s'],
    ['sent', 'limit sent 300B per 60s'],
  ])('a %s budget the handshake exceeds: no session is handed over', async (what, limit) => {
    const server = await wtListener(limit);
    const client = await tenant(CLIENT);
    const err = await dialWt(client.scope, server.relay.port).catch((e: unknown) => e);
    await server.relay.idle();
    // Only the limited direction is counted.
    const counted = (): boolean => (what === 'received' ? host.usage(server.id).received === server.relay.toServer() : host.usage(server.id).sent === server.relay.fromServer());
    await until(counted);
    console.log(`webtransport-h2 listener under ${limit}: the client saw ${(err as Error).message}; ${host.usage(server.id).sent} sent, ${host.usage(server.id).received} received`);
    expect(err).toBeInstanceOf(Error);
    expect(server.got).toHaveLength(0);
    if (what === 'received') expect(host.usage(server.id).received).toBe(server.relay.toServer());
    else expect(host.usage(server.id).sent).toBe(server.relay.fromServer());
  });
});

/** An HTTP/2 server that answers each request with `reply` bytes once its body is in; `wire*()`: what its TCP sockets read and wrote. */
async function h2Server(reply: number): Promise<{ port: number; wireIn: () => number; wireOut: () => number; cleartextIn: () => number; closed: () => boolean }> {
  const peers: { tls: TLSSocket; raw: Socket }[] = [];
  const server = http2.createSecureServer({ cert: cert.cert, key: cert.key, allowHTTP1: false });
  server.on('secureConnection', (tls: TLSSocket) => peers.push({ tls, raw: (tls as TLSSocket & { _parent: Socket })._parent }));
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(new Uint8Array(reply).fill(0x65));
    });
  });
  server.on('sessionError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => {
    for (const p of peers) p.raw.destroy();
    server.close(() => r());
  }));
  const written = (s: Socket): number => (s as Socket & { _bytesDispatched: number })._bytesDispatched;
  const sum = (f: (p: { tls: TLSSocket; raw: Socket }) => number) => (): number => peers.reduce((n, p) => n + f(p), 0);
  return {
    port: (server.address() as { port: number }).port,
    wireIn: sum((p) => p.raw.bytesRead),
    wireOut: sum((p) => written(p.raw)),
    cleartextIn: sum((p) => p.tls.bytesRead),
    closed: () => peers.every((p) => p.raw.destroyed),
  };
}

describe('https2 charges its whole wire as the exchange goes', () => {
  it('while the session lives and at close, sent is what the server\'s TCP socket read, received what it wrote', async () => {
    const server = await h2Server(5000);
    const { id, scope } = await tenant('allow https://@loopback:*\nlimit sent 1MiB per 60s\nlimit received 1MiB per 60s');
    const conn = await new Preconnection({
      scope, remote: `https://127.0.0.1:${server.port}/`, drivers: [https2Driver], properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ ca: cert.cert }),
    }).initiate({ timeout: 5000 });
    const exact = (): boolean => host.usage(id).sent === server.wireIn() && host.usage(id).received === server.wireOut();
    await conn.send(new Uint8Array(3000).fill(0x61), { fields: { method: 'POST' } });
    const reply = await conn.receive();
    expect(reply.data.byteLength).toBe(5000);
    // Every frame of the exchange counts while the session lives (settled on its writes, reads and events).
    await until(() => server.cleartextIn() > 3000 && exact());
    const request = 3000 + headSize('POST', '/', `127.0.0.1:${server.port}`, {}, 3000);
    console.log(`https2 (${process.version}) after a 3000-byte POST and a 5000-byte reply: charged ${host.usage(id).sent} sent / ${host.usage(id).received} received; the server's TCP socket read ${server.wireIn()} and wrote ${server.wireOut()} (the request as HTTP/1.1 text and body: ${request})`);
    expect(host.usage(id).sent).toBe(server.wireIn());
    expect(host.usage(id).received).toBe(server.wireOut());

    await conn.close();
    await until(() => server.closed() && host.usage(id).sent === server.wireIn());
    console.log(`https2 (${process.version}) at close: charged ${host.usage(id).sent} sent / ${host.usage(id).received} received; the server's TCP socket read ${server.wireIn()} and wrote ${server.wireOut()}`);
    expect(host.usage(id).sent).toBe(server.wireIn());
    // The server answers the client's close_notify with its own (24 bytes in TLS 1.3), which may reach the
    // client after its socket closed: on the wire, never read.
    expect([0, 24]).toContain(server.wireOut() - host.usage(id).received);
  });
});
