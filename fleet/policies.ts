/**
 * Policy distribution: each tenant's policy source and revision live in
 * Redis (`policies`: tenant → `rev\npayload`, an empty payload for a
 * removed tenant); publishing stores the next
 * revision and announces it on the `policy` channel, payload included, so a
 * host applies it without another round trip. A host applies a revision
 * only if it is newer than the one it has for that tenant, through the
 * Host's own `setPolicy` / `removeTenant` (compiled first, swapped whole;
 * live connections the new revision forbids are handled per the Host's
 * `onRevoke`). On attach, and whenever the subscription is re-established
 * after Redis was away, the host reads every stored revision, so a missed
 * announcement is caught up.
 *
 * A payload is a policy as text or JSON, or, when the fleet is given
 * `policySigners`, a signed policy (signed.ts) verified before it is applied:
 * then whoever can write to Redis still cannot change a tenant's policy.
 * A payload that does not parse or verify is not applied; the previous
 * revision stays, and `onPolicy` is told why.
 *
 * @example
 * await fleet.publish('acme', 'allow tcp://api.example.com:443\nlimit connections 100');
 */
import { debuglog } from 'node:util';
import type { Host } from '../src/policy/host.js';
import type { PreparedIssuer } from '../src/policy/claims.js';
import type { FleetContext } from './context.js';
import { verifySignedPolicy } from './signed.js';

/** What happened to one announced (or caught-up) revision on this host. */
export interface PolicyEvent {
  readonly tenant: string;
  /** The fleet revision. */
  readonly revision: number;
  /** Applied, removed, or rejected (`error` says why; the previous revision stays). */
  readonly outcome: 'applied' | 'removed' | 'rejected';
  /** The Host's revision after applying. */
  readonly hostRevision?: number;
  readonly error?: Error;
}

const debug = debuglog('taps');

export class PolicyFeed {
  readonly #ctx: FleetContext;
  readonly #signers: ReadonlyMap<string, PreparedIssuer> | undefined;
  readonly #onPolicy: ((e: PolicyEvent) => void) | undefined;
  /** Fleet revision applied (or rejected, or removed) per tenant on this host. */
  readonly #known = new Map<string, number>();
  #host: Host | undefined;
  /** Announcements are applied in order, one at a time (a signed one takes a turn to verify). */
  #chain: Promise<void> = Promise.resolve();
  readonly #waiters = new Set<{ tenant: string; revision: number; resolve(): void }>();

  constructor(ctx: FleetContext, signers: ReadonlyMap<string, PreparedIssuer> | undefined, onPolicy: ((e: PolicyEvent) => void) | undefined) {
    this.#ctx = ctx;
    this.#signers = signers;
    this.#onPolicy = onPolicy;
  }

  /** The fleet revision this host has for a tenant (0: none). */
  revision(tenant: string): number {
    return this.#known.get(tenant) ?? 0;
  }

  /** Start applying to `host`: read every stored revision (the subscription is already on). */
  async attach(host: Host): Promise<void> {
    if (this.#host !== undefined && this.#host !== host) throw new TypeError('this fleet is already attached to another Host');
    this.#host = host;
    await this.catchUp();
  }

  /** A message on the policy channel: `tenant\nrev\npayload`. */
  announced(message: string): void {
    const a = message.indexOf('\n');
    const b = message.indexOf('\n', a + 1);
    if (a < 0 || b < 0) return;
    const tenant = message.slice(0, a);
    const rev = Number(message.slice(a + 1, b));
    this.#enqueue(tenant, rev, message.slice(b + 1));
  }

  /** Read every stored revision (tombstones included) and apply what is newer. */
  async catchUp(): Promise<void> {
    if (this.#host === undefined) return;
    const ctx = this.#ctx;
    const all = await ctx.link.cmd.hgetall(ctx.keys.policies);
    for (const [tenant, value] of Object.entries(all)) {
      const nl = value.indexOf('\n');
      this.#enqueue(tenant, Number(value.slice(0, nl)), value.slice(nl + 1));
    }
    await this.#chain;
  }

  /** Settles when every announcement received so far has been applied. */
  settled(): Promise<void> {
    return this.#chain;
  }

  /** Resolves once this host has seen (applied, removed or rejected) `revision` of `tenant`, or a later one. */
  reached(tenant: string, revision: number): Promise<void> {
    if (this.revision(tenant) >= revision) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ tenant, revision, resolve }));
  }

  /** Apply a revision this host just published (the announcement may come later; it is then skipped). */
  published(tenant: string, revision: number, payload: string): Promise<void> {
    this.#enqueue(tenant, revision, payload);
    return this.#chain;
  }

  #enqueue(tenant: string, rev: number, payload: string): void {
    if (!Number.isSafeInteger(rev) || rev <= 0) return;
    this.#chain = this.#chain.then(() => this.#apply(tenant, rev, payload));
  }

  async #apply(tenant: string, revision: number, payload: string): Promise<void> {
    const host = this.#host;
    if (host === undefined || revision <= (this.#known.get(tenant) ?? 0)) return;
    if (payload === '' && !this.#known.has(tenant)) return;
    this.#known.set(tenant, revision);
    let event: PolicyEvent;
    try {
      if (payload === '') {
        host.removeTenant(tenant);
        event = { tenant, revision, outcome: 'removed', hostRevision: host.revision };
      } else {
        const source = await this.#source(tenant, payload);
        const hostRevision = host.setPolicy(tenant, source);
        event = { tenant, revision, outcome: 'applied', hostRevision };
      }
    } catch (err) {
      event = { tenant, revision, outcome: 'rejected', error: err as Error };
      debug('fleet revision %d of %s rejected: %s', revision, tenant, (err as Error)?.message);
    }
    for (const w of this.#waiters) {
      if (w.tenant === tenant && w.revision <= revision) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
    try {
      this.#onPolicy?.(event);
    } catch {
      /* a host callback must not stop the feed */
    }
  }

  /** The policy a payload carries: JSON-encoded text or object, or a signed policy when signers are configured. */
  async #source(tenant: string, payload: string): Promise<string | object> {
    if (this.#signers !== undefined) return verifySignedPolicy(payload, tenant, this.#signers);
    const parsed = JSON.parse(payload) as unknown;
    if (typeof parsed !== 'string' && (typeof parsed !== 'object' || parsed === null)) throw new TypeError('a stored policy must be text or a JSON object');
    return parsed as string | object;
  }
}
