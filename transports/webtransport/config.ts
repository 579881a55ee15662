/**
 * Driver options of the WebTransport drivers, read and checked before any
 * I/O (`preconnection.driverOptions['webtransport-h2']`, `…['webtransport-h3']`):
 *
 * | option          | default  | meaning                                                        |
 * |-----------------|----------|----------------------------------------------------------------|
 * | `path`          | endpoint | request path of the extended CONNECT (client: the endpoint's path; listener: only this path, any when absent on HTTP/2, '/' on HTTP/3) |
 * | `sessionWindow` | 15 MiB   | bytes the peer may have in flight on all streams (SETTINGS_WT_INITIAL_MAX_DATA) |
 * | `streamWindow`  | 6 MiB    | bytes the peer may have in flight per stream                    |
 * | `maxStreams`    | 100      | streams the peer may open (each direction kind)                 |
 * | `closeTimeout`  | 2000     | ms a graceful stream close waits for the peer's FIN             |
 *
 * Bad values are a TapsError ERR_TAPS_INVALID_CONFIGURATION.
 *
 * @example
 * const cfg = webTransportConfig(attempt.options, attempt.remote.path); // { path: '/chat', windows: {...}, closeTimeout: 2000 }
 */
import { TapsError } from '../../src/errors.js';
import { validatePath } from '../kit/request-path.js';
import type { Windows } from './engine.js';

/** Flow-control windows when no option sets them: 15 MiB per session, 6 MiB per stream, 100 streams. */
export const DEFAULT_WINDOWS: Windows = Object.freeze({ session: 15 * 1024 * 1024, stream: 6 * 1024 * 1024, streams: 100 });
/** ms a graceful stream close waits for the peer's FIN when no `closeTimeout` is given. */
export const DEFAULT_CLOSE_TIMEOUT = 2000;
/** Largest value the package's flow control handles safely (a QUIC varint fits far more; this bounds memory). */
const MAX_WINDOW = 1 << 30;

export interface WebTransportConfig {
  /** Undefined on a listener without a path: any path. */
  readonly path: string | undefined;
  readonly windows: Windows;
  readonly closeTimeout: number;
}

function invalid(message: string): TapsError {
  return new TapsError('ERR_TAPS_INVALID_CONFIGURATION', message);
}

function size(o: Readonly<Record<string, unknown>>, name: string, fallback: number, min: number, max: number): number {
  const v = o[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`options.${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  return v;
}

/** Read the options; `endpointPath` is the remote endpoint's path (client) or undefined (listener). */
export function webTransportConfig(options: Readonly<Record<string, unknown>> | undefined, endpointPath: string | undefined): WebTransportConfig {
  const o = options ?? {};
  const raw = o['path'] ?? endpointPath;
  let path: string | undefined;
  try {
    path = raw === undefined ? undefined : validatePath(raw);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  const closeTimeout = o['closeTimeout'] ?? DEFAULT_CLOSE_TIMEOUT;
  if (typeof closeTimeout !== 'number' || Number.isNaN(closeTimeout) || closeTimeout < 0) {
    throw invalid(`options.closeTimeout must be a number of ms >= 0 (Infinity: wait for the peer), got ${String(closeTimeout)}`);
  }
  return Object.freeze({
    path,
    windows: Object.freeze({
      session: size(o, 'sessionWindow', DEFAULT_WINDOWS.session, 16 * 1024, MAX_WINDOW),
      stream: size(o, 'streamWindow', DEFAULT_WINDOWS.stream, 16 * 1024, MAX_WINDOW),
      streams: size(o, 'maxStreams', DEFAULT_WINDOWS.streams, 1, 1_000_000),
    }),
    closeTimeout,
  });
}
