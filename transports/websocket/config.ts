/**
 * What a WebSocket attempt asks for, read and validated before any I/O:
 * request path, subprotocols (RFC 6455 §4.1, tokens per RFC 9110 §5.6.2),
 * extra handshake headers, the largest message accepted (`maxPayload`) and
 * permessage-deflate (off by default: compression costs CPU and leaks
 * lengths, RFC 7692 §9). Bad input is a TapsError ERR_TAPS_INVALID_CONFIGURATION.
 * `maxPayload` 0 means no limit (ws's meaning).
 *
 * Sources, first wins: `attempt.options` (driverOptions.ws / .wss), then the
 * endpoint (`remote.path`, `remote.subprotocols`, `remote.url`), then
 * properties (`ws.maxPayload`), then defaults.
 *
 * @example
 * const cfg = webSocketConfig(attempt); // { path: '/chat', subprotocols: ['v1'], maxPayload: 16 MiB, ... }
 */
import { TapsError } from '../../src/errors.js';
import type { TransportProperties } from '../../src/properties.js';
import { validatePath } from '../kit/request-path.js';

/** The largest WebSocket message accepted when neither the option nor the property says otherwise: 16 MiB. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

export interface WebSocketConfig {
  readonly path: string;
  readonly subprotocols: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly maxPayload: number;
  readonly perMessageDeflate: boolean;
  /** ms to wait for the upgrade response; undefined: until the attempt's signal aborts. */
  readonly handshakeTimeout: number | undefined;
  /** ms a closing handshake may take before the socket is destroyed (ws's closeTimeout); undefined: ws's 30 s. */
  readonly closeTimeout: number | undefined;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_HEADERS = new Set(['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding']);

function invalid(message: string): TapsError {
  return new TapsError('ERR_TAPS_INVALID_CONFIGURATION', message);
}

/** Read an optional property without failing on stores that do not know the name. */
export function readProperty(properties: TransportProperties | undefined, name: string): unknown {
  try {
    return (properties as { get?(n: string): unknown } | undefined)?.get?.(name);
  } catch {
    return undefined;
  }
}

export function validateSubprotocols(list: unknown): readonly string[] {
  if (list === undefined || list === null) return [];
  const arr = typeof list === 'string' ? [list] : list;
  if (!Array.isArray(arr)) throw invalid('subprotocols must be a string or an array of strings');
  const seen = new Set<string>();
  for (const p of arr) {
    if (typeof p !== 'string' || !TOKEN.test(p)) throw invalid(`invalid websocket subprotocol name ${JSON.stringify(p)} (RFC 6455 §4.1: a token)`);
    if (seen.has(p)) throw invalid(`websocket subprotocol ${JSON.stringify(p)} is listed twice`);
    seen.add(p);
  }
  return Object.freeze([...arr] as string[]);
}

/** 0 means no limit (as in ws); the channel then reports Infinity. */
export function validateMaxPayload(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(`maxPayload must be a non-negative integer, got ${String(v)}`);
  return v;
}

function validateHeaders(h: unknown): Readonly<Record<string, string>> {
  if (h === undefined || h === null) return {};
  if (typeof h !== 'object' || Array.isArray(h)) throw invalid('headers must be an object of header name → string');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
    const name = k.toLowerCase();
    if (!TOKEN.test(k)) throw invalid(`invalid header name ${JSON.stringify(k)}`);
    if (FORBIDDEN_HEADERS.has(name) || name.startsWith('sec-websocket-')) throw invalid(`header ${k} is set by the websocket handshake and may not be given`);
    if (typeof v !== 'string' || /[\r\n\0]/.test(v)) throw invalid(`header ${k} must be a string without CR, LF or NUL`);
    out[k] = v;
  }
  return Object.freeze(out);
}

interface EndpointLike {
  readonly path?: string | undefined;
  readonly url?: string | URL | undefined;
  readonly subprotocols?: readonly string[] | undefined;
}

function pathFromUrl(url: string | URL | undefined): string | undefined {
  if (url === undefined) return undefined;
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    throw invalid(`invalid URL ${JSON.stringify(String(url))}`);
  }
  return u.pathname + u.search;
}

/** Everything the client side needs; throws TapsError ERR_TAPS_INVALID_CONFIGURATION. */
export function webSocketConfig(
  options: Readonly<Record<string, unknown>> | undefined,
  remote: EndpointLike | undefined,
  properties: TransportProperties | undefined,
): WebSocketConfig {
  const o = options ?? {};
  const path = validatePath(o['path'] ?? remote?.path ?? pathFromUrl(remote?.url));
  const subprotocols = validateSubprotocols(o['subprotocols'] ?? remote?.subprotocols);
  const maxPayload = validateMaxPayload(o['maxPayload'] ?? readProperty(properties, 'ws.maxPayload'), DEFAULT_MAX_PAYLOAD);
  const deflate = o['perMessageDeflate'] ?? false;
  if (typeof deflate !== 'boolean') throw invalid('perMessageDeflate must be a boolean');
  const ht = o['handshakeTimeout'];
  if (ht !== undefined && (typeof ht !== 'number' || !(ht > 0))) throw invalid(`handshakeTimeout must be a positive number of ms, got ${String(ht)}`);
  return Object.freeze({ path, subprotocols, headers: validateHeaders(o['headers']), maxPayload, perMessageDeflate: deflate, handshakeTimeout: ht as number | undefined, closeTimeout: validateCloseTimeout(o['closeTimeout']) });
}

/** `closeTimeout` (ms > 0): how long a close may wait for the peer before the socket is destroyed. */
export function validateCloseTimeout(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw invalid(`closeTimeout must be a positive number of ms, got ${String(v)}`);
  return v;
}
