/**
 * A small typed event emitter for Connection and Listener (RFC 9622 §4.1.2:
 * the interface is event-driven).
 *
 * Unlike `node:events`, emitting `error` (or anything else) with no listener
 * is not an exception: a connection's failure is always also visible through
 * its promises (`send()`, `receive()`, `for await`), so an unobserved event
 * must never crash the process. A listener that throws is the caller's bug;
 * its exception is rethrown on a fresh task (like `EventTarget`), so it can
 * neither be swallowed nor break the library's state mid-update.
 *
 * It has the EventEmitter methods Node's helpers use (`addListener`,
 * `removeListener`, `once` removable by the original listener), so
 * `events.on(conn, 'received')` and `events.once(conn, 'closed')` work and
 * clean up after themselves.
 *
 * @example
 * type Events = { received: [msg: Message]; closed: [] };
 * class Thing extends TypedEmitter<Events> {}
 * thing.on('received', (msg) => console.log(msg.text()));
 */

/** Event name → argument tuple. */
export type EventMap = { [event: string]: unknown[] };

type Listener<A extends unknown[]> = (...args: A) => void;
/** A `once` wrapper remembers the listener it wraps, so removing that listener removes it. */
type Wrapped<A extends unknown[]> = Listener<A> & { readonly listener?: Listener<A> };

/** A small typed event emitter that never throws for a missing `error` listener (STYLE §7); Connection and Listener extend it. */
export class TypedEmitter<E extends EventMap> {
  #listeners: { [K in keyof E]?: Listener<E[K]>[] } = {};

  /** Add a listener for `event`. */
  on<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${event}' must be a function`);
    (this.#listeners[event] ??= []).push(listener);
    return this;
  }

  /** Add a listener that is removed after its first call. */
  once<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    if (typeof listener !== 'function') throw new TypeError(`listener for '${event}' must be a function`);
    const wrapped: Listener<E[K]> & { listener?: Listener<E[K]> } = (...args: E[K]) => {
      this.off(event, wrapped);
      listener(...args);
    };
    wrapped.listener = listener; // a store, not Object.assign: a `once` per drain wait is common
    return this.on(event, wrapped);
  }

  /** The same as `on` (EventEmitter's name, used by `events.on`/`events.once`). */
  addListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    return this.on(event, listener);
  }

  /** The same as `off` (EventEmitter's name, used by `events.on`/`events.once` to clean up). */
  removeListener<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    return this.off(event, listener);
  }

  /** Remove a listener added with `on` or `once`. */
  off<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    const list = this.#listeners[event];
    if (list) {
      let i = list.indexOf(listener);
      if (i < 0) i = list.findIndex((l) => (l as Wrapped<E[K]>).listener === listener);
      if (i >= 0) this.#listeners[event] = list.toSpliced(i, 1);
    }
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#listeners[event]?.length ?? 0;
  }

  /** Call every listener of `event`; returns whether there was one. Never throws. */
  protected emit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const list = this.#listeners[event];
    if (list === undefined || list.length === 0) return false;
    // `off` replaces the array, so iterating the one we hold is safe against removal during emit.
    for (const fn of list) {
      try {
        fn(...args);
      } catch (err) {
        setImmediate(() => {
          throw err;
        });
      }
    }
    return true;
  }
}
