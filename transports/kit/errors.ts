/**
 * Error mapping shared by the drivers: one place that turns an OS or library
 * error into a TapsError with the original as `cause` (STYLE §6). Aborts are
 * in ./abort.ts. Establishment and run-time failures map differently:
 *
 * | when            | OS / library error                               | TapsError code                    |
 * |-----------------|--------------------------------------------------|-----------------------------------|
 * | connect / bind  | signal aborted                                   | ERR_TAPS_ABORTED (cause: reason)  |
 * | connect         | ETIMEDOUT                                        | ERR_TAPS_TIMEOUT                  |
 * | connect         | ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, ...     | ERR_TAPS_ESTABLISHMENT_FAILED     |
 * | TLS handshake   | certificate, name, pin, ALPN, version, alert     | ERR_TAPS_SECURITY_FAILED          |
 * | established     | ECONNRESET, EPIPE                                | ERR_TAPS_CONNECTION_RESET         |
 * | established     | a TLS alert (ERR_SSL_*, e.g. certificate required)| ERR_TAPS_SECURITY_FAILED         |
 * | established     | ETIMEDOUT                                        | ERR_TAPS_TIMEOUT                  |
 * | established     | anything else                                    | ERR_TAPS_CONNECTION_ABORTED       |
 * | local abort()   | (the reason given)                               | ERR_TAPS_CONNECTION_ABORTED       |
 *
 * A refused TCP connect is ERR_TAPS_ESTABLISHMENT_FAILED (cause: the
 * ECONNREFUSED error), not a reset: nothing was ever established.
 *
 * @example
 * socket.once('error', (err) => reject(establishmentError(err, 'tcp connect to 127.0.0.1:1')));
 */
import { TapsError, isTapsError, toTapsError } from '../../src/errors.js';

/** Errors that come from a system call (not from TLS/X.509): ECONNREFUSED, EPIPE, ... */
export function isSystemError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}

/** A failure while establishing (before ready). `tls`: non-system errors are security failures. */
export function establishmentError(err: unknown, what: string, tls = false): TapsError {
  if (isTapsError(err)) return err;
  const e = err as { code?: string; message?: string } | undefined;
  const detail = e?.message ?? String(err);
  if (e?.code === 'ETIMEDOUT') return new TapsError('ERR_TAPS_TIMEOUT', `${what} timed out: ${detail}`, { cause: err });
  if (tls && !isSystemError(err)) return new TapsError('ERR_TAPS_SECURITY_FAILED', `${what}: ${detail}`, { cause: err });
  return new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `${what} failed: ${detail}`, { cause: err });
}

/** A failure of an established channel. */
export function channelError(err: unknown): TapsError {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_SSL_')) {
    return new TapsError('ERR_TAPS_SECURITY_FAILED', `TLS failure: ${(err as Error).message}`, { cause: err });
  }
  return toTapsError(err, 'ERR_TAPS_CONNECTION_ABORTED');
}

/** The error of every local abort without a reason: one frozen instance (an Error per abort cost a stack capture). */
const ABORTED_LOCALLY = Object.freeze(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the connection was aborted locally'));

/** What `receiver.closed()` gets after a local `abort(reason)`. */
export function localAbortError(reason: unknown): TapsError {
  if (reason === undefined) return ABORTED_LOCALLY;
  return new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the connection was aborted locally', { cause: reason });
}

/**
 * A write's completion, as the library reports it (`sent` means the bytes were handed to the transport below
 * the library: docs/connection.md). Under TLS, the TLS layer encrypts a write as soon as it takes it; Node 22
 * and 24 report the completion of such writes as EBADF when the socket is destroyed before it is delivered
 * (Node 20 reports them done), although their bytes reach the peer. EBADF on a destroyed socket therefore
 * counts as written on every version. Anything else stays a failure: ECANCELED (bytes still queued in
 * libuv when the socket closed, never given to the kernel), ERR_STREAM_DESTROYED (still in Node's stream
 * buffer), EPIPE (the kernel refused them).
 */
export function writeCompletion(err: Error | null | undefined, socket: { readonly destroyed: boolean }): Error | undefined {
  if (err == null) return undefined;
  const e = err as NodeJS.ErrnoException;
  if (socket.destroyed && e.code === 'EBADF' && e.syscall === 'write') return undefined;
  return err;
}
