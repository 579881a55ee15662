/**
 * A channel that completes sends in order (`TransportChannel.completesInOrder`,
 * the udp driver's connected socket): the Connection hands every send the
 * same `done` and settles its oldest outstanding message on each call. Each
 * message still gets its own outcome, event and promise, in send order; a
 * message framed as several pieces settles after its last piece; messages
 * outstanding when the connection closes fail once, and completions after
 * that change nothing. A scripted channel (test/helpers/fake-channel.ts)
 * beside the real-socket tests in test/loopback/udp.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { MessageFramer } from '../../src/framers/index.js';
import { TransportProperties } from '../../src/properties.js';
import { fakeConnection } from '../helpers/fake-channel.js';
import { flush } from '../helpers/manual-clock.js';

/** Outcomes of each send's promise, by index, as they settle. */
function track(promises: Promise<void>[]): string[] {
  const got: string[] = [];
  promises.forEach((p, i) =>
    p.then(
      () => got.push(`${i} sent`),
      (err: { code?: string }) => got.push(`${i} ${err.code}`),
    ),
  );
  return got;
}

/** Header then payload: two channel sends per message. */
const twoPieces: MessageFramer = {
  name: 'two-pieces',
  maxMessageSize: 255,
  frame: (m) => [Uint8Array.of(m.byteLength), m],
  createDeframer: () => ({ buffered: 0, push: () => {}, end: () => {} }),
};

describe('sends over a channel that completes them in order', () => {
  it('one done for all sends; each message its own outcome and event, in send order', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', completesInOrder: true });
    channel.autoComplete = false;
    const events: string[] = [];
    conn.on('sent', (ctx) => events.push(`sent ${String(ctx.msgPriority)}`));
    conn.on('sendError', (ctx, err) => events.push(`sendError ${String(ctx.msgPriority)} ${err.code}`));
    const got = track([0, 1, 2].map((i) => conn.send(Uint8Array.of(i), { msgPriority: i })));
    expect(new Set(channel.sent.map((s) => s.done)).size).toBe(1);
    channel.complete(1);
    channel.complete(1, new Error('EMSGSIZE'));
    channel.complete(1);
    await flush();
    expect(events).toEqual(['sent 0', 'sendError 1 ERR_TAPS_SEND_FAILED', 'sent 2']);
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_SEND_FAILED', '2 sent']);
  });

  it('a channel that does not say so gets a done per send', () => {
    const { conn, channel } = fakeConnection({ framing: 'message' });
    channel.autoComplete = false;
    for (let i = 0; i < 3; i++) void conn.send(Uint8Array.of(i));
    expect(new Set(channel.sent.map((s) => s.done)).size).toBe(3);
    conn.abort();
  });

  it('a message in several pieces settles after its last piece; a failed piece fails only its message', async () => {
    const { conn, channel } = fakeConnection({ framing: 'stream', completesInOrder: true, framers: [twoPieces], properties: TransportProperties.reliableMessage() });
    channel.autoComplete = false;
    const got = track([conn.send(Uint8Array.of(1)), conn.send(Uint8Array.of(2, 2)), conn.send(Uint8Array.of(3))]);
    expect(channel.sent.length).toBe(6);
    channel.complete(1); // the first message's header
    await flush();
    expect(got).toEqual([]);
    channel.complete(1); // its payload
    channel.complete(1, new Error('EPIPE')); // the second's header fails
    await flush();
    expect(got).toEqual(['0 sent']);
    channel.complete(2); // the second's payload, the third's header
    await flush();
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_SEND_FAILED']);
    channel.complete(1);
    await flush();
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_SEND_FAILED', '2 sent']);
  });

  it('messages outstanding at an abort fail once; completions after it change nothing', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', completesInOrder: true });
    channel.autoComplete = false;
    const got = track([conn.send(Uint8Array.of(0)), conn.send(Uint8Array.of(1))]);
    channel.complete(1);
    const done = channel.sent[1]!.done;
    conn.abort();
    done(); // late: the connection settled it already
    done();
    await flush();
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_CONNECTION_ABORTED']);
    await expect(conn.send(Uint8Array.of(2))).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
  });

  it('backpressure and the queue: queued messages keep their order through the one done', async () => {
    const { conn, channel } = fakeConnection({ framing: 'message', completesInOrder: true });
    channel.autoComplete = false;
    channel.pushBack = true;
    const promises = [conn.send(Uint8Array.of(0)), conn.send(Uint8Array.of(1), { msgPriority: 50 }), conn.send(Uint8Array.of(2), { msgPriority: 10 })];
    const got = track(promises);
    expect(conn.sendBlocked).toBe(true);
    expect(channel.sent.length).toBe(1);
    channel.pushBack = false;
    channel.drain();
    // The queue goes out by priority: 2 (10) before 1 (50).
    expect(channel.sent.map((s) => s.data[0])).toEqual([0, 2, 1]);
    channel.complete();
    await flush();
    expect(got).toEqual(['0 sent', '2 sent', '1 sent']);
  });
});
