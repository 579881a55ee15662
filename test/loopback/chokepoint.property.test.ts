/**
 * A property of the chokepoint: whatever sequence of guard and network calls
 * a guest makes, with whatever hostile arguments (getters, Proxies, objects
 * inheriting from a polluted prototype, targets for the wrong use, from
 * another scope, lookalikes), no socket is ever opened to an address,
 * protocol or use the tenant's policy did not allow.
 *
 * `net`, `tls` and `dgram` are instrumented in this process: every TCP
 * connect and listen, every TLS client handshake (and the peer of the socket
 * it runs over), every UDP bind, connect and send is recorded and checked
 * against what the policy allows; the listeners the policy forbids count
 * what reaches them. Besides the guard and the network, a guest's steps
 * include `initiate()` with hostile remote endpoints (getters, Proxies,
 * inherited fields) over tcp, tls and udp, peer sockets sending to any
 * target it holds, and attempts to change its scope (rename the tenant,
 * swap the network, replace shared methods).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, DriverListener, ListenAttempt, TransportChannel } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import type { NetworkScope } from '../../src/network.js';
import { createScope, Host, type CheckedTarget, type PolicyRequest } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { connectAttempt } from '../helpers/policy.js';

const RUNS = Number(process.env['TAPS_PROPERTY_RUNS'] ?? 100);

interface Seen { readonly kind: 'tcp-connect' | 'tcp-listen' | 'tls-connect' | 'udp-bind' | 'udp-connect' | 'udp-send'; readonly address: unknown; readonly port: unknown; readonly implicit?: boolean; tenant?: string }
const seen: Seen[] = [];
/** The tenant whose step is running: steps run one at a time, so every socket call during one is its. */
let current = 'guest';
const push = seen.push.bind(seen);
seen.push = (...items: Seen[]) => push(...items.map((i) => ({ ...i, tenant: current })));
const restore: (() => void)[] = [];

function instrument(): void {
  const S = net.Socket.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const connect = S['connect']!;
  S['connect'] = function (this: unknown, ...args: unknown[]) {
    const o = (typeof args[0] === 'object' && args[0] !== null ? args[0] : { port: args[0], host: args[1] }) as { host?: unknown; port?: unknown; path?: unknown };
    if (o.path === undefined) seen.push({ kind: 'tcp-connect', address: o.host, port: o.port });
    return connect.apply(this, args);
  };
  restore.push(() => (S['connect'] = connect));
  // A TLS client runs over a socket the kit connected: record that socket's peer (or what a direct call names).
  const T = tls as unknown as Record<string, (...a: unknown[]) => unknown>;
  const tlsConnect = T['connect']!;
  T['connect'] = function (this: unknown, ...args: unknown[]) {
    const o = (typeof args[0] === 'object' && args[0] !== null ? args[0] : { port: args[0], host: args[1] }) as { socket?: net.Socket; host?: unknown; port?: unknown };
    seen.push(o.socket ? { kind: 'tls-connect', address: o.socket.remoteAddress, port: o.socket.remotePort } : { kind: 'tls-connect', address: o.host, port: o.port });
    return tlsConnect.apply(this, args);
  };
  restore.push(() => (T['connect'] = tlsConnect));
  const L = net.Server.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const listen = L['listen']!;
  L['listen'] = function (this: unknown, ...args: unknown[]) {
    const o = (typeof args[0] === 'object' && args[0] !== null ? args[0] : { port: args[0], host: typeof args[1] === 'string' ? args[1] : undefined }) as { host?: unknown; port?: unknown };
    seen.push({ kind: 'tcp-listen', address: o.host, port: o.port });
    return listen.apply(this, args);
  };
  restore.push(() => (L['listen'] = listen));
  const D = dgram.Socket.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  let inConnect = false;
  for (const name of ['bind', 'connect', 'send'] as const) {
    const orig = D[name]!;
    D[name] = function (this: unknown, ...args: unknown[]) {
      if (name === 'bind') {
        const o = (typeof args[0] === 'object' && args[0] !== null ? args[0] : { port: args[0], address: typeof args[1] === 'string' ? args[1] : undefined }) as { address?: unknown; port?: unknown };
        // Own properties only: Node 22's implicit bind inside connect() passes `{ port: 0 }`, and a polluted
        // Object.prototype.address must not be mistaken for an address the library asked for.
        const own = (k: 'address' | 'port'): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);
        seen.push({ kind: 'udp-bind', address: own('address'), port: own('port') ?? 0, implicit: inConnect });
      } else if (name === 'connect') {
        seen.push({ kind: 'udp-connect', address: args[1], port: args[0] });
      } else {
        // send(msg, [offset, length,] port, address, cb) on an unconnected socket; connected sends name no peer.
        const i = typeof args[1] === 'number' && typeof args[2] === 'number' ? 3 : 1;
        if (typeof args[i] === 'number') seen.push({ kind: 'udp-send', address: args[i + 1], port: args[i] });
      }
      if (name !== 'connect') return orig.apply(this, args);
      inConnect = true;
      try {
        return orig.apply(this, args);
      } finally {
        inConnect = false;
      }
    };
    restore.push(() => (D[name] = orig));
  }
}

interface Counter { port: number; reached: number; close(): Promise<void> }
async function tcpListener(): Promise<Counter> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    c.reached++;
    socks.add(s);
    s.on('error', () => {});
    s.on('data', () => s.destroy()); // a TLS ClientHello ends at once, not after a handshake timeout
    s.on('close', () => socks.delete(s));
  });
  const c: Counter = { port: 0, reached: 0, close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }) };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  c.port = (server.address() as net.AddressInfo).port;
  return c;
}
async function udpListener(): Promise<Counter> {
  const socket = dgram.createSocket('udp4');
  const c: Counter = { port: 0, reached: 0, close: () => new Promise<void>((r) => socket.close(() => r())) };
  socket.on('message', () => c.reached++);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  c.port = socket.address().port;
  return c;
}

let A: Counter, F: Counter, U: Counter, UF: Counter;
let host: Host;

beforeAll(async () => {
  [A, F, U, UF] = await Promise.all([tcpListener(), tcpListener(), udpListener(), udpListener()]);
  host = new Host({ resolver: async () => [] });
  // Allowed: tcp connect to A, udp connect to U, tcp and udp bind of 127.0.0.1:0. Everything aimed at F and UF
  // is granted for some other use only, to tempt: redirect, accept, lookup.
  host.setPolicy('guest', [
    `allow tcp://127.0.0.1:${A.port}`,
    `allow tls://127.0.0.1:${A.port}`,
    `allow udp://127.0.0.1:${U.port}`,
    'allow bind:tcp://127.0.0.1:0',
    'allow bind:udp://127.0.0.1:0',
    `allow redirect,accept:*://127.0.0.1:${F.port}`,
    `allow redirect,accept:*://127.0.0.1:${UF.port}`,
    `allow accept:*://@loopback:*`,
  ].join('\n'));
  // Another tenant: anything on loopback except the listeners the guest must never reach, so its socket calls are checked too.
  host.setPolicy('other', `allow *://@loopback:*\nallow bind:*://@loopback:*\ndeny *://@loopback:${F.port}\ndeny *://@loopback:${UF.port}`);
  instrument();
});

afterAll(async () => {
  for (const r of restore.reverse()) r();
  host.close();
  await Promise.all([A, F, U, UF].map((c) => c.close()));
});

/** Whether one recorded socket operation is something its tenant's policy allows. */
function allowed(s: Seen): boolean {
  if (s.tenant === 'other') {
    const loopback = s.address === undefined || (typeof s.address === 'string' && /^(127\.|::1$|::ffff:127\.)/.test(s.address));
    return loopback && s.port !== F.port && s.port !== UF.port;
  }
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 host itself: a dual-stack socket dialled so
  // reaches 127.0.0.1, and the policy decides the mapped form as that IPv4 address.
  const loop = s.address === '127.0.0.1' || s.address === '::ffff:127.0.0.1';
  switch (s.kind) {
    case 'tcp-connect':
    case 'tls-connect':
      return loop && s.port === A.port;
    case 'udp-connect':
      return loop && s.port === U.port;
    case 'tcp-listen':
      return loop && s.port === 0;
    case 'udp-bind':
      // connect() binds an unbound socket to the wildcard, port 0, by itself.
      return s.port === 0 && (loop || (s.implicit === true && s.address === undefined));
    case 'udp-send':
      return loop && s.port === U.port; // a peer socket's sendTo, to a udp connect target
  }
}

// ── what a guest may throw at the guard and the network ──
const USES = ['connect', 'bind', 'accept', 'sendto', 'redirect', 'upgrade', 'lookup', 'bogus'] as const;
const PROTOCOLS = ['tcp', 'udp', 'http', 'ws', 'tls', 'bogus'] as const;
const ADDRESSES = ['127.0.0.1', '127.1', '0x7f000001', '::ffff:127.0.0.1', '::1', '0.0.0.0', 'localhost', '2130706433'] as const;
const portOf = (k: number): number => [A.port, F.port, U.port, UF.port, 0][k]!;

type Shape = 'plain' | 'getter' | 'proxy' | 'inherited' | 'null';
const shape = fc.constantFrom<Shape>('plain', 'getter', 'proxy', 'inherited', 'null');

/** Build `fields` in a hostile shape: a getter that changes its answer, a lying Proxy, fields on the prototype. */
function dress(fields: Record<string, unknown>, how: Shape, swap: Record<string, unknown>): unknown {
  switch (how) {
    case 'plain':
      return { ...fields };
    case 'null':
      return null;
    case 'inherited':
      return Object.create(fields) as object;
    case 'getter': {
      const o: Record<string, unknown> = { ...fields };
      const key = Object.keys(swap)[0] ?? 'address';
      let n = 0;
      Object.defineProperty(o, key, { enumerable: true, get: () => (n++ === 0 ? fields[key] : swap[key]) });
      return o;
    }
    case 'proxy': {
      let n = 0;
      return new Proxy({ ...fields }, {
        getOwnPropertyDescriptor: (t, k) => {
          const d = Reflect.getOwnPropertyDescriptor(t, k);
          if (d === undefined || typeof k !== 'string' || !(k in swap)) return d;
          return { ...d, value: n++ === 0 ? d.value : swap[k] };
        },
        get: (t, k) => (typeof k === 'string' && k in swap ? swap[k] : Reflect.get(t, k)),
      });
    }
  }
}

const authorizeStep = fc.record({
  op: fc.constant('authorize' as const),
  use: fc.constantFrom(...USES),
  protocol: fc.constantFrom(...PROTOCOLS),
  address: fc.constantFrom(...ADDRESSES),
  port: fc.nat(4),
  how: shape,
  scope: fc.nat(2),
});
const connectStep = fc.record({
  op: fc.constant('connect' as const),
  driver: fc.constantFrom('tcp', 'udp', 'http'),
  target: fc.nat(40),
  forge: fc.constantFrom('none', 'spread', 'retarget', 'plain'),
  how: shape,
  scope: fc.nat(2),
});
const listenStep = fc.record({
  op: fc.constant('listen' as const),
  driver: fc.constantFrom('tcp', 'udp'),
  target: fc.nat(40),
  forge: fc.constantFrom('none', 'spread', 'retarget', 'plain'),
  how: shape,
  scope: fc.nat(2),
});
const initiateStep = fc.record({
  op: fc.constant('initiate' as const),
  driver: fc.constantFrom('tcp', 'tls', 'udp'),
  address: fc.constantFrom(...ADDRESSES),
  port: fc.nat(4),
  how: shape,
  scope: fc.nat(2),
});
const peerStep = fc.record({
  op: fc.constant('peer' as const),
  target: fc.nat(40),
  forge: fc.constantFrom('none', 'spread', 'retarget', 'plain'),
  scope: fc.nat(2),
});
/** A real grant for another use (redirect, accept) used at once to connect or listen. */
const confuseStep = fc.record({
  op: fc.constant('confuse' as const),
  use: fc.constantFrom('redirect', 'accept'),
  driver: fc.constantFrom('tcp', 'udp', 'http', 'tls'),
  method: fc.constantFrom('connect', 'listen'),
  how: shape,
  scope: fc.nat(1),
});
const mutateStep = fc.record({
  op: fc.constant('mutate' as const),
  what: fc.constantFrom('tenant', 'network', 'guard', 'authorize', 'recheck', 'connect', 'inner'),
  scope: fc.nat(2),
});
const pollute = fc.record({ op: fc.constant('pollute' as const), key: fc.constantFrom('target', 'address', 'port', 'use', 'protocol', 'url', 'policy'), value: fc.nat(4) });
const step = fc.oneof(authorizeStep, connectStep, listenStep, initiateStep, peerStep, confuseStep, mutateStep, pollute);

const DRIVERS: Record<string, Driver> = { tcp: tcpDriver, udp: udpDriver, http: httpDriver, tls: tlsDriver };

/** Try to change a scope the way a guest holding it might; every attempt must fail (frozen) and change nothing. */
function mutate(scope: NetworkScope, what: string, other: NetworkScope): void {
  const s = scope as unknown as Record<string, unknown>;
  const protoOf = (o: unknown) => Object.getPrototypeOf(o) as Record<string, unknown>;
  const attempts: Record<string, () => void> = {
    tenant: () => (s['tenant'] = 'other'),
    network: () => (s['network'] = other.network),
    guard: () => Object.defineProperty(scope, 'guard', { value: other.guard }),
    authorize: () => (protoOf(scope)['authorize'] = () => Promise.resolve(undefined)),
    recheck: () => (protoOf(scope)['recheck'] = () => undefined),
    connect: () => (protoOf(scope.network)['connect'] = (d: Driver, a: ConnectAttempt) => d.connect(a)),
    inner: () => {
      const inner = (scope.network as unknown as Record<string, unknown>)['inner'];
      if (inner !== undefined) throw new Error('the wrapped network is reachable');
      throw new TypeError('nothing to reach');
    },
  };
  expect(attempts[what]!).toThrow(TypeError);
}

describe('no sequence of hostile calls opens a socket the policy did not allow', () => {
  it('random guard and network calls on both scope kinds', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (random) => {
        // Each run starts with what the guest may do (so allowed sockets are opened and targets exist), then goes wild.
        const legit = (scope: number) => [
          { op: 'authorize', use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 0, how: 'plain', scope },
          { op: 'connect', driver: 'tcp', target: scope, forge: 'none', how: 'plain', scope },
        ] as const;
        // ...and a UDP target sent to from a peer socket, a TLS initiate and a listener (so those paths run too).
        const more = [
          { op: 'authorize', use: 'connect', protocol: 'udp', address: '127.0.0.1', port: 2, how: 'plain', scope: 0 },
          { op: 'peer', target: 2, forge: 'none', scope: 0 },
          { op: 'initiate', driver: 'tls', address: '127.0.0.1', port: 0, how: 'plain', scope: 0 },
          { op: 'authorize', use: 'bind', protocol: 'tcp', address: '127.0.0.1', port: 4, how: 'plain', scope: 0 },
          { op: 'listen', driver: 'tcp', target: 3, forge: 'none', how: 'plain', scope: 0 },
        ] as const;
        const steps = [...legit(0), ...legit(1), ...more, ...random];
        const guestHost = await host.tenant('guest');
        const guestBasic = createScope({ tenant: 'guest', policy: { decide: (r: PolicyRequest) => guestHost.guard.decideSync(r) } });
        const other = await host.tenant('other');
        const scopeList: NetworkScope[] = [guestHost, guestBasic, other];
        const targets: CheckedTarget[] = [];
        const open: (TransportChannel | DriverListener)[] = [];
        const polluted: string[] = [];
        const start = seen.length;
        try {
          for (const s of steps) {
            if (s.op === 'pollute') {
              const v = [`http://127.0.0.1:${F.port}/`, F.port, 'connect', { decide: () => ({ allow: true, rule: 'x' }) }, targets[0]][s.value];
              Object.defineProperty(Object.prototype, s.key, { value: v, configurable: true, writable: true, enumerable: false });
              polluted.push(s.key);
              continue;
            }
            const scope = scopeList[s.scope]!;
            current = scope.tenant;
            if (s.op === 'mutate') {
              mutate(scope, s.what, scopeList[(s.scope + 1) % 3]!);
              continue;
            }
            if (s.op === 'initiate') {
              const remote = dress({ ipAddress: s.address, port: portOf(s.port) }, s.how, { ipAddress: '127.0.0.1', port: F.port });
              try {
                const pre = new Preconnection({
                  scope, remote: remote as never, drivers: [DRIVERS[s.driver]!],
                  properties: s.driver === 'udp' ? TransportProperties.unreliableDatagram() : TransportProperties.reliableInorderStream(),
                  security: s.driver === 'tls' ? new SecurityParameters() : SecurityParameters.disabled(),
                });
                const conn = await pre.initiate({ signal: AbortSignal.timeout(1000) });
                conn.abort();
              } catch {
                /* refused, denied or failed: fine */
              }
              continue;
            }
            if (s.op === 'confuse') {
              const driver = DRIVERS[s.driver]!;
              const forbidden = s.driver === 'udp' ? UF.port : F.port;
              try {
                const target = await scope.guard.authorize({ use: s.use, protocol: driver.protocol, address: '127.0.0.1', port: forbidden });
                const base = s.method === 'connect'
                  ? { ...connectAttempt(scope, target) }
                  : { signal: new AbortController().signal, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: forbidden }), security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: scope.guard };
                const attempt = dress(base, s.how, { target: { ...target } });
                open.push(s.method === 'connect' ? await scope.network.connect(driver, attempt as ConnectAttempt) : await scope.network.listen(driver, attempt as ListenAttempt));
              } catch {
                /* refused: fine */
              }
              continue;
            }
            if (s.op === 'peer') {
              let target: unknown = targets[s.target % Math.max(1, targets.length)];
              if (s.forge === 'spread' && target) target = { ...(target as object) };
              if (s.forge === 'retarget' && target) target = { ...(target as object), port: UF.port, address: '127.0.0.1' };
              if (s.forge === 'plain') target = { tenant: 'guest', use: 'connect', protocol: 'udp', address: '127.0.0.1', port: UF.port, family: 4, revision: 0, decision: { allow: true, rule: 'x' } };
              try {
                const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
                const attempt = { signal: new AbortController().signal, target: bind, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: scope.guard };
                const peer = await scope.network.openPeerSocket!(udpDriver, attempt as ListenAttempt);
                try {
                  await new Promise<void>((resolve) => {
                    try {
                      peer.sendTo(new Uint8Array([1]), target as CheckedTarget, () => resolve());
                    } catch {
                      resolve();
                    }
                  });
                } finally {
                  await peer.close();
                }
              } catch {
                /* refused: fine */
              }
              continue;
            }
            if (s.op === 'authorize') {
              const fields = { use: s.use, protocol: s.protocol, address: s.address, port: portOf(s.port) };
              const req = dress(fields, s.how, { address: '127.0.0.1', port: F.port, use: 'connect' });
              try {
                targets.push(await scope.guard.authorize(req as never));
              } catch {
                /* denied or refused: fine */
              }
              continue;
            }
            let target: unknown = targets[s.target % Math.max(1, targets.length)];
            if (s.forge === 'spread' && target) target = { ...(target as object) };
            if (s.forge === 'retarget' && target) target = { ...(target as object), port: F.port, address: '127.0.0.1' };
            if (s.forge === 'plain') target = { tenant: 'guest', use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: F.port, family: 4, revision: 0, decision: { allow: true, rule: 'x' } };
            try {
              const base = s.op === 'connect' && target
                ? { ...connectAttempt(scope, target as CheckedTarget) }
                : { signal: new AbortController().signal, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: scope.guard };
              const attempt = dress(base, s.how, { target: { ...(target as object ?? {}), port: F.port } });
              const driver = DRIVERS[s.driver]!;
              const got = s.op === 'connect'
                ? await scope.network.connect(driver, attempt as ConnectAttempt)
                : await scope.network.listen(driver, attempt as ListenAttempt);
              open.push(got);
            } catch {
              /* refused: fine */
            }
          }
        } finally {
          for (const k of polluted) delete (Object.prototype as Record<string, unknown>)[k];
          for (const o of open) ('abort' in o ? o.abort() : await o.close());
        }
        const bad = seen.slice(start).filter((x) => !allowed(x));
        expect(bad).toEqual([]);
      }),
      { numRuns: RUNS },
    );
    await new Promise((r) => setTimeout(r, 20));
    expect([F.reached, UF.reached]).toEqual([0, 0]);
    // The property is not vacuous: allowed sockets were opened along the way.
    for (const kind of ['tcp-connect', 'tls-connect', 'udp-send', 'tcp-listen', 'udp-bind'] as const) expect(seen.some((s) => s.kind === kind), kind).toBe(true);
    expect(U.reached).toBeGreaterThan(0);
  });
});
