/**
 * The racing cache: what each stack did the last time a tenant reached an endpoint, so the next race is
 * ordered by experience (RFC 9623 §4.1.1.3: "a history of which protocols ... were successfully
 * established ... to prioritize or prune branches"; §9.2 performance caches).
 *
 * Keyed by the endpoint as the caller named it (host name, or IP literal), its port and the driver id; an
 * entry holds the outcome (`won` with the connect time, or `failed` with the reason) and its expiry. The
 * selection reads it before racing: a stack that won ranks first, one that failed is put off until its
 * entry expires (unless every stack failed; tried after all when nothing else connects), and a QUIC stack is only raced ahead of TCP when it answered
 * here before (rank.ts). A cancelled attempt, a certificate failure or a timeout teaches nothing.
 *
 * One cache per tenant, never shared: a {@link Host} keeps one per tenant id (every scope of that tenant
 * uses it), `createScope()` makes one per scope (that scope is its own tenant). So no tenant learns which
 * stacks another one reached. Memory is bounded: at most `maxEntries`, the least recently used dropped
 * first. The cache only orders and prunes candidates: every candidate that runs is still checked by the
 * tenant's policy, so a poisoned entry can slow a tenant's own selections down, never widen what it reaches.
 *
 * @example
 * const cache = racingCacheOf(scope);
 * cache?.clear(); // forget every outcome of this tenant
 */
import { systemClock, type Clock } from '../clock.js';
import { checkObject, ownField } from '../own.js';

/** Options of a racing cache (Host `racingCache`, createScope `racingCache`). */
export interface RacingCacheOptions {
  /** Most entries kept; the least recently used is dropped first. Default 512; 0 keeps nothing. */
  readonly maxEntries?: number | undefined;
  /** How long a win is remembered, in ms. Default 10 minutes. */
  readonly wonTtl?: number | undefined;
  /** How long a failure is remembered (the stack is put off meanwhile), in ms. Default 30 s. */
  readonly failedTtl?: number | undefined;
  /** Time source for expiry (tests inject fake time). Default: the system clock. */
  readonly clock?: Clock | undefined;
}

/** One remembered outcome. */
export interface RacingCacheEntry {
  readonly outcome: 'won' | 'failed';
  /** For a win: ms from the attempt's start to ready. */
  readonly connectTime?: number | undefined;
  /** For a failure: why (the attempt's error message). */
  readonly reason?: string | undefined;
  /** When it was learned and when it expires, on the cache's clock (ms). */
  readonly at: number;
  readonly expires: number;
}

/** The racing cache's defaults: entries kept per tenant, and how long a win and a failure are remembered (ms). */
export const RACING_CACHE_DEFAULTS = Object.freeze({ maxEntries: 512, wonTtl: 10 * 60_000, failedTtl: 30_000 });

const OPTION_KEYS = ['maxEntries', 'wonTtl', 'failedTtl', 'clock'] as const;

function count(v: unknown, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`racingCache.${name} must be a finite number ≥ 0, got ${typeof v === 'number' ? v : typeof v}`);
  return v;
}

type RecordWin = (cache: RacingCache, endpoint: string, port: number, stack: string, connectTime: number, clock: Clock | undefined, reading: number | undefined) => void;
let recordWin: RecordWin;
type RecordFailure = (cache: RacingCache, endpoint: string, port: number, stack: string, reason: string, clock: Clock | undefined, reading: number | undefined) => void;
let recordFailure: RecordFailure;

/**
 * @internal `cache.won(...)` at `reading` of `clock` (a selection's last reading, its end) when `clock` is the
 * cache's own; at the cache's clock's time otherwise. A selection's win then costs no second clock reading.
 */
export function wonAt(cache: RacingCache, endpoint: string, port: number, stack: string, connectTime: number, clock: Clock | undefined, reading: number | undefined): void {
  recordWin(cache, endpoint, port, stack, connectTime, clock, reading);
}

/** @internal `cache.failed(...)` at `reading` of `clock` when `clock` is the cache's own (as `wonAt`). */
export function failedAt(cache: RacingCache, endpoint: string, port: number, stack: string, reason: string, clock: Clock | undefined, reading: number | undefined): void {
  recordFailure(cache, endpoint, port, stack, reason, clock, reading);
}

/** Per-tenant memory of which stacks reached which endpoints (see the module comment). */
export class RacingCache {
  readonly maxEntries: number;
  readonly wonTtl: number;
  readonly failedTtl: number;
  readonly #clock: Clock;
  /** Insertion order is recency: a read or write moves the entry to the end. */
  readonly #entries = new Map<string, RacingCacheEntry>();
  /** The key at the end of `#entries` (the most recent), when known: rewriting it needs no move. */
  #newest: string | undefined;
  /**
   * The keys made for the last endpoint and port, by stack: a client connecting to one endpoint again reuses each
   * stack's string (and its hash) for every read and write of a selection.
   */
  #lastKeys: { readonly endpoint: string; readonly port: number; readonly byStack: Map<string, string> } | undefined;

  /** `fallbackClock`: the clock used when the options name none (a Host passes its own). */
  constructor(options: RacingCacheOptions = {}, fallbackClock: Clock = systemClock) {
    const o = checkObject(options, 'racingCache');
    for (const k of Object.keys(o)) {
      if (!(OPTION_KEYS as readonly string[]).includes(k)) throw new TypeError(`racingCache: unknown option ${JSON.stringify(k)}; known: ${OPTION_KEYS.join(', ')}`);
    }
    this.maxEntries = Math.floor(count(ownField(o, 'maxEntries', 'racingCache'), 'maxEntries', RACING_CACHE_DEFAULTS.maxEntries));
    this.wonTtl = count(ownField(o, 'wonTtl', 'racingCache'), 'wonTtl', RACING_CACHE_DEFAULTS.wonTtl);
    this.failedTtl = count(ownField(o, 'failedTtl', 'racingCache'), 'failedTtl', RACING_CACHE_DEFAULTS.failedTtl);
    const clock = ownField(o, 'clock', 'racingCache');
    if (clock !== undefined && (typeof clock !== 'object' || clock === null || typeof (clock as Clock).now !== 'function')) {
      throw new TypeError('racingCache.clock must be a Clock (an object with now())');
    }
    this.#clock = (clock as Clock | undefined) ?? fallbackClock;
  }

  /** Entries held now (expired ones included until they are read or pushed out). */
  get size(): number {
    return this.#entries.size;
  }

  /** The clock's time: what `at` and `expires` are measured on. */
  now(): number {
    return this.#clock.now();
  }

  /** What is remembered for (endpoint, port, stack), if it has not expired. */
  get(endpoint: string, port: number, stack: string): RacingCacheEntry | undefined {
    const key = this.#key(endpoint, port, stack);
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= this.#clock.now()) {
      this.#entries.delete(key);
      if (key === this.#newest) this.#newest = undefined;
      return undefined;
    }
    this.#touch(key, e);
    return e;
  }

  /** Remember a win (with its connect time in ms). */
  won(endpoint: string, port: number, stack: string, connectTime: number): void {
    this.#won(endpoint, port, stack, connectTime, this.#clock.now());
  }

  #won(endpoint: string, port: number, stack: string, connectTime: number, at: number): void {
    this.#put(this.#key(endpoint, port, stack), Object.freeze({ outcome: 'won', connectTime, reason: undefined, at, expires: at + this.wonTtl }));
  }

  static {
    recordWin = (cache, endpoint, port, stack, connectTime, clock, reading) =>
      cache.#won(endpoint, port, stack, connectTime, clock === cache.#clock && reading !== undefined ? reading : cache.#clock.now());
  }

  /** Remember a definitive failure (refused, unreachable, a protocol error). */
  failed(endpoint: string, port: number, stack: string, reason: string): void {
    this.#failed(endpoint, port, stack, reason, this.#clock.now());
  }

  #failed(endpoint: string, port: number, stack: string, reason: string, at: number): void {
    this.#put(this.#key(endpoint, port, stack), Object.freeze({ outcome: 'failed', connectTime: undefined, reason, at, expires: at + this.failedTtl }));
  }

  static {
    recordFailure = (cache, endpoint, port, stack, reason, clock, reading) =>
      cache.#failed(endpoint, port, stack, reason, clock === cache.#clock && reading !== undefined ? reading : cache.#clock.now());
  }

  /** Forget one endpoint (every port and stack of it), or everything. */
  clear(endpoint?: string): void {
    this.#newest = undefined;
    if (endpoint === undefined) return this.#entries.clear();
    if (typeof endpoint !== 'string') throw new TypeError('endpoint must be a string (a host name or IP address)');
    const prefix = `${endpoint.toLowerCase()}\u0000`;
    for (const k of [...this.#entries.keys()]) if (k.startsWith(prefix)) this.#entries.delete(k);
  }

  /** A snapshot of the live entries, least recently used first. */
  entries(): { endpoint: string; port: number; stack: string; entry: RacingCacheEntry }[] {
    const now = this.#clock.now();
    const out: { endpoint: string; port: number; stack: string; entry: RacingCacheEntry }[] = [];
    for (const [k, entry] of this.#entries) {
      if (entry.expires <= now) continue;
      const [endpoint, port, stack] = k.split('\u0000') as [string, string, string];
      out.push({ endpoint, port: Number(port), stack, entry });
    }
    return out;
  }

  #put(key: string, entry: RacingCacheEntry): void {
    if (this.maxEntries === 0) return;
    this.#touch(key, entry);
    while (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  /** Store `entry` under `key` as the most recent. The newest key is rewritten in place (a delete and set would shrink and regrow the map). */
  #touch(key: string, entry: RacingCacheEntry): void {
    if (key !== this.#newest) this.#entries.delete(key);
    this.#entries.set(key, entry);
    this.#newest = key;
  }

  #key(endpoint: string, port: number, stack: string): string {
    let last = this.#lastKeys;
    if (last === undefined || last.endpoint !== endpoint || last.port !== port) this.#lastKeys = last = { endpoint, port, byStack: new Map() };
    let key = last.byStack.get(stack);
    if (key === undefined) {
      // Bounded: a selection names only the stacks of its drivers; a caller naming many only refills this map.
      if (last.byStack.size >= 64) last.byStack.clear();
      last.byStack.set(stack, (key = keyOf(endpoint, port, stack)));
    }
    return key;
  }
}

function keyOf(endpoint: string, port: number, stack: string): string {
  return `${endpoint.toLowerCase()}\u0000${port}\u0000${stack}`;
}

/** Each scope's cache: kept out of the scope object, so nothing a guest holds can swap or read another's. */
const caches = new WeakMap<object, RacingCache>();

/** @internal Give a scope its tenant's cache (scopes call this when they are made). */
export function attachRacingCache(scope: object, cache: RacingCache | undefined): void {
  if (cache !== undefined) caches.set(scope, cache);
}

/** The racing cache a scope's selections use (its tenant's own), or undefined when the scope was made without one. */
export function racingCacheOf(scope: object): RacingCache | undefined {
  return caches.get(scope);
}

/** A cache from a `racingCache` option: undefined → defaults, `false` → none, an object → validated options. */
export function racingCacheFrom(option: unknown, clock?: Clock): RacingCache | undefined {
  if (option === false) return undefined;
  if (option !== undefined && (typeof option !== 'object' || option === null)) throw new TypeError('racingCache must be an options object or false');
  return new RacingCache((option ?? {}) as RacingCacheOptions, clock);
}
