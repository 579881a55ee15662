/**
 * transports/defaults.ts: the default driver list the registry loads, and its
 * system resolver. What each driver declares (capabilities) is checked by
 * behaviour in the compliance suite (test/compliance/), over real sockets.
 */
import { describe, expect, it } from 'vitest';
import { loadedDrivers, registerDriver, registeredDrivers, selectionDrivers, systemResolver as registrySystemResolver, unregisterDriver } from '../../src/registry.js';
import type { Driver } from '../../src/driver.js';
import { BUILTIN_DRIVERS, drivers, loadOptional, systemResolver } from '../../transports/defaults.js';

describe('default drivers', () => {
  it('lists tcp, tls and udp first, then the optional stacks that load, each id once', async () => {
    const list = await drivers();
    expect(list.slice(0, 3).map((d) => d.id)).toEqual(['tcp', 'tls', 'udp']);
    expect(new Set(list.map((d) => d.id)).size).toBe(list.length);
    expect(list.map((d) => d.id)).toEqual(expect.arrayContaining(['ws', 'wss', 'http', 'https']));
    expect(BUILTIN_DRIVERS.map((d) => d.id)).toEqual(['tcp', 'tls', 'udp']);
    for (const d of BUILTIN_DRIVERS) expect(await d.available()).toEqual({ available: true });
    // A fresh array each time: callers may not change the cached list.
    list.pop();
    expect((await drivers()).length).toBe(list.length + 1);
  });

  it('is what the registry loads, with the same system resolver', async () => {
    const ids = (await registeredDrivers()).map((d) => d.id);
    expect(ids.slice(0, 3)).toEqual(['tcp', 'tls', 'udp']);
    expect(await registrySystemResolver('127.0.0.1', 4, new AbortController().signal)).toEqual(
      await systemResolver('127.0.0.1', 4, new AbortController().signal),
    );
  });
});

describe('the drivers a selection uses', () => {
  it('are one frozen list, kept until a driver is registered or unregistered', async () => {
    const list = await selectionDrivers();
    expect(Object.isFrozen(list)).toBe(true);
    expect(loadedDrivers()).toBe(list);
    expect(await selectionDrivers()).toBe(list);
    // registeredDrivers() hands out a copy the caller may change.
    const copy = await registeredDrivers();
    copy.pop();
    expect(await selectionDrivers()).toBe(list);
    const extra = { ...list[0]!, id: 'tcp-registry-test' } as Driver;
    registerDriver(extra);
    try {
      expect(loadedDrivers()).toBeUndefined();
      expect((await selectionDrivers()).map((d) => d.id)).toContain('tcp-registry-test');
    } finally {
      unregisterDriver('tcp-registry-test');
    }
    expect(loadedDrivers()).toBeUndefined();
    expect((await selectionDrivers()).map((d) => d.id)).not.toContain('tcp-registry-test');
  });
});

describe('an optional stack that cannot load', () => {
  it('is left out with one process warning (TAPS_DRIVER_UNAVAILABLE), never a throw', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const broken = { name: 'sctp-test', load: () => Promise.reject(new Error("Cannot find package 'sctp'")), exportName: 'sctpDrivers' };
      expect(await loadOptional(broken)).toEqual([]);
      expect(await loadOptional(broken)).toEqual([]);
      const empty = { name: 'empty-test', load: async () => ({}), exportName: 'emptyDrivers' };
      expect(await loadOptional(empty)).toEqual([]);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.map((w) => [(w as { code?: string }).code, w.message])).toEqual([
        ['TAPS_DRIVER_UNAVAILABLE', "taps-node: the sctp-test drivers could not load and are left out of the default set: Cannot find package 'sctp'"],
        ['TAPS_DRIVER_UNAVAILABLE', 'taps-node: the empty-test drivers could not load and are left out of the default set: its module has no driver list named emptyDrivers'],
      ]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
