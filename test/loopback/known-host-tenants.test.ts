/**
 * The canonical-host memo the policy's hot callers share (every tenant of a process), attacked from a
 * tenant over real loopback sockets: spellings of one name that differ in case, a trailing dot or
 * Unicode width, names such as `__proto__`, and enough distinct names to evict every entry. One tenant
 * may reach the listener by name; the other must not, whatever the first has taught the memo.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, type TenantScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { fakeResolver } from '../helpers/resolver.js';

const PREFIX = `khm-${process.pid}`;
const NAME = 'svc.test';
// One name in every spelling a guest might hope the memo keeps apart from, or merges with, another's.
const SPELLINGS = [NAME, 'SVC.TEST', 'svc.test.', 'Svc.Test.', '\uff53\uff56\uff43.test', 'svc\u3002test'];

let server: Server;
let port = 0;
let reached = 0;
const sockets = new Set<Socket>();
let host: Host;
let allowed: TenantScope;
let other: TenantScope;

beforeAll(async () => {
  server = createServer((s) => {
    reached++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  host = new Host({ resolver: fakeResolver({ [NAME]: { v4: ['127.0.0.1'] } }) });
  // A name grant covers public addresses only: the loopback address the name resolves to needs its own.
  host.setPolicy(`${PREFIX}-a`, `allow tcp://${NAME}:${port}\nallow tcp://@loopback:${port}`);
  // The other may reach the listener's address, not the name: only the name's decision stands between them.
  host.setPolicy(`${PREFIX}-b`, `allow tcp://other.test:${port}\nallow tcp://@loopback:${port}`);
  allowed = await host.tenant(`${PREFIX}-a`);
  other = await host.tenant(`${PREFIX}-b`);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  host.close();
});

/** initiate() from `scope` to `hostName`: 'reached' with the connection closed again, or the error's code. */
async function attempt(scope: TenantScope, hostName: string): Promise<string> {
  try {
    const conn = await new Preconnection({ scope, remote: { hostName, port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver] }).initiate();
    await conn.close();
    return 'reached';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

describe('the shared canonical-host memo, two tenants', () => {
  it('every spelling reaches the listener for the tenant allowed the name and none for the other, before and after the memo is emptied', async () => {
    for (let round = 0; round < 2; round++) {
      for (const s of SPELLINGS) {
        const before = reached;
        expect(await attempt(allowed, s), `${s} (allowed tenant, round ${round})`).toBe('reached');
        expect(reached).toBe(before + 1);
        expect(await attempt(other, s), `${s} (other tenant, round ${round})`).toBe('ERR_TAPS_POLICY_PROHIBITED');
        expect(reached).toBe(before + 1);
      }
      // Names the memo has never seen, more than it keeps: each is looked up (denied) and remembered, evicting the rest.
      for (let i = 0; i < 300; i++) expect(await attempt(other, `n${i}.${PREFIX}.test`)).toBe('ERR_TAPS_POLICY_PROHIBITED');
    }
  });

  it('names that are Object.prototype members are names like any other: denied for both, nothing reached', async () => {
    const before = reached;
    for (const s of ['__proto__', 'constructor', 'hasOwnProperty', '__proto__.test', 'toString.svc.test']) {
      expect(await attempt(other, s), s).not.toBe('reached');
      expect(await attempt(allowed, s), s).not.toBe('reached');
    }
    // The allowed tenant's grant still means what it meant, and the other's address grant what it meant.
    expect(await attempt(allowed, NAME)).toBe('reached');
    expect(await attempt(other, '127.0.0.1')).toBe('reached');
    expect(reached).toBe(before + 2);
  });
});
