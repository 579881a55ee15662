/**
 * The Connection facade, continued: connection properties (RFC 9622 §8.1),
 * connection groups (§7.4) and the tenant's quota lease (bytes, release,
 * revocation). Fake channel, ManualClock, no sockets.
 */
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { PolicyDeniedError, QuotaExceededError, TapsError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { FakeChannel, fakeConnection } from '../helpers/fake-channel.js';
import { flush } from '../helpers/manual-clock.js';

describe('connection properties (RFC 9622 §8.1)', () => {
  it('reads the read-only properties, case-insensitively, reflecting the stack', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer({ headerBytes: 2 })] });
    expect(conn.getProperty('connState')).toBe('established');
    expect(conn.getProperty('CONNSTATE')).toBe('established');
    expect(conn.getProperty('canSend')).toBe(true);
    expect(conn.getProperty('canReceive')).toBe(true);
    expect(conn.getProperty('sendMsgMaxLen')).toBe(65535);
    expect(conn.getProperty('recvMsgMaxLen')).toBe(65535);
    expect(conn.getProperty('zeroRttMsgMaxLen')).toBe(0);
    expect(conn.getProperty('connPriority')).toBe(100);
    expect(conn.getProperty('connTimeout')).toBe(Infinity);
    expect(conn.properties).toMatchObject({ connState: 'established', sendMsgMaxLen: 65535, connScheduler: 'weightedFairQueueing' });
    expect(conn.properties).not.toHaveProperty('singularTransmissionMsgMaxLen'); // the stack does not know it
    await conn.close();
    expect(conn.getProperty('connState')).toBe('closed');
    expect(conn.getProperty('canSend')).toBe(false);
    expect(conn.getProperty('canReceive')).toBe(false);
  });

  it('a property the stack cannot answer or honour is ERR_TAPS_PROPERTY_NOT_APPLICABLE and the connection stays open', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const notApplicable = (fn: () => unknown): void => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TapsError);
      expect(err).toMatchObject({ code: 'ERR_TAPS_PROPERTY_NOT_APPLICABLE' });
    };
    notApplicable(() => conn.getProperty('singularTransmissionMsgMaxLen'));
    notApplicable(() => conn.setProperty('minSendRate', 1000));
    notApplicable(() => conn.setProperty('maxRecvRate', 1e6));
    notApplicable(() => conn.setProperty('keepAliveTimeout', 30_000)); // no keepAlive capability
    notApplicable(() => conn.setProperty('tcp.userTimeoutValue', 10)); // no setOption on this channel
    notApplicable(() => conn.getProperty('tcp.userTimeoutValue'));
    expect(conn.state).toBe('established');
    await conn.send('still works');
    expect(channel.sent).toHaveLength(1);
    conn.setProperty('maxSendRate', Infinity); // unlimited is true of every stack
    conn.setProperty('keepAliveTimeout', Infinity); // so is "disabled"
    conn.abort();
  });

  it('read-only, unknown and badly typed properties are programmer errors naming the property', () => {
    const { conn } = fakeConnection({ framing: 'message' });
    expect(() => conn.setProperty('connState', 'closed')).toThrow(TypeError);
    expect(() => conn.setProperty('sendMsgMaxLen', 5)).toThrow(/sendMsgMaxLen is read-only/);
    expect(() => conn.setProperty('connSpeed', 5)).toThrow(/connSpeed/);
    expect(() => conn.getProperty('connSpeed')).toThrow(TypeError);
    expect(() => conn.setProperty('connPriority', -1)).toThrow(RangeError);
    expect(() => conn.setProperty('connPriority', 1.5)).toThrow(/connPriority/);
    expect(() => conn.setProperty('connTimeout', 0)).toThrow(/connTimeout/);
    expect(() => conn.setProperty('connScheduler', 'lottery')).toThrow(/connScheduler/);
    expect(() => conn.setProperty('isolateSession', 'yes')).toThrow(TypeError);
    expect(() => conn.setProperty('', 1)).toThrow(TypeError);
    expect(conn.state).toBe('established');
    conn.abort();
  });

  it('settable properties are recorded and handed to a channel that has settings', () => {
    const { conn, channel } = fakeConnection({ framing: 'stream', framers: [lengthPrefixFramer()], setOption: true, capabilities: { keepAlive: true } });
    conn.setProperty('keepAliveTimeout', 15_000);
    conn.setProperty('connPriority', 7);
    conn.setProperty('tcp.userTimeoutValue', 30);
    conn.setProperty('connCapacityProfile', 'scavenger');
    expect(channel.options).toEqual(new Map<string, unknown>([['keepAliveTimeout', 15_000], ['connPriority', 7], ['tcp.userTimeoutValue', 30]]));
    expect(conn.getProperty('keepAliveTimeout')).toBe(15_000);
    expect(conn.getProperty('connCapacityProfile')).toBe('scavenger');
    conn.abort();
  });

  it('a channel that refuses a protocol setting reports not applicable and stays open', () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()], setOption: { reject: ['tcp.userTimeoutValue'] } });
    expect(() => conn.setProperty('tcp.userTimeoutValue', 30)).toThrow(expect.objectContaining({ code: 'ERR_TAPS_PROPERTY_NOT_APPLICABLE' }));
    expect(conn.state).toBe('established');
    conn.abort();
  });

  it('connTimeout (RFC 9622 §8.1.3) fails the connection when sent data makes no progress for that long; each completion restarts the wait', async () => {
    const { conn, channel, clock } = fakeConnection({ framers: [lengthPrefixFramer()] });
    channel.autoComplete = false;
    const events: string[] = [];
    conn.on('connectionError', (e) => events.push(`connectionError ${e.code}`));
    conn.on('sendError', (_c, e) => events.push(`sendError ${e.code}`));
    conn.setProperty('connTimeout', 1000);
    expect(clock.pending).toBe(0); // nothing outstanding: no timer
    const first = conn.send('a');
    const second = conn.send('b');
    await clock.advance(999);
    channel.complete(1); // progress: the wait starts again
    await clock.advance(999);
    expect(conn.state).toBe('established');
    await clock.advance(1);
    expect(conn.state).toBe('closed');
    await expect(first).resolves.toBeUndefined();
    await expect(second).rejects.toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
    expect(events).toEqual(['sendError ERR_TAPS_CONNECTION_ABORTED', 'connectionError ERR_TAPS_TIMEOUT']);
    expect(channel.aborted).toBe(true);
    expect(clock.pending).toBe(0);
  });

  it('connTimeout leaves a healthy idle connection alone, however long nothing is received', async () => {
    const { conn, channel, clock } = fakeConnection({ framers: [lengthPrefixFramer()], connectionProperties: { connTimeout: 50, connPriority: 3 } });
    expect(conn.getProperty('connPriority')).toBe(3);
    await conn.send('done at once');
    await clock.advance(10_000);
    expect(conn.state).toBe('established');
    expect(clock.pending).toBe(0);
    channel.autoComplete = false;
    void conn.send('stuck');
    expect(clock.pending).toBe(1);
    conn.setProperty('connTimeout', Infinity); // disabled: the watch stops
    expect(clock.pending).toBe(0);
    await clock.advance(1000);
    expect(conn.state).toBe('established');
    conn.setProperty('connTimeout', 200); // set again with data still outstanding: watched from now
    await clock.advance(199);
    expect(conn.state).toBe('established');
    await clock.advance(1);
    expect(conn.getProperty('connState')).toBe('closed');
  });

  it('connTimeout has no effect on an unreliable stack (RFC 9622 §8.1.3) but reads back', async () => {
    const { conn, channel, clock } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    conn.setProperty('connTimeout', 10);
    void conn.send('x');
    await clock.advance(1000);
    expect(conn.state).toBe('established');
    expect(conn.getProperty('connTimeout')).toBe(10);
    conn.abort();
  });

  it('bad connection properties at creation throw before anything is started', () => {
    expect(() => fakeConnection({ framing: 'message', connectionProperties: { connTimeout: -5 } })).toThrow(RangeError);
  });
});

describe('connection groups (RFC 9622 §7.4)', () => {
  it('clone() opens a stream on a multistreaming channel: a new Connection in the same group, properties copied', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true, setOption: true });
    conn.setProperty('connPriority', 5);
    conn.setProperty('connTimeout', 60_000);
    const clone = await conn.clone();
    expect(channel.streams).toHaveLength(1);
    expect(clone).not.toBe(conn);
    expect(clone.getProperty('connPriority')).toBe(5);
    expect(clone.getProperty('connTimeout')).toBe(60_000);
    expect(new Set(conn.groupedConnections())).toEqual(new Set([conn, clone]));
    expect(clone.groupedConnections()).toHaveLength(2);
    await clone.send('on the stream');
    expect(channel.streams[0]!.sent).toHaveLength(1);
    expect(channel.sent).toHaveLength(0);
    conn.abortGroup();
  });

  it('properties are entangled across the group, except connPriority', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const clone = await conn.clone();
    clone.setProperty('connTimeout', 5000);
    clone.setProperty('connScheduler', 'fifo');
    clone.setProperty('connPriority', 1);
    expect(conn.getProperty('connTimeout')).toBe(5000);
    expect(conn.getProperty('connScheduler')).toBe('fifo');
    expect(conn.getProperty('connPriority')).toBe(100);
    conn.abortGroup();
  });

  it('groupConnLimit caps clones with ERR_TAPS_NOT_CLONEABLE', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    conn.setProperty('groupConnLimit', 2);
    await conn.clone();
    await expect(conn.clone()).rejects.toMatchObject({ code: 'ERR_TAPS_NOT_CLONEABLE', message: expect.stringContaining('groupConnLimit') });
    conn.abortGroup();
  });

  it('a single-stream connection without a way to reconnect is not cloneable; a closed one cannot clone', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()] });
    await expect(conn.clone()).rejects.toMatchObject({ code: 'ERR_TAPS_NOT_CLONEABLE' });
    conn.abort();
    await expect(conn.clone()).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
  });

  it('a clone made as a new connection (initiate again) joins the group and takes the changed properties', async () => {
    let other: ReturnType<typeof fakeConnection> | undefined;
    const { conn, lease } = fakeConnection({
      framers: [lengthPrefixFramer()],
      clone: async () => {
        other = fakeConnection({ framers: [lengthPrefixFramer()] });
        return other.conn;
      },
    });
    conn.setProperty('connTimeout', 7000);
    const clone = await conn.clone();
    expect(clone).toBe(other!.conn);
    expect(clone.getProperty('connTimeout')).toBe(7000);
    expect(new Set(clone.groupedConnections())).toEqual(new Set([conn, clone]));
    await conn.closeGroup();
    expect(clone.state).toBe('closed');
    expect(conn.state).toBe('closed');
    expect(lease.releases).toBe(1);
    expect(other!.lease.releases).toBe(1); // its own lease: a separate connection
  });

  it('a stream the peer opens is delivered as connectionReceived, in the group', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const received: Connection[] = [];
    conn.on('connectionReceived', (c) => received.push(c));
    const stream = channel.peerStream();
    expect(received).toHaveLength(1);
    expect(received[0]!.groupedConnections()).toContain(conn);
    const framed = lengthPrefixFramer().frame(new TextEncoder().encode('hi')) as Uint8Array;
    stream.deliver(framed);
    expect((await received[0]!.receive()).text()).toBe('hi');
    conn.abortGroup();
    expect(stream.aborted).toBe(true);
  });

  it('a peer stream nobody listens for is refused; one arriving after close is aborted', () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const unheard = channel.peerStream();
    expect(unheard.aborted).toBe(true);
    expect(conn.groupedConnections()).toEqual([conn]);
    conn.on('connectionReceived', () => {});
    conn.abort();
    const late = new FakeChannel();
    channel.receiver!.stream!(late);
    expect(late.aborted).toBe(true);
  });

  it('closeGroup closes every member gracefully; abortGroup aborts every member with connectionError', async () => {
    const a = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const b = await a.conn.clone();
    const c = await b.clone();
    const closed: string[] = [];
    for (const [name, x] of [['a', a.conn], ['b', b], ['c', c]] as const) x.on('closed', () => closed.push(name));
    await b.closeGroup();
    expect(closed.sort()).toEqual(['a', 'b', 'c']);
    expect(a.channel.closeCalls).toBe(1);
    expect(a.channel.streams.map((s) => s.closeCalls)).toEqual([1]);

    const d = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const e = await d.conn.clone();
    const errors: string[] = [];
    d.conn.on('connectionError', (err) => errors.push(`d:${err.code}`));
    e.on('connectionError', (err) => errors.push(`e:${err.code}`));
    e.abortGroup();
    expect(errors.sort()).toEqual(['d:ERR_TAPS_CONNECTION_ABORTED', 'e:ERR_TAPS_CONNECTION_ABORTED']);
    expect(d.channel.aborted).toBe(true);
  });

  it('closing one member leaves the others open (RFC 9622 §10: Close does not affect the group)', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const clone = await conn.clone();
    await clone.close();
    expect(conn.state).toBe('established');
    expect(conn.groupedConnections()).toEqual([conn]);
    conn.abort();
  });

  it('the group\'s lease is released once, when its last member closes', async () => {
    const { conn, lease } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const s1 = await conn.clone();
    const s2 = await conn.clone();
    await conn.close();
    expect(lease.releases).toBe(0);
    s1.abort();
    s1.abort();
    expect(lease.releases).toBe(0);
    await s2.close();
    expect(lease.releases).toBe(1);
    await conn.close();
    expect(lease.releases).toBe(1);
  });

  it('a stream that finishes opening after its connection closed is aborted, not added to a released group', async () => {
    const { conn, channel, lease } = fakeConnection({ framers: [lengthPrefixFramer()], openStream: true });
    const opening = conn.clone();
    conn.abort();
    await expect(opening).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    expect(channel.streams[0]!.aborted).toBe(true);
    expect(lease.releases).toBe(1);
  });
});

describe('the tenant lease: bytes, quota, revocation', () => {
  it('counts bytes on the wire both ways, framing included', async () => {
    const { conn, channel, lease } = fakeConnection({ framers: [lengthPrefixFramer()] });
    await conn.send(new Uint8Array(10));
    await conn.send(new Uint8Array(20_000)); // header and body go as two pieces
    expect(lease.sentBytes).toBe(14 + 20_004);
    channel.deliver(new Uint8Array([0, 0, 0, 2, 1, 2, 0]));
    expect(lease.receivedBytes).toBe(7);
    conn.abort();
  });

  it.each([
    ['the first channel charged at its socket, a stream not', true, false],
    ['a stream charged at its socket, the first channel not', false, true],
  ] as const)('each member of a group is charged as its own channel needs (%s): counted once, never skipped', async (_name, metered, streamsMetered) => {
    const { conn, lease } = fakeConnection({ framing: 'message', openStream: true, metered, streamsMetered });
    const stream = await conn.clone();
    await conn.send(new Uint8Array(100));
    await stream.send(new Uint8Array(10));
    // The lease counts only what no channel charged already: a stream of an unmetered driver cannot ride
    // on a first channel that was metered (and sends nothing uncounted), nor is a metered one counted twice.
    expect(lease.sentBytes).toBe((metered ? 0 : 100) + (streamsMetered ? 0 : 10));
    conn.abort();
    stream.abort();
  });

  it('a spent send budget fails that send with ERR_TAPS_QUOTA_EXCEEDED and sends nothing', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    lease.sendBudget = 100;
    await conn.send(new Uint8Array(60));
    const err = await conn.send(new Uint8Array(60)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(channel.sent).toHaveLength(1);
    conn.abort();
  });

  it('a spent receive budget aborts the connection with ERR_TAPS_QUOTA_EXCEEDED', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    lease.receiveBudget = 100;
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => errors.push(e));
    channel.deliver(new Uint8Array(60));
    channel.deliver(new Uint8Array(60));
    expect(errors.map((e) => e.code)).toEqual(['ERR_TAPS_QUOTA_EXCEEDED']);
    expect(conn.state).toBe('closed');
    expect(channel.aborted).toBe(true);
    expect((await conn.receive()).byteLength).toBe(60); // what arrived within budget is still readable
    await expect(conn.receive()).rejects.toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    expect(lease.releases).toBe(1);
  });

  it('revocation by the tenant\'s policy aborts with a PolicyDeniedError carrying the decision', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => errors.push(e));
    const decision = { allow: false as const, code: 'denied' as const, reason: 'no more udp', rule: 'deny udp://*' };
    lease.revoke(decision);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(PolicyDeniedError);
    expect(errors[0]).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED', decision, message: expect.stringContaining('no more udp') });
    expect(conn.state).toBe('closed');
    expect(channel.aborted).toBe(true);
    await flush();
  });
});
