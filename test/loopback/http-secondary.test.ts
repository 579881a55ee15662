/**
 * Every socket of an HTTP connection goes through the host's Network, the
 * first and the later ones: the host supplies a Network that records each
 * dial, and a reconnect (the server closed the connection after a response)
 * and a redirect hop both appear in it, the hop with its `redirect` target. A
 * hop races the addresses its policy allowed like any candidate: a redirect
 * to a name whose first address is dead reaches the second. A guest reaching
 * around it — a hop to a forbidden listener, `network.follow` with a target
 * issued for another use or protocol or a lookalike, an attempt naming its
 * own network — opens no connection to the forbidden listener, and never
 * reaches a network other than the host's.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { PolicyDeniedError } from '../../src/errors.js';
import { DelegatingNetwork, SystemNetwork } from '../../src/network.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { fakeResolver } from '../helpers/resolver.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Dial {
  readonly driver: string;
  readonly use: string;
  readonly address: string;
  readonly port: number;
  outcome?: 'open' | 'failed';
}

/** The host's network: records every dial and how it ended, then lets the system network make it. */
class RecordingNetwork extends DelegatingNetwork {
  readonly dials: Dial[] = [];
  override async connect(driver: Driver, attempt: ConnectAttempt): Promise<TransportChannel> {
    const d: Dial = { driver: driver.id, use: attempt.target.use, address: attempt.target.address, port: attempt.target.port };
    this.dials.push(d);
    try {
      const channel = await super.connect(driver, attempt);
      d.outcome = 'open';
      return channel;
    } catch (err) {
      d.outcome = 'failed';
      throw err;
    }
  }
}

interface Listener {
  port: number;
  connections: number;
  readonly paths: string[];
}

/** A plain HTTP listener on 127.0.0.1; `route` may answer with a redirect or ask to close the connection. */
async function listener(route: (path: string) => { location?: string; close?: boolean } = () => ({})): Promise<Listener> {
  const l: Listener = { port: 0, connections: 0, paths: [] };
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    l.paths.push(req.url!);
    req.resume();
    req.on('end', () => {
      const r = route(req.url!);
      if (r.close) res.setHeader('connection', 'close');
      if (r.location) res.writeHead(302, { location: r.location }).end();
      else res.end(`hello from ${l.port}${req.url}`);
    });
  });
  server.on('connection', (s: Socket) => {
    l.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  l.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return l;
}

// hop.test: a dead first address (nothing listens on 127.0.0.3), then the listener's.
const resolver = fakeResolver({ 'hop.test': { v4: ['127.0.0.3', '127.0.0.1'] }, 'far.test': { v4: ['127.0.0.1'] } });
const network = new RecordingNetwork(new SystemNetwork(resolver));
const host = new Host({ network });
cleanups.push(() => host.close());

async function connection(tenant: string, policy: string, port: number) {
  host.setPolicy(tenant, policy);
  const scope = await host.tenant(tenant);
  const conn = await new Preconnection({
    scope, remote: `http://127.0.0.1:${port}/`, drivers: [httpDriver], security: SecurityParameters.disabled(),
    properties: TransportProperties.reliableMessage(), driverOptions: { http: { redirect: 'follow' } },
  }).initiate();
  cleanups.push(() => conn.abort());
  return { scope, conn };
}

/** Send one GET and read its response. */
async function get(conn: Awaited<ReturnType<typeof connection>>['conn'], path: string): Promise<{ status: number; url: string; body: string }> {
  await conn.send('', { fields: { method: 'GET', path } });
  const m = await conn.receive({ signal: AbortSignal.timeout(10_000) });
  const f = m.context.fields as { status: number; url: string };
  return { status: f.status, url: f.url, body: m.text() };
}

describe('HTTP: every socket goes through the host network', () => {
  it('a reconnect and a redirect hop are dialled by the host network; the hop races its addresses past a dead one', async () => {
    const far = await listener();
    const home = await listener((path) => (path === '/once' ? { close: true } : path === '/go' ? { location: `http://hop.test:${far.port}/there` } : {}));
    const { conn } = await connection('sec-a', `allow connect,redirect:http://@loopback:*\nallow redirect:http://hop.test:*`, home.port);
    const first = network.dials.length;
    expect(network.dials.slice(first - 1)).toEqual([{ driver: 'http', use: 'connect', address: '127.0.0.1', port: home.port, outcome: 'open' }]);

    expect((await get(conn, '/once')).status).toBe(200); // the server closes the connection after it
    expect((await get(conn, '/again')).body).toBe(`hello from ${home.port}/again`);
    expect(home.connections).toBe(2);
    const redirected = await get(conn, '/go');
    expect(redirected).toMatchObject({ status: 200, url: `http://hop.test:${far.port}/there`, body: `hello from ${far.port}/there` });
    const later = network.dials.slice(first);
    console.log('dials after the first:', JSON.stringify(later));
    expect(later).toEqual([
      { driver: 'http', use: 'connect', address: '127.0.0.1', port: home.port, outcome: 'open' }, // the reconnect
      { driver: 'http', use: 'redirect', address: '127.0.0.3', port: far.port, outcome: 'failed' }, // the hop's dead first address
      { driver: 'http', use: 'redirect', address: '127.0.0.1', port: far.port, outcome: 'open' }, // and the next one
    ]);
    expect(far.paths).toEqual(['/there']);
  });

  it('a hop to a listener the policy forbids is refused before any dial; the listener sees no connection', async () => {
    const forbidden = await listener();
    const home = await listener((path) => (path === '/go' ? { location: `http://far.test:${forbidden.port}/` } : {}));
    const { conn } = await connection('sec-b', `allow connect:http://127.0.0.1:${home.port}\nallow redirect:http://far.test:${home.port}`, home.port);
    const before = network.dials.length;
    const failed = new Promise<Error>((r) => conn.once('connectionError', r));
    await conn.send('', { fields: { method: 'GET', path: '/go' } });
    expect(await failed).toBeInstanceOf(PolicyDeniedError);
    expect(network.dials.slice(before)).toEqual([]);
    expect(forbidden.connections).toBe(0);
  });

  it('follow admits only redirect targets of its scope, for the driver protocol; a caller cannot give the driver its own network', async () => {
    const forbidden = await listener();
    host.setPolicy('sec-c', `allow redirect:http://127.0.0.1:${forbidden.port}\nallow connect:tcp://127.0.0.1:${forbidden.port}\nallow connect:http://127.0.0.1:${forbidden.port + 1}`);
    const scope = await host.tenant('sec-c');
    const checked = scope.network as unknown as { follow(driver: Driver, attempt: unknown): Promise<TransportChannel> };
    const hop = await scope.guard.authorize({ use: 'redirect', protocol: 'http', address: '127.0.0.1', port: forbidden.port, url: `http://127.0.0.1:${forbidden.port}/` });
    const connectTcp = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: forbidden.port });
    const base = { signal: AbortSignal.timeout(5000), remote: undefined, security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {} };
    const refusals = [
      checked.follow(httpDriver, { ...base, target: connectTcp }), // another use and protocol
      checked.follow(tcpDriver, { ...base, target: hop }), // a redirect grant opens no TCP socket
      checked.follow(httpDriver, { ...base, target: { ...hop } }), // a lookalike
      scope.network.connect(httpDriver, { ...base, target: hop } as never), // connect admits no redirect target
    ];
    for (const r of await Promise.allSettled(refusals)) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED', decision: { code: 'unverified' } });
    }
    expect(forbidden.connections).toBe(0);

    // Allowed: a redirect target through follow, with an attempt naming a network of its own: the host's network dials it.
    let evil = 0;
    const own = { connect: () => (evil++, Promise.reject(new Error('not this one'))), follow: () => (evil++, Promise.reject(new Error('not this one'))) };
    const before = network.dials.length;
    const channel = await checked.follow(httpDriver, { ...base, target: hop, network: own });
    expect(network.dials.slice(before)).toEqual([{ driver: 'http', use: 'redirect', address: '127.0.0.1', port: forbidden.port, outcome: 'open' }]);
    expect(evil).toBe(0);
    channel.abort();
  });
});
