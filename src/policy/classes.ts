/**
 * Address classes and presets: what kind of place an address is.
 *
 * Every address is put in exactly one class by longest-prefix match over
 * the ranges below (IANA special-purpose registries, RFC 6890 and successors).
 * The class decides what a grant may cover: a name grant or `*` covers
 * `public` answers only (DNS-rebinding defence), every other class needs an
 * address grant (a literal, a CIDR or a preset such as `@private`).
 * `cloud-metadata` is stricter still: only `@cloud-metadata` or a rule naming
 * the exact address allow it — not `@any`, not `@link-local`, not a wider CIDR.
 *
 * IPv6 forms that embed an IPv4 address are judged as that IPv4 address:
 * IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (not `::`/`::1`),
 * IPv4-translated `::ffff:0:a.b.c.d`, and the NAT64 well-known prefix
 * `64:ff9b::/96`. Tunnel prefixes whose embedding depends on the operator or
 * does not name the destination (local-use NAT64 `64:ff9b:1::/48`, 6to4
 * `2002::/16`, Teredo `2001::/32`) are class `tunnel`: never public.
 *
 * @example
 * classify(canonicalAddress('::ffff:169.254.169.254')) // { cls: 'cloud-metadata', v4: 0xa9fea9fe }
 */
import { CidrTrie } from './trie.js';
import { parseIPv4, parseIPv6, type CanonicalAddress } from './canonical.js';

/** The class of an IP address (one per address, longest prefix wins). */
export type AddressClass =
  | 'public'
  | 'private'
  | 'loopback'
  | 'link-local'
  | 'cloud-metadata'
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'reserved'
  | 'tunnel';

/** Every address class. */
export const ADDRESS_CLASSES: readonly AddressClass[] = Object.freeze([
  'public', 'private', 'loopback', 'link-local', 'cloud-metadata', 'multicast', 'broadcast', 'unspecified', 'reserved', 'tunnel',
]);

/** Preset names usable as `@name` in a rule's host position. */
export type PresetName = AddressClass | 'any';

/** A named set of address classes (and names) usable as `@name` in rules. */
export interface Preset {
  readonly name: PresetName;
  readonly description: string;
  /** Classes whose addresses the preset covers. */
  readonly classes: readonly AddressClass[];
  /** Names the preset also covers: they grant the lookup (allow) or deny the name (deny). */
  readonly names: readonly string[];
  /** `*.suffix` names, same role as `names`. */
  readonly suffixes: readonly string[];
}

const V4: ReadonlyArray<readonly [string, number, AddressClass]> = [
  ['0.0.0.0', 8, 'unspecified'], // "this network": connect(0.0.0.0) reaches the local host
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'private'], // shared address space (CGNAT)
  ['100.100.100.200', 32, 'cloud-metadata'], // Alibaba Cloud
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['169.254.169.254', 32, 'cloud-metadata'], // AWS, Azure, GCP, OpenStack, Oracle
  ['169.254.170.2', 32, 'cloud-metadata'], // AWS ECS task metadata
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.0.192', 32, 'cloud-metadata'], // Oracle Cloud (legacy)
  ['192.0.2.0', 24, 'reserved'], // TEST-NET-1
  ['192.88.99.0', 24, 'reserved'], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'], // benchmarking
  ['198.51.100.0', 24, 'reserved'], // TEST-NET-2
  ['203.0.113.0', 24, 'reserved'], // TEST-NET-3
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
  ['255.255.255.255', 32, 'broadcast'],
];

const V6: ReadonlyArray<readonly [string, number, AddressClass]> = [
  ['::', 0, 'reserved'], // outside 2000::/3 nothing is global unicast
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'tunnel'], // local-use NAT64 (RFC 8215): embedding depends on the operator
  ['100::', 64, 'reserved'], // discard-only
  ['2000::', 3, 'public'],
  ['2001::', 23, 'reserved'], // IETF protocol assignments
  ['2001::', 32, 'tunnel'], // Teredo
  ['2001:db8::', 32, 'reserved'], // documentation
  ['2002::', 16, 'tunnel'], // 6to4
  ['3fff::', 20, 'reserved'], // documentation (RFC 9637)
  ['5f00::', 16, 'reserved'], // SRv6 SIDs
  ['fc00::', 7, 'private'], // unique local
  ['fd00:ec2::254', 128, 'cloud-metadata'], // AWS IMDS over IPv6
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'], // site-local (deprecated)
  ['ff00::', 8, 'multicast'],
];

const v4Classes = new CidrTrie<AddressClass>(1);
v4Classes.insert([0], 0, 'public');
for (const [a, len, cls] of V4) v4Classes.insert([parseIPv4(a)], len, cls);
const v6Classes = new CidrTrie<AddressClass>(4);
for (const [a, len, cls] of V6) v6Classes.insert(parseIPv6(a)!, len, cls);

/** The ranges behind each class, as text (for docs and `presets()`). */
export const CLASS_RANGES: Readonly<Record<AddressClass, readonly string[]>> = (() => {
  const out = Object.fromEntries(ADDRESS_CLASSES.map((c) => [c, [] as string[]])) as Record<AddressClass, string[]>;
  out.public.push('every IPv4 address not listed below', '2000::/3 minus the IPv6 ranges below');
  for (const [a, len, cls] of V4) out[cls].push(`${a}/${len}`);
  for (const [a, len, cls] of V6) if (len > 0 && cls !== 'public') out[cls].push(`${a}/${len}`);
  out.reserved.push('IPv6 outside 2000::/3 not otherwise listed');
  return out;
})();

export interface Classified {
  readonly cls: AddressClass;
  /** The IPv4 address the decision is made on: the address itself, or the one an IPv6 form embeds. */
  readonly v4: number | undefined;
}

/** The IPv4 an IPv6 address stands for (mapped, compatible, translated, NAT64 well-known prefix), if any. */
export function embeddedIPv4(w: Uint32Array): number | undefined {
  const w0 = w[0]!;
  const w1 = w[1]!;
  const w2 = w[2]!;
  const w3 = w[3]!;
  if (w0 === 0 && w1 === 0) {
    if (w2 === 0x0000ffff) return w3; // ::ffff:a.b.c.d
    if (w2 === 0 && w3 > 1) return w3; // ::a.b.c.d (deprecated compatible), not :: or ::1
    if (w2 === 0xffff0000) return w3; // ::ffff:0:a.b.c.d (SIIT translated)
  }
  if (w0 === 0x0064ff9b && w1 === 0 && w2 === 0) return w3; // 64:ff9b::/96 (RFC 6052)
  return undefined;
}

/** Class of a canonical address (IPv6 embedding IPv4 judged as the IPv4). */
export function classify(a: CanonicalAddress): Classified {
  if (a.kind === 'ipv4') return { cls: v4Classes.longest(a.v4)![0]!, v4: a.v4 };
  const v4 = embeddedIPv4(a.v6);
  if (v4 !== undefined) return { cls: v4Classes.longest(v4)![0]!, v4 };
  const w = a.v6;
  return { cls: v6Classes.longest(w[0]!, w[1]!, w[2]!, w[3]!)![0]!, v4: undefined };
}

const ALL_BUT_METADATA = ADDRESS_CLASSES.filter((c) => c !== 'cloud-metadata');

/** The presets, by name (docs/policy.md#presets). */
export const PRESETS: Readonly<Record<PresetName, Preset>> = Object.freeze({
  any: { name: 'any', description: 'every address except cloud metadata endpoints', classes: ALL_BUT_METADATA, names: [], suffixes: [] },
  public: { name: 'public', description: 'globally routable unicast addresses', classes: ['public'], names: [], suffixes: [] },
  private: { name: 'private', description: 'RFC 1918, shared 100.64/10, unique-local fc00::/7, site-local fec0::/10', classes: ['private'], names: [], suffixes: [] },
  loopback: { name: 'loopback', description: '127.0.0.0/8 and ::1 (and the names localhost, *.localhost for lookup)', classes: ['loopback'], names: ['localhost'], suffixes: ['localhost'] },
  'link-local': { name: 'link-local', description: '169.254.0.0/16 and fe80::/10, minus cloud metadata', classes: ['link-local'], names: [], suffixes: [] },
  'cloud-metadata': {
    name: 'cloud-metadata',
    description: 'instance metadata services: 169.254.169.254, 169.254.170.2, 100.100.100.200, 192.0.0.192, fd00:ec2::254, metadata.google.internal',
    classes: ['cloud-metadata'],
    names: ['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal'],
    suffixes: [],
  },
  multicast: { name: 'multicast', description: '224.0.0.0/4 and ff00::/8', classes: ['multicast'], names: [], suffixes: [] },
  broadcast: { name: 'broadcast', description: '255.255.255.255', classes: ['broadcast'], names: [], suffixes: [] },
  unspecified: { name: 'unspecified', description: '0.0.0.0/8 and :: (wildcard binds; connecting there reaches this host)', classes: ['unspecified'], names: [], suffixes: [] },
  reserved: { name: 'reserved', description: 'documentation, benchmarking, future-use and non-global IPv6 ranges', classes: ['reserved'], names: [], suffixes: [] },
  tunnel: { name: 'tunnel', description: '6to4 2002::/16, Teredo 2001::/32, local-use NAT64 64:ff9b:1::/48', classes: ['tunnel'], names: [], suffixes: [] },
});

/** True when `name` is a preset (without the `@`). */
export function isPresetName(name: string): name is PresetName {
  return Object.prototype.hasOwnProperty.call(PRESETS, name);
}
