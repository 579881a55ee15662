/**
 * The path monitor: notices when a local address a connection or listener
 * uses goes away, comes back, or moves to another interface (RFC 9622 §8.3.2
 * PathChange; RFC 9623 "Handling Path Changes").
 *
 * It polls the interface list ({@link localAddresses}: only interfaces that
 * are up and running) every `interval` ms — but only while something watches:
 * the first `watch()` arms one timer, the last unwatch clears it, so a process
 * where nobody listens for `pathChange` or `softError` has no timer and does no
 * work. Each watch is one local address; a wildcard address (`0.0.0.0`, `::`)
 * belongs to no interface and is not watched. A path that died is reported,
 * never acted on: RFC 9623 asks not to close connections over a path that may
 * come back (an unplugged cable, a train tunnel).
 *
 * @example
 * const monitor = new PathMonitor({ interval: 500 });
 * const unwatch = monitor.watch('192.0.2.10', (change) => console.log(change.reason));
 * unwatch();
 */
import { systemClock, type Clock } from '../clock.js';
import { localAddresses, type LocalAddress } from './interfaces.js';

/** What changed on the path of one local address (the argument of a `pathChange` event). */
export interface PathChange {
  /** The local address the connection or listener uses. */
  readonly address: string;
  /** The interface carrying it now, or (when it is gone) the one that carried it. */
  readonly interface: string | undefined;
  /** False when no interface that is up carries the address any more: the path died. */
  readonly available: boolean;
  /** One sentence for logs: what happened. */
  readonly reason: string;
}

/** Options of a {@link PathMonitor}. */
export interface PathMonitorOptions {
  /** Milliseconds between readings of the interface list while something watches (default 1000). */
  readonly interval?: number | undefined;
  /** Where readings come from (default: the operating system). */
  readonly source?: (() => readonly LocalAddress[]) | undefined;
  readonly clock?: Clock | undefined;
}

interface Watch {
  readonly address: string;
  readonly notify: (change: PathChange) => void;
  iface: string | undefined;
  available: boolean;
}

const WILDCARD = new Set(['0.0.0.0', '::', '::ffff:0.0.0.0']);

/** Strip an IPv4-mapped prefix and a zone: the form interface readings use. */
function bare(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  return address.split('%')[0]!.toLowerCase();
}

/** Watches local addresses and reports each change of their path; polls only while something is watched (see the module comment). */
export class PathMonitor {
  readonly interval: number;
  readonly #source: () => readonly LocalAddress[];
  readonly #clock: Clock;
  readonly #watches = new Set<Watch>();
  #timer: unknown;
  /** The last reading, while the timer runs (at most one interval old): many watches share it. */
  #last: Map<string, string> | undefined;

  constructor(options: PathMonitorOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    const interval = options.interval ?? 1000;
    if (typeof interval !== 'number' || !Number.isFinite(interval) || interval < 10) throw new RangeError(`options.interval must be a number of ms ≥ 10, got ${String(interval)}`);
    this.interval = interval;
    this.#source = options.source ?? (() => localAddresses());
    this.#clock = options.clock ?? systemClock;
  }

  /** How many addresses are watched (0: the monitor is idle, with no timer). */
  get watching(): number {
    return this.#watches.size;
  }

  /**
   * Call `notify` whenever the path of `address` changes; returns the function that stops watching
   * (idempotent). A wildcard address is never watched (the returned function does nothing).
   */
  watch(address: string, notify: (change: PathChange) => void): () => void {
    if (typeof address !== 'string') throw new TypeError('address must be a string');
    if (typeof notify !== 'function') throw new TypeError('notify must be a function');
    const a = bare(address);
    if (WILDCARD.has(a)) return () => {};
    const iface = (this.#timer !== undefined && this.#last !== undefined ? this.#last : this.#read()).get(a);
    const w: Watch = { address: a, notify, iface, available: iface !== undefined };
    this.#watches.add(w);
    if (this.#timer === undefined) this.#arm();
    return () => {
      if (!this.#watches.delete(w)) return;
      if (this.#watches.size === 0 && this.#timer !== undefined) {
        this.#clock.clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#last = undefined;
      }
    };
  }

  /** Read the interfaces now and report what changed (the timer calls this; tests may too). */
  check(): void {
    if (this.#watches.size === 0) return;
    const now = this.#read();
    for (const w of [...this.#watches]) {
      const iface = now.get(w.address);
      const change = describe(w, iface);
      if (change === undefined) continue;
      w.iface = iface ?? w.iface;
      w.available = iface !== undefined;
      if (this.#watches.has(w)) w.notify(change);
    }
  }

  #read(): Map<string, string> {
    const out = new Map<string, string>();
    for (const a of this.#source()) if (!out.has(a.address)) out.set(a.address, a.interface);
    this.#last = out;
    return out;
  }

  #arm(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.check();
      if (this.#watches.size > 0 && this.#timer === undefined) this.#arm();
    }, this.interval);
    (this.#timer as { unref?: () => void } | undefined)?.unref?.();
  }
}

function describe(w: Watch, iface: string | undefined): PathChange | undefined {
  if (w.available && iface === undefined) {
    return { address: w.address, interface: w.iface, available: false, reason: `${w.address} is no longer on ${w.iface ?? 'any interface'} (the interface went down or the address was removed)` };
  }
  if (!w.available && iface !== undefined) {
    return { address: w.address, interface: iface, available: true, reason: `${w.address} is on ${iface} again` };
  }
  if (w.available && iface !== w.iface) {
    return { address: w.address, interface: iface, available: true, reason: `${w.address} moved from ${w.iface} to ${iface}` };
  }
  return undefined;
}

/** The monitor connections and listeners use unless given another: polls every second while watched. */
export const systemPathMonitor = new PathMonitor();
