/**
 * Connection groups (RFC 9622 §7.4): connections made by `clone()`, and
 * streams a multistreaming peer opens, share one group with its properties,
 * its `groupConnLimit` and one quota lease. The lease is released when the
 * last member closes, so a group of QUIC streams counts as one connection.
 */
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

  constructor(lease: Lease) {
    this.#lease = lease;
  }

  /** A lease for one member: bytes count against the shared one; the last release releases it. */
  join(member: M): Lease {
    this.members.add(member);
    this.#held++;
    const lease = this.#lease;
    let released = false;
    return {
      sent: (n) => lease.sent(n),
      received: (n) => lease.received(n),
      release: () => {
        if (released) return;
        released = true;
        this.members.delete(member);
        if (--this.#held === 0) lease.release();
      },
      ...(lease.onRevoke ? { onRevoke: (cb) => lease.onRevoke!(cb) } : {}),
      ...(lease.bind ? { bind: (s) => lease.bind!(s) } : {}),
    };
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.members].map((m) => m.close()));
  }

  abortAll(reason?: Error): void {
    for (const m of [...this.members]) m.abort(reason);
  }
}
