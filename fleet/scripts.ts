/**
 * The Lua scripts the fleet runs in Redis. Each runs atomically (Redis runs
 * one script at a time), so a count is read and changed with nothing in
 * between; ioredis sends them by digest and falls back to the text when a
 * restarted Redis no longer has them.
 *
 * Keys (prefix `taps:<fleet>:`):
 * - `hosts`                       sorted set: host id → lease expiry (ms)
 * - `host:<id>`                   a live host's key, expiring after the lease time
 * - `u:<tenant>:<kind>`           hash: host id → units it holds (connection, listener)
 * - `b:<tenant>:<name>:<ms>:<n>`  bytes granted in window n of a budget (expires after it)
 * - `policies`, `policyrev`       tenant → `rev\npayload`; the last revision number
 * - `records`                     the decision stream
 * Channels: `policy` (`tenant\nrev\npayload`), `reclaim` (`tenant\nkind\nask\n<request>` from a host
 * that is short; `tenant\nkind\nback\n<host>\n<request>` from each holder once it returned its spares).
 *
 * These scripts name keys they compute (a holder's `host:<id>`), so the
 * fleet needs one Redis primary (or Sentinel), not Redis Cluster.
 */
/**
 * Renew this host's lease, drop expired hosts from `hosts`; returns whether
 * the host key still existed (0: it had expired, so other hosts may have
 * reclaimed our units), the live host count, and Redis's clock in ms.
 * KEYS: hosts, host:<me>. ARGV: me, leaseMs.
 */
const heartbeat = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local existed = redis.call('EXISTS', KEYS[2])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {existed, redis.call('ZCARD', KEYS[1]), now}
`;

/**
 * Set this host's claim on a tenant's units to `held` plus what it can be
 * granted now: up to `need` units, plus up to `extra` spare units while the
 * tenant is far from its limit (never more than a share of what is free, so
 * spares shrink to nothing near the limit). Claims of hosts whose key expired
 * are dropped first: that is how a dead host's units come back.
 * When `need` cannot be met and other hosts hold units, `reclaim` is
 * published so they return spares they are not using.
 * KEYS: u:<tenant>:<kind>. ARGV: host key prefix, me, held, need, extra,
 * limit (-1: none), leaseMs, reclaim channel, reclaim message.
 * Returns {granted, free before the grant (-1: no limit), live holders,
 * held by others, {ids of the other holders}}.
 */
const units = `
local prefix, me = ARGV[1], ARGV[2]
local held, need, extra, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('SET', prefix .. me, '1', 'PX', ARGV[7])
local others, hosts, ids = 0, 1, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local who = all[i]
  if who ~= me then
    if redis.call('EXISTS', prefix .. who) == 1 then
      others = others + tonumber(all[i + 1])
      hosts = hosts + 1
      ids[#ids + 1] = who
    else
      redis.call('HDEL', KEYS[1], who)
    end
  end
end
local grant = need + extra
local free = -1
if limit >= 0 then
  free = limit - others - held
  if free < need then
    grant = math.max(free, 0)
  else
    grant = need + math.min(extra, math.floor((free - need) / (2 * hosts)))
  end
end
local mine = held + grant
if mine > 0 then redis.call('HSET', KEYS[1], me, mine) else redis.call('HDEL', KEYS[1], me) end
if grant < need and others > 0 then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return {grant, free, hosts, others, ids}
`;

/**
 * Grant bytes of one window of a budget: `need` bytes or none, plus up to
 * `extra` more while the window has them. `force` 1 records bytes already
 * spent while Redis was away (granted whatever is left).
 * KEYS: b:<tenant>:<name>:<ms>:<n>. ARGV: budget bytes, need, extra, ttl ms, force.
 * Returns {granted, left after the grant}.
 */
const bytes = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local budget, need, extra = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local left = budget - used
local grant = 0
if ARGV[5] == '1' then
  grant = need
elseif left >= need then
  grant = need + math.max(0, math.min(extra, left - need))
end
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {grant, left - grant}
`;

/** Give back unspent bytes of a window. KEYS: the window key. ARGV: bytes. */
const bytesBack = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local back = math.min(used, tonumber(ARGV[1]))
if back > 0 then redis.call('DECRBY', KEYS[1], back) end
return back
`;

/**
 * Store a tenant's policy under the next revision and announce it. An empty
 * payload removes the tenant: a tombstone (`rev\n`) is kept, so a host that
 * missed the announcement still learns of the removal, while a tenant Redis
 * knows nothing about (Redis lost its data) is never removed from hosts.
 * Revisions of a fresh Redis start at its clock in ms, so they stay above
 * those of a Redis that was wiped. KEYS: policies, policyrev. ARGV: tenant,
 * payload, channel. Returns the revision.
 */
const publishPolicy = `
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
local rev = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], rev .. '\\n' .. ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1] .. '\\n' .. rev .. '\\n' .. ARGV[2])
return rev
`;

export const SCRIPTS = {
  fleetHeartbeat: { numberOfKeys: 2, lua: heartbeat },
  fleetUnits: { numberOfKeys: 1, lua: units },
  fleetBytes: { numberOfKeys: 1, lua: bytes },
  fleetBytesBack: { numberOfKeys: 1, lua: bytesBack },
  fleetPublish: { numberOfKeys: 2, lua: publishPolicy },
} as const;

type Arg = string | number;

/** The scripts as commands on the ioredis client (defineCommand). */
export interface FleetCommands {
  fleetHeartbeat(hosts: string, hostKey: string, me: string, leaseMs: number): Promise<[number, number, number]>;
  fleetUnits(key: string, ...args: Arg[]): Promise<[number, number, number, number, string[]]>;
  fleetBytes(key: string, ...args: Arg[]): Promise<[number, number]>;
  fleetBytesBack(key: string, bytes: number): Promise<number>;
  fleetPublish(policies: string, rev: string, tenant: string, payload: string, channel: string): Promise<number>;
}
