/**
 * The order of a Connection's events (RFC 9622 §10, §11), the peer's end
 * (§9.3.2.4 final), late `received` listeners, and message properties the
 * stack cannot honour, over a fake channel.
 */
import { describe, expect, it } from 'vitest';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { fakeConnection } from '../helpers/fake-channel.js';

const frame = (s: string): Uint8Array => {
  const b = Buffer.from(s);
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  b.copy(out, 4);
  return out;
};

describe('termination events (RFC 9622 §10, §11)', () => {
  it('close() ends in exactly one closed; nothing is emitted after it, and a send then rejects without an event', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const seen: string[] = [];
    for (const e of ['closed', 'connectionError', 'sendError', 'sent'] as const) conn.on(e, () => seen.push(e));
    await conn.send('a');
    await conn.close();
    await expect(conn.send('after')).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    expect(seen).toEqual(['sent', 'closed']);
  });

  it('a peer that closes cleanly gives closed; one that resets gives connectionError, never both', () => {
    const clean = fakeConnection({ framing: 'message' });
    const reset = fakeConnection({ framing: 'message' });
    const seen: string[] = [];
    clean.conn.on('closed', () => seen.push('clean closed'));
    clean.conn.on('connectionError', () => seen.push('clean error'));
    reset.conn.on('closed', () => seen.push('reset closed'));
    reset.conn.on('connectionError', (e) => seen.push(`reset ${e.code}`));
    clean.channel.peerClosed();
    reset.channel.peerClosed(new Error('ECONNRESET'));
    expect(seen).toEqual(['clean closed', 'reset ERR_TAPS_CONNECTION_RESET']);
  });
});

describe("the peer's end (FIN)", () => {
  it('moves the connection to closing: canReceive false, canSend still true (half-close), the last queued message final', async () => {
    const { conn, channel } = fakeConnection({ framers: [lengthPrefixFramer()] });
    const ends: string[] = [];
    conn.on('receivedEnd', () => ends.push('receivedEnd'));
    channel.deliver(Buffer.concat([frame('one'), frame('two')]));
    channel.end();
    expect(conn.state).toBe('closing');
    expect(conn.getProperty('canReceive')).toBe(false);
    expect(conn.canSend).toBe(true);
    expect(ends).toEqual(['receivedEnd']);
    const got = [];
    for await (const m of conn) got.push([m.text(), m.context.final]);
    expect(got).toEqual([['one', false], ['two', true]]);
    await expect(conn.receive()).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    await conn.send('reply after the peer finished'); // RFC 9622 §9.1.3.5: the other direction stays open
    expect(channel.sent).toHaveLength(1);
    await conn.close();
    expect(conn.state).toBe('closed');
  });
});

describe('a late received listener', () => {
  it('gets the messages queued before it was attached, in order, before later ones', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.deliver('a');
    channel.deliver('b');
    const got: string[] = [];
    conn.on('received', (m) => got.push(m.text()));
    expect(got).toEqual([]); // on the next microtask, not inside on()
    channel.deliver('c'); // arrives first, but older ones go first
    await Promise.resolve();
    expect(got).toEqual(['a', 'b', 'c']);
    conn.abort();
  });
});

describe('message properties the stack cannot honour (RFC 9622 §9.1.3.7)', () => {
  it('msgReliable false on a reliable stack without perMsgReliability is a sendError; true is the default and fine', async () => {
    const { conn } = fakeConnection({ framers: [lengthPrefixFramer()] });
    await expect(conn.send('x', { msgReliable: false })).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES', message: expect.stringMatching(/per-message reliability/) });
    await expect(conn.send('x', { msgReliable: true })).resolves.toBeUndefined();
    conn.abort();
  });

  it('with perMsgReliability the stack gets the choice in ChannelSendMeta.reliable', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', capabilities: { perMsgReliability: true } });
    await conn.send('unreliable', { msgReliable: false });
    await conn.send('reliable', { msgReliable: true });
    expect(channel.sent.map((s) => s.meta.reliable)).toEqual([false, true]);
    conn.abort();
  });
});
