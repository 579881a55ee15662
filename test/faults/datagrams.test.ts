/**
 * The unreliable stack (udp) under a misbehaving path and a flood.
 *
 * What UDP can promise, and so what the library may claim: each message is
 * one datagram, delivered whole as it arrived or not at all — never merged
 * with another, split, padded or cut short by the library. Loss,
 * duplication and reordering happen and the library says so up front: the
 * connection reads back `reliability`, `preserveOrder` false, and refuses a
 * message that asks for reliability or must not be duplicated. A relay that
 * rewrites a datagram's payload produces a datagram with a valid UDP
 * checksum, which no receiver can tell from the original; the application's
 * hash is what rejects it, and the test counts it as lost. So the checks
 * are: every datagram the relay forwarded untouched arrives intact (minus
 * what the kernel drops, counted), every tampered one is caught by the hash,
 * nothing arrives that the relay did not send, and loss shows up in counts,
 * never as a crash. A flood of datagrams from one peer or from many costs
 * bounded memory.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { UdpFaultPlan } from '../helpers/fault-relay.js';
import { connectedPair, listenOn, until, type Pair } from './stacks.js';
import { Checker, FULL, pump, tally, Workload } from './workload.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pair(plan?: UdpFaultPlan, driverOptions?: Record<string, Record<string, unknown>>): Promise<Pair> {
  const p = await connectedPair('udp', { ...(plan ? { relay: plan } : {}), ...(driverOptions ? { driverOptions } : {}) });
  cleanups.push(() => p.cleanup());
  return p;
}

/** Every received message goes to the checker but the empty flow-opening probes (the relay never makes an empty one). */
function collect(conn: Connection, check: Checker): { all: number; lengths: Map<number, number> } {
  const seen = { all: 0, lengths: new Map<number, number>() };
  conn.on('received', (m) => {
    if (m.byteLength === 0) return;
    seen.all++;
    seen.lengths.set(m.byteLength, (seen.lengths.get(m.byteLength) ?? 0) + 1);
    check.accept(m.data);
  });
  return seen;
}

/** Resolves once `value()` has not changed for 60 ms. */
async function quiet(value: () => number): Promise<void> {
  let last = value();
  let still = 0;
  while (still < 60) {
    await new Promise((r) => setTimeout(r, 10));
    const v = value();
    still = v === last ? still + 10 : 0;
    last = v;
  }
}

describe('udp: what the library claims', () => {
  it('reads back unreliable and unordered, and refuses messages that ask for more', async () => {
    const { client } = await pair();
    expect(client.transportProperties.reliability).toBe(false);
    expect(client.transportProperties.preserveOrder).toBe(false);
    await expect(client.send('x', { msgReliable: true })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    await expect(client.send('x', { safelyReplayable: false })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    await expect(client.send('x', { msgOrdered: true })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
  });

  it('datagrams of every size arrive whole: empty, 1 byte, one MTU, the 65,507-byte maximum', async () => {
    const { client, server } = await pair();
    const sizes = [1, 1472, 9000, 65_507];
    const got: number[] = [];
    server.on('received', (m) => {
      if (m.byteLength > 0 || got.length > 0) got.push(m.byteLength);
    });
    for (const n of sizes) {
      // Retry: a datagram may be lost even on loopback; what arrives must be whole.
      for (let i = 0; i < 20 && !got.includes(n); i++) {
        await client.send(new Uint8Array(n).fill(n & 0xff));
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    expect(got.filter((n) => n !== 0).every((n) => sizes.includes(n))).toBe(true);
    for (const n of sizes) expect(got).toContain(n);
  });
});

describe('udp: a lossy, duplicating, reordering, tampering path', () => {
  const plans: [string, UdpFaultPlan][] = [
    ['loss, duplicates and reordering', { seed: 41, toServer: { drop: 0.05, duplicate: 0.03, reorder: 0.05, delayMs: [0, 2] } }],
    ['corruption and truncation', { seed: 42, toServer: { corrupt: 0.05, truncate: 0.05 } }],
    ['everything at once', { seed: 43, toServer: { drop: 0.03, duplicate: 0.03, reorder: 0.03, corrupt: 0.03, truncate: 0.03, delayMs: [0, 1] } }],
  ];
  it.each(plans)('%s: intact or counted as lost, never more than was sent', async (_name, plan) => {
    const n = FULL ? 200_000 : 3000;
    const p = await pair(plan);
    const wl = new Workload(plan.seed ?? 0, { max: 8 * 1024 });
    const check = new Checker(wl, false);
    const seen = collect(p.server, check);
    const t = tally(p.client);
    const issued = await pump(p.client, wl, 0, n, 32);
    expect(issued).toBe(n);
    expect(t.sent).toBe(n); // handed to the OS: `sent` claims no more than that
    const st = p.relay!.stats.toServer;
    // Wait until the traffic is over (nothing moved for a while: the kernel may have dropped some).
    await quiet(() => st.units + seen.all);
    // Datagrams the relay sent on: the survivors and their copies.
    const forwarded = st.units - st.dropped + st.duplicated;
    const tampered = st.corrupted + st.truncated;
    // Lost by the kernel before the relay (n - units) and after it (forwarded - delivered).
    const kernelLost = n - st.units + forwarded - seen.all;
    const report = { n, relay: { ...st }, delivered: seen.all, ok: check.ok, corrupt: check.corrupt, duplicate: check.duplicate, reordered: check.outOfOrder, kernelLost };
    // Nothing the relay did not send, and every message one datagram.
    expect(kernelLost, JSON.stringify(report)).toBeGreaterThanOrEqual(0);
    // Each tampered datagram is caught by the application's hash (two faults on one datagram count once).
    expect(check.corrupt, JSON.stringify(report)).toBeLessThanOrEqual(tampered + st.duplicated);
    if (tampered > 0) expect(check.corrupt, JSON.stringify(report)).toBeGreaterThan(0);
    // Intact deliveries: each sent message at most once, and every untouched survivor unless the kernel dropped it.
    expect(check.ok, JSON.stringify(report)).toBeLessThanOrEqual(n - st.dropped);
    expect(check.ok + check.corrupt + check.duplicate, JSON.stringify(report)).toBe(seen.all);
    expect(check.ok, JSON.stringify(report)).toBeGreaterThanOrEqual(n - st.dropped - tampered - Math.max(kernelLost, 0));
    if (plan.toServer?.duplicate) expect(check.duplicate).toBeGreaterThan(0);
    // The connection is still usable: loss is not a failure.
    expect(p.client.state).toBe('established');
    expect(p.server.state).toBe('established');
  }, FULL ? 600_000 : 20_000);
});

describe('udp: floods', () => {
  it('a flood from one peer that nobody reads costs bounded memory; the connection survives', async () => {
    const listener = await listenOn('udp', '127.0.0.1');
    cleanups.push(() => listener.stop());
    const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
    const blaster: UdpSocket = createSocket('udp4');
    blaster.on('error', () => {});
    cleanups.push(() => new Promise<void>((r) => blaster.close(() => r())));
    await new Promise<void>((r) => blaster.bind(0, '127.0.0.1', () => r()));
    const blast = (b: Buffer): Promise<void> => new Promise<void>((r) => blaster.send(b, listener.port, '127.0.0.1', () => r()));
    await blast(Buffer.from('hello'));
    const server = await accepted;
    cleanups.push(() => server.abort());
    // Nobody reads: the inbox fills and pauses the channel, and the channel drops beyond its own queue.
    global.gc?.();
    const before = process.memoryUsage();
    const payload = Buffer.alloc(8 * 1024, 7);
    const total = FULL ? 100_000 : 20_000;
    for (let i = 0; i < total; i += 64) await Promise.all(Array.from({ length: 64 }, () => blast(payload)));
    await new Promise((r) => setTimeout(r, 50));
    const grew = process.memoryUsage().rss - before.rss;
    expect(total * payload.length).toBeGreaterThan(100 * 1024 * 1024);
    expect(server.state).toBe('established');
    // The reader comes back: what was kept is readable and intact.
    let read = 0;
    for (;;) {
      const m = await Promise.race([server.receive(), new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))]);
      if (m === undefined) break;
      if (read > 0) expect(m.byteLength).toBe(payload.length);
      read++;
    }
    expect(read).toBeGreaterThan(1);
    // total × 8 KiB went at it (160 MB by default); what was kept is at most the inbox limit (4 MiB), the
    // channel's queue (4 MiB) and the socket's receive buffer (4 MiB, which Linux doubles).
    console.log(`udp flood: ${total} × 8 KiB sent, ${read} kept and read back; rss grew ${(grew / 2 ** 20).toFixed(1)} MiB`);
    expect(read * payload.length).toBeLessThanOrEqual((4 + 4 + 8) * 1024 * 1024);
  });

  it('a flood from many source ports: connections capped by maxPeers, the rest dropped, nothing crashes', async () => {
    const listener = await listenOn('udp', '127.0.0.1', undefined, { udp: { maxPeers: 16 } });
    cleanups.push(() => listener.stop());
    const conns: Connection[] = [];
    listener.on('connectionReceived', (c) => {
      conns.push(c);
      cleanups.push(() => c.abort());
    });
    const sockets: UdpSocket[] = [];
    for (let i = 0; i < 64; i++) {
      const s = createSocket('udp4');
      s.on('error', () => {});
      sockets.push(s);
      cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    }
    const junk = Buffer.alloc(512, 1);
    for (let round = 0; round < 20; round++) {
      await Promise.all(sockets.map((s) => new Promise<void>((r) => s.send(junk, listener.port, '127.0.0.1', () => r()))));
    }
    await until(() => conns.length >= 16, '16 peers');
    await new Promise((r) => setTimeout(r, 30));
    expect(conns.length).toBe(16);
  });
});
