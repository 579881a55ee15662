/**
 * `taps-node/fleet`: many hosts, one set of tenant limits and policies, kept
 * in Redis. Open a fleet, give its quota store (and, if wanted, its decision
 * sink) to a {@link Host}, attach the Host, and every host pointed at the
 * same Redis and fleet name shares:
 * - each tenant's concurrent connections and listeners and its byte budgets
 *   (hosts lease blocks and return what they do not use; see units.ts and
 *   bytes.ts), with a dead host's units back after the lease time;
 * - each tenant's policy and revision: `publish` once, every host applies it
 *   (policies.ts), signed if the fleet requires it (signed.ts);
 * - optionally, every decision record in one Redis Stream (records.ts).
 *
 * When Redis cannot be reached, new connections and listeners fail closed
 * with `ERR_TAPS_FLEET_UNAVAILABLE` (unless a `fallback` share is set), live
 * connections are not touched, and everything resumes by itself when Redis
 * is back. Nothing here loads unless a fleet is opened: the single-process
 * Host needs neither Redis nor `ioredis`.
 *
 * @example
 * import { Host } from 'taps-node';
 * import { Fleet } from 'taps-node/fleet';
 * const fleet = await Fleet.open({ redis: 'redis://127.0.0.1:6379', name: 'prod', records: true });
 * const host = new Host(fleet.hostOptions());
 * await fleet.attach(host);
 * await fleet.publish('acme', 'allow tcp://api.example.com:443\nlimit connections 100');
 *
 * @module taps-node/fleet
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { debuglog } from 'node:util';
import type { RedisOptions } from 'ioredis';
import { TapsError } from '../src/errors.js';
import type { DecisionRecord } from '../src/policy/chokepoint.js';
import { prepareIssuers, type PreparedIssuer, type TrustedIssuer } from '../src/policy/claims.js';
import type { Host } from '../src/policy/host.js';
import { parsePolicy } from '../src/policy/source.js';
import type { QuotaStore } from '../src/policy/store.js';
import { FleetContext, FleetKeys, type QuotaTuning } from './context.js';
import { PolicyFeed, type PolicyEvent } from './policies.js';
import { FleetQuotas } from './quotas.js';
import { RecordSink, type RecordSinkOptions } from './records.js';
import { RedisLink } from './redis.js';
import { verifySignedPolicy } from './signed.js';

export { FleetQuotas } from './quotas.js';
export { RecordSink, type RecordSinkOptions } from './records.js';
export type { PolicyEvent } from './policies.js';
export { signPolicy, type PolicySigner } from './signed.js';

/** Options of {@link Fleet.open}. */
export interface FleetOptions {
  /** Where Redis is: a `redis://` URL or ioredis connection options. */
  readonly redis: string | RedisOptions;
  /** The fleet's name: hosts with the same Redis and name share limits and policies (default `default`). */
  readonly name?: string;
  /** This host's id in the fleet (default: hostname, pid and a random part; unique per process). */
  readonly hostId?: string;
  /** How long this host's units stay its own without a heartbeat: a dead host's units return after this (default 10,000 ms). */
  readonly leaseMs?: number;
  /** How long a Redis command may take before it fails; a unit it was asked for then fails closed (default 1,000 ms). */
  readonly commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts (default 2,000 ms). */
  readonly maxReconnectDelayMs?: number;
  /** Most spare connection/listener units a host keeps per tenant, far from the limit (default 8). */
  readonly unitBlock?: number;
  /** Smallest block of a byte budget a host asks for (default 256 KiB). */
  readonly byteBlock?: number;
  /** Spare units and bytes unused this long go back to the fleet (default 1,000 ms). */
  readonly spareIdleMs?: number;
  /**
   * A take that found the fleet full while other hosts hold units asks them to return their spares and
   * waits, once, until every one of them has answered; a host that has not answered after this long
   * (it crashed and its lease still runs) is not waited for (default 1,000 ms).
   */
  readonly reclaimWaitMs?: number;
  /**
   * While Redis is unreachable, let this host admit new connections and
   * listeners up to `share` of each tenant's limit on its own, and spend up
   * to `share` of each byte budget window (default: no fallback; new units
   * fail closed, live connections spend up to an even share of each window).
   */
  readonly fallback?: { readonly share: number };
  /** Write every decision record to the fleet's Redis Stream (`true`, or options). */
  readonly records?: boolean | RecordSinkOptions;
  /** Require every published policy to be signed by one of these issuers (see signPolicy). */
  readonly policySigners?: readonly TrustedIssuer[];
  /** Told about every revision this host applies, removes or rejects. */
  readonly onPolicy?: (event: PolicyEvent) => void;
  /** Told when Redis becomes unreachable (`up: false`) and when it answers again. */
  readonly onState?: (state: { readonly up: boolean; readonly error?: Error }) => void;
}

/** What a Host needs from a fleet: spread into `new Host({ ...fleet.hostOptions(), onRevoke })`. */
export interface FleetHostOptions {
  /** The fleet's quota store. */
  readonly quotaStore: QuotaStore;
  /** The decision stream sink, when the fleet records decisions. */
  readonly onDecision?: (r: DecisionRecord) => void;
}

const debug = debuglog('taps');

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function positive(v: unknown, what: string, fallback: number, integer = false): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new RangeError(`options.${what} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}`);
  }
  return v;
}

function tuning(o: FleetOptions): QuotaTuning {
  const share = o.fallback?.share;
  if (o.fallback !== undefined && (typeof share !== 'number' || !(share > 0 && share <= 1))) {
    throw new RangeError(`options.fallback.share must be a number in (0, 1], got ${String(share)}`);
  }
  return {
    leaseMs: positive(o.leaseMs, 'leaseMs', 10_000),
    unitBlock: positive(o.unitBlock, 'unitBlock', 8, true),
    byteBlock: positive(o.byteBlock, 'byteBlock', 256 * 1024, true),
    spareIdleMs: positive(o.spareIdleMs, 'spareIdleMs', 1000),
    reclaimWaitMs: positive(o.reclaimWaitMs, 'reclaimWaitMs', 1000),
    fallbackShare: share,
  };
}

/** A host's membership in a fleet (see the module comment). */
export class Fleet {
  /** The quota store to give the Host (`new Host({ quotaStore: fleet.quotas })`). */
  readonly quotas: FleetQuotas;
  /** The decision stream sink, when `records` was set. */
  readonly records: RecordSink | undefined;
  readonly #ctx: FleetContext;
  readonly #feed: PolicyFeed;
  readonly #signers: ReadonlyMap<string, PreparedIssuer> | undefined;
  readonly #onState: FleetOptions['onState'];
  #closed = false;

  private constructor(ctx: FleetContext, o: FleetOptions, signers: ReadonlyMap<string, PreparedIssuer> | undefined) {
    this.#ctx = ctx;
    this.#signers = signers;
    this.#onState = o.onState;
    this.quotas = new FleetQuotas(ctx);
    this.#feed = new PolicyFeed(ctx, signers, o.onPolicy);
    this.records = o.records ? new RecordSink(ctx, o.records === true ? {} : o.records, (t) => this.#feed.revision(t)) : undefined;
  }

  /**
   * Connect to Redis and join the fleet. Rejects with ERR_TAPS_FLEET_UNAVAILABLE
   * when Redis cannot be reached now (a host should not start without its
   * policies), with ERR_TAPS_UNAVAILABLE when ioredis is not installed, and
   * with TypeError/RangeError on bad options.
   */
  static async open(options: FleetOptions): Promise<Fleet> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (typeof options.redis !== 'string' && (typeof options.redis !== 'object' || options.redis === null)) {
      throw new TypeError('options.redis must be a redis:// URL or ioredis options');
    }
    const name = options.name ?? 'default';
    if (typeof name !== 'string' || !NAME.test(name)) throw new TypeError(`options.name must be 1-64 characters from [A-Za-z0-9._-], got ${JSON.stringify(name)}`);
    const hostId = options.hostId ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    if (typeof hostId !== 'string' || !/^[^\s]{1,128}$/.test(hostId)) throw new TypeError('options.hostId must be 1-128 characters without spaces');
    for (const f of ['onPolicy', 'onState'] as const) {
      if (options[f] !== undefined && typeof options[f] !== 'function') throw new TypeError(`options.${f} must be a function`);
    }
    const t = tuning(options);
    const signers = options.policySigners === undefined ? undefined : prepareIssuers(options.policySigners);
    let fleet: Fleet | undefined;
    const link = await RedisLink.open(
      {
        redis: options.redis,
        commandTimeoutMs: positive(options.commandTimeoutMs, 'commandTimeoutMs', 1000),
        maxReconnectDelayMs: positive(options.maxReconnectDelayMs, 'maxReconnectDelayMs', 2000),
      },
      (up, error) => {
        if (fleet !== undefined) fleet.#changed(up, error);
      },
      () => {
        if (fleet !== undefined) void fleet.#subscribe();
      },
    );
    if (!link.up) {
      await link.close();
      throw new TapsError('ERR_TAPS_FLEET_UNAVAILABLE', `cannot join fleet ${name}: Redis is unreachable`);
    }
    fleet = new Fleet(new FleetContext(link, new FleetKeys(name), hostId, t), options, signers);
    try {
      await fleet.#subscribe();
      await fleet.quotas.start();
    } catch (err) {
      await fleet.close({ release: false });
      throw err;
    }
    return fleet;
  }

  /** This host's id in the fleet. */
  get hostId(): string {
    return this.#ctx.hostId;
  }

  /** True while Redis answers. */
  get up(): boolean {
    return this.#ctx.link.up;
  }

  /** Options for `new Host(...)`: the quota store, and the decision sink when records are on. */
  hostOptions(): FleetHostOptions {
    return this.records ? { quotaStore: this.quotas, onDecision: this.records.record } : { quotaStore: this.quotas };
  }

  /**
   * Apply the fleet's policies to `host` now (every stored revision) and
   * every revision published from now on. The Host should have been made
   * with {@link hostOptions} so its quotas are the fleet's.
   */
  async attach(host: Host): Promise<void> {
    if (this.#closed) throw new TypeError('this fleet is closed');
    await this.#feed.attach(host);
  }

  /** The fleet revision of a tenant's policy on this host (0: none). */
  revision(tenant: string): number {
    return this.#feed.revision(tenant);
  }

  /**
   * Resolves once this host has applied (or removed, or rejected) revision
   * `revision` of `tenant`'s policy, or a later one: e.g. a revision another
   * host published.
   */
  reached(tenant: string, revision: number): Promise<void> {
    return this.#feed.reached(tenant, revision);
  }

  /**
   * Store a tenant's policy (text, the JSON form, or a signed policy when the
   * fleet requires them) as its next revision and announce it to every host.
   * The policy is checked here first: one that does not parse (or verify)
   * throws and reaches no host. Resolves with the fleet revision once the
   * Host attached here (if any) has applied it; other hosts apply it as the
   * announcement reaches them (see {@link reached}).
   */
  async publish(tenant: string, policy: string | object): Promise<number> {
    if (typeof tenant !== 'string' || !/^[A-Za-z0-9._:@-]{1,128}$/.test(tenant)) {
      throw new TypeError(`tenant must be a string of 1-128 characters from [A-Za-z0-9._:@-], got ${JSON.stringify(tenant)}`);
    }
    if (typeof policy !== 'string' && (typeof policy !== 'object' || policy === null)) throw new TypeError('policy must be text or a JSON policy object');
    const payload = JSON.stringify(policy);
    const source = this.#signers === undefined ? policy : await verifySignedPolicy(payload, tenant, this.#signers);
    parsePolicy(source as Parameters<typeof parsePolicy>[0], `tenant ${tenant}`);
    return this.#publish(tenant, payload);
  }

  /** Remove a tenant's policy from the fleet: every host then denies it everything (and revokes per its `onRevoke`). Returns the fleet revision. */
  async unpublish(tenant: string): Promise<number> {
    if (typeof tenant !== 'string' || tenant.length === 0) throw new TypeError('tenant must be a non-empty string');
    return this.#publish(tenant, '');
  }

  /**
   * Leave the fleet, after the Host's connections and listeners have ended:
   * with `release` (the default) this host's units are returned now (a unit
   * still in use would stop counting); without, they return after the lease
   * time. Pending decision records are written first. The Host keeps its
   * last policies; new units fail with ERR_TAPS_FLEET_UNAVAILABLE.
   */
  async close(options: { release?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.records?.flushed();
    await this.quotas.stop(options.release ?? true);
    await this.#ctx.link.close();
  }

  /** `await using fleet = await Fleet.open(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #publish(tenant: string, payload: string): Promise<number> {
    const ctx = this.#ctx;
    let revision: number;
    try {
      revision = await ctx.link.cmd.fleetPublish(ctx.keys.policies, ctx.keys.policyRevision, tenant, payload, ctx.keys.policyChannel);
    } catch (err) {
      ctx.link.failed(err);
      throw ctx.unavailable(err);
    }
    await this.#feed.published(tenant, revision, payload);
    return revision;
  }

  /** Subscribe (again) to the fleet's channels, then catch up on what may have been missed. */
  async #subscribe(): Promise<void> {
    const ctx = this.#ctx;
    const sub = ctx.link.sub;
    if (this.#closed || sub.status !== 'ready') return;
    if (sub.listenerCount('message') === 0) {
      sub.on('message', (channel: string, message: string) => {
        if (channel === ctx.keys.policyChannel) this.#feed.announced(message);
        else if (channel === ctx.keys.reclaimChannel) this.quotas.reclaim(message);
      });
    }
    try {
      await sub.subscribe(ctx.keys.policyChannel, ctx.keys.reclaimChannel);
      await this.#feed.catchUp();
    } catch (err) {
      ctx.link.failed(err);
    }
  }

  #changed(up: boolean, error: Error | undefined): void {
    debug('fleet %s: Redis %s%s', this.#ctx.keys.prefix, up ? 'answers again' : 'is unreachable', error ? ` (${error.message})` : '');
    if (up) void this.quotas.recover().then(() => this.#feed.catchUp()).catch(() => {});
    try {
      this.#onState?.(error === undefined || up ? { up } : { up, error });
    } catch {
      /* a host callback must not break recovery */
    }
  }
}
