/**
 * Redirects, decided hop by hop under the tenant's policy (RFC 9110 §15.4).
 *
 * A redirect is followed only when the request asked for it (`redirect:
 * 'follow'`); the default is `'manual'` (the 3xx is delivered as the
 * response), the safer choice: nothing reaches a second host unless the
 * caller opted in. For each hop, before anything is sent:
 *  - a non-network scheme (file:, data:, javascript:, …) is refused with
 *    PolicyDeniedError `bad-scheme`, decided (and so recorded) by the guard;
 *  - the hop's name goes through the tenant's lookup grant
 *    (`guard.lookup`) and each address through `guard.authorize` with use
 *    `redirect`, the hop's scheme as protocol (`http`/`https`: a downgrade
 *    is only possible where the policy allows `http`) and port; the allowed
 *    addresses are the hop's CheckedTargets, raced like any candidate
 *    (./dial.ts), otherwise the denial is thrown (PolicyDeniedError,
 *    ERR_TAPS_POLICY_PROHIBITED);
 *  - 303 (and 301/302 after POST) becomes a GET without body; 307/308 keep
 *    method and body, which fails if the body was streamed (not replayable);
 *  - credentials (authorization, cookie, proxy-authorization) are dropped
 *    when the origin changes.
 *
 * @example
 * const hop = nextHop(302, 'https://cdn.example/x', current);
 * const targets = await authorizeHop(guard, hop.url, signal);
 */
import { isIP } from 'node:net';
import { PolicyDeniedError, TapsError } from '../../src/errors.js';
import type { CheckedTarget, PolicyGuard } from '../../src/policy/chokepoint.js';

export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Redirect hops followed at most when `redirect: 'follow'` and no `maxRedirections` is given. */
export const DEFAULT_MAX_REDIRECTIONS = 20;

export interface HopRequest {
  readonly url: URL;
  readonly method: string;
  readonly headers: Record<string, string | string[]>;
  /** The request body, or 'streamed' when it was sent in pieces and cannot be replayed. */
  readonly body: Uint8Array | null | 'streamed';
}

const CREDENTIALS = ['authorization', 'cookie', 'proxy-authorization'];

/** The request for the next hop, or a thrown PolicyDeniedError (bad scheme) / TapsError. */
export function nextHop(status: number, location: string, current: HopRequest): HopRequest {
  let url: URL;
  try {
    url = new URL(location, current.url);
  } catch (err) {
    throw new TapsError('ERR_TAPS_PROTOCOL_FAILED', `redirect to an invalid URL ${JSON.stringify(location)}`, { cause: err });
  }
  // A non-network scheme goes no further: authorizeHop refuses it through the guard, so it is recorded.
  if (!isNetworkScheme(url)) return { url, method: current.method, headers: current.headers, body: null };
  url.username = '';
  url.password = '';
  url.hash = '';
  let method = current.method;
  let body = current.body;
  let headers = current.headers;
  if (status === 303 ? method !== 'HEAD' : (status === 301 || status === 302) && method === 'POST') {
    method = 'GET';
    body = null;
    headers = { ...headers };
    for (const h of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) delete headers[h];
  }
  if (body === 'streamed') {
    throw new TapsError('ERR_TAPS_PROTOCOL_FAILED', `cannot follow a ${status} redirect: the request body was streamed and cannot be sent again`);
  }
  if (url.origin !== current.url.origin) {
    headers = { ...headers };
    for (const h of CREDENTIALS) delete headers[h];
  }
  return { url, method, headers, body };
}

function isNetworkScheme(url: URL): boolean {
  return url.protocol === 'http:' || url.protocol === 'https:';
}

/** The policy protocol and port a URL names. */
export function urlProtocol(url: URL): { protocol: 'http' | 'https'; port: number; host: string } {
  const protocol = url.protocol === 'https:' ? 'https' : 'http';
  const port = url.port === '' ? (protocol === 'https' ? 443 : 80) : Number(url.port);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { protocol, port, host };
}

/**
 * Decide one hop: lookup grant, then each address with use 'redirect'. Returns every allowed target,
 * families interleaved (IPv6 first, RFC 8305 §4), for the hop to race; throws the last denial when none is.
 */
export async function authorizeHop(guard: PolicyGuard, url: URL, signal: AbortSignal): Promise<CheckedTarget[]> {
  if (!isNetworkScheme(url)) {
    // The guard decides (bad-scheme) and records it, so the host's audit trail shows the attempt.
    const decision = await guard.decide({ use: 'redirect', protocol: 'https', url: url.href });
    throw new PolicyDeniedError(
      decision.allow ? { allow: false, code: 'bad-scheme', reason: `a redirect to ${url.protocol} is not a network scheme an HTTP channel may follow`, rule: null } : decision,
    );
  }
  const { protocol, port, host } = urlProtocol(url);
  const href = url.href;
  if (isIP(host) !== 0) return [await guard.authorize({ use: 'redirect', protocol, address: host, port, url: href })];
  const answers = await Promise.allSettled([guard.lookup(host, 6, protocol, signal), guard.lookup(host, 4, protocol, signal)]);
  const denied = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected' && a.reason instanceof PolicyDeniedError);
  if (denied) throw denied.reason;
  signal.throwIfAborted();
  const [v6, v4] = answers.map((a) => (a.status === 'fulfilled' ? a.value : []));
  const addresses = interleave(v6!, v4!);
  if (addresses.length === 0) {
    const why = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected')?.reason;
    throw new TapsError('ERR_TAPS_RESOLUTION_FAILED', `the redirect target ${host} did not resolve`, { cause: why });
  }
  const allowed: CheckedTarget[] = [];
  let last: unknown;
  for (const a of addresses) {
    try {
      allowed.push(await guard.authorize({ use: 'redirect', protocol, address: a.address, port, hostName: host, url: href }));
    } catch (err) {
      last = err;
    }
  }
  if (allowed.length === 0) throw last;
  return allowed;
}

function interleave<T>(a: readonly T[], b: readonly T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) out.push(a[i]!);
    if (i < b.length) out.push(b[i]!);
  }
  return out;
}
