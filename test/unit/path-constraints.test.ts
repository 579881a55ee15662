/** The path branch with a scripted interface list: filtering and ranking by interface/pvd, temporary addresses, impossible constraints. */
import { describe, expect, it } from 'vitest';
import { LocalEndpoint } from '../../src/endpoints.js';
import { planPaths, sourceFor, type InterfaceType } from '../../src/paths/constraints.js';
import type { LocalAddress } from '../../src/paths/interfaces.js';
import { TransportProperties, type Preference } from '../../src/properties.js';

const a = (iface: string, address: string, extra: Partial<LocalAddress> = {}): LocalAddress => ({
  interface: iface, address, family: address.includes(':') ? 6 : 4, cidr: null, internal: iface === 'lo', temporary: false, ...extra,
});
const HOST = [
  a('lo', '127.0.0.1'), a('lo', '::1'),
  a('eth0', '192.0.2.10'), a('eth0', '2001:db8::10'), a('eth0', '2001:db8::abcd', { temporary: true }), a('eth0', 'fe80::10', { scopeId: 2 }),
  a('wlan0', '198.51.100.10'),
];
const types = (name: string, internal: boolean): InterfaceType[] => (internal ? ['loopback'] : name.startsWith('wlan') ? ['wifi'] : ['wired']);
const plan = (props: Record<string, unknown>, local?: LocalEndpoint) => planPaths(new TransportProperties(props), local, HOST, types);
const names = (p: ReturnType<typeof plan>): string[] => p.paths.map((x) => x.interface);

describe('path branch', () => {
  it('is "any path" with no constraint and no temporary address to choose', () => {
    expect(planPaths(new TransportProperties(), undefined, HOST.filter((x) => !x.temporary), types).any).toBe(true);
  });

  it('a frozen snapshot: "any path" decided once when it constrains nothing, planned on every call when it does', () => {
    const reads: string[] = [];
    const read = (): typeof HOST => (reads.push('read'), HOST);
    const free = new TransportProperties().freeze();
    expect(planPaths(free, undefined, read, types).any).toBe(true);
    expect(planPaths(free, undefined, read, types).any).toBe(true);
    expect(reads).toEqual([]); // no interface read for an unconstrained selection
    const pinned = new TransportProperties({ interface: [['require', 'wlan0']] }).freeze();
    expect(planPaths(pinned, undefined, read, types).paths.map((x) => x.interface)).toEqual(['wlan0']);
    expect(planPaths(pinned, undefined, read, types).paths.map((x) => x.interface)).toEqual(['wlan0']);
    expect(reads).toEqual(['read', 'read']); // interfaces may change: read each time
    const temporary = new TransportProperties({ useTemporaryLocalAddress: 'avoid' }).freeze();
    expect(planPaths(temporary, undefined, HOST, types).any).toBe(false); // set explicitly: honoured, not "any"
  });

  it('requires, prohibits, prefers and avoids interfaces by name and by type', () => {
    expect(names(plan({ interface: [['require', 'wlan0']] }))).toEqual(['wlan0']);
    expect(names(plan({ interface: [['require', 'wifi'], ['require', 'eth0']] }))).toEqual(['eth0', 'wlan0']);
    expect(names(plan({ interface: [['prohibit', 'eth0'], ['prohibit', 'loopback']] }))).toEqual(['wlan0']);
    expect(names(plan({ interface: [['prefer', 'wifi']] }))).toEqual(['wlan0', 'lo', 'eth0']);
    expect(names(plan({ interface: [['avoid', 'lo'], ['avoid', 'eth0']] }))).toEqual(['wlan0', 'lo', 'eth0']);
    const p = plan({ interface: [['prohibit', 'eth0']] });
    expect(p.excluded).toEqual([{ interface: 'eth0', reason: 'interface eth0 (wired) is prohibited' }]);
  });

  it('treats each interface as its implicit pvd (RFC 7556 §3.1)', () => {
    expect(names(plan({ pvd: [['require', 'eth0']] }))).toEqual(['eth0']);
    expect(names(plan({ pvd: [['prohibit', 'wlan0']], interface: [['prohibit', 'lo']] }))).toEqual(['eth0']);
  });

  it('fails before any I/O, naming the interface, when a constraint cannot be met', () => {
    expect(() => plan({ interface: [['require', 'eth9']] })).toThrow(/interface eth9 is required but this host has no such interface up \(lo, eth0, wlan0 are\)/);
    expect(() => plan({ interface: [['require', 'cellular']] })).toThrow(expect.objectContaining({ code: 'ERR_TAPS_PATH_UNAVAILABLE' }));
    expect(() => plan({}, LocalEndpoint.from({ interface: 'eth9' }))).toThrow(/names interface eth9/);
    expect(() => plan({ interface: [['require', 'eth0'], ['prohibit', 'eth0']] })).toThrow(expect.objectContaining({ code: 'ERR_TAPS_INVALID_PROPERTIES' })); // one name, one preference
  });

  it('binds each candidate to an address of its family on the path, link-local with the interface as zone', () => {
    const props = new TransportProperties({ useTemporaryLocalAddress: 'avoid' });
    const [eth0] = plan({ interface: [['require', 'eth0']], useTemporaryLocalAddress: 'avoid' }).paths;
    expect(sourceFor(eth0!, { address: '192.0.2.99', family: 4 }, props)).toEqual({ address: '192.0.2.10', interface: 'eth0' });
    expect(sourceFor(eth0!, { address: '2001:db8::99', family: 6 }, props)).toEqual({ address: '2001:db8::10', interface: 'eth0' });
    expect(sourceFor(eth0!, { address: 'fe80::99', family: 6 }, props)).toEqual({ address: 'fe80::10', zone: 'eth0', interface: 'eth0' });
    const [wlan] = plan({ interface: [['require', 'wlan0']] }).paths;
    expect(sourceFor(wlan!, { address: '2001:db8::99', family: 6 }, props)).toEqual({ none: 'wlan0 has no IPv6 address' });
  });

  it('uses temporary IPv6 addresses only where they exist, and as useTemporaryLocalAddress asks', () => {
    const at = (pref: Preference): unknown => {
      const props = new TransportProperties({ useTemporaryLocalAddress: pref });
      return sourceFor(planPaths(props, undefined, HOST, types).paths.find((x) => x.interface === 'eth0')!, { address: '2001:db8::99', family: 6 }, props);
    };
    expect(at('prefer')).toEqual({ address: '2001:db8::abcd', interface: 'eth0' });
    expect(at('require')).toEqual({ address: '2001:db8::abcd', interface: 'eth0' });
    expect(at('avoid')).toEqual({ address: '2001:db8::10', interface: 'eth0' });
    expect(at('prohibit')).toEqual({ address: '2001:db8::10', interface: 'eth0' });
    const req = new TransportProperties({ useTemporaryLocalAddress: 'require' });
    const p = planPaths(req, undefined, HOST, types);
    expect(p.paths.map((x) => x.interface)).toEqual(['eth0']);
    expect(sourceFor(p.paths[0]!, { address: '192.0.2.99', family: 4 }, req)).toEqual({ none: 'eth0 has no temporary IPv4 address (useTemporaryLocalAddress: require)' });
    expect(() => planPaths(req, undefined, HOST.filter((x) => !x.temporary), types)).toThrow(/temporary IPv6 address/);
  });
});
