/**
 * Asking for both address families the Happy Eyeballs way (RFC 8305 §3).
 *
 * AAAA and A are asked at the same time, separately. IPv6 answers are used at
 * once. IPv4 answers that come first are held for the resolution delay
 * (50 ms by default) so that an AAAA answer just behind them is still tried
 * first; they are released when the AAAA answer (or its failure) arrives or
 * when the delay passes. A failing family is only a missing family: the
 * other may still succeed.
 *
 * @example
 * await resolveFamilies((family, signal) => network.lookup('example.test', family, signal), {
 *   clock, resolutionDelay: 50, signal, onAnswer: (family, addrs) => add(addrs), onError: (family, err) => note(err),
 * });
 */
import type { Clock } from '../clock.js';
import type { ResolvedAddress } from '../network.js';

export interface ResolveFamiliesOptions {
  readonly clock: Clock;
  readonly resolutionDelay: number;
  readonly signal: AbortSignal;
  /** Called with each family's answer, IPv6 first when both are in hand. */
  readonly onAnswer: (family: 4 | 6, addresses: readonly ResolvedAddress[]) => void | Promise<void>;
  readonly onError: (family: 4 | 6, error: unknown) => void;
  /** Families to ask; both by default. */
  readonly families?: readonly (4 | 6)[];
}

/** Resolves when every family has been answered (or failed) and delivered. */
export function resolveFamilies(
  lookup: (family: 4 | 6, signal: AbortSignal) => Promise<readonly ResolvedAddress[]>,
  options: ResolveFamiliesOptions,
): Promise<void> {
  const { clock, resolutionDelay, signal, onAnswer, onError } = options;
  const families = options.families ?? [6, 4];
  const asksV6 = families.includes(6);
  let v6Done = !asksV6;
  let heldV4: readonly ResolvedAddress[] | undefined;
  let timer: unknown;
  const deliveries: Promise<void>[] = [];

  const deliver = (family: 4 | 6, addrs: readonly ResolvedAddress[]): Promise<void> => {
    // Called in the turn the answer is in hand (every caller is past an await or in a timer callback): a throw is a rejection.
    let p: Promise<void>;
    try {
      p = Promise.resolve(onAnswer(family, addrs));
    } catch (err) {
      p = Promise.reject(err);
    }
    p.catch(() => {}); // observed below by Promise.all; never an unhandled rejection meanwhile
    deliveries.push(p);
    return p;
  };
  const release = (): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    const held = heldV4;
    heldV4 = undefined;
    if (held) void deliver(4, held);
  };

  const ask = async (family: 4 | 6): Promise<void> => {
    let answer: readonly ResolvedAddress[] = [];
    try {
      answer = await lookup(family, signal);
    } catch (err) {
      if (signal.aborted) return;
      onError(family, err);
    }
    if (signal.aborted) return;
    if (family === 6) {
      v6Done = true;
      if (answer.length > 0) await deliver(6, answer);
      release();
      return;
    }
    if (answer.length === 0) return;
    if (v6Done) {
      await deliver(4, answer);
      return;
    }
    heldV4 = answer;
    timer = clock.setTimeout(release, resolutionDelay);
    // Only a held answer needs the abort (its timer ends with it): an answer delivered at once is checked
    // against the signal as it arrives, without a listener (adding one is an EventTarget call per lookup).
    if (!listening) signal.addEventListener('abort', onAbort, { once: true });
    listening = true;
  };

  let listening = false;
  const onAbort = (): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
    heldV4 = undefined;
  };
  return Promise.all(families.map((f) => ask(f)))
    // Held IPv4 answers are always released by the AAAA outcome, which Promise.all waited for.
    .then(() => Promise.all(deliveries).then(() => undefined))
    .finally(() => {
      if (listening) signal.removeEventListener('abort', onAbort);
    });
}
