/**
 * Canonicalisation, the one place hosts, addresses and URLs get their
 * spelling: endpoints (src/names.ts builds its field checks on it) and the
 * policy decide and dial exactly the same text. Whatever a caller wrote
 * becomes the one form, or is refused. Canonicalise once, then decide; the
 * canonical name is what is looked up and what drivers present (SNI/Host),
 * the canonical address is what is connected.
 *
 * - IPv4 follows the WHATWG URL "IPv4 parser", which agrees with the
 *   resolver's inet_aton on every numeric form (`127.1`, `0x7f.1`,
 *   `2130706433`, `0177.0.0.1`, `012.0.0.1` = 10.0.0.1). A host whose last
 *   label is numeric is an address or is rejected, never a name.
 * - IPv6 is RFC 5952 text (lowercase, longest zero run `::`), with the IPv4
 *   tail in dotted form exactly where the system writes it (RFC 5952 §5;
 *   libuv and glibc inet_ntop): IPv4-mapped `::ffff:a.b.c.d` and
 *   IPv4-compatible `::a.b.c.d`, so an address a socket reports reads the same
 *   as the one that was decided. A zone id (`fe80::1%eth0`) is kept only on
 *   link-local unicast and on interface- or link-local multicast.
 * - Names: lowercase, one trailing dot stripped, LDH labels (plus `_`),
 *   ≤ 253 characters. A non-ASCII name, or one with an `xn--` label, goes
 *   through UTS #46 (IDNA) with the pinned `tr46` package, never Node's URL
 *   code: what an A-label means, and so what the policy decides, must not
 *   depend on the Node version (Node 24 accepts `xn--zz`, which is not even
 *   valid Punycode; 20 and 22 refuse it). Every A-label must decode.
 * - Refused in authorities: userinfo (`@`), backslash, `%` escapes,
 *   whitespace, NUL and other controls, `/?#`.
 *
 * @example
 * canonicalHost('0x7f.1');          // { kind: 'ipv4', host: '127.0.0.1', ... }
 * canonicalHost('Bücher.DE.');       // { kind: 'name', host: 'xn--bcher-kva.de' }
 * canonicalHost('::FFFF:7F00:1');    // { kind: 'ipv6', host: '::ffff:127.0.0.1', ... }
 * canonicalUrl('http://127.0.0.1@evil.com/').ok; // false: userinfo
 */
import { createRequire } from 'node:module';
import { POLICY_PROTOCOLS, type PolicyProtocol } from './types.js';

/** A host after canonicalisation: a name, an IPv4 or IPv6 address, or why it was refused. */
export type CanonicalHost =
  | { readonly ok: true; readonly kind: 'ipv4'; readonly host: string; readonly v4: number }
  | { readonly ok: true; readonly kind: 'ipv6'; readonly host: string; readonly v6: Uint32Array; readonly zone?: string | undefined }
  | { readonly ok: true; readonly kind: 'name'; readonly host: string }
  | { readonly ok: false; readonly reason: string };

/** A canonical IP address (a {@link CanonicalHost} that is one). */
export type CanonicalAddress = Extract<CanonicalHost, { kind: 'ipv4' | 'ipv6' }>;

/** A URL after canonicalisation, or why it was refused. */
export interface CanonicalUrl {
  readonly ok: true;
  readonly scheme: PolicyProtocol;
  readonly host: Exclude<CanonicalHost, { ok: false }>;
  readonly port: number | undefined;
}

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** Default ports of the URL schemes that have one. */
export const DEFAULT_PORTS: Readonly<Partial<Record<PolicyProtocol, number>>> = Object.freeze({
  http: 80, ws: 80, https: 443, wss: 443, webtransport: 443,
});

// ---------------------------------------------------------------- IPv4

function parseV4Number(part: string): number {
  let radix = 10;
  let s = part;
  if (s.length >= 2 && s[0] === '0' && (s[1] === 'x' || s[1] === 'X')) {
    radix = 16;
    s = s.slice(2);
  } else if (s.length >= 2 && s[0] === '0') {
    radix = 8;
    s = s.slice(1);
  }
  if (s.length === 0) return 0;
  const re = radix === 10 ? /^[0-9]+$/ : radix === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/;
  if (!re.test(s)) return NaN;
  // Long digit strings overflow exactly; anything ≥ 2^32 is rejected by the caller.
  return s.length > 12 ? Infinity : parseInt(s, radix);
}

/** True when the last label (after one trailing dot) is numeric: WHATWG "ends in a number". */
export function endsInNumber(host: string): boolean {
  let end = host.length;
  if (end > 0 && host.charCodeAt(end - 1) === 0x2e) end--;
  const start = host.lastIndexOf('.', end - 1) + 1;
  const last = host.slice(start, end);
  if (last.length === 0) return false;
  return /^[0-9]+$/.test(last) || /^0[xX][0-9a-fA-F]*$/.test(last);
}

/** Parse any IPv4 form the resolver accepts into a uint32, or NaN. */
export function parseIPv4(input: string): number {
  // Fast path: strict dotted decimal without leading zeros.
  const m = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.exec(input);
  if (m) return ((+m[1]! << 24) | (+m[2]! << 16) | (+m[3]! << 8) | +m[4]!) >>> 0;
  const parts = input.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0 || parts.length > 4) return NaN;
  const nums: number[] = [];
  for (const p of parts) {
    if (p.length === 0) return NaN;
    const n = parseV4Number(p);
    if (Number.isNaN(n)) return NaN;
    nums.push(n);
  }
  for (let i = 0; i < nums.length - 1; i++) if (nums[i]! > 255) return NaN;
  const last = nums[nums.length - 1]!;
  if (last >= 256 ** (5 - nums.length)) return NaN;
  let v = last;
  for (let i = 0; i < nums.length - 1; i++) v += nums[i]! * 256 ** (3 - i);
  return v >>> 0;
}

/** Dotted-quad text of an IPv4 address held as a 32-bit number. */
export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

// ---------------------------------------------------------------- IPv6

/** Parse an IPv6 address (no brackets, no zone) into four uint32 words, or undefined. WHATWG IPv6 parser. */
export function parseIPv6(input: string): Uint32Array | undefined {
  const a = [0, 0, 0, 0, 0, 0, 0, 0];
  let piece = 0;
  let compress = -1;
  let i = 0;
  const n = input.length;
  const hex = (c: number) => (c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1);
  if (n === 0) return undefined;
  if (input.charCodeAt(0) === 58) {
    if (input.charCodeAt(1) !== 58) return undefined;
    i = 2;
    piece = 1;
    compress = 1;
  }
  while (i < n) {
    if (piece === 8) return undefined;
    if (input.charCodeAt(i) === 58) {
      if (compress !== -1) return undefined;
      i++;
      piece++;
      compress = piece;
      continue;
    }
    let value = 0;
    let len = 0;
    while (len < 4 && i < n && hex(input.charCodeAt(i)) >= 0) {
      value = value * 16 + hex(input.charCodeAt(i));
      i++;
      len++;
    }
    if (i < n && input.charCodeAt(i) === 46) {
      // Dotted IPv4 tail: strict decimal, no leading zeros.
      if (len === 0) return undefined;
      i -= len;
      if (piece > 6) return undefined;
      let seen = 0;
      while (i < n) {
        let v4 = -1;
        if (seen > 0) {
          if (input.charCodeAt(i) === 46 && seen < 4) i++;
          else return undefined;
        }
        const c0 = input.charCodeAt(i);
        if (!(c0 >= 48 && c0 <= 57)) return undefined;
        while (i < n) {
          const c = input.charCodeAt(i);
          if (!(c >= 48 && c <= 57)) break;
          if (v4 === -1) v4 = c - 48;
          else if (v4 === 0) return undefined;
          else v4 = v4 * 10 + (c - 48);
          if (v4 > 255) return undefined;
          i++;
        }
        a[piece] = a[piece]! * 256 + v4;
        seen++;
        if (seen === 2 || seen === 4) piece++;
      }
      if (seen !== 4) return undefined;
      break;
    } else if (i < n && input.charCodeAt(i) === 58) {
      i++;
      if (i >= n) return undefined;
    } else if (i < n) {
      return undefined;
    }
    if (len === 0) return undefined;
    a[piece] = value;
    piece++;
  }
  if (compress !== -1) {
    let swaps = piece - compress;
    piece = 7;
    while (piece !== 0 && swaps > 0) {
      const j = compress + swaps - 1;
      const t = a[piece]!;
      a[piece] = a[j]!;
      a[j] = t;
      piece--;
      swaps--;
    }
  } else if (piece !== 8) {
    return undefined;
  }
  const w = new Uint32Array(4);
  for (let k = 0; k < 4; k++) w[k] = ((a[2 * k]! << 16) | a[2 * k + 1]!) >>> 0;
  return w;
}

/**
 * RFC 5952 text of four words: the longest run of two or more zero groups as
 * `::` (the first on a tie), lowercase hex; with `dotted` (the default) the
 * IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) forms keep
 * their IPv4 tail in dotted decimal, as RFC 5952 §5 recommends and as the
 * system's inet_ntop writes them. `dotted: false` is the WHATWG URL form (all hex).
 */
export function formatIPv6(w: ArrayLike<number>, dotted = true): string {
  const p: number[] = [];
  for (let k = 0; k < 4; k++) p.push(w[k]! >>> 16, w[k]! & 0xffff);
  let best = -1;
  let bestLen = 1;
  for (let k = 0; k < 8; ) {
    if (p[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && p[e] === 0) e++;
    if (e - k > bestLen) {
      best = k;
      bestLen = e - k;
    }
    k = e;
  }
  if (dotted && best === 0 && (bestLen === 6 || (bestLen === 5 && p[5] === 0xffff))) {
    const v4 = `${p[6]! >>> 8}.${p[6]! & 255}.${p[7]! >>> 8}.${p[7]! & 255}`;
    return bestLen === 6 ? `::${v4}` : `::ffff:${v4}`;
  }
  let out = '';
  for (let k = 0; k < 8; k++) {
    if (k === best) {
      out += k === 0 ? '::' : ':';
      k += bestLen - 1;
      continue;
    }
    out += p[k]!.toString(16);
    if (k !== 7) out += ':';
  }
  return out;
}

/** RFC 6874 zone ids: unreserved characters, an interface name or index. */
const ZONE = /^[A-Za-z0-9_.~-]{1,64}$/;

/** Link-local unicast (fe80::/10) or multicast (ff00::/8): addresses whose zone names the link or interface (RFC 4007 §6). */
function zoned(w: Uint32Array): boolean {
  return (w[0]! & 0xffc00000) >>> 0 === 0xfe800000 || w[0]! >>> 24 === 0xff;
}

/** `body` is `addr[%zone]`; in brackets (a URL authority) the zone is written `%25zone` (RFC 6874). */
function v6Result(body: string, bracketed = false): CanonicalHost {
  let zone: string | undefined;
  const pct = body.indexOf('%');
  let addr = body;
  if (pct !== -1) {
    zone = body.slice(pct + 1);
    if (bracketed && zone.startsWith('25') && zone.length > 2) zone = zone.slice(2);
    addr = body.slice(0, pct);
    if (!ZONE.test(zone)) return fail(`invalid IPv6 zone id in ${JSON.stringify(body)}`);
  }
  const w = parseIPv6(addr);
  if (!w) return fail(`invalid IPv6 address ${JSON.stringify(body)}`);
  if (zone !== undefined && !zoned(w)) {
    return fail(`a zone id is only meaningful on a link-local address (${JSON.stringify(body)})`);
  }
  return { ok: true, kind: 'ipv6', host: formatIPv6(w), v6: w, zone };
}

// ---------------------------------------------------------------- names

const FORBIDDEN = /[\x00-\x20\x7f\\@/?#%<>^|"'`{}[\]:;,=+*!$&()~]/;
const LDH_NAME = /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const ASCII_FAST = /^[a-z0-9._-]+$/;

// UTS #46 as the WHATWG URL standard applies it (domain to ASCII, not strict), from a pinned package.
type Tr46 = { toASCII(domain: string, options: Record<string, boolean>): string | null };
let tr46: Tr46 | undefined;
const IDNA_OPTIONS = Object.freeze({
  checkHyphens: false, checkBidi: true, checkJoiners: true, useSTD3ASCIIRules: false, transitionalProcessing: false, verifyDNSLength: false,
});

/**
 * A name to its A-label form with UTS #46 (`tr46`, loaded on the first name
 * that needs it), or undefined when it is not a valid IDN: a label that does
 * not decode, a disallowed code point, a bidi or joiner rule broken. The same
 * answer on every Node version.
 */
export function idnaToAscii(name: string): string | undefined {
  tr46 ??= createRequire(import.meta.url)('tr46') as Tr46;
  const trailing = name.endsWith('.') || name.endsWith('\u3002') || name.endsWith('\uff0e') || name.endsWith('\uff61');
  const ascii = tr46.toASCII(trailing ? name.slice(0, -1) : name, IDNA_OPTIONS);
  if (ascii === null || ascii === '') return undefined;
  return trailing ? `${ascii}.` : ascii;
}

function nameOrNumber(input: string): CanonicalHost {
  let s = input;
  if (!ASCII_FAST.test(s) || s.includes('xn--')) {
    if (FORBIDDEN.test(s)) return fail(`forbidden character in host ${JSON.stringify(input)}`);
    const ascii = idnaToAscii(s);
    if (ascii === undefined) return fail(`not a valid internationalised host name: ${JSON.stringify(input)}`);
    s = ascii;
    if (FORBIDDEN.test(s)) return fail(`forbidden character in host ${JSON.stringify(input)}`);
  }
  if (endsInNumber(s)) {
    const v = parseIPv4(s);
    if (Number.isNaN(v)) return fail(`${JSON.stringify(input)} ends in a number but is not a valid IPv4 address`);
    return { ok: true, kind: 'ipv4', host: formatIPv4(v), v4: v };
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.length > 253 || !LDH_NAME.test(s)) return fail(`invalid host name ${JSON.stringify(input)}`);
  return { ok: true, kind: 'name', host: s };
}

/** Strict dotted-quad decimal without leading zeros (already canonical), as a uint32; -1 otherwise. */
function strictV4(s: string): number {
  const n = s.length;
  if (n < 7 || n > 15) return -1;
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || dots === 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 0x30);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (digits === 0 || dots !== 3) return -1;
  return (v * 256 + part) >>> 0;
}

/**
 * A name that is already canonical (lowercase LDH/underscore labels of 1-63,
 * ≤ 253 characters, not ending in a number, no `xn--`), minus one trailing
 * dot; undefined sends it down the full path.
 */
function fastName(s: string): string | undefined {
  let n = s.length;
  if (n > 1 && s.charCodeAt(n - 1) === 0x2e) n--;
  if (n === 0 || n > 253) return undefined;
  let labelStart = 0;
  let allDigits = true;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 0x2e : s.charCodeAt(i);
    if (c === 0x2e) {
      const len = i - labelStart;
      if (len === 0 || len > 63) return undefined;
      if (s.charCodeAt(labelStart) === 0x2d || s.charCodeAt(i - 1) === 0x2d) return undefined;
      if (i === n && (allDigits || (len >= 2 && s.charCodeAt(labelStart) === 0x30 && s.charCodeAt(labelStart + 1) === 0x78))) return undefined;
      if (len >= 4 && s.charCodeAt(labelStart + 2) === 0x2d && s.charCodeAt(labelStart + 3) === 0x2d) return undefined; // xn-- and other ??-- labels
      labelStart = i + 1;
      allDigits = true;
    } else if (c >= 0x30 && c <= 0x39) {
      /* digit */
    } else if ((c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f) {
      allDigits = false;
    } else return undefined;
  }
  return n === s.length ? s : s.slice(0, n);
}

/**
 * Canonicalise a raw host: a name, an IPv4 in any resolver form, an IPv6
 * literal with or without brackets (and a link-local zone id).
 */
export function canonicalHost(input: unknown): CanonicalHost {
  if (typeof input !== 'string') return fail('host must be a string');
  const n = input.length;
  if (n === 0 || n > 1024) return fail('host is empty or too long');
  const c0 = input.charCodeAt(0);
  if (c0 === 0x5b) {
    if (input.charCodeAt(n - 1) !== 0x5d) return fail(`unterminated IPv6 literal ${JSON.stringify(input)}`);
    return v6Result(input.slice(1, -1), true);
  }
  const v4 = strictV4(input);
  if (v4 >= 0) return { ok: true, kind: 'ipv4', host: input, v4 };
  if (input.includes(':')) return v6Result(input);
  const name = fastName(input);
  if (name !== undefined) return { ok: true, kind: 'name', host: name };
  return nameOrNumber(input.toLowerCase());
}

/**
 * @internal `canonicalHost` of a string, remembered: a selection canonicalises the same few names and addresses on
 * every candidate (the name each target presents, the lookup, each answer). The result is shared between callers,
 * so only code of this library that reads `ok`, `kind`, `host` and `zone` and hands out strings uses it (an IPv6
 * result's words are a mutable array: `canonicalHost`, which the package exports, always makes a new one).
 */
export function knownHost(input: string): CanonicalHost {
  let h = known.get(input);
  if (h === undefined) {
    h = canonicalHost(input);
    if (!h.ok) return h; // a failure is not kept (nor its input, which may be long)
    if (known.size >= KNOWN_HOSTS) known.clear(); // bounded: a caller naming many hosts only costs the parse again
    known.set(input, h);
  }
  return h;
}

const KNOWN_HOSTS = 256;
const known = new Map<string, CanonicalHost>();

/** @internal `canonicalAddress` of a string, from `knownHost` (the same sharing rule). */
export function knownAddress(input: string): CanonicalAddress | { ok: false; reason: string } {
  const h = knownHost(input);
  if (!h.ok) return h;
  if (h.kind === 'name') return fail(`${JSON.stringify(input)} is not an IP address`);
  return h;
}

/** Canonicalise something that must be an IP literal (never a name). */
export function canonicalAddress(input: unknown): CanonicalAddress | { ok: false; reason: string } {
  const h = canonicalHost(input);
  if (!h.ok) return h;
  if (h.kind === 'name') return fail(`${JSON.stringify(input)} is not an IP address`);
  return h;
}

/** The address as a driver should dial it (IPv6 keeps its zone id). */
export function dialString(a: CanonicalAddress): string {
  return a.kind === 'ipv6' && a.zone !== undefined ? `${a.host}%${a.zone}` : a.host;
}

// ---------------------------------------------------------------- URLs

const SPECIAL = new Set(['http', 'https', 'ws', 'wss']);
const ASCII_FAST_AUTHORITY = /^[A-Za-z0-9._:[\]-]+$/;

/**
 * Canonicalise the scheme, host and port of a URL (redirect hops).
 * Refuses what parsers disagree on instead of guessing: userinfo, backslash,
 * `%` in the authority, any whitespace or control character.
 */
export function canonicalUrl(input: unknown): CanonicalUrl | { ok: false; reason: string; badScheme?: boolean } {
  if (typeof input !== 'string') return fail('url must be a string');
  if (input.length > 8192) return fail('url is too long');
  if (/[\x00-\x20\x7f\\]/.test(input)) return fail(`url contains whitespace, a control character or a backslash: ${JSON.stringify(input)}`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(input);
  if (!m) return fail(`url has no scheme: ${JSON.stringify(input)}`);
  const scheme = m[1]!.toLowerCase();
  if (!(POLICY_PROTOCOLS as readonly string[]).includes(scheme)) {
    return { ok: false, reason: `scheme ${JSON.stringify(scheme)} is not a network scheme`, badScheme: true };
  }
  const rest = input.slice(m[0].length);
  if (!rest.startsWith('//')) return fail(`url ${JSON.stringify(input)} has no authority (expected "${scheme}://")`);
  const end = rest.slice(2).search(/[/?#]/);
  const authority = end === -1 ? rest.slice(2) : rest.slice(2, 2 + end);
  if (authority.includes('@')) return fail(`url carries userinfo, refused: ${JSON.stringify(input)}`);
  if (authority.includes('%')) return fail(`url authority contains a percent escape, refused: ${JSON.stringify(input)}`);
  let hostPart = authority;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) return fail(`unterminated IPv6 literal in ${JSON.stringify(input)}`);
    hostPart = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return fail(`junk after IPv6 literal in ${JSON.stringify(input)}`);
    portText = after === '' ? undefined : after.slice(1);
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      hostPart = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
    }
  }
  const host = canonicalHost(hostPart);
  if (!host.ok) return host;
  let port: number | undefined = DEFAULT_PORTS[scheme as PolicyProtocol];
  if (portText !== undefined && portText !== '') {
    if (!/^[0-9]{1,5}$/.test(portText) || +portText > 65535) return fail(`invalid port ${JSON.stringify(portText)} in ${JSON.stringify(input)}`);
    port = +portText;
  }
  if (SPECIAL.has(scheme) && ASCII_FAST_AUTHORITY.test(hostPart) && !hostPart.includes('xn--')) {
    // Defence in depth: an HTTP client's WHATWG parser must see the same host. Only for plain ASCII hosts,
    // whose WHATWG reading does not change between Node versions; IDNs and A-labels are ours alone (above).
    let whatwg: string;
    try {
      whatwg = new URL(input).hostname;
    } catch {
      return fail(`url does not parse: ${JSON.stringify(input)}`);
    }
    if (host.kind === 'name' && whatwg.endsWith('.')) whatwg = whatwg.slice(0, -1);
    const expected = host.kind === 'ipv6' ? `[${formatIPv6(host.v6, false)}]` : host.host;
    if (whatwg !== expected) return fail(`url host is ambiguous (${JSON.stringify(whatwg)} vs ${JSON.stringify(expected)})`);
  }
  return { ok: true, scheme: scheme as PolicyProtocol, host, port };
}
