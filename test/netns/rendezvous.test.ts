/**
 * Rendezvous through two NATs (RFC 9622 §7.3): peers a and b, each in its own
 * network behind a Linux NAT (`iptables -t nat … MASQUERADE`, unsolicited
 * inbound UDP dropped, as home routers do), and a "public" network between the
 * NATs with Debian's coturn as the STUN server (RFC 8489), started here. Each
 * peer resolves its candidates (host + server-reflexive from coturn), gets the
 * other's, and rendezvous: the checks from both sides open both NATs and the
 * peers reach each other directly (the chosen pair is the other NAT's public
 * address, not coturn's). With a policy that denies the peer's addresses, the
 * rendezvous fails with a denial and no datagram from that peer crosses its NAT.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, labUnavailable, type Agent, type AgentEvent } from './helpers/lab.js';

const unavailable = labUnavailable({ commands: ['turnserver', 'iptables'] });
if (unavailable) console.warn(`SKIPPED network-namespace rendezvous tests: ${unavailable}`);

const STUN = '203.0.113.3';
const NAT_A = '203.0.113.1';
const NAT_B = '203.0.113.2';
const ALLOW = `allow bind:udp://0.0.0.0:*\nallow udp://${STUN}:3478\nallow udp://203.0.113.0/24:*\nallow udp://198.18.0.0/15:*`;

describe.skipIf(unavailable !== undefined)('rendezvous through two NATs with a STUN server', () => {
  let lab: Lab;
  const ns: Record<string, string> = {};
  let coturn: ChildProcess | undefined;
  let dir: string;

  beforeAll(async () => {
    lab = Lab.open('rv');
    for (const n of ['pub', 'na', 'nb', 'a', 'b']) ns[n] = lab.ns(n);
    // The public network: a bridge with the STUN server's address and both NATs' outside links.
    lab.link(ns['na']!, 'out', ns['pub']!, 'p-na');
    lab.link(ns['nb']!, 'out', ns['pub']!, 'p-nb');
    lab.bridge(ns['pub']!, 'br0', ['p-na', 'p-nb']);
    lab.addr(ns['pub']!, 'br0', `${STUN}/24`);
    for (const [side, outside, lan] of [['a', NAT_A, '198.18.1'], ['b', NAT_B, '198.18.2']] as const) {
      const nat = ns[`n${side}`]!;
      lab.addr(nat, 'out', `${outside}/24`);
      lab.link(ns[side]!, `${side}0`, nat, 'in');
      lab.addr(nat, 'in', `${lan}.1/24`);
      lab.addr(ns[side]!, `${side}0`, `${lan}.2/24`);
      lab.ip(ns[side]!, 'route', 'add', 'default', 'via', `${lan}.1`);
      lab.run(nat, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      lab.run(nat, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'out', '-j', 'MASQUERADE');
      // Unsolicited UDP to the NAT itself is dropped before conntrack keeps it (as a home router does),
      // so an early check from the other peer cannot take the port the NAT maps this peer to.
      lab.run(nat, 'iptables', '-A', 'INPUT', '-i', 'out', '-p', 'udp', '-j', 'DROP');
      // Count what is forwarded in from the other NAT: the peer's datagrams that reached this side.
      lab.run(nat, 'iptables', '-A', 'FORWARD', '-i', 'out', '-s', side === 'a' ? NAT_B : NAT_A, '-p', 'udp', '-j', 'ACCEPT');
    }
    dir = mkdtempSync(join(tmpdir(), 'tapspath-coturn-'));
    coturn = spawn('ip', [
      'netns', 'exec', ns['pub']!, 'turnserver', '-n', `--listening-ip=${STUN}`, '--listening-port=3478', '--stun-only', '--no-cli',
      '--no-tls', '--no-dtls', `--userdb=${join(dir, 'turndb')}`, `--pidfile=${join(dir, 'pid')}`, '--log-file=stdout', '--simple-log',
    ], { stdio: 'ignore' });
    await lab.listening(ns['pub']!, 'udp', 3478);
  });

  afterAll(async () => {
    if (coturn && coturn.exitCode === null && coturn.signalCode === null) {
      const exited = new Promise((r) => coturn!.once('exit', r));
      coturn.kill();
      await exited;
    }
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const forwardedFromPeer = (side: 'a' | 'b'): number => {
    const out = lab.run(ns[`n${side}`]!, 'iptables', '-L', 'FORWARD', '-v', '-x', '-n');
    return Number(/^\s*(\d+)\s+\d+\s+ACCEPT\s+(?:17|udp)\b/m.exec(out)?.[1] ?? NaN);
  };

  const peers = async (policyA: string, policyB: string, timeout: number): Promise<[AgentEvent, AgentEvent, AgentEvent, AgentEvent, Agent, Agent]> => {
    const a = lab.agent(ns['a']!, 'rendezvous.ts', { name: 'a', policy: policyA, stun: `${STUN}:3478`, timeout }, 'peer a');
    const b = lab.agent(ns['b']!, 'rendezvous.ts', { name: 'b', policy: policyB, stun: `${STUN}:3478`, timeout }, 'peer b');
    const [ca, cb] = await Promise.all([a.next('candidates'), b.next('candidates')]);
    a.command({ type: 'peer', candidates: cb['candidates'] });
    b.command({ type: 'peer', candidates: ca['candidates'] });
    const settled = (agent: typeof a): Promise<AgentEvent> => Promise.race([agent.next('done', 30_000), agent.next('error', 30_000)]);
    const [ra, rb] = await Promise.all([settled(a), settled(b)]);
    return [ca, cb, ra, rb, a, b];
  };

  it('the peers find each other directly through both NATs and exchange datagrams', async () => {
    const [ca, cb, ra, rb, a, b] = await peers(ALLOW, ALLOW, 10_000);
    // Each side's candidates: its host address and the server-reflexive address coturn saw (its NAT's).
    const addrs = (e: AgentEvent): string[] => (e['candidates'] as { ipAddress: string }[]).map((c) => c.ipAddress);
    expect(addrs(ca)).toEqual(['198.18.1.2', NAT_A]);
    expect(addrs(cb)).toEqual(['198.18.2.2', NAT_B]);
    expect(ra.type, JSON.stringify(ra)).toBe('done');
    expect(rb.type, JSON.stringify(rb)).toBe('done');
    expect([ra['event'], rb['event']]).toEqual([true, true]); // rendezvousDone was emitted
    // Directly: a talks to b's NAT and b to a's NAT (never through coturn, which relays nothing).
    expect(ra['remote']).toMatchObject({ address: NAT_B });
    expect(rb['remote']).toMatchObject({ address: NAT_A });
    // Every pair is in the report: the host-address pair (unreachable across the NATs) did not win.
    const pairs = (e: AgentEvent): { address: string; fate: string }[] => (e['candidates'] as { address: string; fate: string; stack: string[] }[]).filter((c) => !c.stack.includes('stun'));
    expect(pairs(ra).map((c) => [c.address, c.fate]).sort()).toEqual([['198.18.2.2', 'cancelled'], [NAT_B, 'won']]);
    const stun = (ra['candidates'] as { stack: string[]; fate: string; address: string }[]).find((c) => c.stack.includes('stun'));
    expect(stun).toMatchObject({ fate: 'won', address: STUN });
    console.log(`rendezvous through two NATs: a ${Number(ra['ms']).toFixed(0)} ms, b ${Number(rb['ms']).toFixed(0)} ms`);
    // Application data flows both ways on the chosen pair.
    expect(await a.next('received')).toMatchObject({ text: 'hello from b', from: { address: NAT_B } });
    expect(await b.next('received')).toMatchObject({ text: 'hello from a', from: { address: NAT_A } });
    await Promise.all([a.stop(), b.stop()]);
    // Their datagrams crossed the NATs: forwarded into each network from the other NAT.
    expect(forwardedFromPeer('a')).toBeGreaterThan(0);
    expect(forwardedFromPeer('b')).toBeGreaterThan(0);
  });

  it('with the peer denied by policy: fails with a denial, and not one datagram of that peer crosses its NAT', async () => {
    const before = forwardedFromPeer('b');
    const denyB = `allow bind:udp://0.0.0.0:*\nallow udp://${STUN}:3478\ndeny udp://${NAT_B}:*\ndeny udp://198.18.2.0/24:*\nallow udp://203.0.113.0/24:*`;
    const [ca, , ra, rb, a, b] = await peers(denyB, ALLOW, 2_000);
    await Promise.all([a.stop(), b.stop()]);
    expect((ca['candidates'] as { ipAddress: string }[]).map((c) => c.ipAddress)).toContain(NAT_A); // a did reach coturn
    expect(ra.type).toBe('error');
    expect(ra['code']).toBe('ERR_TAPS_POLICY_PROHIBITED');
    const denied = (ra['candidates'] as { fate: string; address: string; decision?: { code: string } }[]).filter((c) => c.fate === 'denied');
    expect(denied.map((c) => c.address).sort()).toEqual(['198.18.2.2', NAT_B]);
    expect(denied.every((c) => c.decision?.code === 'denied')).toBe(true);
    // b tried (its checks went out) and got nowhere; nothing from a was ever forwarded into b's network.
    expect(rb.type).toBe('error');
    expect(forwardedFromPeer('b') - before).toBe(0);
  });
});
