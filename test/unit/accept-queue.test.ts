/**
 * AcceptQueue, the accept side the driver listeners share: backlog before
 * start(), order kept, failures kept until start(), and nothing delivered
 * after close() (RFC 9622 §7.2).
 */
import { describe, expect, it } from 'vitest';
import type { DriverListenerHandler, TransportChannel } from '../../src/driver.js';
import type { TapsError } from '../../src/errors.js';
import { AcceptQueue } from '../../transports/kit/accept-queue.js';
import { FakeChannel } from '../helpers/fake-channel.js';

function recorder(): DriverListenerHandler & { got: TransportChannel[]; errors: TapsError[] } {
  const got: TransportChannel[] = [];
  const errors: TapsError[] = [];
  return { got, errors, connection: (ch) => void got.push(ch), error: (e) => void errors.push(e as TapsError) };
}

describe('AcceptQueue', () => {
  it('holds channels until start(), then hands them over in order, then delivers directly', () => {
    const q = new AcceptQueue();
    const [a, b, c] = [new FakeChannel(), new FakeChannel(), new FakeChannel()];
    q.offer(a);
    q.offer(b);
    const h = recorder();
    q.start(h);
    expect(h.got).toEqual([a, b]);
    q.offer(c);
    expect(h.got).toEqual([a, b, c]);
    expect(() => q.start(recorder())).toThrow(TypeError);
  });

  it('keeps the first failure until start() and reports it after the backlog', () => {
    const q = new AcceptQueue();
    const a = new FakeChannel();
    q.offer(a);
    q.fail(Object.assign(new Error('boom'), { code: 'EADDRINUSE' }));
    q.fail(new Error('second'));
    const h = recorder();
    q.start(h);
    expect(h.got).toEqual([a]);
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED', message: 'boom' });
  });

  it('close() aborts what waits and refuses what comes later', () => {
    const q = new AcceptQueue();
    const waiting = new FakeChannel();
    q.offer(waiting);
    q.close();
    q.close();
    expect(q.closed).toBe(true);
    expect(waiting.aborted).toBe(true);
    const late = new FakeChannel();
    q.offer(late);
    expect(late.aborted).toBe(true);
    const h = recorder();
    q.start(h);
    expect(h.got).toEqual([]);
  });
});
