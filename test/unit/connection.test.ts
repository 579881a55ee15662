/**
 * The Connection facade over a scripted channel (RFC 9622 §8–§10): send
 * outcomes, the send queue, message properties, receiving with backpressure,
 * close/abort and the state machine. Time is a ManualClock; no sockets.
 * Connection properties, groups and leases: connection-groups.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { SendError, TapsError } from '../../src/errors.js';
import { delimiterFramer, lengthPrefixFramer, type MessageFramer } from '../../src/framers/index.js';
import type { MessageContextInit } from '../../src/message.js';
import { TransportProperties } from '../../src/properties.js';
import { fakeConnection } from '../helpers/fake-channel.js';
import { flush } from '../helpers/manual-clock.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();

/** Every send's outcome as events and as its promise, to check "exactly one". */
function outcomes(conn: Connection) {
  const events: { kind: 'sent' | 'expired' | 'sendError'; ctx: MessageContextInit; error?: TapsError }[] = [];
  conn.on('sent', (ctx) => events.push({ kind: 'sent', ctx }));
  conn.on('expired', (ctx, error) => events.push({ kind: 'expired', ctx, error }));
  conn.on('sendError', (ctx, error) => events.push({ kind: 'sendError', ctx, error }));
  const settled = new Map<number, { ok: boolean; error?: unknown }>();
  const track = (id: number, p: Promise<void>): Promise<void> =>
    p.then(
      () => void settled.set(id, { ok: true }),
      (error: unknown) => void settled.set(id, { ok: false, error }),
    );
  return { events, settled, track };
}

describe('send: exactly one of sent / expired / sendError', () => {
  it('a send handed to the channel resolves and emits `sent` once with its context', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    const o = outcomes(conn);
    const ctx = { msgPriority: 5, safelyReplayable: true };
    await conn.send('hello', ctx);
    expect(o.events).toEqual([{ kind: 'sent', ctx }]);
    expect(channel.sent.map((s) => text(s.data))).toEqual(['hello']);
    expect(channel.sent[0]!.meta).toMatchObject({ priority: 5 });
  });

  it('a channel failure rejects with a SendError carrying the cause, and emits `sendError` once', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    const o = outcomes(conn);
    const p = conn.send('x');
    const cause = new Error('EPIPE');
    channel.complete(1, cause);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SEND_FAILED', cause });
    expect(o.events.map((e) => e.kind)).toEqual(['sendError']);
    expect(o.events[0]!.error).toBe(err);
    channel.complete(1); // a second done() from a confused driver changes nothing
    await flush();
    expect(o.events).toHaveLength(1);
  });

  it('every send of a mixed run (sent, expired, refused, aborted) settles exactly once, event and promise agreeing', async () => {
    const { conn, channel, clock } = fakeConnection({ framing: 'message' });
    const o = outcomes(conn);
    const kinds: string[] = [];
    conn.on('sent', () => kinds.push('sent'));
    const all: Promise<void>[] = [];
    const sendAt = (i: number, ctx?: MessageContextInit): void => void all.push(o.track(i, conn.send(`m${i}`, ctx)));
    channel.pushBack = true;
    sendAt(0); // goes out, channel pushes back
    for (let i = 1; i < 40; i++) sendAt(i, i % 3 === 0 ? { msgLifetime: 10 * i } : i % 7 === 0 ? { msgOrdered: true } : { msgPriority: i % 4 });
    await clock.advance(151); // lifetimes up to 150 ms pass
    channel.drain(); // one more goes out
    channel.pushBack = false;
    channel.autoComplete = false;
    channel.drain(); // the rest go out, but their done() is outstanding
    sendAt(40);
    conn.abort(); // outstanding ones fail
    sendAt(41); // refused: closed, and no event follows Closed (RFC 9622 §11)
    await Promise.all(all);
    expect(o.settled.size).toBe(42);
    expect(o.settled.get(41)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_INVALID_STATE' } });
    expect(o.events).toHaveLength(41);
    const byKind = (k: string) => o.events.filter((e) => e.kind === k).length;
    expect(byKind('sent') + byKind('expired') + byKind('sendError')).toBe(41);
    expect(byKind('expired')).toBe(5); // 3,6,9,12,15 ×10 ms ≤ 150
    expect([...o.settled.values()].filter((s) => s.ok)).toHaveLength(byKind('sent'));
    for (const s of o.settled.values()) if (!s.ok) expect(s.error).toBeInstanceOf(TapsError);
  });

  it('an unawaited failing send is not an unhandled rejection (the leak guard would fail this file)', async () => {
    const { conn } = fakeConnection({ framing: 'message' });
    conn.abort();
    void conn.send('late');
    await flush();
  });
});

describe('send queue while the channel pushes back', () => {
  it('queued messages go out by msgPriority (lower first), in send order within a priority', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.pushBack = true;
    const all = [conn.send('first')];
    expect(channel.sent).toHaveLength(1);
    const plan: [string, number | undefined][] = [['p50', 50], ['p10a', 10], ['default', undefined], ['p10b', 10], ['p0', 0], ['p200', 200], ['p10c', 10]];
    for (const [name, prio] of plan) all.push(conn.send(name, prio === undefined ? undefined : { msgPriority: prio }));
    expect(channel.sent).toHaveLength(1); // queued, not handed over
    channel.drain(); // still pushing back: one per drain
    expect(channel.sent.map((s) => text(s.data))).toEqual(['first', 'p0']);
    channel.pushBack = false;
    channel.drain();
    expect(channel.sent.map((s) => text(s.data))).toEqual(['first', 'p0', 'p10a', 'p10b', 'p10c', 'p50', 'default', 'p200']);
    await Promise.all(all);
  });

  it('a send while others are queued joins the queue even after a drain freed the channel partway', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.pushBack = true;
    const a = conn.send('a');
    const b = conn.send('b', { msgPriority: 1 });
    const c = conn.send('c', { msgPriority: 0 });
    channel.drain(); // c goes out, channel still full
    const d = conn.send('d', { msgPriority: 0 }); // must not overtake b by going straight out
    expect(channel.sent.map((s) => text(s.data))).toEqual(['a', 'c']);
    channel.pushBack = false;
    channel.drain();
    expect(channel.sent.map((s) => text(s.data))).toEqual(['a', 'c', 'd', 'b']);
    await Promise.all([a, b, c, d]);
  });

  it('sendBlocked says when to wait; `drain` comes once the queue has emptied after push-back', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    let drains = 0;
    conn.on('drain', () => drains++);
    expect(conn.sendBlocked).toBe(false);
    channel.pushBack = true;
    const sends = [conn.send('a')];
    expect(conn.sendBlocked).toBe(true); // the channel pushed back on `a`
    sends.push(conn.send('b'), conn.send('c'));
    channel.drain();
    expect(drains).toBe(0); // b went, c still queued
    expect(conn.sendBlocked).toBe(true);
    channel.pushBack = false;
    channel.drain();
    expect(drains).toBe(1);
    expect(conn.sendBlocked).toBe(false);
    await Promise.all(sends);
  });

  it('a message framed as several pieces is sent when the last piece is, and fails if any piece fails', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    channel.autoComplete = false;
    const o = outcomes(conn);
    const big = new Uint8Array(20_000); // header and payload go as two pieces
    const first = o.track(0, conn.send(big));
    expect(channel.sent).toHaveLength(2);
    expect(channel.sent[1]!.data).toBe(big); // never copied
    channel.complete(1);
    await flush();
    expect(o.settled.size).toBe(0);
    channel.complete(1);
    await first;
    expect(o.settled.get(0)).toEqual({ ok: true });
    const second = o.track(1, conn.send(big));
    channel.complete(1, new Error('EPIPE'));
    channel.complete(1);
    await second;
    expect(o.settled.get(1)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_SEND_FAILED' } });
    expect(o.events.map((e) => e.kind)).toEqual(['sent', 'sendError']);
    conn.abort();
  });

  it('a custom framer may return pieces, or none at all for an empty message', async () => {
    const framer = { name: 'odd', maxMessageSize: 100, frame: (m: Uint8Array) => (m.byteLength === 0 ? [] : [m.subarray(0, 1), m.subarray(1)]), createDeframer: () => lengthPrefixFramer().createDeframer() };
    const { conn, channel } = fakeConnection({ framers: [framer] });
    await conn.send('');
    await conn.send('abc');
    expect(channel.sent.map((s) => text(s.data))).toEqual(['a', 'bc']);
    conn.abort();
  });
});

describe('msgLifetime (RFC 9622 §9.1.3.1)', () => {
  it('a queued message whose lifetime passes expires instead of being sent', async () => {
    const { conn, channel, clock } = fakeConnection({ framing: 'message' });
    const o = outcomes(conn);
    channel.pushBack = true;
    const first = conn.send('first');
    const doomed = o.track(1, conn.send('doomed', { msgLifetime: 50 }));
    const kept = o.track(2, conn.send('kept', { msgLifetime: 500 }));
    const forever = o.track(3, conn.send('forever'));
    await clock.advance(50);
    expect(o.events.map((e) => e.kind)).toEqual(['sent']); // only `first`; not yet expired at exactly 50 ms
    await clock.advance(1);
    expect(o.events.map((e) => e.kind)).toEqual(['sent', 'expired']);
    expect(o.events[1]!.ctx).toEqual({ msgLifetime: 50 });
    expect(o.events[1]!.error).toMatchObject({ code: 'ERR_TAPS_TIMEOUT', message: expect.stringContaining('msgLifetime 50') });
    channel.pushBack = false;
    channel.drain();
    await Promise.all([first, doomed, kept, forever]);
    expect(channel.sent.map((s) => text(s.data))).toEqual(['first', 'kept', 'forever']);
    expect(o.settled.get(1)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_TIMEOUT' } });
    expect(clock.pending).toBe(0); // the expiry timer is gone with the queue
  });

  it('expires several queued messages in deadline order and re-arms for the next', async () => {
    const { conn, channel, clock } = fakeConnection({ framing: 'message' });
    const expired: number[] = [];
    conn.on('expired', (ctx) => expired.push(ctx.msgLifetime!));
    channel.pushBack = true;
    const sends = [conn.send('x')];
    for (const life of [300, 100, 200]) sends.push(conn.send(`l${life}`, { msgLifetime: life }).catch(() => {}));
    await clock.advance(150);
    expect(expired).toEqual([100]);
    await clock.advance(200);
    expect(expired).toEqual([100, 200, 300]);
    expect(clock.pending).toBe(0);
    await Promise.all(sends);
  });

  it('a message with a lifetime is sent at once when the channel has room (lifetime 0 included)', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    await conn.send('now', { msgLifetime: 0 });
    expect(channel.sent).toHaveLength(1);
  });
});

describe('final (RFC 9622 §9.1.3.5)', () => {
  it('marks the channel send final; afterwards canSend is false and sends fail without reaching the channel', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    expect(conn.canSend).toBe(true);
    await conn.send('bye', { final: true });
    expect(channel.sent.at(-1)!.meta.final).toBe(true);
    expect(conn.canSend).toBe(false);
    expect(conn.getProperty('canSend')).toBe(false);
    const err = await conn.send('more').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_INVALID_STATE', message: expect.stringContaining('final') });
    expect(channel.sent).toHaveLength(1);
    expect(conn.state).toBe('established'); // still open for receiving
    expect(conn.canReceive).toBe(true);
    conn.abort();
  });

  it('a final message queued behind push-back already closes sending', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.pushBack = true;
    const a = conn.send('a');
    const f = conn.send('f', { final: true });
    expect(conn.canSend).toBe(false);
    await expect(conn.send('after')).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    channel.pushBack = false;
    channel.drain();
    await Promise.all([a, f]);
    expect(channel.sent.map((s) => [text(s.data), s.meta.final])).toEqual([['a', undefined], ['f', true]]);
  });
});

describe('message properties the stack cannot honour → sendError, nothing sent', () => {
  it('safelyReplayable: false is refused on an unreliable message stack (§9.1.3.4), allowed on a reliable one', async () => {
    const udp = fakeConnection({ framing: 'message' });
    const err = await udp.conn.send('x', { safelyReplayable: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SendError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES', message: expect.stringContaining('safelyReplayable') });
    expect(udp.channel.sent).toHaveLength(0);
    await udp.conn.send('y', { safelyReplayable: true });
    expect(udp.channel.sent).toHaveLength(1);
    const tcp = fakeConnection({ framers: [lengthPrefixFramer()] });
    await tcp.conn.send('z', { safelyReplayable: false });
    expect(tcp.channel.sent).toHaveLength(1);
  });

  it('an oversized message fails with ERR_TAPS_MESSAGE_TOO_LARGE (channel limit and framer limit)', async () => {
    const udp = fakeConnection({ framing: 'message', maxMessageSize: 100 });
    const o = outcomes(udp.conn);
    expect(udp.conn.getProperty('sendMsgMaxLen')).toBe(100);
    await expect(udp.conn.send(new Uint8Array(101))).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE', message: expect.stringContaining('101') });
    expect(o.events.map((e) => e.kind)).toEqual(['sendError']);
    await udp.conn.send(new Uint8Array(100));
    expect(udp.channel.sent).toHaveLength(1);

    const tcp = fakeConnection({ framers: [lengthPrefixFramer({ headerBytes: 1 })] });
    expect(tcp.conn.sendMsgMaxLen).toBe(255);
    expect(tcp.conn.recvMsgMaxLen).toBe(255);
    await expect(tcp.conn.send(new Uint8Array(256))).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    expect(tcp.channel.sent).toHaveLength(0);
    expect(tcp.lease.sentBytes).toBe(0);
  });

  it('noFragmentation over singularTransmissionMsgMaxLen, msgReliable/msgOrdered on a stack without them, fields on a byte stream', async () => {
    const udp = fakeConnection({ framing: 'message', singularTransmissionMsgMaxLen: 10 });
    await expect(udp.conn.send(new Uint8Array(11), { noFragmentation: true })).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    await expect(udp.conn.send('x', { msgReliable: true })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES', message: expect.stringContaining('msgReliable') });
    await expect(udp.conn.send('x', { msgOrdered: true })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES', message: expect.stringContaining('msgOrdered') });
    await udp.conn.send(new Uint8Array(10), { noSegmentation: true, fields: { tag: 1 } });
    expect(udp.channel.sent.map((s) => s.meta.fields)).toEqual([{ tag: 1 }]);
    const tcp = fakeConnection({ framers: [lengthPrefixFramer()] });
    await expect(tcp.conn.send('x', { fields: { a: 1 } })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    await tcp.conn.send('x', { msgReliable: true, msgOrdered: true });
    expect(tcp.channel.sent).toHaveLength(1);
  });

  it('a message containing the delimiter is refused by the delimiter framer', async () => {
    const { conn, channel } = fakeConnection({ framers: [delimiterFramer()] });
    await expect(conn.send('two\nlines')).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    expect(channel.sent).toHaveLength(0);
    await conn.send('one line');
    expect(text(channel.wire)).toBe('one line\n');
  });
});

describe('bad arguments are programmer errors, thrown synchronously', () => {
  it.each([
    [{ msgPriority: -1 }, RangeError, /msgPriority/],
    [{ msgPriority: 1.5 }, RangeError, /msgPriority/],
    [{ msgLifetime: 'soon' }, RangeError, /msgLifetime/],
    [{ msgLifetime: Number.NaN }, RangeError, /msgLifetime/],
    [{ final: 1 }, TypeError, /final/],
    [{ safelyReplayable: 'yes' }, TypeError, /safelyReplayable/],
    [{ msgCapacityProfile: 'fast' }, RangeError, /msgCapacityProfile/],
    [{ fields: [] }, TypeError, /fields/],
    [{ bogus: true }, TypeError, /bogus/],
    [null, TypeError, /context/],
    ['final', TypeError, /context/],
  ])('context %j → %s', (ctx, kind, name) => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    const o = outcomes(conn);
    expect(() => conn.send('x', ctx as MessageContextInit)).toThrow(kind);
    expect(() => conn.send('x', ctx as MessageContextInit)).toThrow(name);
    expect(channel.sent).toHaveLength(0);
    expect(o.events).toHaveLength(0);
  });

  it('data that is neither bytes nor a string is a TypeError naming data', () => {
    const { conn } = fakeConnection({ framing: 'message' });
    expect(() => conn.send(42 as unknown as string)).toThrow(TypeError);
    expect(() => conn.send({ length: 1 } as unknown as string)).toThrow(/data/);
  });

  it('receive() options must be an object', () => {
    const { conn } = fakeConnection({ framing: 'message' });
    expect(() => conn.receive(null as unknown as object)).toThrow(TypeError);
  });
});

describe('receiving (RFC 9622 §9.3)', () => {
  it('receive() and for await read deframed messages; the peer\'s end finishes the loop', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const framer = lengthPrefixFramer();
    const wire = Buffer.concat(['one', 'two', 'three'].map((m) => [framer.frame(bytes(m))].flat()).flat());
    channel.deliver(wire.subarray(0, 5));
    channel.deliver(wire.subarray(5));
    const first = await conn.receive();
    expect(first.text()).toBe('one');
    let ended = 0;
    conn.on('receivedEnd', () => ended++);
    setImmediate(() => channel.end());
    const rest: string[] = [];
    for await (const m of conn) rest.push(m.text());
    expect(rest).toEqual(['two', 'three']);
    expect(ended).toBe(1);
    expect(conn.canReceive).toBe(false);
    await expect(conn.receive()).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    conn.abort();
  });

  it('receive({ signal }) rejects with ERR_TAPS_ABORTED, and the next message is not lost', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    const ac = new AbortController();
    const p = conn.receive({ signal: ac.signal });
    ac.abort(new Error('user gave up'));
    await expect(p).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED', message: expect.stringContaining('user gave up') });
    await expect(conn.receive({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
    channel.deliver('kept');
    expect((await conn.receive({ signal: new AbortController().signal })).text()).toBe('kept');
    conn.abort();
  });

  it('a `received` listener gets every message and nothing piles up for receive()', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', inbox: { highWaterMessages: 2 } });
    const got: string[] = [];
    conn.on('received', (m) => got.push(m.text()));
    for (let i = 0; i < 10; i++) channel.deliver(`m${i}`);
    expect(got).toHaveLength(10);
    expect(channel.pauseCalls).toBe(0);
    conn.abort();
  });

  it('backpressure: the channel is paused above the high-water mark and resumed below half of it', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', inbox: { highWaterMessages: 4, highWaterBytes: 1 << 20 } });
    for (let i = 0; i < 4; i++) channel.deliver(`m${i}`);
    expect(channel.paused).toBe(false);
    channel.deliver('m4'); // 5 queued > 4
    expect(channel.paused).toBe(true);
    channel.deliver('m5'); // a driver may still deliver what it had
    expect(channel.pauseCalls).toBe(1);
    for (let i = 0; i < 3; i++) await conn.receive(); // 3 left > 2
    expect(channel.paused).toBe(true);
    expect((await conn.receive()).text()).toBe('m3'); // 2 left ≤ 2
    expect(channel.paused).toBe(false);
    expect(channel.resumeCalls).toBe(1);
    conn.abort();
  });

  it('backpressure by bytes as well as by count', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', inbox: { highWaterMessages: 1000, highWaterBytes: 1000 } });
    channel.deliver(new Uint8Array(600));
    channel.deliver(new Uint8Array(600));
    expect(channel.paused).toBe(true);
    await conn.receive();
    expect(channel.paused).toBe(true); // 600 bytes left > 1000 / 2
    await conn.receive();
    expect(channel.paused).toBe(false);
    conn.abort();
  });

  it('pieces of one message (complete: false) are joined into one Message with its fields', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.deliver('hel', { complete: false });
    channel.deliver('lo', { complete: true, fields: { status: 200 } });
    const m = await conn.receive();
    expect(m.text()).toBe('hello');
    expect(m.context.fields).toEqual({ status: 200 });
    conn.abort();
  });

  it('a deframing failure aborts the connection with ERR_TAPS_DEFRAMING_FAILED, never a throw', async () => {
    // A framer that cannot resynchronise: its deframer throws on malformed input.
    const strict: MessageFramer = {
      name: 'strict',
      maxMessageSize: 10,
      frame: (m) => m,
      createDeframer: () => ({
        buffered: 0,
        push: () => {
          throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', 'malformed');
        },
        end: () => {},
      }),
    };
    const { conn, channel } = fakeConnection({ framers: [strict] });
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => errors.push(e));
    const reading = conn.receive();
    expect(() => channel.deliver(new Uint8Array([1, 2, 3, 4]))).not.toThrow();
    await expect(reading).rejects.toMatchObject({ code: 'ERR_TAPS_DEFRAMING_FAILED' });
    expect(errors.map((e) => e.code)).toEqual(['ERR_TAPS_DEFRAMING_FAILED']);
    expect(conn.state).toBe('closed');
    expect(channel.aborted).toBe(true);
    expect(() => channel.deliver(new Uint8Array([1, 1]))).not.toThrow(); // late data after close is ignored
  });

  it('the stream ending inside a frame is a deframing failure', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    channel.deliver(new Uint8Array([0, 0, 0, 5, 1]));
    channel.end();
    await expect(conn.receive()).rejects.toMatchObject({ code: 'ERR_TAPS_DEFRAMING_FAILED' });
    expect(conn.state).toBe('closed');
  });

  it('the channel failing reports one connectionError (no closed after it), and rejects readers with that error', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    const seen: string[] = [];
    conn.on('connectionError', (e) => seen.push(`error:${e.code}`));
    conn.on('closed', () => seen.push('closed'));
    const reading = conn.receive();
    channel.peerClosed(new Error('ECONNRESET'));
    await expect(reading).rejects.toMatchObject({ code: 'ERR_TAPS_CONNECTION_RESET' });
    expect(seen).toEqual(['error:ERR_TAPS_CONNECTION_RESET']);
    expect(lease.releases).toBe(1);
  });

  it('a soft error is an event and the connection stays open', () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    const soft: TapsError[] = [];
    conn.on('softError', (e) => soft.push(e));
    channel.softError(new Error('ICMP port unreachable'));
    expect(soft[0]).toMatchObject({ code: 'ERR_TAPS_PROTOCOL_FAILED' });
    expect(conn.state).toBe('established');
    conn.abort();
  });
});

describe('closing (RFC 9622 §10)', () => {
  it('close() hands everything queued to the channel (priority order, push-back or not), then closes it: closing → closed', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    const events: string[] = [];
    conn.on('closed', () => events.push('closed'));
    conn.on('connectionError', () => events.push('error'));
    channel.pushBack = true;
    const sends = [conn.send('a'), conn.send('b', { msgPriority: 200 }), conn.send('c', { msgPriority: 1 })];
    expect(channel.sent).toHaveLength(1);
    const closing = conn.close();
    expect(conn.state).toBe('closing');
    expect(conn.canSend).toBe(false);
    await expect(conn.send('late')).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    // A peer that never reads cannot hold close() open: the channel's own close flushes, bounded by its timeout.
    expect(channel.sent.map((s) => text(s.data))).toEqual(['a', 'c', 'b']);
    expect(channel.closeCalls).toBe(1);
    await closing;
    expect(conn.state).toBe('closed');
    expect(events).toEqual(['closed']);
    expect(lease.releases).toBe(1);
    await Promise.all(sends);
    expect(conn.close()).toBeInstanceOf(Promise); // idempotent
    await conn.close();
  });

  it('a send the channel confirms only after the connection closed is a sendError, never `sent`', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    const o = outcomes(conn);
    const s = o.track(0, conn.send('pending'));
    await conn.close();
    expect(channel.closeCalls).toBe(1);
    channel.complete(); // the confirmation comes too late
    await s;
    expect(o.settled.get(0)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_CONNECTION_ABORTED' } });
    expect(o.events.map((e) => e.kind)).toEqual(['sendError']);
  });

  it('abort() settles everything at once: queued and in-flight sends fail first, readers end, then one connectionError and no closed', async () => {
    const { conn, channel, lease } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    channel.pushBack = true;
    const o = outcomes(conn);
    const inFlight = o.track(0, conn.send('in flight'));
    const queued = o.track(1, conn.send('queued'));
    const closedEvents: number[] = [];
    conn.on('closed', () => closedEvents.push(1));
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => {
      errors.push(e);
      expect(o.events).toHaveLength(2); // the sends' events came first
    });
    const iter = conn[Symbol.asyncIterator]();
    const reading = iter.next();
    conn.abort();
    await Promise.all([inFlight, queued]);
    expect(await reading).toEqual({ value: undefined, done: true });
    expect(o.settled.get(0)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_CONNECTION_ABORTED' } });
    expect(o.settled.get(1)).toMatchObject({ ok: false, error: { code: 'ERR_TAPS_CONNECTION_ABORTED' } });
    expect(o.events.map((e) => e.kind)).toEqual(['sendError', 'sendError']);
    expect(channel.aborted).toBe(true);
    expect(conn.state).toBe('closed');
    // RFC 9622 §10: a local Abort is reported as a ConnectionError naming the local abort, and only that.
    expect(errors.map((e) => e.code)).toEqual(['ERR_TAPS_CONNECTION_ABORTED']);
    expect(closedEvents).toHaveLength(0);
    expect(lease.releases).toBe(1);
    conn.abort(); // idempotent
    await conn.close(); // closed already: resolves
    expect(closedEvents).toHaveLength(0);
    expect(errors).toHaveLength(1);
  });

  it('abort() emits its one connectionError whether or not anyone listens, and throws nothing', () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    expect(() => conn.abort()).not.toThrow();
    expect(conn.state).toBe('closed');
    expect(channel.aborted).toBe(true);
    expect(channel.abortReason).toBeUndefined();
    const late = fakeConnection({ framing: 'message' });
    const seen: string[] = [];
    late.conn.on('connectionError', (e) => seen.push(e.code));
    late.conn.on('closed', () => seen.push('closed'));
    late.conn.abort();
    expect(seen).toEqual(['ERR_TAPS_CONNECTION_ABORTED']);
  });

  it('abort(reason) reports the reason as connectionError and readers reject with it', async () => {
    const { conn } = fakeConnection({ framing: 'message' });
    const reading = conn.receive();
    const errors: TapsError[] = [];
    conn.on('connectionError', (e) => errors.push(e));
    conn.abort(new TapsError('ERR_TAPS_TIMEOUT', 'gave up'));
    await expect(reading).rejects.toMatchObject({ code: 'ERR_TAPS_TIMEOUT', message: 'gave up' });
    expect(errors.map((e) => e.message)).toEqual(['gave up']);
  });

  it('abort() during close() ends the close without an error and settles every send', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    const o = outcomes(conn);
    const s = o.track(0, conn.send('a'));
    const q = o.track(1, conn.send('b'));
    const closing = conn.close();
    conn.abort();
    await closing;
    await Promise.all([s, q]);
    expect(channel.aborted).toBe(true);
    expect(o.events.map((e) => e.kind)).toEqual(['sendError', 'sendError']);
  });

  it('Symbol.asyncDispose closes gracefully (await using)', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    {
      await using c = conn;
      await c.send('x');
    }
    expect(conn.state).toBe('closed');
    expect(channel.closeCalls).toBe(1);
    await conn[Symbol.asyncDispose](); // twice is fine
  });

  it('asyncDispose never rejects, even when the close fails', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.close = () => Promise.reject(new Error('close failed'));
    await expect(conn[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(conn.state).toBe('closed');
  });

  it('events with no listener never throw (errors, soft errors, expiry, send errors)', async () => {
    const { conn, channel, clock } = fakeConnection({ framing: 'message' });
    channel.pushBack = true;
    void conn.send('a');
    void conn.send('b', { msgLifetime: 1 });
    await clock.advance(5);
    channel.softError(new Error('soft'));
    void conn.send('c', { safelyReplayable: false });
    expect(() => conn.abort(new Error('boom'))).not.toThrow();
    await flush();
  });
});

describe('state and identity', () => {
  it('reads back the stack, addresses, info and which selection properties the stack provides', () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()], properties: TransportProperties.reliableMessage() });
    expect(conn.state).toBe('established');
    expect(conn.stack).toEqual(['fake-tcp']);
    expect(conn.remote).toBe(channel.remote);
    expect(conn.local).toBe(channel.local);
    expect(conn.info).toEqual({ fake: true });
    expect(conn.transportProperties).toMatchObject({ reliability: true, preserveMsgBoundaries: true });
    conn.abort();
  });

  it('direction unidirectional-receive refuses sends; unidirectional-send cannot receive', async () => {
    const recvOnly = fakeConnection({ framing: 'message', properties: new TransportProperties({ direction: 'unidirectional-receive', reliability: 'prohibit' }) });
    expect(recvOnly.conn.canSend).toBe(false);
    await expect(recvOnly.conn.send('x')).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    const sendOnly = fakeConnection({ framing: 'message', properties: new TransportProperties({ direction: 'unidirectional-send', reliability: 'prohibit' }) });
    expect(sendOnly.conn.canReceive).toBe(false);
    recvOnly.conn.abort();
    sendOnly.conn.abort();
  });
});
