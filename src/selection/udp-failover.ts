/**
 * UDP to a name with several addresses: move on when the first one is unreachable (RFC 9623 §4.2.1).
 *
 * A connected UDP socket is "established" as soon as it has a route and a port (RFC 9623 §4.2), so the
 * race picks the first address before anything was heard from it. When the network then says that
 * address is unreachable — an ICMP port, host or net unreachable, reported on the connected socket as
 * ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, … — before any datagram arrived from it, the connection moves
 * to the next address of the same stack that the selection had ranked but not started, exactly as the
 * race would have: that candidate's target was already checked by the tenant's policy, and it is
 * recorded in the report as a new candidate (the old one `failed`, with the ICMP error). The datagrams
 * sent so far are sent again on the new path (a UDP selection requires `safelyReplayable`, so a repeat is
 * allowed), and sends made while moving wait for it. Once a datagram has arrived, or when no address is
 * left, ICMP errors are soft errors as before (RFC 9622 §8.3.1).
 *
 * The candidates are the addresses known when the race was won, and those of a lookup that answers within
 * the resolution delay after it: the race waits that long for them before handing a UDP winner over
 * (run-race.ts), and checks them with the policy like any candidate. An answer later still is cancelled.
 *
 * @example
 * const channel = fallbacks.length > 0 ? new UdpFailoverChannel(selected.channel, fallbacks, hooks) : selected.channel;
 */
import type { ChannelReceiveMeta, ChannelReceiver, ChannelSendMeta, Framing, SocketAddress, TransportChannel } from '../driver.js';
import { TapsError, toTapsError } from '../errors.js';
import type { CheckedTarget } from '../policy/contract.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import { meteringOf, selfMetered } from '../policy/self-metered.js';

/** ICMP errors that say the address cannot be reached at all (EMSGSIZE, also an ICMP report, is not one). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN']);

/** How many datagrams sent before the move are kept to send again (and at most this many bytes). */
export const REPLAY_LIMIT = 16;
export const REPLAY_BYTES = 64 * 1024;

/** A ranked, checked, never started candidate of the winning stack. */
export interface Fallback {
  /** Its record in the report (fate `skipped` once the selection ended). */
  readonly record: CandidateRecord;
  /** Connect it: the driver's attempt on its checked target. */
  readonly attempt: (signal: AbortSignal) => Promise<{ readonly channel: TransportChannel; readonly target: CheckedTarget }>;
}

export interface FailoverHooks {
  readonly report: SelectionReport;
  /** Milliseconds since the report began. */
  readonly now: () => number;
  /** The connection now serves this target (the lease re-decides it on a policy reload). */
  readonly moved?: ((target: CheckedTarget) => void) | undefined;
}

/** The OS error code in an error's cause chain, if any. */
function osCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && !code.startsWith('ERR_TAPS_')) return code;
  }
  return undefined;
}

/** A UDP channel that moves to the next address on an ICMP unreachable before any datagram arrived. */
export class UdpFailoverChannel implements TransportChannel {
  #current: TransportChannel;
  #currentRecord: CandidateRecord;
  readonly #fallbacks: Fallback[];
  readonly #hooks: FailoverHooks;
  #receiver: ChannelReceiver | undefined;
  /** A datagram arrived: the path works, ICMP errors are soft from now on. */
  #heard = false;
  #paused = false;
  #closed = false;
  /** Datagrams sent on the current path, to send again after a move. */
  #sent: Uint8Array[] = [];
  #sentBytes = 0;
  /** Sends made while moving: they go out on the new path. */
  #waiting: { data: Uint8Array; meta: ChannelSendMeta; done: (err?: Error) => void }[] | undefined;
  readonly #abort = new AbortController();

  constructor(channel: TransportChannel, winner: CandidateRecord, fallbacks: readonly Fallback[], hooks: FailoverHooks) {
    this.#current = channel;
    // Every path of one stack and scope counts alike: the first's word is the library's for all (or none).
    selfMetered(this, meteringOf(channel).metered, false);
    this.#currentRecord = winner;
    this.#fallbacks = [...fallbacks];
    this.#hooks = hooks;
  }

  get framing(): Framing {
    return this.#current.framing;
  }
  get local(): SocketAddress {
    return this.#current.local;
  }
  get remote(): SocketAddress {
    return this.#current.remote;
  }
  get maxMessageSize(): number {
    return this.#current.maxMessageSize;
  }
  get singularTransmissionMsgMaxLen(): number | undefined {
    return this.#current.singularTransmissionMsgMaxLen;
  }
  get info(): Readonly<Record<string, unknown>> {
    return this.#current.info;
  }
  /** Whether the path charges the tenant's budget itself (every path of one stack and scope does alike). */
  get metered(): boolean {
    return meteringOf(this).metered;
  }

  start(receiver: ChannelReceiver): void {
    this.#receiver = receiver;
    this.#attach(this.#current);
  }

  /** Listen to one channel; events of a channel that was left behind are ignored. */
  #attach(channel: TransportChannel): void {
    const mine = (): boolean => channel === this.#current;
    const r = (): ChannelReceiver => this.#receiver!;
    channel.start({
      data: (chunk: Uint8Array, meta?: ChannelReceiveMeta) => {
        if (!mine()) return;
        this.#heard = true;
        this.#sent = [];
        r().data(chunk, meta);
      },
      end: () => void (mine() && r().end()),
      drain: () => void (mine() && r().drain()),
      closed: (error?: Error) => void (mine() && r().closed(error)),
      softError: (error: Error) => {
        if (!mine()) return;
        if (!this.#heard && !this.#closed && this.#fallbacks.length > 0 && UNREACHABLE.has(osCode(error) ?? '')) void this.#move(error);
        else r().softError?.(error);
      },
    });
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    if (this.#waiting !== undefined) {
      this.#waiting.push({ data, meta, done });
      return true;
    }
    if (!this.#heard && this.#sent.length < REPLAY_LIMIT && this.#sentBytes + data.length <= REPLAY_BYTES) {
      this.#sent.push(data);
      this.#sentBytes += data.length;
    }
    return this.#current.send(data, meta, done);
  }

  /** Leave the unreachable path for the next fallback that connects; the first error goes to the app if none does. */
  async #move(error: Error): Promise<void> {
    if (this.#waiting !== undefined) return; // already moving
    this.#waiting = [];
    const { report, now } = this.#hooks;
    const code = osCode(error);
    const left = this.#currentRecord;
    const replay = this.#sent;
    let next: Fallback | undefined;
    while ((next = this.#fallbacks.shift()) !== undefined && !this.#closed) {
      const f = next.record;
      const record: CandidateRecord = {
        id: `c${report.candidates.length + 1}`, driver: f.driver, stack: f.stack, hostName: f.hostName, address: f.address, family: f.family, port: f.port,
        fate: 'pending', decision: f.decision, reason: `${left.id} was unreachable (${code}) before any datagram arrived; next address`, startedAt: now(), endedAt: undefined,
      };
      report.candidates.push(record);
      try {
        const { channel, target } = await next.attempt(this.#abort.signal);
        if (this.#closed) {
          channel.abort();
          Object.assign(record, { fate: 'cancelled', endedAt: now(), reason: 'the connection closed while moving' });
          break;
        }
        const old = this.#current;
        this.#current = channel;
        Object.assign(left, { fate: 'failed', endedAt: now(), reason: `unreachable before any datagram arrived (${code}): moved to ${record.id}`, code: 'ERR_TAPS_ESTABLISHMENT_FAILED', error: toTapsError(error, 'ERR_TAPS_ESTABLISHMENT_FAILED') });
        Object.assign(record, { fate: 'won', endedAt: now() });
        report.winner = record.id;
        this.#currentRecord = record;
        this.#hooks.moved?.(target);
        old.abort(new TapsError('ERR_TAPS_ABORTED', `moved to ${record.address}`));
        this.#attach(channel);
        if (this.#paused) channel.pause();
        this.#sent = [];
        this.#sentBytes = 0;
        const waiting = this.#waiting ?? [];
        this.#waiting = undefined;
        for (const d of replay) this.send(d, {}, () => {});
        for (const w of waiting) this.send(w.data, w.meta, w.done);
        return;
      } catch (err) {
        const e = toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
        Object.assign(record, { fate: 'failed', endedAt: now(), reason: e.message, code: e.code, error: e });
      }
    }
    // Nowhere to go: stay, and say what the network said.
    const waiting = this.#waiting ?? [];
    this.#waiting = undefined;
    if (this.#closed) {
      for (const w of waiting) w.done(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the connection closed'));
      return;
    }
    for (const w of waiting) this.#current.send(w.data, w.meta, w.done);
    this.#receiver?.softError?.(error);
  }

  pause(): void {
    this.#paused = true;
    this.#current.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#current.resume();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort(new TapsError('ERR_TAPS_ABORTED', 'the connection closed'));
    return this.#current.close();
  }

  abort(reason?: Error): void {
    this.#closed = true;
    this.#abort.abort(reason ?? new TapsError('ERR_TAPS_ABORTED', 'the connection was aborted'));
    this.#current.abort(reason);
  }

  setOption(name: string, value: unknown): void {
    if (this.#current.setOption === undefined) throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name} cannot be set on this connection`);
    this.#current.setOption(name, value);
  }
}
