/**
 * UDP multicast between network namespaces (RFC 9622 §6.1.1, RFC 9623 §10):
 * a sender and receivers on one bridged link. The any-source receiver gets
 * the group's datagrams; a source-specific receiver for the sender gets them;
 * one for another source gets none. Membership shows in each namespace's
 * `/proc/net/igmp` while listening and is gone after stop. The hop limit is
 * what arrives (counted by iptables' TTL match in the receiver's namespace);
 * with `udp.multicastLoopback` false the sender's own host hears nothing.
 * Joining and sending are policy decisions: without the grant nothing joins
 * and nothing is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { igmpGroupHex, Lab, labUnavailable, type Agent } from './helpers/lab.js';

const unavailable = labUnavailable({ commands: ['iptables'] });
if (unavailable) console.warn(`SKIPPED network-namespace multicast tests: ${unavailable}`);

const GROUP = '233.252.0.1'; // MCAST-TEST-NET (RFC 6676)
const PORT = 5004;
const SENDER = '192.0.2.1';
const OTHER_SOURCE = '192.0.2.99';
const POLICY = `allow bind:udp://${GROUP}:${PORT}\nallow accept:udp://192.0.2.0/24:*\nallow udp://${GROUP}:${PORT}`;

describe.skipIf(unavailable !== undefined)('multicast between namespaces', () => {
  let lab: Lab;
  const ns: Record<string, string> = {};
  const igmp = (n: string): string => lab.run(ns[n]!, 'cat', '/proc/net/igmp');
  const joined = (n: string): boolean => igmp(n).includes(igmpGroupHex(GROUP));

  beforeAll(() => {
    lab = Lab.open('mc');
    ns['hub'] = lab.ns('hub');
    const hosts: [string, string][] = [['s', SENDER], ['a', '192.0.2.2'], ['b', '192.0.2.3'], ['c', '192.0.2.4'], ['d', '192.0.2.5']];
    for (const [name, address] of hosts) {
      ns[name] = lab.ns(name);
      lab.link(ns[name]!, `${name}0`, ns['hub']!, `hub-${name}`);
      lab.addr(ns[name]!, `${name}0`, `${address}/24`);
      lab.ip(ns[name]!, 'route', 'add', '224.0.0.0/4', 'dev', `${name}0`);
    }
    lab.bridge(ns['hub']!, 'br0', hosts.map(([name]) => `hub-${name}`));
    // Count what reaches a with TTL 5 (the hop limit the sender asks for, minus no router: same link).
    lab.run(ns['a']!, 'iptables', '-A', 'INPUT', '-d', GROUP, '-p', 'udp', '-m', 'ttl', '--ttl-eq', '5', '-j', 'ACCEPT');
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('delivers to any-source and matching source-specific members only, honours the hop limit, and leaves on stop', async () => {
    const t0 = performance.now();
    const receive = (name: string, extra: Record<string, unknown> = {}): Agent =>
      lab.agent(ns[name]!, 'multicast.ts', { role: 'receive', policy: POLICY, group: GROUP, port: PORT, ...extra }, `receiver ${name}`);
    const a = receive('a', { interface: 'a0' }); // any source, on a named interface
    const b = receive('b', { source: OTHER_SOURCE }); // source-specific, another source: must get nothing
    const c = receive('c', { source: SENDER }); // source-specific, the sender: gets everything
    const local = receive('s'); // a member on the sender's own host: loopback is off, so it hears nothing
    for (const r of [a, b, c, local]) expect((await r.next('listening'))['stacks']).toEqual(['udp']);
    for (const n of ['a', 'b', 'c', 's']) expect(joined(n), `${n} is a member`).toBe(true);
    expect(joined('d'), 'd never joined').toBe(false);
    // b's kernel filter admits only the other source (/proc/net/mcfilter: group and source in network order).
    const hex = (a: string): string => `0x${a.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join('')}`;
    expect(lab.run(ns['b']!, 'cat', '/proc/net/mcfilter')).toMatch(new RegExp(`b0\\s+${hex(GROUP)}\\s+${hex(OTHER_SOURCE)}\\s+1`));

    const sender = lab.agent(ns['s']!, 'multicast.ts', { role: 'send', policy: POLICY, group: GROUP, port: PORT, hopLimit: 5, loopback: false }, 'sender');
    const ready = await sender.next('ready');
    expect(ready['remote']).toMatchObject({ address: GROUP, port: PORT });
    const count = 20;
    sender.command({ type: 'send', count });
    await sender.next('sent');
    // Everything sent arrives at the members that may hear it, in order of sending ("end" last).
    for (const r of [a, c]) {
      const texts: string[] = [];
      for (;;) {
        const e = await r.next('received');
        expect(e['from']).toBe(SENDER);
        texts.push(String(e['text']));
        if (e['text'] === 'end') break;
      }
      expect(texts.length).toBeGreaterThan(1);
      expect(texts.at(-1)).toBe('end');
    }
    // A member connection is receive-only (RFC 9623 §10): its send fails with INVALID_STATE.
    expect((await a.next('replyRefused'))['code']).toBe('ERR_TAPS_INVALID_STATE');
    // a and c have the last datagram; b (other source) and the sender's own host (loopback off) have none.
    for (const r of [b, local]) {
      r.command({ type: 'count' });
      expect((await r.next('count'))['received'], `${r.name} heard the group`).toBe(0);
    }
    // The hop limit is on the wire: every datagram reached a with TTL 5.
    const ttlCount = Number(/^\s*(\d+)\s+\d+\s+ACCEPT/m.exec(lab.run(ns['a']!, 'iptables', '-L', 'INPUT', '-v', '-x', '-n'))?.[1]);
    expect(ttlCount).toBe(count + 1);

    for (const r of [a, b, c, local]) r.command({ type: 'stop' });
    for (const r of [a, b, c, local]) await r.next('stopped');
    for (const n of ['a', 'b', 'c', 's']) expect(joined(n), `${n} left the group`).toBe(false);
    console.log(`multicast: ${count + 1} datagrams, 4 members, join → leave in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  it('joins and sends only with the tenant policy: a denied group is never joined and never sent to', async () => {
    const deny = `allow accept:udp://192.0.2.0/24:*`; // no bind of the group, no connect to it
    const r = lab.agent(ns['d']!, 'multicast.ts', { role: 'receive', policy: deny, group: GROUP, port: PORT }, 'denied receiver');
    const err = await r.next('error');
    expect(err['code']).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(joined('d')).toBe(false);
    const s = lab.agent(ns['d']!, 'multicast.ts', { role: 'send', policy: deny, group: GROUP, port: PORT }, 'denied sender');
    const sendErr = await s.next('error');
    expect(sendErr['code']).toBe('ERR_TAPS_POLICY_PROHIBITED');
    const candidates = sendErr['candidates'] as { driver: string; fate: string; address?: string }[];
    // Stacks that do not fit, or whose optional module is not installed, never reach the policy.
    expect(candidates.filter((c) => c.fate !== 'unsuitable' && c.fate !== 'unavailable')).toEqual([expect.objectContaining({ driver: 'udp', address: GROUP, fate: 'denied' })]);
  });
});
