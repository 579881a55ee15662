/**
 * Which channels count the tenant's bytes themselves. A channel that charges
 * its sends (`metered`) or its socket's reads (`receiveMetered`) at the socket
 * spares the Connection counting them again; a channel that only says so
 * would spend nothing. A driver can be anyone's (a guest's driver wrapping the
 * library's TCP channel and answering `receiveMetered: true`), and a
 * channel's getters live on a prototype a guest holding one can redefine; so
 * the Connection believes only what the library's own channels recorded here
 * when they were made, and counts everything else itself.
 *
 * @example
 * selfMetered(this, this.#meter !== undefined, receiveMetered); // in a library channel's constructor
 * const { metered, receiveMetered } = meteringOf(channel);      // in the Connection
 */

/** What a channel counts itself. */
export interface Metering {
  /** It charges the tenant's sent budget for everything it sends. */
  readonly metered: boolean;
  /** Its socket charges the tenant's received budget for everything it reads. */
  readonly receiveMetered: boolean;
}

const NONE: Metering = Object.freeze({ metered: false, receiveMetered: false });
const recorded = new WeakMap<object, Metering>();

/** @internal Record what a channel of the library counts itself (called in its constructor). */
export function selfMetered(channel: object, metered: boolean, receiveMetered: boolean): void {
  // Nothing to record for a channel that counts nothing itself: meteringOf answers NONE for it unrecorded.
  if (metered || receiveMetered) recorded.set(channel, Object.freeze({ metered, receiveMetered }));
}

/** @internal What `channel` counts itself: what the library recorded for it, nothing for any other object. */
export function meteringOf(channel: unknown): Metering {
  return (typeof channel === 'object' && channel !== null && recorded.get(channel)) || NONE;
}
