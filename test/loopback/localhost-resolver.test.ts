/**
 * `localhost` when the host supplies its own resolver or `Network` (README,
 * docs/policy.md): the host's resolver is asked, like for any other name,
 * after the lookup grant, and each answer is decided as an address. A
 * sandbox may so give a guest its own loopback (here 127.0.0.2); an answer
 * outside the tenant's grants is denied and nothing is dialled. With the
 * system resolver, `localhost` is answered in-process (127.0.0.1, ::1).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DelegatingNetwork, SystemNetwork, type ResolvedAddress } from '../../src/network.js';
import { Host } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';

interface Counter { reached: number; server: Server; sockets: Set<Socket> }
async function counter(address: string, port: number): Promise<Counter> {
  const c: Counter = { reached: 0, server: createServer((s) => { c.reached++; c.sockets.add(s); s.on('error', () => {}); }), sockets: new Set() };
  await new Promise<void>((resolve, reject) => c.server.once('error', reject).listen(port, address, resolve));
  return c;
}

let system: Counter, sandbox: Counter, port: number;
beforeAll(async () => {
  system = await counter('127.0.0.1', 0);
  port = (system.server.address() as { port: number }).port;
  sandbox = await counter('127.0.0.2', port);
});
afterAll(async () => {
  for (const c of [system, sandbox]) {
    for (const s of c.sockets) s.destroy();
    await new Promise<void>((r) => c.server.close(() => r()));
  }
});

async function connectLocalhost(host: Host): Promise<string> {
  host.setPolicy('guest', `allow tcp://@loopback:${port}`);
  const scope = await host.tenant('guest');
  try {
    const conn = await new Preconnection({
      scope, remote: { hostName: 'localhost', port }, drivers: [tcpDriver],
      properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(),
    }).initiate();
    conn.abort();
    return conn.remote.address;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  } finally {
    host.close();
  }
}

describe('localhost with a host-supplied resolver or network', () => {
  it("the host's resolver is asked and its answer is used (a sandbox's own loopback)", async () => {
    const asked: string[] = [];
    const resolver = async (name: string, family: 4 | 6): Promise<ResolvedAddress[]> => {
      asked.push(`${name}/${family}`);
      return family === 4 ? [{ address: '127.0.0.2', family }] : [];
    };
    expect(await connectLocalhost(new Host({ resolver }))).toBe('127.0.0.2');
    expect(asked.sort()).toEqual(['localhost/4', 'localhost/6']);
    expect([system.reached, sandbox.reached]).toEqual([0, 1]);
    sandbox.reached = 0;
  });

  it("the host's Network is asked too", async () => {
    const asked: string[] = [];
    class Sandbox extends DelegatingNetwork {
      override async lookup(name: string, family: 4 | 6): Promise<ResolvedAddress[]> {
        asked.push(name);
        return family === 4 ? [{ address: '127.0.0.2', family }] : [];
      }
    }
    expect(await connectLocalhost(new Host({ network: new Sandbox(new SystemNetwork()) }))).toBe('127.0.0.2');
    expect(asked).toEqual(['localhost', 'localhost']);
    sandbox.reached = 0;
  });

  it('an answer outside the grants is denied: the policy decides each answer as an address', async () => {
    const resolver = async (_name: string, family: 4 | 6): Promise<ResolvedAddress[]> => (family === 4 ? [{ address: '10.0.0.1', family }] : []);
    expect(await connectLocalhost(new Host({ resolver }))).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect([system.reached, sandbox.reached]).toEqual([0, 0]);
  });

  it('with the system resolver, localhost is answered in-process as loopback', async () => {
    expect(await connectLocalhost(new Host())).toMatch(/^(127\.0\.0\.1|::1)$/);
    await new Promise((r) => setTimeout(r, 20));
    expect(sandbox.reached).toBe(0);
  });
});
