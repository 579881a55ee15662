/**
 * Listener: passive open (RFC 9622 §7.2, RFC 9623 §4.7).
 *
 * The stacks are judged like an initiate's (properties, security, which
 * drivers can listen) and the best one that binds is used (one the policy
 * denies or that fails hands over to the next in rank) — or every suitable
 * one with `stacks: 'all'`, sharing one port. Each bind address is authorized as a
 * `bind` by the tenant's policy before a socket exists; each accepted peer is
 * authorized as an `accept` by its address before the application sees it,
 * and a refused peer is dropped at once. `connectionLimit` (§7.2
 * SetNewConnectionLimit) caps deliveries; peers beyond it are refused rather
 * than queued, so a flood costs nothing.
 *
 * @example
 * const listener = await pre.listen();
 * for await (const conn of listener) handle(conn);
 */
import type { Driver, DriverListener, SocketAddress, TransportChannel } from './driver.js';
import { Connection } from './connection/connection.js';
import type { LocalEndpoint, RemoteEndpoint } from './endpoints.js';
import { EstablishmentError, PolicyDeniedError, TapsError, toTapsError } from './errors.js';
import { TypedEmitter } from './events.js';
import type { MessageFramer } from './framers/index.js';
import type { Lease, NetworkScope } from './policy/chokepoint.js';
import { systemPathMonitor, type PathChange, type PathMonitor } from './paths/monitor.js';
import { PathWatch } from './paths/watch.js';
import type { PolicyDecision } from './policy/types.js';
import type { TransportProperties } from './properties.js';
import type { CandidateRecord, SelectionReport } from './report.js';
import type { SecurityParameters } from './security.js';
import { grantLookups } from './selection/lookup.js';
import { rankStacks } from './selection/rank.js';
import { judgeStack } from './selection/suitability.js';

/** Options of `Preconnection.listen()`. */
export interface ListenOptions {
  readonly signal?: AbortSignal | undefined;
  /** Deliver at most this many connections (default: unlimited). */
  readonly connectionLimit?: number | undefined;
  /** Bind the best suitable stack that can be bound (default) or every suitable one. */
  readonly stacks?: 'best' | 'all' | undefined;
}

/** The events a {@link Listener} emits. */
export type ListenerEvents = {
  connectionReceived: [connection: Connection];
  /** A peer the policy refused (or beyond the limit / quota): it was dropped. */
  refused: [peer: SocketAddress, reason: string, decision?: PolicyDecision];
  error: [error: TapsError];
  stopped: [];
  /** A bound address went away, came back or moved (RFC 9622 §8.3.2); a listener on a wildcard address never sees one. */
  pathChange: [change: PathChange];
};

interface ListenerInit {
  readonly scope: NetworkScope;
  readonly local: LocalEndpoint;
  readonly remote?: RemoteEndpoint | undefined;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framers: readonly MessageFramer[];
  readonly drivers: readonly Driver[];
  readonly driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly connectionProperties: Readonly<Record<string, unknown>>;
  readonly paths?: PathMonitor | undefined;
  readonly options: ListenOptions;
}

interface Bound {
  readonly driver: Driver;
  readonly listener: DriverListener;
}

/** A passive open (RFC 9622 §7.2): binds the chosen stack(s) and delivers each accepted, policy-checked peer as a Connection. */
export class Listener extends TypedEmitter<ListenerEvents> implements AsyncIterable<Connection> {
  readonly report: SelectionReport;
  readonly #init: ListenerInit;
  readonly #bound: Bound[] = [];
  readonly #queue: Connection[] = [];
  readonly #waiters: { resolve: (r: IteratorResult<Connection>) => void }[] = [];
  #limit: number;
  #stopped = false;
  /** Made when the first `pathChange` listener is added. */
  #path: PathWatch | undefined;
  /** One unit of the tenant's `listeners` quota, held until stop(). */
  readonly #lease: Lease;

  private constructor(init: ListenerInit, report: SelectionReport, lease: Lease) {
    super();
    this.#init = init;
    this.report = report;
    this.#limit = init.options.connectionLimit ?? Infinity;
    this.#lease = lease;
  }

  /** @internal Preconnection.listen() calls this. */
  static async open(init: ListenerInit): Promise<Listener> {
    const { scope, local, options } = init;
    if (options.connectionLimit !== undefined && !(typeof options.connectionLimit === 'number' && options.connectionLimit >= 0)) {
      throw new RangeError(`connectionLimit must be a number ≥ 0, got ${String(options.connectionLimit)}`);
    }
    options.signal?.throwIfAborted();
    const report: SelectionReport = {
      startedAt: Date.now(),
      tenant: scope.tenant,
      remote: `listen ${groupText(local) ?? local.ipAddress ?? local.hostName ?? '*'}:${local.port ?? 0}`,
      racing: 'simultaneous',
      attemptDelay: 0,
      resolutions: [],
      candidates: [],
    };
    let n = 1;
    const record = (r: Omit<CandidateRecord, 'id'>): CandidateRecord => {
      const c = { id: `c${n++}`, ...r };
      report.candidates.push(c);
      return c;
    };
    const suitable: Driver[] = [];
    for (const driver of init.drivers) {
      if (typeof driver.listen !== 'function') {
        record({ driver: driver.id, stack: driver.stack, fate: 'unsuitable', reason: `${driver.id} cannot listen` });
        continue;
      }
      const v = judgeStack(driver, {
        properties: init.properties, security: init.security, framerCount: init.framers.length,
        scheme: init.local.scheme ?? init.remote?.scheme, multicast: init.local.multicastGroup !== undefined,
      });
      if (!v.ok) {
        record({ driver: driver.id, stack: driver.stack, fate: 'unsuitable', reason: v.reason });
        continue;
      }
      const a = await driver.available();
      if (!a.available) {
        record({ driver: driver.id, stack: driver.stack, fate: 'unavailable', reason: a.reason });
        continue;
      }
      suitable.push(driver);
    }
    const ranked = rankStacks(suitable, { properties: init.properties, security: init.security, framerCount: init.framers.length });
    // 'best' (default): the first ranked stack that binds; one the policy denies or that fails to bind hands over to the next.
    const chosen = ranked;
    if (chosen.length === 0) throw new EstablishmentError('ERR_TAPS_NO_CANDIDATES', 'no protocol stack can listen with the requested properties', report);

    // The tenant's listener quota: taken before any lookup or bind, never waits (QuotaExceededError at once).
    const taken = scope.lease('listener');
    const lease = taken instanceof Promise ? await taken : taken;
    let addresses: string[];
    let bindable: readonly (typeof chosen)[number][];
    try {
      ({ addresses, bindable } = await bindAddresses(init, chosen, record));
      if (bindable.length === 0) {
        throw new EstablishmentError('ERR_TAPS_POLICY_PROHIBITED', `could not listen on ${report.remote}: the tenant may not look up ${local.hostName}`, report);
      }
    } catch (err) {
      lease.release();
      throw err;
    }
    const listener = new Listener(init, report, lease);
    let port = local.port ?? 0;
    try {
      for (const [i, s] of bindable.entries()) {
        if (options.stacks !== 'all' && listener.#bound.length > 0) {
          for (const rest of bindable.slice(i)) record({ driver: rest.driver.id, stack: rest.driver.stack, fate: 'pending', reason: 'not bound: a better stack was bound' });
          break;
        }
        for (const address of addresses) {
          const base = { driver: s.driver.id, stack: s.driver.stack, address, family: (address.includes(':') ? 6 : 4) as 4 | 6, port };
          let target;
          try {
            target = await scope.guard.authorize({ use: 'bind', protocol: s.driver.protocol, address, port });
          } catch (err) {
            const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
            const decision = (e as { decision?: PolicyDecision }).decision;
            record({ ...base, fate: 'denied', reason: e.message, code: decision && !decision.allow ? decision.code : e.code, decision });
            continue;
          }
          const signal = options.signal ?? new AbortController().signal;
          const c = record({ ...base, fate: 'pending', decision: target.decision });
          try {
            const bound = await scope.network.listen(s.driver, {
              signal,
              target,
              local,
              security: init.security,
              properties: init.properties,
              options: init.driverOptions[s.driver.id] ?? {},
              guard: scope.guard,
            });
            Object.assign(c, { fate: 'won', port: bound.local.port });
            // Hot reload re-decides the first bind; a revision that forbids it stops the listener.
            if (listener.#bound.length === 0) listener.#lease.bind?.(target);
            if (port === 0) port = bound.local.port; // every further bind shares the first ephemeral port
            listener.#attach(s.driver, bound);
          } catch (err) {
            const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
            Object.assign(c, { fate: 'failed', reason: e.message, code: e.code, error: e });
          }
        }
      }
    } catch (err) {
      await listener.stop();
      throw err;
    }
    if (listener.#bound.length === 0) {
      listener.#lease.release();
      const denied = report.candidates.some((c) => c.fate === 'denied');
      const anyFailed = report.candidates.some((c) => c.fate === 'failed');
      throw new EstablishmentError(
        denied && !anyFailed ? 'ERR_TAPS_POLICY_PROHIBITED' : 'ERR_TAPS_ESTABLISHMENT_FAILED',
        `could not listen on ${report.remote}: ${report.candidates.filter((c) => c.fate === 'denied' || c.fate === 'failed').map((c) => c.reason).join('; ')}`,
        report,
      );
    }
    options.signal?.addEventListener('abort', () => void listener.stop(), { once: true });
    listener.#lease.onRevoke?.((decision) => {
      listener.emit('error', new PolicyDeniedError(decision, `the tenant's policy no longer allows this listener: ${decision.reason}`));
      void listener.stop();
    });
    return listener;
  }

  /** The addresses actually bound (port filled in when 0 was asked). */
  get localAddresses(): readonly SocketAddress[] {
    return this.#bound.map((b) => b.listener.local);
  }

  /** The first bound port: handy with port 0. */
  /** The driver ids bound, best first (one unless listening with `stacks: 'all'`). */
  get stacks(): readonly string[] {
    return [...new Set(this.#bound.map((b) => b.driver.id))];
  }

  get port(): number {
    return this.#bound[0]?.listener.local.port ?? 0;
  }

  /** RFC 9622 §7.2: cap how many more connections are delivered (Infinity resets). */
  setNewConnectionLimit(value: number): void {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`connection limit must be a number ≥ 0, got ${String(value)}`);
    this.#limit = value;
  }

  #attach(driver: Driver, listener: DriverListener): void {
    this.#bound.push({ driver, listener });
    listener.start({
      connection: (channel) => void this.#accept(driver, channel),
      error: (err) => this.emit('error', toTapsError(err, 'ERR_TAPS_PROTOCOL_FAILED')),
    });
  }

  async #accept(driver: Driver, channel: TransportChannel): Promise<void> {
    const { scope } = this.#init;
    const refuse = (reason: string, decision?: PolicyDecision): void => {
      channel.abort(new TapsError('ERR_TAPS_POLICY_PROHIBITED', reason));
      this.emit('refused', channel.remote, reason, decision);
    };
    if (this.#stopped) return refuse('the listener has stopped');
    const decision = await scope.guard.decide({ use: 'accept', protocol: driver.protocol, address: channel.remote.address, port: channel.remote.port });
    if (!decision.allow) return refuse(`peer ${channel.remote.address} refused by policy: ${decision.reason}`, decision);
    if (this.#stopped) return refuse('the listener has stopped');
    if (this.#limit <= 0) return refuse('connection limit reached');
    let lease;
    try {
      const taken = scope.lease('connection');
      lease = taken instanceof Promise ? await taken : taken;
    } catch (err) {
      return refuse(`quota: ${(err as Error).message}`);
    }
    if (this.#stopped) {
      lease.release();
      return refuse('the listener has stopped');
    }
    // What a hot reload re-decides for this peer; the Connection aborts itself when its lease is revoked.
    lease.bind?.({ use: 'accept', protocol: driver.protocol, address: channel.remote.address, port: channel.remote.port });
    this.#limit--;
    const conn = new Connection({
      channel,
      driver,
      properties: this.#init.properties,
      framers: this.#init.framers,
      report: this.report,
      lease,
      localEndpoint: this.#init.local,
      connectionProperties: this.#init.connectionProperties,
      paths: this.#init.paths,
    });
    this.emit('connectionReceived', conn);
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: conn, done: false });
    else if (this.listenerCount('connectionReceived') === 0) this.#queue.push(conn);
  }

  override on<K extends keyof ListenerEvents & string>(event: K, listener: (...args: ListenerEvents[K]) => void): this {
    super.on(event, listener);
    if (event === 'pathChange') this.#watchPath();
    return this;
  }

  override off<K extends keyof ListenerEvents & string>(event: K, listener: (...args: ListenerEvents[K]) => void): this {
    super.off(event, listener);
    if (event === 'pathChange') this.#watchPath();
    return this;
  }

  /** While someone listens for `pathChange`, the path monitor watches every bound address. */
  #watchPath(): void {
    const wanted = !this.#stopped && this.listenerCount('pathChange') > 0;
    if (!wanted && this.#path === undefined) return;
    this.#path ??= new PathWatch(this.#init.paths ?? systemPathMonitor, () => this.#bound.map((b) => b.listener.local.address), (c) => this.emit('pathChange', c));
    this.#path.want(wanted);
  }

  /** Stop listening; connections already delivered stay open. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#path?.want(false);
    this.#lease.release();
    await Promise.allSettled(this.#bound.map((b) => b.listener.close()));
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
    this.emit('stopped');
  }

  /** `for await (const conn of listener)`: each accepted connection; ends when the listener stops. */
  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return {
      next: () => {
        const c = this.#queue.shift();
        if (c) return Promise.resolve({ value: c, done: false });
        if (this.#stopped) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiters.push({ resolve }));
      },
      return: async () => {
        await this.stop();
        return { value: undefined, done: true };
      },
    };
  }

  /** `await using`: stop listening. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** A group listener's group for the report: `group 239.1.2.3` or `group 232.1.1.1 from 192.0.2.9`. */
function groupText(local: LocalEndpoint): string | undefined {
  if (local.multicastGroup === undefined) return undefined;
  return `group ${local.multicastGroup}${local.multicastSource === undefined ? '' : ` from ${local.multicastSource}`}`;
}

/**
 * Where to bind: the local IP, or each address a local name resolves to, or every interface. A local name
 * is a lookup like any other: the tenant needs the `lookup` grant for each stack's protocol (a stack without
 * it is recorded denied and binds nothing), and the guard resolves the checked name (no unchecked query).
 */
async function bindAddresses<S extends { readonly driver: Driver }>(
  init: ListenerInit,
  stacks: readonly S[],
  record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord,
): Promise<{ addresses: string[]; bindable: readonly S[] }> {
  const { local, scope } = init;
  // A group listener binds the group itself (it then receives only that group's datagrams) and joins it:
  // the `bind` decision on the group's address and port is the tenant's grant to join (RFC 9622 §6.1.1).
  if (local.multicastGroup !== undefined) return { addresses: [local.multicastGroup], bindable: stacks };
  if (local.ipAddress !== undefined) return { addresses: [local.ipAddress], bindable: stacks };
  const host = local.hostName;
  if (host === undefined) return { addresses: ['::'], bindable: stacks };
  const { name, allowed: bindable } = await grantLookups(scope.guard, host, stacks, record);
  if (name === undefined) return { addresses: [], bindable }; // every lookup denied (recorded): nothing to bind
  const signal = init.options.signal ?? new AbortController().signal;
  const addresses: string[] = [];
  for (const family of [6, 4] as const) {
    try {
      for (const a of await scope.guard.resolve(name, family, signal)) addresses.push(a.address);
    } catch {
      /* a missing family is fine */
    }
  }
  if (addresses.length === 0) throw new TapsError('ERR_TAPS_RESOLUTION_FAILED', `could not resolve local name ${host}`);
  return { addresses, bindable };
}
