/**
 * Which stacks can serve a request at all (RFC 9623 §4.1.3, first two steps).
 *
 * A stack is judged from its driver's declared capabilities, never by trying
 * it: prohibited properties it has, or required properties it lacks, make it
 * unsuitable, as do a URL scheme that names another stack and a security
 * mode it cannot honour (RFC 9621 §3.3: never fall back from secure to
 * insecure). Each verdict carries a sentence the selection report shows.
 *
 * @example
 * const v = judgeStack(tcpDriver, { properties, security, framers: [], scheme: undefined });
 * if (!v.ok) console.log(v.reason); // "reliability is required but udp is unreliable"
 */
import type { Driver } from '../driver.js';
import { mayDuplicate, provided } from '../provided.js';
import type { PreferenceProperty, TransportProperties } from '../properties.js';
import type { SecurityParameters } from '../security.js';

/** The protocol names that a bare host:port endpoint (no scheme) may use. */
export const TRANSPORT_LEVEL = new Set(['tcp', 'tls', 'udp', 'quic']);

export interface StackContext {
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  /** Framers on the preconnection: a stream stack with a framer keeps message boundaries. */
  readonly framerCount: number;
  /** The endpoint URL's scheme, when it gave one. */
  readonly scheme?: string | undefined;
  /** An endpoint is a multicast group (RFC 9622 §6.1.1): only stacks that can multicast qualify. */
  readonly multicast?: boolean | undefined;
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const WORDS: Partial<Record<PreferenceProperty, [string, string]>> = {
  reliability: ['reliable', 'unreliable'],
  preserveOrder: ['ordered', 'unordered'],
  preserveMsgBoundaries: ['message-preserving', 'a byte stream (add a framer)'],
  perMsgReliability: ['per-message reliable', 'not per-message reliable'],
  zeroRttMsg: ['0-RTT capable', 'not 0-RTT capable'],
  multistreaming: ['multistreaming', 'single-stream'],
  congestionControl: ['congestion controlled', 'not congestion controlled'],
  keepAlive: ['able to keep alive', 'unable to keep alive'],
  softErrorNotify: ['able to report soft errors', 'unable to report soft errors'],
};

/**
 * Preference properties in the order they are judged and explained. `useTemporaryLocalAddress` is not
 * among them: it is a property of the local address, not of a stack, and the path branch
 * (src/paths/constraints.ts) honours it.
 */
export const JUDGED: readonly PreferenceProperty[] = [
  'reliability',
  'preserveOrder',
  'preserveMsgBoundaries',
  'perMsgReliability',
  'multistreaming',
  'zeroRttMsg',
  'congestionControl',
  'fullChecksumSend',
  'fullChecksumRecv',
  'keepAlive',
  'softErrorNotify',
  'activeReadBeforeSend',
];

function describe(driver: Driver, name: PreferenceProperty, has: boolean): string {
  const w = WORDS[name];
  const what = w ? (has ? w[0] : w[1]) : has ? `provides ${name}` : `lacks ${name}`;
  return `${driver.id} is ${what}`;
}

/** Does the endpoint's scheme (if any) name this stack? */
export function schemeMatches(driver: Driver, scheme: string | undefined): boolean {
  if (scheme === undefined) return TRANSPORT_LEVEL.has(driver.protocol);
  return driver.schemes ? driver.schemes.includes(scheme) : driver.protocol === scheme;
}

export function judgeStack(driver: Driver, ctx: StackContext): Verdict {
  if (!schemeMatches(driver, ctx.scheme)) {
    return {
      ok: false,
      reason: ctx.scheme === undefined ? `${driver.id} needs a URL scheme naming it` : `the endpoint's scheme ${ctx.scheme}: does not name ${driver.id}`,
    };
  }
  if (ctx.multicast === true && driver.multicast !== true) {
    return { ok: false, reason: `the endpoint is a multicast group and ${driver.id} cannot multicast` };
  }
  const mode = ctx.security.mode;
  if (mode === 'required' && driver.security === 'none') {
    return { ok: false, reason: `${driver.id} is unencrypted and security is required (use SecurityParameters.disabled() or .opportunistic() to allow it)` };
  }
  if (mode === 'disabled' && driver.security !== 'none') {
    return { ok: false, reason: `${driver.id} is encrypted and security is disabled` };
  }
  const has = provided(driver, ctx.framerCount, ctx.properties);
  const problems: string[] = [];
  for (const name of JUDGED) {
    const pref = ctx.properties.preference(name);
    if (pref === 'require' && !has[name]) problems.push(`${name} is required but ${describe(driver, name, false)}`);
    else if (pref === 'prohibit' && has[name]) problems.push(`${name} is prohibited but ${describe(driver, name, true)}`);
  }
  // RFC 9622 §9.1.3.4: a stack that does not protect against duplicated messages (UDP)
  // may be chosen only when the caller marked its messages safely replayable.
  if (mayDuplicate(driver) && ctx.properties.get('safelyReplayable') !== true) {
    problems.push(`${driver.id} may duplicate messages and safelyReplayable is not set (RFC 9622 §9.1.3.4; the unreliableDatagram() profile sets it)`);
  }
  const multipath = ctx.properties.get('multipath');
  if (multipath === 'active') problems.push(`multipath is active but ${driver.id} is single-path`);
  if (problems.length > 0) return { ok: false, reason: problems.join('; ') };
  return { ok: true };
}

const judged = new WeakMap<TransportProperties, WeakMap<Driver, Map<string, Verdict>>>();

/**
 * {@link judgeStack}, remembered per frozen properties snapshot and driver: a
 * Preconnection's snapshot serves many initiates, and the verdict (with its
 * reason text, kept in every report) is the same each time.
 */
export function judgeStackOnce(driver: Driver, ctx: StackContext): Verdict {
  if (!ctx.properties.frozen) return judgeStack(driver, ctx);
  let byDriver = judged.get(ctx.properties);
  if (!byDriver) judged.set(ctx.properties, (byDriver = new WeakMap()));
  let byContext = byDriver.get(driver);
  if (!byContext) byDriver.set(driver, (byContext = new Map()));
  const key = contextKey(ctx.security.mode, ctx.framerCount, ctx.scheme, ctx.multicast === true);
  let verdict = byContext.get(key);
  if (verdict === undefined) byContext.set(key, (verdict = judgeStack(driver, ctx)));
  return verdict;
}

/** The last context key made: a selection judges every driver under one context, and most selections repeat the last one (the same string, its hash kept). */
let lastContext: { mode: string; framerCount: number; scheme: string | undefined; multicast: boolean; key: string } | undefined;

function contextKey(mode: string, framerCount: number, scheme: string | undefined, multicast: boolean): string {
  const l = lastContext;
  if (l !== undefined && l.mode === mode && l.framerCount === framerCount && l.scheme === scheme && l.multicast === multicast) return l.key;
  const key = `${mode}|${framerCount}|${scheme ?? ''}|${multicast ? 'm' : ''}`;
  lastContext = { mode, framerCount, scheme, multicast, key };
  return key;
}
