/**
 * What the fleet's parts share: the Redis link, the key names, this host's
 * identity and lease, and whether the fleet can be asked right now. One
 * object, made by the Fleet and handed to its quota counters, policy feed
 * and record sink.
 */
import { TapsError } from '../src/errors.js';
import type { RedisLink } from './redis.js';

/** Key and channel names of one fleet (see scripts.ts). */
export class FleetKeys {
  readonly prefix: string;
  constructor(fleet: string) {
    this.prefix = `taps:${fleet}:`;
  }
  get hosts(): string {
    return `${this.prefix}hosts`;
  }
  get hostPrefix(): string {
    return `${this.prefix}host:`;
  }
  host(id: string): string {
    return `${this.prefix}host:${id}`;
  }
  units(tenant: string, kind: string): string {
    return `${this.prefix}u:${tenant}:${kind}`;
  }
  bytes(tenant: string, name: string, windowMs: number, n: number): string {
    return `${this.prefix}b:${tenant}:${name}:${windowMs}:${n}`;
  }
  get policies(): string {
    return `${this.prefix}policies`;
  }
  get policyRevision(): string {
    return `${this.prefix}policyrev`;
  }
  get policyChannel(): string {
    return `${this.prefix}policy`;
  }
  get reclaimChannel(): string {
    return `${this.prefix}reclaim`;
  }
  get records(): string {
    return `${this.prefix}records`;
  }
}

/** Tuning shared by the quota counters (all validated by the Fleet). */
export interface QuotaTuning {
  /** How long a host's units stay its own without a renewal. */
  readonly leaseMs: number;
  /** Most spare connection/listener units a host keeps per tenant. */
  readonly unitBlock: number;
  /** Smallest byte block asked for at once. */
  readonly byteBlock: number;
  /** Spares unused this long go back to the fleet. */
  readonly spareIdleMs: number;
  /** How long a take the fleet could not grant waits at most for the other holders to answer its reclaim request. */
  readonly reclaimWaitMs: number;
  /** Share of each limit a host may use on its own while Redis is unreachable (undefined: none, fail closed). */
  readonly fallbackShare: number | undefined;
}

export class FleetContext {
  readonly link: RedisLink;
  readonly keys: FleetKeys;
  readonly hostId: string;
  readonly tuning: QuotaTuning;
  /** Live hosts in the fleet at the last heartbeat (at least this one). */
  hosts = 1;
  /** Redis's clock minus ours, in ms (byte windows follow Redis's clock). */
  skew = 0;
  /** performance.now() until which this host's lease is surely still held in Redis. */
  #validUntil = 0;

  constructor(link: RedisLink, keys: FleetKeys, hostId: string, tuning: QuotaTuning) {
    this.link = link;
    this.keys = keys;
    this.hostId = hostId;
    this.tuning = tuning;
  }

  /** Redis's clock, in ms since the epoch. */
  redisNow(): number {
    return Date.now() + this.skew;
  }

  /** A script renewed this host's lease: it holds until `leaseMs` from when the call was sent, minus a margin. */
  renewed(sentAt: number): void {
    const until = sentAt + this.tuning.leaseMs * 0.9;
    if (until > this.#validUntil) this.#validUntil = until;
    this.link.ok();
  }

  /** True while Redis answers and this host's units are surely still its own. */
  get usable(): boolean {
    return this.link.up && performance.now() < this.#validUntil;
  }

  /** True while this host's lease has not run out (Redis may be away). */
  get leaseHeld(): boolean {
    return performance.now() < this.#validUntil;
  }

  unavailable(cause?: unknown): TapsError {
    return this.link.unavailable(cause);
  }
}
