/**
 * The weighing of ICMP reports on an established QUIC client connection (transports/quic/peer-loss.ts),
 * with a hand-driven clock and QUIC view; test/loopback/quic-peer-lost.test.ts runs it over real sockets
 * (a killed peer, real forged ICMP).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_REPORTS, PeerLoss, type LossFacts } from '../../transports/quic/peer-loss.js';

const refused = (): Error => Object.assign(new Error('recvmsg ECONNREFUSED'), { code: 'ECONNREFUSED' });

function watch(pto = 50) {
  const state = { now: 0, received: 10, soft: 0, lost: undefined as { error: Error; facts: LossFacts } | undefined };
  const loss = new PeerLoss({
    probe: { received: () => state.received, pto: () => pto },
    soft: () => void state.soft++,
    lost: (error, facts) => void (state.lost = { error, facts }),
    now: () => state.now,
  });
  made.push(loss);
  return { loss, state };
}
const made: PeerLoss[] = [];
afterEach(() => {
  for (const l of made.splice(0)) l.stop();
});
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('PeerLoss', () => {
  it('one report is a soft error and nothing more, however long the peer stays silent', async () => {
    const { loss, state } = watch(1);
    loss.unreachable(refused());
    loss.left();
    state.now = 10_000;
    await tick();
    expect(state.soft).toBe(1);
    expect(state.lost).toBeUndefined();
    expect(loss.suspecting).toBe(true);
  });

  it(`${MIN_REPORTS} reports and a datagram unanswered for a PTO: lost, with the last report and the facts`, () => {
    const { loss, state } = watch(50);
    loss.unreachable(refused());
    state.now = 5;
    loss.left();
    state.now = 20;
    const last = refused();
    loss.unreachable(last);
    expect(state.lost).toBeUndefined(); // 15 ms unanswered: not a PTO yet
    state.now = 60;
    loss.unreachable(refused());
    expect(state.lost?.facts).toEqual({ reports: 3, sinceFirstReport: 60, unanswered: 55, pto: 50 });
    loss.unreachable(refused());
    expect(state.soft).toBe(3); // stopped once lost
  });

  it('the timer concludes when the reports came before the PTO ran out', async () => {
    const { loss, state } = watch(1);
    loss.unreachable(refused());
    loss.left();
    loss.unreachable(refused());
    expect(state.lost).toBeUndefined();
    state.now = 2;
    await tick();
    expect(state.lost?.facts.reports).toBe(2);
  });

  it('reports with nothing sent since the first conclude nothing (an idle connection)', async () => {
    const { loss, state } = watch(1);
    for (let i = 0; i < 5; i++) {
      loss.unreachable(refused());
      state.now += 100;
    }
    await tick();
    expect(state.lost).toBeUndefined();
  });

  it('a packet accepted from the peer clears the suspicion: the count starts again', async () => {
    const { loss, state } = watch(50);
    loss.unreachable(refused());
    loss.left();
    state.now = 10;
    state.received++; // the peer answered
    loss.unreachable(refused());
    state.now = 100;
    loss.unreachable(refused()); // two reports since it was heard, but nothing left after the first of them
    expect(state.lost).toBeUndefined();
    loss.left();
    state.now = 200;
    loss.unreachable(refused());
    expect(state.lost?.facts.reports).toBe(3);
  });

  it('stop() releases the timer and ends the watching', async () => {
    const { loss, state } = watch(1);
    loss.unreachable(refused());
    loss.left();
    loss.unreachable(refused());
    loss.stop();
    state.now = 10;
    await tick();
    loss.unreachable(refused());
    expect(state.lost).toBeUndefined();
    expect(state.soft).toBe(2);
  });
});
