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

export async function select(input: SelectionInput): Promise<Selected> {
  const rec = new Recorder(input);
  const sig = new SelectionSignal(input);
  const cache = racingCacheOf(input.scope);
  const endpoint = (input.remote.hostName ?? input.remote.ipAddress)!;
  // A driver whose module is still loading is raced when it is ready, never waited for (run-race.ts). Declared
  // here, not in the try block: a variable a closure keeps there costs a block context per selection.
  let loading: Map<Driver, LateAnswer> | undefined;
  try {
    const gathered = gather(input, rec, (driver, answer) => void (loading ??= new Map()).set(driver, answer));
    const suitable = gathered instanceof Promise ? await gathered : gathered;
    (sig.signal ?? input.signal)?.throwIfAborted();
    const { ranked, deferred } = rank(input, rec, suitable, cache, endpoint);
    const paths = pathPlan(input, rec);
    const auth = new Authorizer(input);
    let selected: Selected;
    try {
      selected = await run(input, rec, ranked, loading, paths, auth, sig);
    } catch (err) {
      if (deferred.length === 0 || sig.signal?.aborted || input.signal?.aborted) throw err;
      // Nothing else connected (denied, failed): the stacks the cache put off are tried after all.
      rec.report.cache = `${rec.report.cache}; then tried ${deferred.map((s) => s.driver.id).join(', ')} anyway: no other candidate connected`;
      selected = await run(input, rec, deferred, undefined, paths, auth, sig);
    } finally {
      recordDeferred(rec, deferred);
    }
    learn(cache, endpoint, rec.report, rec.clock, rec.lastReading);
    return selected;
  } catch (err) {
    rec.end();
    learn(cache, endpoint, rec.report, rec.clock, rec.lastReading);
    throw failure(err, rec.report, sig.signal, input.signal);
  } finally {
    sig.dispose();
  }
}

/** Stage 3: one stack and an IP literal are attempted directly, anything else raced. */
function run(
  input: SelectionInput, rec: Recorder, stacks: RankedStack[], late: Map<Driver, LateAnswer> | undefined, paths: PathPlan, auth: Authorizer, sig: SelectionSignal,
): Promise<Selected> {
  return input.remote.ipAddress !== undefined && stacks.length === 1 && paths.any && late === undefined
    ? attemptOne(input, rec, stacks[0]!, auth, sig)
    : raceAll({ input, rec, ranked: stacks, paths, auth, sig, loading: late });
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

/** Stage 3, one candidate: authorized, attempted on the selection's signal (if it has one), recorded like a race's leaf. */
async function attemptOne(input: SelectionInput, rec: Recorder, s: RankedStack, auth: Authorizer, sig: SelectionSignal): Promise<Selected> {
  const address = input.remote.ipAddress!;
  const family: 4 | 6 = address.includes(':') ? 6 : 4;
  const port = (input.remote.port ?? s.driver.defaultPort)!;
  const hostName = presented(input, input.remote.hostName);
  // Decided as a race's leaf is (the bind grant first), without the race's promise per verdict.
  let target: CheckedTarget;
  try {
    const bind = auth.localBind(s.driver.protocol, family);
    const bindDenied = bind === undefined ? undefined : await bind;
    if (bindDenied !== undefined) throw bindDenied;
    const decided = authorizeNow(input.scope.guard, new OwnRequest('connect', s.driver.protocol, address, port, hostName));
    target = decided instanceof Promise ? await decided : decided;
  } catch (err) {
    const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
    const decision = (e as { decision?: Selected['candidate']['decision'] }).decision;
    rec.record({
      driver: s.driver.id, stack: s.driver.stack, hostName, address, family, port,
      fate: 'denied', reason: e.message, code: decision && !decision.allow ? decision.code : e.code, decision, error: e,
    });
    throw e;
  }
  const signal = sig.current();
  signal.throwIfAborted();
  // Built in place, every field it will have declared now (the record outlives the selection: a fixed shape stays compact, docs/performance.md).
  const c = rec.begin({
    id: rec.nextId(), driver: s.driver.id, stack: s.driver.stack, hostName, address, family, port,
    fate: 'pending', decision: target.decision, reason: explainRank(s, input.properties), startedAt: rec.at(), endedAt: undefined, code: undefined, error: undefined,
  });
  let channel: TransportChannel;
  try {
    channel = await input.scope.network.connect(s.driver, attemptFor(input, s.driver, target, signal));
  } catch (err) {
    if (signal.aborted) rec.cancelled(c);
    else rec.failed(c, err);
    throw err;
  }
  if (signal.aborted) {
    // Ready just as the caller gave up (or the budget ran out): released, not handed over.
    channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready after the selection ended'));
    rec.cancelled(c);
    throw signal.reason;
  }
  const at = rec.at();
  rec.won(c, at);
  rec.end(c.id, at);
  sig.idle = true; // its signal stays as it is: nothing else of this selection runs
  return { channel, driver: s.driver, target, candidate: c, report: rec.report };
}
