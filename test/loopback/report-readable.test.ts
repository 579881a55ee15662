/**
 * Reports a person can read, from a real selection with the default drivers to a refused loopback port:
 * stacks dropped for one reason share one line, every stack has its own label, a stack whose optional
 * piece is missing is `unavailable` whatever was asked, and `util.inspect` of the EstablishmentError is a
 * few lines with the report one property away.
 */
import { createServer } from 'node:net';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { EstablishmentError } from '../../src/errors.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { candidateLabel, droppedGroups, explainReport, type CandidateRecord, type SelectionReport } from '../../src/report.js';
import { renderTree } from '../../cli/render.js';
import { http3State } from '../../transports/webtransport/engine.js';

/** A loopback TCP port nobody listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

let err: EstablishmentError;

beforeAll(async () => {
  const host = new Host();
  host.setPolicy('me', 'allow *://@loopback:*');
  const pre = new Preconnection({ scope: await host.tenant('me'), remote: { hostName: 'localhost', port: await closedPort() } });
  const t0 = performance.now();
  err = (await pre.initiate({ signal: AbortSignal.timeout(15_000) }).catch((e: unknown) => e)) as EstablishmentError;
  console.log(`refused port, default drivers: rejected after ${(performance.now() - t0).toFixed(1)} ms`);
  host.close();
});

describe('a report of the default drivers reads as a person would want it', () => {
  it('the selection failed as an EstablishmentError with its report', () => {
    expect(err).toBeInstanceOf(EstablishmentError);
    console.log(explainReport(err.report));
  });

  it('stacks dropped for one reason share one line, naming each of them', () => {
    const text = explainReport(err.report);
    const schemeLine = text.split('\n').filter((l) => /need a URL scheme naming them/.test(l));
    expect(schemeLine).toHaveLength(1);
    const needScheme = err.report.candidates.filter((c) => c.fate === 'unsuitable' && /needs a URL scheme/.test(c.reason ?? ''));
    expect(needScheme.length).toBeGreaterThan(1);
    expect(schemeLine[0]).toContain(`unsuitable: ${needScheme.length} stacks need a URL scheme naming them: ${needScheme.map((c) => c.driver).join(', ')}`);
    expect(text).toMatch(/unsuitable: 2 stacks are unencrypted and security is required .*: tcp, udp/);
    // No dropped stack is listed twice, and none is lost.
    const dropped = err.report.candidates.filter((c) => c.address === undefined);
    const grouped = droppedGroups(err.report).flatMap((g) => g.candidates);
    expect(new Set(grouped)).toEqual(new Set(dropped));
    // The lines that matter (the attempts) come before the dropped stacks.
    const lines = text.split('\n');
    const lastAttempt = Math.max(...lines.map((l, i) => (/failed @/.test(l) ? i : -1)));
    const firstDropped = lines.findIndex((l) => /^ {2}(unsuitable|unavailable)|^ {2}c\d+ \S+( \(.*\))? (unsuitable|unavailable):/.test(l));
    expect(lastAttempt).toBeGreaterThan(0);
    expect(firstDropped).toBeGreaterThan(lastAttempt);
    // Fewer lines than candidates: the point of collapsing.
    expect(lines.length - 1).toBeLessThan(err.report.candidates.length);
  });

  it('every stack has a label of its own', () => {
    const labels = new Map<string, string>();
    for (const c of err.report.candidates) labels.set(c.driver, candidateLabel(c));
    expect(new Set(labels.values()).size).toBe(labels.size);
    expect(labels.get('tls')).toBe('tls/tcp');
    expect(labels.get('webtransport-h3-datagram')).toBe('webtransport-h3-datagram (webtransport/h3/quic/udp)');
  });

  it('a stack whose optional piece is missing is unavailable, even when the request would not suit it', () => {
    const state = http3State();
    const h3 = err.report.candidates.filter((c) => c.driver.startsWith('webtransport-h3'));
    expect(h3).toHaveLength(2);
    if (state.available) {
      // The native HTTP/3 module is installed here: the stacks are judged like any other (no scheme: unsuitable).
      for (const c of h3) expect(c.fate).toBe('unsuitable');
    } else {
      for (const c of h3) expect(c).toMatchObject({ fate: 'unavailable', reason: state.reason });
      expect(state.reason).toMatch(/unverified/);
      expect(explainReport(err.report)).toMatch(/unavailable: 2 stacks: native HTTP\/3 transport not installed .*: webtransport-h3, webtransport-h3-datagram/);
    }
  });

  it('util.inspect shows the stack, the code, a one-line tally and the cause: the report is one property away', () => {
    const text = inspect(err);
    console.log(text);
    const frames = (err.stack ?? '').split('\n').length;
    expect(text.split('\n').length).toBeLessThanOrEqual(frames + 5);
    expect(text).toContain(`code: '${err.code}'`);
    expect(text).toMatch(/report: \[SelectionReport localhost:\d+ \(tenant me\): .*\d+ failed.*explainReport\(err\.report\)/);
    expect(text).not.toContain('candidates:');
    expect(err.report.candidates.length).toBeGreaterThan(4);
    // Colours come from the caller's options (the hook is given them).
    expect(inspect(err, { colors: true })).toContain('\u001b[');
  });

  it('the CLI tree collapses the same way', () => {
    const tree = renderTree(err.report);
    expect(tree.split('\n').filter((l) => /need a URL scheme naming them/.test(l))).toHaveLength(1);
    expect(tree).toMatch(/ {2}unsuitable: 2 stacks are unencrypted and security is required .*: tcp, udp/);
  });
});

describe('droppedGroups', () => {
  const report = (candidates: Omit<CandidateRecord, 'id'>[]): SelectionReport => ({
    startedAt: 0, tenant: 't', remote: 'x:1', racing: 'staggered', attemptDelay: 250, resolutions: [],
    candidates: candidates.map((c, i) => ({ id: `c${i + 1}`, ...c })),
  });

  it('one record keeps its own reason; a reason that does not start with the stack is said of "each"', () => {
    const r = report([
      { driver: 'a-1', stack: ['a-1', 'udp'], fate: 'unsuitable', reason: 'reliability is required but a-1 is unreliable' },
      { driver: 'b', stack: ['b', 'udp'], fate: 'unsuitable', reason: 'reliability is required but b is unreliable' },
      { driver: 'c', stack: ['c'], fate: 'unsuitable', reason: 'c cannot listen' },
      { driver: 'a', stack: ['a'], fate: 'unavailable', reason: 'a-1 is missing' },
    ]);
    const groups = droppedGroups(r);
    expect(groups.map((g) => [g.fate, g.sentence, g.candidates.map((c) => c.driver)])).toEqual([
      ['unsuitable', '2 stacks: reliability is required but each is unreliable', ['a-1', 'b']],
      ['unsuitable', 'c cannot listen', ['c']],
      // `a` is not a word of `a-1`: the reason is kept as it is.
      ['unavailable', 'a-1 is missing', ['a']],
    ]);
  });

  it('a stack that also reached the race is not collapsed away', () => {
    const r = report([
      { driver: 'tls', stack: ['tls', 'tcp'], fate: 'denied', reason: 'lookup denied' },
      { driver: 'tls', stack: ['tls', 'tcp'], fate: 'failed', address: '127.0.0.1', family: 4, port: 1, reason: 'refused' },
      { driver: 'x', stack: ['x'], fate: 'unsuitable', reason: 'x needs a URL scheme naming it' },
      { driver: 'y', stack: ['y'], fate: 'unsuitable', reason: 'y needs a URL scheme naming it' },
    ]);
    expect(explainReport(r).split('\n')).toEqual([
      'selection for x:1 (tenant t, staggered, attempt delay 250 ms)',
      '  c1 tls/tcp denied: lookup denied',
      '  c2 tls/tcp 127.0.0.1:1 failed: refused',
      '  unsuitable: 2 stacks need a URL scheme naming them: x, y',
    ]);
  });
});
