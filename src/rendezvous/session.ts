/**
 * One rendezvous (RFC 9622 §7.3; RFC 9623 §4.2.1 local and remote
 * candidates): bind one datagram socket, gather this side's candidates
 * (`resolve()`), then check the peer's candidates from it and make the pair
 * both peers chose into a connection (`rendezvous()`).
 *
 * Every step is a decision of the tenant's policy: the bind of the socket
 * (`bind`), the STUN server's name (`lookup`) and address (`connect`), each
 * remote candidate and each peer-reflexive address (`connect`) before a single
 * datagram goes to it. The peer socket accepts only targets so minted.
 *
 * The session takes the tenant's connection lease before it binds (a bound
 * socket is a connection's resource, RFC 9622 §7.3: `resolve()` already
 * holds it) and hands the socket a grant on it, so the socket takes no unit
 * of its own: a rendezvous counts once. The lease goes to the connection the
 * rendezvous makes; a session closed without one gives it back.
 *
 * Candidates: a host candidate for each address the socket can use (every
 * non-loopback address of its family when bound to the unspecified address),
 * and the server-reflexive address a STUN server (RFC 8489) reports for the
 * socket, when the local endpoint names one (`withStunServer`).
 *
 * @example
 * const session = await RendezvousSession.open({ scope, local, properties, security, ... });
 * session.local;                              // candidates to give the peer
 * const won = await session.run(peerCandidates, { timeout: 10_000 });
 */
import type { Clock } from '../clock.js';
import type { Driver, PeerSocket, SocketAddress, TransportChannel } from '../driver.js';
import { LocalEndpoint, type RemoteEndpoint } from '../endpoints.js';
import { EstablishmentError, abortCode, TapsError, isTapsError, toTapsError } from '../errors.js';
import { localAddresses } from '../paths/interfaces.js';
import type { CheckedTarget, NetworkScope } from '../policy/chokepoint.js';
import { socketGrant } from '../policy/admission.js';
import type { Lease } from '../policy/contract.js';
import type { TransportProperties } from '../properties.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import type { SecurityParameters } from '../security.js';
import { rankStacks } from '../selection/rank.js';
import { judgeStack } from '../selection/suitability.js';
import { Checks, type Candidate } from './checks.js';
import { loadStun, looksLikeStun, type Stun } from './stun.js';

/** What a rendezvous is made from (a Preconnection's snapshot). */
export interface SessionInput {
  readonly scope: NetworkScope;
  readonly local: LocalEndpoint;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framerCount: number;
  readonly drivers: readonly Driver[];
  readonly driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly clock: Clock;
  readonly signal?: AbortSignal | undefined;
  /** How long the STUN server may take to answer (ms, default 3000). */
  readonly stunTimeout?: number | undefined;
}

/** What a successful rendezvous hands to the Connection. */
export interface RendezvousResult {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly target: CheckedTarget;
  readonly report: SelectionReport;
  /** The tenant's connection unit the session took before binding: now the connection's to release. */
  readonly lease: Lease;
}

const STUN_RETRY_MS = 250;

export class RendezvousSession {
  /** This side's candidates: host addresses, then the server-reflexive one. */
  readonly local: readonly LocalEndpoint[];
  readonly report: SelectionReport;
  readonly driver: Driver;
  readonly #input: SessionInput;
  readonly #socket: PeerSocket;
  /** Held until the connection takes it (run() succeeded) or the session closes without one. */
  readonly #lease: Lease;
  #handedOver = false;
  readonly #stun: Stun;
  readonly #t0: number;
  #checks: Checks | undefined;
  #closed = false;

  private constructor(input: SessionInput, driver: Driver, socket: PeerSocket, lease: Lease, stun: Stun, report: SelectionReport, t0: number, local: readonly LocalEndpoint[]) {
    this.#input = input;
    this.driver = driver;
    this.#socket = socket;
    this.#lease = lease;
    this.#stun = stun;
    this.report = report;
    this.#t0 = t0;
    this.local = local;
  }

  /** Choose the stack, bind the socket (policy `bind`), gather candidates (STUN server: `lookup`/`connect`). */
  static async open(input: SessionInput): Promise<RendezvousSession> {
    const { scope, local, clock } = input;
    const t0 = clock.now();
    const report: SelectionReport = { startedAt: Date.now(), tenant: scope.tenant, remote: 'rendezvous', racing: 'simultaneous', attemptDelay: 0, resolutions: [], candidates: [] };
    let n = 1;
    const record = (r: Omit<CandidateRecord, 'id'>): CandidateRecord => {
      const c = { id: `c${n++}`, ...r };
      report.candidates.push(c);
      return c;
    };
    const driver = await chooseDriver(input, record, report);
    const family: 4 | 6 = local.family ?? 4;
    const address = local.ipAddress ?? (family === 6 ? '::' : '0.0.0.0');
    const port = local.port ?? 0;
    let bindTarget: CheckedTarget;
    try {
      bindTarget = await scope.guard.authorize({ use: 'bind', protocol: driver.protocol, address, port });
    } catch (err) {
      const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
      record({ driver: driver.id, stack: driver.stack, address, family, port, fate: 'denied', reason: `bind: ${e.message}`, code: e.code, error: e });
      throw new EstablishmentError('ERR_TAPS_POLICY_PROHIBITED', `rendezvous may not bind ${address}:${port}: ${e.message}`, report, { cause: e });
    }
    if (scope.network.openPeerSocket === undefined) throw new TapsError('ERR_TAPS_UNAVAILABLE', "this tenant's network cannot open peer sockets (rendezvous)");
    const stun = await loadStun();
    const lease = await connectionLease(scope);
    let socket: PeerSocket;
    try {
      socket = await scope.network.openPeerSocket(driver, {
        signal: input.signal ?? new AbortController().signal,
        target: bindTarget,
        local,
        security: input.security,
        properties: input.properties,
        options: input.driverOptions[driver.id] ?? {},
        guard: scope.guard,
        unit: socketGrant(scope, lease, 'connection'),
      });
    } catch (err) {
      lease.release();
      throw err;
    }
    try {
      const hosts = hostCandidates(socket.local, local);
      const gatherer = new Gatherer(socket, stun);
      socket.start({ datagram: (data, from) => gatherer.datagram(data, from), error: () => {} });
      const reflexive = local.stunServer === undefined ? undefined : await gatherer.reflexive(input, local.stunServer, driver, record, () => at(clock, t0));
      const candidates = [...hosts];
      if (reflexive !== undefined && !hosts.some((h) => h.ipAddress === reflexive.address && h.port === reflexive.port)) {
        candidates.push(LocalEndpoint.from({ ipAddress: reflexive.address, port: reflexive.port }));
      }
      const session = new RendezvousSession(input, driver, socket, lease, stun, report, t0, Object.freeze(candidates));
      gatherer.forward = (data, from) => session.#checks?.datagram(data, from);
      return session;
    } catch (err) {
      await socket.close();
      lease.release();
      throw err;
    }
  }

  /** Check the peer's candidates; resolves with the channel of the pair both peers chose. */
  async run(remotes: readonly RemoteEndpoint[], options: { readonly signal?: AbortSignal | undefined; readonly timeout?: number | undefined; readonly interval?: number | undefined }): Promise<RendezvousResult> {
    if (this.#checks !== undefined) throw new TypeError('this rendezvous already ran');
    const { scope, clock } = this.#input;
    const candidates: Candidate[] = remotes.map((r, i) => {
      if (r.ipAddress === undefined || r.port === undefined) throw new TypeError(`remote candidate ${i} must have an IP address and a port (as resolve() gives them), got ${r.toString()}`);
      return { address: r.ipAddress, port: r.port, family: r.family ?? 4 };
    });
    let n = this.report.candidates.length + 1;
    const checks = new Checks({
      socket: this.#socket,
      stun: this.#stun,
      clock,
      interval: options.interval ?? 50,
      at: () => at(clock, this.#t0),
      record: (r) => {
        const c = { id: `c${n++}`, ...r };
        this.report.candidates.push(c);
        return c;
      },
      authorize: (c) =>
        scope.guard.authorize({ use: 'connect', protocol: this.driver.protocol, address: c.address, port: c.port }).then(
          (t) => t,
          (err: unknown) => toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED'),
        ),
    });
    this.#checks = checks;
    const timeout = options.timeout ?? 10_000;
    const controller = new AbortController();
    const timer = clock.setTimeout(() => controller.abort(new TapsError('ERR_TAPS_TIMEOUT', `no candidate pair was chosen within ${timeout} ms`)), timeout);
    const onAbort = (): void => controller.abort(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const pair = await checks.run(candidates, controller.signal);
      const channel = await this.#socket.connect(pair.target, looksLikeStun);
      this.report.winner = pair.record.id;
      this.report.endedAt = at(clock, this.#t0);
      this.#handedOver = true;
      return { channel, driver: this.driver, target: pair.target, report: this.report, lease: this.#lease };
    } catch (err) {
      checks.stop();
      checks.failUnanswered(controller.signal.aborted && isTapsError(controller.signal.reason) ? controller.signal.reason.message : 'the rendezvous ended');
      this.report.endedAt = at(clock, this.#t0);
      await this.close();
      throw failure(err, this.report, options.signal);
    } finally {
      clock.clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Release the socket and the lease (when no connection was made from them). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed || this.#handedOver) return;
    this.#closed = true;
    this.#checks?.stop();
    try {
      await this.#socket.close();
    } finally {
      this.#lease.release();
    }
  }
}

/** A unit of the tenant's `limit connections`, as initiate() takes it (QuotaExceededError over the limit). */
async function connectionLease(scope: NetworkScope): Promise<Lease> {
  try {
    const taken = scope.lease('connection');
    return taken instanceof Promise ? await taken : taken;
  } catch (err) {
    throw isTapsError(err) ? err : new TapsError('ERR_TAPS_QUOTA_EXCEEDED', String(err), { cause: err });
  }
}

const at = (clock: Clock, t0: number): number => Math.round((clock.now() - t0) * 1000) / 1000;

/** The first suitable stack (by rank) whose driver can open a peer socket. */
async function chooseDriver(input: SessionInput, record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord, report: SelectionReport): Promise<Driver> {
  const suitable: Driver[] = [];
  for (const driver of input.drivers) {
    if (typeof driver.openPeerSocket !== 'function') continue;
    const v = judgeStack(driver, { properties: input.properties, security: input.security, framerCount: input.framerCount, scheme: input.local.scheme });
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
  const ranked = rankStacks(suitable, { properties: input.properties, security: input.security, framerCount: input.framerCount });
  if (ranked.length === 0) {
    throw new EstablishmentError('ERR_TAPS_NO_CANDIDATES', 'no protocol stack can rendezvous with the requested properties (a datagram stack is needed: TransportProperties.unreliableDatagram(), security disabled)', report);
  }
  return ranked[0]!.driver;
}

/** The addresses a socket bound at `bound` can be reached at on this host. */
function hostCandidates(bound: SocketAddress, local: LocalEndpoint): LocalEndpoint[] {
  if (bound.address !== '0.0.0.0' && bound.address !== '::') return [LocalEndpoint.from({ ipAddress: bound.address, port: bound.port })];
  return localAddresses()
    .filter((a) => a.family === bound.family && !a.internal && !a.address.startsWith('fe80:') && (local.interface === undefined || a.interface === local.interface))
    .map((a) => LocalEndpoint.from({ ipAddress: a.address, port: bound.port, interface: a.interface }));
}

/** Sends the STUN server Binding requests and reads its answer; after gathering, hands datagrams on to the checks. */
class Gatherer {
  forward: ((data: Uint8Array, from: SocketAddress) => void) | undefined;
  readonly #socket: PeerSocket;
  readonly #stun: Stun;
  #waiting: { readonly transactions: Set<string>; readonly resolve: (a: { address: string; port: number }) => void } | undefined;

  constructor(socket: PeerSocket, stun: Stun) {
    this.#socket = socket;
    this.#stun = stun;
  }

  datagram(data: Uint8Array, from: SocketAddress): void {
    const w = this.#waiting;
    if (w !== undefined) {
      const msg = this.#stun.parse(data);
      if (msg?.kind === 'success' && msg.xorAddress !== undefined && w.transactions.has(msg.transaction)) {
        this.#waiting = undefined;
        w.resolve(msg.xorAddress);
        return;
      }
    }
    this.forward?.(data, from);
  }

  /** Ask the STUN server (every decision recorded); undefined when it is denied or does not answer in time. */
  async reflexive(input: SessionInput, server: RemoteEndpoint, driver: Driver, record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord, now: () => number): Promise<{ address: string; port: number } | undefined> {
    const { scope, clock } = input;
    const port = server.port!;
    const base = { driver: driver.id, stack: ['stun', ...driver.stack], hostName: server.hostName, port };
    let target: CheckedTarget;
    try {
      let address = server.ipAddress;
      if (address === undefined) {
        const name = await scope.guard.authorizeLookup(driver.protocol, server.hostName!);
        const answers = await scope.guard.resolve(name, 4, input.signal ?? new AbortController().signal);
        address = answers[0]?.address;
        if (address === undefined) throw new TapsError('ERR_TAPS_RESOLUTION_FAILED', `the STUN server ${server.hostName} has no IPv4 address`);
      }
      target = await scope.guard.authorize({ use: 'connect', protocol: driver.protocol, address, port, hostName: server.hostName });
    } catch (err) {
      const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
      record({ ...base, address: server.ipAddress, fate: e.code === 'ERR_TAPS_POLICY_PROHIBITED' ? 'denied' : 'failed', reason: `STUN server: ${e.message}`, code: e.code, error: e });
      return undefined;
    }
    const c = record({ ...base, address: target.address, family: target.family, fate: 'pending', decision: target.decision, reason: 'STUN server', startedAt: now(), endedAt: undefined });
    const transactions = new Set<string>();
    const answered = new Promise<{ address: string; port: number }>((resolve) => (this.#waiting = { transactions, resolve }));
    const send = (): void => {
      const { bytes, transaction } = this.#stun.request();
      transactions.add(transaction);
      this.#socket.sendTo(bytes, target, () => {});
    };
    let retry: unknown;
    const again = (): void => {
      send();
      retry = clock.setTimeout(again, STUN_RETRY_MS);
    };
    again();
    const limit = input.stunTimeout ?? 3_000;
    let expire: unknown;
    const expired = new Promise<undefined>((resolve) => (expire = clock.setTimeout(() => resolve(undefined), limit)));
    const result = await Promise.race([answered, expired]);
    clock.clearTimeout(retry);
    clock.clearTimeout(expire);
    this.#waiting = undefined;
    if (result === undefined) Object.assign(c, { fate: 'failed', endedAt: now(), reason: `STUN server: no answer within ${limit} ms`, code: 'ERR_TAPS_TIMEOUT' });
    else Object.assign(c, { fate: 'won', endedAt: now(), reason: `STUN server: this socket is ${result.address}:${result.port} from outside` });
    return result;
  }
}

/** The error a failed rendezvous ends with: the caller's abort, a denial of every candidate, or no answer. */
function failure(err: unknown, report: SelectionReport, signal: AbortSignal | undefined): Error {
  if (err instanceof EstablishmentError || err instanceof TypeError) return err;
  if (signal?.aborted) {
    const code = abortCode(signal.reason);
    return new EstablishmentError(code, `rendezvous ${code === 'ERR_TAPS_TIMEOUT' ? 'timed out' : 'aborted by the caller'}`, report, { cause: signal.reason });
  }
  const pairs = report.candidates.filter((c) => /^(remote|peer-reflexive) candidate/.test(c.reason ?? ''));
  if (pairs.length > 0 && pairs.every((c) => c.fate === 'denied')) {
    return new EstablishmentError('ERR_TAPS_POLICY_PROHIBITED', `every remote candidate was denied by the tenant's policy: ${pairs[0]!.reason}`, report, { cause: err });
  }
  const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
  return new EstablishmentError(e.code === 'ERR_TAPS_TIMEOUT' ? 'ERR_TAPS_TIMEOUT' : 'ERR_TAPS_ESTABLISHMENT_FAILED', `rendezvous failed: ${e.message}`, report, { cause: e });
}
