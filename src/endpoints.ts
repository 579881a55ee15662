/**
 * Endpoints (RFC 9622 §6.1): who to talk to, and where to listen.
 *
 * A `RemoteEndpoint` is made from an init object or a string: a URL
 * (`wss://example.com:8443/chat`, `tcp://host:1`, `udp://[::1]:9`,
 * `https://[fe80::1%25eth0]/`), `host:port`, `[v6]:port`, `v6%zone`, a bare IP
 * or a bare name. Values are canonical (see src/names.ts), so equal endpoints
 * have equal fields, and the object is frozen; the `with…()` builders (RFC 9622 §6.1
 * `WithHostName` etc.) return new endpoints.
 *
 * - A service name (`https`) gives the port when no port is given; a URL of a
 *   scheme with a well-known port (`wss`, `https`, …) gives that port likewise.
 * - Two identifiers of one kind that disagree are an error (RFC 9622 §6.1: "MUST NOT
 *   permit … multiple Endpoint Identifiers of the same type"): `hostName` vs the
 *   URL's host name, `ipAddress` vs the URL's IP, `port` vs the URL's port,
 *   `scheme`/`path` vs the URL's, a zone vs `interface`. A host name and an IP
 *   address are different kinds and may be given together (the IP is dialled,
 *   the name is used for SNI/Host).
 * - Rejected as TypeError: userinfo (`user@`), fragments (except on http/https,
 *   where they are dropped as a client would), backslashes, whitespace, control
 *   characters, numeric-looking names (`127.1`); RangeError: a port outside
 *   0–65535, an unknown service.
 * - `toString()` gives a string `from()` reads back to the same host, IP, zone,
 *   port, scheme and path (a host name wins over an IP when both are set;
 *   interface, service, subprotocols, group and hop limit are not part of the string).
 * - Groups (RFC 9622 §6.1.1): a local endpoint's `multicastGroup` (with `multicastSource`
 *   for source-specific multicast) is the group a listener joins; a remote
 *   endpoint whose IP is a group (`multicastGroup` says so explicitly) is sent
 *   to; `hopLimit` is the TTL / hop count of what is sent to a group.
 *
 * @example
 * const r = RemoteEndpoint.from('wss://Example.COM/chat');
 * r.hostName; r.port; r.scheme; r.path; // 'example.com', 443, 'wss', '/chat'
 * const l = LocalEndpoint.from({ ipAddress: '::1', port: 0 });
 * RemoteEndpoint.from({ hostName: 'example.com', service: 'https' }).withPort(8443).toString(); // 'example.com:8443'
 */
import { checkGroup, checkHopLimit, checkSource, isMulticast } from './paths/multicast.js';
import {
  canonicalHostName, canonicalIp, checkPath, checkPort, describe, parseIpLiteral, parseString, parseUrl, portText, SCHEME,
  type IpLiteral, type Parsed,
} from './names.js';
import { unicodePattern } from './unicode-pattern.js';

/** Well-known ports for `service` and for URL schemes without a port (IANA service names). */
export const WELL_KNOWN_PORTS: ReadonlyMap<string, number> = new Map([
  ['echo', 7], ['discard', 9], ['ftp', 21], ['ssh', 22], ['telnet', 23], ['smtp', 25], ['domain', 53], ['dns', 53],
  ['http', 80], ['ws', 80], ['pop3', 110], ['ntp', 123], ['imap', 143], ['snmp', 161], ['ldap', 389], ['https', 443],
  ['wss', 443], ['syslog', 514], ['submission', 587], ['ldaps', 636], ['imaps', 993], ['pop3s', 995], ['mysql', 3306],
  ['postgresql', 5432], ['sip', 5060], ['sips', 5061], ['xmpp-client', 5222], ['redis', 6379], ['http-alt', 8080],
  ['mqtt', 1883], ['secure-mqtt', 8883], ['dot', 853], ['domain-s', 853],
]);

/** The fields of a {@link LocalEndpoint} (RFC 9622 §6.1): where to listen or which local address to use. */
export interface LocalEndpointInit {
  hostName?: string;
  /** URL scheme naming a stack (`wss`, `tcp`). */
  scheme?: string;
  /** Text, or 4/16 bytes (RFC 9622 §6.1 allows a binary address). `fe80::1%eth0` sets the zone. */
  ipAddress?: string | Uint8Array;
  port?: number;
  service?: string;
  interface?: string;
  /**
   * A multicast group (RFC 9622 §6.1.1): on a local endpoint the group a listener joins
   * (`WithAnySourceMulticastGroupIP`); on a remote endpoint the group a connection sends to
   * (`WithMulticastGroupIP`, the same as an `ipAddress` that is a group).
   */
  multicastGroup?: string;
  /** Hop limit (IPv4 TTL, IPv6 hop count) of datagrams sent to a group, 0–255 (RFC 9622 §6.1.1 `WithHopLimit`). */
  hopLimit?: number;
}
/** The fields of a {@link LocalEndpoint}: where to listen, which address or interface to use, which group to join. */
export interface LocalEndpointFields extends LocalEndpointInit {
  /** With `multicastGroup`: join the group for this one source only (source-specific multicast, RFC 4607). */
  multicastSource?: string;
  /** A STUN server (RFC 8489) that tells `resolve()` this endpoint's server-reflexive address (RFC 9622 §6.1.5 `WithStunServer`). */
  stunServer?: string | RemoteEndpointInit | RemoteEndpoint;
}
/** The fields of a {@link RemoteEndpoint} (RFC 9622 §6.1): who to talk to; a URL or `host:port` string works too. */
export interface RemoteEndpointInit extends LocalEndpointInit {
  url?: string;
  path?: string;
  /** WebSocket subprotocols (RFC 6455 tokens, unique). */
  subprotocols?: readonly string[];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const IFACE = unicodePattern('^[\\p{L}\\p{N}_.:~+-](?:[\\p{L}\\p{N}_.:~+ -]{0,62}[\\p{L}\\p{N}_.:~+-])?$');

interface Fields {
  hostName?: string | undefined;
  ip?: IpLiteral | undefined;
  port?: number | undefined;
  explicitPort: boolean;
  service?: string | undefined;
  interface?: string | undefined;
  scheme?: string | undefined;
  path: string;
  subprotocols: readonly string[];
  group?: IpLiteral | undefined;
  source?: IpLiteral | undefined;
  hopLimit?: number | undefined;
}

function ipFromInit(v: unknown): IpLiteral {
  if (v instanceof Uint8Array) {
    if (v.length === 4) return canonicalIp([...v].join('.'), 'ipAddress');
    if (v.length === 16) {
      const groups = [];
      for (let i = 0; i < 16; i += 2) groups.push((((v[i] ?? 0) << 8) | (v[i + 1] ?? 0)).toString(16));
      return canonicalIp(groups.join(':'), 'ipAddress');
    }
    throw new TypeError(`ipAddress bytes must be 4 or 16 long, got ${v.length}`);
  }
  return canonicalIp(v, 'ipAddress');
}

const sameIp = (a: IpLiteral, b: IpLiteral): boolean => a.address === b.address && a.zone === b.zone;
const showIp = (ip: IpLiteral): string => (ip.zone ? `${ip.address}%${ip.zone}` : ip.address);

function agree<T>(a: { v: T; from: string } | undefined, b: { v: T; from: string } | undefined, eq: (x: T, y: T) => boolean, show: (x: T) => string): T | undefined {
  if (a && b && !eq(a.v, b.v)) throw new TypeError(`${a.from} (${show(a.v)}) and ${b.from} (${show(b.v)}) give two different values of one identifier`);
  return (a ?? b)?.v;
}
const at = <T>(v: T | undefined, from: string): { v: T; from: string } | undefined => (v === undefined ? undefined : { v, from });

function fields(input: unknown, allowed: ReadonlySet<string>, kind: string): Fields {
  const local = !allowed.has('url');
  let init: Record<string, unknown> = {};
  // A string argument: a URL when it has scheme://, otherwise host[:port] (local also `:port` and `*`).
  let fromString: Parsed = {};
  let urlField = 'url';
  if (typeof input === 'string') {
    urlField = kind;
    if (local && /^:[0-9]+$/.test(input)) fromString = { port: portText(input.slice(1), kind) };
    else if (!(local && input === '*')) fromString = parseString(input, kind);
  } else if (typeof input === 'number' && local) {
    init = { port: input };
  } else if (typeof input === 'object' && input !== null && !Array.isArray(input) && !(input instanceof Uint8Array)) {
    init = input as Record<string, unknown>;
  } else if (input !== undefined || !local) {
    throw new TypeError(`${kind} must be an init object or a string, got ${describe(input)}`);
  }
  for (const key of Object.keys(init)) {
    if (!allowed.has(key)) {
      const hint = key === 'host' || key === 'hostname' ? ' (did you mean hostName?)' : key === 'address' || key === 'ip' ? ' (did you mean ipAddress?)' : '';
      throw new TypeError(`unknown ${kind} field ${JSON.stringify(key.slice(0, 40))}${hint}`);
    }
  }
  const get = (k: string): unknown => (Object.prototype.hasOwnProperty.call(init, k) ? init[k] : undefined);
  const u = get('url');
  if (u !== undefined) {
    if (typeof u !== 'string') throw new TypeError(`url must be a string, got ${describe(u)}`);
    if (/[\s\\\x00-\x1f\x7f]/.test(u)) throw new TypeError('url contains whitespace, a backslash or a control character');
    fromString = parseUrl(u, 'url');
  }
  // Own fields only from here on: a field on a polluted Object.prototype is no part of the endpoint.
  fromString = Object.assign(Object.create(null) as Parsed, fromString);
  if (local && fromString.path !== undefined && fromString.path !== '/') throw new TypeError(`${kind} has a path; a local endpoint is scheme://host:port`);
  const hn = get('hostName');
  let nameGiven: string | undefined;
  let ipFromName: IpLiteral | undefined;
  if (hn !== undefined) {
    if (typeof hn !== 'string') throw new TypeError(`hostName must be a string, got ${describe(hn)}`);
    ipFromName = parseIpLiteral(hn, 'hostName');
    if (!ipFromName) nameGiven = canonicalHostName(hn, 'hostName');
  }
  const ipv = get('ipAddress');
  const ipGiven = ipv === undefined ? undefined : ipFromInit(ipv);
  const hostName = agree(at(nameGiven, 'hostName'), at(fromString.name, urlField), (a, b) => a === b, (x) => x);
  const ipA = agree(at(ipGiven, 'ipAddress'), at(ipFromName, 'hostName'), sameIp, showIp);
  const ip = agree(at(ipA, ipGiven ? 'ipAddress' : 'hostName'), at(fromString.ip, urlField), sameIp, showIp);
  const pv = get('port');
  const portGiven = pv === undefined ? undefined : checkPort(pv, 'port');
  let port = agree(at(portGiven, 'port'), at(fromString.port, urlField), (a, b) => a === b, String);
  const explicitPort = port !== undefined;
  const sv = get('service');
  let service: string | undefined;
  if (sv !== undefined) {
    if (typeof sv !== 'string') throw new TypeError(`service must be a string, got ${describe(sv)}`);
    service = sv.toLowerCase();
    const known = WELL_KNOWN_PORTS.get(service);
    if (known === undefined) throw new RangeError(`service ${describe(sv)} is not a known service name (give a port)`);
    port ??= known;
  }
  const sc = get('scheme');
  if (sc !== undefined && (typeof sc !== 'string' || !SCHEME.test(sc))) throw new TypeError(`scheme must be a URL scheme such as "wss", got ${describe(sc)}`);
  const scheme = agree(at(typeof sc === 'string' ? sc.toLowerCase() : undefined, 'scheme'), at(fromString.scheme, urlField), (a, b) => a === b, (x) => x);
  if (scheme !== undefined) port ??= WELL_KNOWN_PORTS.get(scheme);
  const pa = get('path');
  const path = agree(at(pa === undefined ? undefined : checkPath(pa, 'path'), 'path'), at(fromString.path, urlField), (a, b) => a === b, (x) => x) ?? '/';
  const iv = get('interface');
  if (iv !== undefined && (typeof iv !== 'string' || !IFACE().test(iv))) throw new TypeError(`interface must be an interface name such as "eth0", got ${describe(iv)}`);
  agree(at(iv as string | undefined, 'interface'), at(ip?.zone, 'the IPv6 zone'), (a, b) => a === b, (x) => x);
  const sp = get('subprotocols');
  let subprotocols: readonly string[] = [];
  if (sp !== undefined) {
    if (!Array.isArray(sp)) throw new TypeError(`subprotocols must be an array of strings, got ${describe(sp)}`);
    sp.forEach((t: unknown, i) => {
      if (typeof t !== 'string' || !TOKEN.test(t)) throw new TypeError(`subprotocols[${i}] must be an RFC 6455 token, got ${describe(t)}`);
      if (sp.indexOf(t) !== i) throw new TypeError(`subprotocols[${i}] repeats ${JSON.stringify(t)}`);
    });
    subprotocols = Object.freeze([...(sp as string[])]);
  }
  const { group, source, hopLimit } = groupFields(get, local);
  if (group !== undefined && local && (ip !== undefined || hostName !== undefined)) {
    throw new TypeError('a local endpoint names either an address or a multicast group to join, not both (restrict the receiving interface with `interface`)');
  }
  const remoteIp = agree(at(ip, 'ipAddress'), at(local ? undefined : group, 'multicastGroup'), sameIp, showIp);
  return { hostName, ip: local ? ip : remoteIp, port, explicitPort, service, interface: iv as string | undefined, scheme, path, subprotocols, group: local ? group : undefined, source, hopLimit };
}

/** The multicast fields (RFC 9622 §6.1.1): group, source (local only) and hop limit. */
function groupFields(get: (k: string) => unknown, local: boolean): { group?: IpLiteral; source?: IpLiteral; hopLimit?: number } {
  const g = get('multicastGroup');
  const s = local ? get('multicastSource') : undefined;
  const h = get('hopLimit');
  const group = g === undefined ? undefined : checkGroup(g, 'multicastGroup');
  if (s !== undefined && group === undefined) throw new TypeError('multicastSource needs a multicastGroup (source-specific multicast joins a group for one source)');
  const source = s === undefined || group === undefined ? undefined : checkSource(s, group, 'multicastSource');
  const hopLimit = h === undefined ? undefined : checkHopLimit(h, 'hopLimit');
  return { ...(group && { group }), ...(source && { source }), ...(hopLimit !== undefined && { hopLimit }) };
}

function hostPart(f: { hostName?: string | undefined; ipAddress?: string | undefined; zone?: string | undefined }, url: boolean): string | undefined {
  if (f.hostName !== undefined) return f.hostName;
  if (f.ipAddress === undefined) return undefined;
  if (!f.ipAddress.includes(':')) return f.ipAddress;
  return `[${f.ipAddress}${f.zone === undefined ? '' : `${url ? '%25' : '%'}${f.zone}`}]`;
}

abstract class Endpoint {
  /** Canonical host name (lowercase A-labels, no trailing dot). */
  readonly hostName?: string;
  /** Canonical IP text, without zone. */
  readonly ipAddress?: string;
  readonly family?: 4 | 6;
  /** IPv6 scope zone (the interface for this address, RFC 9622 §6.1). */
  readonly zone?: string;
  readonly port?: number;
  readonly service?: string;
  readonly interface?: string;
  /** True when the endpoint names an IP address and no host name. */
  readonly isIpLiteral: boolean;
  /** Hop limit of datagrams sent to a multicast group (IPv4 TTL / IPv6 hop count). */
  readonly hopLimit?: number;
  protected readonly explicitPort: boolean;

  protected constructor(f: Fields) {
    if (f.hostName !== undefined) this.hostName = f.hostName;
    if (f.ip) {
      this.ipAddress = f.ip.address;
      this.family = f.ip.family;
      if (f.ip.zone !== undefined) this.zone = f.ip.zone;
    }
    if (f.port !== undefined) this.port = f.port;
    if (f.service !== undefined) this.service = f.service;
    if (f.interface !== undefined) this.interface = f.interface;
    this.isIpLiteral = f.ip !== undefined && f.hostName === undefined;
    if (f.hopLimit !== undefined) this.hopLimit = f.hopLimit;
    this.explicitPort = f.explicitPort;
  }

  /** The identifiers as an init object (`from(x.toInit())` gives an equal endpoint). */
  protected baseInit(): LocalEndpointInit {
    const out: LocalEndpointInit = {};
    if (this.hostName !== undefined) out.hostName = this.hostName;
    if (this.ipAddress !== undefined) out.ipAddress = this.zone === undefined ? this.ipAddress : `${this.ipAddress}%${this.zone}`;
    if (this.explicitPort && this.port !== undefined) out.port = this.port;
    if (this.service !== undefined) out.service = this.service;
    if (this.interface !== undefined) out.interface = this.interface;
    if (this.hopLimit !== undefined) out.hopLimit = this.hopLimit;
    return out;
  }
}

const COMMON_KEYS = ['hostName', 'ipAddress', 'port', 'service', 'interface', 'scheme', 'multicastGroup', 'hopLimit'];
const LOCAL_KEYS: ReadonlySet<string> = new Set([...COMMON_KEYS, 'multicastSource', 'stunServer']);
const REMOTE_KEYS: ReadonlySet<string> = new Set([...COMMON_KEYS, 'url', 'path', 'subprotocols']);

/** Who to talk to (RFC 9622 §6.1): host name and/or IP, port or service, optional URL scheme and path. Canonical and frozen. */
export class RemoteEndpoint extends Endpoint {
  /** URL scheme, lowercase (`wss`), when the endpoint was given one: it names the stack. */
  readonly scheme?: string;
  /** URL path and query; '/' by default. */
  readonly path: string;
  readonly subprotocols: readonly string[];
  /** {@link RemoteEndpoint.isMulticast}, worked out on first read (the endpoint never changes; every selection asks). */
  #multicast: boolean | undefined;

  /** Same as RemoteEndpoint.from(init), which also passes an endpoint through unchanged. */
  constructor(init: RemoteEndpointInit | string) {
    const f = fields(init, REMOTE_KEYS, 'remote endpoint');
    super(f);
    if (f.hostName === undefined && f.ip === undefined) throw new TypeError('a remote endpoint needs a hostName, an ipAddress or a URL with a host');
    if (f.scheme !== undefined) this.scheme = f.scheme;
    this.path = f.path;
    this.subprotocols = f.subprotocols;
    Object.freeze(this);
  }

  /** An endpoint from an init object, a URL or `host:port` string, or an endpoint (returned as is). */
  static from(input: RemoteEndpointInit | string | RemoteEndpoint): RemoteEndpoint {
    if (input instanceof RemoteEndpoint) return input;
    return new RemoteEndpoint(input);
  }

  /** The endpoint as a URL, when it has a scheme. */
  get url(): string | undefined {
    return this.scheme === undefined ? undefined : this.toString();
  }

  /** The init object that makes this endpoint again. */
  toInit(): RemoteEndpointInit {
    const out: RemoteEndpointInit = this.baseInit();
    if (this.scheme !== undefined) out.scheme = this.scheme;
    if (this.path !== '/') out.path = this.path;
    if (this.subprotocols.length > 0) out.subprotocols = this.subprotocols;
    return out;
  }

  #with(change: RemoteEndpointInit): RemoteEndpoint {
    return RemoteEndpoint.from({ ...this.toInit(), ...change });
  }
  /** A copy with this host name (RFC 9622 §6.1 WithHostName). */
  withHostName(hostName: string): RemoteEndpoint { return this.#with({ hostName }); }
  /** A copy with this IP address. */
  withIpAddress(ipAddress: string | Uint8Array): RemoteEndpoint { return this.#with({ ipAddress }); }
  /** A copy with this port. */
  withPort(port: number): RemoteEndpoint { return this.#with({ port }); }
  /** A copy with this service name instead of a port. */
  withService(service: string): RemoteEndpoint { const { port: _p, ...rest } = this.toInit(); return RemoteEndpoint.from({ ...rest, service }); }
  /** A copy bound to this interface. */
  withInterface(iface: string): RemoteEndpoint { return this.#with({ interface: iface }); }
  /** A copy sending to this multicast group (RFC 9622 §6.1.1 `WithMulticastGroupIP`): the group is the IP address. */
  withMulticastGroupIp(group: string): RemoteEndpoint { const { ipAddress: _ip, hostName: _h, ...rest } = this.toInit(); return RemoteEndpoint.from({ ...rest, multicastGroup: group }); }
  /** A copy whose datagrams to a group carry this hop limit (RFC 9622 §6.1.1 `WithHopLimit`). */
  withHopLimit(hopLimit: number): RemoteEndpoint { return this.#with({ hopLimit }); }
  /** True when the IP address is a multicast group: a connection to it sends to the group and receives nothing. */
  get isMulticast(): boolean {
    return (this.#multicast ??= this.ipAddress !== undefined && isMulticast(this.ipAddress));
  }
  /** A copy with this URL scheme (naming a stack). */
  withScheme(scheme: string): RemoteEndpoint { return this.#with({ scheme }); }
  /** A copy with this URL path. */
  withPath(path: string): RemoteEndpoint { return this.#with({ path }); }
  /** A copy offering these subprotocols (WebSocket). */
  withSubprotocols(subprotocols: readonly string[]): RemoteEndpoint { return this.#with({ subprotocols }); }

  /** Same fields, canonically compared. */
  equals(other: unknown): boolean {
    return other instanceof RemoteEndpoint && JSON.stringify(this.toJSON()) === JSON.stringify(other.toJSON());
  }

  override toString(): string {
    const host = hostPart(this, this.scheme !== undefined) ?? '';
    if (this.scheme === undefined) return this.port === undefined ? host : `${host}:${this.port}`;
    const port = this.port === undefined || this.port === WELL_KNOWN_PORTS.get(this.scheme) ? '' : `:${this.port}`;
    return `${this.scheme}://${host}${port}${this.path}`;
  }

  /** Every field, for logs and reports. */
  toJSON(): Record<string, unknown> {
    const { hostName, ipAddress, zone, port, service, interface: iface, scheme, path, subprotocols, hopLimit } = this;
    return { hostName, ipAddress, zone, port, service, interface: iface, scheme, path, subprotocols: [...subprotocols], hopLimit };
  }
}

/** Where to listen, or which local address to send from (RFC 9622 §6.1). Canonical and frozen. */
export class LocalEndpoint extends Endpoint {
  /** URL scheme naming the stack to listen with (`tcp://[::1]:0`), if given. */
  readonly scheme?: string;
  /** The multicast group a listener on this endpoint joins (RFC 9622 §6.1.1). */
  readonly multicastGroup?: string;
  /** The one source of a source-specific group (RFC 4607); absent: any source. */
  readonly multicastSource?: string;
  /** The STUN server `resolve()` asks for this endpoint's server-reflexive address. */
  readonly stunServer?: RemoteEndpoint;

  /** An init object, a port number, or a string: `host:port`, `[v6]:port`, `:port`, `*` (any address, any port), `scheme://host:port`. */
  constructor(init?: LocalEndpointFields | string | number) {
    const f = fields(init, LOCAL_KEYS, 'local endpoint');
    super(f);
    if (f.scheme !== undefined) this.scheme = f.scheme;
    if (f.group !== undefined) this.multicastGroup = f.group.address;
    if (f.source !== undefined) this.multicastSource = f.source.address;
    const stun = typeof init === 'object' && init !== null ? (init as LocalEndpointFields).stunServer : undefined;
    if (stun !== undefined) {
      const server = RemoteEndpoint.from(stun as RemoteEndpointInit);
      if (server.port === undefined) throw new TypeError('stunServer needs a port (3478 is STUN\'s)');
      this.stunServer = server;
    }
    Object.freeze(this);
  }

  /** An endpoint from an init object, a port, a `host:port` string, or an endpoint (returned as is). */
  static from(input?: LocalEndpointFields | string | number | LocalEndpoint): LocalEndpoint {
    return input instanceof LocalEndpoint ? input : new LocalEndpoint(input);
  }

  /** The init object that makes this endpoint again. */
  toInit(): LocalEndpointFields {
    const out: LocalEndpointFields = this.baseInit();
    if (this.scheme !== undefined) out.scheme = this.scheme;
    if (this.multicastGroup !== undefined) out.multicastGroup = this.multicastGroup;
    if (this.multicastSource !== undefined) out.multicastSource = this.multicastSource;
    if (this.stunServer !== undefined) out.stunServer = this.stunServer;
    return out;
  }
  /** A copy that learns its server-reflexive address from this STUN server (RFC 9622 §6.1.5 `WithStunServer`). */
  withStunServer(address: string, port = 3478): LocalEndpoint { return this.#with({ stunServer: { hostName: address, port } }); }
  /** A copy joining this any-source multicast group (RFC 9622 §6.1.1 `WithAnySourceMulticastGroupIP`). */
  withAnySourceMulticastGroupIp(group: string): LocalEndpoint {
    const { multicastSource: _s, ...rest } = this.toInit();
    return LocalEndpoint.from({ ...rest, multicastGroup: group });
  }
  /** A copy joining this group for one source only (RFC 9622 §6.1.1 `WithSingleSourceMulticastGroupIP`). */
  withSingleSourceMulticastGroupIp(group: string, source: string): LocalEndpoint { return this.#with({ multicastGroup: group, multicastSource: source }); }
  /** A copy whose datagrams to a group carry this hop limit (RFC 9622 §6.1.1 `WithHopLimit`). */
  withHopLimit(hopLimit: number): LocalEndpoint { return this.#with({ hopLimit }); }
  #with(change: LocalEndpointFields): LocalEndpoint {
    return LocalEndpoint.from({ ...this.toInit(), ...change });
  }
  /** A copy with this local host name. */
  withHostName(hostName: string): LocalEndpoint { return this.#with({ hostName }); }
  /** A copy with this local IP address. */
  withIpAddress(ipAddress: string | Uint8Array): LocalEndpoint { return this.#with({ ipAddress }); }
  /** A copy with this local port (0: any free port). */
  withPort(port: number): LocalEndpoint { return this.#with({ port }); }
  /** A copy with this service name instead of a port. */
  withService(service: string): LocalEndpoint { const { port: _p, ...rest } = this.toInit(); return LocalEndpoint.from({ ...rest, service }); }
  /** A copy bound to this interface. */
  withInterface(iface: string): LocalEndpoint { return this.#with({ interface: iface }); }

  /** Same fields, canonically compared. */
  equals(other: unknown): boolean {
    return other instanceof LocalEndpoint && JSON.stringify(this.toJSON()) === JSON.stringify(other.toJSON());
  }

  override toString(): string {
    const host = hostPart(this, this.scheme !== undefined);
    if (this.scheme !== undefined) return `${this.scheme}://${host ?? '[::]'}${this.port === undefined ? '' : `:${this.port}`}`;
    if (host === undefined) return this.port === undefined ? '*' : `:${this.port}`;
    return this.port === undefined ? host : `${host}:${this.port}`;
  }

  /** Every field, for logs and reports. */
  toJSON(): Record<string, unknown> {
    const { hostName, ipAddress, zone, port, service, interface: iface, scheme, multicastGroup, multicastSource, hopLimit } = this;
    return { hostName, ipAddress, zone, port, service, interface: iface, scheme, multicastGroup, multicastSource, hopLimit, stunServer: this.stunServer?.toString() };
  }
}
