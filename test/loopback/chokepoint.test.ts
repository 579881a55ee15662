/**
 * The chokepoint by construction, attacked through both scope kinds (a
 * Host's and createScope's) against real loopback listeners the policy
 * forbids; each must see zero connections or datagrams:
 * - use confusion: a redirect, accept or bind target handed to
 *   `network.connect`, a connect target to `network.listen`, a bind grant
 *   for one protocol used by another protocol's driver;
 * - check-then-use: getters on a request or an attempt, a Proxy attempt
 *   whose descriptor answers differently each time;
 * - prototype pollution of `Object.prototype` (`custom`, `policy`, `allow`,
 *   `url`) before a policy or a scope is made;
 * - `network.lookup` of a name without a lookup grant (no query leaves).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, ListenAttempt } from '../../src/driver.js';
import { PolicyDeniedError } from '../../src/errors.js';
import { SystemNetwork, type NetworkScope } from '../../src/network.js';
import { createScope, Host, type CheckedTarget, type NetworkPolicy, type PolicyRequest } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver } from '../../transports/http/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { connectAttempt } from '../helpers/policy.js';

interface Counter { port: number; reached: number }
const cleanups: (() => Promise<void> | void)[] = [];
const sockets = new Set<Socket>();

async function tcpCounter(): Promise<Counter> {
  const c: Counter = { port: 0, reached: 0 };
  const server: Server = createServer((s) => {
    c.reached++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  c.port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return c;
}

async function udpCounter(): Promise<Counter> {
  const c: Counter = { port: 0, reached: 0 };
  const socket: UdpSocket = createSocket('udp4');
  socket.on('message', () => c.reached++);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  c.port = socket.address().port;
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  return c;
}

/** Wait a little for a wrongly sent connection or datagram to show up. */
const settle = () => new Promise((r) => setTimeout(r, 20));

let tcpForbidden: Counter, udpForbidden: Counter;
let host: Host;

beforeAll(async () => {
  [tcpForbidden, udpForbidden] = await Promise.all([tcpCounter(), udpCounter()]);
  host = new Host({ resolver: async () => [] });
});

afterAll(async () => {
  host.close();
  for (const s of sockets) s.destroy();
  for (const c of cleanups.reverse()) await c();
});

/** The same grants as a Host policy text and as a plain NetworkPolicy for createScope. */
type Pair = [kind: string, scope: NetworkScope];
function scopes(rules: string): Promise<[Pair, Pair]> {
  const tenant = `t${Math.random().toString(36).slice(2, 8)}`;
  host.setPolicy(tenant, rules);
  const probe = host.tenant(tenant);
  // createScope's policy: the Host scope's own guard decides (same rules), so both kinds face the same grants.
  const basic = probe.then((s) => createScope({ tenant, policy: { decide: (r: PolicyRequest) => s.guard.decideSync(r) } }));
  return Promise.all([probe, basic]).then(([h, b]): [Pair, Pair] => [['Host scope', h], ['createScope', b]]);
}

function expectUnverified(err: unknown): void {
  expect(err).toBeInstanceOf(PolicyDeniedError);
  expect((err as PolicyDeniedError).decision).toMatchObject({ allow: false, code: 'unverified' });
}

describe('use confusion: each network method admits only its own use and protocol', () => {
  it.each(['redirect', 'accept', 'bind'] as const)('a %s grant opens no connection through network.connect', async (use) => {
    const protocol = use === 'redirect' ? 'http' : 'tcp';
    for (const [kind, scope] of await scopes(`allow ${use}:${protocol}://@loopback:${tcpForbidden.port}\nallow ${use}:tcp://@loopback:${tcpForbidden.port}`)) {
      // The grant is real: the guard mints a target for that use...
      const target = await scope.guard.authorize({ use, protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port });
      expect(target.use, kind).toBe(use);
      // ...which no connect admits, whichever driver is used.
      for (const driver of [tcpDriver, httpDriver] as Driver[]) {
        const err = await scope.network.connect(driver, connectAttempt(scope, target)).catch((e: unknown) => e);
        expectUnverified(err);
      }
    }
    // initiate() is refused too (it asks for connect).
    const [[, h]] = await scopes(`allow ${use}:tcp://@loopback:${tcpForbidden.port}`);
    const pre = new Preconnection({ scope: h, remote: { ipAddress: '127.0.0.1', port: tcpForbidden.port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver] });
    await expect(pre.initiate()).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });

  it('an accept grant sends no datagram through a connected UDP socket', async () => {
    for (const [, scope] of await scopes(`allow accept:udp://@loopback:${udpForbidden.port}`)) {
      const target = await scope.guard.authorize({ use: 'accept', protocol: 'udp', address: '127.0.0.1', port: udpForbidden.port });
      expectUnverified(await scope.network.connect(udpDriver, connectAttempt(scope, target)).catch((e: unknown) => e));
    }
    await settle();
    expect(udpForbidden.reached).toBe(0);
  });

  it('a bind grant for udp binds no tcp socket, and a connect target binds nothing', async () => {
    // A port the kernel just handed out and took back, so no other listener
    // holds it (a neighbour of another test's port may be anyone's).
    const held = createServer();
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
    const port = (held.address() as { port: number }).port;
    await new Promise<void>((r) => held.close(() => r()));
    for (const [kind, scope] of await scopes(`allow bind:udp://127.0.0.1:${port}\nallow tcp://127.0.0.1:${port}`)) {
      const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port });
      const connect = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port });
      for (const target of [bind, connect]) {
        const attempt = { signal: new AbortController().signal, target, local: undefined, security: SecurityParameters.disabled(), properties: new TransportProperties(), options: {}, guard: scope.guard };
        const err = await scope.network.listen(tcpDriver, attempt as unknown as ListenAttempt).catch((e: unknown) => e);
        expectUnverified(err);
      }
      // Nothing was bound there: the port is still free for anyone.
      const probe = createServer();
      await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(port, '127.0.0.1', resolve));
      await new Promise<void>((r) => probe.close(() => r()));
      expect(kind).toBeTruthy();
    }
  });

  it('a target from another scope of the same tenant, or a lookalike, is refused by both scope kinds', async () => {
    const [[, h1], [, b1]] = await scopes(`allow tcp://127.0.0.1:${tcpForbidden.port}`);
    const [[, h2], [, b2]] = await scopes(`allow tcp://127.0.0.1:${tcpForbidden.port}`);
    for (const [mint, use] of [[h1, b2], [b1, h2], [h1, b1], [b1, h1], [h1, h2], [b1, b2]] as const) {
      const t = await mint.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port });
      expectUnverified(await use.network.connect(tcpDriver, connectAttempt(use, t)).catch((e: unknown) => e));
      expectUnverified(await mint.network.connect(tcpDriver, connectAttempt(mint, { ...t } as CheckedTarget)).catch((e: unknown) => e));
    }
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });
});

describe('check-then-use: caller objects are read once, own data only', () => {
  const allowPublic: NetworkPolicy = {
    decide: (r) => (r.address === '1.1.1.1' ? { allow: true, rule: 'public only' } : { allow: false, code: 'no-match', reason: 'only 1.1.1.1', rule: null }),
  };

  it("createScope: a request getter that says 1.1.1.1 to the decision cannot make the connect reach 127.0.0.1", async () => {
    const scope = createScope({ tenant: 'getter', policy: allowPublic, resolver: async () => [] });
    let reads = 0;
    const shifty = { use: 'connect', protocol: 'tcp', port: tcpForbidden.port, get address() { return reads++ === 0 ? '1.1.1.1' : '127.0.0.1'; } };
    await expect(scope.guard.authorize(shifty as never)).rejects.toThrow(TypeError);
    expect(reads).toBe(0);
    // The decision is on the snapshot and the target is minted from the same snapshot.
    const t = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '1.1.1.1', port: tcpForbidden.port });
    expect(t.address).toBe('1.1.1.1');
  });

  it('an attempt whose target getter swaps the checked target for another is refused', async () => {
    for (const [, scope] of await scopes(`allow tcp://127.0.0.2:${tcpForbidden.port}`)) {
      const ok = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.2', port: tcpForbidden.port });
      const fake = { ...ok, address: '127.0.0.1' };
      let reads = 0;
      const attempt = { ...connectAttempt(scope, ok) } as Record<string, unknown>;
      delete attempt['target'];
      Object.defineProperty(attempt, 'target', { enumerable: true, get: () => (reads++ === 0 ? ok : fake) });
      await expect(scope.network.connect(tcpDriver, attempt as unknown as ConnectAttempt)).rejects.toThrow(TypeError);
      expect(reads).toBe(0);
    }
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });

  it('a Proxy attempt that describes a different target on a second look: the driver sees the first answer only', async () => {
    const allowed = await tcpCounter();
    for (const [, scope] of await scopes(`allow tcp://127.0.0.1:${allowed.port}`)) {
      const ok = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: allowed.port });
      const fake = { ...ok, port: tcpForbidden.port };
      const base = connectAttempt(scope, ok);
      let looks = 0;
      const proxy = new Proxy(base, {
        getOwnPropertyDescriptor: (t, k) => (k === 'target' ? { value: looks++ === 0 ? ok : fake, writable: true, enumerable: true, configurable: true } : Reflect.getOwnPropertyDescriptor(t, k)),
        get: (t, k) => (k === 'target' ? fake : Reflect.get(t, k)),
      });
      const channel = await scope.network.connect(tcpDriver, proxy);
      expect(channel.remote.port).toBe(allowed.port);
      channel.abort();
      expect(looks).toBe(1);
    }
    await settle();
    expect(allowed.reached).toBe(2);
    expect(tcpForbidden.reached).toBe(0);
  });
});

describe('prototype pollution changes no decision', () => {
  const polluted = <T>(key: string, value: unknown, fn: () => Promise<T>): Promise<T> => {
    Object.defineProperty(Object.prototype, key, { value, configurable: true, writable: true, enumerable: false });
    return fn().finally(() => delete (Object.prototype as Record<string, unknown>)[key]);
  };
  const allowAll = () => ({ allow: true, rule: 'injected' });

  it('Object.prototype.custom does not become every later policy\'s custom rule', async () => {
    await polluted('custom', allowAll, async () => {
      host.setPolicy('polluted-custom', `allow tcp://127.0.0.2:1`);
      host.setPolicy('polluted-custom-json', { allow: ['tcp://127.0.0.2:1'] });
      for (const id of ['polluted-custom', 'polluted-custom-json']) {
        const scope = await host.tenant(id);
        const err = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(PolicyDeniedError);
      }
    });
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });

  it('Object.prototype.allow does not become a JSON policy\'s allow list', async () => {
    await polluted('allow', ['tcp://*:*', 'tcp://@loopback:*'], async () => {
      host.setPolicy('polluted-allow', { deny: ['udp://@cloud-metadata:*'] });
      const scope = await host.tenant('polluted-allow');
      expect(scope.guard.decideSync({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port })).toMatchObject({ allow: false, code: 'no-match' });
    });
  });

  it('Object.prototype.policy does not become createScope\'s policy', async () => {
    await polluted('policy', { decide: allowAll }, async () => {
      const scope = createScope({ tenant: 'polluted-policy', resolver: async () => [] });
      expect(scope.guard.decideSync({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port })).toMatchObject({ allow: false, code: 'no-policy' });
      const pre = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: tcpForbidden.port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver] });
      await expect(pre.initiate()).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    });
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });

  it('Object.prototype.url does not rewrite a request', async () => {
    await polluted('url', `http://127.0.0.1:${tcpForbidden.port}/`, async () => {
      for (const [, scope] of await scopes('allow tcp://127.0.0.2:80')) {
        expect(scope.guard.decideSync({ use: 'connect', protocol: 'tcp', address: '127.0.0.2', port: 80 })).toMatchObject({ allow: true });
      }
    });
  });
});

describe('network.lookup needs a lookup grant, on both scope kinds', () => {
  it('no query leaves for a name the tenant may not look up', async () => {
    const queries: string[] = [];
    const resolver = async (name: string, family: 4 | 6) => {
      queries.push(name);
      return [{ address: family === 4 ? '127.0.0.1' : '::1', family }];
    };
    const h = new Host({ resolver });
    h.setPolicy('dns', 'allow tcp://allowed.test:443');
    const hs = await h.tenant('dns');
    const bs = createScope({ tenant: 'dns', policy: { decide: (r) => hs.guard.decideSync(r) }, network: new SystemNetwork(resolver) });
    for (const scope of [hs, bs]) {
      await expect(scope.network.lookup('secret-data.attacker.test', 4, new AbortController().signal)).rejects.toBeInstanceOf(PolicyDeniedError);
      await expect(scope.network.lookup('allowed.test', 4, new AbortController().signal)).resolves.toEqual([{ address: '127.0.0.1', family: 4 }]);
    }
    expect(queries).toEqual(['allowed.test', 'allowed.test']);
    h.close();
  });
});

describe('a guest holding only a scope cannot change it', () => {
  it('renaming the tenant, swapping the network or reaching the wrapped one opens nothing', async () => {
    host.setPolicy('admin-only', `allow tcp://127.0.0.1:${tcpForbidden.port}\nallow lookup:tcp://*`);
    for (const [kind, scope] of await scopes('allow tcp://127.0.0.2:1')) {
      const s = scope as unknown as Record<string, unknown>;
      expect(() => (s['tenant'] = 'admin-only'), kind).toThrow(TypeError);
      expect(() => (s['network'] = new SystemNetwork()), kind).toThrow(TypeError);
      expect(() => Object.defineProperty(scope, 'tenant', { value: 'admin-only' }), kind).toThrow(TypeError);
      expect(scope.tenant, kind).not.toBe('admin-only');
      // The wrapped (host or system) network is private: nothing on the checked one leads to it.
      expect(Object.getOwnPropertyNames(scope.network), kind).toEqual([]);
      expect((scope.network as unknown as Record<string, unknown>)['inner'], kind).toBeUndefined();
      await expect(scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: tcpForbidden.port }), kind).rejects.toBeInstanceOf(PolicyDeniedError);
    }
    await settle();
    expect(tcpForbidden.reached).toBe(0);
  });

  it('the methods the library calls on a scope, its network, peer sockets and leases cannot be replaced for every tenant', async () => {
    for (const [kind, scope] of await scopes(`allow tcp://127.0.0.1:${tcpForbidden.port}`)) {
      const protos = [Object.getPrototypeOf(scope), Object.getPrototypeOf(scope.network), Object.getPrototypeOf(await scope.lease('connection'))] as Record<string, unknown>[];
      for (const proto of protos) {
        expect(Object.isFrozen(proto), kind).toBe(true);
        for (const name of ['recheck', 'authorize', 'connect', 'sent', 'lookupAnyProtocol']) {
          expect(() => (proto[name] = () => undefined), `${kind} ${name}`).toThrow(TypeError);
        }
      }
    }
  });
});
