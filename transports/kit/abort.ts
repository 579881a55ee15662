/**
 * Abort handling shared by the drivers: the rejection of an aborted connect,
 * bind or handshake (ERR_TAPS_ABORTED with the signal's reason as cause), the
 * check made before any I/O, and one way to listen for an abort that is
 * always undone when the attempt settles (the signal may be shared).
 *
 * @example
 * throwIfAborted(attempt.signal, 'tcp');
 * const stop = whenAborted(attempt.signal, () => socket.destroy());
 * // ...settled: stop();
 */
import { NEVER_ABORTED } from '../../src/driver.js';
import { TapsError, isTapsError } from '../../src/errors.js';

/** The rejection for an aborted connect/bind: ERR_TAPS_ABORTED with the signal's reason as cause. */
export function abortedError(signal: AbortSignal, what: string): TapsError {
  if (isTapsError(signal.reason) && signal.reason.code === 'ERR_TAPS_ABORTED') return signal.reason;
  return new TapsError('ERR_TAPS_ABORTED', `${what} was aborted`, { cause: signal.reason });
}

/** Throw {@link abortedError} if the signal has fired: call before any I/O. */
export function throwIfAborted(signal: AbortSignal, what: string): void {
  if (!(signal instanceof AbortSignal)) throw new TypeError('attempt.signal must be an AbortSignal');
  if (signal.aborted) throw abortedError(signal, what);
}

/**
 * Call `onAbort` once when `signal` aborts; returns the function that stops listening (call it when the
 * attempt settles: the signal may be shared). On NEVER_ABORTED nothing is added: adding and removing an
 * EventTarget listener is a measurable part of a loopback connect (docs/performance.md).
 */
export function whenAborted(signal: AbortSignal, onAbort: () => void): () => void {
  if (signal === NEVER_ABORTED) return NOTHING;
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

const NOTHING = (): void => {};
