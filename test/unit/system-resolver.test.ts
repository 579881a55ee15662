/**
 * The system resolver (transports/system) and the fake resolver test helper.
 * Real lookups only of an /etc/hosts name (IPv4) and IP literals, so no DNS
 * query leaves the machine; error mapping is checked with
 * a stubbed `dns.lookup`.
 */
import dns from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isLocalhost, systemResolver } from '../../transports/system/resolver.js';
import { fakeResolver } from '../helpers/resolver.js';

const signal = () => new AbortController().signal;

/** The first IPv4 entry of /etc/hosts with a name other than localhost. */
function hostsEntry(): { name: string; address: string } | undefined {
  let text = '';
  try {
    text = readFileSync('/etc/hosts', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [address, ...names] = line.replace(/#.*/, '').trim().split(/\s+/);
    const name = names.find((n) => !isLocalhost(n));
    if (address !== undefined && isIP(address) === 4 && name !== undefined) return { name, address };
  }
  return undefined;
}

describe('systemResolver', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  // A real getaddrinfo of a name /etc/hosts answers (never a name only DNS knows); localhost is answered without one.
  const hosts = hostsEntry();
  it.runIf(hosts !== undefined)(`resolves a name from /etc/hosts with getaddrinfo (${hosts?.name ?? 'none here'})`, async () => {
    const answer = await systemResolver(hosts!.name, 4, signal());
    expect(answer).toContainEqual({ address: hosts!.address, family: 4 });
    expect(answer.every((a) => a.family === 4)).toBe(true);
  });

  it('answers localhost and names under it itself, per family, without a query (RFC 6761 §6.3)', async () => {
    const spy = vi.spyOn(dns, 'lookup');
    for (const name of ['localhost', 'LocalHost.', 'app.localhost', 'a.b.localhost.']) {
      expect(await systemResolver(name, 4, signal())).toEqual([{ address: '127.0.0.1', family: 4 }]);
      expect(await systemResolver(name, 6, signal())).toEqual([{ address: '::1', family: 6 }]);
    }
    expect(spy).not.toHaveBeenCalled();
    expect(isLocalhost('localhost.example')).toBe(false);
    expect(isLocalhost('notlocalhost')).toBe(false);
  });

  it('answers IP literals itself, and only for their own family', async () => {
    const spy = vi.spyOn(dns, 'lookup');
    expect(await systemResolver('127.0.0.1', 4, signal())).toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(await systemResolver('127.0.0.1', 6, signal())).toEqual([]);
    expect(await systemResolver('::1', 6, signal())).toEqual([{ address: '::1', family: 6 }]);
    expect(await systemResolver('[::1]', 6, signal())).toEqual([{ address: '::1', family: 6 }]);
    expect(await systemResolver('::1', 4, signal())).toEqual([]);
    expect(spy).not.toHaveBeenCalled();
  });

  it('an aborted signal rejects with ERR_TAPS_ABORTED before any lookup, and a late answer is ignored', async () => {
    const ac = new AbortController();
    const reason = new Error('stop');
    ac.abort(reason);
    await expect(systemResolver('localhost', 4, ac.signal)).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
    let finish: (v: { address: string; family: number }[]) => void = () => {};
    vi.spyOn(dns, 'lookup').mockImplementation(((_h: string, _o: unknown, cb: (err: null, a: unknown) => void) => (finish = (v) => cb(null, v))) as never);
    const ac2 = new AbortController();
    const p = systemResolver('example.test', 4, ac2.signal);
    ac2.abort(reason);
    await expect(p).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
    finish([{ address: '192.0.2.1', family: 4 }]);
  });

  it('ENODATA means "no address of this family": []; other failures are ERR_TAPS_RESOLUTION_FAILED with the cause', async () => {
    const fail = (code: string) => Object.assign(new Error(`getaddrinfo ${code} example.test`), { code });
    const spy = vi.spyOn(dns, 'lookup');
    const failOnce = (code: string) => spy.mockImplementationOnce(((_h: string, _o: unknown, cb: (err: Error) => void) => cb(fail(code))) as never);
    failOnce('ENODATA');
    expect(await systemResolver('example.test', 6, signal())).toEqual([]);
    failOnce('ENOTFOUND');
    await expect(systemResolver('example.test', 4, signal())).rejects.toMatchObject({ code: 'ERR_TAPS_RESOLUTION_FAILED', cause: { code: 'ENOTFOUND' } });
    failOnce('EAI_AGAIN');
    await expect(systemResolver('example.test', 4, signal())).rejects.toMatchObject({ code: 'ERR_TAPS_RESOLUTION_FAILED', cause: { code: 'EAI_AGAIN' } });
  });

  it('asks one family with all/verbatim, and keeps only that family', async () => {
    const answers = [
      { address: '2001:db8::1', family: 6 },
      { address: '192.0.2.1', family: 4 },
    ];
    const spy = vi.spyOn(dns, 'lookup').mockImplementation(((_h: string, _o: unknown, cb: (err: null, a: unknown) => void) => cb(null, answers)) as never);
    expect(await systemResolver('example.test', 6, signal())).toEqual([{ address: '2001:db8::1', family: 6 }]);
    expect(spy).toHaveBeenCalledWith('example.test', { family: 6, all: true, verbatim: true }, expect.any(Function));
  });

  it('rejects bad arguments synchronously', () => {
    expect(() => systemResolver('', 4, signal())).toThrow(TypeError);
    expect(() => systemResolver('localhost', 5 as 4, signal())).toThrow(RangeError);
    expect(() => systemResolver('localhost', 4, {} as AbortSignal)).toThrow(TypeError);
  });
});

describe('fakeResolver (test helper)', () => {
  it('answers per family, records queries, fails unknown names with ENOTFOUND', async () => {
    const r = fakeResolver({ 'a.test': { v4: ['127.0.0.1'], v6: ['::1'], ttl: 30 } });
    expect(await r('a.test', 6, signal())).toEqual([{ address: '::1', family: 6, ttl: 30 }]);
    expect(await r('a.test', 4, signal())).toEqual([{ address: '127.0.0.1', family: 4, ttl: 30 }]);
    await expect(r('b.test', 4, signal())).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(r.queries).toEqual([
      { host: 'a.test', family: 6 },
      { host: 'a.test', family: 4 },
      { host: 'b.test', family: 4 },
    ]);
  });

  it('delays per family with fake timers and cancels on abort', async () => {
    vi.useFakeTimers();
    try {
      const r = fakeResolver({ 'a.test': { v4: ['127.0.0.1'], delayMs: { 4: 50 }, error: { 6: 'EAI_AGAIN' } } });
      await expect(r('a.test', 6, signal())).rejects.toMatchObject({ code: 'EAI_AGAIN' });
      const p = r('a.test', 4, signal());
      await vi.advanceTimersByTimeAsync(50);
      expect(await p).toEqual([{ address: '127.0.0.1', family: 4 }]);
      const ac = new AbortController();
      const q = r('a.test', 4, ac.signal);
      ac.abort(new Error('x'));
      await expect(q).rejects.toThrow('x');
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
