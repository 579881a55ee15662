/**
 * Partial messages (RFC 9622 §9.2.3 partial sends, §9.3.1 receive limits,
 * §9.3.2.2 ReceivedPartial), ReceiveError (§9.3.2.3) and framer stacks
 * (§9.1.2), over a fake channel and directly on the deframers.
 */
import { describe, expect, it } from 'vitest';
import type { TapsError } from '../../src/errors.js';
import { delimiterFramer, framerStack, lengthPrefixFramer } from '../../src/framers/index.js';
import type { Message, ReceivedContext } from '../../src/message.js';
import { fakeConnection } from '../helpers/fake-channel.js';

const frame = (payload: Uint8Array | string): Buffer => {
  const b = Buffer.from(payload);
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  b.copy(out, 4);
  return out;
};
const bytes = (n: number, fill = 7): Buffer => Buffer.alloc(n, fill);

describe('length-prefix deframer with a sink', () => {
  it('hands a message not complete in the bytes at hand over in pieces, in order, and holds none of it', () => {
    const d = lengthPrefixFramer().createDeframer();
    const seen: string[] = [];
    const sink = { part: (p: Uint8Array, end: boolean) => seen.push(`${Buffer.from(p).toString()}${end ? '|' : ''}`) };
    const wire = Buffer.concat([frame('ab'), frame('hello world'), frame('z')]);
    d.push(wire.subarray(0, 12), (m) => seen.push(`whole ${Buffer.from(m).toString()}`), sink);
    expect(d.buffered).toBe(0);
    d.push(wire.subarray(12), (m) => seen.push(`whole ${Buffer.from(m).toString()}`), sink);
    expect(seen).toEqual(['whole ab', 'he', 'llo world|', 'whole z']);
    d.end();
  });

  it('skips a message over its maximum and reads the next header after it (resynchronises)', () => {
    const d = lengthPrefixFramer({ maxMessageSize: 4 }).createDeframer();
    const whole: string[] = [];
    const skipped: string[] = [];
    const wire = Buffer.concat([frame('ok'), frame('far too long'), frame('next')]);
    for (let i = 0; i < wire.length; i += 3) d.push(wire.subarray(i, i + 3), (m) => whole.push(Buffer.from(m).toString()), { skipped: (e) => skipped.push(e.code) });
    expect(whole).toEqual(['ok', 'next']);
    expect(skipped).toEqual(['ERR_TAPS_MESSAGE_TOO_LARGE']);
  });

  it('an announcement past the skip limit fails the stream instead of waiting for it to pass', () => {
    const d = lengthPrefixFramer({ maxMessageSize: 4, maxSkip: 12 }).createDeframer();
    const whole: string[] = [];
    const skipped: string[] = [];
    const sink = { skipped: (e: TapsError) => skipped.push(e.code) };
    d.push(Buffer.concat([frame('ok'), frame('twelve bytes')]), (m) => whole.push(Buffer.from(m).toString()), sink);
    expect(skipped).toEqual(['ERR_TAPS_MESSAGE_TOO_LARGE']); // 12 bytes: within the limit, skipped
    let error: unknown;
    try {
      d.push(frame('thirteen byte'), (m) => whole.push(Buffer.from(m).toString()), sink);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'ERR_TAPS_DEFRAMING_FAILED', message: expect.stringContaining('13 bytes'), cause: { code: 'ERR_TAPS_MESSAGE_TOO_LARGE' } });
    expect(whole).toEqual(['ok']);
    expect(d.buffered).toBe(0);
  });

  it.each([
    ['an HTTP request line', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a TLS ClientHello record header', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'],
    ['an SSH banner', 'SSH-2.0-OpenSSH_9.2\r\n'],
  ])('by default, %s read as a 4-byte length ends the stream at once', (_what, wire) => {
    const d = lengthPrefixFramer().createDeframer();
    expect(() => d.push(Buffer.from(wire, 'latin1'), () => {}, { skipped: () => {} })).toThrow(expect.objectContaining({ code: 'ERR_TAPS_DEFRAMING_FAILED' }));
  });

  it('maxSkip is validated against maxMessageSize and the header ceiling', () => {
    expect(() => lengthPrefixFramer({ maxMessageSize: 10, maxSkip: 9 })).toThrow(RangeError);
    expect(() => lengthPrefixFramer({ headerBytes: 2, maxSkip: 65536 })).toThrow(/options\.maxSkip/);
    expect(() => lengthPrefixFramer({ maxSkip: 1.5 })).toThrow(RangeError);
    expect(() => lengthPrefixFramer({ headerBytes: 2, maxMessageSize: 100 })).not.toThrow(); // default capped at 65535
  });

  it('without a sink an oversize message still fails the deframer', () => {
    const d = lengthPrefixFramer({ maxMessageSize: 4 }).createDeframer();
    expect(() => d.push(frame('far too long'), () => {})).toThrow(expect.objectContaining({ code: 'ERR_TAPS_DEFRAMING_FAILED' }));
  });
});

describe('receive({ minIncompleteLength, maxLength }) (RFC 9622 §9.3.1, §9.3.2.2)', () => {
  it("the RFC's example: Receive(1, 1000) on a 1500-byte message gives 1000 bytes, then the last 500 with endOfMessage", async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const events: string[] = [];
    conn.on('receivedPartial', (m) => events.push(`partial ${m.byteLength} ${m.endOfMessage}`));
    const first = conn.receive({ minIncompleteLength: 1, maxLength: 1000 });
    channel.deliver(frame(bytes(1500)));
    const a = await first;
    const b = await conn.receive({ minIncompleteLength: 1, maxLength: 1000 });
    expect([a.byteLength, a.partial, a.endOfMessage]).toEqual([1000, true, false]);
    expect([b.byteLength, b.partial, b.endOfMessage]).toEqual([500, true, true]);
    expect(b.context).toBe(a.context); // one message, one context
    expect(events).toEqual(['partial 1000 false', 'partial 500 true']);
    conn.abort();
  });

  it('a message arriving in chunks is handed over as it comes: minIncompleteLength bytes at least, maxLength at most', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const wire = frame(Buffer.from('abcdefghij'));
    channel.deliver(wire.subarray(0, 6)); // header + 'ab'
    const pieces: Message[] = [];
    const want = (): Promise<Message> => conn.receive({ minIncompleteLength: 3, maxLength: 4 });
    const p1 = want();
    channel.deliver(wire.subarray(6, 7)); // 'c': now 3 bytes
    pieces.push(await p1);
    channel.deliver(wire.subarray(7)); // 'defghij'
    pieces.push(await want(), await want());
    expect(pieces.map((m) => [m.text(), m.endOfMessage])).toEqual([['abc', false], ['defg', false], ['hij', true]]);
    expect(new Set(pieces.map((m) => m.context)).size).toBe(1);
    conn.abort();
  });

  it('whole messages by default, also after pieces were read; a shorter message than the limits comes whole', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    channel.deliver(Buffer.concat([frame('short'), frame('0123456789')]));
    const short = await conn.receive({ minIncompleteLength: 1, maxLength: 8 });
    expect([short.text(), short.partial]).toEqual(['short', false]);
    const head = await conn.receive({ maxLength: 4 }); // a queued message longer than maxLength: in pieces
    const rest = await conn.receive(); // the rest of it, as its last piece
    expect([head.text(), head.endOfMessage, rest.text(), rest.partial, rest.endOfMessage]).toEqual(['0123', false, '456789', true, true]);
    channel.deliver(frame('later'));
    const later = await conn.receive();
    expect([later.text(), later.partial]).toEqual(['later', false]);
    conn.abort();
  });

  it('a partial reader holds a window, not the message: the channel pauses above the high-water mark and a waiting reader resumes it', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer({ maxMessageSize: 2 ** 32 - 1 })], inbox: { highWaterBytes: 1000 } });
    const total = 100_000;
    const want = (): Promise<Message> => conn.receive({ minIncompleteLength: 1, maxLength: 500 });
    const first = want();
    channel.deliver(Buffer.from([0, 0x01, 0x86, 0xa0])); // the header of a 100,000-byte message
    channel.deliver(bytes(300));
    let got = (await first).byteLength;
    let sent = 300;
    for (; sent < 1500; sent += 300) channel.deliver(bytes(300)); // nobody reads: over 1000 bytes held
    expect(channel.paused).toBe(true);
    const reading = (async () => {
      for (let end = false; !end; ) {
        const m = await want();
        got += m.byteLength;
        end = m.endOfMessage;
      }
    })();
    for (; sent < total; sent += 300) {
      channel.deliver(bytes(Math.min(300, total - sent)));
      await new Promise((r) => setImmediate(r));
    }
    await reading;
    expect(got).toBe(total);
    expect(channel.paused).toBe(false);
    conn.abort();
  });

  it('rejects bad limits at once, naming them', () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()] });
    expect(() => conn.receive({ minIncompleteLength: 0 })).toThrow(/options.minIncompleteLength/);
    expect(() => conn.receive({ maxLength: 1.5 })).toThrow(RangeError);
    conn.abort();
  });

  it('message stacks: a message the channel hands over in pieces can be read in pieces too', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    const first = conn.receive({ minIncompleteLength: 2 });
    channel.deliver('he', { complete: false });
    channel.deliver('llo', { complete: true });
    const a = await first;
    const b = await conn.receive();
    expect([a.text(), a.endOfMessage, b.text(), b.endOfMessage, b.context === a.context]).toEqual(['he', false, 'llo', true, true]);
    conn.abort();
  });
});

describe('ReceiveError (RFC 9622 §9.3.2.3)', () => {
  it('a message over the framer maximum is an event on that message; the connection stays open and the next message arrives', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer({ maxMessageSize: 8 })] });
    const events: string[] = [];
    conn.on('receiveError', (ctx: ReceivedContext, e: TapsError) => events.push(`receiveError ${e.code} final=${ctx.final}`));
    conn.on('connectionError', (e) => events.push(`connectionError ${e.code}`));
    const next = conn.receive();
    channel.deliver(Buffer.concat([frame('this one is too long'), frame('fits')]));
    expect((await next).text()).toBe('fits');
    expect(events).toEqual(['receiveError ERR_TAPS_MESSAGE_TOO_LARGE final=false']);
    expect(conn.state).toBe('established');
    conn.abort();
  });
});

describe('partial sends (RFC 9622 §9.2.3)', () => {
  it('with a framer the pieces go out as one framed message when it ends; every promise settles, one sent event', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    let sent = 0;
    conn.on('sent', () => sent++);
    const a = conn.send('hel', { endOfMessage: false });
    const b = conn.send('lo', { endOfMessage: false });
    expect(channel.sent).toHaveLength(0);
    const c = conn.send(' world');
    await Promise.all([a, b, c]);
    expect(Buffer.from(channel.wire)).toEqual(frame('hello world'));
    expect(sent).toBe(1);
    conn.abort();
  });

  it('on a byte stream without a framer each piece goes out at once; final waits for the end', async () => {
    const { conn, channel } = fakeConnection();
    await conn.send('hel', { endOfMessage: false, final: true });
    expect(channel.sent.map((s) => [Buffer.from(s.data).toString(), s.meta.final])).toEqual([['hel', false]]);
    await conn.send('lo', { final: true });
    expect(channel.sent.map((s) => [Buffer.from(s.data).toString(), s.meta.final])).toEqual([['hel', false], ['lo', true]]);
    conn.abort();
  });

  it('pieces of a message that is refused when it ends all reject with its error', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer({ maxMessageSize: 4 })] });
    const errors: string[] = [];
    conn.on('sendError', (_c, e) => errors.push(e.code));
    const a = conn.send('abc', { endOfMessage: false });
    const b = conn.send('def');
    await expect(a).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    await expect(b).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
    expect(errors).toEqual(['ERR_TAPS_MESSAGE_TOO_LARGE']);
    conn.abort();
  });
});

describe('framer stacks (RFC 9622 §9.1.2)', () => {
  it('the last framer added frames first and deframes last', async () => {
    const stack = framerStack([lengthPrefixFramer(), delimiterFramer()]);
    expect(stack.name).toBe('delimiter over length-prefix');
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer(), delimiterFramer()] });
    await conn.send('line');
    expect(Buffer.from(channel.wire)).toEqual(frame('line\n')); // the delimiter's frame inside the length prefix
    channel.deliver(Buffer.concat([frame('one\ntw'), frame('o\n')]));
    const got = [await conn.receive(), await conn.receive()].map((m) => m.text());
    expect(got).toEqual(['one', 'two']);
    conn.abort();
  });

  it('a lower framer skipping an oversize frame reports it and the stack goes on', () => {
    const d = framerStack([lengthPrefixFramer({ maxMessageSize: 6 }), delimiterFramer()]).createDeframer();
    const got: string[] = [];
    const skipped: string[] = [];
    d.push(Buffer.concat([frame('a\n'), frame('too long\n'), frame('b\n')]), (m) => got.push(Buffer.from(m).toString()), { skipped: (e) => skipped.push(e.code) });
    expect(got).toEqual(['a', 'b']);
    expect(skipped).toEqual(['ERR_TAPS_MESSAGE_TOO_LARGE']);
  });
});

describe('delimiter framer: ReceiveError and resynchronisation', () => {
  it('a line over the maximum is skipped up to the next delimiter, split across chunks or not; the next line arrives', async () => {
    const { conn, channel } = fakeConnection({ framers: [delimiterFramer({ delimiter: '\r\n', maxMessageSize: 4 })] });
    const skipped: string[] = [];
    conn.on('receiveError', (_ctx, e) => skipped.push(e.code));
    channel.deliver('ok\r\nthis line is long'); // over the maximum, no delimiter yet: skipped from here
    channel.deliver('er still\r');
    channel.deliver('\nnext\r\nfar too long\r\nlast\r\n'); // a whole oversize line inside one chunk too
    const got = [await conn.receive(), await conn.receive(), await conn.receive()].map((m) => m.text());
    expect(got).toEqual(['ok', 'next', 'last']);
    expect(skipped).toEqual(['ERR_TAPS_MESSAGE_TOO_LARGE', 'ERR_TAPS_MESSAGE_TOO_LARGE']);
    expect(conn.state).toBe('established');
    conn.abort();
  });
});
