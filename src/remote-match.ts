/**
 * Which peers a listener's remote endpoint admits (RFC 9622 §7.2: the remote
 * endpoint given to `Listen` constrains the peers a listener accepts). A peer
 * is admitted when it comes from the endpoint's IP address (compared
 * canonically: an IPv4 peer seen on a dual-stack socket as `::ffff:a.b.c.d`
 * is `a.b.c.d`; a zone does not count), or from one of the addresses its
 * host name resolves to through the tenant's guard (the lookup grant is
 * decided; both families, once per protocol), and from its port when the
 * endpoint names one explicitly (a port derived from a scheme or service
 * says nothing about a client's source port).
 *
 * @example
 * const matcher = new RemoteMatcher(remote, scope.guard);
 * const why = await matcher.refusal('tcp', channel.remote); // undefined: admitted
 */
import type { SocketAddress } from './driver.js';
import type { RemoteEndpoint } from './endpoints.js';
import { canonicalAddress } from './policy/canonical.js';
import type { PolicyGuard } from './policy/contract.js';
import type { PolicyProtocol } from './policy/types.js';

/** One spelling per address: canonical, IPv4-mapped IPv6 as its IPv4 address, no zone. */
export function peerKey(address: string): string {
  const c = canonicalAddress(address);
  if (!c.ok) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(c.host);
  return mapped ? mapped[1]! : c.host;
}

export class RemoteMatcher {
  readonly #remote: RemoteEndpoint;
  readonly #guard: PolicyGuard;
  readonly #port: number | undefined;
  readonly #address: string | undefined;
  /** Per protocol: the host name's addresses, or why they could not be had. */
  readonly #resolved = new Map<PolicyProtocol, Promise<ReadonlySet<string> | string>>();

  constructor(remote: RemoteEndpoint, guard: PolicyGuard) {
    this.#remote = remote;
    this.#guard = guard;
    this.#port = remote.toInit().port;
    this.#address = remote.ipAddress === undefined ? undefined : peerKey(remote.ipAddress);
  }

  /** Undefined when `peer` is one the remote endpoint names; else why not. */
  async refusal(protocol: PolicyProtocol, peer: SocketAddress): Promise<string | undefined> {
    const at = `${peer.address}:${peer.port}`;
    if (this.#port !== undefined && peer.port !== this.#port) return `peer ${at} is not from port ${this.#port}, which the listener's remote endpoint names`;
    const key = peerKey(peer.address);
    if (this.#address !== undefined) return key === this.#address ? undefined : `peer ${at} is not ${this.#remote.ipAddress}, the listener's remote endpoint`;
    const name = this.#remote.hostName!;
    let p = this.#resolved.get(protocol);
    if (p === undefined) {
      p = this.#resolve(protocol, name);
      this.#resolved.set(protocol, p);
    }
    const addresses = await p;
    if (typeof addresses === 'string') return `peer ${at} refused: the listener's remote endpoint ${name} ${addresses}`;
    return addresses.has(key) ? undefined : `peer ${at} is not an address of ${name}, the listener's remote endpoint`;
  }

  async #resolve(protocol: PolicyProtocol, name: string): Promise<ReadonlySet<string> | string> {
    const signal = new AbortController().signal;
    const answers = await Promise.allSettled([this.#guard.lookup(name, 6, protocol, signal), this.#guard.lookup(name, 4, protocol, signal)]);
    const found = new Set<string>();
    for (const a of answers) if (a.status === 'fulfilled') for (const r of a.value) found.add(peerKey(r.address));
    if (found.size > 0) return found;
    const failed = answers.find((a) => a.status === 'rejected');
    return failed ? `could not be resolved: ${(failed.reason as Error)?.message ?? String(failed.reason)}` : 'resolved to no address';
  }
}
