/**
 * One selection: gather → policy → rank → race (RFC 9623 §4), explained in a report.
 *
 * 1. Gather: every driver is judged against the properties, the security
 *    mode and the endpoint's scheme; unsuitable and unavailable stacks are
 *    recorded with the reason. A driver still loading (its availability is
 *    a pending promise: QUIC's native module) is not waited for: the stacks
 *    that are ready race at once and it joins when it is ready.
 * 2. Rank the suitable stacks (rank.ts).
 * 3. Derive endpoints: an IP literal is used as is; a name is first put to the
 *    tenant's policy as a `lookup` (`guard.authorizeLookup`, once per stack
 *    protocol, so no DNS query leaves for a name the tenant may not look up),
 *    then the guard resolves the checked name itself, AAAA and A separately
 *    (`guard.resolve`, resolve.ts), once, with no second decision. Nothing is
 *    handed to a driver's own resolver, and nothing is resolved twice (DNS
 *    rebinding gets nothing).
 * 4. Policy: every (stack, address, port) leaf is authorized as a `connect`
 *    (and, when the local endpoint names an address or port, that as a
 *    `bind`) before it joins the race; a denied leaf is recorded with the rule and
 *    never attempted. Only minted CheckedTargets reach a driver. An answer
 *    that mixes allowed and forbidden addresses loses only the forbidden
 *    ones (each is its own candidate, recorded `denied`); the rest race.
 * 5. Race (race.ts): stacks staggered in rank order; within a stack its
 *    addresses staggered with families interleaved; with opportunistic
 *    security the unencrypted stacks are a failover group after the
 *    encrypted ones, never raced against them (RFC 9621 §3.3). One stack and
 *    an IP literal make one candidate: it is attempted directly, without a race
 *    tree, and recorded the same way; it runs on the caller's signal (or one
 *    shared signal that never aborts) unless a timeout needs a controller.
 *
 * @example
 * const { channel, driver, report } = await select({ scope, remote, properties, security, framerCount: 1, drivers, ... });
 */
import { channel as diagChannel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { Clock } from '../clock.js';
import { NEVER_ABORTED, type Availability, type ConnectAttempt, type Driver, type TransportChannel } from '../driver.js';
import { LocalEndpoint, type RemoteEndpoint } from '../endpoints.js';
import { planPaths, sourceFor, type PathOption, type PathPlan } from '../paths/constraints.js';
import { EstablishmentError, PolicyDeniedError, abortCode, TapsError, isCertificateFailure, isTapsError, toTapsError } from '../errors.js';
import type { ResolvedAddress } from '../network.js';
import type { NetworkScope } from '../network.js';
import type { CheckedName, CheckedTarget } from '../policy/contract.js';
import type { TransportProperties } from '../properties.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import type { SecurityParameters } from '../security.js';
import { Race, RaceGroup, RaceLeaf, type RacingMode } from './race.js';
import { explainRank, type RankedStack } from './rank.js';
import { learn, rankWithHistory } from './history.js';
import { racingCacheOf } from './racing-cache.js';
import { QuicRemainder } from './remainder.js';
import { grantLookups } from './lookup.js';
import { resolveFamilies } from './resolve.js';
import { gatherStacks, type Dropped } from './gather.js';
import type { Fallback } from './udp-failover.js';

/** Candidate ids (`c1`, `c2`, ...): one shared string each, not one per selection. */
const CANDIDATE_IDS: string[] = [];
const candidateId = (n: number): string => (CANDIDATE_IDS[n] ??= `c${n}`);

/** Frozen records of unsuitable stacks, by memoized verdict and candidate id (retained by every report: shared). */
const unsuitableRecords = new WeakMap<object, Map<string, CandidateRecord>>();

/** The abort reason that ends every finished selection's leftovers: one shared instance (an Error per initiate cost a stack capture). */
const SELECTION_FINISHED = new TapsError('ERR_TAPS_ABORTED', 'selection finished');

const debug = debuglog('taps');
export const candidateStart = diagChannel('taps:candidate:start');
export const candidateReady = diagChannel('taps:candidate:ready');
export const candidateFail = diagChannel('taps:candidate:fail');

/** How candidates are raced (RFC 8305): mode, attempt delay, resolution delay, address cap. */
export interface RacingOptions {
  readonly mode: RacingMode;
  /** Connection attempt delay, clamped to 10 ms..2 s (RFC 8305 §5). */
  readonly attemptDelay: number;
  /** How long IPv4 answers wait for a late AAAA answer (RFC 8305 §3). */
  readonly resolutionDelay: number;
  /** At most this many addresses per family per name join the race (the rest are recorded, not tried). */
  readonly maxAddressesPerFamily: number;
  /**
   * A certificate that fails verification for the checked name (ERR_TAPS_SECURITY_FAILED) ends the race by
   * default: no other address or stack, and never the unencrypted group of opportunistic security, is tried
   * against a peer that could not prove it is the name. `true` lets the race go on (a name served by
   * several certificates); the error is still ERR_TAPS_SECURITY_FAILED when nothing else succeeds.
   */
  readonly continueOnSecurityFailure: boolean;
}

export interface SelectionInput {
  readonly scope: NetworkScope;
  readonly remote: RemoteEndpoint;
  readonly local?: LocalEndpoint | undefined;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framerCount: number;
  readonly drivers: readonly Driver[];
  readonly driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly racing: RacingOptions;
  readonly clock: Clock;
  readonly signal?: AbortSignal | undefined;
  /** Overall budget in ms for the whole selection. */
  readonly timeout?: number | undefined;
  /** Called whenever a candidate record changes (CLI timelines, progress UIs). */
  readonly onProgress?: ((record: CandidateRecord, report: SelectionReport) => void) | undefined;
}

export interface Selected {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly candidate: CandidateRecord;
  readonly report: SelectionReport;
  /** The checked address the winner connected to. */
  readonly target: CheckedTarget;
  /** A UDP winner: the ranked, checked, never started candidates of its stack, to move to on an ICMP unreachable (udp-failover.ts). */
  readonly fallbacks?: readonly Fallback[] | undefined;
  /** Milliseconds since the report began, on the selection's clock. */
  readonly elapsed?: (() => number) | undefined;
}

interface Leaf {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly target: CheckedTarget;
}

/**
 * The name a candidate presents (TLS SNI, the certificate check, HTTP `Host`): the checked name, or the
 * caller's `security.serverName` override. Either way it is part of the candidate's connect decision (name
 * and address together), so an override the tenant may not reach as a name denies the candidate instead
 * of going out in a ClientHello; no name is looked up for it.
 */
function presented(input: SelectionInput, checked: string | undefined): string | undefined {
  return input.security.serverName ?? checked;
}

/** How a report names the remote endpoint; endpoints are immutable, so each is described once. */
function endpointText(remote: RemoteEndpoint): string {
  let text = endpointTexts.get(remote);
  if (text === undefined) endpointTexts.set(remote, (text = describeEndpoint(remote)));
  return text;
}

const endpointTexts = new WeakMap<RemoteEndpoint, string>();

function describeEndpoint(remote: RemoteEndpoint): string {
  const host = remote.hostName ?? (remote.ipAddress?.includes(':') ? `[${remote.ipAddress}]` : remote.ipAddress) ?? '?';
  return `${remote.scheme ? `${remote.scheme}://` : ''}${host}${remote.port !== undefined ? `:${remote.port}` : ''}`;
}

export async function select(input: SelectionInput): Promise<Selected> {
  const { scope, remote, clock, racing } = input;
  const cache = racingCacheOf(scope);
  const cacheKey = (remote.hostName ?? remote.ipAddress)!;
  const t0 = clock.now();
  const at = (): number => Math.round((clock.now() - t0) * 1000) / 1000;
  const report: SelectionReport = {
    startedAt: Date.now(),
    tenant: scope.tenant,
    remote: endpointText(remote),
    racing: racing.mode,
    attemptDelay: racing.attemptDelay,
    resolutions: [],
    candidates: [],
    // Declared now, set at the end: an object whose shape never grows stays compact (it outlives the selection).
    winner: undefined,
    endedAt: undefined,
    cache: undefined,
  };
  let nextId = 1;
  const record = (r: Omit<CandidateRecord, 'id'>): CandidateRecord => {
    const c: CandidateRecord = { id: candidateId(nextId++), ...r };
    report.candidates.push(c);
    input.onProgress?.(c, report);
    return c;
  };
  /** An unsuitable stack's record: the same frozen object for every selection with the same verdict and id. */
  const recordUnsuitable = (driver: Driver, verdict: object, reason: string): void => {
    const id = candidateId(nextId++);
    let byId = unsuitableRecords.get(verdict);
    if (byId === undefined) unsuitableRecords.set(verdict, (byId = new Map()));
    let c = byId.get(id);
    if (c === undefined) byId.set(id, (c = Object.freeze({ id, driver: driver.id, stack: driver.stack, fate: 'unsuitable' as const, reason })));
    report.candidates.push(c);
    input.onProgress?.(c, report);
  };
  const update = (c: CandidateRecord, patch: Partial<CandidateRecord>): void => {
    Object.assign(c, patch);
    input.onProgress?.(c, report);
  };

  // The selection's own controller joins the caller's abort and the overall timeout, and ends a race's leftovers.
  // Made only when needed: a direct attempt without a timeout runs on the caller's signal, or on one that never
  // aborts (creating an AbortSignal costs ~4 µs on Node 20, a tenth of a loopback connect).
  let controller: AbortController | undefined;
  let onCallerAbort: (() => void) | undefined;
  const own = (): AbortSignal => {
    if (controller !== undefined) return controller.signal;
    const c = (controller = new AbortController());
    const caller = input.signal;
    if (caller?.aborted) c.abort(caller.reason);
    else if (caller !== undefined) caller.addEventListener('abort', (onCallerAbort = () => c.abort(caller.reason)), { once: true });
    return c.signal;
  };
  const timer =
    input.timeout !== undefined && Number.isFinite(input.timeout)
      ? (own(), clock.setTimeout(() => controller!.abort(new TapsError('ERR_TAPS_TIMEOUT', `establishment timed out after ${input.timeout} ms`)), input.timeout))
      : undefined;
  let handedOver = false;
  let remainder: QuicRemainder | undefined;

  try {
    // 1. Gather and judge stacks.
    const dropped: Dropped = (driver, fate, reason, verdict) => {
      if (verdict !== undefined) recordUnsuitable(driver, verdict, reason);
      else record({ driver: driver.id, stack: driver.stack, fate, reason });
    };
    // A driver whose module is still loading is raced when it is ready, never waited for (buildTree).
    let loading: Map<Driver, Promise<Availability>> | undefined;
    const late = (driver: Driver, answer: Promise<Availability>): void => void (loading ??= new Map()).set(driver, answer);
    const gathered = gatherStacks(input.drivers, { properties: input.properties, security: input.security, framerCount: input.framerCount, scheme: remote.scheme, multicast: remote.isMulticast }, dropped, { late });
    const suitable = gathered instanceof Promise ? await gathered : gathered;
    (controller?.signal ?? input.signal)?.throwIfAborted();
    // 2. Rank, with what the tenant's racing cache remembers of this endpoint (history.ts).
    const ported = suitable.filter((d) => {
      if (remote.port !== undefined || d.defaultPort !== undefined) return true;
      record({ driver: d.id, stack: d.stack, fate: 'unsuitable', reason: `no port: the endpoint names none and ${d.id} has no default` });
      return false;
    });
    const { ranked, skipped, note } = rankWithHistory(
      ported, { properties: input.properties, security: input.security, framerCount: input.framerCount }, cache, cacheKey, (d) => remote.port ?? d.defaultPort,
    );
    for (const k of skipped) record({ driver: k.driver.id, stack: k.driver.stack, fate: 'skipped', reason: k.reason });
    if (note !== undefined) report.cache = note;
    if (ranked.length === 0) {
      throw new EstablishmentError('ERR_TAPS_NO_CANDIDATES', `no protocol stack can meet the requested properties for ${report.remote}`, report);
    }
    if (debug.enabled) debug('selection %s: ranked %s', report.remote, ranked.map((s) => s.driver.id).join(' > '));

    // The path branch (RFC 9623 §4.1): which interfaces, and which local address on each. "Any path" (nothing
    // constrains it) reads no interface and binds nothing; an impossible constraint fails here, before any I/O.
    let paths: PathPlan;
    try {
      paths = planPaths(input.properties, input.local);
    } catch (err) {
      throw new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', (err as Error).message, report, { cause: err });
    }

    // Connecting from a chosen local address or port is also a bind: the tenant needs that grant too. Decided
    // (and recorded) once per protocol and family; a denial denies that stack's candidates of that family.
    const local = input.local;
    let localBinds: Map<string, Promise<TapsError | undefined>> | undefined;
    const localBind = (protocol: Driver['protocol'], family: 4 | 6): Promise<TapsError | undefined> | undefined => {
      if (local === undefined || (local.ipAddress === undefined && !local.port)) return undefined;
      const key = `${protocol}/${family}`;
      localBinds ??= new Map();
      let p = localBinds.get(key);
      if (p === undefined) {
        const address = local.ipAddress ?? (family === 6 ? '::' : '0.0.0.0');
        p = scope.guard.authorize({ use: 'bind', protocol, address, port: local.port ?? 0 }).then(
          () => undefined,
          (err: unknown) => toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED'),
        );
        localBinds.set(key, p);
      }
      return p;
    };

    if (remote.ipAddress !== undefined && ranked.length === 1 && paths.any && loading === undefined) {
      // One stack and one address: nothing to race (RFC 8305 needs two candidates), so no race tree; the
      // attempt runs on the selection's signal if it has one. Recorded exactly as a race of one would be.
      const s = ranked[0]!;
      const signal = controller?.signal ?? input.signal ?? NEVER_ABORTED;
      const address = remote.ipAddress;
      const family: 4 | 6 = address.includes(':') ? 6 : 4;
      const port = (remote.port ?? s.driver.defaultPort)!;
      const hostName = presented(input, remote.hostName);
      const base = { driver: s.driver.id, stack: s.driver.stack, hostName, address, family, port };
      let target: CheckedTarget;
      try {
        const bind = localBind(s.driver.protocol, family);
        const bindDenied = bind === undefined ? undefined : await bind;
        if (bindDenied !== undefined) throw bindDenied;
        target = await scope.guard.authorize({ use: 'connect', protocol: s.driver.protocol, address, port, hostName });
      } catch (err) {
        const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
        const decision = (e as { decision?: CandidateRecord['decision'] }).decision;
        record({ ...base, fate: 'denied', reason: e.message, code: decision && !decision.allow ? decision.code : e.code, decision, error: e });
        throw e;
      }
      signal.throwIfAborted();
      // Started as it is recorded; every field it will have is declared here (the record outlives the selection).
      const c: CandidateRecord = {
        id: candidateId(nextId++), driver: s.driver.id, stack: s.driver.stack, hostName, address, family, port,
        fate: 'pending', decision: target.decision, reason: explainRank(s, input.properties), startedAt: at(), endedAt: undefined,
      };
      report.candidates.push(c);
      input.onProgress?.(c, report);
      if (candidateStart.hasSubscribers) candidateStart.publish({ tenant: scope.tenant, candidate: c });
      let channel: TransportChannel;
      try {
        channel = await scope.network.connect(s.driver, attemptFor(input, s.driver, target, signal));
      } catch (err) {
        if (signal.aborted) {
          update(c, { fate: 'cancelled', endedAt: at(), reason: 'another candidate won, or the caller gave up' });
        } else {
          const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
          update(c, { fate: 'failed', endedAt: at(), reason: e.message, code: e.code, error: e });
          if (candidateFail.hasSubscribers) candidateFail.publish({ tenant: scope.tenant, candidate: c, error: e });
          debug('candidate %s %s failed: %s', c.id, c.driver, e.message);
        }
        throw err;
      }
      if (signal.aborted) {
        // Ready just as the caller gave up (or the budget ran out): released, not handed over.
        channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready after the selection ended'));
        update(c, { fate: 'cancelled', endedAt: at(), reason: 'another candidate won, or the caller gave up' });
        throw signal.reason;
      }
      c.fate = 'won';
      c.endedAt = at();
      input.onProgress?.(c, report);
      if (candidateReady.hasSubscribers) candidateReady.publish({ tenant: scope.tenant, candidate: c });
      report.winner = c.id;
      report.endedAt = at();
      trim(report);
      learn(cache, cacheKey, report);
      handedOver = true; // its signal stays as it is: nothing else of this selection runs
      return { channel, driver: s.driver, target, candidate: c, report };
    }

    // 3–5. Build the race tree, derive endpoints into it, authorize each leaf.
    const signal = own();
    const groups = new Map<RankedStack, RaceGroup<Leaf>>();
    const root = buildTree(ranked, racing, groups);
    if (loading !== undefined) {
      for (const [s, g] of groups) {
        const answer = loading.get(s.driver);
        if (answer === undefined) continue;
        g.loadingUntil(
          answer.then((a) => {
            if (!a.available && !race.settled) record({ driver: s.driver.id, stack: s.driver.stack, fate: 'unavailable', reason: a.reason });
            return a.available;
          }),
        );
      }
    }
    const leafRecords = new Map<RaceLeaf<Leaf>, CandidateRecord>();
    const rest = (remainder = new QuicRemainder(clock, racing.attemptDelay, (why) => race.abandon(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', why))));
    const race = new Race<Leaf>(root, {
      clock,
      signal,
      attempts: controller, // attempts run on the selection's signal: no AbortSignal per attempt
      hooks: {
        start: (leaf) => {
          const c = leafRecords.get(leaf)!;
          update(c, { startedAt: at() });
          if (candidateStart.hasSubscribers) candidateStart.publish({ tenant: scope.tenant, candidate: c });
          rest.check(leafRecords);
        },
        fail: (leaf, err) => {
          const c = leafRecords.get(leaf)!;
          const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
          update(c, { fate: 'failed', endedAt: at(), reason: e.message, code: e.code, error: e });
          if (candidateFail.hasSubscribers) candidateFail.publish({ tenant: scope.tenant, candidate: c, error: e });
          debug('candidate %s %s failed: %s', c.id, c.driver, e.message);
          // The peer could not prove it is the checked name: trying it elsewhere, or without security, is not an answer.
          if (isCertificateFailure(e) && !racing.continueOnSecurityFailure) race.abandon(e);
          else rest.check(leafRecords);
        },
        cancel: (leaf) => update(leafRecords.get(leaf)!, { fate: 'cancelled', endedAt: at(), reason: rest.reason ?? 'another candidate won, or the caller gave up' }),
        win: (leaf) => {
          const c = leafRecords.get(leaf)!;
          update(c, { fate: 'won', endedAt: at(), reason: c.reason });
          if (candidateReady.hasSubscribers) candidateReady.publish({ tenant: scope.tenant, candidate: c });
        },
        dispose: (leaf) => leaf.channel.abort(new TapsError('ERR_TAPS_ABORTED', 'ready after another candidate won')),
      },
    });

    /** One address's policy verdict for a stack: its CheckedTarget, or why not (the bind grant first, when there is one). */
    const decide = (s: RankedStack, a: { address: string; family: 4 | 6 }, port: number, hostName: string | undefined): Promise<CheckedTarget | TapsError> => {
      const connect = (): Promise<CheckedTarget | TapsError> =>
        scope.guard.authorize({ use: 'connect', protocol: s.driver.protocol, address: a.address, port, hostName }).then(
          (target) => target,
          (err: unknown) => toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED'),
        );
      const bind = localBind(s.driver.protocol, a.family);
      return bind === undefined ? connect() : bind.then((denied) => denied ?? connect());
    };

    const addAddresses = async (addresses: readonly { address: string; family: 4 | 6 }[], hostName: string | undefined, stacks: readonly RankedStack[]): Promise<void> => {
      for (const s of stacks) {
        if (race.settled) return;
        const group = groups.get(s)!;
        const port = (remote.port ?? s.driver.defaultPort)!;
        // Decided together (a policy may answer asynchronously), joined in answer order.
        const verdicts = await Promise.all(addresses.map((a) => decide(s, a, port, hostName)));
        for (let i = 0; i < addresses.length; i++) {
          const a = addresses[i]!;
          const v = verdicts[i]!;
          if (isTapsError(v)) {
            const decision = (v as { decision?: CandidateRecord['decision'] }).decision;
            record({
              driver: s.driver.id, stack: s.driver.stack, hostName, address: a.address, family: a.family, port,
              fate: 'denied', reason: v.message, code: decision && !decision.allow ? decision.code : v.code, decision, error: v,
            });
            continue;
          }
          const target = v;
          for (const path of paths.any ? ANY_PATH : paths.paths) {
            const source = path === undefined ? undefined : sourceFor(path, a, input.properties);
            if (source !== undefined && 'none' in source) {
              record({ driver: s.driver.id, stack: s.driver.stack, hostName, address: a.address, family: a.family, port, interface: path!.interface, fate: 'unsuitable', reason: source.none });
              continue;
            }
            const local = source === undefined ? input.local : LocalEndpoint.from({ ipAddress: source.zone === undefined ? source.address : `${source.address}%${source.zone}`, ...(input.local?.port ? { port: input.local.port } : {}) });
            // Every field it will have declared now (the record outlives the selection: a fixed shape stays compact).
            const c = record({
              driver: s.driver.id, stack: s.driver.stack, hostName, address: a.address, family: a.family, port,
              interface: source?.interface, localAddress: source?.address,
              fate: 'pending', decision: target.decision, reason: pathReason(explainRank(s, input.properties), path), startedAt: undefined, endedAt: undefined,
              code: undefined, error: undefined,
            });
            const attempt = (leafSignal: AbortSignal): Promise<Leaf> => {
              leafSignal.throwIfAborted();
              return scope.network.connect(s.driver, attemptFor(input, s.driver, target, leafSignal, local)).then((channel) => ({ channel, driver: s.driver, target }));
            };
            const leaf = new RaceLeaf<Leaf>(c.id, attempt, a.family);
            leafRecords.set(leaf, c);
            if (!race.settled) group.add(leaf);
          }
        }
      }
    };

    const seal = (): void => {
      for (const g of groups.values()) g.seal();
      rest.seal(leafRecords);
    };

    // The race runs from the first answer on (or once every answer is in); it is awaited as soon as it runs.
    let started: Promise<{ leaf: RaceLeaf<Leaf>; value: Leaf }> | undefined;
    let onStarted!: () => void;
    const running = new Promise<void>((r) => (onStarted = r));
    const startRace = (): void => {
      if (started !== undefined) return;
      started = race.run();
      onStarted();
    };
    /** False while a lookup is in flight (listening to the selection's signal): a win then aborts it. */
    let resolved = true;
    let resolutionError: { error: unknown } | undefined;

    if (remote.ipAddress !== undefined) {
      const family: 4 | 6 = remote.ipAddress.includes(':') ? 6 : 4;
      await addAddresses([{ address: remote.ipAddress, family }], presented(input, remote.hostName), ranked);
      seal();
      startRace();
    } else if (remote.hostName !== undefined) {
      const host = remote.hostName;
      // The lookup grant is asked once per protocol (one decision, one record; stacks of that protocol share it):
      // a stack whose protocol may not look up the name gets no answers, and no query leaves without a grant.
      const { name: checked, allowed: lookupAllowed } = await grantLookups(scope.guard, host, ranked, record, (s) => remote.port ?? s.driver.defaultPort);
      if (checked !== undefined) {
        // Resolved once per family, by the guard, from the checked name; only these answers are ever dialled.
        const name = checked;
        const cap = racing.maxAddressesPerFamily;
        // Recorded when the answer arrives (IPv4 answers may then be held for the resolution delay; empty ones are delivered to nobody).
        const refusals = new Set<PolicyDeniedError>();
        let out = 2; // lookups in flight (each listens to the selection's signal until it settles)
        const answered = (family: 4 | 6) => (addrs: ResolvedAddress[]): ResolvedAddress[] => {
          resolved = --out === 0;
          // After the selection ended (its signal aborted) the report is the caller's: a late answer leaves it alone.
          const rec = signal.aborted ? undefined : report.resolutions.find((r) => r.family === family);
          if (rec) Object.assign(rec, { endedAt: at(), addresses: addrs.map((a) => a.address) });
          return addrs;
        };
        const failed = (err: unknown): never => {
          resolved = --out === 0;
          throw err;
        };
        resolved = false;
        const resolution = resolveFamilies((family, sig) => scope.guard.resolve(name, family, sig).then(answered(family), failed), {
          clock,
          resolutionDelay: racing.resolutionDelay,
          signal,
          onAnswer: async (family, addrs) => {
            const used = dedupe(addrs).slice(0, cap);
            await addAddresses(used, presented(input, name.name), lookupAllowed);
            startRace();
          },
          onError: (family, err) => {
            const rec = report.resolutions.find((r) => r.family === family);
            if (rec) Object.assign(rec, { endedAt: at(), error: (err as Error)?.message ?? String(err) });
            // The guard refused the answers (strict answers): one denied candidate for the name, like a lookup denial.
            if (err instanceof PolicyDeniedError && !refusals.has(err)) {
              refusals.add(err);
              record({ driver: lookupAllowed[0]!.driver.id, stack: lookupAllowed[0]!.driver.stack, hostName: host, fate: 'denied', reason: err.decision.reason, code: err.decision.allow ? undefined : err.decision.code, decision: err.decision, error: err });
            }
          },
        });
        report.resolutions.push({ host, family: 6, startedAt: at() }, { host, family: 4, startedAt: at() });
        // Not awaited: a candidate that is ready is handed over at once, even while the other family's answer is
        // still out (RFC 8305 §3); the race is sealed when every answer is in, and a late one is then cancelled.
        const sealAll = (): void => {
          seal();
          startRace();
        };
        resolution.then(sealAll, (error: unknown) => {
          resolutionError = { error };
          sealAll();
        });
        await running;
      } else {
        seal();
        startRace();
      }
    } else {
      throw new TypeError('remote endpoint has neither a hostName nor an ipAddress');
    }

    let result: { leaf: RaceLeaf<Leaf>; value: Leaf };
    try {
      result = await started!;
    } catch (err) {
      throw resolutionError !== undefined ? resolutionError.error : err;
    }
    const { leaf, value } = result;
    const candidate = leafRecords.get(leaf)!;
    // Nothing of the selection listens to its signal any more unless a lookup is still out: then it is aborted below.
    handedOver = resolved;
    for (const r of report.resolutions) if (r.endedAt === undefined) Object.assign(r, { endedAt: at(), error: 'cancelled: a candidate was ready before this answer' });
    report.winner = candidate.id;
    finishPending(report, at());
    report.endedAt = at();
    trim(report);
    learn(cache, cacheKey, report);
    debug('selection %s won by %s %s', report.remote, candidate.id, candidate.driver);
    const fallbacks = value.driver.protocol === 'udp' ? unstarted(groups, value.driver, leafRecords) : undefined;
    return { channel: value.channel, driver: value.driver, target: value.target, candidate, report, fallbacks, elapsed: at };
  } catch (err) {
    finishPending(report, at());
    report.endedAt = at();
    learn(cache, cacheKey, report);
    throw failure(err, report, controller?.signal, input.signal);
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    remainder?.stop();
    if (onCallerAbort !== undefined) input.signal!.removeEventListener('abort', onCallerAbort);
    if (controller !== undefined && !controller.signal.aborted && !handedOver) controller.abort(SELECTION_FINISHED);
  }
}

/** The winning stack's candidates that were ranked and checked but never started, in race order. */
function unstarted(groups: ReadonlyMap<RankedStack, RaceGroup<Leaf>>, driver: Driver, records: ReadonlyMap<RaceLeaf<Leaf>, CandidateRecord>): Fallback[] | undefined {
  const group = [...groups].find(([s]) => s.driver === driver)?.[1];
  if (group === undefined) return undefined;
  const out: Fallback[] = [];
  for (const leaf of group.leaves()) {
    const record = records.get(leaf);
    if (leaf.state === 'waiting' && record !== undefined) out.push({ record, attempt: (signal) => leaf.run(signal) });
  }
  return out.length > 0 ? out : undefined;
}

/** What a driver gets for one attempt at a checked target. */
function attemptFor(input: SelectionInput, driver: Driver, target: CheckedTarget, signal: AbortSignal, local: LocalEndpoint | undefined = input.local): ConnectAttempt {
  return {
    signal,
    target,
    remote: input.remote,
    local,
    security: input.security,
    properties: input.properties,
    options: input.driverOptions[driver.id] ?? {},
    guard: input.scope.guard,
  };
}

/** "Any path": one leaf per address, bound where the OS chooses. */
const ANY_PATH: readonly (PathOption | undefined)[] = Object.freeze([undefined]);

/** A candidate's reason with its path's standing (required/preferred/avoided interface). */
function pathReason(rank: string, path: PathOption | undefined): string {
  if (path === undefined) return rank;
  return `${rank}; interface ${path.interface}${path.why ? ` (${path.why})` : ''}`;
}

function buildTree(ranked: readonly RankedStack[], racing: RacingOptions, groups: Map<RankedStack, RaceGroup<Leaf>>): RaceGroup<Leaf> {
  const stackGroup = (s: RankedStack): RaceGroup<Leaf> => {
    const g = new RaceGroup<Leaf>(racing.mode, racing.attemptDelay, s.driver.id);
    groups.set(s, g);
    return g;
  };
  const secure = ranked.filter((s) => s.driver.security !== 'none');
  const insecure = ranked.filter((s) => s.driver.security === 'none');
  const level = (stacks: readonly RankedStack[], label: string): RaceGroup<Leaf> => {
    const g = new RaceGroup<Leaf>(racing.mode, racing.attemptDelay, label);
    for (const s of stacks) g.add(stackGroup(s));
    g.seal();
    return g;
  };
  if (secure.length > 0 && insecure.length > 0) {
    // Opportunistic security: never race secure against insecure; fail over only when every secure stack failed.
    const root = new RaceGroup<Leaf>('failover', racing.attemptDelay, 'security');
    root.add(level(secure, 'encrypted'));
    root.add(level(insecure, 'unencrypted'));
    root.seal();
    return root;
  }
  return level(ranked, 'stacks');
}

function dedupe<T extends { address: string }>(addrs: readonly T[]): T[] {
  const seen = new Set<string>();
  return addrs.filter((a) => (seen.has(a.address) ? false : (seen.add(a.address), true)));
}

/** A won selection's report is kept by its connection: its arrays at their exact length (a pushed-to array keeps spare room). */
function trim(report: SelectionReport): void {
  const r = report as { candidates: CandidateRecord[]; resolutions: SelectionReport['resolutions'] };
  r.candidates = r.candidates.slice();
  if (r.resolutions.length === 0) r.resolutions = NO_RESOLUTIONS;
  else r.resolutions = r.resolutions.slice();
}

/** The resolutions of a selection that resolved nothing (an IP literal): one shared frozen empty list. */
const NO_RESOLUTIONS = Object.freeze([]) as unknown as SelectionReport['resolutions'];

function finishPending(report: SelectionReport, now: number): void {
  for (const c of report.candidates) {
    if (c.fate === 'pending' && c.startedAt === undefined) Object.assign(c, { fate: 'skipped', reason: `not attempted: ${report.winner ? 'another candidate won first' : 'the race ended first'}` });
    else if (c.fate === 'pending') Object.assign(c, { fate: 'cancelled', endedAt: now });
  }
}

/**
 * Pick the one error that best says why nothing was established: the most informative across attempts.
 * A certificate that failed verification (ERR_TAPS_SECURITY_FAILED) first, then a definitive failure such
 * as a refusal (ERR_TAPS_ESTABLISHMENT_FAILED naming it), even when a timeout ended what still ran;
 * ERR_TAPS_TIMEOUT only when nothing definitive happened. A caller's own abort stays ERR_TAPS_ABORTED.
 */
function failure(err: unknown, report: SelectionReport, signal: AbortSignal | undefined, callerSignal: AbortSignal | undefined): Error {
  if (err instanceof EstablishmentError || err instanceof TypeError || err instanceof RangeError) return err;
  const timedOut = timeoutOf(signal, callerSignal);
  const callerAborted = callerSignal?.aborted === true && abortCode(callerSignal.reason) !== 'ERR_TAPS_TIMEOUT';
  if (callerAborted) {
    return new EstablishmentError('ERR_TAPS_ABORTED', `establishment aborted by the caller (${(callerSignal!.reason as Error)?.message ?? String(callerSignal!.reason)})`, report, { cause: callerSignal!.reason });
  }
  const cs = report.candidates;
  const failed = cs.filter((c) => c.fate === 'failed');
  const insecure = failed.filter((c) => isCertificateFailure(c.error));
  const detail = (list: readonly CandidateRecord[]): string => list.map((c) => `${c.id} ${c.driver} ${c.address ?? ''}: ${c.reason}`).join('; ');
  const after = timedOut === undefined ? '' : `; the rest ended: ${timedOut.message}`;
  if (insecure.length > 0) {
    const first = insecure[0]!;
    return new EstablishmentError('ERR_TAPS_SECURITY_FAILED', `${report.remote}: the peer failed verification (${detail(insecure)})${after}`, report, { cause: first.error ?? err });
  }
  if (timedOut !== undefined && failed.length === 0) return new EstablishmentError('ERR_TAPS_TIMEOUT', timedOut.message, report, { cause: timedOut.cause });
  if (timedOut !== undefined) {
    return new EstablishmentError('ERR_TAPS_ESTABLISHMENT_FAILED', `no candidate for ${report.remote} could be established (${detail(failed)})${after}`, report, { cause: failed[0]!.error ?? err });
  }
  const attempted = cs.filter((c) => c.fate === 'failed' || c.fate === 'cancelled' || c.fate === 'won');
  const denied = cs.filter((c) => c.fate === 'denied');
  const pathless = cs.filter((c) => c.fate === 'unsuitable' && c.interface !== undefined);
  if (attempted.length === 0 && denied.length === 0 && pathless.length > 0 && !cs.some((c) => c.fate === 'pending' || c.fate === 'skipped')) {
    return new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', `no allowed interface reaches ${report.remote}: ${pathless.map((c) => `${c.interface}: ${c.reason}`).join('; ')}`, report, { cause: err });
  }
  if (attempted.length === 0 && denied.length > 0) {
    return new EstablishmentError('ERR_TAPS_POLICY_PROHIBITED', `every candidate for ${report.remote} was denied by the tenant's policy: ${denied[0]!.reason}`, report, { cause: err });
  }
  if (attempted.length === 0 && report.resolutions.length > 0 && report.resolutions.every((r) => !r.addresses?.length)) {
    const why = report.resolutions.map((r) => `${r.family === 6 ? 'AAAA' : 'A'}: ${r.error ?? 'no addresses'}`).join('; ');
    return new EstablishmentError('ERR_TAPS_RESOLUTION_FAILED', `could not resolve ${report.remote} (${why})`, report, { cause: err });
  }
  const text = detail(failed);
  return new EstablishmentError('ERR_TAPS_ESTABLISHMENT_FAILED', `no candidate for ${report.remote} could be established${text ? ` (${text})` : ''}`, report, { cause: err });
}

/** The timeout that ended the selection, if one did: its own budget, or a caller's signal that timed out. */
function timeoutOf(signal: AbortSignal | undefined, callerSignal: AbortSignal | undefined): { message: string; cause: unknown } | undefined {
  if (signal?.aborted && signal.reason !== undefined && !(callerSignal?.aborted && signal.reason === callerSignal.reason)) {
    const r = signal.reason;
    if (isTapsError(r) && r.code === 'ERR_TAPS_TIMEOUT') return { message: r.message, cause: r };
  }
  if (callerSignal?.aborted && abortCode(callerSignal.reason) === 'ERR_TAPS_TIMEOUT') {
    return { message: `establishment timed out: the caller's signal (${(callerSignal.reason as Error)?.message ?? String(callerSignal.reason)})`, cause: callerSignal.reason };
  }
  return undefined;
}
