/**
 * The connections an HTTP channel opens after its first — a reconnect after
 * the server closed an idle keep-alive connection, a parallel HTTP/1.1
 * stream, a redirect hop — go through the scope's network, like the first:
 * the host's `Network` (a proxy, a virtual network) sees each of them, and
 * the scope admits each one by the same rule (a `connect` target for the
 * connection's own driver, a `redirect` target for a hop). A hop races the
 * addresses its policy allowed like any candidate (RFC 8305 §5: the next one
 * starts when one fails or after the attempt delay; the first up wins, the
 * others are cancelled).
 *
 * A driver called directly, without a scope's network, dials the checked
 * targets itself (the kit's openSocket, as for its first connection).
 *
 * @example
 * const dial = httpDial(attempt, httpDriver, hopDrivers);
 * const channel = await raceTargets(targets, ATTEMPT_DELAY, signal, (t, s) => dial.hop(t, true, s));
 */
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { whenAborted } from '../kit/abort.js';
import { furtherGrant } from '../kit/account.js';

/** RFC 8305 §5's recommended Connection Attempt Delay. */
export const ATTEMPT_DELAY = 250;

/** The drivers of redirect hops, by the hop's scheme. */
export interface HopDrivers {
  readonly http: Driver;
  readonly https: Driver;
}

export interface HttpDial {
  /** Another connection to `target` (use `connect`) with this connection's driver. */
  again(target: CheckedTarget, signal: AbortSignal): Promise<TransportChannel>;
  /** A redirect hop to `target` (use `redirect`) over http: or https:. */
  hop(target: CheckedTarget, secure: boolean, signal: AbortSignal): Promise<TransportChannel>;
}

/** How this attempt's later connections are opened: through its scope's network, or undefined without one. */
export function httpDial(attempt: ConnectAttempt, self: Driver, hops: HopDrivers): HttpDial | undefined {
  const network = attempt.network;
  if (network === undefined) return undefined;
  const { remote, local, security, properties, options, guard, unit } = attempt;
  // Each further socket counts under the connection's unit (a grant of its own), not as another connection.
  return {
    again: (target, signal) => network.connect(self, { signal, target, remote, local, security, properties, options, guard, unit: furtherGrant(unit) }),
    hop: (target, secure, signal) =>
      network.follow(secure ? hops.https : hops.http, { signal, target, remote: undefined as never, local: undefined, security, properties, options, guard, unit: furtherGrant(unit) }),
  };
}

/**
 * Open one of `targets`: the first now, each next one when the previous failed or `delay` ms after it
 * started. Resolves with the first that opens (the others are aborted, and `dispose` releases any that
 * still opens); rejects with the last failure when all fail, or with the signal's reason.
 */
export function raceTargets<T>(
  targets: readonly CheckedTarget[],
  delay: number,
  signal: AbortSignal,
  open: (target: CheckedTarget, signal: AbortSignal) => Promise<T>,
  dispose: (value: T) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (targets.length === 0) return reject(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', 'no address to connect to'));
    const controllers: AbortController[] = [];
    let next = 0;
    let failed = 0;
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let last: unknown;
    let stopListening = (): void => {};
    const finish = (winner?: AbortController): void => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      stopListening();
      for (const c of controllers) if (c !== winner) c.abort(new TapsError('ERR_TAPS_ABORTED', 'another address answered first'));
    };
    const onAbort = (): void => {
      if (settled) return;
      finish();
      reject(signal.reason);
    };
    const start = (): void => {
      if (settled || next >= targets.length) return;
      if (timer !== undefined) clearTimeout(timer);
      const target = targets[next++]!;
      const controller = new AbortController();
      controllers.push(controller);
      open(target, controller.signal).then(
        (value) => {
          if (settled) return dispose(value);
          finish(controller);
          resolve(value);
        },
        (err: unknown) => {
          if (settled) return;
          last = err;
          if (++failed === targets.length) {
            finish();
            return reject(last);
          }
          start();
        },
      );
      if (next < targets.length) timer = setTimeout(start, delay);
    };
    if (signal.aborted) return reject(signal.reason);
    stopListening = whenAborted(signal, onAbort);
    start();
  });
}
