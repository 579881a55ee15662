/**
 * What `resolve()` prepared for a `rendezvous()` (RFC 9622 §7.3): the bound
 * socket, its candidates and the tenant's connection unit, held until a
 * rendezvous takes them, the caller releases them (an aborted `signal`,
 * disposing of the Preconnection), or the hold runs out. RFC 9622 says
 * nothing of how long resolved candidates live; they cannot outlive the NAT
 * mapping a server-reflexive candidate names, which a NAT may drop after two
 * minutes without traffic (RFC 4787 REQ-5), so that is the default hold, and
 * a socket nobody rendezvouses on is not kept for the life of the process.
 *
 * @example
 * const held = new HeldRendezvous(session, clock, (expiredAfter) => forget(expiredAfter));
 * held.hold(120_000);
 * const session = held.take(); // undefined once released
 */
import type { Clock } from '../clock.js';
import type { RendezvousSession } from './session.js';

/** How long resolved candidates are held without a rendezvous, by default (ms). */
export const DEFAULT_HOLD_MS = 120_000;

/** The longest hold a timer can keep (ms). */
const MAX_HOLD_MS = 2 ** 31 - 1;

/** `holdFor` as given to `resolve()`, checked (a RangeError naming it), or the default. */
export function holdTime(holdFor: unknown): number {
  if (holdFor === undefined) return DEFAULT_HOLD_MS;
  if (typeof holdFor !== 'number' || !(holdFor > 0) || holdFor > MAX_HOLD_MS) {
    throw new RangeError(`options.holdFor must be a number of ms above 0 and at most ${MAX_HOLD_MS}, got ${String(holdFor)}`);
  }
  return holdFor;
}

export class HeldRendezvous {
  readonly session: RendezvousSession;
  readonly #clock: Clock;
  readonly #onRelease: (expiredAfter: number | undefined) => void;
  readonly #unlisten: (() => void)[] = [];
  #timer: unknown;
  #done = false;
  #released = false;

  /** `released` is called once released, with the hold's length when it ran out (undefined: released by the caller). */
  constructor(session: RendezvousSession, clock: Clock, released: (expiredAfter: number | undefined) => void) {
    this.session = session;
    this.#clock = clock;
    this.#onRelease = released;
  }

  /** True once released (its socket closed): its candidates are gone. */
  get released(): boolean {
    return this.#released;
  }

  /** (Re)start the hold: released `ms` from now unless taken first. */
  hold(ms: number): void {
    if (this.#done) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#done) return;
      void this.#release(ms);
    }, ms);
    // The socket keeps the process alive while it is bound; the timer alone need not.
    (this.#timer as { unref?: () => void } | undefined)?.unref?.();
  }

  /** Release when `signal` aborts (until taken or released). */
  releaseOnAbort(signal: AbortSignal | undefined): void {
    if (signal === undefined || this.#done) return;
    if (signal.aborted) return void this.release();
    const onAbort = (): void => void this.release();
    signal.addEventListener('abort', onAbort, { once: true });
    this.#unlisten.push(() => signal.removeEventListener('abort', onAbort));
  }

  /** The session, for a rendezvous to use; undefined when it was released. */
  take(): RendezvousSession | undefined {
    if (this.#done) return undefined;
    this.#end();
    return this.session;
  }

  /** Close the socket and give the unit back (idempotent; nothing once taken). */
  release(): Promise<void> {
    return this.#release(undefined);
  }

  #release(expiredAfter: number | undefined): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#end();
    this.#released = true;
    this.#onRelease(expiredAfter);
    return this.session.close();
  }

  #end(): void {
    this.#done = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const stop of this.#unlisten.splice(0)) stop();
  }
}
