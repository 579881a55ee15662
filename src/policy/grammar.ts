/**
 * The rule grammar (Spin-like), one rule at a time:
 *
 *     rule   = [uses ":"] scheme "://" host [":" ports] [" strict"]
 *     uses   = use *("," use)        ; lookup connect bind accept redirect
 *                                     ; default: connect for allow; connect,redirect for deny
 *     scheme = tcp | tls | udp | quic | webtransport | http | https | ws | wss | "*"
 *     host   = "*" | "@" preset | "*." name | name | ipv4 ["/" len] | "[" ipv6 ["/" len] "]"
 *     ports  = "*" | range *("," range) ; range = port ["-" port]
 *
 * `*.example.com` matches names below example.com, never example.com itself.
 * A port may be left out for http/https/ws/wss/webtransport (their default)
 * and must be left out (or `*`) on lookup-only rules. ` strict` after an
 * allow rule that names hosts by name asks for strict answers: a name it
 * grants is refused whole when any address it resolves to is one the tenant
 * may not connect to (src/policy/scope.ts decides). Every mistake is a
 * {@link PolicyParseError} naming the rule and the position in it; nothing
 * invalid ever becomes an allow.
 *
 * @example
 * parseRule('connect,redirect:https://*.example.com', 'allow');
 * parseRule({ use: ['bind'], scheme: 'tcp', host: '127.0.0.1', port: '8000-8100' }, 'allow');
 */
import { TapsError } from '../errors.js';
import { ownField } from '../own.js';
import { canonicalHost, formatIPv4, formatIPv6, parseIPv6, DEFAULT_PORTS } from './canonical.js';
import { isPresetName, PRESETS, type PresetName } from './classes.js';
import { maskWords, PortSet } from './trie.js';
import { NETWORK_USES, POLICY_PROTOCOLS, type NetworkUse, type PolicyProtocol } from './types.js';

/** The host part of a rule: any, a name, a `*.suffix`, a CIDR or a preset. */
export type HostPattern =
  | { readonly kind: 'any' }
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'suffix'; readonly suffix: string }
  | { readonly kind: 'cidr'; readonly family: 4 | 6; readonly words: readonly number[]; readonly prefix: number }
  | { readonly kind: 'preset'; readonly preset: PresetName };

/** One parsed rule (docs/policy.md#rules). */
export interface PolicyRule {
  readonly effect: 'allow' | 'deny';
  readonly uses: readonly NetworkUse[];
  readonly scheme: PolicyProtocol | '*';
  readonly host: HostPattern;
  /** null: any port. */
  readonly ports: PortSet | null;
  /**
   * Strict answers for the names this rule grants: one forbidden address in
   * a name's answers refuses the name (an allow rule naming hosts by name only).
   */
  readonly strict: boolean;
  /** The rule as written (JSON rules: as rendered to text). Decision records cite it. */
  readonly text: string;
  /** Where it came from: `policy.txt:7:7` or `allow[3]`. */
  readonly where: string;
}

/** The JSON form of one rule. `port` may be a number, `"80,443"`, `"8000-8100"`, `"*"` or an array of those. */
export interface JsonRule {
  readonly use?: NetworkUse | readonly NetworkUse[];
  readonly scheme: PolicyProtocol | '*';
  readonly host: string;
  readonly port?: number | string | ReadonlyArray<number | string>;
  /** `"strict"`: strict answers for the names this rule grants (rendered as the text form's ` strict`). */
  readonly answers?: 'strict' | 'each';
}

/** Where a rule came from, for error messages. */
export interface ParseLocation {
  /** File name or label, e.g. `policy.txt` or `tenant acme`. */
  readonly source?: string | undefined;
  /** 1-based line of the rule's first character, when parsed from text. */
  readonly line?: number | undefined;
  /** 1-based column of the rule's first character. */
  readonly column?: number | undefined;
  /** JSON path, e.g. `tenants.acme.allow[3]`. */
  readonly path?: string | undefined;
}

/** A policy that does not parse. The old revision stays in force. */
export class PolicyParseError extends TapsError {
  /** The offending rule or line as written. */
  readonly rule: string;
  readonly source: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** 0-based offset of the problem inside `rule`. */
  readonly position: number;
  readonly path: string | undefined;
  readonly detail: string;
  constructor(detail: string, rule: string, position: number, at: ParseLocation = {}) {
    const col = at.column === undefined ? undefined : at.column + position;
    const where = [at.source, at.line, col].filter((x) => x !== undefined).join(':');
    const path = at.path === undefined ? '' : ` at ${at.path}`;
    super(
      'ERR_TAPS_INVALID_CONFIGURATION',
      `${where ? `${where}: ` : ''}${detail}${rule === '' ? '' : ` in rule ${JSON.stringify(rule)}`}${path} (position ${position})`,
    );
    this.rule = rule;
    this.source = at.source;
    this.line = at.line;
    this.column = col;
    this.position = position;
    this.path = at.path;
    this.detail = detail;
  }
}

const SCHEMES = new Set<string>([...POLICY_PROTOCOLS, '*']);
const CONNECT_ONLY: readonly NetworkUse[] = Object.freeze(['connect']);
/**
 * The uses of a deny rule written without any: every way of sending to its
 * destination, not only `connect`. Compiled rules recognise this very array
 * (by identity) and file such a rule once, under `connect`.
 */
export const DEFAULT_DENY_USES: readonly NetworkUse[] = Object.freeze(['connect', 'redirect']);
/** Uses no library path asks about any more: a rule naming one is refused, saying why. */
const RETIRED_USES: Readonly<Record<string, string>> = Object.freeze({
  sendto: 'no library path sends a datagram to a destination of its own choosing: UDP goes to the connected peer (a connect grant) or, from a listener, to the peer it accepted (an accept grant)',
  upgrade: 'no HTTP connection is upgraded: a WebSocket is a ws: or wss: connect (grant connect:ws://… or wss://…)',
});
const USES = new Set<string>(NETWORK_USES);
/** A rule followed by the strict-answers flag (` strict`, after whitespace). */
const STRICT_FLAG = /^(\S*)\s+strict$/;
const STRICT_V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function whereOf(at: ParseLocation): string {
  if (at.line !== undefined) return [at.source, at.line, at.column].filter((x) => x !== undefined).join(':');
  return [at.source, at.path].filter((x) => x !== undefined).join(' ');
}

/** Parse one rule from its text or JSON form. Throws PolicyParseError. */
export function parseRule(input: string | JsonRule, effect: 'allow' | 'deny', at: ParseLocation = {}): PolicyRule {
  const written = typeof input === 'string' ? input : jsonRuleText(input, at);
  const flagged = STRICT_FLAG.exec(written);
  const text = flagged === null ? written : flagged[1]!;
  const strict = flagged !== null;
  const err = (detail: string, pos: number) => new PolicyParseError(detail, written, pos, at);
  if (text.length === 0) throw err('empty rule', 0);
  const bad = /[\s\x00-\x1f\x7f\\]/.exec(text);
  if (bad) throw err('whitespace, control characters and backslashes are not allowed inside a rule', bad.index);

  let pos = 0;
  let uses: readonly NetworkUse[] = effect === 'deny' ? DEFAULT_DENY_USES : CONNECT_ONLY;
  const firstColon = text.indexOf(':');
  if (firstColon === -1) throw err('expected "scheme://host:port"', text.length);
  if (!text.startsWith('//', firstColon + 1)) {
    const list: NetworkUse[] = [];
    let p = 0;
    for (const u of text.slice(0, firstColon).split(',')) {
      const retired = RETIRED_USES[u];
      if (retired !== undefined) throw err(`"${u}" is not a use: ${retired}`, p);
      if (!USES.has(u)) throw err(`unknown use ${JSON.stringify(u)} (expected one of ${NETWORK_USES.join(', ')})`, p);
      if (!list.includes(u as NetworkUse)) list.push(u as NetworkUse);
      p += u.length + 1;
    }
    uses = Object.freeze(list);
    pos = firstColon + 1;
  }
  const sep = text.indexOf('://', pos);
  if (sep === -1) throw err('expected "://" after the scheme', pos);
  const schemeText = text.slice(pos, sep).toLowerCase();
  if (!SCHEMES.has(schemeText)) throw err(`unknown scheme ${JSON.stringify(schemeText)} (expected one of ${[...SCHEMES].join(', ')})`, pos);
  const scheme = schemeText as PolicyProtocol | '*';
  pos = sep + 3;

  // Split host and ports.
  let hostText: string;
  let portText: string | undefined;
  let portPos: number;
  if (text[pos] === '[') {
    const close = text.indexOf(']', pos);
    if (close === -1) throw err('unterminated "[" in host', pos);
    let after = close + 1;
    if (text[after] === '/') {
      const m = /^\/[0-9]+/.exec(text.slice(after));
      after += m ? m[0].length : 1;
    }
    hostText = text.slice(pos, after);
    if (after < text.length && text[after] !== ':') throw err('expected ":" or the end after the host', after);
    portText = after < text.length ? text.slice(after + 1) : undefined;
    portPos = after + 1;
  } else {
    const colon = text.indexOf(':', pos);
    hostText = colon === -1 ? text.slice(pos) : text.slice(pos, colon);
    portText = colon === -1 ? undefined : text.slice(colon + 1);
    portPos = colon + 1;
  }
  const slashPath = /[/?#]/.exec(portText ?? '');
  if (slashPath && portText !== undefined) throw err('rules name no path, query or fragment', portPos + slashPath.index);
  const host = parseHost(hostText, (d, p) => err(d, pos + p));
  const lookupOnly = uses.every((u) => u === 'lookup');
  if (lookupOnly && host.kind === 'cidr') throw err('a lookup rule names host names, not addresses', pos);
  let ports: PortSet | null;
  if (portText === undefined) {
    const def = scheme === '*' ? undefined : DEFAULT_PORTS[scheme];
    if (lookupOnly) ports = null;
    else if (def !== undefined) ports = new PortSet([[def, def]]);
    else throw err(`a port is required for ${scheme}:// (write ":*" for any port)`, text.length);
  } else {
    ports = parsePorts(portText, (d, p) => err(d, portPos + p));
    if (lookupOnly && ports !== null) throw err('lookup rules take no port (leave it out or write ":*")', portPos);
  }
  if (strict) {
    if (effect === 'deny') throw err('"strict" (strict answers) applies to allow rules only', text.length + 1);
    if (host.kind === 'cidr') throw err('"strict" (strict answers) applies to rules that name hosts by name, not to addresses', text.length + 1);
  }
  return Object.freeze({ effect, uses, scheme, host, ports, strict, text: strict ? `${text} strict` : text, where: whereOf(at) });
}

function parseHost(h: string, err: (detail: string, pos: number) => PolicyParseError): HostPattern {
  if (h.length === 0) throw err('missing host', 0);
  if (h === '*') return { kind: 'any' };
  if (h[0] === '@') {
    const name = h.slice(1);
    if (!isPresetName(name)) throw err(`unknown preset ${JSON.stringify(h)} (expected one of ${Object.keys(PRESETS).map((p) => `@${p}`).join(', ')})`, 0);
    return { kind: 'preset', preset: name };
  }
  if (h.startsWith('*.')) {
    const c = canonicalHost(h.slice(2));
    if (!c.ok || c.kind !== 'name') throw err(`"*." must be followed by a host name (${c.ok ? 'got an address' : c.reason})`, 2);
    return { kind: 'suffix', suffix: c.host };
  }
  const star = h.indexOf('*');
  if (star !== -1) throw err('a wildcard is only allowed as the whole host ("*") or as a leading "*."', star);
  if (h[0] === '[') {
    const close = h.indexOf(']');
    let body = h.slice(1, close);
    let lenText: string | undefined;
    const slash = body.indexOf('/');
    if (slash !== -1) {
      lenText = body.slice(slash + 1);
      body = body.slice(0, slash);
    } else if (h[close + 1] === '/') lenText = h.slice(close + 2);
    if (body.includes('%')) throw err('rules cannot name an IPv6 zone id', body.indexOf('%') + 1);
    const w = parseIPv6(body);
    if (!w) throw err(`invalid IPv6 address ${JSON.stringify(body)}`, 1);
    const prefix = lenText === undefined ? 128 : prefixLength(lenText, 128, err, h.indexOf('/') + 1);
    return cidr(6, w, prefix, h, err);
  }
  const slash = h.indexOf('/');
  const addr = slash === -1 ? h : h.slice(0, slash);
  if (STRICT_V4.test(addr)) {
    const v = addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
    const prefix = slash === -1 ? 32 : prefixLength(h.slice(slash + 1), 32, err, slash + 1);
    return cidr(4, [v], prefix, h, err);
  }
  if (slash !== -1) throw err('a CIDR must start with an IPv4 address in dotted decimal or an IPv6 address in brackets', 0);
  const c = canonicalHost(h);
  if (!c.ok) throw err(c.reason, 0);
  if (c.kind === 'ipv6') throw err('write IPv6 addresses in brackets, e.g. "[::1]"', 0);
  if (c.kind === 'ipv4') throw err(`write IPv4 addresses as four decimal octets (${JSON.stringify(h)} means ${c.host})`, 0);
  return { kind: 'name', name: c.host };
}

function prefixLength(t: string, max: number, err: (d: string, p: number) => PolicyParseError, pos: number): number {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(t) || Number(t) > max) throw err(`invalid prefix length ${JSON.stringify(t)} (0-${max})`, pos);
  return Number(t);
}

function cidr(family: 4 | 6, words: ArrayLike<number>, prefix: number, h: string, err: (d: string, p: number) => PolicyParseError): HostPattern {
  const n = family === 4 ? 1 : 4;
  const masked = maskWords(words, prefix, n);
  if (masked.some((w, i) => w !== words[i])) {
    const shown = family === 4 ? formatIPv4(masked[0]!) : `[${formatIPv6(masked)}/${prefix}]`;
    throw err(`host bits are set after the prefix (did you mean ${family === 4 ? `${shown}/${prefix}` : shown}?)`, 0);
  }
  // IPv4-mapped ranges are the IPv4 addresses they stand for.
  if (family === 6 && prefix >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
    return { kind: 'cidr', family: 4, words: Object.freeze([words[3]!]), prefix: prefix - 96 };
  }
  return { kind: 'cidr', family, words: Object.freeze(masked), prefix };
}

function parsePorts(t: string, err: (d: string, p: number) => PolicyParseError): PortSet | null {
  if (t === '*') return null;
  if (t.length === 0) throw err('missing port after ":"', 0);
  const ranges: [number, number][] = [];
  let p = 0;
  for (const part of t.split(',')) {
    const m = /^([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(part);
    if (!m) throw err(`invalid port ${JSON.stringify(part)} (expected N, N-M, a list of them, or *)`, p);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > 65535 || hi > 65535) throw err(`port ${hi > 65535 ? hi : lo} is out of range (0-65535)`, p);
    if (hi < lo) throw err(`port range ${JSON.stringify(part)} is reversed`, p);
    ranges.push([lo, hi]);
    p += part.length + 1;
  }
  let set = portSets.get(t);
  if (set === undefined) {
    set = new PortSet(ranges);
    // Policies repeat the same few port specs: share them (bounded, so hostile input cannot grow it forever).
    if (portSets.size < 4096) portSets.set(t, set);
  }
  return set;
}

const portSets = new Map<string, PortSet>();

function jsonRuleText(r: JsonRule, at: ParseLocation): string {
  const fail = (d: string) => new PolicyParseError(d, safeJson(r), 0, at);
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw fail('a rule must be a string or an object { use?, scheme, host, port? }');
  for (const k of Object.keys(r)) if (!['use', 'scheme', 'host', 'port', 'answers'].includes(k)) throw fail(`unknown rule field ${JSON.stringify(k)}`);
  // Own fields only (a polluted Object.prototype adds nothing to a rule).
  const scheme = ownField(r, 'scheme', 'rule');
  const hostText = ownField(r, 'host', 'rule');
  const use = ownField(r, 'use', 'rule');
  const portField = ownField(r, 'port', 'rule');
  const answers = ownField(r, 'answers', 'rule');
  if (answers !== undefined && answers !== 'strict' && answers !== 'each') throw fail('rule.answers must be "strict" or "each"');
  if (typeof scheme !== 'string') throw fail('rule.scheme must be a string');
  if (typeof hostText !== 'string') throw fail('rule.host must be a string');
  const uses: unknown[] = use === undefined ? [] : Array.isArray(use) ? use : [use];
  if (uses.some((u) => typeof u !== 'string')) throw fail('rule.use must be a string or an array of strings');
  const host = hostText.includes(':') && !hostText.startsWith('[') ? `[${hostText}]` : hostText;
  let port = '';
  if (portField !== undefined) {
    const ps: unknown[] = Array.isArray(portField) ? portField : [portField];
    if (ps.length === 0 || ps.some((x) => typeof x !== 'number' && typeof x !== 'string')) throw fail('rule.port must be a number, a string or an array of them');
    port = `:${ps.join(',')}`;
  }
  if (/\s/.test(host + port)) throw fail('whitespace is not allowed in rule.host or rule.port');
  return `${uses.length > 0 ? `${uses.join(',')}:` : ''}${scheme}://${host}${port}${answers === 'strict' ? ' strict' : ''}`;
}

/** A rule object as text for an error message (never runs the caller's toString). */
function safeJson(r: unknown): string {
  try {
    return JSON.stringify(r) ?? typeof r;
  } catch {
    return typeof r;
  }
}
