/**
 * The selection pipeline with fake drivers, an injected resolver and a manual
 * clock: gather → policy → rank → race, and the report that explains it.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { EstablishmentError } from '../../src/errors.js';
import type { ResolvedAddress } from '../../src/network.js';
import { createScope } from '../../src/policy/index.js';
import type { NetworkPolicy, PolicyRequest } from '../../src/policy/types.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { NEVER_ABORTED } from '../../src/driver.js';
import { select, type SelectionInput } from '../../src/selection/pipeline.js';
import { racingCacheOf } from '../../src/selection/racing-cache.js';
import { DEFAULT_RACING } from '../../src/selection/racing-options.js';
import { fakeDriver, type Behaviour } from '../helpers/fake-driver.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };

function resolverFor(clock: ManualClock, answers: Record<string, { v6?: string[]; v4?: string[]; v6Delay?: number; v4Delay?: number }>, queries: string[] = []) {
  return (host: string, family: 4 | 6): Promise<ResolvedAddress[]> => {
    queries.push(`${host}/${family}`);
    const a = answers[host];
    const list = (family === 6 ? a?.v6 : a?.v4) ?? [];
    const delay = (family === 6 ? a?.v6Delay : a?.v4Delay) ?? 0;
    return new Promise((resolve, reject) =>
      clock.setTimeout(() => (a ? resolve(list.map((address) => ({ address, family }))) : reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }))), delay),
    );
  };
}

function input(clock: ManualClock, over: Partial<SelectionInput> & Pick<SelectionInput, 'drivers'>): SelectionInput {
  return {
    scope: createScope({ tenant: 't', policy: allow, resolver: resolverFor(clock, { 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } }) }),
    remote: RemoteEndpoint.from({ hostName: 'svc.test', port: 443 }),
    properties: new TransportProperties(),
    security: SecurityParameters.disabled(),
    framerCount: 0,
    driverOptions: {},
    racing: DEFAULT_RACING,
    clock,
    ...over,
  };
}

describe('selection pipeline', () => {
  it('a blackholed first address is overtaken after exactly one attempt delay, and the loser is aborted', async () => {
    const clock = new ManualClock();
    const behaviour = (a: string): Behaviour => (a === '::1' ? 'hang' : { ready: 1 });
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour });
    const p = select(input(clock, { drivers: [tcp] }));
    await clock.advance(250);
    expect(tcp.attempts.map((a) => a.address)).toEqual(['::1', '127.0.0.1']);
    await clock.advance(1);
    const r = await p;
    expect(r.candidate.address).toBe('127.0.0.1');
    expect(r.candidate.startedAt).toBe(250);
    expect(tcp.attempts[0]!.aborted).toBe(true);
    const v6 = r.report.candidates.find((c) => c.address === '::1')!;
    expect(v6.fate).toBe('cancelled');
    expect(r.report.winner).toBe(r.candidate.id);
    expect(clock.pending).toBe(0);
  });

  it('a refused first address hands over at once, not after the delay', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour: (a) => (a === '::1' ? { refuse: 1 } : { ready: 1 }) });
    const p = select(input(clock, { drivers: [tcp] }));
    await clock.advance(5);
    const r = await p;
    expect(r.candidate.address).toBe('127.0.0.1');
    expect(r.candidate.startedAt).toBe(1);
    const v6 = r.report.candidates.find((c) => c.address === '::1')!;
    expect(v6.fate).toBe('failed');
    expect(v6.reason).toMatch(/ECONNREFUSED/);
  });

  it('explains unsuitable and unavailable stacks, and ranks the preferred one first', async () => {
    const clock = new ManualClock();
    const udp = fakeDriver({ id: 'udp', protocol: 'udp', ipProtocol: 'udp', framing: 'message', clock, capabilities: { reliable: false, ordered: false, messageBoundaries: true, congestionControl: false } });
    const tcp = fakeDriver({ id: 'tcp', clock });
    const quic = fakeDriver({ id: 'quic', protocol: 'quic', ipProtocol: 'udp', clock, unavailable: 'native module missing', capabilities: { multistream: true, messageBoundaries: true } });
    const p = select(input(clock, { drivers: [tcp, udp, quic], properties: TransportProperties.unreliableDatagram(), framerCount: 1 }));
    await clock.advance(10);
    const r = await p;
    expect(r.driver.id).toBe('udp');
    const byDriver = (id: string) => r.report.candidates.filter((c) => c.driver === id);
    expect(byDriver('quic')[0]).toMatchObject({ fate: 'unavailable', reason: 'native module missing' });
    // TCP is suitable (reliability is only avoided) but ranks after UDP and is never started.
    expect(byDriver('tcp').length).toBeGreaterThan(0);
    for (const c of byDriver('tcp')) {
      expect(c).toMatchObject({ fate: 'skipped', reason: 'not attempted: another candidate won first' });
      expect(c.startedAt).toBeUndefined();
    }
  });

  it('required properties drop stacks with a reason naming the property', async () => {
    const clock = new ManualClock();
    const udp = fakeDriver({ id: 'udp', protocol: 'udp', ipProtocol: 'udp', framing: 'message', clock, capabilities: { reliable: false, ordered: false, messageBoundaries: true } });
    const p = select(input(clock, { drivers: [udp], properties: TransportProperties.reliableInorderStream() }));
    const err = await p.catch((e) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    expect(err.code).toBe('ERR_TAPS_NO_CANDIDATES');
    expect(err.report.candidates[0].reason).toMatch(/reliability is required but udp is unreliable/);
  });

  it('security required drops unencrypted stacks; disabled drops encrypted ones', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, capabilities: { encrypted: true } });
    const p = select(input(clock, { drivers: [tcp, tls], security: new SecurityParameters({}) }));
    await clock.advance(5);
    const r = await p;
    expect(r.driver.id).toBe('tls');
    expect(r.report.candidates.find((c) => c.driver === 'tcp')!.reason).toMatch(/unencrypted and security is required/);
    const p2 = select(input(clock, { drivers: [tcp, tls] }));
    await clock.advance(5);
    expect((await p2).driver.id).toBe('tcp');
  });

  it('opportunistic security tries unencrypted stacks only after every encrypted one failed', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, behaviour: () => 'hang' });
    const p = select(input(clock, { drivers: [tcp, tls], security: SecurityParameters.opportunistic(), timeout: 3000 }));
    const caught = p.catch((e) => e);
    await clock.advance(3000);
    // A hanging secure stack is never raced against the insecure one: it times out instead.
    expect((await caught).code).toBe('ERR_TAPS_TIMEOUT');
    expect(tcp.attempts).toHaveLength(0);
    expect(tls.attempts).toHaveLength(2);
    const tls2 = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, behaviour: () => ({ refuse: 1 }) });
    const p2 = select(input(clock, { drivers: [tcp, tls2], security: SecurityParameters.opportunistic() }));
    await clock.advance(10);
    const r = await p2;
    expect(r.driver.id).toBe('tcp');
    expect(r.report.candidates.filter((c) => c.driver === 'tls').every((c) => c.fate === 'failed')).toBe(true);
  });

  it('denied addresses are never attempted, and a denied lookup sends no DNS query', async () => {
    const clock = new ManualClock();
    const queries: string[] = [];
    const seen: PolicyRequest[] = [];
    const policy: NetworkPolicy = {
      decide: (req) => {
        seen.push(req);
        if (req.use === 'connect' && req.address === '::1') return { allow: false, code: 'denied', reason: 'no v6 loopback', rule: 'deny ::1' };
        return { allow: true, rule: 'rest' };
      },
    };
    const tcp = fakeDriver({ id: 'tcp', clock });
    const scope = createScope({ tenant: 't', policy, resolver: resolverFor(clock, { 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } }, queries) });
    const p = select(input(clock, { drivers: [tcp], scope }));
    await clock.advance(5);
    const r = await p;
    expect(tcp.attempts.map((a) => a.address)).toEqual(['127.0.0.1']);
    expect(tcp.attempts[0]!.hostName).toBe('svc.test');
    const denied = r.report.candidates.find((c) => c.fate === 'denied')!;
    expect(denied).toMatchObject({ address: '::1', code: 'denied' });
    expect(denied.decision).toMatchObject({ allow: false, rule: 'deny ::1' });
    expect(seen.map((s) => s.use)).toEqual(['lookup', 'connect', 'connect']);

    const noLookup = createScope({ tenant: 't', policy: { decide: (q) => (q.use === 'lookup' ? { allow: false, code: 'no-match', reason: 'no grant', rule: null } : { allow: true, rule: 'x' }) }, resolver: resolverFor(clock, {}, queries) });
    const before = queries.length;
    const err = await select(input(clock, { drivers: [tcp], scope: noLookup })).catch((e) => e);
    expect(err.code).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(queries.length).toBe(before);
  });

  it('the lookup grant is asked once per protocol and recorded the same way whether the policy answers at once or later', async () => {
    const run = async (later: boolean) => {
      const clock = new ManualClock();
      const seen: string[] = [];
      const answer = (req: PolicyRequest) => {
        seen.push(`${req.use} ${req.protocol} ${req.address ?? req.host}`);
        if (req.use === 'lookup' && req.protocol === 'quic') return { allow: false as const, code: 'denied' as const, reason: 'no quic lookups', rule: 'deny quic' };
        return { allow: true as const, rule: 'rest' };
      };
      const policy: NetworkPolicy = { decide: (req) => (later ? Promise.resolve(answer(req)) : answer(req)) };
      const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, capabilities: { encrypted: true }, behaviour: () => ({ refuse: 1 }) });
      const tls2 = fakeDriver({ id: 'tls2', protocol: 'tls', security: 'tls', clock, capabilities: { encrypted: true }, behaviour: () => ({ refuse: 1 }) });
      const quic = fakeDriver({ id: 'quic', protocol: 'quic', ipProtocol: 'udp', security: 'tls', clock, capabilities: { multistream: true, encrypted: true } });
      const scope = createScope({ tenant: 't', policy, resolver: resolverFor(clock, { 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } }) });
      const p = select(input(clock, { drivers: [tls, quic, tls2], scope, security: new SecurityParameters({}) }));
      p.catch(() => {});
      for (let ms = 0; ms < 8; ms++) await clock.advance(1);
      const err = (await p.catch((e: unknown) => e)) as EstablishmentError;
      expect(quic.attempts).toEqual([]);
      return { seen, candidates: err.report.candidates.map((c) => `${c.driver} ${c.address ?? '-'} ${c.fate} ${c.decision?.rule ?? '-'}`) };
    };
    const now = await run(false);
    expect(now.seen.filter((s) => s.startsWith('lookup'))).toEqual(['lookup tls svc.test', 'lookup quic svc.test']);
    expect(now.candidates).toContain('quic - denied deny quic');
    expect(await run(true)).toEqual(now);
  });

  it('no policy means every candidate is denied', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const scope = createScope({ tenant: 't', resolver: resolverFor(clock, {}) });
    const err = await select(input(clock, { drivers: [tcp], scope, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port: 1 }) })).catch((e) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    expect(err.code).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(err.report.candidates[0].code).toBe('no-policy');
    expect(tcp.attempts).toHaveLength(0);
  });

  it('resolution failure is reported as such', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const caught = select(input(clock, { drivers: [tcp], remote: RemoteEndpoint.from({ hostName: 'nowhere.test', port: 1 }) })).catch((e) => e);
    await clock.advance(1);
    const err = await caught;
    expect(err.code).toBe('ERR_TAPS_RESOLUTION_FAILED');
    expect(err.message).toMatch(/ENOTFOUND/);
  });

  it('times out with ERR_TAPS_TIMEOUT and aborts running attempts', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => 'hang' });
    const p = select(input(clock, { drivers: [tcp], timeout: 1000 }));
    const caught = p.catch((e) => e);
    await clock.advance(1000);
    const err = await caught;
    expect(err.code).toBe('ERR_TAPS_TIMEOUT');
    expect(tcp.attempts.every((a) => a.aborted)).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('the caller aborting gives ERR_TAPS_ABORTED', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => 'hang' });
    const ac = new AbortController();
    const p = select(input(clock, { drivers: [tcp], signal: ac.signal }));
    await clock.advance(10);
    ac.abort();
    const err = await p.catch((e) => e);
    expect(err.code).toBe('ERR_TAPS_ABORTED');
    expect(tcp.attempts.every((a) => a.aborted)).toBe(true);
  });

  it('caps addresses per family (a flood of answers does not explode the race)', async () => {
    const clock = new ManualClock();
    const many = Array.from({ length: 100 }, (_, i) => `127.1.${i >> 8}.${i & 255}`);
    const scope = createScope({ tenant: 't', policy: allow, resolver: resolverFor(clock, { 'svc.test': { v4: many } }) });
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => ({ refuse: 1 }) });
    const caught = select(input(clock, { drivers: [tcp], scope })).catch((e) => e);
    await clock.advance(100);
    expect((await caught).code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(tcp.attempts).toHaveLength(DEFAULT_RACING.maxAddressesPerFamily);
  });

  it('a multistream-preferring selection starts QUIC first and TLS one attempt delay later', async () => {
    const clock = new ManualClock();
    const quic = fakeDriver({ id: 'quic', protocol: 'quic', ipProtocol: 'udp', security: 'tls', clock, capabilities: { multistream: true, encrypted: true }, behaviour: () => 'hang' });
    const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, capabilities: { encrypted: true } });
    const scope = createScope({ tenant: 't', policy: allow, resolver: resolverFor(clock, { 'svc.test': { v4: ['127.0.0.1'] } }) });
    const p = select(input(clock, { drivers: [tls, quic], scope, security: new SecurityParameters({}), properties: new TransportProperties({ multistreaming: 'prefer' }) }));
    await clock.advance(249);
    expect(quic.attempts).toHaveLength(1);
    expect(tls.attempts).toHaveLength(0);
    await clock.advance(2);
    const r = await p;
    expect(r.driver.id).toBe('tls');
    expect(r.candidate.startedAt).toBe(250);
    expect(quic.attempts[0]!.aborted).toBe(true);
  });

  it('a refused port: each refusal starts the next candidate at once (TLS ::1, TLS IPv4, QUIC ::1, QUIC IPv4), no attempt delay or QUIC remainder is waited out', async () => {
    const clock = new ManualClock();
    const refuse = (): Behaviour => ({ refuse: 1 });
    const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock, capabilities: { encrypted: true }, behaviour: refuse });
    const quic = fakeDriver({ id: 'quic', protocol: 'quic', ipProtocol: 'udp', security: 'tls', clock, capabilities: { multistream: true, encrypted: true }, behaviour: refuse });
    let settled = false;
    const p = select(input(clock, { drivers: [tls, quic], security: new SecurityParameters({}) })).finally(() => (settled = true));
    p.catch(() => {});
    for (let ms = 0; ms < 4; ms++) await clock.advance(1);
    await flush();
    expect(settled).toBe(true); // 4 ms of manual time: four refusals, nothing waited for
    const err = (await p.catch((e: unknown) => e)) as EstablishmentError;
    expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    const attempted = err.report.candidates.filter((c) => c.startedAt !== undefined).sort((a, b) => a.startedAt! - b.startedAt!);
    expect(attempted.map((c) => `${c.driver} ${c.address} ${c.startedAt}-${c.endedAt} ${c.fate}`)).toEqual([
      'tls ::1 0-1 failed',
      'tls 127.0.0.1 1-2 failed',
      'quic ::1 2-3 failed',
      'quic 127.0.0.1 3-4 failed',
    ]);
    expect(clock.pending).toBe(0); // the remainder armed for QUIC after TLS failed was cleared
  });

  it('the racing cache remembers a failed race\'s refusals at the selection\'s end: that reading when it keeps the same clock, its own clock\'s time otherwise', async () => {
    for (const same of [true, false]) {
      const clock = new ManualClock();
      const other = new ManualClock();
      await other.advance(1000);
      const scope = createScope({ tenant: 't', policy: allow, resolver: resolverFor(clock, { 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } }), racingCache: { clock: same ? clock : other, failedTtl: 30_000 } });
      const refuse = (): Behaviour => ({ refuse: 2 });
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: refuse });
      const p = select(input(clock, { drivers: [tcp], scope }));
      p.catch(() => {});
      for (let ms = 0; ms < 4; ms++) await clock.advance(1);
      const err = (await p.catch((e: unknown) => e)) as EstablishmentError;
      expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
      const at = same ? 4 : 1000;
      expect(racingCacheOf(scope)!.entries()).toEqual([{ endpoint: 'svc.test', port: 443, stack: 'tcp', entry: { outcome: 'failed', connectTime: undefined, reason: expect.any(String), at, expires: at + 30_000 } }]);
    }
  });

  it('a slow AAAA answer does not hold back an IPv4 candidate that is ready: handed over after the resolution delay', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => ({ ready: 5 }) });
    const scope = createScope({ tenant: 't', policy: allow, resolver: resolverFor(clock, { 'slow6.test': { v6: ['::1'], v4: ['127.0.0.1'], v6Delay: 5000 } }) });
    let done = false;
    const p = select(input(clock, { drivers: [tcp], scope, remote: RemoteEndpoint.from({ hostName: 'slow6.test', port: 443 }) })).finally(() => (done = true));
    await clock.advance(50); // the resolution delay: IPv4 starts
    await clock.advance(5);
    expect(done).toBe(true);
    const r = await p;
    expect(r.candidate).toMatchObject({ address: '127.0.0.1', fate: 'won', startedAt: 50 });
    expect(r.report.resolutions.find((x) => x.family === 6)).toMatchObject({ endedAt: 55, error: expect.stringMatching(/^cancelled/) });
    expect(r.report.resolutions.find((x) => x.family === 4)).toMatchObject({ endedAt: 0, addresses: ['127.0.0.1'] });
    await clock.advance(5000); // the late AAAA answer (this resolver ignores the signal) changes nothing and starts nothing
    expect(tcp.attempts).toHaveLength(1);
    expect(r.report.resolutions.find((x) => x.family === 6)).toEqual(expect.objectContaining({ endedAt: 55, error: expect.stringMatching(/^cancelled/) }));
    expect(r.report.resolutions.find((x) => x.family === 6)!.addresses).toBeUndefined();
    expect(clock.pending).toBe(0);
  });

  describe('one stack, one IP literal (no race tree)', () => {
    const literal = RemoteEndpoint.from({ ipAddress: '127.0.0.1', port: 443 });

    it('the racing cache remembers the win at the selection\'s end: that reading when it keeps the same clock, its own clock\'s time otherwise', async () => {
      for (const same of [true, false]) {
        const clock = new ManualClock();
        const other = new ManualClock();
        await other.advance(1000);
        const scope = createScope({ tenant: 't', policy: allow, racingCache: { clock: same ? clock : other, wonTtl: 60_000 } });
        const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => ({ ready: 3 }) });
        await clock.advance(7);
        const p = select(input(clock, { drivers: [tcp], remote: literal, scope }));
        await clock.advance(3);
        expect((await p).candidate).toMatchObject({ fate: 'won', startedAt: 0, endedAt: 3 });
        const at = same ? 10 : 1000;
        expect(racingCacheOf(scope)!.entries()).toEqual([{ endpoint: '127.0.0.1', port: 443, stack: 'tcp', entry: { outcome: 'won', connectTime: 3, reason: undefined, at, expires: at + 60_000 } }]);
      }
    });

    it('wins with the same report a race of one gives', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => ({ ready: 3 }) });
      const p = select(input(clock, { drivers: [tcp], remote: literal }));
      await clock.advance(3);
      const r = await p;
      expect(r.candidate).toMatchObject({ fate: 'won', address: '127.0.0.1', family: 4, port: 443, startedAt: 0, endedAt: 3 });
      expect(r.candidate.decision).toMatchObject({ allow: true, rule: 'test' });
      expect(r.report.winner).toBe(r.candidate.id);
      expect(r.target.address).toBe('127.0.0.1');
      expect(clock.pending).toBe(0);
    });

    it('a refusal is an EstablishmentError naming the failed candidate', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => ({ refuse: 1 }) });
      const p = select(input(clock, { drivers: [tcp], remote: literal })).catch((e: unknown) => e);
      await clock.advance(1);
      const err = (await p) as EstablishmentError;
      expect(err).toBeInstanceOf(EstablishmentError);
      expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
      expect(err.report.candidates.at(-1)).toMatchObject({ fate: 'failed', reason: expect.stringMatching(/ECONNREFUSED/) });
    });

    it('a denial never reaches the driver', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock });
      const deny: NetworkPolicy = { decide: () => ({ allow: false, code: 'denied', reason: 'no grant', rule: 'deny all' }) };
      const err = (await select(input(clock, { drivers: [tcp], remote: literal, scope: createScope({ tenant: 't', policy: deny }) })).catch((e: unknown) => e)) as EstablishmentError;
      expect(err.code).toBe('ERR_TAPS_POLICY_PROHIBITED');
      expect(err.report.candidates.at(-1)).toMatchObject({ fate: 'denied', code: 'denied' });
      expect(tcp.attempts).toHaveLength(0);
    });

    it('the caller giving up aborts the attempt: ERR_TAPS_ABORTED, the candidate cancelled', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => 'hang' });
      const caller = new AbortController();
      const p = select(input(clock, { drivers: [tcp], remote: literal, signal: caller.signal })).catch((e: unknown) => e);
      await flush();
      expect(tcp.attempts).toHaveLength(1);
      caller.abort(new Error('bored'));
      const err = (await p) as EstablishmentError;
      expect(err.code).toBe('ERR_TAPS_ABORTED');
      expect(tcp.attempts[0]!.aborted).toBe(true);
      expect(err.report.candidates.at(-1)!.fate).toBe('cancelled');
      expect(clock.pending).toBe(0);
    });

    it('needs no controller of its own: the caller signal as given, or one shared signal that never aborts and keeps no listener', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: (a) => (a === '127.0.0.1' ? { ready: 1 } : { refuse: 1 }) });
      const ready = select(input(clock, { drivers: [tcp], remote: literal }));
      const refused = select(input(clock, { drivers: [tcp], remote: RemoteEndpoint.from({ ipAddress: '127.0.0.2', port: 443 }) })).catch((e: unknown) => e);
      await flush();
      expect(tcp.attempts.map((a) => a.signal)).toEqual([NEVER_ABORTED, NEVER_ABORTED]);
      expect(getEventListeners(NEVER_ABORTED, 'abort')).toHaveLength(2);
      await clock.advance(1);
      await ready;
      expect(await refused).toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
      expect(getEventListeners(NEVER_ABORTED, 'abort')).toEqual([]);
      expect(NEVER_ABORTED.aborted).toBe(false);
      const caller = new AbortController();
      const p = select(input(clock, { drivers: [tcp], remote: literal, signal: caller.signal }));
      await flush();
      expect(tcp.attempts[2]!.signal).toBe(caller.signal);
      await clock.advance(1);
      await p;
      expect(getEventListeners(caller.signal, 'abort')).toEqual([]);
    });

    it('the selection timeout bounds it: ERR_TAPS_TIMEOUT', async () => {
      const clock = new ManualClock();
      const tcp = fakeDriver({ id: 'tcp', clock, behaviour: () => 'hang' });
      const p = select(input(clock, { drivers: [tcp], remote: literal, timeout: 100 })).catch((e: unknown) => e);
      await clock.advance(100);
      const err = (await p) as EstablishmentError;
      expect(err.code).toBe('ERR_TAPS_TIMEOUT');
      expect(tcp.attempts[0]!.aborted).toBe(true);
    });
  });
});
