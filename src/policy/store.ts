/**
 * The quota store seam: where a tenant's concurrent-unit counts and byte
 * budgets are kept when they are shared beyond this process. Without one (the
 * default) a {@link Host} counts everything in memory, per process. With one
 * (`new Host({ quotaStore })`), every connection and listener unit and every
 * counted byte is asked of the store, which can share the limits across a
 * fleet of hosts (`taps-node/fleet` keeps them in Redis).
 *
 * The contract, for anyone writing a store:
 * - `take` answers synchronously when it can (return `undefined`: taken) and
 *   with a promise only when it must ask elsewhere; it throws or rejects with
 *   a `QuotaExceededError` when the limit is reached, and with a `TapsError`
 *   of code `ERR_TAPS_FLEET_UNAVAILABLE` when it cannot find out. A limit
 *   the policy does not set means the unit is only counted.
 * - `give` returns a unit taken with `take`; it never throws nor waits.
 * - `charge` is synchronous (bytes are counted on the send and receive
 *   paths): it returns when the bytes fit and throws `QuotaExceededError`
 *   when they do not, charging nothing then.
 * Limits are passed at every call, from the tenant's current policy revision,
 * so a reload changes them at once.
 *
 * @example
 * const host = new Host({ quotaStore: fleet.quotas });
 */
import type { PolicyLimits } from './source.js';

/** A unit a tenant holds while it lasts. */
export type QuotaUnit = 'connection' | 'listener';

/** Where a Host keeps tenant quotas (see the module comment for the contract). */
export interface QuotaStore {
  /**
   * Take one unit of `kind` for `tenant` under its limit in `limits`
   * (none: counted only). The tenant's byte budgets come along so a store can
   * get ready to count the unit's bytes before it is used.
   */
  take(tenant: string, kind: QuotaUnit, limits: PolicyLimits): void | Promise<void>;
  /** Give back one unit taken with `take`. */
  give(tenant: string, kind: QuotaUnit): void;
  /**
   * Charge `bytes` in `direction` against that direction's budget and the
   * combined one (`bytes`) in `limits`, each per its window; throw
   * QuotaExceededError (charging nothing) when either would be exceeded.
   * Called only when the tenant has one of those budgets.
   */
  charge(tenant: string, direction: 'sent' | 'received', bytes: number, limits: PolicyLimits): void;
}
