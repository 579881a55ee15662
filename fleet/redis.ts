/**
 * The fleet's two Redis connections (one for commands, one subscribed to the
 * fleet's channels) and whether Redis is reachable. The client, `ioredis`, is
 * imported only here and only when a fleet is opened, so a program that
 * never configures a fleet never loads it (and need not install it).
 *
 * Commands never queue while Redis is away (`enableOfflineQueue: false`) and
 * each has a deadline (`commandTimeoutMs`): a caller learns at once that the
 * fleet cannot answer instead of waiting, which is what fail-closed needs.
 * Both connections reconnect by themselves, forever, with a capped backoff.
 *
 * @example
 * const link = await RedisLink.open({ url: 'redis://127.0.0.1:6379', commandTimeoutMs: 500 }, onChange);
 * await link.cmd.ping();
 */
import type { Redis, RedisOptions } from 'ioredis';
import { TapsError } from '../src/errors.js';
import { SCRIPTS, type FleetCommands } from './scripts.js';

/** A command connection with the fleet's scripts defined on it. */
export type FleetRedis = Redis & FleetCommands;

export interface LinkOptions {
  /** `redis://[user:password@]host:port[/db]` or ioredis options. */
  readonly redis: string | RedisOptions;
  readonly commandTimeoutMs: number;
  /** Longest pause between reconnection attempts. */
  readonly maxReconnectDelayMs: number;
}

type RedisClass = typeof import('ioredis').Redis;
let loading: Promise<RedisClass> | undefined;

/** Import ioredis on first use; its absence is a clear ERR_TAPS_UNAVAILABLE, never an import-time crash. */
async function loadClient(): Promise<RedisClass> {
  loading ??= import('ioredis').then((m) => m.Redis).catch((err: unknown) => {
    loading = undefined;
    throw new TapsError('ERR_TAPS_UNAVAILABLE', 'the fleet mode needs the ioredis package (npm install ioredis@5)', { cause: err });
  });
  return loading;
}

export class RedisLink {
  readonly cmd: FleetRedis;
  readonly sub: Redis;
  #up = false;
  #closed = false;
  readonly #onChange: (up: boolean, cause?: Error) => void;

  private constructor(cmd: FleetRedis, sub: Redis, onChange: (up: boolean, cause?: Error) => void) {
    this.cmd = cmd;
    this.sub = sub;
    this.#onChange = onChange;
  }

  /**
   * Connect both connections. Resolves once the command connection answered
   * or failed its first attempt (the fleet then starts "down" and recovers by
   * itself); a configuration error rejects.
   */
  static async open(o: LinkOptions, onChange: (up: boolean, cause?: Error) => void, onSubscriberReady: () => void): Promise<RedisLink> {
    const IORedis = await loadClient();
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: o.commandTimeoutMs,
      connectTimeout: Math.max(o.commandTimeoutMs, 1000),
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), o.maxReconnectDelayMs),
      // A Redis that restarted lost nothing we need to replay: the fleet re-asserts its own state
      // and subscribes again itself (then reads what it may have missed).
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      // A socket that never connected is destroyed this soon after close() instead of a timer lingering 2 s.
      disconnectTimeout: 200,
    };
    const make = (): Redis => (typeof o.redis === 'string' ? new IORedis(o.redis, common) : new IORedis({ ...o.redis, ...common }));
    const cmd = make() as FleetRedis;
    for (const [name, s] of Object.entries(SCRIPTS)) cmd.defineCommand(name, s);
    const sub = make();
    const link = new RedisLink(cmd, sub, onChange);
    // Errors are reported through state changes; an 'error' listener keeps ioredis from throwing them.
    cmd.on('error', () => {});
    sub.on('error', () => {});
    cmd.on('ready', () => link.#set(true));
    cmd.on('close', () => link.#set(false, new Error('the connection to Redis closed')));
    sub.on('ready', onSubscriberReady);
    await Promise.allSettled([cmd.connect(), sub.connect()]);
    return link;
  }

  get up(): boolean {
    return this.#up && !this.#closed;
  }

  /** The error a caller gets when Redis cannot answer. */
  unavailable(cause?: unknown): TapsError {
    const why = cause === undefined ? 'Redis is unreachable' : `Redis did not answer: ${(cause as Error)?.message ?? String(cause)}`;
    return new TapsError('ERR_TAPS_FLEET_UNAVAILABLE', `the fleet cannot count this: ${why}`, cause === undefined ? {} : { cause });
  }

  /**
   * A command failed. If the connection itself failed, Redis counts as down
   * until the connection is ready again; a command that merely timed out
   * fails alone (the next one tries again), so one slow answer does not stop
   * the fleet.
   */
  failed(err: unknown): void {
    const msg = String((err as Error)?.message ?? err);
    if (/writeable|Connection is closed|ECONNREFUSED|ECONNRESET|EPIPE|LOADING/i.test(msg)) this.#set(false, err as Error);
  }

  /** A command succeeded: Redis answers again (after a timeout that did not close the connection). */
  ok(): void {
    if (this.cmd.status === 'ready') this.#set(true);
  }

  #set(up: boolean, cause?: Error): void {
    if (this.#closed || up === this.#up) return;
    this.#up = up;
    this.#onChange(up, cause);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([quit(this.cmd), quit(this.sub)]);
  }
}

/** QUIT when connected (replies flushed), else drop the socket and stop reconnecting. */
async function quit(r: Redis): Promise<void> {
  if (r.status === 'ready') {
    try {
      await r.quit();
      return;
    } catch {
      /* fall through */
    }
  }
  r.disconnect(false);
}
