/**
 * Two tenants with different policies in one Host, over real loopback
 * sockets (127.0.0.1 and ::1, port 0), with the real tcp, tls and udp
 * drivers behind each tenant's policy-enforcing network. Every listener
 * counts what reaches it, so "denied" means the forbidden listener was never
 * reached, not just that an error was thrown.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver, TransportChannel } from '../../src/driver.js';
import { PolicyDeniedError, QuotaExceededError } from '../../src/errors.js';
import type { DecisionRecord } from '../../src/policy/index.js';
import { Host } from '../../src/policy/host.js';
import type { TenantScope } from '../../src/policy/scope.js';
import type { ResolvedAddress } from '../../src/network.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { testCertificate } from '../helpers/certs.js';
import { connectAttempt } from '../helpers/policy.js';
import { Collector, waitFor } from '../compliance/harness.js';

interface Counted {
  port: number;
  accepted: number;
  close(): Promise<void>;
}

const sockets = new Set<Socket>();
async function tcpServer(address: string): Promise<Counted> {
  const server: Server = createServer((s) => {
    counted.accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  const counted: Counted = {
    port: (server.address() as { port: number }).port,
    accepted: 0,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  return counted;
}

const leaf = testCertificate({ issuer: 'ca' });
async function tlsServer(address: string): Promise<Counted> {
  const server: TlsServer = createTlsServer({ cert: leaf.cert, key: leaf.key }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  server.on('secureConnection', () => counted.accepted++);
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, address, r));
  const counted: Counted = {
    port: (server.address() as { port: number }).port,
    accepted: 0,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  return counted;
}

async function udpServer(address: string): Promise<Counted & { socket: UdpSocket }> {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', () => counted.accepted++);
  await new Promise<void>((r) => socket.bind(0, address, r));
  const counted = {
    socket,
    port: socket.address().port,
    accepted: 0,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  return counted;
}

const records: DecisionRecord[] = [];
let host: Host;
let alpha: TenantScope;
let beta: TenantScope;
let gamma: TenantScope;
let a4: Counted, b4: Counted, a6: Counted, named: Counted, tlsA: Counted, udpA: Counted & { socket: UdpSocket }, udpB: Counted & { socket: UdpSocket };
const servers: Counted[] = [];

// The injected resolver: svc.alpha.test "rebinds" to loopback.
const resolver = async (name: string, family: 4 | 6): Promise<ResolvedAddress[]> =>
  name === 'svc.alpha.test' || name === 'localhost' ? (family === 4 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '::1', family: 6 }]) : [];

beforeAll(async () => {
  [a4, b4, a6, named, tlsA] = await Promise.all([tcpServer('127.0.0.1'), tcpServer('127.0.0.1'), tcpServer('::1'), tcpServer('127.0.0.1'), tlsServer('127.0.0.1')]);
  [udpA, udpB] = await Promise.all([udpServer('127.0.0.1'), udpServer('127.0.0.1')]);
  servers.push(a4, b4, a6, named, tlsA, udpA, udpB);
  host = new Host({ resolver, onDecision: (r) => records.push(r) });
  host.setPolicy('alpha', [
    `allow tcp://127.0.0.1:${a4.port}`,
    `allow tcp://[::1]:${a6.port}`,
    `allow tcp://svc.alpha.test:${named.port}`,
    `allow tls://localhost:${tlsA.port}`,
    `allow tls://@loopback:${tlsA.port}`,
    `allow udp://127.0.0.1:${udpA.port}`,
    'limit connections 8',
  ].join('\n'));
  host.setPolicy('beta', { allow: [`tcp://127.0.0.1:${b4.port}`], deny: [`*://127.0.0.1:${a4.port}`] });
  host.setPolicy('gamma', { mode: 'audit', allow: [] });
  [alpha, beta, gamma] = await Promise.all([host.tenant('alpha'), host.tenant('beta'), host.tenant('gamma')]);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => s.close()));
});

/** Authorise then connect through the scope's network; returns the channel or the denial code. */
async function dial(scope: TenantScope, driver: Driver, address: string, port: number, init: { hostName?: string; security?: SecurityParameters } = {}) {
  let target;
  try {
    target = await scope.guard.authorize({ use: 'connect', protocol: driver.protocol, address, port, hostName: init.hostName });
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyDeniedError);
    const d = (err as PolicyDeniedError).decision;
    return d.allow ? 'allowed?' : d.code;
  }
  return scope.network.connect(driver, connectAttempt(scope, target, init.security ? { security: init.security } : {}));
}

async function roundTrip(ch: TransportChannel, text = 'ping'): Promise<void> {
  const rx = new Collector();
  ch.start(rx);
  ch.send(Buffer.from(text), {}, () => {});
  await rx.untilBytes(text.length);
  expect(rx.text()).toBe(text);
  await ch.close();
}

describe('two tenants, one host, real TCP', () => {
  it('each reaches exactly its own listeners, with a record per decision', async () => {
    const before = records.length;
    const cases: Array<[TenantScope, Counted, string, boolean | string]> = [
      [alpha, a4, '127.0.0.1', true],
      [alpha, b4, '127.0.0.1', 'no-match'],
      [alpha, a6, '::1', true],
      [beta, b4, '127.0.0.1', true],
      [beta, a4, '127.0.0.1', 'denied'],
      [beta, a6, '::1', 'no-match'],
    ];
    for (const [scope, server, address, expected] of cases) {
      const n = server.accepted;
      const r = await dial(scope, tcpDriver, address, server.port);
      if (expected === true) {
        await roundTrip(r as TransportChannel);
        expect(server.accepted).toBe(n + 1);
      } else {
        expect(r).toBe(expected);
        expect(server.accepted).toBe(n);
      }
    }
    const mine = records.slice(before);
    expect(mine).toHaveLength(cases.length);
    expect(mine.map((r) => `${r.tenant}:${r.allow}`)).toEqual(cases.map(([s, , , e]) => `${s.tenant}:${e === true}`));
    expect(mine[4]).toMatchObject({ tenant: 'beta', code: 'denied', rule: `*://127.0.0.1:${a4.port}` });
  });

  it("a target minted for one tenant is refused by the other's network", async () => {
    const n = a4.accepted;
    const target = await alpha.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: a4.port });
    await expect(beta.network.connect(tcpDriver, connectAttempt(beta, target))).rejects.toThrow(PolicyDeniedError);
    await expect(alpha.network.connect(tcpDriver, connectAttempt(alpha, { ...target }))).rejects.toThrow(PolicyDeniedError);
    expect(a4.accepted).toBe(n);
  });

  it('a name granted by name that resolves to loopback is never dialled (rebinding)', async () => {
    const n = named.accepted;
    const signal = new AbortController().signal;
    const answers = await alpha.guard.lookup('svc.alpha.test', 4, 'tcp', signal);
    expect(answers).toEqual([{ address: '127.0.0.1', family: 4 }]);
    for (const a of answers) expect(await dial(alpha, tcpDriver, a.address, named.port, { hostName: 'svc.alpha.test' })).toBe('no-match');
    await expect(beta.guard.lookup('svc.alpha.test', 4, 'tcp', signal)).rejects.toThrow(PolicyDeniedError);
    expect(named.accepted).toBe(n);
  });

  it('audit mode lets the connection through and records the would-be denial', async () => {
    const n = b4.accepted;
    const before = records.length;
    await roundTrip((await dial(gamma, tcpDriver, '127.0.0.1', b4.port)) as TransportChannel);
    expect(b4.accepted).toBe(n + 1);
    expect(records.slice(before)).toEqual([expect.objectContaining({ tenant: 'gamma', allow: false, code: 'no-match', mode: 'audit' })]);
  });
});

describe('TLS and UDP per policy', () => {
  it('TLS: alpha reaches its TLS listener with the checked name; beta never does', async () => {
    const n = tlsA.accepted;
    const security = new SecurityParameters({ ca: leaf.caCert as string });
    const ch = await dial(alpha, tlsDriver, '127.0.0.1', tlsA.port, { hostName: 'localhost', security });
    await roundTrip(ch as TransportChannel);
    expect(await dial(beta, tlsDriver, '127.0.0.1', tlsA.port, { hostName: 'localhost', security })).toBe('no-match');
    expect(tlsA.accepted).toBe(n + 1);
  });

  it('UDP connected: alpha’s datagram arrives, beta’s is never sent', async () => {
    const n = udpA.accepted;
    const ch = (await dial(alpha, udpDriver, '127.0.0.1', udpA.port)) as TransportChannel;
    ch.start(new Collector());
    await new Promise<void>((resolve, reject) => ch.send(Buffer.from('dgram'), {}, (e) => (e ? reject(e) : resolve())));
    await waitFor(() => udpA.accepted === n + 1);
    await ch.close();
    expect(await dial(beta, udpDriver, '127.0.0.1', udpA.port)).toBe('no-match');
    expect(udpA.accepted).toBe(n + 1);
  });

  it('decideSync answers per destination at once (a host checking datagrams it sends itself)', async () => {
    const nA = udpA.accepted;
    const nB = udpB.accepted;
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    let sent = 0;
    for (let i = 0; i < 20; i++) {
      const port = i % 2 === 0 ? udpA.port : udpB.port;
      const d = alpha.guard.decideSync({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port });
      if (!d.allow) continue;
      sent++;
      await new Promise<void>((r) => client.send(Buffer.from(`n${i}`), port, '127.0.0.1', () => r()));
    }
    await waitFor(() => udpA.accepted === nA + 10);
    await new Promise<void>((r) => client.close(() => r()));
    expect(sent).toBe(10);
    expect(udpB.accepted).toBe(nB);
  });
});

describe('quotas and hot reload over live connections', () => {
  it('connection quota: exhaustion is its own error and opens nothing', async () => {
    host.setPolicy('beta', { allow: [`tcp://127.0.0.1:${b4.port}`], deny: [`*://127.0.0.1:${a4.port}`], limits: { connections: 1 } });
    const t = await beta.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: b4.port });
    // The socket takes the tenant's one unit itself (held until it closes), whoever opens it.
    const ch = await beta.network.connect(tcpDriver, connectAttempt(beta, t));
    const n = b4.accepted;
    expect(() => beta.lease('connection', t)).toThrow(QuotaExceededError);
    expect(await beta.network.connect(tcpDriver, connectAttempt(beta, t)).catch((e: unknown) => e)).toBeInstanceOf(QuotaExceededError);
    expect(b4.accepted).toBe(n);
    await roundTrip(ch);
    ch.abort();
    await waitFor(() => host.usage('beta').connections === 0);
    (await beta.lease('connection', t)).release();
  });

  it('a reload that forbids a live connection closes it (onRevoke), new candidates use the new revision', async () => {
    const t = await alpha.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: a4.port });
    const lease = await alpha.lease('connection', t);
    const ch = await alpha.network.connect(tcpDriver, connectAttempt(alpha, t));
    const rx = new Collector();
    ch.start(rx);
    const revoked: string[] = [];
    lease.onRevoke!((d) => {
      revoked.push(d.code);
      ch.abort(new PolicyDeniedError(d));
    });
    const peers = sockets.size;
    host.setPolicy('alpha', `allow tcp://[::1]:${a6.port}`);
    expect(revoked).toEqual(['revoked']);
    expect(await rx.untilClosed()).toBeInstanceOf(Error);
    await waitFor(() => sockets.size < peers);
    lease.release();
    const n = a4.accepted;
    expect(await dial(alpha, tcpDriver, '127.0.0.1', a4.port)).toBe('no-match');
    expect(a4.accepted).toBe(n);
  });
});
