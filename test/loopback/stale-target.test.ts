/**
 * A target kept across a policy reload. A guest holds the targets its guard
 * minted and, through `connection.driver`, a driver it can call directly
 * (outside the scope's network, which would decide an old target again).
 * The socket itself refuses a target of an older revision (transports/kit
 * `targetAddress`): after a reload that forbids the destination, the direct
 * dial and bind open nothing (the loopback listener counts what reaches it);
 * through the scope's network the old target is decided again and, still
 * allowed, handed to the driver as a target of the current revision, so
 * connects, binds and peer-socket sends go on working across reloads.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NEVER_ABORTED, type TransportChannel } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import { PolicyDeniedError } from '../../src/errors.js';
import { Host } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';

let server: Server;
let port: number;
let reached = 0;
const sockets = new Set<Socket>();
const host = new Host();

beforeAll(async () => {
  server = createServer((s) => {
    reached++;
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  host.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

let n = 0;
const attempt = (target: unknown): never => ({
  signal: NEVER_ABORTED, target, remote: undefined, local: new LocalEndpoint({ ipAddress: '127.0.0.1', port: 0 }),
  security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {},
}) as never;

describe('a target kept across a reload', () => {
  it('dialled through connection.driver after a reload that forbids it: refused at the socket, nothing reaches the listener', async () => {
    const tenant = `stale-${process.pid}-${n++}`;
    host.setPolicy(tenant, `allow tcp://127.0.0.1:${port}`);
    const scope = await host.tenant(tenant);
    const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, drivers: [tcpDriver], security: SecurityParameters.disabled() }).initiate();
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port });
    const driver = conn.driver;
    conn.abort();
    await new Promise((r) => setTimeout(r, 20));
    const before = reached;
    host.setPolicy(tenant, 'allow tcp://127.0.0.2:*', { onRevoke: 'keep' });
    const err = await driver.connect(attempt(target)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect(err).toMatchObject({ decision: { code: 'unverified' } });
    // Through the scope's network it is decided again, and denied.
    const denied = await scope.network.connect(tcpDriver, attempt(target)).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PolicyDeniedError);
    await new Promise((r) => setTimeout(r, 20));
    console.log(`stale target: direct dial ${(err as { decision: { code: string } }).decision.code}, network.connect ${(denied as { decision: { code: string } }).decision.code}; listener reached ${reached - before} times`);
    expect(reached).toBe(before);
  });

  it('a bind target kept across a reload that forbids it binds nothing when a driver is called directly', async () => {
    const tenant = `stale-${process.pid}-${n++}`;
    host.setPolicy(tenant, 'allow bind:udp://127.0.0.1:0');
    const scope = await host.tenant(tenant);
    const target = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
    host.setPolicy(tenant, 'allow udp://127.0.0.2:*');
    await expect(Promise.resolve().then(() => udpDriver.listen!(attempt(target)))).rejects.toBeInstanceOf(PolicyDeniedError);
  });

  it('still allowed after the reload: through the scope network the old target is decided again and a current one reaches the driver; a peer socket keeps sending', async () => {
    const tenant = `stale-${process.pid}-${n++}`;
    const sink = createSocket('udp4');
    let datagrams = 0;
    sink.on('message', () => datagrams++);
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', () => r()));
    const sinkPort = sink.address().port;
    const policy = `allow tcp://127.0.0.1:${port}\nallow udp://127.0.0.1:*\nallow bind:udp://127.0.0.1:0`;
    host.setPolicy(tenant, policy);
    const scope = await host.tenant(tenant);
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port });
    const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
    const to = await scope.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: sinkPort });
    host.setPolicy(tenant, `${policy}\n# reloaded`);
    expect(scope.revision).toBeGreaterThan(target.revision);
    const before = reached;
    const channel: TransportChannel = await scope.network.connect(tcpDriver, attempt(target));
    channel.abort();
    const socket = await scope.network.openPeerSocket!(udpDriver, attempt(bind));
    socket.start({ datagram: () => {}, error: () => {} });
    expect(await new Promise((r) => socket.sendTo(new Uint8Array(8), to, r))).toBeUndefined();
    await new Promise((r) => setTimeout(r, 50));
    expect(reached).toBe(before + 1);
    expect(datagrams).toBe(1);
    await socket.close();
    await new Promise<void>((r) => sink.close(() => r()));
  });
});
