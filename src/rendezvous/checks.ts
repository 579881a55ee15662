/**
 * Connectivity checks between two peers (RFC 9622 §7.3, after ICE, RFC 8445
 * §7, with aggressive nomination): both peers send STUN Binding requests
 * from one socket to every remote candidate the tenant's policy allowed,
 * paced one round every `interval` ms, and answer the other's requests — the
 * simultaneous send that opens both NATs. A request from an address that is
 * no candidate is a peer-reflexive candidate: it is answered only if the
 * policy allows that address too.
 *
 * Roles: both start controlling, each with a random 64-bit tie-breaker in its
 * requests; the larger stays controlling (RFC 8445 §7.3.1.1: a conflict is
 * resolved by the tie-breakers, the loser told with a 487). The controlling
 * peer nominates the first pair that answered (USE-CANDIDATE) and is done when
 * that nomination is answered; the controlled peer is done when a nomination
 * arrives on a pair its own check also got an answer on (both directions
 * work). So both settle on the same pair. After that, the checks stop and the
 * peer's late requests are still answered.
 *
 * Every pair is a CandidateRecord in the caller's report: `denied` (with the
 * decision), `won`, `failed` (no answer), `cancelled` (another pair won).
 *
 * @example
 * const checks = new Checks({ socket, stun, clock, interval: 50, authorize, record });
 * const pair = await checks.run(remoteCandidates, signal);
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { PeerSocket, SocketAddress } from '../driver.js';
import { TapsError, isTapsError } from '../errors.js';
import type { CheckedTarget } from '../policy/chokepoint.js';
import type { CandidateRecord } from '../report.js';
import type { Stun, StunMessage } from './stun.js';

/** A remote candidate: an address and port the peer may be reached at. */
export interface Candidate {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** A candidate pair (this socket × one remote candidate) and its state. */
export interface Pair {
  readonly remote: Candidate;
  readonly target: CheckedTarget;
  readonly record: CandidateRecord;
  /** An answer to one of our requests came back from this remote. */
  succeeded: boolean;
  /** The controlling peer nominated this pair (USE-CANDIDATE); chosen once it also succeeded here. */
  nominated: boolean;
  checks: number;
}

export interface ChecksInit {
  readonly socket: PeerSocket;
  readonly stun: Stun;
  readonly clock: Clock;
  /** Milliseconds between rounds of checks (RFC 8445's Ta: 50 ms). */
  readonly interval: number;
  /** The tenant's verdict on one remote candidate: a connect target, or the denial. */
  readonly authorize: (c: Candidate) => Promise<CheckedTarget | TapsError>;
  /** Add a record to the report. */
  readonly record: (r: Omit<CandidateRecord, 'id'>) => CandidateRecord;
  /** Milliseconds since the report began. */
  readonly at: () => number;
}

const key = (a: { address: string; port: number }): string => `${a.address}|${a.port}`;

export class Checks {
  readonly #init: ChecksInit;
  readonly #pairs = new Map<string, Pair>();
  /** Sources decided (allowed or not) or being decided, so each address is put to the policy once. */
  readonly #decided = new Map<string, Promise<Pair | undefined>>();
  readonly #sent = new Map<string, { readonly pair: Pair; readonly nominate: boolean }>();
  readonly #tieBreaker = randomBytes(8).readBigUInt64BE();
  #role: 'controlling' | 'controlled' = 'controlling';
  #timer: unknown;
  #chosen: Pair | undefined;
  #settle: ((pair: Pair) => void) | undefined;

  constructor(init: ChecksInit) {
    this.#init = init;
  }

  /** The pair both peers settled on, once there is one. */
  get chosen(): Pair | undefined {
    return this.#chosen;
  }

  get role(): 'controlling' | 'controlled' {
    return this.#role;
  }

  /**
   * Put every remote candidate to the policy, then check the allowed ones until a pair is chosen. Rejects with
   * the first denial when every candidate was denied (no datagram is sent), and with the signal's reason on abort.
   */
  async run(remotes: readonly Candidate[], signal: AbortSignal): Promise<Pair> {
    signal.throwIfAborted();
    const decided = await Promise.all(remotes.map((r) => this.#decide(r, 'remote candidate')));
    if (decided.every((p) => p === undefined)) {
      const denial = this.#firstDenial;
      throw denial ?? new TapsError('ERR_TAPS_NO_CANDIDATES', 'no remote candidate to check');
    }
    signal.throwIfAborted();
    return new Promise<Pair>((resolve, reject) => {
      const onAbort = (): void => {
        this.stop();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#settle = (pair) => {
        signal.removeEventListener('abort', onAbort);
        resolve(pair);
      };
      this.#round();
    });
  }

  /** Stop checking (answers to the peer's requests go on while the socket lives). */
  stop(): void {
    if (this.#timer !== undefined) this.#init.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#settle = undefined;
  }

  /** Every pair, in the order they were made. */
  get pairs(): readonly Pair[] {
    return [...this.#pairs.values()];
  }

  #firstDenial: TapsError | undefined;

  #decide(c: Candidate, kind: string): Promise<Pair | undefined> {
    const k = key(c);
    let p = this.#decided.get(k);
    if (p !== undefined) return p;
    p = this.#init.authorize(c).then((v) => {
      const base = { driver: 'udp', stack: ['udp'] as const, address: c.address, family: c.family, port: c.port };
      if (isTapsError(v)) {
        const decision = (v as { decision?: CandidateRecord['decision'] }).decision;
        this.#firstDenial ??= v;
        this.#init.record({ ...base, fate: 'denied', reason: `${kind}: ${v.message}`, code: decision && !decision.allow ? decision.code : v.code, decision, error: v });
        return undefined;
      }
      const record = this.#init.record({ ...base, fate: 'pending', decision: v.decision, reason: kind, startedAt: this.#init.at(), endedAt: undefined });
      const pair: Pair = { remote: c, target: v, record, succeeded: false, nominated: false, checks: 0 };
      this.#pairs.set(k, pair);
      return pair;
    });
    this.#decided.set(k, p);
    return p;
  }

  /** One round: a check to every pair not yet answered, a nomination on the first that was (controlling). */
  #round = (): void => {
    this.#timer = undefined;
    if (this.#settle === undefined) return;
    const answered = [...this.#pairs.values()].find((p) => p.succeeded);
    if (answered !== undefined && this.#role === 'controlling') this.#check(answered, true);
    for (const pair of this.#pairs.values()) if (!pair.succeeded) this.#check(pair, false);
    this.#timer = this.#init.clock.setTimeout(this.#round, this.#init.interval);
  };

  #check(pair: Pair, nominate: boolean): void {
    const { bytes, transaction } = this.#init.stun.request({
      priority: 0x7e0000ff, role: this.#role, tieBreaker: this.#tieBreaker, useCandidate: nominate,
    });
    this.#sent.set(transaction, { pair, nominate });
    pair.checks++;
    this.#init.socket.sendTo(bytes, pair.target, () => {});
  }

  /** A datagram on the socket: the peer's request, or an answer to ours. Anything else is dropped. */
  datagram(data: Uint8Array, from: SocketAddress): void {
    const msg = this.#init.stun.parse(data);
    if (msg === undefined) return;
    if (msg.kind === 'request') void this.#request(msg, from);
    else if (msg.kind === 'success' || msg.kind === 'error') this.#answer(msg, from);
  }

  #answer(msg: StunMessage, from: SocketAddress): void {
    const sent = this.#sent.get(msg.transaction);
    if (sent === undefined || key(sent.pair.remote) !== key(from)) return; // not ours, or not from where we sent it
    this.#sent.delete(msg.transaction);
    if (msg.kind === 'error') {
      if (msg.errorCode === 487) this.#role = this.#role === 'controlling' ? 'controlled' : 'controlling';
      return;
    }
    sent.pair.succeeded = true;
    if (sent.nominate || (sent.pair.nominated && this.#role === 'controlled')) this.#choose(sent.pair);
    else if (this.#role === 'controlling' && this.#chosen === undefined) this.#check(sent.pair, true); // nominate at once
  }

  async #request(msg: StunMessage, from: SocketAddress): Promise<void> {
    const c: Candidate = { address: from.address, port: from.port, family: from.family };
    const pair = this.#pairs.get(key(c)) ?? (this.#chosen === undefined ? await this.#decide(c, 'peer-reflexive candidate') : undefined);
    if (pair === undefined) return; // the policy does not allow answering this address: not a datagram goes to it
    if (!this.#resolveRole(msg)) {
      this.#init.socket.sendTo(this.#init.stun.roleConflict(msg.transaction), pair.target, () => {});
      return;
    }
    this.#init.socket.sendTo(this.#init.stun.success(msg.transaction, from.address, from.port), pair.target, () => {});
    if (this.#chosen !== undefined) return;
    if (msg.useCandidate && this.#role === 'controlled') pair.nominated = true;
    // A nominated pair is chosen once a check of this side's own came back on it too (RFC 8445 §7.3.1.5).
    if (pair.nominated && pair.succeeded) this.#choose(pair);
    else if (!pair.succeeded && this.#settle !== undefined) this.#check(pair, false); // a triggered check (RFC 8445 §7.3.1.4)
  }

  /** RFC 8445 §7.3.1.1: true to answer the request, false to answer 487 (this side keeps its role). */
  #resolveRole(msg: StunMessage): boolean {
    if (this.#role === 'controlling' && msg.controlling !== undefined) {
      if (this.#tieBreaker >= msg.controlling) return false;
      this.#role = 'controlled';
    } else if (this.#role === 'controlled' && msg.controlled !== undefined) {
      if (this.#tieBreaker < msg.controlled) return false;
      this.#role = 'controlling';
    }
    return true;
  }

  #choose(pair: Pair): void {
    if (this.#chosen !== undefined) return;
    this.#chosen = pair;
    const settle = this.#settle;
    this.stop();
    const now = this.#init.at();
    Object.assign(pair.record, { fate: 'won', endedAt: now, reason: `${pair.record.reason}: answered after ${pair.checks} check(s); chosen as ${this.#role}` });
    for (const p of this.#pairs.values()) {
      if (p !== pair && p.record.fate === 'pending') Object.assign(p.record, { fate: 'cancelled', endedAt: now, reason: `${p.record.reason}: another pair was chosen` });
    }
    settle?.(pair);
  }

  /** Mark the pairs that never got an answer as failed (the checks ran out of time). */
  failUnanswered(why: string): void {
    const now = this.#init.at();
    for (const p of this.#pairs.values()) {
      if (p.record.fate === 'pending') Object.assign(p.record, { fate: 'failed', endedAt: now, reason: `${p.record.reason}: ${why} (${p.checks} check(s) sent${p.succeeded ? ', answered, never nominated' : ', no answer'})`, code: 'ERR_TAPS_TIMEOUT' });
    }
  }
}
