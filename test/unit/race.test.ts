import { describe, expect, it } from 'vitest';
import { Race, RaceFailedError, RaceGroup, RaceLeaf } from '../../src/selection/race.js';
import { ManualClock, flush } from '../helpers/manual-clock.js';

/** An attempt the test settles by hand; records when it started and whether it was aborted. */
function controllable(clock: ManualClock, id: string, family?: 4 | 6) {
  const state = { startedAt: undefined as number | undefined, aborted: false, resolve: (_v: string) => {}, reject: (_e: unknown) => {} };
  const leaf = new RaceLeaf<string>(
    id,
    (signal) =>
      new Promise<string>((resolve, reject) => {
        state.startedAt = clock.now();
        state.resolve = resolve;
        state.reject = reject;
        signal.addEventListener('abort', () => {
          state.aborted = true;
          reject(signal.reason);
        });
      }),
    family,
  );
  return { leaf, state };
}

describe('Race (RFC 8305 staggered racing)', () => {
  it('a deadline runs on the race\'s one timer: it outlives the attempt delay, expires at its time, and is cleared with the race', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    const b = controllable(clock, 'b');
    root.add(a.leaf);
    root.add(b.leaf);
    root.seal();
    const race = new Race(root, { clock });
    const p = race.run();
    p.catch(() => {});
    await flush();
    const expired: number[] = [];
    race.deadline(600, () => {
      expired.push(clock.now());
      race.abandon(new Error('deadline'));
    });
    expect(clock.pending).toBe(1); // one timer for both the attempt delay and the deadline
    await clock.advance(250); // the delay: b starts; nothing is left to start, the deadline keeps the timer
    expect(b.state.startedAt).toBe(250);
    expect(clock.pending).toBe(1);
    await clock.advance(349);
    expect(expired).toEqual([]);
    await clock.advance(1);
    expect(expired).toEqual([600]);
    await expect(p).rejects.toThrow('deadline');
    expect(a.state.aborted && b.state.aborted).toBe(true);
    expect(clock.pending).toBe(0);

    // Cleared: the timer goes once no attempt delay runs; a race that settles first clears it too.
    const root2 = new RaceGroup<string>('staggered', 250);
    const c = controllable(clock, 'c');
    root2.add(c.leaf);
    root2.seal();
    const race2 = new Race(root2, { clock });
    const p2 = race2.run();
    await flush();
    race2.deadline(100, () => expired.push(-1));
    race2.clearDeadline();
    expect(clock.pending).toBe(0);
    race2.deadline(100, () => expired.push(-2));
    c.state.resolve('C');
    expect((await p2).value).toBe('C');
    expect(clock.pending).toBe(0);
    await clock.advance(1000);
    expect(expired).toEqual([600]);
  });

  it('starts the next attempt after the attempt delay and keeps earlier ones running', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    const b = controllable(clock, 'b');
    root.add(a.leaf);
    root.add(b.leaf);
    root.seal();
    const p = new Race(root, { clock }).run();
    await flush();
    expect(a.state.startedAt).toBe(0);
    expect(b.state.startedAt).toBeUndefined();
    await clock.advance(249);
    expect(b.state.startedAt).toBeUndefined();
    await clock.advance(1);
    expect(b.state.startedAt).toBe(250);
    expect(a.state.aborted).toBe(false);
    b.state.resolve('B');
    const r = await p;
    expect(r.leaf.id).toBe('b');
    expect(a.state.aborted).toBe(true);
    expect(a.leaf.state).toBe('cancelled');
    expect(clock.pending).toBe(0);
  });

  it('every attempt runs on one signal of the race, aborted only when the race ends with attempts still running', async () => {
    const clock = new ManualClock();
    // A race of one that wins: the given controller's signal is the attempt's, and it is left alone.
    const one = new RaceGroup<string>('staggered', 250);
    let seen: AbortSignal | undefined;
    one.add(new RaceLeaf<string>('a', async (signal) => ((seen = signal), 'A')));
    one.seal();
    const attempts = new AbortController();
    await new Race(one, { clock, attempts }).run();
    expect(seen).toBe(attempts.signal);
    expect(attempts.signal.aborted).toBe(false);
    // Two in flight: the winner's race aborts the shared signal once, which stops the other.
    const two = new RaceGroup<string>('simultaneous', 250);
    const b = controllable(clock, 'b');
    const c = controllable(clock, 'c');
    two.add(b.leaf);
    two.add(c.leaf);
    two.seal();
    const shared = new AbortController();
    const p = new Race(two, { clock, attempts: shared }).run();
    await flush();
    expect(shared.signal.aborted).toBe(false);
    c.state.resolve('C');
    expect((await p).leaf.id).toBe('c');
    expect(shared.signal.aborted).toBe(true);
    expect(b.state.aborted).toBe(true);
    expect(b.leaf.state).toBe('cancelled');
    expect(c.leaf.state).toBe('won');
  });

  it('arms the attempt-delay timer only while a next attempt may come', async () => {
    const clock = new ManualClock();
    const sealed = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    sealed.add(a.leaf);
    sealed.seal();
    const p = new Race(sealed, { clock }).run();
    await flush();
    expect(clock.pending).toBe(0); // sealed, nothing waiting: no timer
    a.state.resolve('A');
    await p;
    const open = new RaceGroup<string>('staggered', 250);
    const b = controllable(clock, 'b');
    open.add(b.leaf);
    const q = new Race(open, { clock }).run();
    await flush();
    expect(clock.pending).toBe(1); // not sealed: an answer may still bring a next attempt
    b.state.resolve('B');
    await q;
    expect(clock.pending).toBe(0);
  });

  it('starts the next attempt at once when one fails', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    const b = controllable(clock, 'b');
    root.add(a.leaf);
    root.add(b.leaf);
    root.seal();
    const p = new Race(root, { clock }).run();
    await clock.advance(10);
    a.state.reject(new Error('refused'));
    await flush();
    expect(b.state.startedAt).toBe(10);
    b.state.resolve('B');
    expect((await p).value).toBe('B');
  });

  it('rejects with every failure when all fail, and leaves no timer', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    const b = controllable(clock, 'b');
    root.add(a.leaf);
    root.add(b.leaf);
    root.seal();
    const p = new Race(root, { clock }).run();
    const caught = p.catch((e) => e);
    await flush();
    a.state.reject(new Error('one'));
    await flush();
    b.state.reject(new Error('two'));
    const err = await caught;
    expect(err).toBeInstanceOf(RaceFailedError);
    expect((err as RaceFailedError).errors.map((e) => (e as Error).message)).toEqual(['one', 'two']);
    expect(clock.pending).toBe(0);
  });

  it('interleaves address families, starting with the first child', async () => {
    const clock = new ManualClock();
    const g = new RaceGroup<string>('staggered', 100);
    const order: string[] = [];
    for (const [id, fam] of [['v6a', 6], ['v6b', 6], ['v6c', 6], ['v4a', 4], ['v4b', 4]] as const) {
      g.add(new RaceLeaf<string>(id, () => (order.push(id), new Promise<string>(() => {})), fam));
    }
    g.seal();
    const race = new Race(g, { clock });
    void race.run().catch(() => {});
    await clock.advance(450);
    expect(order).toEqual(['v6a', 'v4a', 'v6b', 'v4b', 'v6c']);
    race.abandon(new Error('done'));
  });

  it('simultaneous mode starts everything; failover waits for failure', async () => {
    const clock = new ManualClock();
    const sim = new RaceGroup<string>('simultaneous', 250);
    const s1 = controllable(clock, 's1');
    const s2 = controllable(clock, 's2');
    sim.add(s1.leaf);
    sim.add(s2.leaf);
    sim.seal();
    const r1 = new Race(sim, { clock });
    const p1 = r1.run();
    await flush();
    expect(s1.state.startedAt).toBe(0);
    expect(s2.state.startedAt).toBe(0);
    s2.state.resolve('s2');
    expect((await p1).leaf.id).toBe('s2');

    const fo = new RaceGroup<string>('failover', 250);
    const f1 = controllable(clock, 'f1');
    const f2 = controllable(clock, 'f2');
    fo.add(f1.leaf);
    fo.add(f2.leaf);
    fo.seal();
    const p2 = new Race(fo, { clock }).run();
    await clock.advance(5000);
    expect(f2.state.startedAt).toBeUndefined();
    f1.state.reject(new Error('x'));
    await flush();
    expect(f2.state.startedAt).toBe(5000);
    f2.state.resolve('f2');
    expect((await p2).leaf.id).toBe('f2');
  });

  it('starts a child that arrives after the delay passed at once, and nested groups stagger', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const quic = new RaceGroup<string>('staggered', 250, 'quic');
    const tls = new RaceGroup<string>('staggered', 250, 'tls');
    root.add(quic);
    root.add(tls);
    root.seal();
    const race = new Race(root, { clock });
    const p = race.run();
    const q = controllable(clock, 'q');
    quic.add(q.leaf);
    quic.seal();
    await flush();
    expect(q.state.startedAt).toBe(0);
    await clock.advance(300);
    const t = controllable(clock, 't');
    tls.add(t.leaf); // the TLS group's turn came at 250 with nothing to start
    tls.seal();
    await flush();
    expect(t.state.startedAt).toBe(300);
    t.state.resolve('t');
    expect((await p).leaf.id).toBe('t');
    expect(q.state.aborted).toBe(true);
  });

  it('one new attempt per attempt delay across nested groups: a stack\'s next address before the next stack, never two together', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250, 'stacks');
    const tls = new RaceGroup<string>('staggered', 250, 'tls');
    const quic = new RaceGroup<string>('staggered', 250, 'quic');
    root.add(tls);
    root.add(quic);
    root.seal();
    const starts: string[] = [];
    const leaf = (id: string, family: 4 | 6) => new RaceLeaf<string>(id, () => (starts.push(`${id}@${clock.now()}`), new Promise<string>(() => {})), family);
    for (const g of [tls, quic]) {
      g.add(leaf(`${g.label}6`, 6));
      g.add(leaf(`${g.label}4`, 4));
      g.seal();
    }
    const race = new Race(root, { clock });
    void race.run().catch(() => {});
    await clock.advance(1000);
    expect(starts).toEqual(['tls6@0', 'tls4@250', 'quic6@500', 'quic4@750']);
    expect(clock.pending).toBe(0); // nothing left to start: no timer
    race.abandon(new Error('done'));
  });

  it('a failure starts the next attempt at once and restarts the delay, across groups', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('staggered', 250);
    const a = new RaceGroup<string>('staggered', 250, 'a');
    const b = new RaceGroup<string>('staggered', 250, 'b');
    root.add(a);
    root.add(b);
    root.seal();
    const a1 = controllable(clock, 'a1');
    const b1 = controllable(clock, 'b1');
    const b2 = controllable(clock, 'b2');
    a.add(a1.leaf);
    a.seal();
    b.add(b1.leaf);
    b.add(b2.leaf);
    b.seal();
    const race = new Race(root, { clock });
    void race.run().catch(() => {});
    await clock.advance(10);
    a1.state.reject(new Error('refused'));
    await flush();
    expect(b1.state.startedAt).toBe(10);
    expect(b2.state.startedAt).toBeUndefined();
    await clock.advance(249);
    expect(b2.state.startedAt).toBeUndefined();
    await clock.advance(1);
    expect(b2.state.startedAt).toBe(260);
    race.abandon(new Error('done'));
  });

  it('attempts failing one after another arm one delay timer, not one each, and the delay still counts from the last start', async () => {
    const clock = new ManualClock();
    let armed = 0;
    const counting = Object.assign(Object.create(clock) as ManualClock, {
      setTimeout: (fn: () => void, ms: number) => (armed++, clock.setTimeout(fn, ms)),
      clearTimeout: (h: unknown) => clock.clearTimeout(h),
      now: () => clock.now(),
    });
    const root = new RaceGroup<string>('staggered', 250);
    const leaves = ['a', 'b', 'c', 'd'].map((id) => controllable(clock, id));
    for (const l of leaves) root.add(l.leaf);
    root.seal();
    void new Race(root, { clock: counting }).run().catch(() => {});
    await clock.advance(10);
    for (const l of leaves.slice(0, 2)) {
      l.state.reject(new Error('refused'));
      await flush();
    }
    expect(leaves.map((l) => l.state.startedAt)).toEqual([0, 10, 10, undefined]);
    expect(armed).toBe(1);
    await clock.advance(249);
    expect(leaves[3]!.state.startedAt).toBeUndefined();
    await clock.advance(1);
    expect(leaves[3]!.state.startedAt).toBe(260);
    for (const l of leaves.slice(2)) l.state.reject(new Error('refused'));
    await flush();
    expect(clock.pending).toBe(0);
  });

  it('opportunistic failover: the unencrypted level starts only when every encrypted attempt failed, then is paced alike', async () => {
    const clock = new ManualClock();
    const root = new RaceGroup<string>('failover', 250, 'security');
    const enc = new RaceGroup<string>('staggered', 250, 'encrypted');
    const plain = new RaceGroup<string>('staggered', 250, 'unencrypted');
    root.add(enc);
    root.add(plain);
    root.seal();
    const e1 = controllable(clock, 'e1');
    const p1 = controllable(clock, 'p1');
    const p2 = controllable(clock, 'p2');
    enc.add(e1.leaf);
    enc.seal();
    plain.add(p1.leaf);
    plain.add(p2.leaf);
    plain.seal();
    const race = new Race(root, { clock });
    void race.run().catch(() => {});
    await clock.advance(1000);
    expect(p1.state.startedAt).toBeUndefined();
    e1.state.reject(new Error('no TLS here'));
    await flush();
    expect(p1.state.startedAt).toBe(1000);
    expect(p2.state.startedAt).toBeUndefined();
    await clock.advance(250);
    expect(p2.state.startedAt).toBe(1250);
    race.abandon(new Error('done'));
  });

  it('disposes a value that becomes ready after the race was won', async () => {
    const clock = new ManualClock();
    const disposed: string[] = [];
    const g = new RaceGroup<string>('simultaneous', 250);
    const lateResolve: ((v: string) => void)[] = [];
    g.add(new RaceLeaf<string>('a', async () => 'A'));
    // Ignores its abort signal, like a driver that cannot be interrupted.
    g.add(new RaceLeaf<string>('b', () => new Promise<string>((r) => lateResolve.push(r))));
    g.seal();
    const r = await new Race(g, { clock, hooks: { dispose: (v) => disposed.push(v) } }).run();
    expect(r.value).toBe('A');
    lateResolve[0]!('B');
    await flush();
    expect(disposed).toEqual(['B']);
  });

  it('abandons on caller abort and aborts running attempts', async () => {
    const clock = new ManualClock();
    const g = new RaceGroup<string>('staggered', 250);
    const a = controllable(clock, 'a');
    g.add(a.leaf);
    g.seal();
    const ac = new AbortController();
    const p = new Race(g, { clock, signal: ac.signal }).run();
    await flush();
    ac.abort(new Error('user'));
    await expect(p).rejects.toThrow('user');
    expect(a.state.aborted).toBe(true);
  });
});

describe('Race: a stack whose driver is still loading (loadingUntil)', () => {
  /** Two stacks, `first` ranked ahead of `second`, one leaf each; `first` is loading until the test says. */
  function twoStacks(clock: ManualClock) {
    const root = new RaceGroup<string>('staggered', 250, 'stacks');
    const first = new RaceGroup<string>('staggered', 250, 'first');
    const second = new RaceGroup<string>('staggered', 250, 'second');
    const a = controllable(clock, 'a');
    const b = controllable(clock, 'b');
    first.add(a.leaf);
    first.seal();
    second.add(b.leaf);
    second.seal();
    let loaded!: (ok: boolean) => void;
    first.loadingUntil(new Promise<boolean>((r) => (loaded = r)));
    root.add(first);
    root.add(second);
    root.seal();
    return { root, a, b, loaded: (ok: boolean) => loaded(ok) };
  }

  it('the ready stack starts at once; the loaded one joins in the next attempt slot, at once when nothing else is due', async () => {
    const clock = new ManualClock();
    const { root, a, b, loaded } = twoStacks(clock);
    const p = new Race(root, { clock }).run();
    await flush();
    expect(b.state.startedAt).toBe(0); // not held back by the loading stack ranked ahead of it
    expect(a.state.startedAt).toBeUndefined();
    await clock.advance(40);
    loaded(true);
    await flush();
    // One new attempt per attempt delay (RFC 8305 §5): it waits for the slot b opened.
    expect(a.state.startedAt).toBeUndefined();
    await clock.advance(210);
    expect(a.state.startedAt).toBe(250);
    a.state.resolve('A');
    expect((await p).leaf.id).toBe('a');
    expect(b.state.aborted).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('loaded after the delay passed with nothing to start: it starts at once', async () => {
    const clock = new ManualClock();
    const { root, a, b, loaded } = twoStacks(clock);
    const p = new Race(root, { clock }).run();
    await flush();
    await clock.advance(300); // the slot at 250 found only the loading stack
    expect(a.state.startedAt).toBeUndefined();
    loaded(true);
    await flush();
    expect(a.state.startedAt).toBe(300);
    b.state.resolve('B');
    expect((await p).leaf.id).toBe('b');
  });

  it('a stack that cannot load counts as failed: the race fails only when the ready ones failed too', async () => {
    const clock = new ManualClock();
    const { root, b, loaded } = twoStacks(clock);
    const p = new Race(root, { clock }).run();
    const outcome = p.then(() => 'won', (e: unknown) => e);
    await flush();
    b.state.reject(new Error('refused'));
    await flush();
    // Still loading: the race waits for it.
    expect(await Promise.race([outcome, Promise.resolve('pending')])).toBe('pending');
    loaded(false);
    expect(await outcome).toBeInstanceOf(RaceFailedError);
  });

  it('loaded before the race starts: it runs in its ranked place, first', async () => {
    const clock = new ManualClock();
    const { root, a, b, loaded } = twoStacks(clock);
    loaded(true);
    await flush();
    const p = new Race(root, { clock }).run();
    await flush();
    expect(a.state.startedAt).toBe(0);
    expect(b.state.startedAt).toBeUndefined();
    a.state.resolve('A');
    expect((await p).leaf.id).toBe('a');
  });
});

describe('Race: a stack whose load starts only when its turn comes (loadingUntil with a function)', () => {
  /** Stacks `ready` and `lazy` (one leaf each) in the given rank order; `lazy`'s load is counted and settled by the test. */
  function stacks(clock: ManualClock, order: 'ready first' | 'lazy first', mode: 'staggered' | 'failover' | 'simultaneous' = 'staggered') {
    const root = new RaceGroup<string>(mode, 250, 'stacks');
    const ready = new RaceGroup<string>('staggered', 250, 'ready');
    const lazy = new RaceGroup<string>('staggered', 250, 'lazy');
    const r = controllable(clock, 'r');
    const l = controllable(clock, 'l');
    ready.add(r.leaf);
    ready.seal();
    lazy.add(l.leaf);
    lazy.seal();
    const load = { calls: 0, at: undefined as number | undefined, settle: (_ok: boolean) => {} };
    lazy.loadingUntil(() => {
      load.calls++;
      load.at = clock.now();
      return new Promise<boolean>((settle) => (load.settle = settle));
    });
    for (const g of order === 'ready first' ? [ready, lazy] : [lazy, ready]) root.add(g);
    root.seal();
    return { root, r, l, load };
  }

  it('ranked after a ready stack that wins within the attempt delay: never loaded', async () => {
    const clock = new ManualClock();
    const { root, r, l, load } = stacks(clock, 'ready first');
    const p = new Race(root, { clock }).run();
    await flush();
    expect(r.state.startedAt).toBe(0);
    await clock.advance(100);
    r.state.resolve('R');
    expect((await p).leaf.id).toBe('r');
    expect(load.calls).toBe(0);
    expect(l.state.startedAt).toBeUndefined();
  });

  it('ranked after a ready stack: loaded when the attempt delay passes, started once loaded, asked once', async () => {
    const clock = new ManualClock();
    const { root, r, l, load } = stacks(clock, 'ready first');
    const p = new Race(root, { clock }).run();
    await flush();
    await clock.advance(249);
    expect(load.calls).toBe(0);
    await clock.advance(1);
    expect(load.at).toBe(250);
    await clock.advance(500); // more slots pass while it loads: it is asked once
    expect(load.calls).toBe(1);
    expect(l.state.startedAt).toBeUndefined();
    load.settle(true);
    await flush();
    expect(l.state.startedAt).toBe(750); // the delay passed with nothing to start: at once
    expect(r.state.aborted).toBe(false);
    l.state.resolve('L');
    expect((await p).leaf.id).toBe('l');
  });

  it('ranked after a ready stack that fails: loaded at once, and the race fails when it cannot load', async () => {
    const clock = new ManualClock();
    const { root, r, load } = stacks(clock, 'ready first');
    const outcome = new Race(root, { clock }).run().then(() => 'won', (e: unknown) => e);
    await flush();
    await clock.advance(10);
    r.state.reject(new Error('refused'));
    await flush();
    expect(load.at).toBe(10);
    expect(await Promise.race([outcome, Promise.resolve('pending')])).toBe('pending');
    load.settle(false);
    expect(await outcome).toBeInstanceOf(RaceFailedError);
  });

  it('ranked first: loaded at once, while the ready stack starts without waiting for it', async () => {
    const clock = new ManualClock();
    const { root, r, load } = stacks(clock, 'lazy first');
    const p = new Race(root, { clock }).run();
    await flush();
    expect(load.at).toBe(0);
    expect(r.state.startedAt).toBe(0);
    r.state.resolve('R');
    expect((await p).leaf.id).toBe('r');
  });

  it('failover: loaded only when the stack before it failed; simultaneous: loaded at once', async () => {
    const clock = new ManualClock();
    const f = stacks(clock, 'ready first', 'failover');
    const pf = new Race(f.root, { clock }).run();
    await flush();
    await clock.advance(1000);
    expect(f.load.calls).toBe(0);
    f.r.state.reject(new Error('refused'));
    await flush();
    expect(f.load.at).toBe(1000);
    f.load.settle(true);
    await flush();
    expect(f.l.state.startedAt).toBe(1000);
    f.l.state.resolve('L');
    expect((await pf).leaf.id).toBe('l');

    const s = stacks(clock, 'ready first', 'simultaneous');
    const ps = new Race(s.root, { clock }).run();
    await flush();
    expect(s.load.at).toBe(clock.now());
    expect(s.r.state.startedAt).toBe(clock.now());
    s.load.settle(true);
    await flush();
    expect(s.l.state.startedAt).toBe(clock.now());
    s.r.state.resolve('R');
    expect((await ps).leaf.id).toBe('r');
  });
});
