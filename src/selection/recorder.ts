/**
 * A selection's report and the one place its candidates are written (STYLE §4): every record is made here,
 * and an attempt's life (started, failed, cancelled, won) is recorded by the same four methods whether it
 * runs alone or in a race, so the report, `onProgress`, the diagnostics channels and NODE_DEBUG=taps see the
 * same thing either way.
 *
 * @example
 * const rec = new Recorder(input);
 * const c = rec.record({ driver: 'tls', stack: ['tls', 'tcp'], fate: 'pending', ... });
 * rec.started(c); rec.won(c); rec.end(c.id);
 */
import { channel as diagChannel } from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { Clock } from '../clock.js';
import type { Driver } from '../driver.js';
import type { RemoteEndpoint } from '../endpoints.js';
import { toTapsError, type TapsError } from '../errors.js';
import type { NetworkScope } from '../network.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import type { RacingMode } from './race.js';

export const debug = debuglog('taps');
export const candidateStart = diagChannel('taps:candidate:start');
export const candidateReady = diagChannel('taps:candidate:ready');
export const candidateFail = diagChannel('taps:candidate:fail');

/** Candidate ids (`c1`, `c2`, ...): one shared string each, not one per selection. */
const CANDIDATE_IDS: string[] = [];
const candidateId = (n: number): string => (CANDIDATE_IDS[n] ??= `c${n}`);

/** Frozen records of unsuitable stacks, by memoized verdict and candidate id (retained by every report: shared). */
const unsuitableRecords = new WeakMap<object, Map<string, CandidateRecord>>();

/** The resolutions of a selection that resolved nothing (an IP literal): one shared frozen empty list. */
const NO_RESOLUTIONS = Object.freeze([]) as unknown as SelectionReport['resolutions'];

const CANCELLED = 'another candidate won, or the caller gave up';

export interface RecorderInput {
  readonly scope: NetworkScope;
  readonly remote: RemoteEndpoint;
  readonly racing: { readonly mode: RacingMode; readonly attemptDelay: number };
  readonly clock: Clock;
  readonly onProgress?: ((record: CandidateRecord, report: SelectionReport) => void) | undefined;
}

export class Recorder {
  declare readonly report: SelectionReport; // set by the constructor (declare: not defined first as a class field)
  readonly #input: RecorderInput;
  readonly #t0: number;
  #lastReading: number;
  #nextId = 1;

  constructor(input: RecorderInput) {
    this.#input = input;
    this.#t0 = this.#lastReading = input.clock.now();
    // The arrays made apart: a literal with an array literal inside is built by the runtime each time.
    const resolutions: SelectionReport['resolutions'] = [];
    const candidates: CandidateRecord[] = [];
    this.report = {
      startedAt: Date.now(),
      tenant: input.scope.tenant,
      remote: endpointText(input.remote),
      racing: input.racing.mode,
      attemptDelay: input.racing.attemptDelay,
      resolutions,
      candidates,
      // Declared now, set at the end: an object whose shape never grows stays compact (it outlives the selection; docs/performance.md).
      winner: undefined,
      endedAt: undefined,
      cache: undefined,
    };
  }

  /** Milliseconds since the selection began, to the microsecond. */
  at(): number {
    const now = this.#input.clock.now();
    this.#lastReading = now;
    return Math.round((now - this.#t0) * 1000) / 1000;
  }

  /** The clock the selection reads, and what it read last (its end, once it ended): the racing cache's time of a win when that cache keeps the same clock. */
  get clock(): Clock {
    return this.#input.clock;
  }
  get lastReading(): number {
    return this.#lastReading;
  }

  record(r: Omit<CandidateRecord, 'id'>): CandidateRecord {
    return this.#push({ id: candidateId(this.#nextId++), ...r });
  }

  /** The next candidate id, for a record built in place (a literal is cheaper than a spread on the fast path). */
  nextId(): string {
    return candidateId(this.#nextId++);
  }

  /** A record built in place (with its id from `nextId()`): added. */
  add(c: CandidateRecord): CandidateRecord {
    return this.#push(c);
  }

  /** A record built in place with its `startedAt` set: added, and its start published, as `started()` would. */
  begin(c: CandidateRecord): CandidateRecord {
    this.#push(c);
    if (candidateStart.hasSubscribers) candidateStart.publish({ tenant: this.report.tenant, candidate: c });
    return c;
  }

  /** An unsuitable stack's record: the same frozen object for every selection with the same verdict and id. */
  unsuitable(driver: Driver, verdict: object, reason: string): void {
    const id = candidateId(this.#nextId++);
    let byId = unsuitableRecords.get(verdict);
    if (byId === undefined) unsuitableRecords.set(verdict, (byId = new Map()));
    let c = byId.get(id);
    if (c === undefined) byId.set(id, (c = Object.freeze({ id, driver: driver.id, stack: driver.stack, fate: 'unsuitable' as const, reason })));
    this.#push(c);
  }

  update(c: CandidateRecord, patch: Partial<CandidateRecord>): void {
    Object.assign(c, patch);
    this.#input.onProgress?.(c, this.report);
  }

  // An attempt's life is written field by field (records are built with every field, docs/performance.md), not
  // through `update`'s patch object.

  /** An attempt began. */
  started(c: CandidateRecord): void {
    c.startedAt = this.at();
    this.#input.onProgress?.(c, this.report);
    if (candidateStart.hasSubscribers) candidateStart.publish({ tenant: this.report.tenant, candidate: c });
  }

  /** An attempt failed: its error, as a TapsError. */
  failed(c: CandidateRecord, err: unknown): TapsError {
    const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
    c.fate = 'failed';
    c.endedAt = this.at();
    c.reason = e.message;
    c.code = e.code;
    c.error = e;
    this.#input.onProgress?.(c, this.report);
    if (candidateFail.hasSubscribers) candidateFail.publish({ tenant: this.report.tenant, candidate: c, error: e });
    if (debug.enabled) debug('candidate %s %s failed: %s', c.id, c.driver, e.message);
    return e;
  }

  cancelled(c: CandidateRecord, reason = CANCELLED): void {
    c.fate = 'cancelled';
    c.endedAt = this.at();
    c.reason = reason;
    this.#input.onProgress?.(c, this.report);
  }

  /** An attempt won, at `at` (now unless given: a direct attempt's win and the selection's end are one reading). */
  won(c: CandidateRecord, at = this.at()): void {
    c.fate = 'won';
    c.endedAt = at;
    this.#input.onProgress?.(c, this.report);
    if (candidateReady.hasSubscribers) candidateReady.publish({ tenant: this.report.tenant, candidate: c });
  }

  /** The selection ended (with `winner`, or without) at `now`: what never ran is skipped, what still ran cancelled. */
  end(winner?: string, now = this.at()): void {
    const report = this.report;
    if (winner !== undefined) report.winner = winner;
    const candidates = report.candidates;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!; // indexed: a for-of allocates an iterator and a result per step until the JIT optimizes it
      if (c.fate === 'pending' && c.startedAt === undefined) Object.assign(c, { fate: 'skipped', reason: `not attempted: ${report.winner ? 'another candidate won first' : 'the race ended first'}` });
      else if (c.fate === 'pending') Object.assign(c, { fate: 'cancelled', endedAt: now });
    }
    report.endedAt = now;
    if (winner !== undefined) trim(report);
  }

  #push(c: CandidateRecord): CandidateRecord {
    this.report.candidates.push(c);
    this.#input.onProgress?.(c, this.report);
    return c;
  }
}

/** A won selection's report is kept by its connection: its arrays at their exact length (a pushed-to array keeps spare room). */
function trim(report: SelectionReport): void {
  const r = report as { candidates: CandidateRecord[]; resolutions: SelectionReport['resolutions'] };
  r.candidates = r.candidates.slice();
  if (r.resolutions.length === 0) r.resolutions = NO_RESOLUTIONS;
  else r.resolutions = r.resolutions.slice();
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
