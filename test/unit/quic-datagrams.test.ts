/**
 * The pure parts of QUIC datagrams and per-message reliability, without
 * sockets: the datagram wire form (any bytes a peer sends decode or are
 * named malformed, never thrown), the sequence comparison across the 2^32
 * wrap, the message defaults a per-message-reliability stack takes from the
 * selection properties, and how the selector judges and ranks `quic-dgram`
 * against `quic` and `udp` for each profile. The connection's send path:
 * per-message routing meta, the per-reliability size limit, received context.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { mayDuplicate, messageDefaults, provided } from '../../src/provided.js';
import { SecurityParameters } from '../../src/security.js';
import { TransportProperties } from '../../src/properties.js';
import { rankStacks } from '../../src/selection/rank.js';
import { judgeStack } from '../../src/selection/suitability.js';
import { decodeDatagram, encodeDatagram, headerLength, isNewer, readVarint, uniPrefix, varintLength, writeVarint } from '../../transports/quic/datagram-wire.js';
import { quicDgramDriver, quicDriver } from '../../transports/quic/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { fakeConnection } from '../helpers/fake-channel.js';

describe('the quic-dgram datagram wire form', () => {
  it('round-trips flow, kind, sequence and message', () => {
    for (const flow of [0, 4, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 40]) {
      const msg = Buffer.from(`flow ${flow}`);
      const wire = encodeDatagram(flow, flow % 8 === 0, 0xffff_fffe, msg);
      expect(wire.byteLength).toBe(headerLength(flow) + msg.byteLength);
      const got = decodeDatagram(wire);
      if (typeof got === 'string') throw new Error(got);
      expect({ ...got, message: Buffer.from(got.message).toString() }).toEqual({ flow, ordered: flow % 8 === 0, seq: 0xffff_fffe, message: `flow ${flow}` });
    }
  });

  it('the header is the varint flow, one kind byte and four sequence bytes', () => {
    expect(headerLength(0)).toBe(6);
    expect(headerLength(64)).toBe(7);
    expect([...encodeDatagram(4, true, 258, Uint8Array.of(9))]).toEqual([4, 1, 0, 0, 1, 2, 9]);
    expect([...uniPrefix(0)]).toEqual([0]);
    expect([...uniPrefix(100)]).toEqual([0x40, 100]);
  });

  it('QUIC variable-length integers (RFC 9000 §16 examples)', () => {
    const cases: [number[], number][] = [
      [[0x25], 37],
      [[0x40, 0x25], 37],
      [[0x7b, 0xbd], 15293],
      [[0x9d, 0x7f, 0x3e, 0x7d], 494878333],
    ];
    for (const [bytes, value] of cases) expect(readVarint(Uint8Array.from(bytes), 0)).toEqual([value, bytes.length]);
    const out = new Uint8Array(8);
    expect(writeVarint(out, 0, 2 ** 50)).toBe(8);
    expect(readVarint(out, 0)).toEqual([2 ** 50, 8]);
    expect(varintLength(63)).toBe(1);
    expect(() => writeVarint(out, 0, -1)).toThrow(RangeError);
    // 0xc2197c5eff14e88c (RFC 9000's 8-byte example) is over 2^53: refused, not rounded.
    expect(readVarint(Uint8Array.from([0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]), 0)).toBeUndefined();
  });

  it('malformed datagrams are named, never thrown', () => {
    expect(decodeDatagram(new Uint8Array(0))).toBe('truncated flow id');
    expect(decodeDatagram(Uint8Array.of(0x40))).toBe('truncated flow id');
    expect(decodeDatagram(Uint8Array.of(0, 0, 0))).toMatch(/shorter than a header/);
    expect(decodeDatagram(Uint8Array.of(0, 2, 0, 0, 0, 0))).toBe('unknown kind 2');
    expect(decodeDatagram(Uint8Array.of(0, 0, 0, 0, 0, 0))).toMatchObject({ flow: 0, message: new Uint8Array(0) });
  });

  it('any bytes at all decode or are named malformed (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const got = decodeDatagram(bytes);
        return typeof got === 'string' || (got.message.byteLength <= bytes.byteLength && Number.isSafeInteger(got.flow));
      }),
      { numRuns: 2000 },
    );
  });

  it('sequence numbers compare across the 2^32 wrap (RFC 1982)', () => {
    expect(isNewer(1, 0)).toBe(true);
    expect(isNewer(0, 1)).toBe(false);
    expect(isNewer(5, 5)).toBe(false);
    expect(isNewer(0, 0xffff_ffff)).toBe(true);
    expect(isNewer(0xffff_ffff, 0)).toBe(false);
    expect(isNewer(0x7fff_ffff, 0)).toBe(true);
  });
});

describe('per-message reliability: defaults and selection', () => {
  const security = new SecurityParameters();
  const judge = (props: TransportProperties, framerCount = 0) => (d: typeof quicDgramDriver) => judgeStack(d, { properties: props, security, framerCount });

  it('messages default to the stack (unreliable, unordered) unless the caller asks for per-message reliability', () => {
    expect(messageDefaults(quicDgramDriver, TransportProperties.unreliableDatagram())).toEqual({ reliable: false, ordered: false });
    expect(messageDefaults(quicDgramDriver, new TransportProperties())).toEqual({ reliable: false, ordered: false });
    expect(messageDefaults(quicDgramDriver, new TransportProperties({ perMsgReliability: 'require' }))).toEqual({ reliable: true, ordered: true });
    expect(messageDefaults(quicDgramDriver, new TransportProperties({ perMsgReliability: 'prefer', preserveOrder: 'avoid' }))).toEqual({ reliable: true, ordered: false });
    expect(messageDefaults(quicDgramDriver, new TransportProperties({ perMsgReliability: 'require', reliability: 'avoid', preserveOrder: 'avoid', preserveMsgBoundaries: 'require' }))).toEqual({ reliable: false, ordered: false });
    // A stack without it keeps its own.
    expect(messageDefaults(quicDriver, new TransportProperties({ perMsgReliability: 'prefer' }))).toEqual({ reliable: true, ordered: true });
  });

  it('what quic-dgram provides follows those defaults; it never duplicates, udp may', () => {
    expect(provided(quicDgramDriver, 0)).toMatchObject({ reliability: false, preserveOrder: false, preserveMsgBoundaries: true, perMsgReliability: true });
    expect(provided(quicDgramDriver, 0, new TransportProperties({ perMsgReliability: 'require' }))).toMatchObject({ reliability: true, preserveOrder: true });
    // One frozen answer per way, shared by every ranking and report.
    expect(provided(quicDgramDriver, 0, new TransportProperties({ perMsgReliability: 'require' }))).toBe(provided(quicDgramDriver, 0, new TransportProperties({ perMsgReliability: 'prefer' })));
    expect(mayDuplicate(quicDgramDriver)).toBe(false);
    expect(mayDuplicate(udpDriver)).toBe(true);
    expect(mayDuplicate(quicDriver)).toBe(false);
  });

  it('unreliableDatagram() with security required: only quic-dgram is suitable; with a framer it ranks above a QUIC stream', () => {
    const props = TransportProperties.unreliableDatagram();
    expect(judge(props)(quicDgramDriver)).toEqual({ ok: true });
    expect(judge(props)(udpDriver)).toMatchObject({ ok: false, reason: expect.stringMatching(/unencrypted/) });
    expect(judge(props)(quicDriver)).toMatchObject({ ok: false, reason: expect.stringMatching(/byte stream/) });
    expect(judge(props, 1)(quicDriver)).toEqual({ ok: true });
    const ranked = rankStacks([tlsDriver, quicDriver, quicDgramDriver], { properties: props, security, framerCount: 1 });
    expect(ranked[0]!.driver.id).toBe('quic-dgram');
    expect(ranked).toHaveLength(3);
  });

  it("default properties leave quic-dgram out (a reliable stream is asked for); perMsgReliability 'require' picks it, 'prefer' ranks it first", () => {
    expect(judge(new TransportProperties())(quicDgramDriver)).toMatchObject({ ok: false, reason: expect.stringMatching(/reliability is required but quic-dgram is unreliable/) });
    expect(judge(new TransportProperties({ perMsgReliability: 'require' }))(quicDgramDriver)).toEqual({ ok: true });
    expect(judge(new TransportProperties({ perMsgReliability: 'require' }), 1)(quicDriver)).toMatchObject({ ok: false, reason: expect.stringMatching(/perMsgReliability is required/) });
    const prefer = new TransportProperties({ perMsgReliability: 'prefer' });
    expect(rankStacks([quicDriver, quicDgramDriver], { properties: prefer, security, framerCount: 1 }).map((s) => s.driver.id)).toEqual(['quic-dgram', 'quic']);
  });
});

describe('the send path of a per-message reliability connection', () => {
  const perMessage = { ...quicDgramDriver.capabilities };

  it('msgReliable and msgOrdered reach the channel; each message is checked against the limit of its own way', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', capabilities: perMessage, maxMessageSize: 1200 });
    (channel as unknown as { maxMessageSizeFor: (r: boolean) => number }).maxMessageSizeFor = (reliable) => (reliable ? 1 << 24 : 1200);
    await conn.send(Buffer.alloc(5000), { msgReliable: true, msgOrdered: false });
    expect(channel.sent.at(-1)?.meta).toMatchObject({ reliable: true, ordered: false });
    await expect(conn.send(Buffer.alloc(1201))).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE', message: expect.stringMatching(/sendMsgMaxLen 1200 .*must fit in one datagram/) });
    await expect(conn.send(Buffer.alloc(1201), { msgReliable: false })).rejects.toMatchObject({ message: expect.stringMatching(/the largest unreliable message 1200/) });
    // msgOrdered on a stack whose messages are unordered by default: allowed, it is per message.
    await conn.send('ordered', { msgOrdered: true });
    expect(channel.sent.at(-1)?.meta).toMatchObject({ ordered: true });
  });

  it('a received message says which way it came', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', capabilities: perMessage });
    channel.deliver('by datagram', { reliable: false, ordered: false });
    channel.deliver('by stream', { reliable: true, ordered: true });
    const a = await conn.receive();
    const b = await conn.receive();
    expect(a.context).toMatchObject({ msgReliable: false, msgOrdered: false });
    expect(b.context).toMatchObject({ msgReliable: true, msgOrdered: true });
  });

  it('a stack without per-message reliability refuses msgReliable false: a sendError, never a reliable send', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    await expect(conn.send('x', { msgReliable: false })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    expect(channel.sent).toHaveLength(0);
  });
});
