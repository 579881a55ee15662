/**
 * Binding a listener's stacks: the passive-open counterpart of pipeline.ts (RFC 9622 §7.2, RFC 9623 §4.7).
 *
 * 1. Gather and judge the drivers that can listen (gather.ts), rank them (rank.ts).
 * 2. Where to bind: the local IP, each address a local name resolves to (after the tenant's `lookup`
 *    grant), a multicast group, or every interface (`::`).
 * 3. Each (stack, address) is authorized as a `bind` at the port it will use, then bound. A stack the
 *    policy denies is left out (recorded `denied`); that is the tenant's choice, not a failure.
 *
 * `stacks: 'all'` (the default) binds every stack the properties, security and policy allow, on one
 * port number (stacks that share one listener, such as QUIC with and without datagrams, once: the best
 * ranked of them binds, and its listener accepts the others' connections): with port 0 the first bind picks it and every further bind takes the same number, and
 * when that number is taken for another protocol everything is released and tried again on a new one
 * (a few times). So a TLS client (TCP) and a QUIC client (UDP) both reach the same `host:port`. A stack
 * that cannot bind makes the whole bind fail and releases whatever was bound, unless the caller passed
 * `allowPartialBind: true`. `stacks: 'best'` binds the best-ranked stack that binds; one that is denied
 * or fails hands over to the next.
 *
 * Every bind is a candidate in the report: `won` (bound, with its port), `denied`, `failed` (the error),
 * `cancelled` (bound, then released: why), `skipped` (never tried: why).
 *
 * @example
 * const { report, bound, lease } = await bindStacks({ scope, local, properties, security, framerCount: 1, drivers, ... });
 */
import { NEVER_ABORTED, type Driver, type DriverListener } from '../driver.js';
import type { LocalEndpoint, RemoteEndpoint } from '../endpoints.js';
import { EstablishmentError, abortCode, toTapsError } from '../errors.js';
import type { CheckedTarget, Lease, NetworkScope } from '../policy/chokepoint.js';
import type { PolicyDecision } from '../policy/types.js';
import type { TransportProperties } from '../properties.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import type { SecurityParameters } from '../security.js';
import { planPaths } from '../paths/constraints.js';
import { gatherStacks, type LateAnswer } from './gather.js';
import { socketGrant } from '../policy/admission.js';
import { grantLookups } from './lookup.js';
import { rankStacks, type RankedStack } from './rank.js';

/** How many port numbers a port-0 listener tries before giving up on one number free for every protocol. */
export const PORT_TRIES = 4;

export interface BindInput {
  readonly scope: NetworkScope;
  readonly local: LocalEndpoint;
  readonly remote?: RemoteEndpoint | undefined;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framerCount: number;
  readonly drivers: readonly Driver[];
  readonly driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly stacks: 'all' | 'best';
  readonly allowPartialBind: boolean;
  readonly signal?: AbortSignal | undefined;
}

/** One bound listening socket, its stack and its record in the report. */
export interface Bound {
  readonly driver: Driver;
  readonly listener: DriverListener;
  readonly target: CheckedTarget;
  readonly record: CandidateRecord;
}

export interface BindResult {
  readonly report: SelectionReport;
  /** Best-ranked first. */
  readonly bound: readonly Bound[];
  /** One unit of the tenant's `listeners` quota, held by the listener until it stops. */
  readonly lease: Lease;
}

/** Thrown inside a try when a port-0 number turned out to be taken for another protocol: try a new number. */
class PortTaken extends Error {}

/** Bind the stacks of a passive open; rejects with an EstablishmentError (and nothing left bound) when it cannot. */
export async function bindStacks(input: BindInput): Promise<BindResult> {
  const { scope, local } = input;
  const t0 = performance.now();
  const at = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
  const report: SelectionReport = {
    startedAt: Date.now(),
    tenant: scope.tenant,
    remote: `listen ${describeLocal(local)}`,
    racing: 'simultaneous',
    attemptDelay: 0,
    resolutions: [],
    candidates: [],
    winner: undefined,
    endedAt: undefined,
  };
  let n = 1;
  const record = (r: Omit<CandidateRecord, 'id'>): CandidateRecord => {
    const c: CandidateRecord = { id: `c${n++}`, ...r };
    report.candidates.push(c);
    return c;
  };
  const fail = (code: ConstructorParameters<typeof EstablishmentError>[0], message: string, cause?: unknown): EstablishmentError => {
    report.endedAt = at();
    // A finished report has no pending candidate: a bind cut off by the failure was cancelled.
    for (const c of report.candidates) if (c.fate === 'pending') Object.assign(c, { fate: 'cancelled', endedAt: report.endedAt, reason: `cut off: ${message}` });
    return new EstablishmentError(code, message, report, cause === undefined ? {} : { cause });
  };

  // A driver still loading (QUIC's native module) is awaited, and one not loaded yet asked, only when its turn
  // to bind comes, after the policy allowed the bind: a listener whose policy leaves QUIC out never waits for it.
  const loading = new Map<Driver, LateAnswer>();
  const gathered = gatherStacks(
    input.drivers,
    { properties: input.properties, security: input.security, framerCount: input.framerCount, scheme: local.scheme ?? input.remote?.scheme, multicast: local.multicastGroup !== undefined },
    (driver, fate, reason) => void record({ driver: driver.id, stack: driver.stack, fate, reason }),
    { listening: true, late: (driver, answer) => void loading.set(driver, answer) },
  );
  const suitable = gathered instanceof Promise ? await gathered : gathered;
  const ranked = rankStacks(suitable, { properties: input.properties, security: input.security, framerCount: input.framerCount });
  if (ranked.length === 0) throw fail('ERR_TAPS_NO_CANDIDATES', `no protocol stack can listen with the requested properties on ${report.remote}`);

  // The tenant's listener quota: taken before any lookup or bind.
  const taken = scope.lease('listener');
  const lease = taken instanceof Promise ? await taken : taken;
  try {
    const { addresses, bindable } = await bindAddresses(input, ranked, record, report, at);
    if (bindable.length === 0) throw fail('ERR_TAPS_POLICY_PROHIBITED', `could not listen on ${report.remote}: the tenant may not look up ${local.hostName}`);
    if (addresses.length === 0) throw fail('ERR_TAPS_RESOLUTION_FAILED', `could not listen on ${report.remote}: the local name ${local.hostName} resolved to no address`);
    const bound = await bindEvery(input, bindable, addresses, record, at, fail, loading, lease);
    report.winner = bound[0]!.record.id;
    report.endedAt = at();
    return { report, bound, lease };
  } catch (err) {
    lease.release();
    if (err instanceof EstablishmentError) throw err;
    throw fail('ERR_TAPS_ESTABLISHMENT_FAILED', `could not listen on ${report.remote}: ${(err as Error)?.message ?? String(err)}`, err);
  }
}

/** The bind loop, retried on a new port number when a port-0 number is taken for another protocol. */
async function bindEvery(
  input: BindInput,
  stacks: readonly RankedStack[],
  addresses: readonly string[],
  record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord,
  at: () => number,
  fail: (code: 'ERR_TAPS_ESTABLISHMENT_FAILED' | 'ERR_TAPS_POLICY_PROHIBITED' | 'ERR_TAPS_ABORTED' | 'ERR_TAPS_TIMEOUT', message: string, cause?: unknown) => EstablishmentError,
  loading: ReadonlyMap<Driver, LateAnswer>,
  lease: Lease,
): Promise<Bound[]> {
  const signal = input.signal ?? NEVER_ABORTED;
  const place = describeLocal(input.local);
  const bound: Bound[] = [];
  const release = async (reason: string): Promise<void> => {
    const gone = bound.splice(0);
    await Promise.allSettled(gone.map((b) => b.listener.close()));
    for (const b of gone) Object.assign(b.record, { fate: 'cancelled', endedAt: at(), reason });
  };
  for (let attempt = 1; ; attempt++) {
    const pass: BindPass = { input, record, at, signal, attempt, bound, failures: [], port: input.local.port ?? 0, loading, lease };
    const { failures } = pass;
    try {
      for (const [i, s] of stacks.entries()) {
        if (input.stacks === 'best' && bound.length > 0) {
          for (const rest of stacks.slice(i)) {
            record({ driver: rest.driver.id, stack: rest.driver.stack, fate: 'skipped', reason: `not bound: ${bound[0]!.driver.id} ranks higher and was bound (stacks: 'best')` });
          }
          break;
        }
        const sharing = s.driver.sharedListener === undefined ? undefined : bound.find((b) => b.driver.sharedListener === s.driver.sharedListener);
        if (sharing !== undefined) {
          record({ driver: s.driver.id, stack: s.driver.stack, fate: 'skipped', reason: `not bound: the ${sharing.driver.id} listener accepts ${s.driver.id} connections on its own socket (shared listener ${s.driver.sharedListener})` });
          continue;
        }
        await bindStack(pass, s, addresses);
      }
    } catch (err) {
      if (err instanceof PortTaken) {
        await release(`released: port ${pass.port} is taken for another protocol; trying another number (${attempt} of ${PORT_TRIES})`);
        continue;
      }
      if (signal.aborted) {
        await release('released: listen() was aborted');
        const code = abortCode(signal.reason);
        throw fail(code, `listen on ${place} ${code === 'ERR_TAPS_TIMEOUT' ? 'timed out' : 'was aborted'}`, signal.reason);
      }
      const failed = failures.at(-1);
      if (failed === undefined) throw err;
      await release(`released: ${failed.driver} could not bind, and a partial bind was not accepted`);
      throw fail(
        'ERR_TAPS_ESTABLISHMENT_FAILED',
        `could not listen on ${place}: ${failed.id} ${failed.driver} ${failed.address}:${failed.port} failed: ${failed.reason} ` +
          `(nothing is left bound; listen({ allowPartialBind: true }) keeps the stacks that did bind)`,
        failed.error,
      );
    }
    if (bound.length > 0) return bound;
    const denied = stacks.length > 0 && failures.length === 0;
    throw fail(
      denied ? 'ERR_TAPS_POLICY_PROHIBITED' : 'ERR_TAPS_ESTABLISHMENT_FAILED',
      denied
        ? `could not listen on ${place}: the tenant's policy allows no bind of any suitable stack`
        : `could not listen on ${place}: ${failures.map((c) => `${c.id} ${c.driver} ${c.address}:${c.port}: ${c.reason}`).join('; ')}`,
      failures[0]?.error,
    );
  }
}

/** One pass of the bind loop over the ranked stacks, on one port number. */
interface BindPass {
  readonly input: BindInput;
  /** The Listener's unit: each bound socket counts under it (a grant per bind), not under one of its own. */
  readonly lease: Lease;
  readonly record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord;
  readonly at: () => number;
  readonly signal: AbortSignal;
  /** 1 for the first pass; a port-0 bind is retried on a new number up to PORT_TRIES passes. */
  readonly attempt: number;
  /** Everything bound so far, across stacks. */
  readonly bound: Bound[];
  /** This pass's failed binds. */
  readonly failures: CandidateRecord[];
  /** The port number of this pass: the requested one, or the first one the OS picked for port 0. */
  port: number;
  /** The pending availability of drivers still loading. */
  readonly loading: ReadonlyMap<Driver, LateAnswer>;
}

/**
 * Bind one stack on every address, each decided by the tenant's policy first (a denied address is recorded
 * and skipped). Throws PortTaken when the number the OS picked for port 0 is taken for this protocol, and a
 * failed bind's error unless partial binds are accepted; with stacks 'best', a stack that could not bind
 * every address releases what it bound and leaves the next stack to try.
 */
async function bindStack(pass: BindPass, s: RankedStack, addresses: readonly string[]): Promise<void> {
  const { input, record, at, signal, bound, failures } = pass;
  const { scope, local } = input;
  const ofStack: Bound[] = [];
  for (const address of addresses) {
    const family: 4 | 6 = address.includes(':') ? 6 : 4;
    const base = { driver: s.driver.id, stack: s.driver.stack, address, family, port: pass.port };
    let target: CheckedTarget;
    try {
      target = await scope.guard.authorize({ use: 'bind', protocol: s.driver.protocol, address, port: pass.port });
    } catch (err) {
      const e = toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED');
      const decision = (e as { decision?: PolicyDecision }).decision;
      record({ ...base, fate: 'denied', reason: e.message, code: decision && !decision.allow ? decision.code : e.code, decision, error: e });
      continue;
    }
    signal.throwIfAborted();
    const answer = pass.loading.get(s.driver);
    if (answer !== undefined) {
      const a = await (typeof answer === 'function' ? answer() : answer);
      signal.throwIfAborted();
      if (!a.available) {
        record({ driver: s.driver.id, stack: s.driver.stack, fate: 'unavailable', reason: a.reason });
        return;
      }
    }
    const c = record({ ...base, fate: 'pending', decision: target.decision, startedAt: at(), endedAt: undefined });
    try {
      const listener = await scope.network.listen(s.driver, {
        signal, target, local, security: input.security, properties: input.properties, options: input.driverOptions[s.driver.id] ?? {}, guard: scope.guard,
        unit: socketGrant(scope, pass.lease, 'listener'),
      });
      Object.assign(c, { fate: 'won', port: listener.local.port, endedAt: at(), reason: 'bound' });
      const b = { driver: s.driver, listener, target, record: c };
      bound.push(b);
      ofStack.push(b);
      if (pass.port === 0) pass.port = listener.local.port; // every further bind shares the first number
      if (signal.aborted) signal.throwIfAborted();
    } catch (err) {
      if (signal.aborted) {
        Object.assign(c, { fate: 'cancelled', endedAt: at(), reason: 'listen() was aborted while this stack was binding' });
        throw signal.reason;
      }
      const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
      Object.assign(c, { fate: 'failed', endedAt: at(), reason: e.message, code: e.code, error: e });
      failures.push(c);
      if ((local.port ?? 0) === 0 && bound.length > 0 && isAddressInUse(err) && pass.attempt < PORT_TRIES) throw new PortTaken();
      if (input.stacks === 'best') {
        // This stack is out: release what it bound and let the next one try.
        for (const b of ofStack) {
          bound.splice(bound.indexOf(b), 1);
          await b.listener.close().catch(() => {});
          Object.assign(b.record, { fate: 'cancelled', endedAt: at(), reason: `released: ${s.driver.id} could not bind every address` });
        }
        return;
      }
      if (!input.allowPartialBind) throw e;
    }
  }
}

/** EADDRINUSE anywhere in the cause chain (drivers wrap the OS error). */
function isAddressInUse(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'EADDRINUSE') return true;
    if (/EADDRINUSE/.test((e as Error).message ?? '')) return true;
  }
  return false;
}

/** `127.0.0.1:0`, `[::]:4433`, `localhost:0`, `group 239.1.2.3 from 192.0.2.9:5000`. */
function describeLocal(local: LocalEndpoint): string {
  const group = local.multicastGroup === undefined ? undefined : `group ${local.multicastGroup}${local.multicastSource === undefined ? '' : ` from ${local.multicastSource}`}`;
  const host = group ?? (local.ipAddress?.includes(':') ? `[${local.ipAddress}]` : local.ipAddress) ?? local.hostName ?? '[::]';
  return `${host}:${local.port ?? 0}`;
}

/**
 * Every interface (`::`), or — when the local endpoint names an interface or the `interface`/`pvd` properties
 * constrain the path — the addresses of the allowed interfaces (link-local ones left out: a listener's bind
 * has no zone). An impossible constraint fails before any bind, naming the interface.
 */
function pathAddresses(input: BindInput, report: SelectionReport): string[] {
  let plan;
  try {
    plan = planPaths(input.properties, input.local);
  } catch (err) {
    throw new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', (err as Error).message, report, { cause: err });
  }
  if (plan.any) return ['::'];
  const addresses = plan.paths.flatMap((p) => p.addresses.filter((a) => !a.address.startsWith('fe80:')).map((a) => a.address));
  if (addresses.length === 0) throw new EstablishmentError('ERR_TAPS_PATH_UNAVAILABLE', `no address to listen on: ${plan.paths.map((p) => p.interface).join(', ')} carry only link-local addresses`, report);
  return addresses;
}

/**
 * Where to bind: the local IP, each address a local name resolves to, a multicast group, or every interface.
 * A local name is a lookup like any other: the tenant needs the `lookup` grant for each stack's protocol (a
 * stack without it is recorded denied and binds nothing), and the guard resolves the checked name.
 */
async function bindAddresses(
  input: BindInput,
  stacks: readonly RankedStack[],
  record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord,
  report: SelectionReport,
  at: () => number,
): Promise<{ addresses: string[]; bindable: readonly RankedStack[] }> {
  const { local, scope } = input;
  // A group listener binds the group itself (it then receives only that group's datagrams) and joins it:
  // the `bind` decision on the group's address and port is the tenant's grant to join (RFC 9622 §6.1.1).
  if (local.multicastGroup !== undefined) return { addresses: [local.multicastGroup], bindable: stacks };
  if (local.ipAddress !== undefined) return { addresses: [local.ipAddress], bindable: stacks };
  const host = local.hostName;
  if (host === undefined) return { addresses: pathAddresses(input, report), bindable: stacks };
  const { name, allowed: bindable } = await grantLookups(scope.guard, host, stacks, record);
  if (name === undefined) return { addresses: [], bindable }; // every lookup denied (recorded): nothing to bind
  const signal = input.signal ?? NEVER_ABORTED;
  const addresses: string[] = [];
  for (const family of [6, 4] as const) {
    const r: SelectionReport['resolutions'][number] = { host, family, startedAt: at() };
    report.resolutions.push(r);
    try {
      const answer = await scope.guard.resolve(name, family, signal);
      Object.assign(r, { endedAt: at(), addresses: answer.map((a) => a.address) });
      for (const a of answer) addresses.push(a.address);
    } catch (err) {
      Object.assign(r, { endedAt: at(), error: (err as Error)?.message ?? String(err) }); // a missing family is fine
    }
  }
  return { addresses, bindable };
}
