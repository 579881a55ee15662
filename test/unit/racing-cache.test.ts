/**
 * The racing cache on its own (selection/racing-cache.ts) with a manual clock: options validated naming the
 * option, LRU bound, expiry of wins and failures, clear() of one endpoint or all; and the ranking it feeds
 * (rank.ts): a win first, a QUIC stack without a win after TCP, explicit preferences before both.
 */
import { describe, expect, it } from 'vitest';
import { Host, createScope } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { rankWithHistory } from '../../src/selection/history.js';
import { RacingCache, racingCacheOf } from '../../src/selection/racing-cache.js';
import { fakeDriver } from '../helpers/fake-driver.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('RacingCache', () => {
  it('rejects bad options with a TypeError or RangeError naming the option', () => {
    expect(() => new RacingCache({ maxEntries: -1 })).toThrow(/racingCache\.maxEntries/);
    expect(() => new RacingCache({ wonTtl: Number.NaN })).toThrow(RangeError);
    expect(() => new RacingCache({ failedTtl: '5' as unknown as number })).toThrow(/racingCache\.failedTtl/);
    expect(() => new RacingCache({ maxEntrys: 3 } as never)).toThrow(/unknown option "maxEntrys"/);
    expect(() => new RacingCache({ clock: {} as never })).toThrow(/racingCache\.clock/);
    expect(() => createScope({ tenant: 't', racingCache: 7 as never })).toThrow(TypeError);
    expect(() => createScope({ tenant: 't', racingCache: { maxEntries: -2 } })).toThrow(/racingCache\.maxEntries/);
    expect(() => new Host({ racingCache: { wonTtl: -1 } })).toThrow(/racingCache\.wonTtl/);
  });

  it('forgets wins and failures when they expire, each after its own time', async () => {
    const clock = new ManualClock();
    const cache = new RacingCache({ wonTtl: 1000, failedTtl: 100, clock });
    cache.won('svc.test', 443, 'tls', 2.5);
    cache.failed('svc.test', 443, 'quic', 'refused');
    expect(cache.get('SVC.test', 443, 'tls')).toMatchObject({ outcome: 'won', connectTime: 2.5 });
    expect(cache.get('svc.test', 443, 'quic')).toMatchObject({ outcome: 'failed', reason: 'refused' });
    expect(cache.get('svc.test', 8443, 'tls')).toBeUndefined();
    await clock.advance(100);
    expect(cache.get('svc.test', 443, 'quic')).toBeUndefined();
    expect(cache.get('svc.test', 443, 'tls')).toBeDefined();
    await clock.advance(900);
    expect(cache.get('svc.test', 443, 'tls')).toBeUndefined();
  });

  it('holds at most maxEntries, dropping the least recently used', () => {
    const cache = new RacingCache({ maxEntries: 2 });
    cache.won('a.test', 1, 'tls', 1);
    cache.won('b.test', 1, 'tls', 1);
    cache.get('a.test', 1, 'tls'); // a is now the most recent
    cache.won('c.test', 1, 'tls', 1);
    expect(cache.size).toBe(2);
    expect(cache.get('b.test', 1, 'tls')).toBeUndefined();
    expect(cache.get('a.test', 1, 'tls')).toBeDefined();
    const none = new RacingCache({ maxEntries: 0 });
    none.won('a.test', 1, 'tls', 1);
    expect(none.size).toBe(0);
  });

  it('keeps recency exact when the newest entry is written again, expires or is cleared', () => {
    const now = { t: 0 };
    const cache = new RacingCache({ maxEntries: 2, wonTtl: 100, clock: { now: () => now.t, setTimeout: () => 0, clearTimeout: () => {} } });
    const order = (): string[] => cache.entries().map((e) => `${e.endpoint}:${e.entry.connectTime}`);
    cache.won('a.test', 1, 'tls', 1);
    cache.won('b.test', 1, 'tls', 1);
    cache.won('b.test', 1, 'tls', 2); // the newest, rewritten in place
    expect(order()).toEqual(['a.test:1', 'b.test:2']);
    cache.won('a.test', 1, 'tls', 3); // an older one moves to the end
    expect(order()).toEqual(['b.test:2', 'a.test:3']);
    cache.won('c.test', 1, 'tls', 4); // b is the least recent now
    expect(order()).toEqual(['a.test:3', 'c.test:4']);
    now.t = 200;
    expect(cache.get('c.test', 1, 'tls')).toBeUndefined(); // expired: removed, and no longer the newest
    now.t = 0;
    cache.won('d.test', 1, 'tls', 5);
    cache.won('a.test', 1, 'tls', 6);
    expect(order()).toEqual(['d.test:5', 'a.test:6']);
    cache.clear('a.test');
    cache.won('e.test', 1, 'tls', 7);
    cache.won('d.test', 1, 'tls', 8);
    expect(order()).toEqual(['e.test:7', 'd.test:8']);
  });

  it('clear(endpoint) forgets one endpoint, clear() everything', () => {
    const cache = new RacingCache();
    cache.won('a.test', 1, 'tls', 1);
    cache.won('a.test', 2, 'quic', 1);
    cache.won('b.test', 1, 'tls', 1);
    cache.clear('A.test');
    expect(cache.entries().map((e) => e.endpoint)).toEqual(['b.test']);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(() => cache.clear(3 as never)).toThrow(TypeError);
  });

  it('is per scope for createScope, per tenant for a Host', async () => {
    expect(racingCacheOf(createScope({ tenant: 'x' }))).not.toBe(racingCacheOf(createScope({ tenant: 'x' })));
    const host = new Host();
    expect(racingCacheOf(await host.tenant('a'))).toBe(racingCacheOf(await host.tenant('a')));
    expect(racingCacheOf(await host.tenant('a'))).not.toBe(racingCacheOf(await host.tenant('b')));
    expect(racingCacheOf(await new Host({ racingCache: false }).tenant('a'))).toBeUndefined();
    host.close();
  });
});

describe('ranking with history', () => {
  const clock = new ManualClock();
  const tls = fakeDriver({ id: 'tls', protocol: 'tls', security: 'tls', clock });
  const quic = fakeDriver({ id: 'quic', protocol: 'quic', ipProtocol: 'udp', security: 'tls', capabilities: { multistream: true }, clock });
  const ctx = (properties = new TransportProperties()) => ({ properties: properties.freeze(), security: new SecurityParameters({}), framerCount: 0 });
  const ids = (r: { ranked: readonly { driver: { id: string } }[] }) => r.ranked.map((s) => s.driver.id);
  const port = () => 443;

  it('default properties: QUIC without a win goes after TLS; with a win it leads, and the report says why', () => {
    const cache = new RacingCache();
    expect(ids(rankWithHistory([quic, tls], ctx(), cache, 'svc.test', port))).toEqual(['tls', 'quic']);
    cache.won('svc.test', 443, 'quic', 4);
    const r = rankWithHistory([quic, tls], ctx(), cache, 'svc.test', port);
    expect(ids(r)).toEqual(['quic', 'tls']);
    expect(r.note).toMatch(/order quic > tls instead of tls > quic \(quic won here .* ago, ready in 4\.0 ms\)/);
  });

  it('an explicit preference ranks before history; a failure is skipped unless every stack failed', () => {
    const cache = new RacingCache();
    const multi = new TransportProperties({ multistreaming: 'prefer' });
    cache.won('svc.test', 443, 'tls', 1);
    expect(ids(rankWithHistory([tls, quic], ctx(multi), cache, 'svc.test', port))).toEqual(['quic', 'tls']);
    cache.failed('svc.test', 443, 'quic', 'refused');
    const r = rankWithHistory([tls, quic], ctx(multi), cache, 'svc.test', port);
    expect(ids(r)).toEqual(['tls']);
    expect(r.skipped.map((s) => s.driver.id)).toEqual(['quic']);
    expect(r.skipped[0]!.reason).toMatch(/racing cache: quic failed here .* ago \(refused\); skipped for .* more/);
    cache.failed('svc.test', 443, 'tls', 'refused');
    const all = rankWithHistory([tls, quic], ctx(multi), cache, 'svc.test', port);
    expect(ids(all)).toEqual(['quic', 'tls']);
    expect(all.skipped).toHaveLength(0);
  });
});
