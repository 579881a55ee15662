/**
 * Multicast addresses (RFC 9622 §6.1.1): which IPs are groups, and the checks
 * a group endpoint's fields get.
 *
 * A group is an IPv4 address in 224.0.0.0/4 (RFC 5771) or an IPv6 address in
 * ff00::/8 (RFC 4291 §2.7). A source-specific join (RFC 4607) names one
 * unicast source of the group's family. The hop limit is the IPv4 TTL or the
 * IPv6 hop count of what is sent to the group, 0–255 (0 keeps it on this host).
 *
 * @example
 * isMulticast('239.255.12.34'); // true
 * isMulticast('ff15::1');       // true
 * isMulticast('192.0.2.1');     // false
 */
import { canonicalIp, describe, type IpLiteral } from '../names.js';

/** Is `address` (canonical text) an IPv4 or IPv6 multicast group? */
export function isMulticast(address: string): boolean {
  // The first group of ff00::/8 is always four hex digits (ff00–ffff), so the text starts `ffXX:`.
  if (address.includes(':')) return /^ff[0-9a-f]{2}:/i.test(address);
  const first = Number(address.slice(0, address.indexOf('.')));
  return first >= 224 && first <= 239;
}

/** The group address of a group endpoint field, canonical, or a TypeError naming `field`. */
export function checkGroup(value: unknown, field: string): IpLiteral {
  const ip = canonicalIp(value, field);
  if (!isMulticast(ip.address)) {
    throw new TypeError(`${field} ${JSON.stringify(ip.address)} is not a multicast group (224.0.0.0/4 or ff00::/8)`);
  }
  return ip;
}

/** The source of a source-specific join: a unicast address of the group's family. */
export function checkSource(value: unknown, group: IpLiteral, field: string): IpLiteral {
  const ip = canonicalIp(value, field);
  if (isMulticast(ip.address)) throw new TypeError(`${field} ${JSON.stringify(ip.address)} is a multicast address; a source is unicast`);
  if (ip.family !== group.family) throw new TypeError(`${field} ${ip.address} and the group ${group.address} are of different IP families`);
  return ip;
}

/** A hop limit (IPv4 TTL / IPv6 hop count): an integer 0–255, or a RangeError naming `field`. */
export function checkHopLimit(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new RangeError(`${field} must be an integer from 0 to 255, got ${describe(value)}`);
  }
  return value;
}
