/**
 * The system resolver: getaddrinfo through `dns.lookup`, one address
 * family per call, as Happy Eyeballs asks (RFC 8305 §3; RFC 9623 §4.1.2). It honours
 * `/etc/hosts` (which `dns.resolve*` would not) and keeps the system's order
 * (`verbatim: true`).
 *
 * Decisions:
 * - The name exists but has no address of the family asked for (ENODATA /
 *   EAI_NODATA): resolves to `[]`. Every other failure (ENOTFOUND, EAI_AGAIN,
 *   EAI_FAIL, ...) rejects with a TapsError `ERR_TAPS_RESOLUTION_FAILED` whose
 *   `cause` is the system error. getaddrinfo cannot always tell "no such name"
 *   from "no address of this family" (with only /etc/hosts, `localhost` asked
 *   for AF_INET6 is ENOTFOUND): the selector treats a failing family as a
 *   missing family, so both cases end the same way.
 * - An IP literal answers itself, and only for its own family (getaddrinfo
 *   would hand back an IPv4 literal for an AF_INET6 query).
 * - `localhost` and every name under it are the loopback addresses, answered
 *   here without a query (RFC 6761 §6.3; curl does the same): 127.0.0.1 for
 *   IPv4, ::1 for IPv6. With only `127.0.0.1 localhost` in /etc/hosts,
 *   getaddrinfo would send the AAAA question to the configured DNS server.
 * - `dns.lookup` cannot be cancelled: on abort the call rejects at once with a
 *   TapsError `ERR_TAPS_ABORTED` (cause: the signal's reason) and the late
 *   answer is ignored.
 *
 * @example
 * const v6 = await systemResolver('localhost', 6, AbortSignal.timeout(1000)); // [] or [{ address: '::1', family: 6 }]
 */
import dns from 'node:dns';
import { isIP } from 'node:net';
import { TapsError } from '../../src/errors.js';
import type { ResolvedAddress, Resolver } from '../../src/network.js';
import { whenAborted } from '../kit/abort.js';

const NO_DATA = new Set(['ENODATA', 'EAI_NODATA']);
const LOOPBACK_4: ResolvedAddress = Object.freeze({ address: '127.0.0.1', family: 4 });
const LOOPBACK_6: ResolvedAddress = Object.freeze({ address: '::1', family: 6 });

/** `localhost`, `LOCALHOST.`, `app.localhost`: the special-use loopback names (RFC 6761 §6.3). */
export function isLocalhost(host: string): boolean {
  const h = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost');
}

function aborted(signal: AbortSignal): TapsError {
  return new TapsError('ERR_TAPS_ABORTED', 'name resolution was aborted', { cause: signal.reason });
}

/** Resolve `host` to addresses of `family` with the operating system's resolver. */
export const systemResolver: Resolver = (host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> => {
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('host must be a non-empty string');
  if (family !== 4 && family !== 6) throw new RangeError(`family must be 4 or 6, got ${String(family)}`);
  if (!(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
  if (signal.aborted) return Promise.reject(aborted(signal));
  if (isLocalhost(host)) return Promise.resolve([family === 6 ? LOOPBACK_6 : LOOPBACK_4]);
  const literal = isIP(host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host);
  if (literal !== 0) {
    const address = literal === 6 && host.startsWith('[') ? host.slice(1, -1) : host;
    return Promise.resolve(literal === family ? [{ address, family }] : []);
  }
  return new Promise<ResolvedAddress[]>((resolve, reject) => {
    const stopListening = whenAborted(signal, () => reject(aborted(signal)));
    // The callback form: `dns.promises` is a getter that loads another module of Node's on first use.
    dns.lookup(host, { family, all: true, verbatim: true }, (err, answers) => {
      stopListening();
      if (err !== null) {
        if (typeof err.code === 'string' && NO_DATA.has(err.code)) resolve([]);
        else reject(new TapsError('ERR_TAPS_RESOLUTION_FAILED', `could not resolve ${host} (IPv${family}): ${err.code ?? err.message}`, { cause: err }));
        return;
      }
      // getaddrinfo may add the other family (AI_V4MAPPED-like behaviour on some systems): keep only what was asked.
      resolve(answers.filter((a) => a.family === family).map((a) => ({ address: a.address, family })));
    });
  });
};
