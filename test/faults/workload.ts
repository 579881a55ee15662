/**
 * Messages that check themselves, for the fault suite: each carries its
 * sequence number and a hash of itself, so a receiver can tell intact from
 * corrupted or truncated, in order from reordered, once from duplicated —
 * without keeping what was sent. Sizes are mixed (mostly small, some
 * kilobytes, a few hundred kilobytes) and drawn from a seed, so a failing
 * run reproduces.
 *
 * Wire form of message `seq`: `[seq: u32 BE][payload][first 16 bytes of
 * SHA-256(seq ‖ payload)]`; the payload length depends only on (seed, seq).
 *
 * Counts: `TAPS_FULL=1` runs {@link FULL_COUNT} messages per stack; the
 * default run uses the reduced count each test passes.
 *
 * @example
 * const wl = new Workload(7, { max: 64 * 1024 });
 * const check = new Checker(wl);
 * check.accept(wl.message(0)); // 'ok'
 */
import { createHash } from 'node:crypto';
import type { Connection } from '../../src/connection/connection.js';
import type { TapsError } from '../../src/errors.js';
import { seeded } from '../helpers/fault-relay.js';

/** Whether the full-size runs were asked for (`TAPS_FULL=1`). */
export const FULL = process.env['TAPS_FULL'] === '1';
/** Messages per stack in a full run. */
export const FULL_COUNT = 1_000_000;

const HEADER = 4;
const TRAILER = 16;
export const OVERHEAD = HEADER + TRAILER;
const POOL = Buffer.alloc(1 << 20);
{
  const rnd = seeded(0xc0ffee);
  for (let i = 0; i < POOL.length; i += 4) POOL.writeUInt32LE(Math.floor(rnd() * 0x1_0000_0000), i);
}

export interface SizeMix {
  /** Largest payload (default 256 KiB). */
  readonly max?: number;
}

export class Workload {
  readonly seed: number;
  readonly #max: number;

  constructor(seed: number, mix: SizeMix = {}) {
    this.seed = seed;
    this.#max = Math.min(mix.max ?? 256 * 1024, POOL.length - 1);
  }

  /** Payload bytes of message `seq`: 70% ≤ 64 B, 25% ≤ 2 KiB, 4.9% ≤ 32 KiB, 0.1% ≤ max. */
  size(seq: number): number {
    const r = seeded(this.seed ^ Math.imul(seq + 1, 0x9e3779b1));
    const a = r();
    const b = r();
    let n: number;
    if (a < 0.7) n = Math.floor(b * 65);
    else if (a < 0.95) n = 64 + Math.floor(b * (2048 - 64));
    else if (a < 0.999) n = 2048 + Math.floor(b * (32 * 1024 - 2048));
    else n = 32 * 1024 + Math.floor(b * (256 * 1024 - 32 * 1024));
    return Math.min(n, this.#max);
  }

  message(seq: number): Uint8Array {
    const n = this.size(seq);
    const out = Buffer.allocUnsafe(HEADER + n + TRAILER);
    out.writeUInt32BE(seq >>> 0, 0);
    const off = (Math.imul(seq, 7919) >>> 0) % (POOL.length - n);
    POOL.copy(out, HEADER, off, off + n);
    createHash('sha256').update(out.subarray(0, HEADER + n)).digest().copy(out, HEADER + n, 0, TRAILER);
    return out;
  }
}

export type Verdict = 'ok' | 'corrupt' | 'duplicate' | 'out-of-order';

/** Checks received messages against the workload; counts what it saw. */
export class Checker {
  readonly #wl: Workload;
  /** Next sequence number expected in order. */
  next = 0;
  ok = 0;
  corrupt = 0;
  duplicate = 0;
  outOfOrder = 0;
  bytes = 0;
  /** The first problem, for the failure message. */
  firstProblem: string | undefined;
  readonly #seen = new Set<number>();
  readonly #ordered: boolean;

  /** `ordered`: a stream stack (anything but `next` is a failure). Otherwise seen sequence numbers are remembered. */
  constructor(wl: Workload, ordered = true) {
    this.#wl = wl;
    this.#ordered = ordered;
  }

  accept(data: Uint8Array): Verdict {
    this.bytes += data.byteLength;
    const v = this.#judge(data);
    if (v === 'ok') this.ok++;
    else {
      if (v === 'corrupt') this.corrupt++;
      else if (v === 'duplicate') this.duplicate++;
      else this.outOfOrder++;
      this.firstProblem ??= `${v} at message #${this.ok + this.corrupt + this.duplicate + this.outOfOrder} (expected seq ${this.next}, ${data.byteLength} B)`;
    }
    return v;
  }

  #judge(data: Uint8Array): Verdict {
    if (data.byteLength < OVERHEAD) return 'corrupt';
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const seq = b.readUInt32BE(0);
    const n = data.byteLength - OVERHEAD;
    if (n !== this.#wl.size(seq)) return 'corrupt';
    const h = createHash('sha256').update(b.subarray(0, HEADER + n)).digest();
    if (h.compare(b, HEADER + n, HEADER + n + TRAILER, 0, TRAILER) !== 0) return 'corrupt';
    if (this.#ordered) {
      if (seq < this.next) return 'duplicate';
      if (seq !== this.next) return 'out-of-order';
      this.next++;
      return 'ok';
    }
    if (this.#seen.has(seq)) return 'duplicate';
    this.#seen.add(seq);
    if (seq < this.next) {
      this.outOfOrder++;
    } else this.next = seq + 1;
    return 'ok';
  }
}

/** What a sender saw: how many sends were reported sent, failed, and the connection's error. */
export interface SendTally {
  sent: number;
  failed: number;
  /** `sent` events that came after the connection reported an error (must stay 0). */
  sentAfterError: number;
  error: TapsError | undefined;
  firstSendError: TapsError | undefined;
}

/** Watch a connection's outcome events. */
export function tally(conn: Connection): SendTally {
  const t: SendTally = { sent: 0, failed: 0, sentAfterError: 0, error: undefined, firstSendError: undefined };
  conn.on('sent', () => {
    t.sent++;
    if (t.error !== undefined) t.sentAfterError++;
  });
  conn.on('sendError', (_c, e) => {
    t.failed++;
    t.firstSendError ??= e;
  });
  conn.on('connectionError', (e) => {
    t.error ??= e;
  });
  return t;
}

/**
 * Send messages `from..to-1` of `wl` with at most `window` unsettled sends
 * (the library's queue stays bounded); stops early when the connection is no
 * longer established. Resolves with how many sends were issued.
 */
export async function pump(conn: Connection, wl: Workload, from: number, to: number, window = 256): Promise<number> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const settle = (): void => {
    outstanding--;
    const w = wake;
    wake = undefined;
    w?.();
  };
  let seq = from;
  for (; seq < to; seq++) {
    if (conn.state !== 'established') break;
    outstanding++;
    conn.send(wl.message(seq)).then(settle, settle);
    if (outstanding >= window) await new Promise<void>((r) => (wake = r));
  }
  while (outstanding > 0) await new Promise<void>((r) => (wake = r));
  return seq - from;
}
