/**
 * A selection's own abort signal: it joins the caller's signal and the overall timeout, and ends a race's
 * leftovers (a late lookup, attempts still running) when the selection is over. Made only when needed: a
 * direct attempt without a timeout runs on the caller's signal, or on one that never aborts (creating an
 * AbortSignal costs about a tenth of a loopback connect: docs/performance.md).
 *
 * @example
 * const sig = new SelectionSignal(input);
 * try { await attempt(sig.own()); } finally { sig.dispose(); }
 */
import type { Clock } from '../clock.js';
import { NEVER_ABORTED } from '../driver.js';
import { TapsError } from '../errors.js';

/** The abort reason that ends every finished selection's leftovers: one shared instance (an Error per initiate cost a stack capture). */
const SELECTION_FINISHED = new TapsError('ERR_TAPS_ABORTED', 'selection finished');

export class SelectionSignal {
  readonly #caller: AbortSignal | undefined;
  readonly #clock: Clock;
  #controller: AbortController | undefined;
  #onCallerAbort: (() => void) | undefined;
  readonly #timer: unknown;
  /**
   * Set when nothing of the selection listens to its signal any more (its result handed over, or every attempt
   * and lookup settled): `dispose` then leaves it alone (an abort dispatches an Event nobody would hear).
   */
  idle = false;

  constructor(input: { readonly signal?: AbortSignal | undefined; readonly timeout?: number | undefined; readonly clock: Clock }) {
    this.#caller = input.signal;
    this.#clock = input.clock;
    const ms = input.timeout;
    if (ms !== undefined && Number.isFinite(ms)) {
      const c = this.#make();
      this.#timer = input.clock.setTimeout(() => c.abort(new TapsError('ERR_TAPS_TIMEOUT', `establishment timed out after ${ms} ms`)), ms);
    }
  }

  /** The selection's own signal, made now if it was not yet. */
  own(): AbortSignal {
    return (this.#controller ?? this.#make()).signal;
  }

  /** The controller attempts of a race run on (one per selection, not one per attempt). */
  get controller(): AbortController | undefined {
    return this.#controller;
  }

  /** What a direct attempt runs on: the own signal if there is one, else the caller's, else one that never aborts. */
  current(): AbortSignal {
    return this.#controller?.signal ?? this.#caller ?? NEVER_ABORTED;
  }

  /** The own signal if made (the one a timeout aborts), for telling a timeout from the caller's abort. */
  get signal(): AbortSignal | undefined {
    return this.#controller?.signal;
  }

  dispose(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    if (this.#onCallerAbort !== undefined) this.#caller!.removeEventListener('abort', this.#onCallerAbort);
    const c = this.#controller;
    if (c !== undefined && !c.signal.aborted && !this.idle) c.abort(SELECTION_FINISHED);
  }

  #make(): AbortController {
    const c = (this.#controller = new AbortController());
    const caller = this.#caller;
    if (caller?.aborted) c.abort(caller.reason);
    else if (caller !== undefined) caller.addEventListener('abort', (this.#onCallerAbort = () => c.abort(caller.reason)), { once: true });
    return c;
  }
}
