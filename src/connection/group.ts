/**
 * Connection groups (RFC 9622 §7.4): connections made by `clone()`, and
 * streams a multistreaming peer opens, share one group: `groupedConnections()`,
 * `closeGroup()`, `abortGroup()`, `groupConnLimit` and entangled connection
 * properties (every one but connPriority; the Connection applies a change to
 * each member).
 *
 * Streams of one multistreaming connection also share one quota lease, which
 * is released when the last of them closes, so a group of QUIC streams counts
 * as one connection. A clone that is a separate transport connection (a new
 * TCP connection made the same way) holds its own lease and is only
 * `adopt()`ed into the group. A Connection makes its group only when it
 * first needs one (most never clone), joining it as its first member.
 *
 * @example
 * const group = new ConnectionGroup<Connection>(lease);
 * group.join(conn);   // conn's bytes count against group.lease
 * group.adopt(clone); // a member with a lease of its own
 * group.leave(conn);
 * group.release();    // conn let go of its share; the last one releases group.lease
 */
import { TapsError } from '../errors.js';
import type { Lease } from '../policy/chokepoint.js';

/** A member of a group, as the group sees it. */
export interface GroupMember {
  close(): Promise<void>;
  abort(reason?: Error): void;
}

export class ConnectionGroup<M extends GroupMember = GroupMember> {
  readonly members = new Set<M>();
  /** The lease the members that joined share. */
  readonly lease: Lease;
  #held = 0;
  #spent = false;

  constructor(lease: Lease) {
    this.lease = lease;
  }

  /** A member that shares the group's lease: its bytes count against `lease`; it calls `release()` once when done. */
  join(joining: M): void {
    if (this.#spent) throw new TapsError('ERR_TAPS_INVALID_STATE', 'the connection group has closed: its lease was released');
    this.members.add(joining);
    this.#held++;
  }

  /** A member that joined lets go of its share; the last one releases the lease. */
  release(): void {
    if (this.#held === 0) return;
    if (--this.#held === 0) {
      this.#spent = true;
      this.lease.release();
    }
  }

  /** Add a member that holds its own lease (a clone made as a separate connection). */
  adopt(member: M): void {
    this.members.add(member);
  }

  /** The member closed or moved to another group. */
  leave(member: M): void {
    this.members.delete(member);
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.members].map((m) => m.close()));
  }

  abortAll(reason?: Error): void {
    for (const m of [...this.members]) m.abort(reason);
  }
}
