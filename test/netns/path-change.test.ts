/**
 * Path changes between network namespaces (RFC 9622 §8.3.2): a client with a
 * TCP and a UDP connection to echo servers (socat) and a listener on its own
 * address. Taking the client's interface down mid-connection gives each
 * connection a `pathChange` (unavailable) and then a `softError`
 * (ERR_TAPS_PATH_UNAVAILABLE), and the listener a `pathChange`; bringing it back
 * gives `pathChange` (available) and the same connections carry data again:
 * nothing was closed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, labUnavailable, type AgentEvent } from './helpers/lab.js';

const unavailable = labUnavailable({ commands: ['socat'] });
if (unavailable) console.warn(`SKIPPED network-namespace path-change tests: ${unavailable}`);

const CLIENT = '192.0.2.1';
const SERVER = '192.0.2.2';

describe.skipIf(unavailable !== undefined)('path changes between namespaces', () => {
  let lab: Lab;
  let c: string;
  let s: string;
  const servers: ChildProcess[] = [];

  beforeAll(async () => {
    lab = Lab.open('pc');
    c = lab.ns('c');
    s = lab.ns('s');
    lab.link(c, 'c0', s, 's0');
    lab.addr(c, 'c0', `${CLIENT}/24`);
    lab.addr(s, 's0', `${SERVER}/24`);
    for (const args of [['TCP-LISTEN:7000,fork,reuseaddr', 'PIPE'], ['UDP-RECVFROM:7001,fork', 'PIPE']]) {
      servers.push(spawn('ip', ['netns', 'exec', s, 'socat', ...args], { stdio: 'ignore' }));
    }
    await lab.listening(s, 'tcp', 7000);
    await lab.listening(s, 'udp', 7001);
  });

  afterAll(async () => {
    for (const p of servers) p.kill();
    await Promise.all(servers.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    await lab?.destroy();
  });

  it('reports the interface going down and coming back on every connection and the listener, and closes nothing', async () => {
    const agent = lab.agent(c, 'path-watch.ts', { server: SERVER, tcpPort: 7000, udpPort: 7001, local: CLIENT }, 'client');
    const ready = await agent.next('ready');
    expect(ready['watching']).toBe(3); // two connections and one listener address, one timer
    agent.command({ type: 'echo' });
    expect(await agent.next('echoed')).toMatchObject({ udp: 'ping' });

    const t0 = performance.now();
    lab.ip(c, 'link', 'set', 'c0', 'down');
    const down: AgentEvent[] = [];
    for (let i = 0; i < 3; i++) down.push(await agent.next('pathChange'));
    const soft = [await agent.next('softError'), await agent.next('softError')];
    console.log(`path change: interface down reported after ${(performance.now() - t0).toFixed(0)} ms (monitor interval 100 ms)`);
    expect(down.map((e) => e['name']).sort()).toEqual(['listener', 'tcp', 'udp']);
    for (const e of down) expect(e).toMatchObject({ address: CLIENT, interface: 'c0', available: false });
    expect(soft.map((e) => e['name']).sort()).toEqual(['tcp', 'udp']);
    for (const e of soft) expect(e['code']).toBe('ERR_TAPS_PATH_UNAVAILABLE');
    // Each connection heard pathChange before its softError.
    for (const name of ['tcp', 'udp']) {
      const order = agent.events.filter((e) => e['name'] === name && (e.type === 'pathChange' || e.type === 'softError')).map((e) => e.type);
      expect(order).toEqual(['pathChange', 'softError']);
    }

    lab.ip(c, 'link', 'set', 'c0', 'up');
    const up: AgentEvent[] = [];
    for (let i = 0; i < 3; i++) up.push(await agent.next('pathChange'));
    for (const e of up) expect(e).toMatchObject({ address: CLIENT, interface: 'c0', available: true });
    expect(agent.events.some((e) => e.type === 'closed')).toBe(false);
    agent.command({ type: 'echo' });
    expect(await agent.next('echoed')).toMatchObject({ udp: 'ping' });
    agent.command({ type: 'exit' });
    expect((await agent.next('done'))['watching']).toBe(0); // closed and stopped: nothing watched, no timer
  });
});
