/**
 * Byte budgets against peers nobody on the project wrote: a tenant with
 * `limit sent` / `limit received` talks to `openssl s_server` (TLS) and to
 * nginx (HTTPS over HTTP/1.1 and HTTP/2) through a counting TCP relay, and
 * what the tenant was charged is compared with what the relay carried.
 *
 * - tls: exact both ways (the handshake, every record, close_notify), but
 *   for s_server's answering close_notify when it arrives after the client's
 *   socket closed (on the wire, never read).
 * - https (HTTP/1.1) and https2: exact both ways, the socket charging
 *   every byte it carries (TLS records, response heads, HTTP/2 frames).
 * - A received budget exceeded mid-transfer from s_server fails the
 *   connection with ERR_TAPS_QUOTA_EXCEEDED and the client sends nothing
 *   more; a sent budget exceeded against s_server refuses the send and
 *   nothing of it leaves. A 10 MB download from nginx under a 64 KiB
 *   received budget stops within one TCP read past the budget, with the same
 *   error; at most one record of HTTP/2 control frames follows it.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';
import { countingRelay, type CountingRelay } from '../helpers/counting-relay.js';
import { https2Driver, httpsDriver } from '../../transports/http/index.js';
import { startNginx } from './helpers/nginx.js';
import { peer } from './helpers/peers.js';
import { freePort, startPeer, stopAll, tempDir, type Peer } from './helpers/process.js';

const OPENSSL = peer('openssl');
const NGINX = peer('nginx');
const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const tmp = tempDir('byte-budget-peers');
const host = new Host();
const relays: CountingRelay[] = [];
const BIG = 200_000;
const HUGE = 10_000_000;
let nginxPort = 0;

writeFileSync(tmp.path('cert.pem'), cert.cert);
writeFileSync(tmp.path('key.pem'), cert.key);
writeFileSync(tmp.path('big.bin'), Buffer.alloc(BIG, 0x62));
writeFileSync(tmp.path('huge.bin'), Buffer.alloc(HUGE, 0x68));

beforeAll(async () => {
  if (NGINX === undefined) return;
  nginxPort = await freePort();
  await startNginx(NGINX, {
    dir: tmp.dir,
    port: nginxPort,
    server: [
      '    location = /big { default_type application/octet-stream; alias ' + tmp.path('big.bin') + '; }',
      '    location = /huge { default_type application/octet-stream; alias ' + tmp.path('huge.bin') + '; }',
    ].join('\n'),
  });
});
afterAll(async () => {
  for (const r of relays) await r.close();
  await stopAll();
  host.close();
  tmp.remove();
});

let tenants = 0;
async function tenant(rules: string): Promise<{ id: string; scope: Awaited<ReturnType<Host['tenant']>> }> {
  const id = `bbp-${process.pid}-${++tenants}`;
  host.setPolicy(id, rules);
  return { id, scope: await host.tenant(id) };
}

async function relayTo(port: number): Promise<CountingRelay> {
  const relay = await countingRelay(port);
  relays.push(relay);
  return relay;
}

/** Wait (a bounded number of turns) until `ready()`: the last socket 'close' may follow the relay's by a turn. */
async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ready(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** `openssl s_server -rev` on a free loopback port for one connection: it sends every line back reversed. */
async function sServer(): Promise<{ port: number; peer: Peer }> {
  const port = await freePort();
  const p = await startPeer(OPENSSL!, ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', tmp.path('cert.pem'), '-key', tmp.path('key.pem'), '-naccept', '1', '-rev'], { ready: /ACCEPT/ });
  return { port, peer: p };
}

const tlsConnect = (scope: Awaited<ReturnType<Host['tenant']>>, port: number): Promise<Connection> => new Preconnection({
  scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(),
  security: new SecurityParameters({ ca: cert.caCert! }),
}).initiate({ signal: AbortSignal.timeout(10_000) });

async function readBytes(conn: Connection, n: number): Promise<number> {
  let got = 0;
  while (got < n) got += (await conn.receive({ signal: AbortSignal.timeout(10_000) })).data.byteLength;
  return got;
}

describe.skipIf(OPENSSL === undefined)('openssl s_server: TLS counted exactly', () => {
  it('the handshake and every record both ways: charged = what the relay carried, each way', async () => {
    const server = await sServer();
    const relay = await relayTo(server.port);
    const { id, scope } = await tenant('allow tls://@loopback:*\nlimit sent 4MiB per 60s\nlimit received 4MiB per 60s');
    const conn = await tlsConnect(scope, relay.port);
    // Lines of 10000 bytes, 20 of them: many records each way, read several at a time.
    const line = `${'x'.repeat(9999)}\n`;
    for (let i = 0; i < 20; i++) await conn.send(line);
    expect(await readBytes(conn, 20 * line.length)).toBe(20 * line.length);
    await conn.close();
    await relay.idle();
    await until(() => host.usage(id).sent === relay.fromClient() && host.usage(id).received === relay.toClient());
    const u = host.usage(id);
    console.log(`openssl s_server (${process.version}): charged sent ${u.sent} / received ${u.received}; the relay carried ${relay.fromClient()} from the client, ${relay.toClient()} to it (${20 * line.length} bytes of cleartext each way)`);
    expect(u.sent).toBe(relay.fromClient());
    // s_server answers our close_notify with its own, which may reach the client after its socket closed: that
    // one record (24 bytes in TLS 1.3) is on the wire and never read.
    expect([0, 24]).toContain(relay.toClient() - u.received);
    await server.peer.exited;
  });

  it('a received budget exceeded mid-transfer: the connection fails with ERR_TAPS_QUOTA_EXCEEDED and sends nothing more', async () => {
    const server = await sServer();
    const relay = await relayTo(server.port);
    const { id, scope } = await tenant('allow tls://@loopback:*\nlimit received 32KiB per 60s');
    const conn = await tlsConnect(scope, relay.port);
    const failed = new Promise<unknown>((resolve) => conn.once('connectionError', resolve));
    const line = `${'z'.repeat(9999)}\n`;
    for (let i = 0; i < 10 && conn.state === 'established'; i++) await conn.send(line).catch(() => {});
    const err = await failed;
    const sentAtError = relay.fromClient();
    await relay.idle();
    console.log(`openssl s_server under a 32 KiB received budget: ${(err as Error).message}; ${host.usage(id).received} counted (the relay carried ${relay.toClient()}); the client sent ${sentAtError} bytes before the error, ${relay.fromClient()} in all`);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(host.usage(id).received).toBeGreaterThan(32 * 1024);
    expect(host.usage(id).received).toBeLessThanOrEqual(relay.toClient());
    expect(relay.fromClient()).toBe(sentAtError);
  });

  it('a sent budget exceeded mid-transfer: the send is refused with ERR_TAPS_QUOTA_EXCEEDED and nothing of it leaves', async () => {
    const server = await sServer();
    const relay = await relayTo(server.port);
    const { id, scope } = await tenant('allow tls://@loopback:*\nlimit sent 8KiB per 60s');
    const conn = await tlsConnect(scope, relay.port);
    const line = `${'y'.repeat(999)}\n`;
    let refused: unknown;
    for (let i = 0; i < 20 && refused === undefined; i++) refused = await conn.send(line).then(() => undefined, (e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await until(() => host.usage(id).sent === relay.fromClient());
    const before = relay.fromClient();
    console.log(`openssl s_server under an 8 KiB sent budget: refused with ${(refused as Error).message}; charged ${host.usage(id).sent}, the relay carried ${before}`);
    expect(host.usage(id).sent).toBe(before);
    expect(before).toBeLessThanOrEqual(8 * 1024 + 1000);
    // Refused again, still nothing leaves; the connection is still up.
    expect(await conn.send(line).catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(conn.state).toBe('established');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(relay.fromClient()).toBe(before);
    conn.abort();
  });
});

async function httpsGet(scope: Awaited<ReturnType<Host['tenant']>>, port: number, driver: 'https' | 'https2', path = '/big'): Promise<{ conn: Connection; body: number }> {
  const conn = await new Preconnection({
    scope, remote: `https://127.0.0.1:${port}${path}`, properties: TransportProperties.reliableMessage(),
    security: new SecurityParameters({ ca: cert.caCert! }), drivers: [driver === 'https' ? httpsDriver : https2Driver],
  }).initiate({ signal: AbortSignal.timeout(10_000) });
  await conn.send('', { fields: { method: 'GET' } });
  const m = await conn.receive({ signal: AbortSignal.timeout(10_000) });
  return { conn, body: m.data.byteLength };
}

describe.skipIf(NGINX === undefined)('nginx: HTTPS counted against what the relay carried', () => {
  it.each(['https', 'https2'] as const)('%s: a 200000-byte download', async (driver) => {
    const relay = await relayTo(nginxPort);
    const { id, scope } = await tenant('allow https://@loopback:*\nlimit sent 4MiB per 60s\nlimit received 4MiB per 60s');
    const { conn, body } = await httpsGet(scope, relay.port, driver);
    expect(body).toBe(BIG);
    await conn.close();
    await relay.idle();
    await until(() => host.usage(id).sent === relay.fromClient() && host.usage(id).received === relay.toClient());
    const u = host.usage(id);
    console.log(`nginx ${driver} (${process.version}): charged sent ${u.sent} / received ${u.received}; the relay carried ${relay.fromClient()} / ${relay.toClient()}: ${relay.fromClient() - u.sent} sent and ${relay.toClient() - u.received} received on the wire not charged`);
    expect(u.sent).toBe(relay.fromClient());
    expect(u.received).toBe(relay.toClient());
  });

  it.each(['https', 'https2'] as const)('%s: a 10 MB download under a 64 KiB received budget stops close to the budget with ERR_TAPS_QUOTA_EXCEEDED, and the client sends nothing more', async (driver) => {
    const relay = await relayTo(nginxPort);
    const { id, scope } = await tenant('allow https://@loopback:*\nlimit received 64KiB per 60s\nlimit sent 1MiB per 60s');
    const err = await httpsGet(scope, relay.port, driver, '/huge').then(({ conn }) => {
      conn.abort();
      return undefined;
    }, (e: unknown) => e);
    const sentAtError = relay.fromClient();
    await relay.idle();
    const counted = host.usage(id).received;
    console.log(`nginx ${driver} (${process.version}) 10 MB under a 64 KiB received budget: ${(err as Error | undefined)?.message}; ${counted} counted, the relay carried ${relay.toClient()} to the client (in flight when it stopped); the relay had ${sentAtError} bytes from the client at the error, ${relay.fromClient()} in all (charged ${host.usage(id).sent})`);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    // Charged as it arrives: the transfer stops at the first read past the budget (a TCP read is at most 64 KiB).
    expect(counted).toBeGreaterThan(64 * 1024);
    expect(counted).toBeLessThanOrEqual(128 * 1024);
    expect(counted).toBeLessThanOrEqual(relay.toClient());
    expect(relay.toClient()).toBeLessThan(HUGE);
    // No request data after the error; at most one record of HTTP/2 control frames (the stream's reset, a
    // last WINDOW_UPDATE still on its way) follows it on some Node versions.
    expect(relay.fromClient() - sentAtError).toBeLessThan(64);
  });
});
