/**
 * The fleet's {@link QuotaStore}: every tenant's connection and listener
 * units (units.ts) and byte budgets (bytes.ts), shared through Redis, plus
 * the housekeeping that keeps this host's lease alive: a heartbeat every
 * third of the lease time (a host that stops beating loses its units after
 * the lease time), a sweep that returns idle spares, the `reclaim` channel
 * (another host is short: return spares now and say so), and recovery when Redis comes
 * back (claims re-asserted, bytes spent meanwhile recorded).
 *
 * @example
 * const host = new Host({ quotaStore: fleet.quotas });
 */
import type { QuotaStore, QuotaUnit } from '../src/policy/store.js';
import type { ByteBudget, PolicyLimits } from '../src/policy/source.js';
import { ByteCounter } from './bytes.js';
import type { FleetContext } from './context.js';
import { UnitCounter } from './units.js';

export class FleetQuotas implements QuotaStore {
  readonly #ctx: FleetContext;
  readonly #units = new Map<string, UnitCounter>();
  readonly #bytes = new Map<string, ByteCounter>();
  #beat: NodeJS.Timeout | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #stopped = false;

  /** @internal Made by the Fleet. */
  constructor(ctx: FleetContext) {
    this.#ctx = ctx;
  }

  take(tenant: string, kind: QuotaUnit, limits: PolicyLimits): void | Promise<void> {
    if (this.#stopped) throw this.#ctx.unavailable(new Error('the fleet is closed'));
    const limit = kind === 'connection' ? limits.connections : limits.listeners;
    const taken = this.#unit(tenant, kind).take(limit);
    const ready = kind === 'connection' ? this.#prepareBytes(tenant, limits) : undefined;
    if (ready === undefined) return taken;
    // The unit is held: if preparing its bytes fails, the connection still goes (a charge asks again).
    const bytesReady = ready.then(undefined, () => {});
    return taken === undefined ? bytesReady : Promise.all([taken, bytesReady]).then(() => {});
  }

  give(tenant: string, kind: QuotaUnit): void {
    this.#units.get(`${tenant}\n${kind}`)?.give();
  }

  charge(tenant: string, direction: 'sent' | 'received', bytes: number, limits: PolicyLimits): void {
    const one = limits[direction] === undefined ? undefined : this.#byteCounter(tenant, direction, limits[direction]!);
    const both = limits.bytes === undefined ? undefined : this.#byteCounter(tenant, 'bytes', limits.bytes);
    if (one !== undefined && !one.fits(bytes)) throw one.exceeded(bytes);
    if (both !== undefined && !both.fits(bytes)) throw both.exceeded(bytes);
    one?.spend(bytes);
    both?.spend(bytes);
  }

  /** Units this host holds for a tenant: in use and spare (for operators and tests). */
  held(tenant: string, kind: QuotaUnit): { inUse: number; spare: number } {
    const c = this.#units.get(`${tenant}\n${kind}`);
    return { inUse: c?.inUse ?? 0, spare: c?.spare ?? 0 };
  }

  /**
   * Settles when no exchange with Redis is in flight: every unit given back
   * so far has been returned (or kept as a spare). With `spares: false` it
   * also returns every spare first (e.g. before a host drains).
   */
  async settled(options: { spares?: boolean } = {}): Promise<void> {
    if (options.spares === false) for (const c of this.#units.values()) c.returnSpares();
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const counters = [...this.#units.values()];
      if (counters.every((c) => !c.busy && (options.spares !== false || c.spare === 0 || !this.#ctx.link.up))) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** @internal Start the heartbeat and the idle sweep; the first beat is awaited. */
  async start(): Promise<void> {
    const ctx = this.#ctx;
    await this.beat();
    this.#beat = setInterval(() => void this.beat(), Math.max(10, ctx.tuning.leaseMs / 3)).unref();
    this.#sweep = setInterval(() => this.#returnIdle(), Math.max(10, ctx.tuning.spareIdleMs / 2)).unref();
  }

  /** @internal Renew this host's lease; if it had run out, re-assert every claim. */
  async beat(): Promise<void> {
    const ctx = this.#ctx;
    if (this.#stopped || !ctx.link.up) return;
    const sentAt = performance.now();
    const localAt = Date.now();
    try {
      const [existed, hosts, now] = await ctx.link.cmd.fleetHeartbeat(ctx.keys.hosts, ctx.keys.host(ctx.hostId), ctx.hostId, ctx.tuning.leaseMs);
      ctx.skew = now - (localAt + (Date.now() - localAt) / 2);
      ctx.hosts = Math.max(1, hosts);
      const lost = !ctx.leaseHeld;
      ctx.renewed(sentAt);
      if (existed === 0 || lost) this.#reassert();
    } catch (err) {
      ctx.link.failed(err);
    }
  }

  /** @internal Redis is back: renew, re-assert claims, record bytes spent meanwhile. */
  async recover(): Promise<void> {
    await this.beat();
    this.#reassert();
    await Promise.all([...this.#bytes.values()].map((b) => b.settle()));
  }

  /**
   * @internal A message on the reclaim channel: `ask` from a host that is short (return spares, then
   * answer), or `back` from a holder answering a request (this host's, if the request id is its own).
   */
  reclaim(message: string): void {
    const [tenant, kind, what, a, b] = message.split('\n');
    const c = this.#units.get(`${tenant}\n${kind}`);
    if (c === undefined) return;
    if (what === 'ask' && a !== undefined && a.slice(0, a.lastIndexOf('/')) !== this.#ctx.hostId) c.asked(a);
    else if (what === 'back' && a !== undefined && b !== undefined) c.answered(a, b);
  }

  /** @internal Stop timers; Redis forgets this host's claims after the lease time (or at once with `release`). */
  async stop(release: boolean): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#beat);
    clearInterval(this.#sweep);
    for (const b of this.#bytes.values()) b.stop();
    if (!release || !this.#ctx.link.up) return;
    const ctx = this.#ctx;
    // Leaving for good: drop this host's claims and key, so its units return now rather than after the lease.
    try {
      const p = ctx.link.cmd.pipeline();
      for (const c of this.#units.values()) p.hdel(ctx.keys.units(c.tenant, c.kind), ctx.hostId);
      p.del(ctx.keys.host(ctx.hostId));
      p.zrem(ctx.keys.hosts, ctx.hostId);
      await p.exec();
    } catch {
      /* the lease runs out by itself */
    }
  }

  #reassert(): void {
    for (const c of this.#units.values()) c.reassert();
  }

  #returnIdle(): void {
    const idle = performance.now() - this.#ctx.tuning.spareIdleMs;
    for (const c of this.#units.values()) if (c.spare > 0 && c.lastTake < idle) c.returnSpares();
    for (const b of this.#bytes.values()) if (b.lastUse < idle) void b.returnUnspent();
  }

  #unit(tenant: string, kind: QuotaUnit): UnitCounter {
    const key = `${tenant}\n${kind}`;
    let c = this.#units.get(key);
    if (c === undefined) this.#units.set(key, (c = new UnitCounter(this.#ctx, tenant, kind)));
    return c;
  }

  #byteCounter(tenant: string, name: 'sent' | 'received' | 'bytes', budget: ByteBudget): ByteCounter {
    // A reload that changes a budget starts a new counter (and Redis key) for it.
    const key = `${tenant}\n${name}\n${budget.bytes}\n${budget.windowMs}`;
    let c = this.#bytes.get(key);
    if (c === undefined) this.#bytes.set(key, (c = new ByteCounter(this.#ctx, tenant, name, budget)));
    return c;
  }

  /** A new connection's byte budgets: undefined when bytes are at hand, else a promise of a first block. */
  #prepareBytes(tenant: string, limits: PolicyLimits): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const name of ['sent', 'received', 'bytes'] as const) {
      const budget = limits[name];
      if (budget === undefined) continue;
      const p = this.#byteCounter(tenant, name, budget).prepare();
      if (p !== undefined) waits.push(p);
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
  }
}
