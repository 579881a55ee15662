/**
 * A fake {@link Resolver} for tests: answers from a table, optionally after a
 * delay, records every query, and honours the signal (a delayed answer is
 * cancelled and its timer cleared on abort). Used to test public/private
 * names without touching DNS (HELPERS.md: network traffic only to loopback).
 *
 * @example
 * const resolver = fakeResolver({ 'example.test': { v6: ['::1'], v4: ['127.0.0.1'], delayMs: { 4: 50 } } });
 * await resolver('example.test', 6, AbortSignal.timeout(1000)); // [{ address: '::1', family: 6 }]
 * resolver.queries; // [{ host: 'example.test', family: 6 }]
 */
import type { ResolvedAddress, Resolver } from '../../src/network.js';

export interface FakeAnswer {
  readonly v4?: readonly string[];
  readonly v6?: readonly string[];
  /** Delay before answering, for both families or per family. */
  readonly delayMs?: number | { readonly 4?: number; readonly 6?: number };
  /** Fail with an Error carrying this code (e.g. 'ENOTFOUND', 'EAI_AGAIN'), for both families or per family. */
  readonly error?: string | { readonly 4?: string; readonly 6?: string };
  readonly ttl?: number;
}

export interface FakeResolver extends Resolver {
  readonly queries: { readonly host: string; readonly family: 4 | 6 }[];
}

function perFamily<T>(value: T | { readonly 4?: T; readonly 6?: T } | undefined, family: 4 | 6): T | undefined {
  if (typeof value === 'object' && value !== null) return (value as { 4?: T; 6?: T })[family];
  return value as T | undefined;
}

function codeError(code: string, host: string): Error {
  return Object.assign(new Error(`fake resolver: ${code} ${host}`), { code, hostname: host });
}

/** Build a resolver from `map`. Unknown names fail with ENOTFOUND. */
export function fakeResolver(map: Readonly<Record<string, FakeAnswer>>): FakeResolver {
  const queries: { host: string; family: 4 | 6 }[] = [];
  const resolve = (host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> => {
    queries.push({ host, family });
    if (signal.aborted) return Promise.reject(signal.reason);
    const entry = Object.hasOwn(map, host) ? map[host] : undefined;
    const answer = (): ResolvedAddress[] => {
      if (entry === undefined) throw codeError('ENOTFOUND', host);
      const err = perFamily(entry.error, family);
      if (err !== undefined) throw codeError(err, host);
      const list = (family === 4 ? entry.v4 : entry.v6) ?? [];
      return list.map((address) => (entry.ttl === undefined ? { address, family } : { address, family, ttl: entry.ttl }));
    };
    const delay = entry === undefined ? undefined : perFamily(entry.delayMs, family);
    if (delay === undefined || delay <= 0) {
      try {
        return Promise.resolve(answer());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolvePromise, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        try {
          resolvePromise(answer());
        } catch (e) {
          reject(e);
        }
      }, delay);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
  return Object.assign(resolve, { queries });
}

/** `localhost` → 127.0.0.1 and ::1 (this machine's /etc/hosts has no ::1 entry). */
export const loopbackResolver = (): FakeResolver =>
  fakeResolver({ localhost: { v4: ['127.0.0.1'], v6: ['::1'] } });
