/**
 * Gather and judge: which of the drivers can serve this request at all (RFC 9623 §4.1.3, first steps),
 * shared by `initiate()` (pipeline.ts) and `listen()` (listener.ts).
 *
 * Each driver is judged on its declared capabilities against the properties, the security mode, the
 * endpoint's scheme and multicast (suitability.ts); a suitable one is then asked whether it can run here.
 * A driver whose `available()` throws or rejects is `unavailable` with that reason, never a failed call.
 * A driver whose optional piece is not installed (`installed()`, asked first) is `unavailable` whatever the
 * request: that is the more useful fact than a property it would not have met anyway.
 * Every dropped stack is handed to `dropped` with its fate and reason, so the report keeps it.
 *
 * The answer is synchronous when every driver answers `available()` synchronously (most do): an await
 * per driver would cost a promise and a microtask on every initiate. With `late`, it is always synchronous:
 * a driver still loading is handed over with its pending answer, so it never delays the ones that are ready;
 * one that says it is not `loaded()` is handed over unasked, for the selection to ask when its turn comes.
 *
 * @example
 * const suitable = await gatherStacks(drivers, { properties, security, framerCount: 1, scheme: undefined }, (driver, fate, reason) => record(...));
 */
import type { Availability, Driver } from '../driver.js';
import { judgeStackOnce, type StackContext, type Verdict } from './suitability.js';

/** How a dropped stack is reported: its fate, the reason, and (for `unsuitable`) the memoized verdict it came from. */
export type Dropped = (driver: Driver, fate: 'unsuitable' | 'unavailable', reason: string, verdict?: Verdict) => void;

/** A driver's answer still to come: a pending `available()`, or the function that asks it (not asked yet). */
export type LateAnswer = Promise<Availability> | (() => Promise<Availability>);

/** Options of {@link gatherStacks}. */
export interface GatherOptions {
  /** Passive open: a driver without `listen` is unsuitable. */
  readonly listening?: boolean | undefined;
  /**
   * A suitable driver whose `available()` answers with a promise (its module is still loading) is kept
   * among the suitable ones and its answer handed here, instead of being awaited: the selection races
   * the drivers that are ready and lets this one join when it is (race.ts `loadingUntil`). A driver whose
   * `loaded()` says false is not asked at all: the function handed here asks it (once), when its turn comes.
   */
  readonly late?: ((driver: Driver, answer: LateAnswer) => void) | undefined;
}

/** The suitable, available drivers in their given order; the rest reported through `dropped`. */
export function gatherStacks(drivers: readonly Driver[], ctx: StackContext, dropped: Dropped, options: GatherOptions = NO_OPTIONS): Driver[] | Promise<Driver[]> {
  const suitable: Driver[] = [];
  for (let i = 0; i < drivers.length; i++) {
    const driver = drivers[i]!;
    if (options.listening === true && typeof driver.listen !== 'function') {
      dropped(driver, 'unsuitable', `${driver.id} cannot listen`);
      continue;
    }
    const missing = notInstalled(driver);
    if (missing !== undefined) {
      dropped(driver, 'unavailable', missing);
      continue;
    }
    const verdict = judgeStackOnce(driver, ctx);
    if (!verdict.ok) {
      dropped(driver, 'unsuitable', verdict.reason, verdict);
      continue;
    }
    if (options.late !== undefined && notLoaded(driver)) {
      suitable.push(driver);
      options.late(driver, askOnce(driver));
      continue;
    }
    const a = availability(driver);
    if (a instanceof Promise && options.late !== undefined) {
      suitable.push(driver);
      options.late(driver, a);
      continue;
    }
    if (a instanceof Promise) return afterAnswer(a, drivers, i, suitable, ctx, dropped, options);
    if (a.available) suitable.push(driver);
    else dropped(driver, 'unavailable', a.reason);
  }
  return suitable;
}

/** The rest of the list once one driver answered with a promise. */
/** The rest of the drivers, once driver `at` answered (a closure here, not in the loop: one there costs a block context per driver). */
function afterAnswer(
  a: Promise<Availability>, drivers: readonly Driver[], at: number, suitable: Driver[], ctx: StackContext, dropped: Dropped, options: GatherOptions,
): Promise<Driver[]> {
  return a.then((first) => finish(drivers, at, first, suitable, ctx, dropped, options));
}

async function finish(drivers: readonly Driver[], at: number, first: Availability, suitable: Driver[], ctx: StackContext, dropped: Dropped, options: GatherOptions): Promise<Driver[]> {
  const driver = drivers[at]!;
  if (first.available) suitable.push(driver);
  else dropped(driver, 'unavailable', first.reason);
  const rest = await gatherStacks(drivers.slice(at + 1), ctx, dropped, options);
  for (const d of rest) suitable.push(d);
  return suitable;
}

/** Why a driver's optional piece is missing (its synchronous `installed()` check), or undefined when nothing is. */
const NO_OPTIONS: GatherOptions = Object.freeze({});

function notInstalled(driver: Driver): string | undefined {
  if (driver.installed === undefined) return undefined;
  let a: Availability;
  try {
    a = checked(driver.installed());
  } catch (err) {
    return `installation check failed: ${(err as Error)?.message ?? String(err)}`;
  }
  return a.available ? undefined : a.reason;
}

/** The driver says `available()` would first load its module (a throwing `loaded()` counts as loaded: it is asked now). */
function notLoaded(driver: Driver): boolean {
  try {
    return driver.loaded?.() === false;
  } catch {
    return false;
  }
}

/** Ask the driver's availability on the first call; later calls answer the same promise. */
function askOnce(driver: Driver): () => Promise<Availability> {
  let answer: Promise<Availability> | undefined;
  return () => (answer ??= Promise.resolve(availability(driver)));
}

/** A driver's availability; a throw or rejection is an unavailable driver with that reason. */
export function availability(driver: Driver): Availability | Promise<Availability> {
  let a: Availability | Promise<Availability>;
  try {
    a = driver.available();
  } catch (err) {
    return unavailable(err);
  }
  return a instanceof Promise ? a.then(checked, unavailable) : checked(a);
}

function checked(a: Availability): Availability {
  if (typeof a === 'object' && a !== null && (a.available === true || (a.available === false && typeof a.reason === 'string'))) return a;
  return { available: false, reason: 'availability check answered neither { available: true } nor { available: false, reason }' };
}

function unavailable(err: unknown): Availability {
  return { available: false, reason: `availability check failed: ${(err as Error)?.message ?? String(err)}` };
}
