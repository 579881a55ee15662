/**
 * What a lookup hands back, made safe: a resolver's answers reduced to
 * well-formed, canonical addresses of the asked family (a resolver may
 * answer junk, a name, or the other family), and the answer to "looking up"
 * an IP literal (itself, no query, no grant needed).
 *
 * @example
 * keepAnswers([{ address: '127.1' }, { address: 'evil' }], 4); // [{ address: '127.0.0.1', family: 4 }]
 */
import type { ResolvedAddress } from './contract.js';
import { canonicalAddress, dialString, knownAddress, type CanonicalAddress } from './canonical.js';
import type { PolicyDecision } from './types.js';

/** The decision an IP literal gets from `authorizeLookup`: nothing to look up, nothing to record. */
export const LITERAL_LOOKUP: PolicyDecision & { allow: true } = Object.freeze({ allow: true, rule: null, reason: 'an IP literal needs no lookup' });

/**
 * Keep only well-formed answers of the asked family, canonical
 * (a resolver may answer junk, a name, or the other family).
 */
export function keepAnswers(answers: unknown, family: 4 | 6): ResolvedAddress[] {
  const out: ResolvedAddress[] = [];
  for (const a of Array.isArray(answers) ? (answers as Partial<ResolvedAddress>[]) : []) {
    const address = a?.address;
    const c = typeof address === 'string' ? knownAddress(address) : canonicalAddress(address);
    if (!c.ok || (c.kind === 'ipv4' ? 4 : 6) !== family) continue;
    const ttl = a?.ttl;
    out.push(typeof ttl === 'number' ? { address: dialString(c), family, ttl } : { address: dialString(c), family });
  }
  return out;
}

/** The answer to looking up an IP literal: itself, when the family matches. */
export function literalAnswer(c: CanonicalAddress, family: 4 | 6): ResolvedAddress[] {
  return (c.kind === 'ipv4' ? 4 : 6) === family ? [{ address: dialString(c), family }] : [];
}
