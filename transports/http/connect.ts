/**
 * Client establishment for the HTTP drivers: read the driver options, open
 * a session to the checked target (TCP, or TLS with the driver's ALPN) and
 * wrap it in an HttpChannel. Ready means the connection (and TLS, and ALPN)
 * is up: HTTP itself has no handshake (draft-ietf-taps-impl §HTTP "Initiate").
 *
 * Options (`driverOptions.http` / `.https` / `.https2`), all optional:
 * `redirect` ('manual' default | 'follow' | 'error'), `maxRedirections` (20),
 * `maxBufferedBody` (bytes held to deliver a response whole; 1 MiB),
 * `bodyTimeout` / `headersTimeout` (ms; enforced by the channel with exact
 * timers, a stalled server fails with ERR_TAPS_TIMEOUT; unset: undici's
 * 300 000 each at ~1 s resolution; 0: none),
 * `keepAliveTimeout` (ms), `pipelining` (HTTP/1.1, 1), `maxResponseSize`
 * (bytes, -1 none), `path` (default request path).
 *
 * @example
 * const channel = await connectHttp(attempt, { secure: true, alpn: ['h2'], requireAlpn: 'h2' });
 */
import type { Client } from 'undici';
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import { throwIfAborted } from '../kit/abort.js';
import { HttpChannel, type HttpChannelConfig } from './channel.js';
import { httpDial, type HopDrivers } from './dial.js';
import { DEFAULT_MAX_REDIRECTIONS } from './redirect.js';
import { REDIRECT_MODES, type RedirectMode } from './request.js';
import { openSession } from './session.js';
import { meterFor } from '../kit/meter.js';

export interface HttpFlavour {
  readonly secure: boolean;
  readonly alpn: readonly string[];
  readonly requireAlpn?: string | undefined;
}

/** The largest response body buffered for one message when no `maxBufferedBody` is given: 1 MiB. */
export const DEFAULT_MAX_BUFFERED_BODY = 1024 * 1024;

function invalid(message: string): TapsError {
  return new TapsError('ERR_TAPS_INVALID_CONFIGURATION', message);
}

function count(o: Readonly<Record<string, unknown>>, name: string, min: number): number | undefined {
  const v = o[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalid(`${name} must be an integer ≥ ${min}, got ${String(v)}`);
  return v;
}

function defaultPath(remote: ConnectAttempt['remote'], o: Readonly<Record<string, unknown>>): string {
  const r = remote as { path?: string; url?: string | URL } | undefined;
  let path: unknown = o['path'] ?? r?.path;
  if (path === undefined && r?.url !== undefined) {
    try {
      const u = new URL(String(r.url));
      path = u.pathname + u.search;
    } catch (err) {
      throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `invalid URL ${JSON.stringify(String(r.url))}`, { cause: err });
    }
  }
  if (path === undefined || path === '') return '/';
  if (typeof path !== 'string' || !/^\/[\x21-\x7e]*$/.test(path)) throw invalid(`invalid path ${JSON.stringify(path)}`);
  return path;
}

/** Channel and undici settings from the attempt's options; throws ERR_TAPS_INVALID_CONFIGURATION. */
export function httpConfig(attempt: ConnectAttempt, flavour: HttpFlavour, drivers?: HttpDrivers): HttpChannelConfig {
  const o = attempt.options ?? {};
  const redirect = (o['redirect'] ?? 'manual') as RedirectMode;
  if (!REDIRECT_MODES.includes(redirect)) throw invalid(`redirect must be one of ${REDIRECT_MODES.join(', ')}, got ${String(redirect)}`);
  const clientOptions: Client.Options = {};
  const dial = drivers === undefined ? undefined : httpDial(attempt, drivers.self, drivers.hops);
  const copy = (name: 'keepAliveTimeout' | 'pipelining', min: number): void => {
    const v = count(o, name, min);
    if (v !== undefined) clientOptions[name] = v;
  };
  copy('keepAliveTimeout', 1);
  copy('pipelining', 1);
  const maxResponseSize = o['maxResponseSize'];
  if (maxResponseSize !== undefined) {
    if (maxResponseSize !== -1) count(o, 'maxResponseSize', 0);
    clientOptions.maxResponseSize = maxResponseSize as number;
  }
  return {
    sessionParams: {
      guard: attempt.guard,
      secure: flavour.secure,
      alpn: flavour.alpn,
      requireAlpn: flavour.requireAlpn,
      security: attempt.security,
      local: attempt.local,
      clientOptions,
      meter: meterFor(attempt),
      unit: attempt.unit,
      dial,
    },
    dial,
    defaultPath: defaultPath(attempt.remote, o),
    redirect,
    maxRedirections: count(o, 'maxRedirections', 0) ?? DEFAULT_MAX_REDIRECTIONS,
    maxBufferedBody: count(o, 'maxBufferedBody', 0) ?? DEFAULT_MAX_BUFFERED_BODY,
    headersTimeout: count(o, 'headersTimeout', 0),
    bodyTimeout: count(o, 'bodyTimeout', 0),
  };
}

/** The driver being connected and the drivers of redirect hops: later connections go through the scope's network with them. */
export interface HttpDrivers {
  readonly self: Driver;
  readonly hops: HopDrivers;
}

export async function connectHttp(attempt: ConnectAttempt, flavour: HttpFlavour, drivers?: HttpDrivers): Promise<TransportChannel> {
  throwIfAborted(attempt.signal, flavour.secure ? 'https' : 'http');
  const config = httpConfig(attempt, flavour, drivers);
  const session = await openSession({ ...config.sessionParams, target: attempt.target, signal: attempt.signal });
  return new HttpChannel(session, config);
}
