/**
 * The Host: tenants, records, audit mode, custom rules, hot reload (API and
 * watched file) and revocation of live leases.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { PolicyDeniedError } from '../../src/errors.js';
import type { DecisionRecord } from '../../src/policy/index.js';
import { Host, type ReloadEvent } from '../../src/policy/host.js';
import { PolicyParseError } from '../../src/policy/grammar.js';
import type { PolicyDecision, PolicyRequest } from '../../src/policy/types.js';

const tcp = (address: string, port: number, host?: string): PolicyRequest => ({ use: 'connect', protocol: 'tcp', address, port, host });

/** A clock whose timers run only when the test says so. */
function manualClock(): Clock & { fire(): void; pending(): number } {
  const timers = new Set<() => void>();
  return {
    now: () => 0,
    setTimeout: (fn) => {
      timers.add(fn);
      return fn;
    },
    clearTimeout: (h) => void timers.delete(h as () => void),
    fire: () => {
      const all = [...timers];
      timers.clear();
      for (const t of all) t();
    },
    pending: () => timers.size,
  };
}

describe('Host: tenants are isolated', () => {
  it('two tenants, different policies, one process', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
    host.setPolicy('b', { allow: ['tcp://127.0.0.1:2000'] });
    const a = await host.tenant('a');
    const b = await host.tenant('b');
    expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(true);
    expect((await a.guard.decide(tcp('127.0.0.1', 2000))).allow).toBe(false);
    expect((await b.guard.decide(tcp('127.0.0.1', 2000))).allow).toBe(true);
    expect((await b.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(false);
    expect(host.tenants().sort()).toEqual(['a', 'b']);
  });

  it('refuses bad tenant ids and options synchronously or as TypeError', async () => {
    const host = new Host({ resolver: async () => [] });
    expect(() => host.setPolicy('', 'allow tcp://a.com:1')).toThrow(TypeError);
    expect(() => host.setPolicy('a b', 'allow tcp://a.com:1')).toThrow(TypeError);
    await expect(host.tenant(42 as never)).rejects.toThrow(TypeError);
    expect(() => new Host({ onRevoke: 'sometimes' as never })).toThrow(RangeError);
    expect(() => new Host({ clockTolerance: -1 })).toThrow(RangeError);
  });
});

describe('Host: decision records', () => {
  it('go to onDecision and to taps:policy:decision, one per decision', async () => {
    const fromCallback: DecisionRecord[] = [];
    const fromChannel: DecisionRecord[] = [];
    const listener = (m: unknown) => fromChannel.push(m as DecisionRecord);
    subscribe('taps:policy:decision', listener);
    try {
      const host = new Host({ resolver: async () => [], onDecision: (r) => fromCallback.push(r), now: () => 1234 });
      host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
      const a = await host.tenant('a');
      await a.guard.decide(tcp('127.0.0.1', 1000));
      await a.guard.decide(tcp('127.0.0.2', 1000));
      expect(fromCallback).toHaveLength(2);
      expect(fromChannel.filter((r) => r.tenant === 'a')).toHaveLength(2);
      expect(fromCallback[0]).toMatchObject({
        tenant: 'a', use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1000, allow: true,
        rule: 'tcp://127.0.0.1:1000', code: undefined, mode: 'enforce', revision: 1, time: 1234,
      });
      expect(fromCallback[1]).toMatchObject({ allow: false, code: 'no-match', rule: null, reason: 'no rule allows connect tcp://127.0.0.2:1000' });
      expect(fromCallback[1]!.id).toBeGreaterThan(fromCallback[0]!.id);
    } finally {
      unsubscribe('taps:policy:decision', listener);
    }
  });

  it('a throwing onDecision never changes the decision', async () => {
    const host = new Host({ resolver: async () => [], onDecision: () => { throw new Error('host bug'); } });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
    const a = await host.tenant('a');
    expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(true);
  });
});

describe('Host: audit mode', () => {
  it('records the would-be denial and lets it through; malformed requests stay denied', async () => {
    const seen: DecisionRecord[] = [];
    const host = new Host({ resolver: async () => [], onDecision: (r) => seen.push(r) });
    host.setPolicy('a', 'mode audit\nallow tcp://127.0.0.1:1000\ndeny tcp://127.0.0.3:*');
    const a = await host.tenant('a');
    const d = await a.guard.decide(tcp('127.0.0.2', 1000));
    expect(d).toMatchObject({ allow: true, reason: expect.stringMatching(/^audit: would deny \(no-match\)/) });
    expect(seen.at(-1)).toMatchObject({ allow: false, code: 'no-match', mode: 'audit' });
    expect(await a.guard.decide(tcp('127.0.0.3', 1))).toMatchObject({ allow: true, rule: 'tcp://127.0.0.3:*' });
    expect(seen.at(-1)).toMatchObject({ allow: false, code: 'denied', mode: 'audit' });
    expect(await a.guard.decide(tcp('not-an-ip', 1))).toMatchObject({ allow: false, code: 'invalid-host' });
    const target = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.2', port: 9 });
    expect(target.decision.reason).toMatch(/^audit:/);
  });
});

describe('Host: custom rules', () => {
  it('answer after the compiled rules, never over a deny rule', async () => {
    const seen: unknown[] = [];
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000\ndeny tcp://127.0.0.9:*', {
      custom: (req) => {
        seen.push(req);
        if (req.port === 2000) return { allow: true, rule: 'port-2000' };
        if (req.port === 1000 && req.address === '127.0.0.1') return { allow: false, code: 'denied', reason: 'maintenance', rule: 'custom' };
        return undefined;
      },
    });
    const a = await host.tenant('a');
    expect(await a.guard.decide(tcp('127.0.0.1', 2000))).toMatchObject({ allow: true, rule: 'port-2000' });
    expect(await a.guard.decide(tcp('127.0.0.1', 1000))).toMatchObject({ allow: false, reason: 'maintenance' });
    expect(await a.guard.decide(tcp('127.0.0.2', 3000))).toMatchObject({ allow: false, code: 'no-match' });
    seen.length = 0;
    expect(await a.guard.decide(tcp('127.0.0.9', 2000))).toMatchObject({ allow: false, code: 'denied' });
    expect(seen).toHaveLength(0);
    await a.guard.decide({ use: 'connect', protocol: 'tcp', host: 'X.Test.', address: '::ffff:127.0.0.1', port: 5 });
    expect(seen[0]).toMatchObject({
      tenant: 'a', name: 'x.test', host: 'X.Test.', address: '::ffff:127.0.0.1', addressClass: 'loopback', port: 5,
      builtin: { allow: false, code: 'no-match' },
    });
    expect(Object.isFrozen(seen[0])).toBe(true);
  });

  it('a throwing, malformed, rejecting or async-in-sync custom rule denies with policy-error', async () => {
    const host = new Host({ resolver: async () => [] });
    const a = await host.tenant('a');
    const cases: Array<[(r: { port: number | undefined }) => unknown, 'sync' | 'async']> = [
      [() => { throw new Error('bug'); }, 'async'],
      [() => ({ allow: 'yes' }), 'async'],
      [() => Promise.reject(new Error('db down')), 'async'],
      [() => Promise.resolve({ allow: true }), 'sync'],
    ];
    for (const [custom, how] of cases) {
      host.setPolicy('a', 'allow tcp://127.0.0.1:1', { custom: custom as never });
      const d = how === 'sync' ? a.guard.decideSync(tcp('127.0.0.1', 1)) : await a.guard.decide(tcp('127.0.0.1', 1));
      expect(d).toMatchObject({ allow: false, code: 'policy-error' });
    }
  });

  it('an async custom rule that never answers times out into policy-error', async () => {
    const clock = manualClock();
    const host = new Host({ resolver: async () => [], clock });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1', { custom: () => new Promise<PolicyDecision>(() => {}), customTimeoutMs: 250 });
    const a = await host.tenant('a');
    const pending = a.guard.decide(tcp('127.0.0.1', 1));
    await Promise.resolve();
    expect(clock.pending()).toBe(1);
    clock.fire();
    expect(await pending).toMatchObject({ allow: false, code: 'policy-error', reason: expect.stringMatching(/250 ms/) });
  });

  it('an async custom rule that answers in time clears its timer', async () => {
    const clock = manualClock();
    const host = new Host({ resolver: async () => [], clock });
    host.setPolicy('a', '', { custom: async () => ({ allow: true, rule: 'async-ok' }) });
    const a = await host.tenant('a');
    expect(await a.guard.decide(tcp('127.0.0.1', 1))).toMatchObject({ allow: true, rule: 'async-ok' });
    expect(clock.pending()).toBe(0);
  });
});

describe('Host: hot reload through the API', () => {
  it('swaps atomically, bumps the revision, and keeps the old revision when the new one does not parse', async () => {
    const host = new Host({ resolver: async () => [] });
    const r1 = host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
    const a = await host.tenant('a');
    expect(a.revision).toBe(r1);
    expect(() => host.setPolicy('a', 'allow tcp://127.0.0.1:1000\nallow tcp://127.0.0.1:99999')).toThrow(PolicyParseError);
    expect(host.revision).toBe(r1);
    expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(true);
    const r2 = host.setPolicy('a', 'allow tcp://127.0.0.1:2000');
    expect(r2).toBe(r1 + 1);
    expect(a.revision).toBe(r2);
    expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(false);
    expect((await a.guard.decide(tcp('127.0.0.1', 2000))).allow).toBe(true);
  });

  it('a decision in flight finishes on the revision it started with', async () => {
    const clock = manualClock();
    const seen: DecisionRecord[] = [];
    const host = new Host({ resolver: async () => [], clock, onDecision: (r) => seen.push(r) });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r1 = host.setPolicy('a', 'allow tcp://127.0.0.1:1', { custom: async () => (await gate, undefined) });
    const a = await host.tenant('a');
    const pending = a.guard.decide(tcp('127.0.0.1', 1));
    host.setPolicy('a', '');
    release();
    expect((await pending).allow).toBe(true);
    expect(seen.at(-1)!.revision).toBe(r1);
    expect((await a.guard.decide(tcp('127.0.0.1', 1))).allow).toBe(false);
  });

  it('revokes live leases the new revision forbids (close), or keeps them (keep)', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000\nallow tcp://127.0.0.1:2000');
    const a = await host.tenant('a');
    const t1 = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1000 });
    const t2 = await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 2000 });
    const l1 = await a.lease('connection', t1);
    const l2 = await a.lease('connection', t2);
    const l3 = await a.lease('connection');
    const revoked: string[] = [];
    l1.onRevoke!((d) => revoked.push(`1:${d.code}:${d.reason}`));
    l2.onRevoke!((d) => revoked.push(`2:${d.code}`));
    l3.onRevoke!((d) => revoked.push(`3:${d.code}`));
    host.setPolicy('a', 'allow tcp://127.0.0.1:2000', { onRevoke: 'keep' });
    expect(revoked).toEqual([]);
    const r = host.setPolicy('a', 'allow tcp://127.0.0.1:2000');
    expect(revoked).toEqual([`1:revoked:revision ${r} forbids this connection: no rule allows connect tcp://127.0.0.1:1000`]);
    // Registering after the fact still hears about it, once.
    const late: string[] = [];
    l1.onRevoke!((d) => late.push(d.code));
    expect(late).toEqual(['revoked']);
    host.removeTenant('a');
    expect(revoked.sort()).toEqual([expect.stringMatching(/^1:revoked/), '2:revoked', '3:revoked']);
    l1.release();
    l2.release();
    l3.release();
  });

  it('a lease taken before the target is known is bound later (winner target, or an accepted peer)', async () => {
    const host = new Host({ resolver: async () => [] });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000\nallow accept:tcp://@loopback:*');
    host.setPolicy('b', 'allow tcp://127.0.0.1:1000');
    const a = await host.tenant('a');
    const b = await host.tenant('b');
    const outgoing = await a.lease('connection');
    const incoming = await a.lease('connection');
    outgoing.bind!(await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1000 }));
    incoming.bind!({ use: 'accept', protocol: 'tcp', address: '127.0.0.5', port: 40000 });
    const fates: string[] = [];
    outgoing.onRevoke!(() => fates.push('outgoing'));
    incoming.onRevoke!(() => fates.push('incoming'));
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
    expect(fates).toEqual(['incoming']);
    host.setPolicy('a', '');
    expect(fates).toEqual(['incoming', 'outgoing']);
    const foreign = await b.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1000 });
    const spare = await a.lease('connection');
    expect(() => spare.bind(foreign)).toThrow(TypeError);
    spare.release();
    outgoing.release();
    incoming.release();
  });

  it('host-wide default onRevoke: keep', async () => {
    const host = new Host({ resolver: async () => [], onRevoke: 'keep' });
    host.setPolicy('a', 'allow tcp://127.0.0.1:1000');
    const a = await host.tenant('a');
    const lease = await a.lease('connection', await a.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 1000 }));
    let called = false;
    lease.onRevoke!(() => (called = true));
    host.setPolicy('a', '');
    expect(called).toBe(false);
    lease.release();
  });
});

describe('Host: policy files', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('loads tenants from a file and reloads it when it changes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'taps-policy-'));
    dirs.push(dir);
    const file = join(dir, 'tenants.policy');
    await writeFile(file, 'tenant a\nallow tcp://127.0.0.1:1000\ntenant b\nallow tcp://127.0.0.1:2000\n');
    const events: ReloadEvent[] = [];
    let notify: () => void = () => {};
    const host = new Host({
      resolver: async () => [],
      reloadDebounceMs: 10,
      onReload: (e) => {
        events.push(e);
        notify();
      },
    });
    try {
      const next = () => new Promise<void>((r) => (notify = r));
      const r1 = await host.loadPolicyFile(file, { watch: true });
      const a = await host.tenant('a');
      const b = await host.tenant('b');
      expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(true);
      expect((await b.guard.decide(tcp('127.0.0.1', 2000))).allow).toBe(true);

      // A broken file keeps the old revision and says why.
      let changed = next();
      await writeFile(file, 'tenant a\nallow tcp://127.0.0.1:1000\nallow tcp://oops\n');
      await changed;
      expect(events.at(-1)!.error).toBeInstanceOf(PolicyParseError);
      expect(events.at(-1)!.error!.message).toMatch(/tenants\.policy:3:17: a port is required/);
      expect(host.revision).toBe(r1);

      // A good file swaps in; b disappears from it and loses its policy.
      changed = next();
      await writeFile(file, '{ "tenants": { "a": { "allow": ["tcp://127.0.0.1:3000"] } } }');
      await changed;
      expect(events.at(-1)).toMatchObject({ revision: r1 + 1, tenants: ['a'] });
      expect((await a.guard.decide(tcp('127.0.0.1', 1000))).allow).toBe(false);
      expect((await a.guard.decide(tcp('127.0.0.1', 3000))).allow).toBe(true);
      expect(await b.guard.decide(tcp('127.0.0.1', 2000))).toMatchObject({ allow: false, code: 'no-policy' });
    } finally {
      host.close();
    }
  });

  it('a file that does not parse at first load rejects with the position', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'taps-policy-'));
    dirs.push(dir);
    const file = join(dir, 'bad.policy');
    await writeFile(file, 'tenant a\n  allow tcp://a.com:1-\n');
    const host = new Host({ resolver: async () => [] });
    await expect(host.loadPolicyFile(file)).rejects.toThrow(/bad\.policy:2:21: invalid port "1-"/);
    expect(host.revision).toBe(0);
    await expect(host.loadPolicyFile(join(dir, 'missing.policy'))).rejects.toThrow(/ENOENT/);
  });
});

describe('Host.tenant claims handling', () => {
  it('claims without trusted issuers are refused as policy-error', async () => {
    const host = new Host({ resolver: async () => [] });
    const err = await host.tenant('a', { claims: 'x.y.z' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).decision).toMatchObject({ code: 'policy-error' });
  });
});
