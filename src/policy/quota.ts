/**
 * Quotas: concurrent connections and listeners, and byte budgets per time
 * window, per tenant. Taking a lease never blocks: it succeeds or throws
 * {@link QuotaExceededError} (code `ERR_TAPS_QUOTA_EXCEEDED`, distinct from
 * a policy denial). Byte budgets use fixed windows on the host's clock: the
 * count restarts when `windowMs` has passed since the window opened.
 *
 * Limits are read from the tenant's current policy revision at each check,
 * so a reload changes them at once; what is already held stays held.
 * Every live lease is registered with its tenant so a reload can revoke it.
 * With a {@link QuotaStore} (store.ts) the limits are decided by the store
 * instead (a fleet shares them); a unit may then take a turn to be granted.
 *
 * @example
 * const lease = scope.lease('connection', target);
 * lease.onRevoke?.((d) => conn.abort(new PolicyDeniedError(d)));
 * lease.sent(1024); // throws QuotaExceededError when the window's budget is spent
 * lease.release();
 */
import { QuotaExceededError } from '../errors.js';
import { isCheckedTarget, targetRequest } from './admission.js';
import type { CheckedTarget, Lease } from './contract.js';
import { snapshotRequest } from './requests.js';
import type { ByteBudget, PolicyLimits } from './source.js';
import type { QuotaStore } from './store.js';
import type { PolicyDecision, PolicyRequest } from './types.js';

interface Window {
  start: number;
  used: number;
}

type Denial = PolicyDecision & { allow: false };

/** A tenant's quota use in this process ({@link Host.usage}). */
export interface TenantUsage {
  /** Connection units held: one per connection, and one per socket a driver called directly opened. */
  readonly connections: number;
  /** Listener units held. */
  readonly listeners: number;
  /** Bytes sent in the current `limit sent` window (0 without one), TLS and QUIC overhead included. */
  readonly sent: number;
  /** Bytes received in the current `limit received` window (0 without one). */
  readonly received: number;
  /** Bytes both ways in the current `limit bytes` window (0 without one). */
  readonly bytes: number;
}

/** One tenant's counters, shared by every scope of that tenant and kept across reloads. */
export class TenantQuota {
  readonly tenant: string;
  readonly held = { connection: 0, listener: 0 };
  readonly live = new Set<TenantLease>();
  readonly #windows = { sent: { start: 0, used: 0 }, received: { start: 0, used: 0 }, bytes: { start: 0, used: 0 } };
  readonly #limits: () => PolicyLimits;
  readonly #now: () => number;
  readonly #store: QuotaStore | undefined;

  constructor(tenant: string, limits: () => PolicyLimits, now: () => number, store?: QuotaStore) {
    this.tenant = tenant;
    this.#limits = limits;
    this.#now = now;
    this.#store = store;
  }

  /**
   * Take a connection or listener unit. `owner` identifies the scope (its
   * claims decide revocation). Synchronous unless a store must be asked.
   */
  acquire(kind: 'connection' | 'listener', target: CheckedTarget | undefined, owner: LeaseOwner): TenantLease | Promise<TenantLease> {
    if (kind !== 'connection' && kind !== 'listener') throw new TypeError(`lease kind must be 'connection' or 'listener', got ${String(kind)}`);
    const limits = this.#limits();
    const store = this.#store;
    if (store !== undefined) {
      const pending = store.take(this.tenant, kind, limits);
      if (pending !== undefined) return pending.then(() => this.#grant(kind, target, owner));
      return this.#grant(kind, target, owner);
    }
    const limit = kind === 'connection' ? limits.connections : limits.listeners;
    if (limit !== undefined && this.held[kind] >= limit) {
      throw new QuotaExceededError(`${kind}s`, `tenant ${this.tenant} already holds ${this.held[kind]} ${kind}s (limit ${limit})`);
    }
    return this.#grant(kind, target, owner);
  }

  #grant(kind: 'connection' | 'listener', target: CheckedTarget | undefined, owner: LeaseOwner): TenantLease {
    this.held[kind]++;
    const lease = new TenantLease(this, kind, target, owner);
    this.live.add(lease);
    return lease;
  }

  /**
   * Charge `n` bytes in one direction against that direction's and the combined budget, or throw. `before`
   * (the default): bytes about to be sent, refused whole (nothing counted) when over. `after`: bytes that
   * already crossed the socket (received, or protocol overhead learned after it was written): counted
   * whatever the budget says, then a throw when the budget is now exceeded. `check` (n is 0): throw when a
   * budget is already spent, before a socket sends what cannot be charged beforehand (a TLS handshake).
   */
  charge(direction: 'sent' | 'received', n: number, when: 'before' | 'after' | 'check' = 'before'): void {
    if (!(Number.isFinite(n) && n >= 0)) throw new RangeError(`bytes must be a non-negative finite number, got ${String(n)}`);
    if (n === 0 && when !== 'check') return;
    const limits = this.#limits();
    const one = limits[direction];
    const both = limits.bytes;
    if (one === undefined && both === undefined) return;
    if (this.#store !== undefined) {
      if (when === 'check') return;
      return this.#store.charge(this.tenant, direction, n, limits);
    }
    const now = this.#now();
    const w1 = this.#windows[direction];
    const w2 = this.#windows.bytes;
    // A check asks whether one more byte fits.
    const asked = when === 'check' ? 1 : n;
    const over1 = one !== undefined && this.#roll(w1, one, now, direction, asked);
    const over2 = both !== undefined && this.#roll(w2, both, now, 'bytes', asked);
    if (when === 'check' || (when === 'before' && (over1 || over2))) {
      if (over1) throw this.#exceeded(w1, one!, direction, asked);
      if (over2) throw this.#exceeded(w2, both!, 'bytes', asked);
      return;
    }
    if (one !== undefined) w1.used += n;
    if (both !== undefined) w2.used += n;
    if (over1) throw this.#exceeded(w1, one!, direction, 0);
    if (over2) throw this.#exceeded(w2, both!, 'bytes', 0);
  }

  /** Start a new window when this one is over; true when `n` more bytes would exceed the budget. */
  #roll(w: Window, budget: ByteBudget, now: number, _name: 'sent' | 'received' | 'bytes', n: number): boolean {
    if (now - w.start >= budget.windowMs || now < w.start) {
      w.start = now;
      w.used = 0;
    }
    return w.used + n > budget.bytes;
  }

  #exceeded(w: Window, budget: ByteBudget, name: 'sent' | 'received' | 'bytes', n: number): QuotaExceededError {
    const what = name === 'bytes' ? 'byte' : name;
    return new QuotaExceededError(
      name === 'bytes' ? 'bytes' : `bytes-${name}`,
      n === 0
        ? `tenant ${this.tenant} exceeded its ${what} budget: ${w.used} > ${budget.bytes} bytes per ${budget.windowMs} ms`
        : `tenant ${this.tenant} would exceed its ${what} budget: ${w.used} + ${n} > ${budget.bytes} bytes per ${budget.windowMs} ms`,
    );
  }

  /** What the tenant holds and has spent in the current windows (Host.usage). */
  usage(): TenantUsage {
    const w = this.#windows;
    return Object.freeze({ connections: this.held.connection, listeners: this.held.listener, sent: w.sent.used, received: w.received.used, bytes: w.bytes.used });
  }

  /** @internal */
  drop(lease: TenantLease): void {
    if (!this.live.delete(lease)) return;
    this.held[lease.kind]--;
    this.#store?.give(this.tenant, lease.kind);
  }
}

/** The scope that takes leases: it vouches for the targets bound to them. */
export interface LeaseOwner {
  owns(target: unknown): boolean;
}

export class TenantLease implements Lease {
  readonly kind: 'connection' | 'listener';
  /** The scope that took it (its claims count when a reload re-decides the subject). */
  readonly owner: LeaseOwner;
  /** What a reload re-decides: the bound target's request (made when first needed), or a bound accept request. */
  #subject: PolicyRequest | undefined;
  #target: CheckedTarget | undefined;
  readonly #quota: TenantQuota;
  #released = false;
  #revoked: Denial | undefined;
  /** Made by the first onRevoke() (a lease nobody watches has none). */
  #callbacks: Array<(d: Denial) => void> | undefined;

  constructor(quota: TenantQuota, kind: 'connection' | 'listener', target: CheckedTarget | undefined, owner: LeaseOwner) {
    this.#quota = quota;
    this.kind = kind;
    this.owner = owner;
    if (target !== undefined) this.bind(target);
    Object.freeze(this);
  }

  get subject(): PolicyRequest | undefined {
    if (this.#subject === undefined && this.#target !== undefined) this.#subject = Object.freeze(targetRequest(this.#target));
    return this.#subject;
  }

  bind(subject: CheckedTarget | PolicyRequest): void {
    if (isCheckedTarget(subject)) {
      if (!this.owner.owns(subject)) throw new TypeError('target was not minted by the scope that holds this lease');
      // Kept as is (targets are frozen); the request a reload re-decides is derived only if one happens.
      this.#target = subject;
      this.#subject = undefined;
      return;
    }
    if (typeof subject !== 'object' || subject === null) throw new TypeError('subject must be a CheckedTarget or a PolicyRequest');
    const request = snapshotRequest(subject);
    this.#target = undefined;
    this.#subject = request;
  }

  get released(): boolean {
    return this.#released;
  }

  get revoked(): Denial | undefined {
    return this.#revoked;
  }

  sent(bytes: number): void {
    if (!this.#released) this.#quota.charge('sent', bytes);
  }

  /** Count received bytes; throws QuotaExceededError when the budget is spent. */
  received(bytes: number): void {
    if (!this.#released) this.#quota.charge('received', bytes);
  }

  /** Give the unit back (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#callbacks = undefined;
    this.#quota.drop(this);
  }

  onRevoke(cb: (decision: Denial) => void): void {
    if (typeof cb !== 'function') throw new TypeError('onRevoke callback must be a function');
    if (this.#released) return;
    if (this.#revoked !== undefined) safeCall(cb, this.#revoked);
    else (this.#callbacks ??= []).push(cb);
  }

  /** @internal Called by the host when a new revision forbids this lease's target. */
  revoke(decision: Denial): void {
    if (this.#released || this.#revoked !== undefined) return;
    this.#revoked = decision;
    const cbs = this.#callbacks;
    this.#callbacks = undefined;
    if (cbs !== undefined) for (const cb of cbs) safeCall(cb, decision);
  }
}

// Frozen: a guest holding one of its leases cannot turn off byte counting (sent/received) for every tenant.
Object.freeze(TenantLease.prototype);

function safeCall(cb: (d: Denial) => void, d: Denial): void {
  try {
    cb(d);
  } catch {
    /* a connection's revoke handler must not break the reload */
  }
}
