/**
 * The compliance variant for unreliable message stacks (udp, quic-dgram):
 * what a stack that may lose messages must still never do, checked over real
 * loopback sockets, directly and through a fault relay.
 *
 * ```ts
 * runUnreliableCompliance({ driver: udpDriver });
 * runUnreliableCompliance({ driver: quicDgramDriver, serverSecurity, security });
 * ```
 *
 * For 127.0.0.1 and ::1, against the driver's own listener echoing every
 * message back:
 * - no corruption, boundaries kept: 2,000 messages of many sizes, each
 *   carrying its index, size and a pattern made from them; every one that
 *   comes back is whole and exact (loss is allowed, and printed);
 * - no duplicates beyond what the stack declares: a stack that does not
 *   declare it may duplicate (`mayDuplicate`, src/provided.ts) delivers no
 *   message twice, even through a relay that duplicates half the packets;
 *   one that declares it does duplicate there (the declaration is not an
 *   overstatement);
 * - an encrypted stack delivers nothing a relay tampered with (bits flipped
 *   in transit): what arrives is exact;
 * - size limits: a message of exactly `maxMessageSize` is carried, one byte
 *   more fails with ERR_TAPS_MESSAGE_TOO_LARGE; `singularTransmissionMsgMaxLen`,
 *   when known, is no larger;
 * - close() and abort() in the middle of a burst leave no socket or timer
 *   open, and `closed()` comes exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import { mayDuplicate } from '../../src/provided.js';
import type { SecurityParameters } from '../../src/security.js';
import { SecurityParameters as Security } from '../../src/security.js';
import { faultyUdpRelay, type DatagramFaults } from '../helpers/fault-relay.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, waitFor, type EchoServer } from './harness.js';

export interface UnreliableComplianceOptions {
  readonly driver: Driver;
  readonly security?: () => SecurityParameters;
  readonly serverSecurity?: () => SecurityParameters;
  readonly families?: readonly ('127.0.0.1' | '::1')[];
}

const HEADER = 8;

/** A message that says what it should be: index, size, then bytes derived from both. */
function message(index: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  b.writeUInt32BE(index, 0);
  b.writeUInt32BE(size, 4);
  for (let i = HEADER; i < size; i++) b[i] = (index * 31 + i * 7) & 0xff;
  return b;
}

/** The index of an exact message, or why it is not one. */
function verify(m: Uint8Array): number | string {
  if (m.byteLength < HEADER) return `${m.byteLength} bytes: shorter than its header`;
  const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  const index = b.readUInt32BE(0);
  const size = b.readUInt32BE(4);
  if (size !== m.byteLength) return `message ${index}: ${m.byteLength} bytes, sent as ${size}`;
  for (let i = HEADER; i < size; i++) if (b[i] !== ((index * 31 + i * 7) & 0xff)) return `message ${index}: byte ${i} differs`;
  return index;
}

/** Send `count` messages of sizes cycling up to `max`, honouring the channel's backpressure; returns the sizes. */
async function burst(ch: TransportChannel, rx: Collector, count: number, max: number): Promise<void> {
  const sizes = [HEADER, 9, 64, 333, 1000, max];
  for (let i = 0; i < count; i++) {
    const size = Math.min(max, sizes[i % sizes.length]!);
    if (!ch.send(message(i, size), {}, () => {})) {
      const drains = rx.drains;
      await rx.until(() => rx.drains > drains, 'drain');
    }
  }
}

/** Wait until nothing new has arrived for 100 ms. */
async function settled(rx: Collector): Promise<void> {
  let last = -1;
  while (rx.chunks.length !== last) {
    last = rx.chunks.length;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function runUnreliableCompliance(o: UnreliableComplianceOptions): void {
  const { driver } = o;
  const scope = scopeFor();
  const encrypted = driver.capabilities.encrypted;
  const duplicates = mayDuplicate(driver);
  const clientSecurity = o.security ?? (() => Security.disabled());
  const hostName = encrypted ? 'localhost' : undefined;

  describe.each(o.families ?? (['127.0.0.1', '::1'] as const))(`unreliable compliance: ${driver.id} over %s`, (address) => {
    let server: EchoServer;
    beforeAll(async () => {
      server = await driverEchoServer(driver, scope, address, o.serverSecurity ? { security: o.serverSecurity() } : {});
    });
    afterAll(async () => {
      await server?.close();
    });

    const connect = async (port = server.port): Promise<TransportChannel> => {
      const target = await checked(scope, { protocol: driver.protocol, address, port, ...(hostName ? { hostName } : {}) });
      const attempt: ConnectAttempt = connectAttempt(scope, target, { security: clientSecurity() });
      return scope.network.connect(driver, attempt);
    };

    /** Every message that came back, checked; returns how many of each index arrived. */
    const tally = (rx: Collector): Map<number, number> => {
      const seen = new Map<number, number>();
      for (const c of rx.chunks) {
        const v = verify(c);
        if (typeof v === 'string') throw new Error(`${driver.id} delivered a damaged message: ${v}`);
        seen.set(v, (seen.get(v) ?? 0) + 1);
      }
      return seen;
    };

    it('never corrupts, never merges or splits: every message that arrives is exact', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      const count = 2000;
      await burst(ch, rx, count, Math.min(ch.maxMessageSize, 1200));
      await settled(rx);
      const seen = tally(rx);
      console.log(`${driver.id} ${address}: ${seen.size} of ${count} messages came back exact, ${count - seen.size} lost`);
      expect(seen.size).toBeGreaterThan(0);
      if (!duplicates) expect([...seen.values()].every((n) => n === 1)).toBe(true);
      await ch.close();
    });

    it(duplicates ? 'declares it may duplicate, and does: a relay that duplicates packets shows duplicates' : 'declares no duplicates, and delivers none even through a relay that duplicates half the packets', async () => {
      const relay = await faultyUdpRelay(address, server.port, { seed: 5, toServer: { duplicate: 0.5 }, toClient: { duplicate: 0.5 } });
      try {
        const ch = await connect(relay.port);
        const rx = new Collector();
        ch.start(rx);
        await burst(ch, rx, 300, Math.min(ch.maxMessageSize, 500));
        await settled(rx);
        const seen = tally(rx);
        const twice = [...seen.values()].filter((n) => n > 1).length;
        console.log(`${driver.id} ${address} through a duplicating relay: ${seen.size} distinct, ${twice} delivered more than once (relay duplicated ${relay.stats.toServer.duplicated + relay.stats.toClient.duplicated})`);
        expect(relay.stats.toServer.duplicated).toBeGreaterThan(0);
        if (duplicates) expect(twice).toBeGreaterThan(0);
        else expect(twice).toBe(0);
        ch.abort();
      } finally {
        await relay.close();
      }
    });

    // Registered only for encrypted stacks: UDP's checksum cannot tell a relay's rewrite (it recomputes it).
    (encrypted ? it : () => {})('encrypted: nothing a relay tampered with is delivered', async () => {
      const faults: DatagramFaults = { corrupt: 0.2 };
      const relay = await faultyUdpRelay(address, server.port, { seed: 9, toServer: faults, toClient: faults });
      try {
        // The handshake itself may be hit: try a few times.
        let ch: TransportChannel | undefined;
        for (let i = 0; i < 10 && ch === undefined; i++) ch = await connect(relay.port).catch(() => undefined);
        if (ch === undefined) throw new Error('no handshake survived the corrupting relay in 10 tries');
        const rx = new Collector();
        ch.start(rx);
        await burst(ch, rx, 300, Math.min(ch.maxMessageSize, 500));
        await settled(rx);
        const seen = tally(rx);
        console.log(`${driver.id} ${address} through a corrupting relay: ${seen.size} of 300 exact, relay corrupted ${relay.stats.toServer.corrupted + relay.stats.toClient.corrupted}`);
        expect(relay.stats.toServer.corrupted + relay.stats.toClient.corrupted).toBeGreaterThan(0);
        ch.abort();
      } finally {
        await relay.close();
      }
    });

    it('enforces its size limits: maxMessageSize is carried, one byte more is ERR_TAPS_MESSAGE_TOO_LARGE', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      const max = ch.maxMessageSize;
      expect(Number.isFinite(max)).toBe(true);
      if (ch.singularTransmissionMsgMaxLen !== undefined) expect(ch.singularTransmissionMsgMaxLen).toBeLessThanOrEqual(max);
      for (let i = 0; i < 50 && rx.chunks.length === 0; i++) {
        ch.send(message(i, max), {}, () => {});
        await Promise.race([rx.untilMessages(1), new Promise((r) => setTimeout(r, 50))]);
      }
      expect(verify(rx.chunks[0]!)).toBeTypeOf('number');
      expect(rx.chunks[0]!.byteLength).toBe(max);
      const errs: (Error | undefined)[] = [];
      ch.send(Buffer.alloc(max + 1), {}, (e) => errs.push(e));
      await waitFor(() => errs.length === 1);
      expect(errs[0]).toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
      await ch.close();
    });

    it.each(['close', 'abort'] as const)('%s() in the middle of a burst: closed() once, no socket or timer left', async (how) => {
      const before = handleCounts();
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      for (let i = 0; i < 200; i++) ch.send(message(i, 200), {}, () => {});
      if (how === 'close') await ch.close();
      else ch.abort();
      const err = await rx.untilClosed();
      if (how === 'abort') expect(err).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
      await new Promise((r) => setTimeout(r, 0));
      expect(rx.closedCalls).toBe(1);
      expect(await extraHandles(before)).toEqual([]);
    });
  });
}
