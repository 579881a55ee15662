/**
 * Deciding one request against compiled rules, synchronously: canonicalise
 * once, then a few index probes. This is the hot path (every candidate, every
 * unconnected UDP datagram), so it allocates little and never scans rules.
 *
 * Semantics (docs/policy.md has the long form):
 * - Deny wins: any matching deny rule (by name or by address) denies.
 * - An address is allowed by an address rule that covers it (a literal, a
 *   CIDR, a preset of its class, or `*` for public addresses).
 * - A name rule allows the name; when the request also carries the address
 *   the name resolved to, the name grant covers it only if it is `public`.
 *   Private, loopback, link-local, metadata and other answers need an address
 *   grant: `tcp://api.example.com:443` never lets api.example.com rebind to
 *   127.0.0.1 or 169.254.169.254.
 * - IPv6 forms embedding IPv4 are judged as the IPv4 (classes.ts); deny
 *   rules also match their IPv6 form, allow rules only the IPv4 one.
 * - Nothing matched: deny `no-match` (or `no-policy` when the tenant has none).
 *
 * @example
 * const c = canonicalRequest({ use: 'connect', protocol: 'tcp', host: 'api.example.com', address: '10.0.0.1', port: 443 });
 * if (c.ok) evaluate([rules], c).allow; // false: a private answer to a name grant
 */
import { canonicalAddress, canonicalHost, canonicalUrl, formatIPv4, type CanonicalAddress } from './canonical.js';
import { classify, type AddressClass } from './classes.js';
import { ANY_SCHEME, SCHEME_INDEX, USE_INDEX, type Bucket, type CompiledRules, type Entry } from './compile.js';
import type { PolicyRule } from './grammar.js';
import { NETWORK_USES, POLICY_PROTOCOLS, type DenyCode, type NetworkUse, type PolicyProtocol, type PolicyRequest } from './types.js';

/** A policy request after canonicalisation: what the rules are matched against. */
export interface CanonicalRequest {
  readonly ok: true;
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  /** The host as given (for records). */
  readonly host: string | undefined;
  readonly name: string | undefined;
  readonly address: CanonicalAddress | undefined;
  readonly cls: AddressClass | undefined;
  readonly v4: number | undefined;
  readonly port: number | undefined;
  readonly url: string | undefined;
}

export interface Rejection {
  readonly ok: false;
  readonly code: DenyCode;
  readonly reason: string;
  readonly use: NetworkUse | undefined;
  readonly protocol: PolicyProtocol | undefined;
  readonly host: string | undefined;
  readonly port: number | undefined;
}

/** What the compiled rules said about a request, before audit mode and the custom rule. */
export interface Verdict {
  readonly allow: boolean;
  readonly code: DenyCode | undefined;
  readonly reason: string;
  readonly rule: PolicyRule | null;
}

const USES = new Set<string>(NETWORK_USES);
const PROTOCOLS = new Set<string>(POLICY_PROTOCOLS);

/** The last well-formed request canonicalised, by its raw fields, and its (frozen) answer. */
let lastRequest:
  | { readonly use: NetworkUse; readonly protocol: unknown; readonly host: unknown; readonly address: unknown; readonly port: unknown; readonly url: unknown; readonly canonical: CanonicalRequest }
  | undefined;

/**
 * The last IPv4 literal a request named, canonical (frozen) and classified: a client dialling one address
 * again parses and classifies it once. Keyed by the exact string (strings cannot change), so a different
 * spelling of the same address is parsed as any other.
 */
let lastV4: { readonly raw: string; readonly address: CanonicalAddress; readonly cls: AddressClass; readonly v4: number } | undefined;

/**
 * Read a request's fields exactly once (a getter cannot answer differently
 * twice) and canonicalise them. Unknown fields, such as a forged `tenant`,
 * are never read.
 */
export function canonicalRequest(req: PolicyRequest): CanonicalRequest | Rejection {
  if (typeof req !== 'object' || req === null) {
    return { ok: false, code: 'policy-error', reason: 'the request is not an object', use: undefined, protocol: undefined, host: undefined, port: undefined };
  }
  const use = req.use;
  let protocol = req.protocol;
  const rawHost = req.host;
  const rawAddress = req.address;
  let port = req.port;
  const url = req.url;
  const rawProtocol = protocol;
  const rawPort = port;
  // The same request as the last one (a client dialling one endpoint again): the same frozen answer.
  const last = lastRequest;
  if (
    last !== undefined && last.use === use && last.protocol === protocol && last.host === rawHost && last.address === rawAddress &&
    Object.is(last.port, port) && last.url === url
  ) return last.canonical;
  if (!USES.has(use as string)) return rejection(use, protocol, rawHost, port, 'policy-error', `unknown use ${JSON.stringify(show(use))}`);
  if (!PROTOCOLS.has(protocol as string)) return rejection(use, protocol, rawHost, port, 'bad-scheme', `unknown protocol ${JSON.stringify(show(protocol))}`);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) return rejection(use, protocol, rawHost, port, 'invalid-host', `invalid port ${show(port)}`);
  let name: string | undefined;
  let address: CanonicalAddress | undefined;
  let hostForRecord = typeof rawHost === 'string' ? rawHost : undefined;
  if (url !== undefined) {
    const u = canonicalUrl(url);
    if (!u.ok) return rejection(use, protocol, rawHost, port, 'badScheme' in u && u.badScheme ? 'bad-scheme' : 'invalid-host', u.reason);
    protocol = u.scheme;
    if (u.port !== undefined) {
      if (port !== undefined && port !== u.port) return rejection(use, protocol, rawHost, port, 'invalid-host', `port ${port} disagrees with the url's port ${u.port}`);
      port = u.port;
    }
    if (u.host.kind === 'name') name = u.host.host;
    else address = u.host;
    hostForRecord ??= u.host.host;
  }
  if (rawHost !== undefined) {
    const h = canonicalHost(rawHost);
    if (!h.ok) return rejection(use, protocol, rawHost, port, 'invalid-host', h.reason);
    if (h.kind === 'name') {
      if (name !== undefined && name !== h.host) return rejection(use, protocol, rawHost, port, 'invalid-host', `host ${JSON.stringify(rawHost)} disagrees with the url's host ${JSON.stringify(name)}`);
      if (address !== undefined) return rejection(use, protocol, rawHost, port, 'invalid-host', `host ${JSON.stringify(rawHost)} disagrees with the url's address`);
      name = h.host;
    } else if (address === undefined) {
      if (name !== undefined) return rejection(use, protocol, rawHost, port, 'invalid-host', `host ${JSON.stringify(rawHost)} disagrees with the url's host ${JSON.stringify(name)}`);
      address = h;
    } else if (address.host !== h.host) return rejection(use, protocol, rawHost, port, 'invalid-host', `host ${JSON.stringify(rawHost)} disagrees with the address`);
  }
  const known = lastV4 !== undefined && lastV4.raw === rawAddress ? lastV4 : undefined;
  if (rawAddress !== undefined) {
    const a = known?.address ?? canonicalAddress(rawAddress);
    if (!a.ok) return rejection(use, protocol, rawHost, port, 'invalid-host', a.reason);
    if (address !== undefined && (address.host !== a.host || (address.kind === 'ipv6' && a.kind === 'ipv6' && address.zone !== a.zone && address.zone !== undefined))) {
      return rejection(use, protocol, rawHost, port, 'invalid-host', `address ${JSON.stringify(rawAddress)} disagrees with the host literal`);
    }
    address = a;
  }
  if (name === undefined && address === undefined) return rejection(use, protocol, rawHost, port, 'invalid-host', `a ${show(use)} request must name a host or an address`);
  if (use === 'lookup' && name === undefined) return rejection(use, protocol, rawHost, port, 'invalid-host', 'a lookup needs a host name, not an address');
  let cls: AddressClass | undefined;
  let v4: number | undefined;
  if (known !== undefined && address === known.address) {
    cls = known.cls;
    v4 = known.v4;
  } else if (address !== undefined) {
    const c = classify(address);
    cls = c.cls;
    v4 = c.v4;
    if (address.kind === 'ipv4' && typeof rawAddress === 'string' && address.host === rawAddress) {
      lastV4 = Object.freeze({ raw: rawAddress, address: Object.freeze(address), cls: c.cls, v4: address.v4 });
    }
  }
  const canonical: CanonicalRequest = { ok: true, use, protocol: protocol as PolicyProtocol, host: hostForRecord, name, address, cls, v4, port, url: typeof url === 'string' ? url : undefined };
  if (remembered(rawProtocol) && remembered(rawHost) && remembered(rawAddress) && remembered(rawPort) && remembered(url)) {
    lastRequest = { use: use as NetworkUse, protocol: rawProtocol, host: rawHost, address: rawAddress, port: rawPort, url, canonical: Object.freeze(canonical) };
  }
  return canonical;
}

/** A request field the last-request memo may compare by value: a string, a number or nothing (never a caller's object). */
function remembered(v: unknown): boolean {
  return v === undefined || typeof v === 'string' || typeof v === 'number';
}

/** A field for an error message: never throws, whatever the caller's object does in toString/valueOf. */
function show(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return String(v);
  } catch {
    return `[unprintable ${typeof v}]`;
  }
}

function rejection(use: unknown, protocol: unknown, host: unknown, port: unknown, code: DenyCode, reason: string): Rejection {
  return {
    ok: false, code, reason,
    use: USES.has(use as string) ? (use as NetworkUse) : undefined,
    protocol: PROTOCOLS.has(protocol as string) ? (protocol as PolicyProtocol) : undefined,
    host: typeof host === 'string' ? host : undefined,
    port: typeof port === 'number' ? port : undefined,
  };
}

// Scratch state for the index visitors (decisions are synchronous, so one set suffices).
let sPort: number | undefined;
let sCls: AddressClass | undefined;
let sDenyOnly = false;
/** Probing the connect buckets for a redirect request: only implied denies count. */
let sImplied = false;
const CONNECT_ROW = USE_INDEX['connect']!;
/** Rows (by USE_INDEX) of the uses a deny without uses also covers, besides connect. */
const IMPLIED_ROWS: boolean[] = [];
IMPLIED_ROWS[USE_INDEX['redirect']!] = true;
let sDeny: Entry | null = null;
let sNameAllow: Entry | null = null;
let sAddrAllow: Entry | null = null;
const STOP = true;

let sLookup = false;
const portOk = (e: Entry): boolean => e.ports === null || (sPort === undefined ? !e.deny : e.ports.has(sPort));

function onName(e: Entry): true | undefined {
  if (sImplied && !e.implied) return undefined;
  if (!portOk(e) || (e.lookupOnly && !sLookup)) return undefined;
  if (e.deny) {
    sDeny = e;
    return STOP;
  }
  sNameAllow ??= e;
  return undefined;
}

function onAddress(e: Entry): true | undefined {
  if (sImplied && !e.implied) return undefined;
  if (!portOk(e)) return undefined;
  if (e.deny) {
    sDeny = e;
    return STOP;
  }
  if (!sDenyOnly && sAddrAllow === null && (e.exact || sCls !== 'cloud-metadata')) sAddrAllow = e;
  return undefined;
}

function probeNames(b: Bucket, name: string): boolean {
  const any = b.anyName;
  for (let i = 0; i < any.length; i++) if (onName(any[i]!) === STOP) return true;
  return b.names.size > 0 && b.names.visit(name, onName) === STOP;
}

function probe(b: Bucket, r: CanonicalRequest): boolean {
  if (r.name !== undefined) {
    if (probeNames(b, r.name)) return true;
    const derived = b.derived;
    // Lookup grants derived from the other uses' name rules, port-blind (sPort is undefined for lookups).
    if (sLookup && derived !== null) for (let i = 0; i < derived.length; i++) if (probeNames(derived[i]!, r.name)) return true;
  }
  const a = r.address;
  if (a !== undefined) {
    sDenyOnly = false;
    if (r.v4 !== undefined) {
      if (b.v4.size > 0 && b.v4.visit(onAddress, r.v4) === STOP) return true;
      if (a.kind === 'ipv6' && b.v6.size > 0) {
        sDenyOnly = true;
        const w = a.v6;
        if (b.v6.visit(onAddress, w[0]!, w[1]!, w[2]!, w[3]!) === STOP) return true;
        sDenyOnly = false;
      }
    } else if (a.kind === 'ipv6' && b.v6.size > 0) {
      const w = a.v6;
      if (b.v6.visit(onAddress, w[0]!, w[1]!, w[2]!, w[3]!) === STOP) return true;
    }
    const list = b.classes.get(r.cls!);
    if (list !== undefined) {
      for (let i = 0; i < list.length; i++) {
        const e = list[i]!;
        if (!portOk(e) || (sImplied && !e.implied)) continue;
        if (e.deny) {
          sDeny = e;
          return true;
        }
        sAddrAllow ??= e;
      }
    }
  }
  return false;
}

/** What the request is, in words, for reasons. */
function subject(r: CanonicalRequest): string {
  const a = r.address;
  let lit = a === undefined ? '' : a.kind === 'ipv6' ? `[${a.host}]` : a.host;
  if (a !== undefined && a.kind === 'ipv6' && r.v4 !== undefined) lit += ` (embeds ${formatIPv4(r.v4)})`;
  const where = a === undefined ? r.name! : r.name === undefined ? lit : `${r.name} (${lit})`;
  return `${r.use} ${r.protocol}://${where}${r.port === undefined ? '' : `:${r.port}`}`;
}

/**
 * Decide a canonical request against rule sets (the tenant's, then any
 * claims grants). `hasPolicy` false turns `no-match` into `no-policy`.
 */
export function evaluate(sets: ReadonlyArray<CompiledRules | undefined>, r: CanonicalRequest, hasPolicy = true): Verdict {
  sLookup = r.use === 'lookup';
  sPort = sLookup ? undefined : r.port;
  sCls = r.cls;
  sDeny = null;
  sNameAllow = null;
  sAddrAllow = null;
  const row = USE_INDEX[r.use]!;
  const col = SCHEME_INDEX[r.protocol]!;
  const implied = IMPLIED_ROWS[row] === true;
  outer: for (let s = 0; s < sets.length; s++) {
    const set = sets[s];
    if (set === undefined) continue;
    const exact = set.buckets[row + col];
    if (exact !== undefined && probe(exact, r)) break outer;
    const star = set.buckets[row + ANY_SCHEME];
    if (star !== undefined && probe(star, r)) break outer;
    if (implied && set.impliedDeny) {
      // A deny written without uses also covers this use: it lives in the connect buckets.
      sImplied = true;
      const c0 = set.buckets[CONNECT_ROW + col];
      const c1 = set.buckets[CONNECT_ROW + ANY_SCHEME];
      const hit = (c0 !== undefined && probe(c0, r)) || (c1 !== undefined && probe(c1, r));
      sImplied = false;
      if (hit) break outer;
    }
  }
  const deny = sDeny as Entry | null;
  const nameAllow = sNameAllow as Entry | null;
  const addrAllow = sAddrAllow as Entry | null;
  sDeny = sNameAllow = sAddrAllow = null;
  if (deny !== null) return { allow: false, code: 'denied', reason: `${subject(r)} is denied by ${deny.rule.text}`, rule: deny.rule };
  if (r.address !== undefined) {
    if (addrAllow !== null) return { allow: true, code: undefined, reason: '', rule: addrAllow.rule };
    if (nameAllow !== null) {
      if (r.cls === 'public') return { allow: true, code: undefined, reason: '', rule: nameAllow.rule };
      return {
        allow: false,
        code: 'no-match',
        reason: `${subject(r)}: ${r.name} is allowed by ${nameAllow.rule.text} but it resolved to a ${r.cls} address; a name grant covers public addresses only, add an address grant (e.g. ${r.protocol}://@${r.cls}:${r.port ?? '*'})`,
        rule: null,
      };
    }
  } else if (nameAllow !== null) return { allow: true, code: undefined, reason: '', rule: nameAllow.rule };
  return hasPolicy
    ? { allow: false, code: 'no-match', reason: `no rule allows ${subject(r)}`, rule: null }
    : { allow: false, code: 'no-policy', reason: `no policy is set for this tenant, so ${subject(r)} is denied`, rule: null };
}
