/**
 * The run stage of a selection (RFC 9623 §4.2-§4.3, RFC 8305): the candidate tree, fed with derived
 * endpoints as they come, each leaf authorized before it joins, raced.
 *
 * - The tree: stacks in rank order, each stack a group of its addresses (families interleaved); with
 *   opportunistic security the unencrypted stacks are a failover group after the encrypted ones, never
 *   raced against them (RFC 9621 §3.3). Pacing is the race's (race.ts): one new attempt per attempt delay.
 * - Endpoints: an IP literal is used as is; a name is first put to the tenant's policy as a `lookup` (once
 *   per stack protocol, lookup.ts), then resolved by the guard itself, AAAA and A separately (resolve.ts),
 *   once. The race runs from the first answer on; a candidate that is ready is handed over at once, even
 *   while the other family's answer is still out (RFC 8305 §3), and a late answer is then cancelled.
 *   A UDP winner is the exception: a connected UDP socket is "ready" before anything was heard, and the
 *   other family's addresses are where it moves when the first is unreachable (udp-failover.ts). So it
 *   waits for the lookup still out, at most the resolution delay; what answers in that time is checked
 *   by the policy like any leaf and kept as a fallback (recorded, never started). Its win aborts the
 *   losing attempts only, not that lookup; an abort of the whole selection still ends both.
 * - Each leaf is authorized (authorize.ts); a denied one is recorded with the rule and never attempted.
 * - A certificate failure ends the race (unless the caller opted out); QUIC attempts left alone after
 *   every other candidate failed get a bounded remainder (remainder.ts).
 *
 * @example
 * const selected = await raceAll({ input, rec, ranked, paths, auth, sig });
 */
import type { Availability, Driver, TransportChannel } from '../driver.js';
import type { LateAnswer } from './gather.js';
import { LocalEndpoint } from '../endpoints.js';
import { PolicyDeniedError, TapsError, isCertificateFailure, isTapsError } from '../errors.js';
import type { ResolvedAddress } from '../network.js';
import { sourceFor, type PathOption, type PathPlan } from '../paths/constraints.js';
import type { CheckedName, CheckedTarget } from '../policy/contract.js';
import type { CandidateRecord, ResolutionRecord } from '../report.js';
import type { Authorizer } from './authorize.js';
import { grantLookups } from './lookup.js';
import type { RacingOptions, Selected, SelectionInput } from './types.js';
import { attemptFor, presented } from './attempt.js';
import { Race, RaceGroup, RaceLeaf } from './race.js';
import { explainRank, type RankedStack } from './rank.js';
import { debug, type Recorder } from './recorder.js';
import { QuicRemainder } from './remainder.js';
import type { Fallback } from './udp-failover.js';
import { resolveFamilies } from './resolve.js';
import type { SelectionSignal } from './signal.js';

/** A race leaf for one candidate: the attempt's value is its channel; the driver and checked target are kept here. */
class Leaf extends RaceLeaf<TransportChannel> {
  readonly driver: Driver;
  readonly target: CheckedTarget;

  constructor(id: string, run: (signal: AbortSignal) => Promise<TransportChannel>, family: 4 | 6, driver: Driver, target: CheckedTarget) {
    super(id, run, family);
    this.driver = driver;
    this.target = target;
  }
}

export interface RaceStage {
  readonly input: SelectionInput;
  readonly rec: Recorder;
  readonly ranked: readonly RankedStack[];
  readonly paths: PathPlan;
  readonly auth: Authorizer;
  readonly sig: SelectionSignal;
  /** Drivers still loading: their stack groups join the race when they are ready (race.ts `loadingUntil`). */
  readonly loading?: ReadonlyMap<Driver, LateAnswer> | undefined;
}

/** Race every candidate of the ranked stacks; resolves with the winner, rejects with what ended the race. */
export async function raceAll(stage: RaceStage): Promise<Selected> {
  const run = new RaceRun(stage);
  try {
    const { remote } = stage.input;
    if (remote.ipAddress !== undefined) {
      const family: 4 | 6 = remote.ipAddress.includes(':') ? 6 : 4;
      await run.add([{ address: remote.ipAddress, family }], presented(stage.input, remote.hostName), stage.ranked);
      run.sealAndStart();
    } else if (remote.hostName !== undefined) {
      await run.resolveInto(remote.hostName);
    } else {
      throw new TypeError('remote endpoint has neither a hostName nor an ipAddress');
    }
    return await run.result();
  } finally {
    run.stop();
  }
}

/** One race: its tree, its leaves' records, and the endpoints fed into it. */
class RaceRun {
  readonly #stage: RaceStage;
  readonly #groups = new Map<RankedStack, RaceGroup<TransportChannel>>();
  readonly #records = new Map<RaceLeaf<TransportChannel>, CandidateRecord>();
  readonly #rest: QuicRemainder;
  readonly #race: Race<TransportChannel>;
  #started: Promise<{ leaf: RaceLeaf<TransportChannel>; value: TransportChannel }> | undefined;
  #onStarted!: () => void;
  readonly #running = new Promise<void>((r) => (this.#onStarted = r));
  /** False while a lookup is in flight (listening to the selection's signal): a win then aborts it. */
  #resolved = true;
  /** Settles when every answer is in and delivered (or the lookup failed); set while resolving a name. */
  #resolution: Promise<void> | undefined;
  #resolutionError: { error: unknown } | undefined;
  /** After a UDP win: the winning stack, whose late answers still become fallbacks (checked, never started). */
  #late: { readonly stack: RankedStack; readonly fallbacks: Fallback[] } | undefined;

  constructor(stage: RaceStage) {
    this.#stage = stage;
    const { rec, input, sig } = stage;
    const root = buildTree(stage.ranked, input.racing, this.#groups);
    const records = this.#records;
    // Its hooks run once the race runs, when the remainder (on the race's timer) is made.
    let rest!: QuicRemainder;
    this.#race = new Race<TransportChannel>(root, {
      clock: input.clock,
      signal: sig.own(),
      // Attempts run on the selection's signal (no AbortSignal per attempt), unless a UDP winner may wait for
      // the lookup, which listens to that signal too: then the race's own, so its win aborts only the losers.
      attempts: mayWaitForLookup(stage) ? undefined : sig.controller,
      hooks: {
        start: (leaf) => {
          rec.started(records.get(leaf)!);
          rest.check(records);
        },
        fail: (leaf, err) => {
          const e = rec.failed(records.get(leaf)!, err);
          // The peer could not prove it is the checked name: trying it elsewhere, or without security, is not an answer.
          if (isCertificateFailure(e) && !input.racing.continueOnSecurityFailure) this.#race.abandon(e);
          else rest.check(records);
        },
        cancel: (leaf) => rec.cancelled(records.get(leaf)!, rest.reason),
        win: (leaf) => rec.won(records.get(leaf)!),
        dispose: (channel) => channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready after another candidate won')),
      },
    });
    this.#rest = rest = new QuicRemainder(this.#race, input.racing.attemptDelay, (why) => this.#race.abandon(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', why)));
    if (stage.loading !== undefined) this.#holdLoading(stage.loading);
  }

  /**
   * A stack whose driver is still loading is passed by until it is ready (one not asked yet is asked when its
   * turn comes); one that fails to load is unavailable.
   */
  #holdLoading(loading: ReadonlyMap<Driver, LateAnswer>): void {
    const { rec } = this.#stage;
    for (const [s, g] of this.#groups) {
      const answer = loading.get(s.driver);
      if (answer === undefined) continue;
      const ready = (a: Availability): boolean => {
        if (!a.available && !this.#race.settled) rec.record({ driver: s.driver.id, stack: s.driver.stack, fate: 'unavailable', reason: a.reason });
        return a.available;
      };
      g.loadingUntil(typeof answer === 'function' ? () => answer().then(ready) : answer.then(ready));
    }
  }

  /** Authorize each address for each stack and add the allowed ones as leaves (one per path). */
  async add(addresses: readonly { address: string; family: 4 | 6 }[], hostName: string | undefined, stacks: readonly RankedStack[]): Promise<void> {
    const { input, auth } = this.#stage;
    for (const s of stacks) {
      if (this.#race.settled && this.#late?.stack !== s) continue;
      const port = (input.remote.port ?? s.driver.defaultPort)!;
      // Decided together (a policy may answer asynchronously), joined in answer order.
      const verdicts = await Promise.all(addresses.map((a) => auth.decide(s, a, port, hostName)));
      for (let i = 0; i < addresses.length; i++) this.#join(s, addresses[i]!, port, hostName, verdicts[i]!);
    }
  }

  #join(s: RankedStack, a: { address: string; family: 4 | 6 }, port: number, hostName: string | undefined, v: CheckedTarget | TapsError): void {
    const { input, rec } = this.#stage;
    // After the race: only a UDP winner's late answers still count (the report is otherwise the caller's).
    if (this.#race.settled && this.#late?.stack !== s) return;
    const base = { driver: s.driver.id, stack: s.driver.stack, hostName, address: a.address, family: a.family, port };
    if (isTapsError(v)) {
      const decision = (v as { decision?: CandidateRecord['decision'] }).decision;
      rec.record({ ...base, fate: 'denied', reason: v.message, code: decision && !decision.allow ? decision.code : v.code, decision, error: v });
      return;
    }
    const target = v;
    const paths = this.#stage.paths;
    for (const path of paths.any ? ANY_PATH : paths.paths) {
      const source = path === undefined ? undefined : sourceFor(path, a, input.properties);
      if (source !== undefined && 'none' in source) {
        rec.record({ ...base, interface: path!.interface, fate: 'unsuitable', reason: source.none });
        continue;
      }
      const local = source === undefined ? input.local : LocalEndpoint.from({ ipAddress: source.zone === undefined ? source.address : `${source.address}%${source.zone}`, ...(input.local?.port ? { port: input.local.port } : {}) });
      // Built in place, every field it will have declared now (the record outlives the selection: a fixed shape stays
      // compact; a literal, not a spread of `base`, which cost a property-definition miss per field, docs/performance.md).
      const c = rec.add({
        id: rec.nextId(), driver: s.driver.id, stack: s.driver.stack, hostName, address: a.address, family: a.family, port,
        interface: source?.interface, localAddress: source?.address,
        fate: 'pending', decision: target.decision, reason: pathReason(explainRank(s, input.properties), path), startedAt: undefined, endedAt: undefined,
        code: undefined, error: undefined,
      });
      // The channel is the leaf's value as the driver hands it over (no promise per attempt to pair it with its target).
      const attempt = (leafSignal: AbortSignal): Promise<TransportChannel> => {
        leafSignal.throwIfAborted();
        return input.scope.network.connect(s.driver, attemptFor(input, s.driver, target, leafSignal, local));
      };
      if (this.#race.settled) {
        if (this.#late?.stack === s) this.#late.fallbacks.push(fallback(c, attempt, target));
        continue;
      }
      const leaf = new Leaf(c.id, attempt, a.family, s.driver, target);
      this.#records.set(leaf, c);
      this.#groups.get(s)!.add(leaf);
    }
  }

  /** The race runs from the first answer on (or once every answer is in). */
  start(): void {
    if (this.#started !== undefined) return;
    this.#started = this.#race.run();
    this.#onStarted();
  }

  sealAndStart(): void {
    for (const g of this.#groups.values()) g.seal();
    this.#rest.seal(this.#records);
    this.start();
  }

  /** Grant the lookup, resolve both families, and feed each answer in as it comes. */
  async resolveInto(host: string): Promise<void> {
    const { input, rec } = this.#stage;
    // The lookup grant is asked once per protocol (one decision, one record; stacks of that protocol share it):
    // a stack whose protocol may not look up the name gets no answers, and no query leaves without a grant.
    const port = (s: RankedStack): number | undefined => input.remote.port ?? s.driver.defaultPort;
    const granted = grantLookups(input.scope.guard, host, this.#stage.ranked, (r) => rec.record(r), port);
    const { name, allowed } = granted instanceof Promise ? await granted : granted;
    if (name === undefined) return this.sealAndStart();
    this.#resolved = false;
    const resolution = this.#resolve(name, allowed);
    const at = rec.at(); // both questions leave together: one reading
    rec.report.resolutions.push({ host, family: 6, startedAt: at }, { host, family: 4, startedAt: at });
    // Not awaited: a ready candidate is handed over at once; the race is sealed when every answer is in.
    this.#resolution = resolution.then(
      () => this.sealAndStart(),
      (error: unknown) => {
        this.#resolutionError = { error };
        this.sealAndStart();
      },
    );
    await this.#running;
  }

  /** Resolved once per family, by the guard, from the checked name; only these answers are ever dialled. */
  #resolve(name: CheckedName, stacks: readonly RankedStack[]): Promise<unknown> {
    const { input, rec, sig } = this.#stage;
    const signal = sig.own();
    const report = rec.report;
    let refusals: Set<PolicyDeniedError> | undefined;
    let out = 2; // lookups in flight (each listens to the selection's signal until it settles)
    const answered = (family: 4 | 6) => (addrs: ResolvedAddress[]): ResolvedAddress[] => {
      this.#resolved = --out === 0;
      // After the selection ended (its signal aborted) the report is the caller's: a late answer leaves it alone.
      const r = signal.aborted ? undefined : resolutionOf(report.resolutions, family);
      if (r !== undefined) {
        r.endedAt = rec.at();
        r.addresses = addressesOf(addrs);
      }
      return addrs;
    };
    const failed = (err: unknown): never => {
      this.#resolved = --out === 0;
      throw err;
    };
    return resolveFamilies((family, s) => input.scope.guard.resolve(name, family, s).then(answered(family), failed), {
      clock: input.clock,
      resolutionDelay: input.racing.resolutionDelay,
      signal,
      onAnswer: async (_family, addrs) => {
        await this.add(dedupe(addrs).slice(0, input.racing.maxAddressesPerFamily), presented(input, name.name), stacks);
        this.start();
      },
      onError: (family, err) => {
        const r = resolutionOf(report.resolutions, family);
        if (r !== undefined) {
          r.endedAt = rec.at();
          r.error = (err as Error)?.message ?? String(err);
        }
        // The guard refused the answers (strict answers): one denied candidate for the name, like a lookup denial.
        if (err instanceof PolicyDeniedError && !(refusals ??= new Set()).has(err)) {
          refusals.add(err);
          const s = stacks[0]!;
          rec.record({ driver: s.driver.id, stack: s.driver.stack, hostName: input.remote.hostName, fate: 'denied', reason: err.decision.reason, code: err.decision.allow ? undefined : err.decision.code, decision: err.decision, error: err });
        }
      },
    });
  }

  /** The winner, recorded; or what ended the race (a resolution error first, when nothing was attempted). */
  async result(): Promise<Selected> {
    const { rec, sig } = this.#stage;
    let won: { leaf: RaceLeaf<TransportChannel>; value: TransportChannel };
    try {
      won = await this.#started!;
    } catch (err) {
      // The race ended: what still ran was aborted with it; only a lookup still out listens to the signal.
      sig.idle = this.#resolved;
      throw this.#resolutionError !== undefined ? this.#resolutionError.error : err;
    }
    const candidate = this.#records.get(won.leaf)!;
    const channel = won.value;
    const { driver, target } = won.leaf as Leaf;
    // (Attempts still running at the win were aborted; the lookup with them unless a UDP stack raced.)
    const late = driver.protocol === 'udp' && !this.#resolved && sig.signal?.aborted !== true ? await this.#lateAnswers(driver) : undefined;
    if (late !== undefined && sig.signal?.aborted) {
      // The caller gave up (or the budget ran out) while the late answers were awaited: released, not handed over.
      channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready, but the selection ended while its lookup finished'));
      rec.cancelled(candidate, 'the selection ended while its lookup finished');
      throw sig.signal.reason;
    }
    // Nothing of the selection listens to its signal any more unless a lookup is still out: then it is aborted.
    sig.idle = this.#resolved;
    for (const r of rec.report.resolutions) if (r.endedAt === undefined) Object.assign(r, { endedAt: rec.at(), error: 'cancelled: a candidate was ready before this answer' });
    rec.end(candidate.id);
    debug('selection %s won by %s %s', rec.report.remote, candidate.id, candidate.driver);
    const fallbacks = driver.protocol === 'udp' ? joined(this.#unstarted(driver), late) : undefined;
    return { channel, driver, target, candidate, report: rec.report, fallbacks, elapsed: () => rec.at() };
  }

  /**
   * A UDP winner with a lookup still out: its answers arrive for at most the resolution delay (RFC 8305 §3),
   * each address decided by the policy for the winning stack and kept as a fallback; later ones are cancelled.
   */
  async #lateAnswers(driver: Driver): Promise<Fallback[]> {
    const { input } = this.#stage;
    const stack = [...this.#groups.keys()].find((s) => s.driver === driver);
    if (stack === undefined || this.#resolution === undefined) return [];
    const late = (this.#late = { stack, fallbacks: [] as Fallback[] });
    let timer: unknown;
    const delay = new Promise<void>((r) => (timer = input.clock.setTimeout(r, input.racing.resolutionDelay)));
    try {
      await Promise.race([this.#resolution, delay]);
    } finally {
      input.clock.clearTimeout(timer);
      this.#late = undefined;
    }
    return late.fallbacks;
  }

  /** The winning stack's candidates that were ranked and checked but never started, in race order. */
  #unstarted(driver: Driver): Fallback[] | undefined {
    const group = [...this.#groups].find(([s]) => s.driver === driver)?.[1];
    if (group === undefined) return undefined;
    const out: Fallback[] = [];
    for (const leaf of group.leaves()) {
      const record = this.#records.get(leaf);
      if (leaf.state === 'waiting' && record !== undefined) out.push(fallback(record, leaf.run, (leaf as Leaf).target));
    }
    return out.length > 0 ? out : undefined;
  }

  stop(): void {
    this.#rest.stop();
  }
}

/**
 * Whether a UDP winner may wait for a lookup still out (`#lateAnswers`): a name is resolved and a UDP stack
 * races. Its attempts then run on a signal of the race's own, not on the selection's that the lookup listens to.
 */
function mayWaitForLookup(stage: RaceStage): boolean {
  return stage.input.remote.ipAddress === undefined && stage.input.remote.hostName !== undefined && stage.ranked.some((s) => s.driver.protocol === 'udp');
}

/** "Any path": one leaf per address, bound where the OS chooses. */
const ANY_PATH: readonly (PathOption | undefined)[] = Object.freeze([undefined]);

/** A candidate's reason with its path's standing (required/preferred/avoided interface). */
function pathReason(rank: string, path: PathOption | undefined): string {
  if (path === undefined) return rank;
  return `${rank}; interface ${path.interface}${path.why ? ` (${path.why})` : ''}`;
}

function buildTree(ranked: readonly RankedStack[], racing: RacingOptions, groups: Map<RankedStack, RaceGroup<TransportChannel>>): RaceGroup<TransportChannel> {
  const level = (stacks: readonly RankedStack[], label: string): RaceGroup<TransportChannel> => {
    const g = new RaceGroup<TransportChannel>(racing.mode, racing.attemptDelay, label);
    for (const s of stacks) {
      const sg = new RaceGroup<TransportChannel>(racing.mode, racing.attemptDelay, s.driver.id);
      groups.set(s, sg);
      g.add(sg);
    }
    g.seal();
    return g;
  };
  const secure = ranked.filter((s) => s.driver.security !== 'none');
  const insecure = ranked.filter((s) => s.driver.security === 'none');
  if (secure.length === 0 || insecure.length === 0) return level(ranked, 'stacks');
  // Opportunistic security: never race secure against insecure; fail over only when every secure stack failed.
  const root = new RaceGroup<TransportChannel>('failover', racing.attemptDelay, 'security');
  root.add(level(secure, 'encrypted'));
  root.add(level(insecure, 'unencrypted'));
  root.seal();
  return root;
}

/** A UDP winner's fallback: a checked candidate never started, its attempt paired with its target when it runs. */
function fallback(record: CandidateRecord, attempt: (signal: AbortSignal) => Promise<TransportChannel>, target: CheckedTarget): Fallback {
  return { record, attempt: (signal) => attempt(signal).then((channel) => ({ channel, target })) };
}

/** Fallbacks in race order: the ones the race had, then the late ones. */
function joined(had: Fallback[] | undefined, late: Fallback[] | undefined): Fallback[] | undefined {
  if (late === undefined || late.length === 0) return had;
  return had === undefined ? late : [...had, ...late];
}

/** The report's record of one family's question (a name's two are made together, run-race.ts `resolveInto`). */
function resolutionOf(resolutions: readonly ResolutionRecord[], family: 4 | 6): ResolutionRecord | undefined {
  for (let i = 0; i < resolutions.length; i++) if (resolutions[i]!.family === family) return resolutions[i];
  return undefined;
}

/** The answered addresses as the report lists them (indexed, no closure: once per answer of every selection). */
function addressesOf(addrs: readonly ResolvedAddress[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < addrs.length; i++) out.push(addrs[i]!.address);
  return out;
}

function dedupe<T extends { address: string }>(addrs: readonly T[]): readonly T[] {
  if (addrs.length < 2) return addrs;
  const seen = new Set<string>();
  return addrs.filter((a) => (seen.has(a.address) ? false : (seen.add(a.address), true)));
}
