/**
 * Reliable stacks under a misbehaving path: tcp and tls with the
 * length-prefix framer, ws and wss. Messages of mixed sizes flow both ways at
 * once through a fault relay; every message the library reported `sent` must
 * arrive exactly once, intact (hash) and in order — unless a connection
 * reported an error naming what happened, and then nothing is delivered
 * out of order or corrupted, no `sent` is reported after the error, and no
 * message is delivered after it.
 *
 * What each stack can promise decides the faults it faces:
 * - Faults that keep the byte stream intact (delay, arbitrary re-chunking, a
 *   stall then resume): every stack delivers everything.
 * - A reset or a cut connection: every stack reports it (CONNECTION_RESET,
 *   DEFRAMING_FAILED for a stream cut inside a message) and delivers only a
 *   prefix.
 * - Bytes corrupted, dropped, duplicated or reordered inside the stream:
 *   only TLS can notice (ERR_TAPS_SECURITY_FAILED); plain tcp and ws carry
 *   no integrity check beyond the TCP checksum, which a relay recomputes, so
 *   there the library is only required not to crash and to fail with typed
 *   errors (the application's hash is what catches it).
 *
 * Counts: a reduced count by default; `TAPS_FULL=1` sends 1,000,000
 * messages per stack (500,000 each way) through the re-chunking relay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { isTapsError, type TapsErrorCode } from '../../src/errors.js';
import type { TcpFaultPlan } from '../helpers/fault-relay.js';
import { closed, connectedPair, receiveDeadline, until, type Pair, type Stack } from './stacks.js';
import { Checker, FULL, FULL_COUNT, pump, tally, Workload, type SendTally } from './workload.js';

const pairs: Pair[] = [];
afterEach(async () => {
  for (const p of pairs.splice(0)) await p.cleanup();
});

interface Side {
  readonly conn: Connection;
  readonly tally: SendTally;
  readonly check: Checker;
  /** Messages delivered after this side reported an error (must stay 0). */
  late: number;
  ended: boolean;
}

function watch(conn: Connection, wl: Workload): Side {
  const side: Side = { conn, tally: tally(conn), check: new Checker(wl), late: 0, ended: false };
  conn.on('received', (m) => {
    if (side.tally.error !== undefined) side.late++;
    side.check.accept(m.data);
  });
  conn.on('receivedEnd', () => (side.ended = true));
  return side;
}

interface Outcome {
  readonly client: Side;
  readonly server: Side;
  readonly errors: { side: string; code: TapsErrorCode; message: string }[];
  readonly relayLog: readonly string[];
}

/**
 * Send `n` messages each way through a relay with `plan`; wait until all
 * that was reported sent arrived, or both ends closed. `during` runs while
 * the pumps run (e.g. to resume a stall).
 */
interface ExchangeOptions {
  /** Runs alongside the senders (e.g. to lift a stall). */
  readonly during?: (p: Pair) => Promise<void>;
  /** Largest payload. */
  readonly max?: number;
  /** Connection properties for both ends. */
  readonly properties?: Readonly<Record<string, unknown>>;
  /** Each end aborts when no whole message arrived for this many ms (the application's receive deadline). */
  readonly receiveDeadline?: number;
}

async function exchange(stack: Stack, plan: TcpFaultPlan | undefined, n: number, seed: number, opts: ExchangeOptions = {}): Promise<Outcome> {
  const { during, max, properties, receiveDeadline: deadline } = opts;
  const pair = await connectedPair(stack, {
    ...(plan === undefined ? {} : { relay: plan }),
    ...(properties === undefined ? {} : { connectionProperties: properties, serverConnectionProperties: properties }),
  });
  pairs.push(pair);
  const up = new Workload(seed, { max });
  const down = new Workload(seed + 1, { max });
  // The server checks what the client sent (up) and the client what the server sent (down).
  const server = watch(pair.server, up);
  const client = watch(pair.client, down);
  if (deadline !== undefined) for (const c of [pair.server, pair.client]) receiveDeadline(c, deadline);
  await Promise.all([pump(pair.client, up, 0, n), pump(pair.server, down, 0, n), during?.(pair)]);
  const broken = (): boolean => pair.client.state === 'closed' || pair.server.state === 'closed' || client.ended || server.ended;
  await until(() => (server.check.ok >= client.tally.sent && client.check.ok >= server.tally.sent) || broken(), 'delivery or a failure', 60_000);
  if (broken()) {
    // One end failed: the other learns of it too (the relay tore the connection down). Bounded.
    for (const c of [pair.client, pair.server]) if (c.state !== 'closed') c.abort();
    await Promise.all([closed(pair.client), closed(pair.server)]);
  }
  const errors = [
    ...(client.tally.error ? [{ side: 'client', code: client.tally.error.code, message: client.tally.error.message }] : []),
    ...(server.tally.error ? [{ side: 'server', code: server.tally.error.code, message: server.tally.error.message }] : []),
  ];
  return { client, server, errors, relayLog: pair.relay?.log ?? [] };
}

/** The invariants every outcome must meet. `allowed`: error codes that name what the relay did. */
function verify(o: Outcome, n: number, allowed: readonly TapsErrorCode[], mustFail: boolean): void {
  const why = JSON.stringify({ errors: o.errors, relay: o.relayLog.slice(0, 20) });
  for (const [me, peer] of [[o.server, o.client], [o.client, o.server]] as const) {
    // Exactly once, intact, in order — always, whatever happened.
    expect(me.check.corrupt, `${why} ${me.check.firstProblem}`).toBe(0);
    expect(me.check.duplicate, why).toBe(0);
    expect(me.check.outOfOrder, why).toBe(0);
    // Never delivered what the sender did not report sent; nothing after an error.
    expect(me.check.ok, why).toBeLessThanOrEqual(peer.tally.sent);
    expect(me.late, why).toBe(0);
    expect(me.tally.sentAfterError, why).toBe(0);
    for (const e of [me.tally.error, me.tally.firstSendError]) if (e !== undefined) expect(isTapsError(e)).toBe(true);
  }
  if (o.errors.length === 0 && !o.client.ended && !o.server.ended) {
    expect(mustFail, `expected a failure, none was reported: ${why}`).toBe(false);
    expect(o.server.check.ok).toBe(n);
    expect(o.client.check.ok).toBe(n);
    expect(o.client.tally.sent).toBe(n);
    expect(o.server.tally.sent).toBe(n);
    return;
  }
  for (const e of o.errors) expect(allowed, why).toContain(e.code);
  // Something was lost only if something was reported.
  if (o.server.check.ok < o.client.tally.sent || o.client.check.ok < o.server.tally.sent) {
    expect(o.errors.length > 0 || o.client.ended || o.server.ended, why).toBe(true);
  }
}

const RELIABLE: readonly Stack[] = ['tcp', 'tls', 'ws', 'wss'];
const N = 2000;

describe.each(RELIABLE)('%s: the stream survives faults that keep it intact', (stack) => {
  it(`${FULL ? FULL_COUNT.toLocaleString('en') : 2 * N} messages of mixed sizes through a re-chunking, jittery relay`, async () => {
    const n = FULL ? FULL_COUNT / 2 : N;
    const o = await exchange(stack, { seed: 11, toServer: { split: 4096, delayMs: [0, 1] }, toClient: { split: 1500 } }, n, 101);
    verify(o, n, [], false);
  }, FULL ? 1_800_000 : 30_000);

  it('one byte at a time, for the first messages', async () => {
    const o = await exchange(stack, { seed: 12, toServer: { split: 1 }, toClient: { split: 2 } }, 40, 202, { max: 600 });
    verify(o, 40, [], false);
  });

  it('a stall: the sender feels backpressure, then everything arrives once the path resumes', async () => {
    const n = 3000;
    const o = await exchange(stack, { seed: 13, toServer: { stallAt: 20_000 } }, n, 303, {
      during: async (p) => {
        // The path is stalled: the client's sends stop completing while the server's still do.
        await until(() => p.relay!.log.some((l) => l.includes('stall')), 'the stall');
        await new Promise((r) => setTimeout(r, 50));
        p.relay!.resume();
      },
    });
    verify(o, n, [], false);
  });
});

describe.each(RELIABLE)('%s: a broken path is reported, and only a prefix is delivered', (stack) => {
  it.each([1, 2, 3])('reset after some bytes (seed %i)', async (seed) => {
    const at = 5_000 + seed * 7_919;
    const o = await exchange(stack, { seed, toServer: { resetAt: at } }, 3000, seed * 10);
    // A RST right behind the last bytes can reach the reader as an end of stream (Linux reports EOF when the
    // data and the RST are read together): then the stream ended inside a message, which is what it says.
    verify(o, 3000, ['ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_CONNECTION_ABORTED', 'ERR_TAPS_DEFRAMING_FAILED'], true);
  });

  it.each([1, 2, 3])('the path gives up and closes mid-stream (seed %i)', async (seed) => {
    const at = 3_000 + seed * 6_007;
    const o = await exchange(stack, { seed, toClient: { truncateAt: at } }, 3000, seed * 20);
    verify(o, 3000, ['ERR_TAPS_DEFRAMING_FAILED', 'ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_CONNECTION_ABORTED', 'ERR_TAPS_PROTOCOL_FAILED'], true);
  });
});

describe.each(['tls', 'wss'] as const)('%s: tampering is detected, never delivered', (stack) => {
  const plans: [string, TcpFaultPlan][] = [
    ['one bit flipped', { seed: 21, toServer: { corruptAt: 9_000 } }],
    ['one bit flipped toward the client', { seed: 22, toClient: { corruptAt: 12_345 } }],
    ['chunks dropped', { seed: 23, toServer: { drop: 0.02 } }],
    ['chunks duplicated', { seed: 24, toClient: { duplicate: 0.02 } }],
    ['chunks reordered', { seed: 25, toServer: { reorder: 0.02 } }],
  ];
  it.each(plans)('%s', async (_name, plan) => {
    const o = await exchange(stack, plan, 3000, 7);
    verify(o, 3000, ['ERR_TAPS_SECURITY_FAILED', 'ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_CONNECTION_ABORTED', 'ERR_TAPS_PROTOCOL_FAILED'], true);
    expect(o.errors.some((e) => e.code === 'ERR_TAPS_SECURITY_FAILED'), JSON.stringify(o.errors)).toBe(true);
  });
});

describe.each(['tcp', 'ws'] as const)('%s: tampering is beyond what the stack can detect', (stack) => {
  // No integrity check above TCP's checksum, which the relay recomputes: the library cannot promise intact
  // messages here (the capability it declares is `encrypted: false`). It must still never crash, fail only with
  // typed errors. A corrupted length makes a receiver wait for bytes that never come: the receive deadline ends that.
  it.each([31, 32, 33])('bits flipped and chunks dropped (seed %i): typed errors or deliveries, never a crash', async (seed) => {
    const o = await exchange(stack, { seed, toServer: { corrupt: 0.01, drop: 0.005 }, toClient: { corrupt: 0.01 } }, 2000, seed, { receiveDeadline: 300 });
    for (const e of o.errors) {
      expect(['ERR_TAPS_TIMEOUT', 'ERR_TAPS_DEFRAMING_FAILED', 'ERR_TAPS_PROTOCOL_FAILED', 'ERR_TAPS_MESSAGE_TOO_LARGE', 'ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_CONNECTION_ABORTED']).toContain(e.code);
    }
    for (const side of [o.client, o.server]) expect(side.late).toBe(0);
  });
});
