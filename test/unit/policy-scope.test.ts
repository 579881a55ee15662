/**
 * A tenant scope's guard, network and leases with fake drivers and an
 * injected (rebinding) resolver: targets, lookups, quotas, and the simple
 * BasicScope that createScope still makes.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, ListenAttempt, TransportChannel } from '../../src/driver.js';
import { NO_CAPABILITIES } from '../../src/driver.js';
import { PolicyDeniedError, QuotaExceededError } from '../../src/errors.js';
import { DelegatingNetwork, type ResolvedAddress } from '../../src/network.js';
import { createScope } from '../../src/policy/basic-scope.js';
import { isNetworkScope, mintTarget, type CheckedTarget, type DecisionRecord } from '../../src/policy/chokepoint.js';
import { Host } from '../../src/policy/host.js';
import { OwnAttempt } from '../../src/policy/admission.js';
import { OwnRequest } from '../../src/policy/requests.js';

function fakeDriver(protocol: 'tcp' | 'udp' = 'tcp') {
  const calls: CheckedTarget[] = [];
  const driver: Driver = {
    id: `fake-${protocol}`, stack: [protocol], protocol, ipProtocol: protocol, framing: 'stream', security: 'none',
    capabilities: NO_CAPABILITIES,
    available: () => ({ available: true }),
    connect: async (attempt) => {
      calls.push(attempt.target);
      return { fake: true } as unknown as TransportChannel;
    },
    listen: async (attempt) => {
      calls.push(attempt.target);
      return { local: { address: attempt.target.address, port: 1, family: 4 }, start: () => {}, close: async () => {} };
    },
  };
  return { driver, calls };
}

const attempt = (target: CheckedTarget) => ({ target, signal: new AbortController().signal }) as unknown as ConnectAttempt;

describe('TenantScope: targets', () => {
  it('mints canonical targets that carry the checked name for SNI', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://@loopback:*\nallow tls://api.example.com:443');
    const a = await host.tenant('a');
    expect(isNetworkScope(a)).toBe(true);
    const t = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '0x7f.1', port: 80, hostName: 'LocalHost.' });
    expect(t).toMatchObject({ tenant: 'a', address: '127.0.0.1', family: 4, port: 80, hostName: 'localhost', use: 'connect', protocol: 'tcp' });
    const t6 = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '0:0:0:0:0:0:0:1', port: 80 });
    expect(t6).toMatchObject({ address: '::1', family: 6, hostName: undefined });
    const err = await a.guard.authorize({ use: 'connect', protocol: 'tls', address: '127.0.0.1', port: 443, hostName: 'api.example.com' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).decision).toMatchObject({ allow: false, code: 'no-match' });
  });

  it('the network refuses targets from another tenant, a lookalike, a forged mint, or the wrong use', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1\nallow bind:tcp://127.0.0.1:2');
    host.setPolicy('b', 'allow tcp://127.0.0.1:1');
    const a = await host.tenant('a');
    const a2 = await host.tenant('a');
    const b = await host.tenant('b');
    const { driver, calls } = fakeDriver();
    const ta = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1 });
    const bind = await a.guard.authorize({ use: 'bind', protocol: 'tcp', address: '127.0.0.1', port: 2 });
    const lookalike = { ...ta };
    const forged = mintTarget({}, 'a', { use: 'connect', protocol: 'tcp', address: '10.0.0.1', port: 1, hostName: undefined }, { allow: true, rule: 'forged' }, a.revision);
    for (const [scope, target] of [[b, ta], [a2, ta], [a, lookalike], [a, forged], [a, bind]] as const) {
      const err = await scope.network.connect(driver, attempt(target as CheckedTarget)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PolicyDeniedError);
      expect((err as PolicyDeniedError).decision).toMatchObject({ code: 'unverified' });
    }
    expect(calls).toEqual([]);
    await a.network.connect(driver, attempt(ta));
    await a.network.listen(driver, { target: bind, signal: new AbortController().signal } as unknown as ListenAttempt);
    expect(calls).toEqual([ta, bind]);
    await expect(a.network.listen(driver, attempt(ta) as unknown as ListenAttempt)).rejects.toThrow(PolicyDeniedError);
  });

  it('a target minted before a reload is re-checked on connect', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1');
    const a = await host.tenant('a');
    const { driver, calls } = fakeDriver();
    const t = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1 });
    host.setPolicy('a', 'allow tcp://127.0.0.1:2');
    await expect(a.network.connect(driver, attempt(t))).rejects.toThrow(PolicyDeniedError);
    expect(calls).toEqual([]);
  });

  it('lets a host override one Network method and delegate the rest', async () => {
    const { driver } = fakeDriver();
    const dialled: string[] = [];
    class Recording extends DelegatingNetwork {
      override connect(d: Driver, at: ConnectAttempt) {
        dialled.push(at.target.address);
        return super.connect(d, at);
      }
    }
    const inner = new Recording({
      lookup: async () => [{ address: '127.0.0.1', family: 4 }],
      connect: (d, at) => d.connect(at),
      listen: async () => { throw new Error('no'); },
    });
    const host = new Host({ network: inner });
    host.setPolicy('a', 'allow tcp://localhost:1\nallow tcp://@loopback:1');
    const a = await host.tenant('a');
    expect(await a.guard.lookup('localhost', 4, 'tcp', new AbortController().signal)).toEqual([{ address: '127.0.0.1', family: 4 }]);
    await a.network.connect(driver, attempt(await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1 })));
    expect(dialled).toEqual(['127.0.0.1']);
  });
});

describe('requests and attempts the library makes itself', () => {
  it('are taken as made; a lookalike of their class is read as any caller object (own data only)', async () => {
    for (const scope of [createScope({ tenant: 't', policy: { decide: () => ({ allow: true, rule: 'all' }) } }), await hostTenant()]) {
      const { driver, calls } = fakeDriver();
      const own = new OwnRequest('connect', 'tcp', '127.0.0.1', 1, undefined);
      const target = await scope.guard.authorize(own);
      expect(target).toMatchObject({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1 });
      // The same prototype, fields as getters: not the library's, so its getters are refused as any caller's.
      let reads = 0;
      const lookalike = Object.create(OwnRequest.prototype, {
        use: { get: () => (reads++, 'connect') }, protocol: { get: () => 'tcp' }, address: { get: () => '127.0.0.1' }, port: { get: () => 1 },
      }) as OwnRequest;
      await expect(scope.guard.authorize(lookalike)).rejects.toThrow(TypeError);
      expect(reads).toBe(0);
      const signal = new AbortController().signal;
      await scope.network.connect(driver, new OwnAttempt({ signal, target, remote: undefined as never, local: undefined, security: undefined as never, properties: undefined as never, options: {} }, scope.guard));
      expect(calls).toEqual([target]);
      const fake = Object.create(OwnAttempt.prototype, { target: { get: () => target }, signal: { value: signal } }) as OwnAttempt;
      await expect(scope.network.connect(driver, fake)).rejects.toThrow(TypeError);
      expect(calls).toEqual([target]);
    }
  });
});

async function hostTenant() {
  const host = new Host({ resolver: async () => [] });
  host.setPolicy('a', 'allow tcp://127.0.0.1:1');
  return host.tenant('a');
}

describe('TenantScope: lookups through an injected, hostile resolver', () => {
  const asked: string[] = [];
  const resolver = async (h: string, family: 4 | 6): Promise<ResolvedAddress[]> => {
    asked.push(`${h}/${family}`);
    if (family === 6) return [{ address: '::1', family: 6 }, { address: '2606:4700::1', family: 6 }];
    return [
      { address: '93.184.216.34', family: 4 }, { address: '127.0.0.1', family: 4 }, { address: '169.254.169.254', family: 4 },
      { address: 'evil.example', family: 4 }, { address: '::1', family: 4 as never }, { address: '0x0a.1', family: 4 },
    ];
  };

  it('checks the lookup grant first, sends the canonical name, keeps only well-formed answers', async () => {
    const host = new Host({ resolver });
    host.setPolicy('a', 'allow tcp://api.example.com:443');
    const a = await host.tenant('a');
    const signal = new AbortController().signal;
    asked.length = 0;
    await expect(a.guard.lookup('secret.attacker.example', 4, 'tcp', signal)).rejects.toThrow(PolicyDeniedError);
    await expect(a.guard.lookup('api.example.com', 4, 'udp', signal)).rejects.toThrow(PolicyDeniedError);
    expect(asked).toEqual([]);
    const v4 = await a.guard.lookup('API.EXAMPLE.COM.', 4, 'tcp', signal);
    expect(asked).toEqual(['api.example.com/4']);
    expect(v4.map((r) => r.address)).toEqual(['93.184.216.34', '127.0.0.1', '169.254.169.254', '10.0.0.1']);
    // Mixed answers: each is authorised on its own; the forbidden ones are dropped, the public one proceeds.
    const fates = await Promise.all(
      v4.map((r) =>
        a.guard.authorize({ use: 'connect', protocol: 'tcp', address: r.address, port: 443, hostName: 'api.example.com' }).then(
          () => 'allowed',
          (e: PolicyDeniedError) => e.decision.allow === false && e.decision.code,
        ),
      ),
    );
    expect(fates).toEqual(['allowed', 'no-match', 'no-match', 'no-match']);
    const v6 = await a.guard.lookup('api.example.com', 6, 'tcp', signal);
    expect(v6.map((r) => r.address)).toEqual(['::1', '2606:4700::1']);
  });

  it('an IP literal needs no lookup and no grant', async () => {
    const host = new Host({ resolver });
    const a = await host.tenant('a');
    asked.length = 0;
    expect(await a.guard.lookup('127.1', 4, 'tcp', new AbortController().signal)).toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(await a.guard.lookup('127.1', 6, 'tcp', new AbortController().signal)).toEqual([]);
    expect(asked).toEqual([]);
  });

  it('network.lookup (no protocol) is allowed when some protocol grants the name', async () => {
    const host = new Host({ resolver });
    host.setPolicy('a', 'allow tls://*.example.com:443');
    const a = await host.tenant('a');
    const signal = new AbortController().signal;
    expect((await a.network.lookup('x.example.com', 6, signal)).length).toBe(2);
    await expect(a.network.lookup('example.com', 6, signal)).rejects.toThrow(PolicyDeniedError);
  });

  it('an aborted signal stops before any lookup', async () => {
    const host = new Host({ resolver });
    host.setPolicy('a', 'allow tcp://api.example.com:443');
    const a = await host.tenant('a');
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    asked.length = 0;
    await expect(a.guard.lookup('api.example.com', 4, 'tcp', ac.signal)).rejects.toThrow('stop');
    expect(asked).toEqual([]);
  });
});

describe('TenantScope: quotas', () => {
  it('connections and listeners: exhaustion is QuotaExceededError, never a denial, never a wait', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'limit connections 2\nlimit listeners 1');
    const a = await host.tenant('a');
    const a2 = await host.tenant('a');
    const l1 = await a.lease('connection');
    const l2 = await a2.lease('connection');
    let err: unknown;
    try {
      a.lease('connection');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).not.toBeInstanceOf(PolicyDeniedError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'connections' });
    const listener = await a.lease('listener');
    expect(() => a.lease('listener')).toThrow(/listeners/);
    l1.release();
    l1.release();
    (await a.lease('connection')).release();
    listener.release();
    (await a.lease('listener')).release();
    l2.release();
    // Other tenants are unaffected.
    const b = await host.tenant('b');
    for (let i = 0; i < 5; i++) b.lease('connection');
  });

  it('byte budgets per window, per direction and combined, on the host clock', async () => {
    let now = 1_000_000;
    const host = new Host({ resolver: async () => [], now: () => now });
    host.setPolicy('a', 'limit sent 100 per 1s\nlimit bytes 150 per 10s');
    const a = await host.tenant('a');
    const lease = await a.lease('connection');
    lease.sent(60);
    lease.sent(40);
    expect(() => lease.sent(1)).toThrow(expect.objectContaining({ code: 'ERR_TAPS_QUOTA_EXCEEDED', quota: 'bytes-sent' }));
    lease.received(50);
    expect(() => lease.received(1)).toThrow(expect.objectContaining({ quota: 'bytes' }));
    now += 1000;
    expect(() => lease.sent(1)).toThrow(expect.objectContaining({ quota: 'bytes' }));
    now += 9000;
    lease.sent(100);
    expect(() => lease.sent(-1)).toThrow(RangeError);
    // Limits follow the revision.
    host.setPolicy('a', 'limit sent 1000 per 1s');
    lease.sent(500);
    lease.release();
    lease.sent(1_000_000); // released: no longer counted
  });

  it('a lease refuses a target this scope did not mint', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1');
    host.setPolicy('b', 'allow tcp://127.0.0.1:1');
    const a = await host.tenant('a');
    const b = await host.tenant('b');
    const t = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1 });
    expect(() => b.lease('connection', t)).toThrow(TypeError);
  });
});

describe('createScope (BasicScope) keeps working', () => {
  it('decides with the given policy, records the new fields, refuses non-IP targets', async () => {
    const seen: DecisionRecord[] = [];
    const scope = createScope({
      tenant: 't',
      policy: { decide: (r) => (r.port === 1 ? { allow: true, rule: 'one' } : { allow: false, code: 'no-match', reason: 'not one', rule: null }) },
      resolver: async () => [],
      onDecision: (r) => seen.push(r),
      limits: { connections: 1 },
    });
    const t = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '::FFFF:127.0.0.1', port: 1 });
    expect(t.address).toBe('::ffff:127.0.0.1');
    expect(seen[0]).toMatchObject({ tenant: 't', use: 'connect', protocol: 'tcp', port: 1, allow: true, rule: 'one', revision: 0 });
    await expect(scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: 'localhost', port: 1 })).rejects.toThrow(PolicyDeniedError);
    expect(scope.guard.decideSync!({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 2 })).toMatchObject({ allow: false });
    const lease = await scope.lease('connection');
    expect(() => scope.lease('connection')).toThrow(QuotaExceededError);
    lease.release();
    const asyncScope = createScope({ tenant: 'u', policy: { decide: async () => ({ allow: true, rule: 'x' }) }, resolver: async () => [] });
    expect(asyncScope.guard.decideSync!({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: 1 })).toMatchObject({ allow: false, code: 'policy-error' });
  });
});

describe('createScope: whatever the policy answers, a decision', () => {
  const req = { use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 80 } as const;
  const guardFor = (decide: () => unknown) => createScope({ tenant: 't', policy: { decide: decide as never } }).guard;

  it('allows on a synchronous or an asynchronous allow', async () => {
    expect((await guardFor(() => ({ allow: true, rule: 'sync' })).authorize(req)).decision).toMatchObject({ allow: true, rule: 'sync' });
    expect((await guardFor(async () => ({ allow: true, rule: 'async' })).authorize(req)).decision).toMatchObject({ allow: true, rule: 'async' });
  });

  it.each([
    ['throws', () => { throw new Error('boom'); }],
    ['rejects', () => Promise.reject(new Error('boom'))],
    ['answers nothing', () => undefined],
    ['answers a malformed decision', () => ({ allow: 'yes' })],
    ['answers with an allow getter that throws', () => Object.defineProperty({}, 'allow', { get() { throw new Error('getter'); } })],
    ['resolves to a malformed decision', async () => 42],
  ])('denies with policy-error when the policy %s', async (_what, decide) => {
    const err = await guardFor(decide).authorize(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).decision).toMatchObject({ allow: false, code: 'policy-error' });
  });
});

describe('createScope: targets are reused only for the very same answer', () => {
  it('the same request allowed by the same rule gets the same target; any difference gets a new one', async () => {
    let rule = 'r1';
    const guard = createScope({ tenant: 't', policy: { decide: () => ({ allow: true, rule }) } }).guard;
    const req = { use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 80 } as const;
    const a = await guard.authorize(req);
    expect(await guard.authorize({ ...req })).toBe(a);
    expect(await guard.authorize({ ...req, port: 81 })).not.toBe(a);
    rule = 'r2';
    const b = await guard.authorize(req);
    expect(b).not.toBe(a);
    expect(b.decision.rule).toBe('r2');
    expect(await guard.authorize({ ...req, hostName: 'localhost' })).toMatchObject({ hostName: 'localhost' });
    expect(Object.isFrozen(a)).toBe(true);
  });
});

describe('TenantScope: a few decisions remembered', () => {
  it('a selection asks one per stack and address and the next asks them again: the same answers and targets, until the policy changes', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('m', 'allow tls://@loopback:*\nallow quic://@loopback:*');
    const m = await host.tenant('m');
    const ask = (protocol: 'tls' | 'quic', address: string) => m.guard.authorize({ use: 'connect', protocol, address, port: 4433 });
    const round = () => Promise.all([ask('tls', '::1'), ask('tls', '127.0.0.1'), ask('quic', '::1'), ask('quic', '127.0.0.1')]);
    const first = await round();
    const again = await round();
    for (let i = 0; i < 4; i++) expect(again[i]).toBe(first[i]); // remembered, in turn, not only the last one
    expect(new Set(first).size).toBe(4);
    // More different questions than it keeps: the oldest are decided again (a fresh target), the answer the same.
    for (let p = 1; p <= 8; p++) await m.guard.authorize({ use: 'connect', protocol: 'tls', address: '127.0.0.1', port: p });
    const evicted = await round();
    for (let i = 0; i < 4; i++) expect(evicted[i]).not.toBe(first[i]);
    expect(evicted.map((t) => `${t.protocol} ${t.address}`)).toEqual(first.map((t) => `${t.protocol} ${t.address}`));
    // A new revision decides again: a new target, and a question it no longer allows is denied.
    host.setPolicy('m', 'allow tls://@loopback:*');
    const tls = await ask('tls', '::1');
    expect(tls).not.toBe(evicted[0]);
    expect(tls.revision).toBeGreaterThan(evicted[0]!.revision);
    await expect(ask('quic', '::1')).rejects.toBeInstanceOf(PolicyDeniedError);
    host.close();
  });
});
