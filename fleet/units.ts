/**
 * Fleet-wide concurrent units (connections, listeners) of one tenant, as
 * seen by one host. The host holds a *claim* in Redis: the units in use
 * here plus a few spares. A take served from a spare costs no round trip;
 * only when the spares are gone does the host ask Redis for `need` units
 * plus a block of spares (the `units` script grants spares only while the
 * tenant is far from its limit, so near the limit every take asks and every
 * give returns at once: the limit holds exactly, fleet-wide).
 *
 * The claim is always sent as an absolute number, so a host whose lease ran
 * out (Redis was away, other hosts dropped its claim) re-asserts what it
 * really holds on the next exchange. One exchange per counter is in flight
 * at a time; takes arriving meanwhile wait for it. The local claim shrinks
 * before a return is sent and grows only after a grant is acknowledged, so
 * it is never more than what Redis records.
 *
 * @example
 * const c = new UnitCounter(ctx, 'acme', 'connection');
 * await c.take(100); // or undefined: served from a spare at once
 * c.give();
 */
import { QuotaExceededError, TapsError } from '../src/errors.js';
import type { FleetContext } from './context.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class UnitCounter {
  readonly tenant: string;
  readonly kind: 'connection' | 'listener';
  /** Units given to leases on this host. */
  inUse = 0;
  /** Units Redis records for this host (in use + spare), as far as this host knows. */
  claim = 0;
  readonly #ctx: FleetContext;
  #waiters: Waiter[] = [];
  #limit = -1;
  #busy = false;
  #again = false;
  #dropAgain = false;
  #retried = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Free units left after the last grant (-1: no limit), and holders then. */
  #free = -1;
  #holders = 1;
  lastTake = 0;

  constructor(ctx: FleetContext, tenant: string, kind: 'connection' | 'listener') {
    this.#ctx = ctx;
    this.tenant = tenant;
    this.kind = kind;
  }

  /** True while an exchange with Redis is in flight or scheduled. */
  get busy(): boolean {
    return this.#busy || this.#waiters.length > 0;
  }

  get spare(): number {
    return Math.max(0, this.claim - this.inUse);
  }

  /** Take one unit: undefined when served at once, else a promise; throws/rejects QuotaExceededError or ERR_TAPS_FLEET_UNAVAILABLE. */
  take(limit: number | undefined): void | Promise<void> {
    const ctx = this.#ctx;
    this.lastTake = performance.now();
    if (limit === undefined) {
      // No limit: counted here only; a limit set later registers these units with the next exchange.
      this.inUse++;
      return;
    }
    this.#limit = limit;
    if (this.inUse >= limit) throw this.#exceeded(`this host alone holds ${this.inUse}`);
    if (this.spare > 0 && ctx.leaseHeld) {
      this.inUse++;
      return;
    }
    if (!ctx.link.up) return this.#fallback(limit);
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#sync();
    });
  }

  /** Give one unit back; spares beyond what is worth keeping go back to Redis (batched, never waited for). */
  give(): void {
    if (this.inUse > 0) this.inUse--;
    if (this.#limit >= 0 && this.spare > this.#keep()) this.#sync();
  }

  /** Return every spare (idle, or another host asked for them: then tell it when they are back). */
  returnSpares(announce = false): void {
    if (this.spare > 0) this.#sync(true, announce);
  }

  /** Another host returned spares this host was short of: try again now instead of at the end of the wait. */
  returned(): void {
    if (this.#retryTimer === undefined) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#busy = false;
    this.#sync();
  }

  /** Send the claim again (the lease ran out, or Redis came back). */
  reassert(): void {
    if (this.claim > 0 || this.inUse > 0) this.#sync();
  }

  /** Spares worth keeping: none near the limit, at most a block far from it. */
  #keep(): number {
    if (this.#free < 0) return this.#ctx.tuning.unitBlock;
    return Math.min(this.#ctx.tuning.unitBlock, Math.floor(this.#free / (2 * this.#holders)));
  }

  /** Redis is unreachable: a local share of the limit if configured, else fail closed. */
  #fallback(limit: number, cause?: Error): void {
    const share = this.#ctx.tuning.fallbackShare;
    if (share !== undefined && this.inUse < Math.floor(limit * share)) {
      this.inUse++;
      return;
    }
    const extra = share === undefined ? '' : ` and this host's fallback share (${Math.floor(limit * share)} of ${limit}) is in use`;
    const err = cause ?? this.#ctx.unavailable();
    throw extra === '' ? err : new TapsError('ERR_TAPS_FLEET_UNAVAILABLE', `${err.message}${extra}`, { cause: err });
  }

  #exceeded(why: string): QuotaExceededError {
    return new QuotaExceededError(`${this.kind}s`, `tenant ${this.tenant} is at its fleet-wide limit of ${this.#limit} ${this.kind}s (${why})`);
  }

  /** One exchange with Redis at a time; a request arriving meanwhile runs right after. */
  #sync(dropSpares = false, announce = false): void {
    if (this.#busy) {
      this.#again = true;
      this.#dropAgain ||= dropSpares;
      return;
    }
    this.#busy = true;
    setImmediate(() => void this.#exchange(dropSpares, announce));
  }

  async #exchange(dropSpares: boolean, announce: boolean): Promise<void> {
    const ctx = this.#ctx;
    const need = this.#waiters.length;
    // Spares are kept only while the lease surely held them: after it ran out they may be another host's.
    const keep = dropSpares || !ctx.leaseHeld ? 0 : Math.min(this.spare, this.#keep());
    const base = this.inUse + keep;
    const returned = this.claim > base;
    this.claim = base; // shrink first: a return is effective here before Redis hears of it
    const extra = need > 0 ? ctx.tuning.unitBlock : 0;
    const sentAt = performance.now();
    let reply: [number, number, number, number];
    try {
      reply = await ctx.link.cmd.fleetUnits(
        ctx.keys.units(this.tenant, this.kind),
        ctx.keys.hostPrefix, ctx.hostId, base, need, extra, this.#limit, ctx.tuning.leaseMs,
        ctx.keys.reclaimChannel, `${this.tenant}\n${this.kind}`,
      );
    } catch (err) {
      ctx.link.failed(err);
      this.#busy = false;
      this.#again = false;
      const e = ctx.unavailable(err);
      for (const w of this.#waiters.splice(0)) this.#fallbackOrReject(w, e);
      return;
    }
    ctx.renewed(sentAt);
    if (announce && returned) {
      // Asked by a host that is short: tell it the spares are back (fire and forget).
      ctx.link.cmd.publish(ctx.keys.reclaimChannel, `${this.tenant}\n${this.kind}\nback`).catch(() => {});
    }
    const [granted, free, holders, others] = reply;
    this.claim = base + granted;
    this.#free = free < 0 ? -1 : Math.max(0, free - granted);
    this.#holders = holders;
    this.#busy = false;
    this.#serve(granted < need && others > 0);
    if (this.#busy) return; // waiting for other hosts to return spares
    const again = this.#again;
    const drop = this.#dropAgain;
    this.#again = false;
    this.#dropAgain = false;
    if (this.#waiters.length > 0 || (again && this.spare > (drop ? 0 : this.#keep()))) this.#sync(drop, drop);
  }

  /** Hand granted units to the waiters in order; the rest wait once for returned spares, then are refused. */
  #serve(othersMayReturn: boolean): void {
    while (this.#waiters.length > 0 && this.spare > 0) {
      this.inUse++;
      this.#waiters.shift()!.resolve();
    }
    if (this.#waiters.length === 0) {
      this.#retried = false;
      return;
    }
    if (othersMayReturn && !this.#retried) {
      // Other hosts were told (reclaim) to return spares they do not use; ask once more after they had the time.
      this.#retried = true;
      this.#busy = true;
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#busy = false;
        this.#sync();
      }, this.#ctx.tuning.reclaimWaitMs);
      return;
    }
    this.#retried = false;
    const held = this.#limit - Math.max(0, this.#free);
    for (const w of this.#waiters.splice(0)) w.reject(this.#exceeded(`${held} held across the fleet`));
  }

  #fallbackOrReject(w: Waiter, e: Error): void {
    try {
      this.#fallback(this.#limit, e);
      w.resolve();
    } catch (err) {
      w.reject(err as Error);
    }
  }
}
