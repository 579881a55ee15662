/**
 * The path branch of the candidate tree (RFC 9623 §4.1, "Network Paths"):
 * which local interfaces a connection may use, in which order, and which
 * local address each candidate binds to.
 *
 * What constrains a path (RFC 9622 §6.1.4, §6.2.11–§6.2.13):
 * - `LocalEndpoint.withInterface(name)`: every candidate uses that interface.
 * - `interface`: a set of (preference, name-or-type). A name is an interface
 *   (`eth0`); a type is one of {@link INTERFACE_TYPES} (`loopback`, `wired`,
 *   `wifi`, `cellular`, `virtual`), read from Linux's /sys/class/net. `require`
 *   keeps only matching interfaces, `prohibit` drops them, `prefer` ranks them
 *   first and `avoid` last (RFC 9623 §4.1.3 order: prohibit, require, prefer,
 *   avoid). Several `require`s are alternatives (a type and an instance overlap).
 * - `pvd`: the same over provisioning domains. This host learns no explicit
 *   PvDs (RFC 8801 needs router support and an OS that reports it), so each
 *   interface is its implicit PvD, named after it (RFC 7556 §3.1).
 * - `useTemporaryLocalAddress`: `require` uses only IPv6 temporary addresses
 *   (RFC 8981; IPv4 has none), `prohibit` never binds one, `prefer`/`avoid`
 *   pick or skip them where an interface has both kinds.
 *
 * A constraint no interface can meet fails before any I/O, naming it
 * (ERR_TAPS_PATH_UNAVAILABLE). Without any constraint and with no temporary
 * address to choose, the plan is "any path": nothing is bound and the OS
 * routes as it always does (the fast path costs one cached reading).
 *
 * @example
 * const plan = planPaths(props, local, localAddresses());
 * for (const path of plan.paths) sourceFor(path, { address: '192.0.2.1', family: 4 }, props);
 */
import { readFileSync, readdirSync } from 'node:fs';
import { TapsError } from '../errors.js';
import type { LocalEndpoint } from '../endpoints.js';
import type { Preference, TransportProperties } from '../properties.js';
import { READING_TTL_MS, recentLocalAddresses, type LocalAddress } from './interfaces.js';

/** The interface types a constraint may name (besides interface names). */
export const INTERFACE_TYPES = Object.freeze(['loopback', 'wired', 'wifi', 'cellular', 'virtual'] as const);
export type InterfaceType = (typeof INTERFACE_TYPES)[number];

/** One interface a connection may use, with its addresses, and why it sits where it does. */
export interface PathOption {
  readonly interface: string;
  readonly types: readonly InterfaceType[];
  readonly addresses: readonly LocalAddress[];
  /** Preferred (+1 per prefer matched) minus avoided: higher ranks first. */
  readonly score: number;
  /** For the report: "required", "preferred", "avoided", or "". */
  readonly why: string;
}

/** The allowed paths, best first; `any` when nothing constrains the path (bind nothing, let the OS route). */
export interface PathPlan {
  readonly any: boolean;
  readonly paths: readonly PathOption[];
  /** Interfaces left out, and why (for the report). */
  readonly excluded: readonly { readonly interface: string; readonly reason: string }[];
}

/** Where a candidate's local side binds: an address (and zone) of one interface, or why there is none. */
export type Source = { readonly address: string; readonly zone?: string; readonly interface: string } | { readonly none: string };

/** Linux's view of an interface's type, from /sys/class/net/<name>. */
export function linuxInterfaceTypes(name: string, internal: boolean): InterfaceType[] {
  if (internal) return ['loopback'];
  const base = `/sys/class/net/${name}`;
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return [];
  }
  if (entries.includes('wireless') || entries.includes('phy80211')) return ['wifi'];
  let uevent = '';
  try {
    uevent = readFileSync(`${base}/uevent`, 'latin1');
  } catch {
    /* no uevent: judged by the device link alone */
  }
  if (/DEVTYPE=wwan/.test(uevent)) return ['cellular'];
  if (!entries.includes('device')) return ['virtual']; // veth, bridge, tun, vlan, …: no hardware behind it
  return ['wired'];
}

let typeCache: { at: number; readonly types: Map<string, InterfaceType[]> } = { at: 0, types: new Map() };

/** {@link linuxInterfaceTypes}, remembered as long as an interface reading is (interfaces rarely change type). */
export function recentInterfaceTypes(name: string, internal: boolean): InterfaceType[] {
  const now = performance.now();
  if (now - typeCache.at > READING_TTL_MS) typeCache = { at: now, types: new Map() };
  const key = `${name}|${internal ? 1 : 0}`;
  let t = typeCache.types.get(key);
  if (t === undefined) typeCache.types.set(key, (t = linuxInterfaceTypes(name, internal)));
  return t;
}

/** The interface/pvd preferences that name `iface`, by name or by one of its types. */
function preferenceFor(set: readonly (readonly [Preference, string])[], iface: string, types: readonly string[]): Preference[] {
  return set.filter(([, name]) => name === iface || types.includes(name.toLowerCase())).map(([p]) => p);
}

/** Plan the path branch; throws ERR_TAPS_PATH_UNAVAILABLE (before any I/O) when a constraint cannot be met. */
export function planPaths(
  props: TransportProperties,
  local: LocalEndpoint | undefined,
  read?: readonly LocalAddress[] | (() => readonly LocalAddress[]),
  typesOf?: (name: string, internal: boolean) => InterfaceType[],
): PathPlan {
  // A frozen snapshot (a Preconnection's) that constrains no path gives "any path" for every selection with no
  // local endpoint: decided once per snapshot, not from its properties on every initiate.
  if (local === undefined && props.frozen) {
    let any = unconstrained.get(props);
    if (any === undefined) unconstrained.set(props, (any = !constrainsPaths(props)));
    if (any) return ANY;
  }
  // Without default parameters here: with them, the closures of planOver would cost a block context on every call.
  return planOver(props, local, read ?? recentLocalAddresses, typesOf ?? recentInterfaceTypes);
}

/** Frozen properties → whether they leave the path to the OS (planOver's first answer, for no local endpoint). */
const unconstrained = new WeakMap<TransportProperties, boolean>();

/** Whether `props` name an interface or PvD preference, or set useTemporaryLocalAddress: then the path is planned. */
function constrainsPaths(props: TransportProperties): boolean {
  const ifaceSet = props.get('interface') as readonly (readonly [Preference, string])[];
  const pvdSet = props.get('pvd') as readonly (readonly [Preference, string])[];
  return ifaceSet.some(([p]) => p !== 'noPreference') || pvdSet.some(([p]) => p !== 'noPreference') || props.isExplicit('useTemporaryLocalAddress');
}

function planOver(
  props: TransportProperties,
  local: LocalEndpoint | undefined,
  read: readonly LocalAddress[] | (() => readonly LocalAddress[]),
  typesOf: (name: string, internal: boolean) => InterfaceType[],
): PathPlan {
  const ifaceSet = props.get('interface') as readonly (readonly [Preference, string])[];
  const pvdSet = props.get('pvd') as readonly (readonly [Preference, string])[];
  const temporary = props.preference('useTemporaryLocalAddress');
  // A local endpoint's address decides its own path; its interface (or an IPv6 zone) pins one.
  const pinned = local?.interface ?? local?.zone;
  const constrained = pinned !== undefined || ifaceSet.some(([p]) => p !== 'noPreference') || pvdSet.some(([p]) => p !== 'noPreference');
  // Left at its default, useTemporaryLocalAddress is the OS's choice (Linux: net.ipv6.conf.*.use_tempaddr), so an
  // unconstrained selection reads no interface at all; set explicitly, it is honoured here.
  if (!constrained && !props.isExplicit('useTemporaryLocalAddress')) return ANY;
  if (local?.ipAddress !== undefined) return ANY;
  const addresses = typeof read === 'function' ? read() : read;
  if (!constrained && temporary !== 'require' && !addresses.some((a) => a.temporary)) return ANY;

  const byName = new Map<string, LocalAddress[]>();
  for (const a of addresses) (byName.get(a.interface) ?? byName.set(a.interface, []).get(a.interface)!).push(a);
  if (pinned !== undefined && !byName.has(pinned)) {
    throw new TapsError('ERR_TAPS_PATH_UNAVAILABLE', `the local endpoint names interface ${pinned}, which this host does not have up (${[...byName.keys()].join(', ') || 'none'} are)`);
  }
  const excluded: { interface: string; reason: string }[] = [];
  const paths: PathOption[] = [];
  const requiresIface = ifaceSet.some(([p]) => p === 'require');
  const requiresPvd = pvdSet.some(([p]) => p === 'require');
  for (const [name, list] of byName) {
    const types = typesOf(name, list.some((a) => a.internal));
    const onIface = preferenceFor(ifaceSet, name, types);
    const onPvd = preferenceFor(pvdSet, name, []); // implicit PvD: the interface's own name
    const all = [...onIface, ...onPvd];
    let why = '';
    if (pinned !== undefined && name !== pinned) why = `not the local endpoint's interface ${pinned}`;
    else if (all.includes('prohibit')) why = `${onIface.includes('prohibit') ? 'interface' : 'pvd'} ${name}${types.length ? ` (${types.join(', ')})` : ''} is prohibited`;
    else if (requiresIface && !onIface.includes('require')) why = `not a required interface`;
    else if (requiresPvd && !onPvd.includes('require')) why = `not in a required pvd`;
    else if (temporary === 'require' && !list.some((a) => a.temporary)) why = 'no temporary IPv6 address (useTemporaryLocalAddress is required)';
    if (why) {
      excluded.push({ interface: name, reason: why });
      continue;
    }
    const score = all.filter((p) => p === 'prefer').length - all.filter((p) => p === 'avoid').length;
    const label = all.includes('require') ? 'required' : score > 0 ? 'preferred' : score < 0 ? 'avoided' : '';
    paths.push({ interface: name, types, addresses: list, score, why: label });
  }
  if (paths.length === 0) {
    const up = [...byName.keys()].join(', ') || 'none';
    const required = [...ifaceSet, ...pvdSet].filter(([p]) => p === 'require').map(([, n]) => n);
    const missing = required.filter((n) => !byName.has(n) && !(INTERFACE_TYPES as readonly string[]).includes(n.toLowerCase()));
    if (missing.length > 0 && missing.length === required.length) {
      throw new TapsError('ERR_TAPS_PATH_UNAVAILABLE', `interface ${missing.join(' or ')} is required but this host has no such interface up (${up} are)`);
    }
    const what = required.length ? required.join(' or ') : temporary === 'require' ? 'a temporary IPv6 address' : 'an allowed interface';
    throw new TapsError('ERR_TAPS_PATH_UNAVAILABLE', `no interface can be used for ${what}: ${excluded.map((e) => `${e.interface}: ${e.reason}`).join('; ') || 'no interface is up'}`);
  }
  paths.sort((a, b) => b.score - a.score); // stable: the OS's order breaks ties
  return { any: false, paths, excluded };
}

const ANY: PathPlan = Object.freeze({ any: true, paths: Object.freeze([]), excluded: Object.freeze([]) });

const isLinkLocal = (a: string): boolean => a.startsWith('fe80:');
const isLoopback = (a: string): boolean => a === '::1' || a.startsWith('127.');

/**
 * The local address a candidate to `remote` binds to on `path`: one of the remote's family (a link-local
 * remote takes the link-local address and the interface as its zone; a loopback remote only loopback),
 * temporary or stable as useTemporaryLocalAddress asks.
 */
export function sourceFor(path: PathOption, remote: { readonly address: string; readonly family: 4 | 6 }, props: TransportProperties): Source {
  const temporary = props.preference('useTemporaryLocalAddress');
  let list = path.addresses.filter((a) => a.family === remote.family);
  if (list.length === 0) return { none: `${path.interface} has no IPv${remote.family} address` };
  list = list.filter((a) => isLoopback(a.address) === isLoopback(remote.address) && isLinkLocal(a.address) === isLinkLocal(remote.address));
  if (list.length === 0) return { none: `${path.interface} has no IPv${remote.family} address that reaches ${remote.address}` };
  if (temporary === 'require') list = list.filter((a) => a.temporary);
  else if (temporary === 'prohibit') list = list.filter((a) => !a.temporary);
  if (list.length === 0) return { none: `${path.interface} has no ${temporary === 'require' ? 'temporary' : 'stable'} IPv${remote.family} address (useTemporaryLocalAddress: ${temporary})` };
  const pick = temporary === 'prefer' ? (list.find((a) => a.temporary) ?? list[0]!) : temporary === 'avoid' ? (list.find((a) => !a.temporary) ?? list[0]!) : (list.find((a) => !a.temporary) ?? list[0]!);
  return isLinkLocal(pick.address) ? { address: pick.address, zone: path.interface, interface: path.interface } : { address: pick.address, interface: path.interface };
}
