/**
 * The driver registry: how drivers meet the core at run time (STYLE §1).
 *
 * `src/` never imports a driver statically. When a Preconnection is given no
 * explicit driver list, the registry loads the default set (`transports/
 * defaults`) on first use with a dynamic import (a literal one, so bundlers
 * follow it), so an unused stack never loads and an optional native piece is
 * only touched when asked for. {@link warmUp} loads them all up front.
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * registerDriver(tcpDriver);
 */
import type { Driver } from './driver.js';
import type { ResolvedAddress, Resolver } from './network.js';

type DefaultsModule = typeof import('../transports/defaults.js');

const registered = new Map<string, Driver>();
let defaults: Promise<DefaultsModule> | undefined;
/** The default drivers plus the registered ones, as a selection uses them: made once, again after a (un)registration. */
let current: readonly Driver[] | undefined;

// A literal specifier, so a bundler (esbuild, Rollup, webpack) follows it and ships the drivers; it is
// still loaded only on first use.
function loadDefaults(): Promise<DefaultsModule> {
  defaults ??= import('../transports/defaults.js');
  return defaults;
}

/**
 * Load the default drivers and their optional native pieces now (QUIC's module), instead of during the first
 * selections: a host that knows it will connect calls this at start-up, so no selection races without a
 * stack that is still loading. Resolves with the drivers' ids and which are unavailable here (and why);
 * never rejects for a missing optional piece. Idempotent: later calls answer from what was loaded.
 */
export async function warmUp(): Promise<{ readonly ready: readonly string[]; readonly unavailable: Readonly<Record<string, string>> }> {
  const list = await registeredDrivers();
  const ready: string[] = [];
  const unavailable: Record<string, string> = {};
  await Promise.all(
    list.map(async (d) => {
      let a;
      try {
        a = await d.available();
      } catch (err) {
        a = { available: false as const, reason: `availability check failed: ${(err as Error)?.message ?? String(err)}` };
      }
      if (a.available) ready.push(d.id);
      else unavailable[d.id] = a.reason;
    }),
  );
  const order = new Map(list.map((d, i) => [d.id, i]));
  ready.sort((a, b) => order.get(a)! - order.get(b)!);
  return { ready, unavailable };
}

/** Add (or replace, by id) a driver used by every Preconnection that does not name its own. */
export function registerDriver(driver: Driver): void {
  if (typeof driver !== 'object' || driver === null || typeof driver.id !== 'string' || typeof driver.connect !== 'function') {
    throw new TypeError('driver must be a Driver object with an id and a connect function');
  }
  registered.set(driver.id, driver);
  current = undefined;
}

/** Remove a driver registered with {@link registerDriver}; true if it was there. */
export function unregisterDriver(id: string): boolean {
  current = undefined;
  return registered.delete(id);
}

/** The default drivers plus every registered one (registered ids win). */
export async function registeredDrivers(): Promise<Driver[]> {
  return [...(await selectionDrivers())];
}

/**
 * @internal The drivers a selection with no list of its own uses: once the defaults are loaded, the same frozen
 * list every time until a driver is (un)registered (answered without waiting a turn: see {@link loadedDrivers}).
 */
export async function selectionDrivers(): Promise<readonly Driver[]> {
  if (current !== undefined) return current;
  const base = await (await loadDefaults()).drivers();
  const byId = new Map<string, Driver>();
  for (const d of base) byId.set(d.id, d);
  for (const [id, d] of registered) byId.set(id, d);
  const list = Object.freeze([...byId.values()]);
  current = list; // (made after the await: a registration meanwhile is in it; a later one clears it)
  return list;
}

/** @internal {@link selectionDrivers}' list when it is made already, else undefined. */
export function loadedDrivers(): readonly Driver[] | undefined {
  return current;
}

/** The system resolver (getaddrinfo through `dns.lookup`, one family per call). */
export const systemResolver: Resolver = async (host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> =>
  (await loadDefaults()).systemResolver(host, family, signal);
