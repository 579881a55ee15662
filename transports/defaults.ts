/**
 * The default driver set and the system resolver, loaded by the registry
 * (src/registry.ts) on first use with a dynamic import, so `src/` never
 * imports a driver statically.
 *
 * tcp, tls and udp are always there. Every other stack is an entry in
 * {@link OPTIONAL_DRIVERS}: a module specifier (relative to this file) and
 * the name of its export holding `readonly Driver[]`. Those modules load
 * lazily, the first time `drivers()` is called, and one that cannot load is
 * left out (reported through `NODE_DEBUG=taps`), never a crash. A driver
 * whose optional native piece is missing should still load and say so with
 * `available()` (STYLE §12). To add a stack, append one line.
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

/** One lazily loaded stack: where its module is and which export lists its drivers. */
export interface OptionalDrivers {
  /** Module specifier relative to this file (`.js`, as compiled). */
  readonly module: string;
  /** The export holding `readonly Driver[]`. */
  readonly exportName: string;
}

/** Lazily loaded stacks. Append entries here. */
export const OPTIONAL_DRIVERS: readonly OptionalDrivers[] = Object.freeze([
  { module: './websocket/index.js', exportName: 'websocketDrivers' },
  { module: './http/index.js', exportName: 'httpDrivers' },
  { module: './quic/index.js', exportName: 'quicDrivers' },
  { module: './webtransport/index.js', exportName: 'webtransportDrivers' },
]);

function isDriver(d: unknown): d is Driver {
  return typeof d === 'object' && d !== null && typeof (d as Driver).id === 'string' && typeof (d as Driver).connect === 'function';
}

async function loadOptional(entry: OptionalDrivers): Promise<Driver[]> {
  try {
    // A specifier in a variable: bundlers and the type checker leave optional stacks out of the static graph.
    const specifier = entry.module;
    const mod = (await import(specifier)) as Record<string, unknown>;
    const list = mod[entry.exportName];
    if (!Array.isArray(list) || !list.every(isDriver)) {
      log('defaults: %s has no driver list named %s', entry.module, entry.exportName);
      return [];
    }
    return list;
  } catch (err) {
    log('defaults: could not load %s: %s', entry.module, (err as Error)?.message ?? String(err));
    return [];
  }
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
