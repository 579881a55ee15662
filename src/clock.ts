/**
 * Injectable time, so racing and expiry are unit-tested with fake clocks
 * instead of the wall clock (STYLE §10).
 *
 * @example
 * const clock: Clock = systemClock;
 * const t = clock.setTimeout(() => {}, 250);
 * clock.clearTimeout(t);
 */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Call `fn` after `ms`; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel a timer made by `setTimeout`. */
  clearTimeout(handle: unknown): void;
}

/** The real clock: `performance.now()` and the global timers, unref'd where Node allows. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A clock that reads `Date.now()` and the global timers at call time (works with vi.useFakeTimers()). */
export const globalTimersClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};
