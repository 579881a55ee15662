/**
 * Preconnection: what the caller wants, before any connection exists (RFC 9622 §6, §7).
 *
 * It holds endpoints, transport properties, security parameters and framers,
 * all validated when it is made (bad input throws at once, before any socket
 * or DNS query). `initiate()` snapshots them, so later edits never change a
 * connection already made, and runs one selection (selection/pipeline.ts)
 * inside the tenant's {@link NetworkScope}. The scope is the only source of
 * the tenant: without one, every candidate is denied.
 *
 * @example
 * const pre = new Preconnection({
 *   scope,
 *   remote: { hostName: 'localhost', port: 4433 },
 *   properties: TransportProperties.reliableMessage(),
 *   security: new SecurityParameters({ ca }),
 *   framers: [lengthPrefixFramer()],
 * });
 * await using conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
 * await conn.send('hello');
 */
import { globalTimersClock, systemClock, type Clock } from './clock.js';
import { Connection } from './connection/connection.js';
import type { ConnectionPropertiesInit } from './connection/properties.js';
import type { Driver } from './driver.js';
import './debug-trace.js';
import { initiateChannel, listenChannel, traced } from './diagnostics.js';
import type { DriverOptions } from './driver-options.js';
import { LocalEndpoint, RemoteEndpoint, type RemoteEndpointInit } from './endpoints.js';
import { EstablishmentError, TapsError, toTapsError } from './errors.js';
import { TypedEmitter } from './events.js';
import { HeldRendezvous, holdTime } from './rendezvous/held.js';
import type { RendezvousSession, SessionInput } from './rendezvous/session.js';
import type { MessageFramer } from './framers/index.js';
import { Listener, type ListenOptions } from './listener.js';
import { checkMessageContext, type MessageContextInit } from './message.js';
import type { NetworkScope } from './network.js';
import { isNetworkScope } from './policy/admission.js';
import type { Lease } from './policy/contract.js';
import { PathMonitor } from './paths/monitor.js';
import { TransportProperties, type TransportPropertiesInit } from './properties.js';
import { loadedDrivers, registeredDrivers, selectionDrivers } from './registry.js';
import type { CandidateRecord, SelectionReport } from './report.js';
import { SecurityParameters } from './security.js';
import { select, type RacingOptions } from './selection/pipeline.js';
import { UdpFailoverChannel } from './selection/udp-failover.js';
import { racingFrom } from './selection/racing-options.js';
import { didYouMean } from './suggest.js';

let rendezvousCode: Promise<typeof import('./rendezvous/session.js')> | undefined;

/**
 * Open a rendezvous session; its code (sessions, candidate checks, STUN) is imported on the first
 * `resolve()` or `rendezvous()`, so a process that only initiates or listens never compiles it.
 */
async function openSession(input: SessionInput): Promise<RendezvousSession> {
  const { RendezvousSession } = await (rendezvousCode ??= import('./rendezvous/session.js'));
  return RendezvousSession.open(input);
}

/** What a {@link Preconnection} is made from. Keys other than these are a TypeError. */
export interface PreconnectionInit {
  /** Required: the tenant's capability handle (from `createScope` or `Host.tenant`), the only source of the tenant. */
  readonly scope: NetworkScope;
  readonly remote?: RemoteEndpoint | Parameters<typeof RemoteEndpoint.from>[0] | undefined;
  readonly local?: LocalEndpoint | ConstructorParameters<typeof LocalEndpoint>[0] | undefined;
  readonly properties?: TransportProperties | TransportPropertiesInit | undefined;
  readonly security?: SecurityParameters | ConstructorParameters<typeof SecurityParameters>[0] | undefined;
  readonly framers?: readonly MessageFramer[] | undefined;
  /** Use exactly these drivers instead of the registry's. */
  readonly drivers?: readonly Driver[] | undefined;
  /** Options per driver id, handed to that driver's connect/listen (typed for this package's drivers). */
  readonly driverOptions?: DriverOptions | undefined;
  readonly racing?: Partial<RacingOptions> | undefined;
  /** Connection properties (RFC 9622 §8) applied to connections made from this preconnection. */
  readonly connectionProperties?: ConnectionPropertiesInit | undefined;
  /** Time source (tests inject fake time). */
  readonly clock?: Clock | 'global-timers' | undefined;
  /** The path monitor connections and listeners of this preconnection report `pathChange` from (default: the system's, polling every second while watched). */
  readonly paths?: PathMonitor | undefined;
}

/** Options of {@link Preconnection.initiate}. */
export interface InitiateOptions {
  readonly signal?: AbortSignal | undefined;
  /** Give up after this many ms (ERR_TAPS_TIMEOUT). */
  readonly timeout?: number | undefined;
  /** Called whenever a candidate's record changes: for progress displays and timelines. */
  readonly onProgress?: ((candidate: CandidateRecord, report: SelectionReport) => void) | undefined;
}

const NO_INITIATE_OPTIONS: InitiateOptions = Object.freeze({});

/** initiate()'s options, checked before anything starts: an object of known keys, a positive timeout. */
function checkInitiateOptions(options: unknown): asserts options is InitiateOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  rejectUnknownKeys(options as Record<string, unknown>, INITIATE_KEYS, 'initiate()');
  const timeout = (options as InitiateOptions).timeout;
  if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout > 0))) {
    throw new RangeError(`options.timeout must be a positive number of ms, got ${String(timeout)}`);
  }
}

/** What a connection was made from: frozen when initiate() was called, reused by its clones (RFC 9622 §7.4). */
interface Snapshot {
  readonly remote: RemoteEndpoint;
  readonly local: LocalEndpoint | undefined;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framers: readonly MessageFramer[];
  /** Made once, shared by every connection made from this snapshot. */
  clone?: () => Promise<Connection>;
}

// Every key of the init, spelled once: `satisfies` makes the compiler fail when a key is added to the interface and not here.
const INIT_KEYS: readonly string[] = Object.keys({
  scope: 1, remote: 1, local: 1, properties: 1, security: 1, framers: 1, drivers: 1, driverOptions: 1, racing: 1, connectionProperties: 1, clock: 1, paths: 1,
} satisfies Record<keyof PreconnectionInit, 1>);
const INITIATE_KEYS: readonly string[] = Object.keys({ signal: 1, timeout: 1, onProgress: 1 } satisfies Record<keyof InitiateOptions, 1>);

/** Throw a TypeError naming every key of `value` that `known` lacks, with the likely intended one. */
function rejectUnknownKeys(value: object, known: readonly string[], what: string): void {
  const unknown = Object.keys(value).filter((k) => !known.includes(k));
  if (unknown.length === 0) return;
  const named = unknown.map((k) => `${JSON.stringify(k)}${didYouMean(k, known)}`).join(', ');
  throw new TypeError(`${what}: unknown option${unknown.length > 1 ? 's' : ''} ${named}; known: ${known.join(', ')}`);
}

function driverOptionsFrom(given: DriverOptions | undefined): Readonly<Record<string, Readonly<Record<string, unknown>>>> {
  if (given === undefined) return Object.freeze({});
  if (typeof given !== 'object' || given === null) throw new TypeError('driverOptions must be an object of driver id → options');
  for (const [id, options] of Object.entries(given)) {
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new TypeError(`driverOptions[${JSON.stringify(id)}] must be an object`);
  }
  return Object.freeze({ ...given }) as Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** The events a {@link Preconnection} emits (RFC 9622 §7.3). */
export type PreconnectionEvents = {
  /** A rendezvous made its connection (the one `rendezvous()` resolves with). */
  rendezvousDone: [connection: Connection];
  /** A rendezvous failed (the error `rendezvous()` rejects with). */
  establishmentError: [error: TapsError];
};

/** Options of {@link Preconnection.resolve}. */
export interface ResolveOptions {
  /** Aborting it before `rendezvous()` releases the socket `resolve()` bound, and its connection unit. */
  readonly signal?: AbortSignal | undefined;
  /**
   * How long the socket and candidates are held for a `rendezvous()`, in ms from this call (default 120000,
   * the shortest a NAT may keep an idle UDP mapping, RFC 4787 REQ-5); then they are released, and a
   * `rendezvous()` that would have used them rejects until `resolve()` is called again.
   */
  readonly holdFor?: number | undefined;
  /** How long the STUN server may take to answer, in ms (default 3000). */
  readonly stunTimeout?: number | undefined;
}

/** Options of {@link Preconnection.rendezvous}. */
export interface RendezvousOptions {
  /** The peer's candidates (what its `resolve()` gave, passed over the application's signalling); default: the preconnection's remote endpoint. */
  readonly remote?: readonly (RemoteEndpoint | LocalEndpoint | RemoteEndpointInit | string)[] | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Give up after this many ms (default 10000). */
  readonly timeout?: number | undefined;
}

/** What the caller wants before any connection exists: endpoints, properties, security, framers (RFC 9622 §6); `initiate()`, `listen()`, `rendezvous()`. */
export class Preconnection extends TypedEmitter<PreconnectionEvents> {
  readonly scope: NetworkScope;
  remote: RemoteEndpoint | undefined;
  local: LocalEndpoint | undefined;
  properties: TransportProperties;
  security: SecurityParameters;
  framers: readonly MessageFramer[];
  readonly #drivers: readonly Driver[] | undefined;
  readonly #driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly #racing: RacingOptions;
  readonly #connectionProperties: Readonly<Record<string, unknown>>;
  readonly #clock: Clock;
  readonly #paths: PathMonitor | undefined;

  constructor(init: PreconnectionInit) {
    super();
    if (typeof init !== 'object' || init === null) throw new TypeError('init must be an object with at least a scope');
    rejectUnknownKeys(init, INIT_KEYS, 'new Preconnection()');
    if (init.scope === undefined) {
      throw new TypeError('scope is required: pass the tenant\'s scope from host.tenant(id) or createScope(); without one nothing may be reached');
    }
    if (!isNetworkScope(init.scope)) {
      throw new TypeError('scope must be a NetworkScope made by createScope() or Host.tenant(); a lookalike object is not accepted');
    }
    this.scope = init.scope;
    this.remote = init.remote === undefined ? undefined : init.remote instanceof RemoteEndpoint ? init.remote : RemoteEndpoint.from(init.remote);
    this.local = init.local === undefined ? undefined : init.local instanceof LocalEndpoint ? init.local : new LocalEndpoint(init.local);
    this.properties = init.properties instanceof TransportProperties ? init.properties.clone() : new TransportProperties(init.properties ?? {});
    this.security = init.security instanceof SecurityParameters ? init.security : new SecurityParameters(init.security ?? {});
    if (init.framers !== undefined && !Array.isArray(init.framers)) throw new TypeError('framers must be an array of MessageFramer');
    for (const [i, f] of (init.framers ?? []).entries()) {
      if (typeof f !== 'object' || f === null || typeof f.frame !== 'function' || typeof f.createDeframer !== 'function') {
        throw new TypeError(`framers[${i}] is not a MessageFramer (needs frame() and createDeframer())`);
      }
    }
    this.framers = Object.freeze([...(init.framers ?? [])]);
    if (init.drivers !== undefined) {
      if (!Array.isArray(init.drivers)) throw new TypeError('drivers must be an array of Driver');
      for (const [i, d] of init.drivers.entries()) {
        if (typeof d !== 'object' || d === null || typeof d.id !== 'string' || typeof d.connect !== 'function') throw new TypeError(`drivers[${i}] is not a Driver`);
      }
    }
    this.#drivers = init.drivers ? Object.freeze([...init.drivers]) : undefined;
    this.#driverOptions = driverOptionsFrom(init.driverOptions);
    this.#racing = racingFrom(init.racing);
    this.#connectionProperties = Object.freeze({ ...(init.connectionProperties ?? {}) });
    this.#clock = init.clock === 'global-timers' ? globalTimersClock : (init.clock ?? systemClock);
    if (init.paths !== undefined && !(init.paths instanceof PathMonitor)) throw new TypeError('paths must be a PathMonitor');
    this.#paths = init.paths;
  }

  /** The drivers this preconnection chooses from. */
  drivers(): Promise<readonly Driver[]> {
    return this.#drivers ? Promise.resolve(this.#drivers) : registeredDrivers();
  }

  #snapshot: { readonly of: TransportProperties; readonly revision: number; readonly frozen: TransportProperties } | undefined;

  #initiateSnapshot(): TransportProperties {
    const of = this.properties;
    const s = this.#snapshot;
    if (s && s.of === of && s.revision === of.revision) return s.frozen;
    const frozen = of.freeze().validate('initiate'); // role-dependent contradictions (RFC 9623 §3.1), before any socket or query
    this.#snapshot = { of, revision: of.revision, frozen };
    return frozen;
  }

  /**
   * Active open (RFC 9622 §7.1): resolves with a Connection that is ready. Bad options reject (a TypeError or
   * RangeError) before anything starts. Not an async function: it hands back the selection's own promise, so
   * the connection reaches the caller without another promise and its ticks.
   */
  initiate(options?: InitiateOptions): Promise<Connection> {
    // No default parameter: with one, the closures below would cost a block context per call.
    if (options === undefined) options = NO_INITIATE_OPTIONS;
    let snap: Snapshot;
    try {
      if (options !== NO_INITIATE_OPTIONS) checkInitiateOptions(options); // none given: nothing to check
      const remote = this.remote;
      if (remote === undefined) throw new TypeError('initiate() needs a remote endpoint');
      // Snapshot: later edits to this preconnection do not affect this connection (RFC 9622 §6), nor its clones
      // (§7.4). One frozen, validated copy serves every initiate() until the properties change.
      snap = { remote, local: this.local, properties: this.#initiateSnapshot(), security: this.security, framers: this.framers };
    } catch (err) {
      return Promise.reject(err);
    }
    // Without a tracing subscriber, no closures for one.
    if (!initiateChannel.hasSubscribers) return this.#establish(snap, options);
    const remote = snap.remote;
    return traced(initiateChannel, () => ({ tenant: this.scope.tenant, remote: remote.toString() }), () => this.#establish(snap, options));
  }

  /** One selection from a snapshot; the Connection's clone() runs it again from the same snapshot. */
  async #establish(snap: Snapshot, options: InitiateOptions): Promise<Connection> {
    let lease: Lease;
    try {
      const taken = this.scope.lease('connection');
      // A quota shared beyond this process may take a turn to answer; a local one never does.
      lease = taken instanceof Promise ? await taken : taken;
    } catch (err) {
      throw err instanceof TapsError ? err : new TapsError('ERR_TAPS_QUOTA_EXCEEDED', String(err), { cause: err });
    }
    try {
      const selected = await select({
        scope: this.scope,
        remote: snap.remote,
        local: snap.local,
        properties: snap.properties,
        security: snap.security,
        framerCount: snap.framers.length,
        drivers: this.#drivers ?? loadedDrivers() ?? (await selectionDrivers()),
        driverOptions: this.#driverOptions,
        racing: this.#racing,
        clock: this.#clock,
        signal: options.signal,
        timeout: options.timeout,
        onProgress: options.onProgress,
        lease,
      });
      const { fallbacks } = selected;
      const channel =
        fallbacks === undefined
          ? selected.channel
          : new UdpFailoverChannel(selected.channel, selected.candidate, fallbacks, { report: selected.report, now: selected.elapsed!, moved: (target) => lease.bind?.(target) });
      return new Connection({
        channel,
        driver: selected.driver,
        properties: snap.properties,
        framers: snap.framers,
        report: selected.report,
        lease,
        target: selected.target,
        clock: this.#clock,
        paths: this.#paths,
        remoteEndpoint: snap.remote,
        localEndpoint: snap.local,
        connectionProperties: this.#connectionProperties,
        clone: (snap.clone ??= () => this.#establish(snap, {})),
      });
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  /** Initiate and send a first message (RFC 9622 §9.2.5); the message is sent once the connection is ready. */
  async initiateWithSend(message: Uint8Array | string, context?: MessageContextInit, options: InitiateOptions = {}): Promise<Connection> {
    if (typeof message !== 'string' && !(message instanceof Uint8Array)) throw new TypeError('message must be a Uint8Array or a string');
    if (context !== undefined) checkMessageContext(context);
    const conn = await this.initiate(options);
    // The message is sent once the connection is ready. It is safely replayable only if the caller says so
    // (RFC 9622 §9.2.5): declaring it is what would allow 0-RTT, which no stack here offers yet.
    conn.send(message, context).catch(() => {
      /* reported through the connection's sendError event */
    });
    return conn;
  }

  /** The socket and candidates of the rendezvous `resolve()` prepared (or is preparing), until `rendezvous()` uses them. */
  #held: Promise<HeldRendezvous> | undefined;
  /** What `resolve()` prepared ran out of time (its hold and report), until `resolve()` is called again. */
  #expired: { readonly holdFor: number; readonly report: SelectionReport } | undefined;

  #rendezvousInput(signal: AbortSignal | undefined, drivers: readonly Driver[], stunTimeout?: number): SessionInput {
    const local = this.local;
    if (local === undefined) throw new TypeError('rendezvous needs a local endpoint (LocalEndpoint.from({ port: 0 }) for any address)');
    const properties = this.properties.forListener();
    properties.validate('rendezvous');
    return {
      scope: this.scope, local, properties, security: this.security, framerCount: this.framers.length, drivers,
      driverOptions: this.#driverOptions, clock: this.#clock, signal, stunTimeout,
    };
  }

  /**
   * RFC 9622 §7.3 Resolve: bind the socket a rendezvous will use and gather this side's candidates — its
   * host addresses and, when the local endpoint names a STUN server, its server-reflexive address. Give
   * `local` to the peer; `remote` are this preconnection's remote endpoints. The socket stays bound for
   * `rendezvous()` for `holdFor` ms (each call starts the hold again and gives the same candidates), until
   * `signal` aborts, or until the preconnection is disposed of (`await using`); then the socket closes and
   * the unit is given back. It holds a unit of the tenant's `limit connections`, taken before binding
   * (QuotaExceededError over the limit), that the connection `rendezvous()` makes keeps.
   */
  async resolve(options: ResolveOptions = {}): Promise<{ local: LocalEndpoint[]; remote: RemoteEndpoint[] }> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const holdFor = holdTime(options.holdFor);
    options.signal?.throwIfAborted();
    let pending = this.#held;
    if (pending === undefined) {
      // One session per preconnection, even for calls that overlap: a second would be bound and never used.
      pending = this.#openHeld(options.signal, options.stunTimeout);
      this.#held = pending;
      this.#expired = undefined;
    }
    const held = await pending;
    held.releaseOnAbort(options.signal);
    options.signal?.throwIfAborted();
    // Released while this call waited (another call's signal, disposal, the hold ran out): prepare anew.
    if (held.released) return this.resolve(options);
    held.hold(holdFor);
    return { local: [...held.session.local], remote: this.remote === undefined ? [] : [this.remote] };
  }

  #openHeld(signal: AbortSignal | undefined, stunTimeout: number | undefined): Promise<HeldRendezvous> {
    const pending = (async () => {
      const session = await openSession(this.#rendezvousInput(signal, await this.drivers(), stunTimeout));
      return new HeldRendezvous(session, this.#clock, (expiredAfter) => {
        if (this.#held !== pending) return;
        this.#held = undefined;
        if (expiredAfter !== undefined) this.#expired = { holdFor: expiredAfter, report: session.report };
      });
    })();
    pending.catch(() => {
      if (this.#held === pending) this.#held = undefined;
    });
    return pending;
  }

  /** Release what `resolve()` holds (its socket and connection unit) if no rendezvous took it. */
  async [Symbol.asyncDispose](): Promise<void> {
    const pending = this.#held;
    this.#held = undefined;
    const held = await pending?.catch(() => undefined);
    await held?.release();
  }

  /**
   * RFC 9622 §7.3 Rendezvous: check the peer's candidates from this side's socket while the peer checks
   * ours (simultaneous send through NATs), and make a connection on the pair both chose. Resolves with it
   * and emits `rendezvousDone`; rejects with an EstablishmentError whose report lists every candidate pair
   * (denied by the policy, failed, cancelled, won) and emits `establishmentError`.
   */
  async rendezvous(options: RendezvousOptions = {}): Promise<Connection> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.timeout !== undefined && (typeof options.timeout !== 'number' || !(options.timeout > 0))) {
      throw new RangeError(`options.timeout must be a positive number of ms, got ${String(options.timeout)}`);
    }
    const given = options.remote ?? (this.remote === undefined ? [] : [this.remote]);
    if (!Array.isArray(given) || given.length === 0) throw new TypeError('rendezvous needs the peer\'s candidates (options.remote) or a remote endpoint');
    // The peer's resolve() gives LocalEndpoints: here they are where to reach it.
    const remotes = given.map((r) => (r instanceof LocalEndpoint ? RemoteEndpoint.from({ ipAddress: r.ipAddress ?? '', ...(r.port !== undefined && { port: r.port }) }) : RemoteEndpoint.from(r)));
    const pending = this.#held;
    this.#held = undefined;
    let session: RendezvousSession | undefined;
    try {
      session = (await pending?.catch(() => undefined))?.take();
      if (session === undefined && this.#expired !== undefined) {
        const { holdFor, report } = this.#expired;
        throw new EstablishmentError('ERR_TAPS_TIMEOUT', `the socket and candidates resolve() gave were released after ${holdFor} ms without a rendezvous (ResolveOptions.holdFor); call resolve() again and give the peer the new candidates`, report);
      }
      session ??= await openSession(this.#rendezvousInput(options.signal, await this.drivers()));
    } catch (err) {
      this.emit('establishmentError', toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED'));
      throw err;
    }
    // The session took the connection lease before it bound its socket; the connection now holds it.
    let result;
    try {
      result = await session.run(remotes, { signal: options.signal, timeout: options.timeout });
    } catch (err) {
      await session.close();
      this.emit('establishmentError', toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED'));
      throw err;
    }
    const conn = new Connection({
      channel: result.channel,
      driver: result.driver,
      properties: this.properties.forListener().freeze(),
      framers: this.framers,
      report: result.report,
      lease: result.lease,
      target: result.target,
      clock: this.#clock,
      paths: this.#paths,
      remoteEndpoint: RemoteEndpoint.from({ ipAddress: result.target.address, port: result.target.port }),
      localEndpoint: this.local,
      connectionProperties: this.#connectionProperties,
    });
    this.emit('rendezvousDone', conn);
    return conn;
  }

  /** Passive open (RFC 9622 §7.2). */
  async listen(options: ListenOptions = {}): Promise<Listener> {
    const local = this.local;
    if (local === undefined) throw new TypeError('listen() needs a local endpoint');
    const properties = this.properties.forListener();
    properties.validate('listen');
    const drivers = await this.drivers();
    return traced(listenChannel, () => ({ tenant: this.scope.tenant, local: local.toString() }), () => Listener.open({
      scope: this.scope,
      local,
      remote: this.remote,
      properties,
      security: this.security,
      framers: this.framers,
      drivers,
      driverOptions: this.#driverOptions,
      connectionProperties: this.#connectionProperties,
      paths: this.#paths,
      options,
    }));
  }
}

export { EstablishmentError };
