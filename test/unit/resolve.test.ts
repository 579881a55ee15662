import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ResolvedAddress } from '../../src/network.js';
import { resolveFamilies } from '../../src/selection/resolve.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

function deferredLookup() {
  const pending = new Map<4 | 6, { resolve: (a: ResolvedAddress[]) => void; reject: (e: unknown) => void }>();
  const asked: (4 | 6)[] = [];
  const lookup = (family: 4 | 6) =>
    new Promise<ResolvedAddress[]>((resolve, reject) => {
      asked.push(family);
      pending.set(family, { resolve, reject });
    });
  return { lookup, pending, asked };
}

const v6 = [{ address: '::1', family: 6 as const }];
const v4 = [{ address: '127.0.0.1', family: 4 as const }];

describe('resolveFamilies (RFC 8305 §3)', () => {
  it('asks AAAA and A at once and uses AAAA immediately', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const got: [number, number][] = [];
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: new AbortController().signal, onAnswer: (f) => void got.push([f, clock.now()]), onError: () => {} });
    await flush();
    expect(d.asked.sort()).toEqual([4, 6]);
    await clock.advance(5);
    d.pending.get(6)!.resolve(v6);
    await flush();
    expect(got).toEqual([[6, 5]]);
    d.pending.get(4)!.resolve(v4);
    await done;
    expect(got).toEqual([[6, 5], [4, 5]]);
  });

  it('holds an early A answer for the resolution delay', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const got: [number, number][] = [];
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: new AbortController().signal, onAnswer: (f) => void got.push([f, clock.now()]), onError: () => {} });
    await flush();
    d.pending.get(4)!.resolve(v4);
    await clock.advance(49);
    expect(got).toEqual([]);
    await clock.advance(1);
    expect(got).toEqual([[4, 50]]);
    d.pending.get(6)!.resolve(v6);
    await done;
    expect(got).toEqual([[4, 50], [6, 50]]);
    expect(clock.pending).toBe(0);
  });

  it('releases a held A answer as soon as AAAA arrives within the delay, AAAA first', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const got: number[] = [];
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: new AbortController().signal, onAnswer: (f) => void got.push(f), onError: () => {} });
    await flush();
    d.pending.get(4)!.resolve(v4);
    await clock.advance(20);
    d.pending.get(6)!.resolve(v6);
    await done;
    expect(got).toEqual([6, 4]);
    expect(clock.pending).toBe(0);
  });

  it('treats a failed family as missing and releases A at once when AAAA fails', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const got: number[] = [];
    const errors: number[] = [];
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: new AbortController().signal, onAnswer: (f) => void got.push(f), onError: (f) => void errors.push(f) });
    await flush();
    d.pending.get(4)!.resolve(v4);
    await flush();
    d.pending.get(6)!.reject(Object.assign(new Error('nodata'), { code: 'ENODATA' }));
    await done;
    expect(got).toEqual([4]);
    expect(errors).toEqual([6]);
  });

  it('listens to the signal only while an IPv4 answer is held', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const ac = new AbortController();
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: ac.signal, onAnswer: () => {}, onError: () => {} });
    await flush();
    d.pending.get(6)!.resolve(v6);
    await flush();
    d.pending.get(4)!.resolve(v4);
    await done;
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    const held = new AbortController();
    const d2 = deferredLookup();
    const done2 = resolveFamilies(d2.lookup, { clock, resolutionDelay: 50, signal: held.signal, onAnswer: () => {}, onError: () => {} });
    await flush();
    expect(getEventListeners(held.signal, 'abort')).toHaveLength(0);
    d2.pending.get(4)!.resolve(v4);
    await flush();
    expect(getEventListeners(held.signal, 'abort')).toHaveLength(1);
    d2.pending.get(6)!.resolve(v6);
    await done2;
    expect(getEventListeners(held.signal, 'abort')).toHaveLength(0);
  });

  it('stops delivering after abort', async () => {
    const clock = new ManualClock();
    const d = deferredLookup();
    const got: number[] = [];
    const ac = new AbortController();
    const done = resolveFamilies(d.lookup, { clock, resolutionDelay: 50, signal: ac.signal, onAnswer: (f) => void got.push(f), onError: () => {} });
    await flush();
    d.pending.get(4)!.resolve(v4);
    await flush();
    ac.abort();
    d.pending.get(6)!.resolve(v6);
    await done;
    expect(got).toEqual([]);
    expect(clock.pending).toBe(0);
  });
});
