/**
 * A property of the chokepoint: whatever sequence of guard and network calls
 * a guest makes, with whatever hostile arguments (getters, Proxies, objects
 * inheriting from a polluted prototype, targets for the wrong use, from
 * another scope, lookalikes), no socket is ever opened to an address,
 * protocol or use the tenant's policy did not allow.
 *
 * `net`, `dgram` (and so `tls`, which connects through `net`) are
 * instrumented in this process: every TCP connect and listen, every UDP
 * bind, connect and send is recorded and checked against what the policy
 * allows; the listeners the policy forbids count what reaches them.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, DriverListener, ListenAttempt, TransportChannel } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import type { NetworkScope } from '../../src/network.js';
import { createScope, Host, type CheckedTarget, type PolicyRequest } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { connectAttempt } from '../helpers/policy.js';

const RUNS = Number(process.env['TAPS_PROPERTY_RUNS'] ?? 100);

interface Seen { readonly kind: 'tcp-connect' | 'tcp-listen' | 'udp-bind' | 'udp-connect' | 'udp-send'; readonly address: unknown; readonly port: unknown; readonly implicit?: boolean }
const seen: Seen[] = [];
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
        seen.push({ kind: 'udp-bind', address: o.address, port: o.port ?? 0, implicit: inConnect });
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
    `allow udp://127.0.0.1:${U.port}`,
    'allow bind:tcp://127.0.0.1:0',
    'allow bind:udp://127.0.0.1:0',
    `allow redirect,accept:*://127.0.0.1:${F.port}`,
    `allow redirect,accept:*://127.0.0.1:${UF.port}`,
    `allow accept:*://@loopback:*`,
  ].join('\n'));
  host.setPolicy('other', `allow *://@loopback:*\nallow bind:*://@loopback:*`);
  instrument();
});

afterAll(async () => {
  for (const r of restore.reverse()) r();
  host.close();
  await Promise.all([A, F, U, UF].map((c) => c.close()));
});

/** Whether one recorded socket operation is something the guest's policy allows. */
function allowed(s: Seen): boolean {
  const loop = s.address === '127.0.0.1';
  switch (s.kind) {
    case 'tcp-connect':
      return loop && s.port === A.port;
    case 'udp-connect':
      return loop && s.port === U.port;
    case 'tcp-listen':
      return loop && s.port === 0;
    case 'udp-bind':
      // connect() binds an unbound socket to the wildcard, port 0, by itself.
      return s.port === 0 && (loop || (s.implicit === true && s.address === undefined));
    case 'udp-send':
      return false; // the guest has no unconnected send path to anywhere
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
const pollute = fc.record({ op: fc.constant('pollute' as const), key: fc.constantFrom('target', 'address', 'port', 'use', 'protocol', 'url', 'policy'), value: fc.nat(4) });
const step = fc.oneof(authorizeStep, connectStep, listenStep, pollute);

const DRIVERS: Record<string, Driver> = { tcp: tcpDriver, udp: udpDriver, http: httpDriver };

describe('no sequence of hostile calls opens a socket the policy did not allow', () => {
  it('random guard and network calls on both scope kinds', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 10 }), async (random) => {
        // Each run starts with what the guest may do (so allowed sockets are opened and targets exist), then goes wild.
        const legit = (scope: number) => [
          { op: 'authorize', use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 0, how: 'plain', scope },
          { op: 'connect', driver: 'tcp', target: scope, forge: 'none', how: 'plain', scope },
        ] as const;
        const steps = [...legit(0), ...legit(1), ...random];
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
    expect(seen.some((s) => s.kind === 'tcp-connect')).toBe(true);
  });
});
