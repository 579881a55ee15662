/**
 * Ties a connection's or listener's local addresses to a {@link PathMonitor}
 * only while someone listens for what the monitor reports (`pathChange`, and
 * for connections `softError`): an object nobody asks about costs the monitor
 * nothing, so the monitor's timer runs only while it is useful.
 *
 * @example
 * const watch = new PathWatch(systemPathMonitor, () => [conn.local.address], (c) => emit('pathChange', c));
 * watch.want(true);  // a listener was added
 * watch.want(false); // the last one was removed, or the connection closed
 */
import type { PathChange, PathMonitor } from './monitor.js';

export class PathWatch {
  readonly #monitor: PathMonitor;
  readonly #addresses: () => readonly string[];
  readonly #report: (change: PathChange) => void;
  #unwatch: (() => void)[] | undefined;

  constructor(monitor: PathMonitor, addresses: () => readonly string[], report: (change: PathChange) => void) {
    this.#monitor = monitor;
    this.#addresses = addresses;
    this.#report = report;
  }

  /** Start watching (once) or stop. */
  want(wanted: boolean): void {
    if (wanted && this.#unwatch === undefined) {
      let addresses: readonly string[];
      try {
        addresses = this.#addresses();
      } catch {
        return; // the socket is already gone: nothing to watch
      }
      this.#unwatch = [...new Set(addresses)].map((a) => this.#monitor.watch(a, this.#report));
    } else if (!wanted && this.#unwatch !== undefined) {
      for (const u of this.#unwatch) u();
      this.#unwatch = undefined;
    }
  }
}
