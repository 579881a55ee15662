/**
 * The driver registry: how drivers meet the core at run time (STYLE §1).
 *
 * `src/` never imports a driver statically. When a Preconnection is given no
 * explicit driver list, the registry loads the default set (`transports/
 * defaults`) on first use with a dynamic import, so an unused stack never
 * loads and an optional native piece is only touched when asked for.
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * registerDriver(tcpDriver);
 */
import type { Driver } from './driver.js';
import type { ResolvedAddress, Resolver } from './network.js';

interface DefaultsModule {
  readonly drivers: () => Promise<readonly Driver[]>;
  readonly systemResolver: Resolver;
}

const registered = new Map<string, Driver>();
let defaults: Promise<DefaultsModule> | undefined;

// A specifier in a variable keeps the type checker and bundlers from pulling
// the drivers into the core's import graph.
const DEFAULTS_SPECIFIER = '../transports/defaults.js';

function loadDefaults(): Promise<DefaultsModule> {
  defaults ??= import(DEFAULTS_SPECIFIER) as Promise<DefaultsModule>;
  return defaults;
}

/** Add (or replace, by id) a driver used by every Preconnection that does not name its own. */
export function registerDriver(driver: Driver): void {
  if (typeof driver !== 'object' || driver === null || typeof driver.id !== 'string' || typeof driver.connect !== 'function') {
    throw new TypeError('driver must be a Driver object with an id and a connect function');
  }
  registered.set(driver.id, driver);
}

/** Remove a driver registered with {@link registerDriver}; true if it was there. */
export function unregisterDriver(id: string): boolean {
  return registered.delete(id);
}

/** The default drivers plus every registered one (registered ids win). */
export async function registeredDrivers(): Promise<Driver[]> {
  const base = await (await loadDefaults()).drivers();
  const byId = new Map<string, Driver>();
  for (const d of base) byId.set(d.id, d);
  for (const [id, d] of registered) byId.set(id, d);
  return [...byId.values()];
}

/** The system resolver (getaddrinfo through `dns.lookup`, one family per call). */
export const systemResolver: Resolver = async (host: string, family: 4 | 6, signal: AbortSignal): Promise<ResolvedAddress[]> =>
  (await loadDefaults()).systemResolver(host, family, signal);
