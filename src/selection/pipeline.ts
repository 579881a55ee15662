/**
 * One selection (RFC 9623 §4): a few small stages, explained in one report.
 *
 * 1. Gather and judge (gather.ts, shared with `listen()`): every driver is judged against the properties,
 *    the security mode and the endpoint's scheme; unsuitable and unavailable stacks are recorded with the
 *    reason. A driver still loading (its availability a pending promise: QUIC's native module) is not
 *    waited for: the stacks that are ready race at once and it joins when it is ready. Then rank (rank.ts) with what the tenant's racing cache remembers of this endpoint
 *    (history.ts): a stack that failed here recently is put off (tried only when nothing else connects), one
 *    that won ranks first.
 * 2. Authorize (authorize.ts): every (stack, address, port) leaf is put to the tenant's policy as a
 *    `connect` (and a chosen local address or port as a `bind`) before it may run; a denied leaf is
 *    recorded with the rule and never attempted. Only minted CheckedTargets reach a driver. Names are
 *    granted (`lookup`) and resolved by the guard itself, once (run-race.ts).
 * 3. Run: one stack and an IP literal make one candidate, attempted directly (RFC 8305 needs two to race;
 *    no race tree, and no AbortSignal of its own unless a timeout needs one); everything else is raced
 *    (run-race.ts). Either way an attempt is recorded by the same Recorder methods (recorder.ts).
 *
 * The error a failed selection rejects with is the most informative across attempts (failure.ts); what
 * happened is written back to the racing cache (history.ts).
 *
 * @example
 * const { channel, driver, report } = await select({ scope, remote, properties, security, framerCount: 1, drivers, ... });
 */
import type { TransportChannel } from '../driver.js';
import { EstablishmentError, TapsError, toTapsError } from '../errors.js';
import type { CheckedTarget } from '../policy/contract.js';
import { planPaths, type PathPlan } from '../paths/constraints.js';
import { authorizeNow } from '../policy/admission.js';
import { OwnRequest } from '../policy/requests.js';
import { attemptFor, presented } from './attempt.js';
import { Authorizer } from './authorize.js';
import { failure } from './failure.js';
import { gatherStacks, type Dropped, type GatherOptions, type LateAnswer } from './gather.js';
import { learn, rankWithHistory } from './history.js';
import { racingCacheOf, type RacingCache } from './racing-cache.js';
import { explainRank, rankStacks, type RankedStack } from './rank.js';
import { debug, Recorder } from './recorder.js';
import { raceAll } from './run-race.js';
import { SelectionSignal } from './signal.js';
import type { Driver } from '../driver.js';
import type { Selected, SelectionInput } from './types.js';

export type { RacingOptions, Selected, SelectionInput } from './types.js';

/**
 * One selection. Not an async function: every stage that answers at once runs at once, and the attempt's
 * own promise settles the selection's (`won`, `lost`). `made` is what the caller makes of the winner, run in
 * that same continuation (initiate() builds its Connection there), so a direct attempt's ready channel
 * reaches the caller's promise without a promise, and an async frame, per layer in between. `released` is
 * told when the selection fails, before its promise rejects. The selection's state lives in this function's
 * scope (its closures' context), not in an object's fields: a field is a property load or store per use
 * until the JIT has optimized the path (docs/performance.md).
 */
export function select(input: SelectionInput): Promise<Selected>;
export function select<T>(input: SelectionInput, made: (selected: Selected) => T, released: (err: unknown) => void): Promise<T>;
export function select<T>(input: SelectionInput, made?: (selected: Selected) => T, released?: (err: unknown) => void): Promise<T | Selected> {
  let rec: Recorder;
  let sig: SelectionSignal;
  try {
    rec = new Recorder(input);
    sig = new SelectionSignal(input);
  } catch (err) {
    return Promise.reject(err);
  }
  const cache = racingCacheOf(input.scope);
  const endpoint = (input.remote.hostName ?? input.remote.ipAddress)!;
  // A driver whose module is still loading is raced when it is ready, never waited for (run-race.ts).
  let loading: Map<Driver, LateAnswer> | undefined;
  let paths: PathPlan;
  let auth: Authorizer;
  // The stacks the racing cache put off, and whether they had their try.
  let deferred: Deferred = NO_DEFERRED;
  let retried = false;

  /** The winner: recorded, written back to the racing cache, handed to the caller. */
  const won = (selected: Selected): T | Selected => {
    recordDeferred(rec, deferred);
    learn(cache, endpoint, rec.report, rec.clock, rec.lastReading);
    sig.dispose();
    return made === undefined ? selected : made(selected);
  };
  /** Nothing connected: the put-off stacks get their try, or the selection fails (thrown: a promise handler's rejection). */
  const lost = (err: unknown): Promise<T | Selected> => {
    if (deferred.length > 0 && !retried && !sig.signal?.aborted && !input.signal?.aborted) {
      // Nothing else connected (denied, failed): the stacks the cache put off are tried after all.
      retried = true;
      rec.report.cache = `${rec.report.cache}; then tried ${deferred.map((s) => s.driver.id).join(', ')} anyway: no other candidate connected`;
      return run(input, rec, deferred, undefined, paths, auth, sig, won, lost);
    }
    let e: Error;
    try {
      recordDeferred(rec, deferred);
      rec.end();
      learn(cache, endpoint, rec.report, rec.clock, rec.lastReading);
      e = failure(err, rec.report, sig.signal, input.signal);
    } finally {
      sig.dispose();
    }
    released?.(e);
    throw e;
  };
  /** Stages 1b-2: rank, plan the paths, then run. */
  const ranked = (suitable: readonly Driver[]): Promise<T | Selected> => {
    let stacks: RankedStack[];
    try {
      (sig.signal ?? input.signal)?.throwIfAborted();
      const r = rank(input, rec, suitable, cache, endpoint);
      paths = pathPlan(input, rec);
      auth = new Authorizer(input);
      stacks = r.ranked;
      deferred = r.deferred;
    } catch (err) {
      return rejected(lost, err);
    }
    return run(input, rec, stacks, loading, paths, auth, sig, won, lost);
  };

  let gathered: Driver[] | Promise<Driver[]>;
  try {
    gathered = gather(input, rec, (driver, answer) => void (loading ??= new Map()).set(driver, answer));
  } catch (err) {
    return rejected(lost, err);
  }
  return gathered instanceof Promise ? gathered.then(ranked, lost) : ranked(gathered);
}

/** Stage 3: one stack and an IP literal are attempted directly, anything else raced. */
function run<T>(
  input: SelectionInput, rec: Recorder, stacks: RankedStack[], late: Map<Driver, LateAnswer> | undefined, paths: PathPlan, auth: Authorizer, sig: SelectionSignal,
  won: (selected: Selected) => T, lost: (err: unknown) => Promise<T>,
): Promise<T> {
  return input.remote.ipAddress !== undefined && stacks.length === 1 && paths.any && late === undefined
    ? attemptOne(input, rec, stacks[0]!, auth, sig, won, lost)
    : raceAll({ input, rec, ranked: stacks, paths, auth, sig, loading: late }).then(won, lost);
}

/** What a selection ends with when it ends outside a promise handler: what `lost` throws, as a rejected promise. */
function rejected<T>(lost: (err: unknown) => Promise<T>, err: unknown): Promise<T> {
  try {
    return lost(err);
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Stage 1a: the suitable, available drivers (synchronous when every driver answers so). */
function gather(input: SelectionInput, rec: Recorder, late: NonNullable<GatherOptions['late']>): Driver[] | Promise<Driver[]> {
  const dropped: Dropped = (driver, fate, reason, verdict) => {
    if (verdict !== undefined) rec.unsuitable(driver, verdict, reason);
    else rec.record({ driver: driver.id, stack: driver.stack, fate, reason });
  };
  const { remote } = input;
  return gatherStacks(input.drivers, { properties: input.properties, security: input.security, framerCount: input.framerCount, scheme: remote.scheme, multicast: remote.isMulticast }, dropped, { late });
}

/**
 * Stage 1b: the ranked stacks that have a port, with the racing cache's say (report.cache when it changed the
 * order), and the stacks it put off (failed here recently): tried only when nothing ranked connects, since a
 * cache orders candidates and must not turn a connect into a refusal (RFC 9623 §4.2 lets it skip a branch;
 * the only stack the policy allows may be one it remembers failing).
 */
function rank(
  input: SelectionInput, rec: Recorder, suitable: readonly Driver[], cache: RacingCache | undefined, endpoint: string,
): { ranked: RankedStack[]; deferred: Deferred } {
  const { remote } = input;
  // An endpoint with a port gives every stack one: no filter (and no closure) on that common path.
  const ported = remote.port !== undefined ? suitable : suitable.filter((d) => {
    if (remote.port !== undefined || d.defaultPort !== undefined) return true;
    rec.record({ driver: d.id, stack: d.stack, fate: 'unsuitable', reason: `no port: the endpoint names none and ${d.id} has no default` });
    return false;
  });
  const ctx = { properties: input.properties, security: input.security, framerCount: input.framerCount };
  const { ranked, skipped, note } = rankWithHistory(ported, ctx, cache, endpoint, (d) => remote.port ?? d.defaultPort);
  if (note !== undefined) rec.report.cache = note;
  if (ranked.length === 0) throw new EstablishmentError('ERR_TAPS_NO_CANDIDATES', `no protocol stack can meet the requested properties for ${rec.report.remote}`, rec.report);
  if (debug.enabled) debug('selection %s: ranked %s', rec.report.remote, ranked.map((s) => s.driver.id).join(' > '));
  if (skipped.length === 0) return { ranked, deferred: NO_DEFERRED };
  const later = rankStacks(skipped.map((k) => k.driver), { ...ctx, history: new Map() });
  return { ranked, deferred: Object.assign(later, { reasons: new Map(skipped.map((k) => [k.driver, k.reason])) }) };
}

/** Stacks the racing cache put off, in their usual order, with why. */
type Deferred = RankedStack[] & { readonly reasons?: ReadonlyMap<Driver, string> };
const NO_DEFERRED: Deferred = [];

/** Each put-off stack that never ran is in the report as `skipped`, with the cache's reason. */
function recordDeferred(rec: Recorder, deferred: Deferred): void {
  if (deferred.length === 0) return; // the common case, without an iterator
  for (const s of deferred) {
    if (rec.report.candidates.some((c) => c.driver === s.driver.id)) continue;
    rec.record({ driver: s.driver.id, stack: s.driver.stack, fate: 'skipped', reason: deferred.reasons!.get(s.driver)! });
  }
}

/**
 * The path branch (RFC 9623 §4.1): which interfaces, and which local address on each. "Any path" (nothing
 * constrains it) reads no interface and binds nothing; an impossible constraint fails here, before any I/O.
 */
function pathPlan(input: SelectionInput, rec: Recorder): PathPlan {
  try {
    return planPaths(input.properties, input.local);
  } catch (err) {
    throw new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', (err as Error).message, rec.report, { cause: err });
  }
}

/**
 * Stage 3, one candidate: authorized, attempted on the selection's signal (if it has one), recorded like a
 * race's leaf. Not an async function: the driver's promise settles the selection (`won`, `lost`) in its own handler.
 */
function attemptOne<T>(
  input: SelectionInput, rec: Recorder, s: RankedStack, auth: Authorizer, sig: SelectionSignal, won: (selected: Selected) => T, lost: (err: unknown) => Promise<T>,
): Promise<T> {
  const address = input.remote.ipAddress!;
  const family: 4 | 6 = address.includes(':') ? 6 : 4;
  const port = (input.remote.port ?? s.driver.defaultPort)!;
  const hostName = presented(input, input.remote.hostName);
  // Decided as a race's leaf is (the bind grant first), without the race's promise per verdict. Made outside the
  // try block: a closure over a variable declared in it would cost a block context per attempt.
  const connect = new OwnRequest('connect', s.driver.protocol, address, port, hostName);
  let decided: CheckedTarget | Promise<CheckedTarget>;
  try {
    const bind = auth.localBind(s.driver.protocol, family);
    decided = bind === undefined ? authorizeNow(input.scope.guard, connect) : bind.then((denied) => {
      if (denied !== undefined) throw denied;
      return authorizeNow(input.scope.guard, connect);
    });
  } catch (err) {
    return rejected(lost, denied(rec, connect, s.driver, family, err));
  }
  if (decided instanceof Promise) return decided.then((target) => dialOne(input, rec, s, address, family, port, hostName, target, sig, won, lost), (err: unknown) => lost(denied(rec, connect, s.driver, family, err)));
  return dialOne(input, rec, s, address, family, port, hostName, decided, sig, won, lost);
}

/** The one candidate was denied (its bind or its connect): recorded with the rule; the error the selection ends with. */
function denied(rec: Recorder, req: OwnRequest, driver: Driver, family: 4 | 6, err: unknown): TapsError {
  const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
  const decision = (e as { decision?: Selected['candidate']['decision'] }).decision;
  rec.record({
    driver: driver.id, stack: driver.stack, hostName: req.hostName, address: req.address, family, port: req.port,
    fate: 'denied', reason: e.message, code: decision && !decision.allow ? decision.code : e.code, decision, error: e,
  });
  return e;
}

/** The one candidate, checked: attempted, and its end (ready, failed, cancelled) recorded and handed to the selection. */
function dialOne<T>(
  input: SelectionInput, rec: Recorder, s: RankedStack, address: string, family: 4 | 6, port: number, hostName: string | undefined, target: CheckedTarget,
  sig: SelectionSignal, won: (selected: Selected) => T, lost: (err: unknown) => Promise<T>,
): Promise<T> {
  const signal = sig.current();
  if (signal.aborted) return rejected(lost, signal.reason);
  // Built in place, every field it will have declared now (the record outlives the selection: a fixed shape stays compact, docs/performance.md).
  const c = rec.begin({
    id: rec.nextId(), driver: s.driver.id, stack: s.driver.stack, hostName, address, family, port,
    fate: 'pending', decision: target.decision, reason: explainRank(s, input.properties), startedAt: rec.at(), endedAt: undefined, code: undefined, error: undefined,
  });
  let pending: Promise<TransportChannel>;
  try {
    pending = input.scope.network.connect(s.driver, attemptFor(input, s.driver, target, signal));
  } catch (err) {
    pending = Promise.reject(err);
  }
  return pending.then(
    (channel) => {
      if (signal.aborted) {
        // Ready just as the caller gave up (or the budget ran out): released, not handed over.
        channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready after the selection ended'));
        rec.cancelled(c);
        return lost(signal.reason);
      }
      const at = rec.at();
      rec.won(c, at);
      rec.end(c.id, at);
      sig.idle = true; // its signal stays as it is: nothing else of this selection runs
      return won({ channel, driver: s.driver, target, candidate: c, report: rec.report });
    },
    (err: unknown) => {
      if (signal.aborted) rec.cancelled(c);
      else rec.failed(c, err);
      return lost(err);
    },
  );
}
