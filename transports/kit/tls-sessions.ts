/**
 * TLS session resumption for every TLS-over-TCP client (tls, https, wss,
 * webtransport-h2; the handshake is ./tls-client.ts) (RFC 9622 §6.3.7; RFC 9623 §4.4 caches): a
 * process-wide store of session tickets, keyed so that a ticket is only ever
 * offered again by the same tenant, to the same address and port, for the
 * same checked name and under the same trust settings (CA set, pins, client
 * certificate, versions, ALPN) — a ticket never links two tenants or skips a
 * check a fresh handshake would make. TLS 1.3 tickets are used once
 * (RFC 8446 §C.4). Each ticket keeps the peer record of its full handshake,
 * so pins, validity and the verify callback are checked again on resumption.
 * `security.sessionCacheLimit` (default 100 per tenant; 0
 * turns resumption off) and `security.sessionLifetimeSeconds` (default 300,
 * Node's server ticket lifetime) bound it.
 *
 * @example
 * const key = sessionKey(target, plan, security);
 * const hit = takeSession(tenant, key);   // hit.session → tls.connect({ session })
 * socket.on('session', (session) => storeSession(tenant, key, { session, peer }, limit, lifetimeMs));
 */
import { createHash } from 'node:crypto';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import type { SecurityParameters } from '../../src/security.js';
import type { ClientTlsPlan } from './tls-options.js';
import type { PeerRecord } from './tls-verify.js';

/** Default number of TLS sessions kept for resumption (per tenant). */
export const DEFAULT_SESSION_LIMIT = 100;
/** Default lifetime of a cached TLS session, in seconds. */
export const DEFAULT_SESSION_LIFETIME_S = 300;

/** A ticket and what the full handshake it came from showed about the peer. */
export interface StoredSession {
  readonly session: Buffer;
  readonly peer: PeerRecord;
}

interface Entry extends StoredSession {
  readonly expires: number;
}

/** tenant → key → tickets (oldest first). Map order gives LRU eviction per tenant. */
const store = new Map<string, Map<string, Entry[]>>();

function digest(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url');
}

/** The cache key for one connect: everything that decides whether a fresh handshake would be accepted. */
export function sessionKey(target: CheckedTarget, plan: ClientTlsPlan, security: SecurityParameters): string {
  const pem = (v: unknown): string => (v === undefined ? '' : Buffer.isBuffer(v) ? v.toString('latin1') : String(v));
  return digest([
    target.address,
    target.port,
    plan.identity,
    plan.options.servername ?? null,
    plan.authenticate,
    [...plan.pins].sort(),
    (security.ca ?? []).map(pem),
    pem(security.certificate),
    plan.options.minVersion,
    plan.options.maxVersion,
    plan.options.ALPNProtocols ?? null,
    plan.options.ciphers ?? null,
    security.psk ? [security.psk.identity, security.psk.key.toString('base64')] : null,
  ]);
}

/** Resumption settings from SecurityParameters. */
export function sessionPolicy(security: SecurityParameters): { limit: number; lifetimeMs: number } {
  return {
    limit: security.sessionCacheLimit ?? DEFAULT_SESSION_LIMIT,
    lifetimeMs: (security.sessionLifetimeSeconds ?? DEFAULT_SESSION_LIFETIME_S) * 1000,
  };
}

/** Take (and remove) the newest unexpired ticket for this tenant and key. */
export function takeSession(tenant: string, key: string, now = Date.now()): StoredSession | undefined {
  const byKey = store.get(tenant);
  const list = byKey?.get(key);
  if (!byKey || !list) return undefined;
  let entry: Entry | undefined;
  while ((entry = list.pop()) !== undefined && entry.expires <= now);
  if (list.length === 0) byKey.delete(key);
  if (byKey.size === 0) store.delete(tenant);
  return entry && entry.expires > now ? { session: entry.session, peer: entry.peer } : undefined;
}

/** Keep a ticket; at most `limit` tickets per tenant (oldest keys evicted first). */
export function storeSession(tenant: string, key: string, stored: StoredSession, limit: number, lifetimeMs: number, now = Date.now()): void {
  if (limit <= 0 || lifetimeMs <= 0) return;
  let byKey = store.get(tenant);
  if (!byKey) store.set(tenant, (byKey = new Map()));
  const list = byKey.get(key) ?? [];
  byKey.delete(key); // re-insert: most recently used last
  list.push({ ...stored, expires: now + lifetimeMs });
  // A server sends a couple of tickets per handshake; a few per key is plenty.
  while (list.length > Math.min(4, limit)) list.shift();
  byKey.set(key, list);
  let count = 0;
  for (const l of byKey.values()) count += l.length;
  for (const [k, l] of byKey) {
    if (count <= limit) break;
    count -= l.length;
    byKey.delete(k);
  }
  if (byKey.size === 0) store.delete(tenant);
}

/** Forget every ticket (all tenants, or one). */
export function clearSessions(tenant?: string): void {
  if (tenant === undefined) store.clear();
  else store.delete(tenant);
}
