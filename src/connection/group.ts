/**
 * Connection groups (RFC 9622 §7.4): connections made by `clone()`, and
 * streams a multistreaming peer opens, share one group: `groupedConnections()`,
 * `closeGroup()`, `abortGroup()`, `groupConnLimit` and entangled connection
 * properties (every one but connPriority is applied to each member).
 *
 * Streams of one multistreaming connection also share one quota lease, which
 * is released when the last of them closes, so a group of QUIC streams counts
 * as one connection. A clone that is a separate transport connection (a new
 * TCP connection made the same way) holds its own lease and is only
 * `adopt()`ed into the group. A connection makes its group only when it
 * first needs one (most never clone), joining it as its first member.
 *
 * {@link Membership} is one connection's side of this: its group, the lease
 * its bytes count against, clone() and the streams a peer opens.
 *
 * @example
 * const group = new ConnectionGroup<Connection>(lease);
 * group.join(conn, settings);   // conn's bytes count against group.lease
 * group.adopt(clone, settings); // a member with a lease of its own
 * group.leave(conn);
 * group.release();              // conn let go of its share; the last one releases group.lease
 */
import { debuglog } from 'node:util';
import type { TransportChannel } from '../driver.js';
import { TapsError } from '../errors.js';
import type { Lease } from '../policy/contract.js';
import type { ConnState } from './properties.js';
import type { ConnectionSettings, SettableName } from './settings.js';

const debug = debuglog('taps');

/** A member of a group, as the group sees it. */
export interface GroupMember {
  readonly state: ConnState;
  close(): Promise<void>;
  abort(reason?: Error): void;
}

export class ConnectionGroup<M extends GroupMember = GroupMember> {
  /** Each member with its settings (where entangled properties are applied). */
  readonly #members = new Map<M, ConnectionSettings>();
  /** The lease the members that joined share. */
  readonly lease: Lease;
  #held = 0;
  #spent = false;

  constructor(lease: Lease) {
    this.lease = lease;
  }

  get size(): number {
    return this.#members.size;
  }

  get members(): readonly M[] {
    return [...this.#members.keys()];
  }

  /** A member that shares the group's lease: its bytes count against `lease`; it calls `release()` once when done. */
  join(joining: M, settings: ConnectionSettings): void {
    if (this.#spent) throw new TapsError('ERR_TAPS_INVALID_STATE', 'the connection group has closed: its lease was released');
    this.#members.set(joining, settings);
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
  adopt(member: M, settings: ConnectionSettings): void {
    this.#members.set(member, settings);
  }

  /** The member closed or moved to another group. */
  leave(member: M): void {
    this.#members.delete(member);
  }

  /** Apply a property change made on `from` to every other member; one whose stack cannot take it keeps its value. */
  entangle(from: M, key: SettableName, value: unknown): void {
    for (const [m, settings] of this.#members) {
      if (m === from) continue;
      try {
        settings.set(key, value);
      } catch (err) {
        debug('group member kept its %s: %s', key, (err as Error).message);
      }
    }
  }

  async closeAll(): Promise<void> {
    await Promise.allSettled(this.members.map((m) => m.close()));
  }

  abortAll(reason?: Error): void {
    for (const m of this.members) m.abort(reason);
  }
}

/** What a Membership needs from its connection. */
export interface MemberHost<C extends GroupMember> {
  readonly self: C;
  readonly channel: TransportChannel;
  readonly driverId: string;
  readonly settings: ConnectionSettings;
  /** A new connection on a stream of this one, joining `group` with these properties. */
  member(channel: TransportChannel, group: ConnectionGroup<C>, properties: Record<string, unknown>): C;
  /** A new connection made the same way as this one (initiated connections only). */
  readonly remake: (() => Promise<C>) | undefined;
  /** The membership of another connection (to adopt a clone). */
  membershipOf(conn: C): Membership<C>;
  /** Hand a stream the peer opened to the application; false when nobody listens. */
  offer(conn: C): boolean;
}

/** One connection's place in its group and the lease its bytes count against. */
export class Membership<C extends GroupMember> {
  readonly #host: MemberHost<C>;
  /** Made on first need (clone, peer stream, groupedConnections): most connections never have one. */
  #group: ConnectionGroup<C> | undefined;
  /** The group whose lease this connection holds a share of (a stream), instead of a lease of its own. */
  #shareOf: ConnectionGroup<C> | undefined;
  /** The quota lease this connection's bytes count against: its own, or its group's shared one (set by the constructor, not defined first as a field). */
  declare readonly lease: Lease;
  readonly #ownLease: Lease;

  constructor(host: MemberHost<C>, ownLease: Lease, group: ConnectionGroup<C> | undefined) {
    this.#host = host;
    this.#ownLease = ownLease;
    this.#group = group;
    this.#shareOf = group;
    group?.join(host.self, host.settings);
    this.lease = group?.lease ?? ownLease;
  }

  /** Apply a property change to the other members (RFC 9622 §7.4: all but connPriority are entangled). */
  entangle(key: SettableName, value: unknown): void {
    if (key !== 'connPriority') this.#group?.entangle(this.#host.self, key, value);
  }

  /** Every open connection of the group, this one included. */
  members(): readonly C[] {
    const self = this.#host.self;
    return this.#group === undefined ? (self.state === 'closed' ? [] : [self]) : this.#group.members;
  }

  /** See Connection.clone. */
  async clone(): Promise<C> {
    const host = this.#host;
    const limit = host.settings.value('groupConnLimit');
    if ((this.#group?.size ?? 1) >= limit) throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `the group already has groupConnLimit ${limit} connections`);
    if (host.channel.openStream) {
      const channel = await host.channel.openStream();
      if (host.self.state === 'closed') {
        const err = new TapsError('ERR_TAPS_INVALID_STATE', 'cannot clone: the connection closed while the stream was opening');
        channel.abort(err);
        throw err;
      }
      return host.member(channel, this.#ensureGroup(), host.settings.changed());
    }
    if (host.remake) {
      const conn = await host.remake();
      this.#adopt(host.membershipOf(conn), conn);
      return conn;
    }
    throw new TapsError('ERR_TAPS_NOT_CLONEABLE', `${host.driverId} has no streams to open and this connection was accepted, not initiated`);
  }

  async closeGroup(): Promise<void> {
    if (this.#group === undefined) await this.#host.self.close();
    else await this.#group.closeAll();
  }

  abortGroup(reason?: Error): void {
    if (this.#group === undefined) this.#host.self.abort(reason);
    else this.#group.abortAll(reason);
  }

  /** A multistreaming peer opened a stream: a new member, or refused when nobody listens. */
  peerStream(channel: TransportChannel): void {
    const host = this.#host;
    if (host.self.state === 'closed') {
      channel.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the connection closed'));
      return;
    }
    const conn = host.member(channel, this.#ensureGroup(), host.settings.changed());
    if (!host.offer(conn)) conn.abort(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the peer opened a stream and nobody listens for connectionReceived'));
  }

  /** The connection closed: leave the group, let go of the lease (or the share of it). */
  leave(): void {
    this.#group?.leave(this.#host.self);
    if (this.#shareOf !== undefined) this.#shareOf.release();
    else this.#ownLease.release();
  }

  /** This connection's group, made now if it had none: it joins as the first member, sharing its own lease. */
  #ensureGroup(): ConnectionGroup<C> {
    if (this.#group !== undefined) return this.#group;
    const group = new ConnectionGroup<C>(this.lease);
    group.join(this.#host.self, this.#host.settings);
    this.#group = this.#shareOf = group;
    return group;
  }

  /** A clone made as a separate connection joins this group (with its own lease) and takes its properties. */
  #adopt(other: Membership<C>, conn: C): void {
    const group = this.#ensureGroup();
    if (conn.state === 'closed' || other.#group === group) return;
    other.#group?.leave(conn);
    other.#group = group;
    group.adopt(conn, other.#host.settings);
    for (const [k, v] of Object.entries(this.#host.settings.changed())) {
      try {
        other.#host.settings.set(k as SettableName, v);
      } catch (err) {
        debug('clone on %s kept its %s: %s', other.#host.driverId, k, (err as Error).message);
      }
    }
  }
}
