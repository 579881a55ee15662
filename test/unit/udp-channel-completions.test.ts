/**
 * The udp channel's send completions: over a socket that completes its
 * datagrams in send order (`DatagramIo.ordered`, a dgram socket) one shared
 * callback serves every send, and each send still gets its own outcome, a
 * failure included; over one that does not, each send keeps its own
 * callback. A fake DatagramIo beside the real-socket tests in
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

  it('out of order (a socket that does not promise order): each send keeps its own callback', () => {
    const sock = io(false);
    const ch = new DatagramChannel(sock, { local: addr, remote: addr, maxMessageSize: 65507 });
    const got = outcomes(ch, 3);
    sock.complete(2);
    sock.complete(0, new Error('EHOSTUNREACH'));
    sock.complete(1);
    expect(got).toEqual(['2 sent', '0 ERR_TAPS_SEND_FAILED', '1 sent']);
  });
});
