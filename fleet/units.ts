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
 * Near the limit the spares another host keeps can be the units a take is
 * short of. The `units` script then names the other holders and publishes
 * a reclaim request; each holder returns its spares and answers (also when
 * it had none), and the take asks once more only when every holder has
 * answered — so a refusal means the units are in use, however slow the
 * hosts are to answer. A holder that never answers (it crashed: its lease
 * has not run out yet) is waited for at most `reclaimWaitMs`.
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
  /** Asked for in an exchange (a take arriving while one is in flight waits for the next). */
  counted: boolean;
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
  /** An exchange with Redis is awaiting its reply. */
  #inFlight = false;
  #requests = 0;
  /** This host's own reclaim request: the holders that have not answered it yet. */
  #asked: { readonly id: string; readonly pending: Set<string> } | undefined;
  /** Other hosts' reclaim requests to answer once this host's spares are back in Redis. */
  #answers: string[] = [];
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
      this.#waiters.push({ resolve, reject, counted: false });
      this.#sync();
    });
  }

  /** Give one unit back: to a take waiting here first; spares beyond what is worth keeping go back to Redis (batched, never waited for). */
  give(): void {
    if (this.inUse > 0) this.inUse--;
    if (this.#waiters.length > 0 && this.#ctx.leaseHeld) this.#handOut();
    else if (this.#limit >= 0 && this.spare > this.#keep()) this.#sync();
  }

  /** Return every spare (idle, or the host is draining). */
  returnSpares(): void {
    if (this.spare > 0) this.#sync(true);
  }

  /** Another host is short (`request`): return every spare, then answer it — at once when there is none to return. */
  asked(request: string): void {
    this.#answers.push(request);
    if (this.spare > 0 || this.#inFlight) this.#sync(true);
    else this.#answer();
  }

  /** A holder answered a reclaim request: when it is this host's and every holder has answered, ask again now. */
  answered(host: string, request: string): void {
    const asked = this.#asked;
    if (asked === undefined || asked.id !== request) return;
    asked.pending.delete(host);
    if (asked.pending.size === 0) this.#askAgain();
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
  #sync(dropSpares = false): void {
    if (this.#busy) {
      this.#again = true;
      this.#dropAgain ||= dropSpares;
      return;
    }
    this.#busy = true;
    setImmediate(() => void this.#exchange(dropSpares));
  }

  async #exchange(dropSpares: boolean): Promise<void> {
    const ctx = this.#ctx;
    const need = this.#waiters.length;
    for (const w of this.#waiters) w.counted = true;
    // Spares are kept only while the lease surely held them: after it ran out they may be another host's.
    const keep = dropSpares || !ctx.leaseHeld ? 0 : Math.min(this.spare, this.#keep());
    const base = this.inUse + keep;
    this.claim = base; // shrink first: a return is effective here before Redis hears of it
    const extra = need > 0 && !dropSpares ? ctx.tuning.unitBlock : 0;
    const request = `${ctx.hostId}/${++this.#requests}`;
    const sentAt = performance.now();
    let reply: [number, number, number, number, string[]];
    this.#inFlight = true;
    try {
      reply = await ctx.link.cmd.fleetUnits(
        ctx.keys.units(this.tenant, this.kind),
        ctx.keys.hostPrefix, ctx.hostId, base, need, extra, this.#limit, ctx.tuning.leaseMs,
        ctx.keys.reclaimChannel, `${this.tenant}\n${this.kind}\nask\n${request}`,
      );
    } catch (err) {
      ctx.link.failed(err);
      this.#inFlight = false;
      this.#busy = false;
      this.#again = false;
      this.#answers = []; // the hosts that asked cannot hear from Redis either
      const e = ctx.unavailable(err);
      for (const w of this.#waiters.splice(0)) this.#fallbackOrReject(w, e);
      return;
    }
    this.#inFlight = false;
    ctx.renewed(sentAt);
    const [granted, free, holders, others, ids] = reply;
    this.claim = base + granted;
    this.#free = free < 0 ? -1 : Math.max(0, free - granted);
    this.#holders = holders;
    this.#busy = false;
    this.#serve(granted < need && others > 0 ? { id: request, holders: ids } : undefined);
    if (this.#answers.length > 0 && this.spare === 0) this.#answer();
    if (this.#busy) return; // waiting for the holders to answer this host's reclaim request
    const drop = this.#dropAgain || this.#answers.length > 0;
    const again = this.#again || this.#answers.length > 0;
    this.#again = false;
    this.#dropAgain = false;
    if (this.#waiters.length > 0 || (again && this.spare > (drop ? 0 : this.#keep()))) this.#sync(drop);
  }

  /** Spares to the takes waiting here, in order. */
  #handOut(): void {
    while (this.#waiters.length > 0 && this.spare > 0) {
      this.inUse++;
      this.#waiters.shift()!.resolve();
    }
  }

  /**
   * Hand granted units to the waiters in order. When some it asked for are left waiting and other hosts hold units
   * (`asked`: the reclaim request the script published, and who holds), wait once for every holder to
   * answer it, then ask again; else refuse them.
   */
  #serve(asked: { readonly id: string; readonly holders: readonly string[] } | undefined): void {
    this.#handOut();
    // Takes that arrived while the exchange was in flight were not asked for: the next exchange asks for them.
    if (!this.#waiters.some((w) => w.counted)) {
      this.#retried = false;
      return;
    }
    if (asked !== undefined && asked.holders.length > 0 && !this.#retried) {
      this.#retried = true;
      this.#busy = true;
      this.#asked = { id: asked.id, pending: new Set(asked.holders) };
      // A holder that never answers has crashed (its lease still runs): do not wait for it forever.
      this.#retryTimer = setTimeout(() => this.#askAgain(), this.#ctx.tuning.reclaimWaitMs);
      return;
    }
    this.#retried = false;
    const held = this.#limit - Math.max(0, this.#free);
    const refused = this.#waiters.filter((w) => w.counted);
    this.#waiters = this.#waiters.filter((w) => !w.counted);
    for (const w of refused) w.reject(this.#exceeded(`${held} held across the fleet`));
  }

  /** The holders answered this host's reclaim request (or the wait ran out): ask Redis again. */
  #askAgain(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#asked = undefined;
    this.#busy = false;
    this.#sync();
  }

  /** Tell every host whose reclaim request is pending that this host's spares are back in Redis (fire and forget). */
  #answer(): void {
    const ctx = this.#ctx;
    for (const request of this.#answers.splice(0)) {
      ctx.link.cmd.publish(ctx.keys.reclaimChannel, `${this.tenant}\n${this.kind}\nback\n${ctx.hostId}\n${request}`).catch(() => {});
    }
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
