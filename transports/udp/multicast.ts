/**
 * IP multicast on a UDP socket (RFC 9622 §6.1.1; RFC 9623 §10, UDP Multicast Receive).
 *
 * - Receiving: a listener whose local endpoint names a group binds the group
 *   address and port (shared with other listeners of the group: SO_REUSEADDR,
 *   as RFC 9623 asks) and joins it, any-source or for one source
 *   (`addSourceSpecificMembership`, RFC 4607), on the endpoint's interface if
 *   it names one. `leave()` drops the membership; the listener calls it when
 *   it stops.
 * - Sending: a connection to a group sets the hop limit (IPv4 TTL / IPv6 hop
 *   count; RFC 9622 `WithHopLimit`, default 1, the OS default, which keeps it
 *   on the link), the outgoing interface when the local endpoint names one, and
 *   whether this host's own sockets hear it (`udp.multicastLoopback`, default
 *   the OS's: on).
 *
 * @example
 * const leave = joinGroup(socket, attempt.local, 4);
 * await listener.close(); leave();
 */
import type { Socket } from 'node:dgram';
import type { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { TapsError } from '../../src/errors.js';
import { interfaceAddress } from '../../src/paths/interfaces.js';
import type { TransportProperties } from '../../src/properties.js';

/** The address Node wants for "this interface" in multicast calls: its IPv4 address, or `::%name` for IPv6. */
export function multicastInterface(name: string | undefined, family: 4 | 6): string | undefined {
  if (name === undefined) return undefined;
  if (family === 6) return `::%${name}`;
  const a = interfaceAddress(name, 4);
  if (a === undefined) throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `interface ${name} has no IPv4 address to use for multicast (is it up?)`);
  return a.address;
}

/** Join the local endpoint's group on a bound socket; returns the function that leaves it (idempotent). */
export function joinGroup(socket: Socket, local: LocalEndpoint, family: 4 | 6): () => void {
  const group = local.multicastGroup;
  if (group === undefined) return () => {};
  const iface = multicastInterface(local.interface, family);
  const source = local.multicastSource;
  try {
    if (source === undefined) socket.addMembership(group, iface);
    else socket.addSourceSpecificMembership(source, group, iface);
  } catch (err) {
    const what = source === undefined ? `group ${group}` : `group ${group} for source ${source}`;
    throw new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `could not join ${what}${local.interface ? ` on ${local.interface}` : ''}: ${(err as Error).message}`, { cause: err });
  }
  let joined = true;
  return () => {
    if (!joined) return;
    joined = false;
    try {
      if (source === undefined) socket.dropMembership(group, iface);
      else socket.dropSourceSpecificMembership(source, group, iface);
    } catch {
      /* the socket is already closed: closing left the group */
    }
  };
}

/** Set the options of a connected socket that sends to a group: hop limit, interface, loopback. */
export function prepareGroupSend(socket: Socket, remote: RemoteEndpoint, local: LocalEndpoint | undefined, family: 4 | 6, properties: TransportProperties): void {
  socket.setMulticastTTL(remote.hopLimit ?? local?.hopLimit ?? 1);
  const iface = multicastInterface(local?.interface, family);
  if (iface !== undefined) socket.setMulticastInterface(iface);
  const loop = multicastLoopback(properties);
  if (loop !== undefined) socket.setMulticastLoopback(loop);
}

function multicastLoopback(properties: TransportProperties): boolean | undefined {
  try {
    return properties.get('udp.multicastLoopback') as boolean | undefined;
  } catch {
    return undefined;
  }
}
