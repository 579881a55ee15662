/**
 * The racer: runs the candidate tree (RFC 9623 §4.2, RFC 8305) and returns the first attempt to become ready.
 *
 * The tree has groups (a stack's derived endpoints; the stacks of one
 * security level; the security levels) and leaves (one attempt). Each group
 * races its children in one of three modes:
 * - `staggered` (default): start the first child; the next when the
 *   connection attempt delay passes or when a started attempt fails, whichever
 *   comes first; earlier children keep running (RFC 8305 §5).
 * - `simultaneous`: start every child at once.
 * - `failover`: start the next child only when the previous one failed.
 * Pacing is the race's, not each group's: one new attempt per attempt delay
 * across the whole tree (RFC 8305 §5: "one connection attempt at a time"),
 * never the next address and the next stack together. The next attempt is the
 * first the tree order gives: within a staggered group, its started subgroups
 * first (a stack's next address before the next stack, RFC 9623 §4.1.2:
 * protocols branch above derived endpoints), then its next waiting child,
 * address families alternating among leaves (RFC 8305 §4). A failed attempt
 * starts the next one at once and restarts the delay.
 * Children may arrive after the group started (DNS answers come in over
 * time): when a delay passed with nothing to start, the next arrival starts at
 * once. A child group whose driver is still loading (`loadingUntil`) is passed
 * by: it never holds up a sibling that is ready, and joins like an arrival; a
 * load not started yet starts when the group's turn comes, so it takes no time
 * from the siblings ranked ahead of it. A group fails only when it is sealed and every child failed. The
 * first leaf to resolve wins: every other running attempt is aborted, the
 * timer cleared. A value that resolves after the race was won is disposed.
 * Time comes from an injected {@link Clock} so this is tested with fake time.
 *
 * @example
 * const root = new RaceGroup<string>('staggered', 250);
 * root.add(new RaceLeaf('a', async (signal) => 'A'));
 * root.seal();
 * const { leaf, value } = await new Race(root, { clock: systemClock, signal }).run();
 */
import type { Clock } from '../clock.js';
import { stackless } from '../stackless.js';

/** The reason losers are cancelled with: one shared instance (a new Error per race cost a stack capture). */
const ANOTHER_WON = new Error('another candidate won the race');
/** The reason what still runs is aborted with when every candidate failed: one shared instance, likewise. */
const RACE_FAILED = new Error('race failed');

export type RacingMode = 'staggered' | 'simultaneous' | 'failover';

export interface RaceHooks<T> {
  start?(leaf: RaceLeaf<T>): void;
  fail?(leaf: RaceLeaf<T>, error: unknown): void;
  cancel?(leaf: RaceLeaf<T>): void;
  win?(leaf: RaceLeaf<T>): void;
  /** Release a value that became ready after the race was already decided. */
  dispose?(value: T): void;
}

interface Parent<T> {
  childFailed(child: RaceNode<T>): void;
}

type RaceNode<T> = RaceLeaf<T> | RaceGroup<T>;

/**
 * One attempt. `run` gets the race's attempt signal: it aborts when the race ends while attempts are still
 * running (another attempt won, or the race was abandoned). Every attempt of a race shares it (one AbortSignal
 * per race, not per attempt: making one is a noticeable part of a loopback connect, see docs/performance.md),
 * so it may abort after this attempt settled, even after it won: a run stops listening to it once it has settled.
 */
export class RaceLeaf<T> {
  readonly id: string;
  /** The family of the address, used to interleave families (RFC 8305 §4). */
  readonly family: 4 | 6 | undefined;
  readonly run: (signal: AbortSignal) => Promise<T>;
  state: 'waiting' | 'running' | 'failed' | 'won' | 'cancelled' = 'waiting';
  /** @internal */ parent: Parent<T> | undefined;
  /** @internal */ race: Race<T> | undefined;

  constructor(id: string, run: (signal: AbortSignal) => Promise<T>, family?: 4 | 6) {
    this.id = id;
    this.run = run;
    this.family = family;
  }

  /** @internal Start the attempt; true (a leaf always starts one). */
  start(race: Race<T>): boolean {
    this.race = race;
    this.state = 'running';
    race.started();
    race.hooks.start?.(this);
    let promise: Promise<T>;
    try {
      promise = this.run(race.attemptSignal());
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (value) => race.leafReady(this, value),
      (err) => {
        if (this.state !== 'running') return; // cancelled: the race already knows
        this.state = 'failed';
        race.running--;
        race.leafFailed(this, err);
      },
    );
    return true;
  }

  /** @internal Mark a running attempt cancelled (the race then aborts the attempt signal); false if it was not running. */
  cancel(): boolean {
    if (this.state !== 'running') return false;
    this.state = 'cancelled';
    if (this.race !== undefined) this.race.running--;
    this.race?.hooks.cancel?.(this);
    return true;
  }
}

/** A node whose children race each other. Add children any time before `seal()`. */
export class RaceGroup<T> {
  readonly mode: RacingMode;
  readonly delay: number;
  readonly label: string;
  readonly #waiting: RaceNode<T>[] = [];
  readonly #started: RaceNode<T>[] = [];
  #sealed = false;
  #race: Race<T> | undefined;
  #failed = false;
  /** Its driver is still loading: the race passes it by until it is ready (see loadingUntil). */
  #loading = false;
  /** The load to start when its turn comes (loadingUntil given a function), until it is started. */
  #load: (() => Promise<boolean>) | undefined;
  #lastFamily: 4 | 6 | undefined;
  /** @internal */ parent: Parent<T> | undefined;

  constructor(mode: RacingMode, delay: number, label = '') {
    this.mode = mode;
    this.delay = delay;
    this.label = label;
  }

  get started(): boolean {
    return this.#race !== undefined;
  }

  add(child: RaceNode<T>): void {
    if (this.#sealed) throw new Error('cannot add to a sealed race group');
    child.parent = this;
    this.#waiting.push(child);
    const race = this.#race;
    if (race === undefined || race.settled) return;
    if (this.mode === 'simultaneous') this.#launch(this.#waiting.shift()!);
    else race.arrived();
  }

  /**
   * Hold this group out of the race until `loaded` settles (its driver is still loading): the siblings that
   * are ready start without waiting for it. `true`: it joins the race then, in the next attempt slot (at once
   * when the attempt delay already passed with nothing to start); `false` (or a rejection): it counts as failed.
   * A function is the load itself, not started yet: it is called when this group's turn comes (the race
   * reaches it in tree order), so a load that takes time (a native module) never runs while the candidates
   * ranked ahead of it handshake, and never at all when one of them wins first.
   */
  loadingUntil(loaded: Promise<boolean> | (() => Promise<boolean>)): void {
    this.#loading = true;
    if (typeof loaded === 'function') this.#load = loaded;
    else this.#settleWhen(loaded);
  }

  #settleWhen(loaded: Promise<boolean>): void {
    const settle = (ok: boolean): void => {
      this.#loading = false;
      if (this.parent instanceof RaceGroup) this.parent.#childLoaded(this, ok);
    };
    loaded.then(settle, () => settle(false));
  }

  /** Its turn came while it is still loading: start the load it was given as a function (once). */
  #due(): void {
    const load = this.#load;
    if (load === undefined) return;
    this.#load = undefined;
    let loaded: Promise<boolean>;
    try {
      loaded = load();
    } catch (err) {
      loaded = Promise.reject(err);
    }
    this.#settleWhen(loaded);
  }

  #childLoaded(child: RaceGroup<T>, ok: boolean): void {
    const race = this.#race;
    if (ok) {
      if (race === undefined || race.settled) return;
      if (this.mode === 'simultaneous') this.#launch(this.#waiting.splice(this.#waiting.indexOf(child), 1)[0]!);
      else if (this.mode === 'staggered') race.arrived();
      else if (this.#waiting[0] === child && this.#allStartedFailed()) this.#launch(this.#waiting.shift()!); // failover: its turn came while it loaded
      return;
    }
    const i = this.#waiting.indexOf(child);
    if (i >= 0) this.#waiting.splice(i, 1);
    child.#failed = true;
    this.#started.push(child); // counted among the failed children
    if (race !== undefined && !race.settled) this.#checkFailed();
  }

  /** No more children will come. */
  seal(): void {
    this.#sealed = true;
    this.#checkFailed();
  }

  /** @internal Start this group: its first attempt (every one, simultaneous); true if one started. */
  start(race: Race<T>): boolean {
    this.#race = race;
    race.groups.add(this);
    let launched = false;
    if (this.mode === 'simultaneous') {
      for (const child of [...this.#waiting]) {
        if (isLoading(child)) {
          child.#due();
          continue;
        }
        this.#waiting.splice(this.#waiting.indexOf(child), 1);
        launched = this.#launch(child) || launched;
      }
    } else {
      launched = this.launchOne();
    }
    this.#checkFailed();
    return launched;
  }

  /**
   * @internal Start the next attempt of this subtree in tree order, if one may start now: a started
   * subgroup's next first, then the next waiting child. A failover group only ever looks at its current child.
   */
  launchOne(): boolean {
    const race = this.#race;
    if (race === undefined || race.settled || this.#failed) return false;
    if (this.mode === 'failover') {
      const current = this.#started[this.#started.length - 1];
      if (current !== undefined) return current instanceof RaceGroup && current.launchOne();
      const first = this.#waiting[0];
      if (first === undefined) return false;
      if (isLoading(first)) {
        first.#due();
        return false;
      }
      return this.#launch(this.#waiting.shift()!);
    }
    const started = this.#started;
    for (let i = 0; i < started.length; i++) {
      const c = started[i]!;
      if (c instanceof RaceGroup && c.launchOne()) return true;
    }
    if (this.mode === 'simultaneous') return false;
    for (let child = this.#pick(); child !== undefined; child = this.#pick()) {
      if (this.#launch(child)) return true;
    }
    return false;
  }

  /** @internal Whether an attempt of this subtree may still start on a timer (something waits, or may arrive). */
  pending(): boolean {
    if (this.#failed) return false;
    if (this.mode === 'failover') {
      const current = this.#started[this.#started.length - 1];
      return current === undefined ? !this.#sealed || this.#waiting.length > 0 : current instanceof RaceGroup && current.pending();
    }
    // Indexed, no closure: this runs after every start.
    const started = this.#started;
    for (let i = 0; i < started.length; i++) {
      const c = started[i]!;
      if (c instanceof RaceGroup && c.pending()) return true;
    }
    return this.mode === 'staggered' && (!this.#sealed || this.#waiting.length > 0);
  }

  /**
   * Pick the next child that is ready: alternate address families when the children carry one (RFC 8305 §4).
   * A loading child passed by has had its turn: its load starts now, if it was waiting for that.
   */
  #pick(): RaceNode<T> | undefined {
    const last = this.#lastFamily;
    if (last !== undefined) {
      for (let i = 0; i < this.#waiting.length; i++) {
        const c = this.#waiting[i]!;
        if (!(c instanceof RaceLeaf && c.family !== undefined && c.family !== last)) continue;
        if (i > 0) return this.#waiting.splice(i, 1)[0];
        break; // the first waiting child is of the other family already: taken below
      }
    }
    for (let i = 0; i < this.#waiting.length; i++) {
      const c = this.#waiting[i]!;
      if (!isLoading(c)) return this.#waiting.splice(i, 1)[0];
      c.#due();
    }
    return undefined;
  }

  /** @internal Still loading (loadingUntil has not settled). */
  get loading(): boolean {
    return this.#loading;
  }

  #launch(child: RaceNode<T>): boolean {
    this.#started.push(child);
    if (child instanceof RaceLeaf && child.family !== undefined) this.#lastFamily = child.family;
    return child.start(this.#race!);
  }

  childFailed(_child: RaceNode<T>): void {
    const race = this.#race;
    if (!race || race.settled) return;
    // Failover: the next child starts only now (the race paces every other mode); one still loading, once loaded.
    if (this.mode === 'failover' && this.#waiting.length > 0 && this.#allStartedFailed()) {
      const next = this.#waiting[0]!;
      if (isLoading(next)) next.#due();
      else this.#launch(this.#waiting.shift()!);
    }
    this.#checkFailed();
  }

  #allStartedFailed(): boolean {
    const started = this.#started;
    for (let i = 0; i < started.length; i++) {
      const c = started[i]!;
      if (c instanceof RaceLeaf ? c.state !== 'failed' : !c.#failed) return false;
    }
    return true;
  }

  #checkFailed(): void {
    const race = this.#race;
    if (!race || race.settled || this.#failed || !this.#sealed || this.#waiting.length > 0) return;
    if (!this.#allStartedFailed()) return;
    this.#failed = true;
    if (this.parent) this.parent.childFailed(this);
    else race.rootFailed();
  }

  /** @internal Every leaf under this group, started or not. */
  *leaves(): Generator<RaceLeaf<T>> {
    for (const c of [...this.#started, ...this.#waiting]) {
      if (c instanceof RaceLeaf) yield c;
      else yield* c.leaves();
    }
  }
}

/** A child group whose driver is still loading: passed by until it is ready. */
function isLoading<T>(c: RaceNode<T>): c is RaceGroup<T> {
  return c instanceof RaceGroup && c.loading;
}

export interface RaceOptions<T> {
  readonly clock: Clock;
  /** The race is abandoned when this aborts. */
  readonly signal?: AbortSignal | undefined;
  /**
   * The controller whose signal every attempt runs on, aborted when the race ends with attempts still running.
   * Default: one of the race's own, made at the first attempt. The selection passes its own controller.
   */
  readonly attempts?: AbortController | undefined;
  readonly hooks?: RaceHooks<T> | undefined;
}

export interface RaceResult<T> {
  readonly leaf: RaceLeaf<T>;
  readonly value: T;
}

export class RaceFailedError extends AggregateError {
  constructor(errors: unknown[]) {
    super(errors, `every candidate failed (${errors.length})`);
  }
}

/** One run of a race tree. */
export class Race<T> {
  readonly root: RaceGroup<T>;
  readonly clock: Clock;
  readonly hooks: RaceHooks<T>;
  readonly groups = new Set<RaceGroup<T>>();
  readonly failures: { leaf: RaceLeaf<T>; error: unknown }[] = [];
  settled = false;
  /** @internal Attempts running now (started, not yet won, failed or cancelled). */
  running = 0;
  readonly #signal: AbortSignal | undefined;
  #attempts: AbortController | undefined;
  /** The one timer of the race: the attempt delay's, and the deadline's when one is set. */
  #timer: unknown;
  /** When the armed timer fires (clock time). */
  #timerAt = 0;
  /** When the attempt delay runs out (clock time), while a next attempt waits for it. */
  #dueAt: number | undefined;
  /** When the deadline set by `deadline()` runs out (clock time), and what it calls then. */
  #deadlineAt: number | undefined;
  #onDeadline: (() => void) | undefined;
  /** The delay passed (or an attempt failed) with nothing to start: the next arrival starts at once. */
  #due = false;
  /** Attempts started so far (a failure that itself started one, as failover does, needs no other). */
  #launches = 0;
  #resolve!: (r: RaceResult<T>) => void;
  #reject!: (e: unknown) => void;
  #onAbort = (): void => this.abandon(this.#signal?.reason);

  constructor(root: RaceGroup<T>, options: RaceOptions<T>) {
    this.root = root;
    this.clock = options.clock;
    this.hooks = options.hooks ?? {};
    this.#signal = options.signal;
    this.#attempts = options.attempts;
  }

  /** @internal The signal every attempt runs on. */
  attemptSignal(): AbortSignal {
    return (this.#attempts ??= new AbortController()).signal;
  }

  run(): Promise<RaceResult<T>> {
    const p = new Promise<RaceResult<T>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (this.#signal?.aborted) {
      this.abandon(this.#signal.reason);
      return p;
    }
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#paced(this.root.start(this));
    return p;
  }

  /** @internal A leaf started (counted for pacing). */
  started(): void {
    this.#launches++;
    this.running++;
  }

  /** @internal A child joined a started group: start it now if the delay already passed with nothing to start. */
  arrived(): void {
    if (this.#due && !this.settled) this.#next();
  }

  /** @internal A running attempt failed: record it, let its groups decide, then start the next attempt at once. */
  leafFailed(leaf: RaceLeaf<T>, error: unknown): void {
    this.hooks.fail?.(leaf, error);
    this.failures.push({ leaf, error });
    const before = this.#launches;
    leaf.parent?.childFailed(leaf);
    if (this.settled) return;
    if (this.#launches === before) this.#next();
    else this.#paced(true);
  }

  /** Start the next attempt of the tree, then wait one attempt delay for the one after. */
  #next(): void {
    this.#paced(this.root.launchOne());
  }

  /** After a start (or none): arm the delay while a next attempt may still come; otherwise the next arrival goes at once. */
  #paced(launched: boolean): void {
    if (this.settled || !launched || !this.root.pending()) {
      this.#disarm();
      if (!this.settled) this.#due = !launched;
      return;
    }
    this.#due = false;
    // One timer for the race: a start before it fires moves the due time, not the timer (it then waits what is left),
    // so attempts failing one after another arm and clear one timer, not one each.
    const now = this.clock.now();
    this.#dueAt = now + this.root.delay;
    this.#arm(this.#dueAt, now);
  }

  /**
   * @internal Call `expire` after `ms` unless the race settles first (or `clearDeadline()` is called), on the
   * race's one timer: a bound on what still runs (remainder.ts) arms no timer of its own.
   */
  deadline(ms: number, expire: () => void): void {
    if (this.settled) return;
    const now = this.clock.now();
    this.#deadlineAt = now + ms;
    this.#onDeadline = expire;
    this.#arm(this.#deadlineAt, now);
  }

  /** @internal The deadline is off; the timer stays only while an attempt delay runs. */
  clearDeadline(): void {
    this.#deadlineAt = undefined;
    this.#onDeadline = undefined;
    if (this.#dueAt === undefined) this.#disarm();
  }

  /** Have the timer fire by `at`: armed if it is not; armed again if it would fire later (never earlier than it must: it then waits what is left). */
  #arm(at: number, now: number): void {
    if (this.#timer !== undefined) {
      if (this.#timerAt <= at) return;
      this.clock.clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = this.clock.setTimeout(this.#onTimer, at - now);
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    if (this.settled) return;
    const now = this.clock.now();
    // Less than a millisecond left is due: a timer is not set finer than that.
    if (this.#deadlineAt !== undefined && this.#deadlineAt - now < 1) {
      const expire = this.#onDeadline!;
      this.#deadlineAt = undefined;
      this.#onDeadline = undefined;
      expire();
      if (this.settled) return;
    }
    if (this.#dueAt !== undefined && this.#dueAt - now < 1) {
      this.#dueAt = undefined;
      this.#next();
    }
    if (this.settled) return;
    const at = this.#dueAt === undefined ? this.#deadlineAt : this.#deadlineAt === undefined ? this.#dueAt : Math.min(this.#dueAt, this.#deadlineAt);
    if (at !== undefined) this.#arm(at, now);
  };

  /** No attempt delay runs: the timer is cleared, unless a deadline keeps it (it then fires at the old time and waits what is left). */
  #disarm(): void {
    this.#dueAt = undefined;
    if (this.#timer === undefined || this.#deadlineAt !== undefined) return;
    this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** @internal */
  leafReady(leaf: RaceLeaf<T>, value: T): void {
    if (this.settled || leaf.state !== 'running') {
      this.hooks.dispose?.(value);
      return;
    }
    leaf.state = 'won';
    this.running--;
    this.hooks.win?.(leaf);
    this.#finish(ANOTHER_WON);
    this.#resolve({ leaf, value });
  }

  /** @internal */
  rootFailed(): void {
    if (this.settled) return;
    this.#finish(RACE_FAILED);
    // The attempts' errors are the news; the stack would name only the race's own frames.
    this.#reject(stackless(() => new RaceFailedError(this.failures.map((f) => f.error))));
  }

  /** Give up: abort every running attempt and reject with `reason`. */
  abandon(reason: unknown): void {
    if (this.settled) return;
    this.#finish(reason);
    this.#reject(reason);
  }

  #finish(reason: unknown): void {
    this.settled = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (this.#timer !== undefined) this.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#onDeadline = undefined;
    // Only when something still runs (not after every attempt failed): a won race of one leaves the signal alone
    // (an abort dispatches an Event).
    if (this.running === 0) return;
    for (const leaf of this.root.leaves()) leaf.cancel();
    if (this.#attempts !== undefined && !this.#attempts.signal.aborted) this.#attempts.abort(reason);
  }
}
