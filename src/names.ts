/**
 * Host names, IP literals and endpoint strings for endpoint validation
 * (RFC 9622 §6.1): the parsing behind `RemoteEndpoint.from('wss://host/x')`.
 *
 * The spelling comes from the one canonicaliser (src/policy/canonical.ts),
 * which the policy uses too, so an endpoint and a policy decision never see
 * two spellings of one address or name:
 * - host names: lowercase, IDNA A-labels (UTS #46 with the pinned `tr46`, the
 *   same on every Node version), one trailing dot removed; labels 1–63 octets
 *   of letters, digits, `-` (not first or last) and `_`; at most 253 octets.
 * - IPv4: dotted decimal without leading zeros.
 * - IPv6: RFC 5952 text, with a dotted IPv4 tail for the mapped and
 *   compatible forms (`::ffff:a.b.c.d`); a zone (`%eth0`) is split off and
 *   returned on its own.
 *
 * What is stricter here than in the policy is only what is accepted, never
 * the spelling: weird inputs are rejected, not repaired — whitespace, control
 * and invisible (format) characters, `%`, `/`, `\`, `@`, and names that the
 * WHATWG URL parser would read as a number (`127.1`, `0x7f.1`, `example.123`),
 * which the policy turns into the address they mean.
 *
 * @example
 * canonicalHostName('Bücher.DE.', 'hostName'); // 'xn--bcher-kva.de'
 * parseIpLiteral('FE80:0::1%eth0');            // { address: 'fe80::1', family: 6, zone: 'eth0' }
 * parseString('udp://[::1]:9', 'remote');      // { ip: { address: '::1', family: 6 }, port: 9, scheme: 'udp' }
 */
import { isIP } from 'node:net';
import { canonicalHost, formatIPv6, idnaToAscii, parseIPv6 } from './policy/canonical.js';
import { unicodePattern } from './unicode-pattern.js';

export interface IpLiteral {
  /** Canonical text without zone. */
  readonly address: string;
  readonly family: 4 | 6;
  /** IPv6 scope zone (interface name or index), if one was given. */
  readonly zone?: string;
}

/** RFC 6874 zone ids: unreserved characters only; an interface name or index. */
const ZONE = /^[A-Za-z0-9_.~-]{1,64}$/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
// Characters a host name may carry before IDNA mapping: never ASCII punctuation
// other than `-`, `_` and `.`, and never whitespace, controls or format characters.
const BAD_ASCII = /[\x00-\x2c\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]/;
const BAD_UNICODE = unicodePattern('[\\p{Cc}\\p{Cf}\\p{White_Space}\\p{Cs}\\p{Co}\\p{Cn}]');
/** An ASCII name that passed {@link BAD_ASCII}: nothing in it for {@link BAD_UNICODE} to find. */
const PLAIN_NAME = /^[A-Za-z0-9._-]+$/;
const INVISIBLE = unicodePattern('[\\p{Cc}\\p{Cf}\\p{White_Space}]');

/** The WHATWG URL parser treats a name whose last label is numeric as an IPv4 address (`127.1`, `0x7f`). */
function endsInNumber(name: string): boolean {
  const labels = name.split('.');
  let last = labels[labels.length - 1] ?? '';
  if (last === '' && labels.length > 1) last = labels[labels.length - 2] ?? '';
  return /^(?:[0-9]+|0x[0-9a-f]*)$/i.test(last);
}

/**
 * Canonical host name, or a TypeError naming `field`. Does not accept IP
 * literals (check those first with {@link parseIpLiteral}).
 */
export function canonicalHostName(input: unknown, field: string): string {
  if (typeof input !== 'string') throw new TypeError(`${field} must be a string host name, got ${describe(input)}`);
  if (input.length === 0) throw new TypeError(`${field} must not be empty`);
  if (input.length > 1024) throw new TypeError(`${field} is too long to be a host name (${input.length} characters)`);
  if (BAD_ASCII.test(input)) throw new TypeError(`${field} contains a character not allowed in a host name: ${JSON.stringify(input)}`);
  const plain = PLAIN_NAME.test(input);
  if (!plain && BAD_UNICODE().test(input)) throw new TypeError(`${field} contains whitespace, control or invisible characters: ${JSON.stringify(input)}`);
  if (endsInNumber(input)) throw new TypeError(`${field} ${JSON.stringify(input)} ends in a number: give an IP address in standard form or a real name`);
  // Only now is it safe to hand to IDNA: nothing left for it to decode or cut.
  let ascii = plain && !/(^|\.)xn--/i.test(input) ? input.toLowerCase() : (idnaToAscii(input) ?? '');
  if (ascii === '') throw new TypeError(`${field} ${JSON.stringify(input)} is not a valid internationalised domain name`);
  if (ascii.endsWith('.')) ascii = ascii.slice(0, -1);
  if (ascii.length === 0) throw new TypeError(`${field} must not be just a dot`);
  if (ascii.length > 253) throw new TypeError(`${field} is longer than 253 octets`);
  for (const label of ascii.split('.')) {
    if (label.length === 0) throw new TypeError(`${field} ${JSON.stringify(input)} has an empty label`);
    if (label.length > 63) throw new TypeError(`${field} has a label longer than 63 octets`);
    if (!LABEL.test(label)) throw new TypeError(`${field} has an invalid label ${JSON.stringify(label)} (letters, digits, '_' and inner '-' only)`);
  }
  if (endsInNumber(ascii)) throw new TypeError(`${field} ${JSON.stringify(input)} ends in a number`);
  return ascii;
}

/** Canonical IPv6 text (RFC 5952, the one canonicaliser's) of an address `isIP` accepted, without zone. */
function canonicalV6(text: string): string {
  const words = parseIPv6(text);
  if (words === undefined) throw new TypeError(`${JSON.stringify(text.slice(0, 60))} is not an IPv6 address`);
  return formatIPv6(words);
}

/**
 * An IP literal in canonical form, or undefined when `text` is not one.
 * Throws a TypeError naming `field` for an IPv6 literal with a malformed zone.
 */
export function parseIpLiteral(text: string, field = 'ipAddress'): IpLiteral | undefined {
  if (text.length > 128) return undefined;
  const pct = text.indexOf('%');
  const bare = pct < 0 ? text : text.slice(0, pct);
  const family = isIP(bare);
  if (family === 4) {
    if (pct >= 0) throw new TypeError(`${field} ${JSON.stringify(text)}: an IPv4 address has no zone`);
    return { address: bare, family: 4 };
  }
  if (family !== 6) return undefined;
  const address = canonicalV6(bare.toLowerCase());
  if (pct < 0) return { address, family: 6 };
  const zone = text.slice(pct + 1);
  if (!ZONE.test(zone)) throw new TypeError(`${field} ${JSON.stringify(text)} has an invalid zone (letters, digits, '_', '.', '~', '-')`);
  // The same rule as the policy's: a zone only where it names a link (link-local unicast, link/interface-local multicast).
  const c = canonicalHost(`${bare}%${zone}`);
  if (!c.ok) throw new TypeError(`${field} ${JSON.stringify(text)}: ${c.reason}`);
  return { address, family: 6, zone };
}

/** Canonical IP address or a TypeError naming `field`. */
export function canonicalIp(input: unknown, field: string): IpLiteral {
  if (typeof input !== 'string') throw new TypeError(`${field} must be an IP address string, got ${describe(input)}`);
  const ip = parseIpLiteral(input, field);
  if (!ip) throw new TypeError(`${field} ${JSON.stringify(input.slice(0, 80))} is not an IPv4 or IPv6 address in standard form`);
  return ip;
}

/** Is the zone text acceptable (used by endpoint parsing of `[v6%25zone]`)? */
export function isValidZone(zone: string): boolean {
  return ZONE.test(zone);
}

export const SCHEME = /^[a-z][a-z0-9+.-]{0,31}$/i;
const PATH_OK = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]$/;

/** What an endpoint string or URL names. */
export interface Parsed {
  name?: string;
  ip?: IpLiteral;
  port?: number;
  scheme?: string;
  path?: string;
}

export function checkPort(v: unknown, field: string): number {
  if (typeof v !== 'number') throw new TypeError(`${field} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`${field} must be an integer from 0 to 65535, got ${v}`);
  return v;
}

export function portText(text: string, field: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw new TypeError(`${field} has an invalid port ${JSON.stringify(text.slice(0, 20))}`);
  return checkPort(Number(text), `${field} port`);
}

function hostText(text: string, field: string): Parsed {
  const ip = parseIpLiteral(text, field);
  if (ip) return { ip };
  return { name: canonicalHostName(text, field) };
}

/** `[v6]`, `[v6%zone]` (bare form) or `[v6%25zone]` (URL form, RFC 6874). */
function bracketed(inner: string, field: string, url: boolean): IpLiteral {
  const pct = inner.indexOf('%');
  let text = inner;
  if (pct >= 0) {
    let zone = inner.slice(pct + 1);
    if (url) {
      if (!zone.startsWith('25')) throw new TypeError(`${field}: a zone in a URL is written %25zone (RFC 6874)`);
      zone = zone.slice(2);
    }
    if (!isValidZone(zone)) throw new TypeError(`${field} has an invalid zone ${JSON.stringify(zone.slice(0, 20))}`);
    text = `${inner.slice(0, pct)}%${zone}`;
  }
  const ip = parseIpLiteral(text, field);
  if (!ip || ip.family !== 6) throw new TypeError(`${field}: [${inner.slice(0, 60)}] is not an IPv6 address`);
  return ip;
}

/** host, host:port, [v6], [v6]:port; in bare form also an unbracketed IPv6 literal. */
function parseAuthority(auth: string, field: string, url: boolean): Parsed {
  if (auth.includes('@')) throw new TypeError(`${field} must not contain user information (user@host)`);
  if (auth.startsWith('[')) {
    const close = auth.indexOf(']');
    if (close < 0) throw new TypeError(`${field} has an unclosed [`);
    const ip = bracketed(auth.slice(1, close), field, url);
    const rest = auth.slice(close + 1);
    if (rest === '') return { ip };
    if (!rest.startsWith(':')) throw new TypeError(`${field} has text after the IPv6 literal`);
    return { ip, port: portText(rest.slice(1), field) };
  }
  const colons = auth.split(':').length - 1;
  if (colons > 1) {
    if (url) throw new TypeError(`${field}: an IPv6 address in a URL must be in brackets`);
    const ip = parseIpLiteral(auth, field);
    if (!ip) throw new TypeError(`${field} ${JSON.stringify(auth.slice(0, 60))} is neither host:port nor an IPv6 address`);
    return { ip };
  }
  if (colons === 1) {
    const at = auth.indexOf(':');
    return { ...hostText(auth.slice(0, at), field), port: portText(auth.slice(at + 1), field) };
  }
  return hostText(auth, field);
}

export function checkPath(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new TypeError(`${field} must be a string, got ${describe(v)}`);
  if (!v.startsWith('/')) throw new TypeError(`${field} must start with "/"`);
  if (v.length > 8192) throw new TypeError(`${field} is longer than 8192 characters`);
  let out = '';
  for (const ch of v) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp > 0x7f) {
      if (cp >= 0xd800 && cp <= 0xdfff) throw new TypeError(`${field} contains an unpaired surrogate`);
      if (INVISIBLE().test(ch)) throw new TypeError(`${field} contains whitespace or invisible characters`);
      for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    } else if (PATH_OK.test(ch)) {
      out += ch;
    } else {
      throw new TypeError(`${field} contains ${JSON.stringify(ch)}, which is not allowed in a URL path (percent-encode it)`);
    }
  }
  if (/%(?![0-9A-Fa-f]{2})/.test(out)) throw new TypeError(`${field} has a malformed percent-escape`);
  return out;
}

export function parseUrl(text: string, field: string): Parsed {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(text);
  if (!m) throw new TypeError(`${field} must be a URL of the form scheme://host[:port][/path]`);
  const scheme = (m[1] ?? '').toLowerCase();
  if (!SCHEME.test(scheme)) throw new TypeError(`${field} has an invalid scheme`);
  let rest = m[3] ?? '';
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    if (scheme !== 'http' && scheme !== 'https') throw new TypeError(`${field}: a ${scheme} URL must not have a #fragment`);
    rest = rest.slice(0, hash);
  }
  const auth = m[2] ?? '';
  if (auth === '') throw new TypeError(`${field} has no host`);
  const parsed: Parsed = { ...parseAuthority(auth, field, true), scheme };
  if (rest !== '') parsed.path = checkPath(rest.startsWith('?') ? `/${rest}` : rest, `${field} path`);
  return parsed;
}

/** A string argument: a URL when it has `scheme://`, otherwise host[:port]. */
export function parseString(text: string, field: string): Parsed {
  if (text.length === 0) throw new TypeError(`${field} must not be empty`);
  if (text.length > 8192) throw new TypeError(`${field} is too long`);
  if (/[\s\\\x00-\x1f\x7f]/.test(text)) throw new TypeError(`${field} contains whitespace, a backslash or a control character`);
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? parseUrl(text, field) : parseAuthority(text, field, false);
}

/** A short description of a value for error messages (never the whole value). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  return `${typeof value} ${String(value)}`;
}
