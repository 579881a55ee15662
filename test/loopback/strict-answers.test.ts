/**
 * Strict answers (docs/policy.md, "Lookups"): a name whose answers hold any
 * address the tenant may not connect to is refused whole, per rule
 * (` strict` after an allow rule, `answers: 'strict'` on a JSON rule) or per
 * tenant (`answers strict`, `"answers": "strict"`). Against real loopback
 * listeners behind an injected resolver: `mixed.test` answers an allowed
 * address (127.0.0.1, granted by an address rule) and a forbidden one
 * (127.0.0.2 or ::1, granted by nothing); under strict answers neither
 * listener sees a connection, without it the allowed one does.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, parsePolicy, parseRule, type DecisionRecord, type PolicyJson } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { fakeResolver } from '../helpers/resolver.js';

interface Counter { reached: number; server: Server; sockets: Set<Socket> }
async function counter(address: string, port: number): Promise<Counter> {
  const c: Counter = { reached: 0, server: createServer((s) => { c.reached++; c.sockets.add(s); s.on('error', () => {}); }), sockets: new Set() };
  await new Promise<void>((resolve, reject) => c.server.once('error', reject).listen(port, address, resolve));
  return c;
}

let allowed: Counter, forbidden: Counter, forbidden6: Counter;
let port: number;
const records: DecisionRecord[] = [];
let host: Host;

beforeAll(async () => {
  allowed = await counter('127.0.0.1', 0);
  port = (allowed.server.address() as { port: number }).port;
  [forbidden, forbidden6] = await Promise.all([counter('127.0.0.2', port), counter('::1', port)]);
  host = new Host({
    resolver: fakeResolver({
      'mixed.test': { v4: ['127.0.0.1', '127.0.0.2'] },
      'mixed6.test': { v4: ['127.0.0.1'], v6: ['::1'] },
      'clean.test': { v4: ['127.0.0.1'] },
    }),
    onDecision: (r) => records.push(r),
  });
});

afterAll(async () => {
  host.close();
  for (const c of [allowed, forbidden, forbidden6]) {
    for (const s of c.sockets) s.destroy();
    await new Promise<void>((r) => c.server.close(() => r()));
  }
});

let n = 0;
async function connectAs(policy: string | PolicyJson, name: string): Promise<string> {
  const tenant = `strict${n++}`;
  host.setPolicy(tenant, policy);
  const scope = await host.tenant(tenant);
  const pre = new Preconnection({
    scope, remote: { hostName: name, port }, drivers: [tcpDriver],
    properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(),
  });
  try {
    const conn = await pre.initiate();
    conn.abort();
    return `connected to ${conn.remote.address}`;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('strict answers', () => {
  it('without them, the forbidden answer is dropped and the allowed one is dialled', async () => {
    expect(await connectAs(`allow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}`, 'mixed.test')).toBe('connected to 127.0.0.1');
    await settle();
    expect([allowed.reached, forbidden.reached]).toEqual([1, 0]);
    allowed.reached = 0;
  });

  it.each([
    ['a rule marked strict', `allow tcp://mixed.test:${'PORT'} strict\nallow tcp://127.0.0.1:${'PORT'}`],
    ['the tenant (answers strict)', `answers strict\nallow tcp://mixed.test:${'PORT'}\nallow tcp://127.0.0.1:${'PORT'}`],
  ])('%s: one forbidden answer refuses the name; no listener sees a connection', async (_label, text) => {
    const before = records.length;
    expect(await connectAs(text.replaceAll('PORT', String(port)), 'mixed.test')).toBe('ERR_TAPS_POLICY_PROHIBITED');
    await settle();
    expect([allowed.reached, forbidden.reached]).toEqual([0, 0]);
    // The forbidden answer's decision is recorded, as a connect by that name.
    expect(records.slice(before).find((r) => !r.allow)).toMatchObject({ use: 'connect', canonicalHost: 'mixed.test', address: '127.0.0.2', code: 'no-match' });
  });

  it('the JSON forms: answers on the policy and on a rule', async () => {
    const rule = { scheme: 'tcp', host: 'mixed.test', port, answers: 'strict' } as const;
    expect(await connectAs({ allow: [rule, `tcp://127.0.0.1:${port}`] }, 'mixed.test')).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(await connectAs({ answers: 'strict', allow: [`tcp://mixed.test:${port}`, `tcp://127.0.0.1:${port}`] }, 'mixed.test')).toBe('ERR_TAPS_POLICY_PROHIBITED');
    await settle();
    expect([allowed.reached, forbidden.reached]).toEqual([0, 0]);
  });

  it('a forbidden IPv6 answer refuses the IPv4 one too (both families are decided before either is used)', async () => {
    expect(await connectAs(`answers strict\nallow tcp://mixed6.test:${port}\nallow tcp://127.0.0.1:${port}`, 'mixed6.test')).toBe('ERR_TAPS_POLICY_PROHIBITED');
    await settle();
    expect([allowed.reached, forbidden6.reached]).toEqual([0, 0]);
  });

  it('a name whose every answer is allowed connects as usual; strict on another rule does not apply', async () => {
    expect(await connectAs(`answers strict\nallow tcp://clean.test:${port}\nallow tcp://127.0.0.1:${port}`, 'clean.test')).toBe('connected to 127.0.0.1');
    expect(await connectAs(`allow tcp://other.test:${port} strict\nallow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}`, 'mixed.test')).toBe('connected to 127.0.0.1');
    await settle();
    expect([allowed.reached, forbidden.reached]).toEqual([2, 0]);
    allowed.reached = 0;
  });

  it('the guard refuses the name to every caller, lookup included', async () => {
    host.setPolicy('strict-guard', `allow tcp://mixed.test:${port} strict\nallow tcp://127.0.0.1:${port}`);
    const scope = await host.tenant('strict-guard');
    const signal = new AbortController().signal;
    await expect(scope.guard.lookup('mixed.test', 4, 'tcp', signal)).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED', decision: { allow: false, reason: expect.stringMatching(/^strict answers: mixed\.test resolved to 127\.0\.0\.2/) } });
    const name = await scope.guard.authorizeLookup('tcp', 'mixed.test', port);
    await expect(scope.guard.resolve(name, 6, signal)).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    await expect(scope.guard.resolve(name, 4, signal)).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
  });
});

describe('strict answers in the grammar', () => {
  it('parses on allow rules naming hosts by name, and is cited in the rule text', () => {
    expect(parseRule('tcp://*.example.com:443 strict', 'allow')).toMatchObject({ strict: true, text: 'tcp://*.example.com:443 strict' });
    expect(parseRule('tcp://*.example.com:443', 'allow')).toMatchObject({ strict: false, text: 'tcp://*.example.com:443' });
    expect(parseRule({ scheme: 'https', host: 'api.example.com', answers: 'strict' }, 'allow')).toMatchObject({ strict: true, text: 'https://api.example.com strict' });
    expect(parsePolicy('answers strict\nallow tcp://a.example:1')).toMatchObject({ answers: 'strict' });
    expect(parsePolicy('allow tcp://a.example:1')).toMatchObject({ answers: 'each' });
  });

  it('refuses it where it means nothing, and anything misspelt', () => {
    expect(() => parseRule('tcp://*.example.com:443 strict', 'deny')).toThrow(/allow rules only/);
    expect(() => parseRule('tcp://10.0.0.0/8:443 strict', 'allow')).toThrow(/name hosts by name/);
    expect(() => parseRule('tcp://a.example:443 strictly', 'allow')).toThrow(/whitespace/);
    expect(() => parseRule({ scheme: 'tcp', host: 'a.example', port: '443 strict' }, 'allow')).toThrow(/whitespace/);
    expect(() => parseRule({ scheme: 'tcp', host: 'a.example', port: 1, answers: 'yes' as 'strict' }, 'allow')).toThrow(/answers must be/);
    expect(() => parsePolicy('answers strict\nanswers each')).toThrow(/set twice/);
    expect(() => parsePolicy('answers all')).toThrow(/"each" or "strict"/);
    expect(() => parsePolicy({ answers: 'all' as 'strict' })).toThrow(/"each" or "strict"/);
  });
});
