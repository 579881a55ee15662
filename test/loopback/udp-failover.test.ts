/**
 * UDP to a name with two addresses, over real loopback sockets: the race picks ::1 first (a connected UDP
 * socket is ready at once), where nobody listens; the kernel's ICMP port unreachable (ECONNREFUSED on the
 * connected socket) before any datagram arrived moves the connection to 127.0.0.1, where an echo answers
 * the datagram sent before the move and the ones after. The report has the move as a new candidate. Once
 * a datagram has arrived an ICMP error stays a soft error; an address the policy denied is never a place
 * to move to (nothing is sent there).
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { TapsError } from '../../src/errors.js';
import { createScope } from '../../src/policy/chokepoint.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { udpDriver } from '../../transports/udp/index.js';
import { fakeDriver } from '../helpers/fake-driver.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { fakeResolver, type FakeAnswer } from '../helpers/resolver.js';

const NAME = `udp-failover-${process.pid}.test`;
const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A UDP echo on `address`, port 0 or `port`; it counts what it got. */
async function echo(address: string, port = 0): Promise<{ socket: Socket; port: number; got: string[] }> {
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const got: string[] = [];
  socket.on('message', (m, from) => {
    got.push(m.toString());
    socket.send(m, from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => socket.once('error', reject).bind(port, address, () => resolve()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        try {
          socket.close(() => r());
        } catch {
          r(); // the test closed it already
        }
      }),
  );
  return { socket, port: socket.address().port, got };
}

/** Whether nothing is bound on UDP `address`:`port` now. */
async function udpClosed(address: string, port: number): Promise<boolean> {
  const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => s.once('error', reject).bind(port, address, () => resolve()));
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((r) => s.close(() => r())).catch(() => {});
  }
}

async function connect(port: number, policy: NetworkPolicy = allow, answer: Partial<FakeAnswer> = {}, clock?: ManualClock): Promise<Connection> {
  const resolver = fakeResolver({ [NAME]: { v6: ['::1'], v4: ['127.0.0.1'], ...answer } });
  const conn = await new Preconnection({
    scope: createScope({ tenant: 'udp-failover', policy, resolver }),
    remote: { hostName: NAME, port },
    properties: TransportProperties.unreliableDatagram(),
    security: SecurityParameters.disabled(),
    drivers: [udpDriver],
    ...(clock ? { clock } : {}),
  }).initiate({ signal: AbortSignal.timeout(5000) });
  cleanups.push(() => conn.abort());
  return conn;
}

/** The next `softError` of a connection. */
const softError = (conn: Connection): Promise<TapsError> => new Promise((resolve) => conn.once('softError', resolve));

const text = async (conn: Connection): Promise<string> => new TextDecoder().decode((await conn.receive({ signal: AbortSignal.timeout(5000) })).data);

describe('UDP to a name: an ICMP unreachable before any datagram moves the connection to the next address', () => {
  it('::1 refuses (no socket there), 127.0.0.1 echoes: the datagrams get answered, and the report shows the move', async () => {
    const v4 = await echo('127.0.0.1');
    expect(await udpClosed('::1', v4.port)).toBe(true);
    const conn = await connect(v4.port);
    expect(conn.remote.address).toBe('::1'); // the race's first pick
    const t0 = performance.now();
    await conn.send('first');
    expect(await text(conn)).toBe('first'); // sent towards ::1, answered from 127.0.0.1 after the move
    console.log(`moved and answered after ${(performance.now() - t0).toFixed(1)} ms`);
    await conn.send('second');
    expect(await text(conn)).toBe('second');
    expect(conn.remote.address).toBe('127.0.0.1');
    expect(v4.got).toEqual(['first', 'second']);

    const { report } = conn;
    const v6 = report.candidates.find((c) => c.address === '::1')!;
    const moved = report.candidates.filter((c) => c.address === '127.0.0.1');
    // The one the race never started, and the new candidate it became.
    expect(moved.map((c) => c.fate)).toEqual(['skipped', 'won']);
    expect(v6.fate).toBe('failed');
    expect(v6.reason).toMatch(new RegExp(`unreachable before any datagram arrived \\(ECONNREFUSED\\): moved to ${moved[1]!.id}`));
    expect(moved[1]!.reason).toMatch(new RegExp(`${v6.id} was unreachable \\(ECONNREFUSED\\)`));
    expect(report.winner).toBe(moved[1]!.id);
    expect(new Set(report.candidates.map((c) => c.id)).size).toBe(report.candidates.length);
  });

  it('once a datagram has arrived, an ICMP error is a soft error and the connection stays', async () => {
    const v6 = await echo('::1');
    expect(await udpClosed('127.0.0.1', v6.port)).toBe(true);
    const conn = await connect(v6.port);
    await conn.send('hello');
    expect(await text(conn)).toBe('hello');
    await new Promise<void>((r) => v6.socket.close(() => r()));
    const soft = softError(conn);
    await conn.send('anyone?');
    const err = await soft;
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(conn.remote.address).toBe('::1');
    expect(conn.report.candidates.filter((c) => c.fate === 'won').map((c) => c.address)).toEqual(['::1']);
  });

  it('an address the policy denied is never moved to: the app gets the soft error, and nothing reaches it', async () => {
    const v4 = await echo('127.0.0.1');
    const noV4: NetworkPolicy = { decide: (q) => (q.address === '127.0.0.1' ? { allow: false, code: 'no-match', reason: 'not this one', rule: 'deny v4' } : { allow: true, rule: 'ok' }) };
    const conn = await connect(v4.port, noV4);
    const soft = softError(conn);
    await conn.send('hello');
    const err = await soft;
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(conn.remote.address).toBe('::1');
    expect(conn.report.candidates.find((c) => c.address === '127.0.0.1')).toMatchObject({ fate: 'denied' });
    // Give a stray datagram time to arrive if one had been sent (none may be).
    await conn.send('again');
    await softError(conn);
    expect(v4.got).toEqual([]);
  });
});

describe('UDP to a name: the A answer comes after the IPv6 attempt was ready', () => {
  // The manual clock never moves here, so the resolution delay cannot pass before the A answer (10 ms of
  // real time later): the outcome does not depend on how loaded the machine is.
  it('AAAA first, A 10 ms later: the late address is checked and kept as a fallback, and the move reaches it', async () => {
    const v4 = await echo('127.0.0.1');
    expect(await udpClosed('::1', v4.port)).toBe(true);
    const seen: string[] = [];
    const policy: NetworkPolicy = { decide: (q) => (seen.push(`${q.use} ${q.address}`), { allow: true, rule: 'test' }) };
    const conn = await connect(v4.port, policy, { delayMs: { 4: 10 } }, new ManualClock());
    expect(conn.remote.address).toBe('::1');
    expect(conn.report.resolutions.find((r) => r.family === 4)).toMatchObject({ addresses: ['127.0.0.1'] });
    expect(seen).toContain('connect 127.0.0.1'); // decided by the policy like any candidate
    await conn.send('first');
    expect(await text(conn)).toBe('first');
    expect(conn.remote.address).toBe('127.0.0.1');
    expect(v4.got).toEqual(['first']);
    const moved = conn.report.candidates.filter((c) => c.address === '127.0.0.1');
    expect(moved.map((c) => c.fate)).toEqual(['skipped', 'won']);
    expect(conn.report.candidates.find((c) => c.address === '::1')).toMatchObject({ fate: 'failed' });
  });

  it('a late A address the policy denies is recorded denied and never moved to', async () => {
    const v4 = await echo('127.0.0.1');
    const noV4: NetworkPolicy = { decide: (q) => (q.address === '127.0.0.1' ? { allow: false, code: 'no-match', reason: 'not this one', rule: 'deny v4' } : { allow: true, rule: 'ok' }) };
    const conn = await connect(v4.port, noV4, { delayMs: { 4: 10 } }, new ManualClock());
    expect(conn.report.candidates.find((c) => c.address === '127.0.0.1')).toMatchObject({ fate: 'denied' });
    const soft = softError(conn);
    await conn.send('hello');
    expect((await soft).message).toMatch(/ECONNREFUSED/);
    expect(conn.remote.address).toBe('::1');
    expect(v4.got).toEqual([]);
  });

  it('an A answer later than the resolution delay is cancelled: the IPv6 winner is handed over without it', async () => {
    const v4 = await echo('127.0.0.1');
    const clock = new ManualClock();
    let conn: Connection | undefined;
    const p = connect(v4.port, allow, { delayMs: { 4: 60_000 } }, clock).then((c) => (conn = c));
    // Manual time moves in 10 ms steps until the winner is handed over (the resolution delay is 50 ms).
    for (let i = 0; i < 500 && conn === undefined; i++) {
      await clock.advance(10);
      await new Promise((r) => setTimeout(r, 2));
    }
    await p;
    expect(conn!.remote.address).toBe('::1');
    expect(conn!.report.resolutions.find((r) => r.family === 4)).toMatchObject({ error: expect.stringMatching(/cancelled/) });
    expect(conn!.report.candidates.filter((c) => c.address === '127.0.0.1')).toEqual([]);
    const soft = softError(conn!);
    await conn!.send('hello');
    expect((await soft).message).toMatch(/ECONNREFUSED/);
    expect(v4.got).toEqual([]);
  });
});

describe('UDP to a name: the UDP winner wins while another stack is still racing and the A answer is out', () => {
  // A scripted stack that never answers races beside UDP (simultaneous racing: both start on the AAAA answer),
  // so the UDP win has a loser to abort. The manual clock never moves: the resolution delay cannot pass.
  const racing = (clock: ManualClock, lookups: { family: 4 | 6; signal: AbortSignal }[], delay4: number) => {
    const hang = fakeDriver({ id: 'hang', protocol: 'udp', ipProtocol: 'udp', framing: 'message', capabilities: udpDriver.capabilities, clock, behaviour: () => 'hang' });
    const fake = fakeResolver({ [NAME]: { v6: ['::1'], v4: ['127.0.0.1'], delayMs: { 4: delay4 } } });
    const resolver = (host: string, family: 4 | 6, signal: AbortSignal) => (lookups.push({ family, signal }), fake(host, family, signal));
    return {
      hang,
      pre: (port: number) =>
        new Preconnection({
          scope: createScope({ tenant: 'udp-failover', policy: allow, resolver }),
          remote: { hostName: NAME, port },
          properties: TransportProperties.unreliableDatagram(),
          security: SecurityParameters.disabled(),
          drivers: [udpDriver, hang],
          racing: { mode: 'simultaneous' },
          clock,
        }),
    };
  };

  it('the win aborts the losing attempt only: the late A address is still checked, kept, and moved to', async () => {
    const v4 = await echo('127.0.0.1');
    expect(await udpClosed('::1', v4.port)).toBe(true);
    const lookups: { family: 4 | 6; signal: AbortSignal }[] = [];
    const { hang, pre } = racing(new ManualClock(), lookups, 10);
    const conn = await pre(v4.port).initiate({ signal: AbortSignal.timeout(5000) });
    cleanups.push(() => conn.abort());
    expect(conn.report.candidates.find((c) => c.fate === 'won')).toMatchObject({ driver: 'udp', address: '::1' });
    expect(hang.attempts.map((a) => `${a.address} ${a.aborted}`)).toEqual(['::1 true']); // the loser was aborted
    expect(lookups.find((l) => l.family === 4)?.signal.aborted).toBe(false); // the lookup was not
    expect(conn.report.resolutions.find((r) => r.family === 4)).toMatchObject({ addresses: ['127.0.0.1'] });
    await conn.send('first');
    expect(await text(conn)).toBe('first');
    expect(conn.remote.address).toBe('127.0.0.1');
    expect(v4.got).toEqual(['first']);
  });

  it('the caller aborting the selection while the winner waits for the A answer cancels the lookup and releases the winner', async () => {
    const v4 = await echo('127.0.0.1');
    const lookups: { family: 4 | 6; signal: AbortSignal }[] = [];
    const { hang, pre } = racing(new ManualClock(), lookups, 60_000);
    const caller = new AbortController();
    const p = pre(v4.port).initiate({ signal: caller.signal });
    // Until the winner waits for the A answer: the hanging loser was aborted by the win.
    for (let i = 0; i < 500 && !(hang.attempts[0]?.aborted ?? false); i++) await new Promise((r) => setTimeout(r, 2));
    expect(hang.attempts[0]?.aborted).toBe(true);
    caller.abort(new Error('the caller gave up'));
    const err = (await p.catch((e: unknown) => e)) as TapsError;
    expect(err.code).toBe('ERR_TAPS_ABORTED');
    expect(lookups.find((l) => l.family === 4)?.signal.aborted).toBe(true);
    expect(v4.got).toEqual([]);
  });
});
