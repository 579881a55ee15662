/** The path monitor with a scripted interface list and a manual clock: what it reports, and that it idles with no timer. */
import { describe, expect, it } from 'vitest';
import { PathMonitor, type PathChange } from '../../src/paths/monitor.js';
import type { LocalAddress } from '../../src/paths/interfaces.js';
import { ManualClock } from '../helpers/manual-clock.js';

const addr = (iface: string, address: string): LocalAddress => ({ interface: iface, address, family: address.includes(':') ? 6 : 4, cidr: null, internal: false, temporary: false });

describe('PathMonitor', () => {
  it('reports an address that leaves, comes back and moves; nothing when nothing changed', async () => {
    const clock = new ManualClock();
    let now = [addr('eth0', '192.0.2.10'), addr('eth1', '198.51.100.10')];
    const monitor = new PathMonitor({ interval: 100, clock, source: () => now });
    const seen: PathChange[] = [];
    const unwatch = monitor.watch('::ffff:192.0.2.10', (c) => seen.push(c));
    await clock.advance(100);
    expect(seen).toEqual([]);
    now = [addr('eth1', '198.51.100.10')];
    await clock.advance(100);
    now = [addr('eth1', '198.51.100.10'), addr('eth0', '192.0.2.10')];
    await clock.advance(100);
    now = [addr('eth2', '192.0.2.10')];
    await clock.advance(100);
    await clock.advance(100);
    expect(seen.map((c) => [c.available, c.interface])).toEqual([[false, 'eth0'], [true, 'eth0'], [true, 'eth2']]);
    expect(seen[0]!.reason).toBe('192.0.2.10 is no longer on eth0 (the interface went down or the address was removed)');
    unwatch();
    unwatch();
    expect(monitor.watching).toBe(0);
  });

  it('arms one timer for many watches and none once the last is gone; never watches a wildcard', async () => {
    const clock = new ManualClock();
    let reads = 0;
    const monitor = new PathMonitor({ interval: 100, clock, source: () => (reads++, [addr('eth0', '192.0.2.10')]) });
    expect(monitor.watch('0.0.0.0', () => {})).toBeTypeOf('function');
    expect([monitor.watching, clock.pending]).toEqual([0, 0]);
    const a = monitor.watch('192.0.2.10', () => {});
    const b = monitor.watch('192.0.2.10', () => {});
    expect(clock.pending).toBe(1);
    expect(reads).toBe(1); // the second watch shared the running monitor's reading
    a();
    expect(clock.pending).toBe(1);
    b();
    expect(clock.pending).toBe(0);
    await clock.advance(1_000);
    expect(reads).toBe(1);
  });

  it('refuses bad options and arguments at once', async () => {
    expect(() => new PathMonitor({ interval: 0 })).toThrow(RangeError);
    expect(() => new PathMonitor().watch(1 as never, () => {})).toThrow(TypeError);
    expect(() => new PathMonitor().watch('192.0.2.1', null as never)).toThrow(TypeError);
  });
});
