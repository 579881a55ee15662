/**
 * One message between `send()` and its outcome, and the queue that holds
 * messages the channel could not take yet.
 *
 * RFC 9622 §9.2.2: each send ends in exactly one of Sent, Expired or
 * SendError; `settle` enforces "exactly one". The queue orders by
 * msgPriority (lower first, §9.1.3.2) and keeps send order within a priority;
 * a message whose msgLifetime passed while it waited expires instead of
 * being sent (§9.1.3.1).
 */
import type { MessageContextInit } from '../message.js';

export type Outcome = { kind: 'sent' } | { kind: 'expired'; error: Error } | { kind: 'sendError'; error: Error };

/** The one `sent` outcome (no allocation per send). */
export const SENT: Outcome = Object.freeze({ kind: 'sent' });

/** Told once per send of its outcome; one per connection, shared by all its sends. */
export interface Settler {
  outcome(p: PendingSend, outcome: Outcome): void;
}

/** Called once per send when the channel has taken all of it (err: the first piece that failed). */
export type Written = (p: PendingSend, err: Error | undefined) => void;

const noop = (): void => {};

export class PendingSend {
  readonly data: Uint8Array;
  readonly context: MessageContextInit;
  /** Clock time after which it expires (Infinity: never). */
  readonly deadline: number;
  settled = false;
  /** The application gave a string (a WebSocket sends it as text: ChannelSendMeta.text). */
  readonly text: boolean;
  /** Channel sends still to complete (a framer may write a message as several pieces). */
  pieces = 1;
  #failed: Error | undefined;
  /** What `send()` returns: resolves on `sent`, rejects with the error of `expired` / `sendError`. */
  readonly promise: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: Error) => void;

  constructor(data: Uint8Array, context: MessageContextInit, now: number, text: boolean) {
    this.data = data;
    this.context = context;
    const life = context.msgLifetime;
    this.deadline = life === undefined || life === Infinity ? Infinity : now + life;
    this.text = text;
    this.promise = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** Its msgPriority (RFC 9622 §9.1.3.2; 100 when not given): the queue's order. */
  get priority(): number {
    return this.context.msgPriority ?? 100;
  }

  /** The first error of its pieces, once one failed. */
  get failure(): Error | undefined {
    return this.#failed;
  }

  /** One of its pieces completed (`err`: it failed); true when that was the last. */
  piece(err: Error | undefined): boolean {
    if (err !== undefined && this.#failed === undefined) this.#failed = err;
    return --this.pieces === 0;
  }

  /**
   * The `done` to hand a channel that may complete sends in any order: one
   * closure per send (the Sender asks once, whatever the number of pieces).
   * A channel that completes them in order gets the Sender's one callback instead.
   */
  callback(onWritten: Written): (err?: Error) => void {
    return (err?: Error): void => {
      if (this.piece(err)) onWritten(this, this.#failed);
    };
  }

  /**
   * Settle once; later calls are ignored. Returns whether this call settled
   * it. `settler` is told first (the connection emits its event), then the
   * promise settles. A failure is also an event, so a send nobody awaits
   * never becomes an unhandled rejection.
   */
  settle(outcome: Outcome, settler: Settler): boolean {
    if (this.settled) return false;
    this.settled = true;
    settler.outcome(this, outcome);
    if (outcome.kind === 'sent') this.#resolve();
    else {
      this.promise.catch(noop);
      this.#reject(outcome.error);
    }
    return true;
  }
}

/** Buckets by priority; FIFO inside each. Few distinct priorities are expected. */
export class SendQueue {
  readonly #buckets = new Map<number, PendingSend[]>();
  #priorities: readonly number[] = [];
  #size = 0;
  #timed = 0;

  get size(): number {
    return this.#size;
  }

  /** How many queued messages have a finite lifetime. */
  get timed(): number {
    return this.#timed;
  }

  push(p: PendingSend): void {
    let bucket = this.#buckets.get(p.priority);
    if (bucket === undefined) {
      bucket = [];
      this.#buckets.set(p.priority, bucket);
      this.#priorities = [...this.#priorities, p.priority].sort((a, b) => a - b);
    }
    bucket.push(p);
    this.#size++;
    if (p.deadline !== Infinity) this.#timed++;
  }

  /** The next message to send, or undefined. */
  shift(): PendingSend | undefined {
    for (const prio of this.#priorities) {
      const bucket = this.#buckets.get(prio)!;
      const p = bucket.shift();
      if (p === undefined) continue;
      if (bucket.length === 0) {
        this.#buckets.delete(prio);
        this.#priorities = this.#priorities.filter((x) => x !== prio);
      }
      this.#size--;
      if (p.deadline !== Infinity) this.#timed--;
      return p;
    }
    return undefined;
  }

  /** Remove and return every message whose deadline is before `now`. */
  expire(now: number): PendingSend[] {
    if (this.#timed === 0) return [];
    const out: PendingSend[] = [];
    for (const [prio, bucket] of this.#buckets) {
      const keep = bucket.filter((p) => {
        if (p.deadline < now) {
          out.push(p);
          return false;
        }
        return true;
      });
      if (keep.length === 0) {
        this.#buckets.delete(prio);
        this.#priorities = this.#priorities.filter((x) => x !== prio);
      } else this.#buckets.set(prio, keep);
    }
    this.#size -= out.length;
    this.#timed -= out.length;
    return out;
  }

  /** Earliest deadline among queued messages (Infinity if none). */
  nextDeadline(): number {
    if (this.#timed === 0) return Infinity;
    let min = Infinity;
    for (const bucket of this.#buckets.values()) for (const p of bucket) if (p.deadline < min) min = p.deadline;
    return min;
  }

  /** Empty the queue, returning everything in send order. */
  drainAll(): PendingSend[] {
    const out: PendingSend[] = [];
    for (let p = this.shift(); p !== undefined; p = this.shift()) out.push(p);
    return out;
  }
}
