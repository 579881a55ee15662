/**
 * The bounded remainder of a race's QUIC attempts. QUIC over a path that drops UDP learns nothing until its
 * connect timeout (seconds), while TCP is refused within a round trip. Once every other candidate has failed
 * definitively and no more can come (every answer is in), the QUIC attempts still running get a remainder
 * scaled from the race, not the connect timeout: twice the attempt delay, or four times the slowest refusal
 * (a refusal is about one round trip), whichever is longer, at most 2 s. That leaves a QUIC handshake that
 * only just started (its server's Retry costs a second round trip) time to finish. When it passes, the race
 * ends and the error names the refusals (failure.ts), not a timeout.
 *
 * @example
 * const rest = new QuicRemainder(race, racing.attemptDelay, (why) => race.abandon(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', why)));
 * rest.check(leafRecords); // after each start and failure
 */
import type { CandidateRecord } from '../report.js';
import type { RaceLeaf } from './race.js';

/** Where the remainder runs out: the race's own timer (one timer per race, race.ts). */
export interface RemainderTimer {
  deadline(ms: number, expire: () => void): void;
  clearDeadline(): void;
}

/** The longest remainder, ms (the longest attempt delay RFC 8305 §5 allows). */
const MAX_REMAINDER = 2000;

export class QuicRemainder {
  readonly #timer: RemainderTimer;
  readonly #attemptDelay: number;
  readonly #expire: (reason: string) => void;
  #sealed = false;
  #armed = false;
  /** Why the QUIC attempts were ended, once they were. */
  reason: string | undefined;

  constructor(timer: RemainderTimer, attemptDelay: number, expire: (reason: string) => void) {
    this.#timer = timer;
    this.#attemptDelay = attemptDelay;
    this.#expire = expire;
  }

  /** No more candidates will join the race. */
  seal(leaves: ReadonlyMap<{ readonly state: RaceLeaf<unknown>['state'] }, CandidateRecord>): void {
    this.#sealed = true;
    this.check(leaves);
  }

  /** Arm the remainder if every non-QUIC candidate failed and a QUIC one still runs. */
  check(leaves: ReadonlyMap<{ readonly state: RaceLeaf<unknown>['state'] }, CandidateRecord>): void {
    if (!this.#sealed || this.#armed || this.reason !== undefined) return;
    let rtt = -1;
    let quicRunning = false;
    for (const [leaf, c] of leaves) {
      if (c.stack.includes('quic')) {
        if (leaf.state === 'running') quicRunning = true;
        continue;
      }
      if (leaf.state !== 'failed') return;
      rtt = Math.max(rtt, (c.endedAt ?? 0) - (c.startedAt ?? 0));
    }
    if (rtt < 0 || !quicRunning) return;
    const ms = Math.round(Math.min(MAX_REMAINDER, Math.max(2 * this.#attemptDelay, 4 * rtt)));
    this.#armed = true;
    this.#timer.deadline(ms, () => {
      this.#armed = false;
      this.reason = `no QUIC answer within the ${ms} ms remainder given after every other candidate failed`;
      this.#expire(this.reason);
    });
  }

  stop(): void {
    if (this.#armed) this.#timer.clearDeadline();
    this.#armed = false;
  }
}
