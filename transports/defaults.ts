/**
 * The default driver set and the system resolver, loaded by the registry
 * (src/registry.ts) on first use with a dynamic import, so `src/` never
 * imports a driver statically.
 *
 * tcp, tls and udp are always there. Every other stack is an entry in
 * {@link OPTIONAL_DRIVERS}: a literal `import()` of its driver objects'
 * module (bundlers follow it) and the name of its export holding
 * `readonly Driver[]`. Those modules are small (`<stack>/drivers.ts`: the
 * code that connects loads when a candidate of the stack is attempted), load
 * lazily, the first time `drivers()` is called, and one that
 * cannot load is left out with one process warning (`TAPS_DRIVER_UNAVAILABLE`,
 * and `NODE_DEBUG=taps`), never a crash. A driver whose optional native piece
 * is missing still loads and says so with `available()` / `installed()`,
 * which the report shows as `unavailable`. To add a stack, append one line.
 *
 * @example
 * const all = await drivers(); // [tcp, tls, udp, ws, wss, http, https, ...]
 */
import { debuglog } from 'node:util';
import type { Driver } from '../src/driver.js';
import { tcpDriver } from './tcp/driver.js';
import { tlsDriver } from './tls/driver.js';
import { udpDriver } from './udp/driver.js';

export { systemResolver } from './system/resolver.js';

const log = debuglog('taps');

/** Always present, in this order. */
export const BUILTIN_DRIVERS: readonly Driver[] = Object.freeze([tcpDriver, tlsDriver, udpDriver]);

/** One lazily loaded stack: how to import its module and which export lists its drivers. */
export interface OptionalDrivers {
  /** A name for messages (`websocket`). */
  readonly name: string;
  /** Import the module: a literal `import('./x/drivers.js')`, so bundlers follow it. */
  readonly load: () => Promise<Record<string, unknown>>;
  /** The export holding `readonly Driver[]`. */
  readonly exportName: string;
}

/** Lazily loaded stacks. Append entries here. */
export const OPTIONAL_DRIVERS: readonly OptionalDrivers[] = Object.freeze([
  { name: 'websocket', load: () => import('./websocket/drivers.js'), exportName: 'websocketDrivers' },
  { name: 'http', load: () => import('./http/drivers.js'), exportName: 'httpDrivers' },
  { name: 'quic', load: () => import('./quic/drivers.js'), exportName: 'quicDrivers' },
  { name: 'webtransport', load: () => import('./webtransport/drivers.js'), exportName: 'webtransportDrivers' },
]);

function isDriver(d: unknown): d is Driver {
  return typeof d === 'object' && d !== null && typeof (d as Driver).id === 'string' && typeof (d as Driver).connect === 'function';
}

const warned = new Set<string>();

/** Say once per stack, as a process warning (`process.on('warning')`), that it could not load and is left out. */
function leftOut(entry: OptionalDrivers, why: string): Driver[] {
  log('defaults: %s left out: %s', entry.name, why);
  if (!warned.has(entry.name)) {
    warned.add(entry.name);
    process.emitWarning(`taps-node: the ${entry.name} drivers could not load and are left out of the default set: ${why}`, { code: 'TAPS_DRIVER_UNAVAILABLE' });
  }
  return [];
}

/** One optional stack's drivers, or none (with one warning) when its module cannot load. */
export async function loadOptional(entry: OptionalDrivers): Promise<Driver[]> {
  let mod: Record<string, unknown>;
  try {
    mod = await entry.load();
  } catch (err) {
    return leftOut(entry, (err as Error)?.message ?? String(err));
  }
  const list = mod[entry.exportName];
  if (!Array.isArray(list) || !list.every(isDriver)) return leftOut(entry, `its module has no driver list named ${entry.exportName}`);
  return list;
}

let loaded: Promise<Driver[]> | undefined;

/** The default drivers: the built-in ones, then every optional stack that loads (first id wins). */
export function drivers(): Promise<Driver[]> {
  loaded ??= Promise.all(OPTIONAL_DRIVERS.map(loadOptional)).then((lists) => {
    const byId = new Map<string, Driver>();
    for (const d of [...BUILTIN_DRIVERS, ...lists.flat()]) if (!byId.has(d.id)) byId.set(d.id, d);
    return [...byId.values()];
  });
  return loaded.then((list) => [...list]);
}
