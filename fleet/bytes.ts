/**
 * A tenant's byte budget shared by the fleet, as seen by one host. Windows
 * are fixed and aligned on Redis's clock (window n covers
 * [n·windowMs, (n+1)·windowMs)), so every host counts into the same window.
 * Bytes are charged on the send and receive paths, synchronously, from a
 * block this host was granted beforehand (the `bytes` script never grants
 * more than the window has left, so the fleet never goes over). A block is
 * topped up in the background when it runs low, sized to about two refills'
 * worth of what this host spent; the next window's block is asked for just
 * before the window turns; unspent bytes go back when the host is idle.
 *
 * A charge the block cannot cover is refused at once (it cannot wait: the
 * bytes are being sent or have arrived) and asks for a block that covers it.
 * While Redis is unreachable, live connections go on spending what this
 * host holds and beyond it up to an outage cap per window (the fallback
 * share of the budget, or an even share among the hosts last seen, counting
 * what the host spent in the window before); the bytes beyond its blocks are
 * recorded in Redis when it is back.
 *
 * @example
 * const b = new ByteCounter(ctx, 'acme', 'sent', { bytes: 1e9, windowMs: 60_000 });
 * b.fits(1500); b.spend(1500);
 */
import { QuotaExceededError } from '../src/errors.js';
import type { ByteBudget } from '../src/policy/source.js';
import type { FleetContext } from './context.js';

export class ByteCounter {
  readonly tenant: string;
  readonly name: 'sent' | 'received' | 'bytes';
  readonly budget: ByteBudget;
  readonly #ctx: FleetContext;
  /** The window the block belongs to, and bytes of it this host may still spend. */
  #window = -1;
  #avail = 0;
  /** A block already granted for the next window. */
  #next = { window: -1, avail: 0 };
  /** Bytes spent since the last grant (sizes the next block), and in this window. */
  #spentSinceGrant = 0;
  #spentInWindow = 0;
  /** Bytes spent beyond granted blocks while Redis was away, per window (recorded when it is back). */
  #debt = new Map<number, number>();
  #busy = false;
  #inflight: Promise<void> | undefined;
  #again = 0;
  #turnTimer: NodeJS.Timeout | undefined;
  lastUse = 0;

  constructor(ctx: FleetContext, tenant: string, name: 'sent' | 'received' | 'bytes', budget: ByteBudget) {
    this.#ctx = ctx;
    this.tenant = tenant;
    this.name = name;
    this.budget = budget;
  }

  /** Bytes this host may spend now in the current window, without asking. */
  available(): number {
    this.#roll();
    return this.#ctx.link.up ? this.#avail : Math.max(this.#avail, this.#outageCap() - this.#spentInWindow);
  }

  /** Undefined when bytes are at hand, else a promise settled once a block was asked for (a new unit waits for it). */
  prepare(): Promise<void> | undefined {
    if (this.available() > 0 || !this.#ctx.link.up) return undefined;
    this.refill(0);
    return this.#inflight;
  }

  /** True when `n` bytes fit now; a miss asks for a block that would cover them. */
  fits(n: number): boolean {
    if (n <= this.available()) return true;
    if (this.#ctx.link.up) this.refill(n);
    return false;
  }

  /** Spend `n` bytes that fit (call after fits()). */
  spend(n: number): void {
    this.lastUse = performance.now();
    const fromBlock = Math.min(n, this.#avail);
    this.#avail -= fromBlock;
    this.#spentSinceGrant += n;
    this.#spentInWindow += n;
    const rest = n - fromBlock;
    if (rest > 0) {
      this.#debt.set(this.#window, (this.#debt.get(this.#window) ?? 0) + rest);
    }
    if (this.#ctx.link.up && this.#avail < this.#block() / 2) this.refill(0);
    this.#armTurn();
  }

  /** The error for a charge that did not fit. */
  exceeded(n: number): QuotaExceededError {
    const what = this.name === 'bytes' ? 'byte' : this.name;
    return new QuotaExceededError(
      this.name === 'bytes' ? 'bytes' : `bytes-${this.name}`,
      `tenant ${this.tenant} would exceed its fleet-wide ${what} budget of ${this.budget.bytes} bytes per ${this.budget.windowMs} ms: ${n} bytes do not fit in the ${this.available()} this host holds`,
    );
  }

  /** Ask Redis for `need` bytes (or none) plus a block; one request at a time. */
  refill(need: number): void {
    if (this.#busy) {
      this.#again = Math.max(this.#again, need);
      return;
    }
    this.#busy = true;
    this.#inflight = this.#exchange(need, this.#currentWindow());
  }

  /** Give unspent bytes back (the host has been idle). */
  async returnUnspent(): Promise<void> {
    this.#roll();
    const back = this.#avail;
    if (back <= 0 || this.#busy || !this.#ctx.link.up) return;
    this.#avail = 0;
    try {
      await this.#ctx.link.cmd.fleetBytesBack(this.#key(this.#window), back);
    } catch (err) {
      this.#ctx.link.failed(err);
    }
  }

  /** Record bytes spent while Redis was away (Redis is back). */
  async settle(): Promise<void> {
    const debts = [...this.#debt];
    this.#debt.clear();
    for (const [window, n] of debts) {
      try {
        await this.#ctx.link.cmd.fleetBytes(this.#key(window), this.budget.bytes, n, 0, this.#ttl(), 1);
      } catch (err) {
        this.#ctx.link.failed(err);
        this.#debt.set(window, (this.#debt.get(window) ?? 0) + n);
      }
    }
  }

  stop(): void {
    if (this.#turnTimer !== undefined) clearTimeout(this.#turnTimer);
    this.#turnTimer = undefined;
  }

  #currentWindow(): number {
    return Math.floor(this.#ctx.redisNow() / this.budget.windowMs);
  }

  #roll(): void {
    const w = this.#currentWindow();
    if (w === this.#window) return;
    this.#window = w;
    this.#avail = this.#next.window === w ? this.#next.avail : 0;
    this.#next = { window: -1, avail: 0 };
    this.#spentSinceGrant = 0;
    this.#spentInWindow = 0;
  }

  /**
   * What this host may spend in a window while Redis is away, in all (blocks
   * granted before included): the fallback share of the budget, or an even
   * share among the hosts last seen.
   */
  #outageCap(): number {
    const share = this.#ctx.tuning.fallbackShare ?? 1 / Math.max(1, this.#ctx.hosts);
    return Math.floor(this.budget.bytes * share);
  }

  /**
   * The block to ask for: two refills' worth of recent spending and at least
   * `byteBlock`, but never more than half of an even share of the budget, so
   * hosts that start later still find some.
   */
  #block(): number {
    const t = this.#ctx.tuning;
    const fair = Math.floor(this.budget.bytes / (2 * Math.max(1, this.#ctx.hosts)));
    return Math.max(1, Math.min(Math.max(t.byteBlock, 2 * this.#spentSinceGrant), fair));
  }

  #key(window: number): string {
    return this.#ctx.keys.bytes(this.tenant, this.name, this.budget.windowMs, window);
  }

  #ttl(): number {
    return this.budget.windowMs * 2 + 1000;
  }

  async #exchange(need: number, window: number): Promise<void> {
    const ctx = this.#ctx;
    const extra = this.#block();
    try {
      const [granted] = await ctx.link.cmd.fleetBytes(this.#key(window), this.budget.bytes, need, extra, this.#ttl(), 0);
      ctx.link.ok();
      this.#roll();
      if (window === this.#window) this.#avail += granted;
      else if (window > this.#window) this.#next = { window, avail: this.#next.avail + granted };
      this.#spentSinceGrant = 0;
    } catch (err) {
      ctx.link.failed(err);
    } finally {
      this.#busy = false;
      const again = this.#again;
      this.#again = 0;
      if (again > 0 && again > this.#avail) this.refill(again);
    }
  }

  /** Ask for the next window's block shortly before the window turns, if this one was used. */
  #armTurn(): void {
    if (this.#turnTimer !== undefined) return;
    const end = (this.#window + 1) * this.budget.windowMs;
    const lead = Math.min(this.budget.windowMs / 10, 200);
    const delay = Math.max(0, end - lead - this.#ctx.redisNow());
    this.#turnTimer = setTimeout(() => {
      this.#turnTimer = undefined;
      const next = this.#currentWindow() + 1;
      if (this.#busy || !this.#ctx.link.up) return;
      this.#busy = true;
      void this.#exchange(0, next);
    }, delay).unref();
  }
}
