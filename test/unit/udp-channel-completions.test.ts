/**
 * The udp channel's send completions: over a socket that completes its
 * datagrams in send order (`DatagramIo.ordered`, a dgram socket) one shared
 * callback serves every send, and each send still gets its own outcome, a
 * failure included; over one that does not, each send keeps its own
 * callback. A send refused before the socket waits behind the sends before
 * it, so the channel can say its completions come in send order
 * (`completesInOrder`). A fake DatagramIo beside the real-socket tests in
 * test/loopback/udp.test.ts, to choose which completion fails.
 */
import { describe, expect, it } from 'vitest';
import { DatagramChannel, type DatagramIo } from '../../transports/udp/channel.js';

const addr = { address: '127.0.0.1', port: 9, family: 4 as const };

function io(ordered: boolean): DatagramIo & { complete(i: number, err?: Error): void } {
  const cbs: ((err: Error | null) => void)[] = [];
  return {
    ordered,
    send: (_data, cb) => void cbs.push(cb),
    release: (done) => done(),
    complete: (i, err) => cbs[i]!(err ?? null),
  };
}

function outcomes(ch: DatagramChannel, n: number): string[] {
  const got: string[] = [];
  for (let i = 0; i < n; i++) ch.send(new Uint8Array([i]), {}, (err) => got.push(err === undefined ? `${i} sent` : `${i} ${(err as { code?: string }).code}`));
  return got;
}

describe('udp channel send completions', () => {
  it('in send order, one callback for all: each send its own outcome, a failed one included', () => {
    const sock = io(true);
    const ch = new DatagramChannel(sock, { local: addr, remote: addr, maxMessageSize: 65507 });
    const got = outcomes(ch, 3);
    sock.complete(0);
    sock.complete(1, new Error('ECONNREFUSED'));
    sock.complete(2);
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_SEND_FAILED', '2 sent']);
    // The shared queue empties and is reused.
    const again = outcomes(ch, 1);
    sock.complete(3);
    expect(again).toEqual(['0 sent']);
  });

  it('a send refused before the socket completes after the sends before it, never inside send()', async () => {
    const sock = io(true);
    const ch = new DatagramChannel(sock, { local: addr, remote: addr, maxMessageSize: 4 });
    expect(ch.completesInOrder).toBe(true);
    const got: string[] = [];
    const send = (i: number, size: number): void => void ch.send(new Uint8Array(size), {}, (err) => got.push(err === undefined ? `${i} sent` : `${i} ${(err as { code?: string }).code}`));
    send(0, 1);
    send(1, 9); // too large: refused at once, reported after 0
    send(2, 1);
    send(3, 9);
    await Promise.resolve();
    expect(got).toEqual([]);
    sock.complete(0);
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_MESSAGE_TOO_LARGE']);
    sock.complete(1);
    expect(got).toEqual(['0 sent', '1 ERR_TAPS_MESSAGE_TOO_LARGE', '2 sent', '3 ERR_TAPS_MESSAGE_TOO_LARGE']);
    // Nothing at the socket: a refused send is reported on a microtask, still before a later send's completion.
    send(4, 9);
    expect(got.length).toBe(4);
    send(5, 1);
    sock.complete(2);
    await Promise.resolve();
    expect(got.slice(4)).toEqual(['4 ERR_TAPS_MESSAGE_TOO_LARGE', '5 sent']);
    send(6, 9);
    expect(got.length).toBe(6);
    await Promise.resolve();
    expect(got.slice(6)).toEqual(['6 ERR_TAPS_MESSAGE_TOO_LARGE']);
  });

  it('out of order (a socket that does not promise order): each send keeps its own callback', () => {
    const sock = io(false);
    const ch = new DatagramChannel(sock, { local: addr, remote: addr, maxMessageSize: 65507 });
    expect(ch.completesInOrder).toBe(false);
    const got = outcomes(ch, 3);
    sock.complete(2);
    sock.complete(0, new Error('EHOSTUNREACH'));
    sock.complete(1);
    expect(got).toEqual(['2 sent', '0 ERR_TAPS_SEND_FAILED', '1 sent']);
  });
});
