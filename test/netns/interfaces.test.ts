/**
 * Interface constraints between network namespaces (RFC 9622 §6.2.11,
 * §6.1.4): a client with two interfaces (two veth links) to one server
 * address, routed per source address as a multi-homed host is. `require` of
 * each interface uses it (the server, socat, answers the source address it
 * saw, and the server's per-link packet counters agree); `prohibit` of one
 * uses the other; a constraint no interface can meet fails before a single
 * packet leaves, naming the interface. The report shows the interface each
 * candidate used. Node (`localAddress`) and curl (`--interface`) on the same
 * client reach the service over the link they name, as the library does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, labUnavailable, type AgentEvent } from './helpers/lab.js';

const unavailable = labUnavailable({ commands: ['socat', 'iptables'] });
if (unavailable) console.warn(`SKIPPED network-namespace interface tests: ${unavailable}`);

const SERVICE = '203.0.113.10';
const C1 = '192.0.2.1';
const C2 = '198.51.100.1';

describe.skipIf(unavailable !== undefined)('interface constraints between namespaces', () => {
  let lab: Lab;
  let c: string;
  let s: string;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    lab = Lab.open('if');
    c = lab.ns('c');
    s = lab.ns('s');
    lab.link(c, 'c1', s, 's1');
    lab.link(c, 'c2', s, 's2');
    lab.addr(c, 'c1', `${C1}/24`);
    lab.addr(s, 's1', '192.0.2.2/24');
    lab.addr(c, 'c2', `${C2}/24`);
    lab.addr(s, 's2', '198.51.100.2/24');
    lab.addr(s, 'lo', `${SERVICE}/32`);
    // The client reaches the service over c1 by default, and over the link of whichever address it sends from.
    lab.ip(c, 'route', 'add', `${SERVICE}/32`, 'via', '192.0.2.2', 'dev', 'c1');
    lab.ip(c, 'route', 'add', `${SERVICE}/32`, 'via', '192.0.2.2', 'dev', 'c1', 'table', '101');
    lab.ip(c, 'route', 'add', `${SERVICE}/32`, 'via', '198.51.100.2', 'dev', 'c2', 'table', '102');
    lab.ip(c, 'rule', 'add', 'from', C1, 'table', '101');
    lab.ip(c, 'rule', 'add', 'from', C2, 'table', '102');
    for (const link of ['s1', 's2']) lab.run(s, 'iptables', '-A', 'INPUT', '-i', link, '-p', 'tcp', '--dport', '7000', '-j', 'ACCEPT');
    lab.run(c, 'iptables', '-A', 'OUTPUT', '-d', SERVICE, '-j', 'ACCEPT');
    server = spawn('ip', ['netns', 'exec', s, 'socat', 'TCP-LISTEN:7000,fork,reuseaddr', 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
    await lab.listening(s, 'tcp', 7000);
  });

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill();
      await exited;
    }
    await lab?.destroy();
  });

  /** Packets the server received on each link (the iptables counters of its INPUT rules). */
  const perLink = (): Record<string, number> => {
    const out = lab.run(s, 'iptables', '-L', 'INPUT', '-v', '-x', '-n');
    const counts: Record<string, number> = {};
    for (const m of out.matchAll(/^\s*(\d+)\s+\d+\s+ACCEPT\s+\S+\s+\S+\s+(s\d)\s/gm)) counts[m[2]!] = Number(m[1]);
    return counts;
  };
  const sentByClient = (): number => Number(/^\s*(\d+)\s+\d+\s+ACCEPT/m.exec(lab.run(c, 'iptables', '-L', 'OUTPUT', '-v', '-x', '-n'))?.[1]);

  const connect = async (args: Record<string, unknown>): Promise<AgentEvent> => {
    const agent = lab.agent(c, 'interface.ts', { server: SERVICE, port: 7000, ...args }, `client ${JSON.stringify(args)}`);
    const e = await Promise.race([agent.next('connected'), agent.next('error')]);
    await agent.exited; // its connection closed: no packet of it comes later
    return e;
  };
  const won = (e: AgentEvent): Record<string, unknown> => (e['candidates'] as Record<string, unknown>[]).find((x) => x['fate'] === 'won')!;

  it('require of each interface uses it: the server sees that interface\'s address', async () => {
    for (const [iface, address, link] of [['c1', C1, 's1'], ['c2', C2, 's2']] as const) {
      const before = perLink();
      const e = await connect({ properties: { interface: [['require', iface]] } });
      expect(e.type, JSON.stringify(e)).toBe('connected');
      expect(e['serverSaw']).toBe(address);
      expect(e['local']).toMatchObject({ address });
      expect(won(e)).toMatchObject({ interface: iface, localAddress: address });
      const after = perLink();
      const other = link === 's1' ? 's2' : 's1';
      expect(after[link]! - before[link]!).toBeGreaterThan(0);
      expect(after[other]! - before[other]!).toBe(0);
    }
  });

  it('prohibit of one interface uses the other, and a local endpoint on an interface binds there', async () => {
    const e = await connect({ properties: { interface: [['prohibit', 'c1']] } });
    expect(e['serverSaw']).toBe(C2);
    expect(won(e)).toMatchObject({ interface: 'c2' });
    const viaLocal = await connect({ local: { interface: 'c2' } });
    expect(viaLocal['serverSaw']).toBe(C2);
    const preferred = await connect({ properties: { interface: [['prefer', 'c2']] } });
    expect(preferred['serverSaw']).toBe(C2);
  });

  it('a constraint no interface can meet fails before any packet, naming the interface', async () => {
    const before = sentByClient();
    const e = await connect({ properties: { interface: [['require', 'eth9']] } });
    expect(e.type).toBe('error');
    expect(e['code']).toBe('ERR_TAPS_PATH_UNAVAILABLE');
    expect(e['message']).toMatch(/interface eth9 is required but this host has no such interface up/);
    const both = await connect({ properties: { interface: [['prohibit', 'c1'], ['prohibit', 'c2']] } });
    expect(both['code']).toBe('ERR_TAPS_PATH_UNAVAILABLE'); // only lo is left, and it does not reach the service
    expect(sentByClient() - before).toBe(0);
  });

  it('Node (localAddress) and curl (--interface) on the same client: each reaches the service over the link it names', async () => {
    const node = `const s = require('node:net').connect({ host: '${SERVICE}', port: 7000, localAddress: '${C2}' });
s.setEncoding('utf8').on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.error(e.message); process.exitCode = 1; });`;
    for (const [who, cmd, args] of [
      ['curl', 'curl', ['-sS', '--max-time', '5', '--interface', 'c2', `telnet://${SERVICE}:7000`]],
      ['node', process.execPath, ['-e', node]],
    ] as const) {
      const before = perLink();
      const out = lab.run(c, cmd, ...args);
      expect(out.trim(), who).toBe(C2);
      const after = perLink();
      expect(after['s2']! - before['s2']!, who).toBeGreaterThan(0);
      expect(after['s1']! - before['s1']!, who).toBe(0);
    }
  });

  it('a listener on an interface binds only that interface\'s addresses', async () => {
    const agent = lab.agent(c, 'interface.ts', { listen: true, local: { interface: 'c2', port: 7100 } }, 'listener on c2');
    const e = await Promise.race([agent.next('listening'), agent.next('error')]);
    expect(e['addresses']).toEqual([{ address: C2, port: 7100, family: 4 }]);
    await agent.stop();
    const none = lab.agent(c, 'interface.ts', { listen: true, local: { port: 7100 }, properties: { interface: [['require', 'wlan7']] } }, 'listener on wlan7');
    expect(await none.next('error')).toMatchObject({ code: 'ERR_TAPS_PATH_UNAVAILABLE' });
  });
});
