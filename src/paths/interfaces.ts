/**
 * The local side of the path branch (RFC 9623 §4.1): which interfaces this
 * host has and which addresses each carries, read from the operating system
 * (`os.networkInterfaces()`, which lists only interfaces that are up and
 * running). One reading is a {@link LocalAddress} list; the path monitor
 * compares readings, interface constraints filter them, multicast finds the
 * address to join or send on.
 *
 * IPv6 temporary ("privacy", RFC 8981) addresses are marked from Linux's
 * `/proc/net/if_inet6` flags, the one place the kernel reports them; where it
 * cannot be read nothing is marked temporary.
 *
 * @example
 * const eth0 = localAddresses().filter((a) => a.interface === 'eth0');
 * interfaceAddress('eth0', 4)?.address; // '192.0.2.10'
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

/** One address of one local interface. */
export interface LocalAddress {
  /** The interface's name (`eth0`, `lo`). */
  readonly interface: string;
  /** Canonical address text, without a zone. */
  readonly address: string;
  readonly family: 4 | 6;
  /** `192.0.2.10/24`. */
  readonly cidr: string | null;
  /** A loopback interface. */
  readonly internal: boolean;
  /** IPv6 link-local scope id (the interface index), for `fe80::…%<zone>`. */
  readonly scopeId?: number;
  /** An IPv6 temporary address (RFC 8981). */
  readonly temporary: boolean;
}

/** Where interface readings come from: the OS by default, a function in tests. */
export type InterfaceSource = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

/** Reads `/proc/net/if_inet6`: address (32 hex digits) → flags. Empty where there is no such file. */
export type TemporaryFlags = () => ReadonlySet<string>;

const IFA_F_TEMPORARY = 0x01;

/** The IPv6 addresses the kernel marks temporary, as canonical text. */
export const linuxTemporaryAddresses: TemporaryFlags = () => {
  let text: string;
  try {
    text = readFileSync('/proc/net/if_inet6', 'latin1');
  } catch {
    return new Set();
  }
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const [hex, , , , flags] = line.trim().split(/\s+/);
    if (hex === undefined || hex.length !== 32 || flags === undefined) continue;
    if ((parseInt(flags, 16) & IFA_F_TEMPORARY) !== 0) out.add(hexToV6(hex));
  }
  return out;
};

/** 32 hex digits → canonical IPv6 text (lowercase, longest zero run compressed, RFC 5952). */
function hexToV6(hex: string): string {
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(hex.slice(i, i + 4), 16).toString(16));
  let best = -1;
  let len = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > len && j - i > 1) { best = i; len = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + len).join(':')}`;
}

/** Every address of every interface that is up, in the OS's order. */
export function localAddresses(source: InterfaceSource = networkInterfaces, temporary: TemporaryFlags = linuxTemporaryAddresses): LocalAddress[] {
  const out: LocalAddress[] = [];
  let temps: ReadonlySet<string> | undefined;
  for (const [name, infos] of Object.entries(source())) {
    for (const info of infos ?? []) {
      const family: 4 | 6 = info.family === 'IPv6' || (info.family as unknown) === 6 ? 6 : 4;
      const address = family === 6 ? info.address.split('%')[0]!.toLowerCase() : info.address;
      if (family === 6) temps ??= temporary();
      const entry: LocalAddress = {
        interface: name,
        address,
        family,
        cidr: info.cidr,
        internal: info.internal,
        temporary: family === 6 && temps!.has(address),
        ...(family === 6 && info.scopeid !== undefined && info.scopeid !== 0 ? { scopeId: info.scopeid } : {}),
      };
      out.push(Object.freeze(entry));
    }
  }
  return out;
}

/** The first address of `family` on interface `name`, if it has one. */
export function interfaceAddress(name: string, family: 4 | 6, addresses: readonly LocalAddress[] = localAddresses()): LocalAddress | undefined {
  return addresses.find((a) => a.interface === name && a.family === family);
}

/** The interface carrying `address`, if any (the unspecified address belongs to none). */
export function interfaceOf(address: string, addresses: readonly LocalAddress[] = localAddresses()): string | undefined {
  const bare = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address.split('%')[0]!.toLowerCase();
  return addresses.find((a) => a.address === bare)?.interface;
}

/** How long {@link recentLocalAddresses} reuses a reading (interfaces change rarely; a selection must stay cheap). */
export const READING_TTL_MS = 1000;
let recent: { readonly at: number; readonly addresses: readonly LocalAddress[] } | undefined;

/** The interface list, read at most once per {@link READING_TTL_MS}: what path selection uses. */
export function recentLocalAddresses(): readonly LocalAddress[] {
  const now = performance.now();
  if (recent === undefined || now - recent.at > READING_TTL_MS) recent = { at: now, addresses: Object.freeze(localAddresses()) };
  return recent.addresses;
}
