/**
 * Listener: passive open (RFC 9622 §7.2, RFC 9623 §4.7).
 *
 * By default it binds every stack the properties, security and policy allow, on one port number
 * (selection/bind.ts): for reliable streams with security that is TLS on TCP and QUIC on UDP, so any TLS
 * client (openssl, curl, a browser) and any taps-node client reach the same `host:port`. A stack that
 * cannot bind makes `listen()` reject with the report and nothing left bound, unless the caller accepts
 * a partial bind (`allowPartialBind: true`); `stacks: 'best'` binds only the best one that binds. Each
 * bind is authorized as a `bind` by the tenant's policy before a socket exists; each accepted peer is
 * authorized as an `accept` by its address before the application sees it, and a refused peer is dropped
 * at once. A listener given a remote endpoint accepts only peers it names (RFC 9622 §7.2; remote-match.ts):
 * any other is refused before the policy is asked. `connectionLimit` (§7.2 SetNewConnectionLimit) caps deliveries; peers beyond it are refused
 * rather than queued, so a flood costs nothing.
 *
 * @example
 * const listener = await pre.listen();
 * console.log(explainReport(listener.report)); // what was bound, and why the rest was not
 * for await (const conn of listener) handle(conn);
 */
import type { Driver, DriverListener, SocketAddress, TransportChannel } from './driver.js';
import { Connection } from './connection/connection.js';
import type { LocalEndpoint, RemoteEndpoint } from './endpoints.js';
import { PolicyDeniedError, TapsError, toTapsError } from './errors.js';
import { libraryHandler } from './policy/admission.js';
import { TypedEmitter } from './events.js';
import type { MessageFramer } from './framers/index.js';
import type { NetworkScope } from './network.js';
import type { Lease } from './policy/contract.js';
import { systemPathMonitor, type PathChange, type PathMonitor } from './paths/monitor.js';
import { PathWatch } from './paths/watch.js';
import type { PolicyDecision } from './policy/types.js';
import type { RemoteMatcher } from './remote-match.js';
import type { TransportProperties } from './properties.js';
import type { SelectionReport } from './report.js';
import type { SecurityParameters } from './security.js';
import type { Bound } from './selection/bind.js';
import { judgeStackOnce } from './selection/suitability.js';

let bindCode: Promise<typeof import('./selection/bind.js')> | undefined;
// Loaded by the first listener with a remote endpoint, when its first peer arrives.
let remoteMatchCode: Promise<typeof import('./remote-match.js')> | undefined;

/** Options of `Preconnection.listen()`. */
export interface ListenOptions {
  /** Abort the bind while it runs; once listening, stop the listener. */
  readonly signal?: AbortSignal | undefined;
  /** Deliver at most this many connections (default: unlimited). */
  readonly connectionLimit?: number | undefined;
  /**
   * `'all'` (default): every stack the properties, security and policy allow, sharing one port number.
   * `'best'`: only the best-ranked stack that binds.
   */
  readonly stacks?: 'all' | 'best' | undefined;
  /**
   * Resolve even when some allowed stack could not be bound (its record in `report` says why). Default
   * false: a stack that cannot bind makes `listen()` reject, with nothing left bound.
   */
  readonly allowPartialBind?: boolean | undefined;
}

/** The events a {@link Listener} emits. */
export type ListenerEvents = {
  connectionReceived: [connection: Connection];
  /**
   * A peer the policy refused (or beyond the limit / quota): it was dropped, its channel aborted with
   * `error` — ERR_TAPS_POLICY_PROHIBITED, or the quota's own code (ERR_TAPS_QUOTA_EXCEEDED, ERR_TAPS_FLEET_UNAVAILABLE).
   */
  refused: [peer: SocketAddress, reason: string, decision: PolicyDecision | undefined, error: TapsError];
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

/** Programmer errors in listen() options: thrown at once, naming the option. */
function checkOptions(options: ListenOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('listen() options must be an object');
  const { connectionLimit, stacks, allowPartialBind, signal } = options;
  if (connectionLimit !== undefined && !(typeof connectionLimit === 'number' && connectionLimit >= 0)) {
    throw new RangeError(`connectionLimit must be a number ≥ 0, got ${String(connectionLimit)}`);
  }
  if (stacks !== undefined && stacks !== 'all' && stacks !== 'best') throw new RangeError(`stacks must be 'all' or 'best', got ${String(stacks)}`);
  if (allowPartialBind !== undefined && typeof allowPartialBind !== 'boolean') throw new TypeError(`allowPartialBind must be a boolean, got ${typeof allowPartialBind}`);
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
}

/** A passive open (RFC 9622 §7.2): binds the chosen stack(s) and delivers each accepted, policy-checked peer as a Connection. */
export class Listener extends TypedEmitter<ListenerEvents> implements AsyncIterable<Connection> {
  /** What was bound, and why each other stack was not: one candidate per (stack, address). */
  readonly report: SelectionReport;
  readonly #init: ListenerInit;
  readonly #bound: readonly Bound[];
  readonly #queue: Connection[] = [];
  readonly #waiters: { resolve: (r: IteratorResult<Connection>) => void }[] = [];
  #limit: number;
  #stopped = false;
  /** The peers the remote endpoint names (made with the first peer), when one was given. */
  #remoteMatch: RemoteMatcher | undefined;
  /** Made when the first `pathChange` listener is added. */
  #path: PathWatch | undefined;
  /** One unit of the tenant's `listeners` quota, held until stop(). */
  readonly #lease: Lease;
  /** The stop() listener on the caller's signal, removed at stop (a long-lived signal must not keep the listener). */
  #onAbort: (() => void) | undefined;

  private constructor(init: ListenerInit, report: SelectionReport, bound: readonly Bound[], lease: Lease) {
    super();
    this.#init = init;
    this.report = report;
    this.#bound = bound;
    this.#limit = init.options.connectionLimit ?? Infinity;
    this.#lease = lease;
  }

  /** @internal Preconnection.listen() calls this. */
  static async open(init: ListenerInit): Promise<Listener> {
    const { options } = init;
    checkOptions(options);
    options.signal?.throwIfAborted();
    // The binding code is imported on the first listen(): a process that only initiates never compiles it.
    const { bindStacks } = await (bindCode ??= import('./selection/bind.js'));
    const { report, bound, lease } = await bindStacks({
      scope: init.scope,
      local: init.local,
      remote: init.remote,
      properties: init.properties,
      security: init.security,
      framerCount: init.framers.length,
      drivers: init.drivers,
      driverOptions: init.driverOptions,
      stacks: options.stacks ?? 'all',
      allowPartialBind: options.allowPartialBind ?? false,
      signal: options.signal,
    });
    const listener = new Listener(init, report, bound, lease);
    // Hot reload re-decides the first bind; a revision that forbids it stops the listener.
    lease.bind?.(bound[0]!.target);
    for (const b of bound) listener.#attach(b.driver, b.listener);
    const signal = options.signal;
    if (signal !== undefined) {
      listener.#onAbort = () => void listener.stop();
      signal.addEventListener('abort', listener.#onAbort, { once: true });
    }
    lease.onRevoke?.((decision) => {
      listener.emit('error', new PolicyDeniedError(decision, `the tenant's policy no longer allows this listener: ${decision.reason}`));
      void listener.stop();
    });
    return listener;
  }

  /** The addresses actually bound (port filled in when 0 was asked), best-ranked stack first. */
  get localAddresses(): readonly SocketAddress[] {
    return this.#bound.map((b) => b.listener.local);
  }

  /** The driver ids bound, best first. */
  get stacks(): readonly string[] {
    return [...new Set(this.#bound.map((b) => b.driver.id))];
  }

  /** The port number every stack is bound on: handy with port 0. */
  get port(): number {
    return this.#bound[0]?.listener.local.port ?? 0;
  }

  /** RFC 9622 §7.2: cap how many more connections are delivered (Infinity resets). */
  setNewConnectionLimit(value: number): void {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`connection limit must be a number ≥ 0, got ${String(value)}`);
    this.#limit = value;
  }

  #attach(driver: Driver, listener: DriverListener): void {
    // The library's own handler: this Listener decides each peer (remote endpoint, then `accept`) itself.
    listener.start(libraryHandler({
      connection: (channel, stack) => void this.#accept(stack ?? driver, channel, stack !== undefined && stack !== driver),
      error: (err) => this.emit('error', toTapsError(err, 'ERR_TAPS_PROTOCOL_FAILED')),
    }));
  }

  /**
   * One accepted peer on `driver`'s stack. `judge`: a listener shared by several stacks handed it over with
   * a stack other than the one bound, so that stack must meet this listener's properties too.
   */
  async #accept(driver: Driver, channel: TransportChannel, judge: boolean): Promise<void> {
    const { scope } = this.#init;
    const refuse = (reason: string, decision?: PolicyDecision, error = new TapsError('ERR_TAPS_POLICY_PROHIBITED', reason)): void => {
      channel.abort(error);
      this.emit('refused', channel.remote, reason, decision, error);
    };
    if (this.#stopped) return refuse('the listener has stopped');
    if (judge) {
      const { properties, security, framers, local, remote } = this.#init;
      const verdict = judgeStackOnce(driver, { properties, security, framerCount: framers.length, scheme: local.scheme ?? remote?.scheme });
      if (!verdict.ok) return refuse(`peer ${channel.remote.address} speaks ${driver.id}, which this listener's properties do not allow: ${verdict.reason}`);
    }
    const remote = this.#init.remote;
    if (remote !== undefined) {
      const { RemoteMatcher } = await (remoteMatchCode ??= import('./remote-match.js'));
      const why = await (this.#remoteMatch ??= new RemoteMatcher(remote, scope.guard)).refusal(driver.protocol, channel.remote);
      if (why !== undefined) return refuse(why);
    }
    const decision = await scope.guard.decide({ use: 'accept', protocol: driver.protocol, address: channel.remote.address, port: channel.remote.port });
    if (!decision.allow) return refuse(`peer ${channel.remote.address} refused by policy: ${decision.reason}`, decision);
    if (this.#stopped) return refuse('the listener has stopped');
    if (this.#limit <= 0) return refuse('connection limit reached');
    let lease;
    try {
      const taken = scope.lease('connection');
      lease = taken instanceof Promise ? await taken : taken;
    } catch (err) {
      // The peer is told why with the quota's own code (QUOTA_EXCEEDED, or FLEET_UNAVAILABLE when a shared
      // store cannot count it): not a denial by policy.
      const why = err instanceof TapsError ? err : new TapsError('ERR_TAPS_QUOTA_EXCEEDED', String(err), { cause: err });
      return refuse(`quota: ${why.message}`, undefined, why);
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
    if (this.#onAbort !== undefined) this.#init.options.signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
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
