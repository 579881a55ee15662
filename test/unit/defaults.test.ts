/**
 * transports/defaults.ts: the default driver list the registry loads, and its
 * system resolver. What each driver declares (capabilities) is checked by
 * behaviour in the compliance suite (test/compliance/), over real sockets.
 */
import { describe, expect, it } from 'vitest';
import { registeredDrivers, systemResolver as registrySystemResolver } from '../../src/registry.js';
import { BUILTIN_DRIVERS, drivers, systemResolver } from '../../transports/defaults.js';

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
