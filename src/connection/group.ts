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
 * `adopt()`ed into the group.
 *
 * @example
 * const group = new ConnectionGroup<Connection>(lease);
 * const memberLease = group.join(conn); // bytes count against `lease`
 * group.adopt(clone);                   // a member with a lease of its own
 * group.leave(conn);
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
  readonly #lease: Lease;
  #held = 0;
  #spent = false;

  constructor(lease: Lease) {
    this.#lease = lease;
  }

  /** A lease for one member: bytes count against the shared one; the last release releases it. */
  join(joining: M): Lease {
    if (this.#spent) throw new TapsError('ERR_TAPS_INVALID_STATE', 'the connection group has closed: its lease was released');
    this.members.add(joining);
    this.#held++;
    const lease = this.#lease;
    let released = false;
    const member: Lease = {
      sent(n) {
        lease.sent(n);
      },
      received(n) {
        lease.received(n);
      },
      release: () => {
        if (released) return;
        released = true;
        if (--this.#held === 0) {
          this.#spent = true;
          lease.release();
        }
      },
    };
    if (lease.onRevoke) member.onRevoke = (cb) => lease.onRevoke!(cb);
    if (lease.bind) member.bind = (s) => lease.bind!(s);
    return member;
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
