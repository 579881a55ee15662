/**
 * Property-based tests (fast-check) for the policy grammar and the decisions
 * made from it. What the existing tests leave open:
 * test/unit/policy-grammar.test.ts has tables of good and bad rules,
 * test/unit/canonical.test.ts fuzzes the address canonicaliser and
 * test/unit/policy-trie.test.ts the tries; nothing fuzzed the parsers
 * themselves or the decision engine end to end. Here:
 *
 * - Parsers (`parseRule`, `parsePolicy`, `parsePolicyFile`, `parseBudget`):
 *   any input yields a result or a PolicyParseError whose position lies
 *   inside the input — never another exception; an accepted rule re-parses
 *   from its own text to the same rule; a JSON rule and its text agree.
 * - Decisions over random policies and requests: rule order never matters;
 *   deny wins; adding an allow never takes access away and adding a deny
 *   never grants it; every spelling of the same IPv4 address, host-name
 *   case and a trailing dot get the same answer; an IPv6 spelling of an
 *   IPv4 address never gets more than the IPv4 form; a malformed request is
 *   denied, never thrown.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTapsError } from '../../src/errors.js';
import { compilePolicy } from '../../src/policy/compile.js';
import { canonicalRequest, evaluate } from '../../src/policy/decide.js';
import { parseRule, PolicyParseError, type JsonRule } from '../../src/policy/grammar.js';
import { parseBudget, parsePolicy, parsePolicyFile } from '../../src/policy/source.js';
import { NETWORK_USES, POLICY_PROTOCOLS, type NetworkUse, type PolicyProtocol, type PolicyRequest } from '../../src/policy/types.js';

const RUNS = { numRuns: 400 };
/** Decisions are cheap and allows are the rarer outcome: more runs. */
const DECISION_RUNS = { numRuns: 1000 };

function parseOrError<T>(input: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof PolicyParseError)) throw new Error(`unexpected ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} for ${JSON.stringify(input)}`, { cause: err });
    expect(err.code).toBe('ERR_TAPS_INVALID_CONFIGURATION');
    expect(err.position).toBeGreaterThanOrEqual(0);
    if (err.rule === input) expect(err.position).toBeLessThanOrEqual(input.length);
    expect(err.message.length).toBeGreaterThan(0);
    return undefined;
  }
}

// ── rule-shaped text ──────────────────────────────────────────────────────

const USE_TEXT = fc.oneof(
  fc.constant(''),
  fc.subarray([...NETWORK_USES], { minLength: 1, maxLength: 3 }).map((u) => `${u.join(',')}:`),
  fc.constantFrom('conect:', 'connect,:', ':', 'CONNECT:', 'connect,connect:'),
);
const SCHEME_TEXT = fc.oneof(fc.constantFrom(...POLICY_PROTOCOLS, '*', 'TCP', 'Https'), fc.constantFrom('ftp', '', 'tcp+tls', 'h3'));
const HOST_TEXT = fc.oneof(
  fc.constantFrom('*', '@loopback', '@private', '@public', '@any', '@nope', 'a.test', '*.a.test', 'B.A.Test', 'a.test.', '*.', '*a.test', 'a*.test'),
  fc.constantFrom('127.0.0.1', '10.0.0.0/8', '10.0.0.1/8', '127.1', '0x7f.0.0.1', '300.1.1.1', '1.2.3.4/33', '1.2.3.4/', '[::1]', '[::/0]', '[fe80::/10]', '[::ffff:10.0.0.0/104]', '[fe80::1%eth0]', '[::1', '::1', '[zz::]'),
  fc.domain(),
  fc.ipV4(),
  fc.ipV6().map((a) => `[${a}]`),
  fc.string({ maxLength: 12 }),
);
const PORT_TEXT = fc.oneof(
  fc.constant(''),
  fc.constantFrom(':*', ':80', ':443', ':1-1024', ':8000-8100', ':80,443', ':0', ':65535', ':65536', ':100-10', ':', ':x', ':80/', ':80?q', ':8 0'),
  fc.integer({ min: -5, max: 70_000 }).map((n) => `:${n}`),
);
const ruleText = fc.tuple(USE_TEXT, SCHEME_TEXT, HOST_TEXT, PORT_TEXT).map(([u, s, h, p]) => `${u}${s}://${h}${p}`);

const anyText = fc.oneof(ruleText, fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));

describe('parseRule', () => {
  it('any text: a frozen rule or a PolicyParseError with a position inside the rule', () => {
    fc.assert(
      fc.property(anyText, fc.constantFrom('allow' as const, 'deny' as const), (text, effect) => {
        const rule = parseOrError(text, () => parseRule(text, effect, { source: 'fuzz', line: 1, column: 1 }));
        if (rule === undefined) return;
        expect(Object.isFrozen(rule)).toBe(true);
        expect(rule.effect).toBe(effect);
        expect(rule.text).toBe(text);
        expect(rule.uses.length).toBeGreaterThan(0);
      }),
      RUNS,
    );
  });

  it('an accepted rule re-parses from its own text to the same rule', () => {
    fc.assert(
      fc.property(ruleText, (text) => {
        const a = parseOrError(text, () => parseRule(text, 'allow'));
        if (a === undefined) return;
        const b = parseRule(a.text, 'allow');
        expect({ ...b, ports: b.ports === null ? null : String(b.ports) }).toEqual({ ...a, ports: a.ports === null ? null : String(a.ports) });
        // The port set answers like the text says (spot checks).
        for (const port of [0, 80, 443, 1024, 8000, 8100, 65535]) expect(b.ports?.has(port) ?? true).toBe(a.ports?.has(port) ?? true);
      }),
      RUNS,
    );
  });

  it('JSON rules: arbitrary objects fail with PolicyParseError; accepted ones agree with their text form', () => {
    const jsonRule = fc.record(
      {
        use: fc.oneof(fc.constantFrom(...NETWORK_USES), fc.subarray([...NETWORK_USES], { maxLength: 3 }), fc.anything()),
        scheme: fc.oneof(fc.constantFrom(...POLICY_PROTOCOLS, '*'), fc.anything()),
        host: fc.oneof(HOST_TEXT, fc.ipV6(), fc.anything()),
        port: fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.constantFrom('*', '80,443', '1-5'), fc.array(fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.constant('x')), { maxLength: 3 }), fc.anything()),
        extra: fc.anything(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(jsonRule, fc.anything()), (r) => {
        const rule = parseOrError(JSON.stringify(r) ?? String(r), () => parseRule(r as JsonRule, 'deny'));
        if (rule === undefined) return;
        const again = parseRule(rule.text, 'deny');
        expect(again.host).toEqual(rule.host);
        expect(again.uses).toEqual(rule.uses);
        expect(again.scheme).toBe(rule.scheme);
      }),
      RUNS,
    );
  });
});

describe('parsePolicy / parsePolicyFile / parseBudget', () => {
  const directive = fc.oneof(
    ruleText.map((r) => `allow ${r}`),
    ruleText.map((r) => `deny  ${r}  # why`),
    fc.constantFrom('mode audit', 'mode enforce', 'mode', 'mode both', 'limit connections 3', 'limit listeners x', 'limit sent 10MiB per 60s', 'limit received 1/0s', 'limit bytes 5 kb / 2 m', 'limit foo 1'),
    fc.constantFrom('', '   ', '# comment', 'tenant acme', 'tenant bad id', 'allow', 'deny', 'permit tcp://a:1'),
    fc.string({ maxLength: 30 }),
  );
  const doc = fc.array(directive, { maxLength: 8 }).map((lines) => lines.join('\n'));

  it('policy text: a spec or a PolicyParseError, never another exception', () => {
    fc.assert(
      fc.property(fc.oneof(doc, fc.string({ maxLength: 80 }), fc.json()), (text) => {
        const spec = parseOrError(text, () => parsePolicy(text, 'fuzz'));
        if (spec === undefined) return;
        expect(Object.isFrozen(spec)).toBe(true);
        for (const r of [...spec.allow, ...spec.deny]) expect(parseRule(r.text, r.effect).text).toBe(r.text);
        // A spec always compiles.
        compilePolicy(spec);
      }),
      RUNS,
    );
  });

  it('policy files: a map of specs or a PolicyParseError', () => {
    fc.assert(
      fc.property(fc.oneof(doc, fc.json(), fc.string({ maxLength: 60 })), (text) => {
        const m = parseOrError(text, () => parsePolicyFile(text, 'fuzz'));
        if (m !== undefined) for (const [id] of m) expect(id).toMatch(/^[A-Za-z0-9._:@-]{1,128}$/);
      }),
      RUNS,
    );
  });

  it('budgets: undefined or a finite byte count over a positive window', () => {
    const budgetish = fc.tuple(
      fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e6, noNaN: true }).map((d) => d.toFixed(2)), fc.constantFrom('1e3', '-1', '')),
      fc.constantFrom('', 'b', 'kb', 'KiB', 'mb', 'MiB', 'gb', 'GiB', 'tb'),
      fc.constantFrom(' per ', '/', ' / ', 'per', ' PER '),
      fc.oneof(fc.nat(), fc.constantFrom('0', '0.0', '1.5', '')),
      fc.constantFrom('ms', 's', 'm', 'h', 'd', ''),
    ).map((p) => p.join(''));
    fc.assert(
      fc.property(fc.oneof(budgetish, fc.string({ maxLength: 20 })), (t) => {
        const b = parseBudget(t);
        if (b === undefined) return;
        expect(Number.isFinite(b.bytes) && b.bytes >= 0).toBe(true);
        expect(Number.isFinite(b.windowMs) && b.windowMs > 0).toBe(true);
      }),
      RUNS,
    );
  });
});

// ── decisions ─────────────────────────────────────────────────────────────

const R_USES = ['connect', 'bind', 'accept', 'lookup'] as const;
const R_SCHEMES = ['tcp', 'tcp', '*', 'tls', 'udp', 'https', 'ws'] as const;
const R_HOSTS = ['*', '*', '@any', '@loopback', '@private', '@public', 'a.test', '*.a.test', 'b.a.test', '127.0.0.1', '127.0.0.0/8', '10.0.0.0/8', '[::1]', '[::/0]', '[fe80::/10]', '[2001:db8::/32]'];
const R_PORTS = ['', ':*', ':*', ':*', ':80', ':443', ':1-1024', ':8000-8100', ':80,443'];
const validRule = fc
  .tuple(fc.oneof(fc.constant(['connect']), fc.subarray([...R_USES], { minLength: 1, maxLength: 2 })), fc.constantFrom(...R_SCHEMES), fc.constantFrom(...R_HOSTS), fc.constantFrom(...R_PORTS))
  .map(([u, s, h, p]) => `${u.join(',')}:${s}://${h}${p}`)
  .filter((t) => {
    try {
      parseRule(t, 'allow');
      return true;
    } catch {
      return false;
    }
  });
const policy = fc.record({ allow: fc.array(validRule, { minLength: 1, maxLength: 8 }), deny: fc.array(validRule, { maxLength: 2 }) });

const REQ_NAMES = ['a.test', 'b.a.test', 'c.b.a.test', 'other.test', 'localhost'];
const REQ_V4 = [0x7f000001, 0x7f000102, 0x0a000001, 0x08080808, 0xc0a80101, 0xa9fea9fe];
const REQ_V6 = ['::1', 'fe80::1', '2001:db8::1', '2606:4700::1111'];
const request = fc.record({
  use: fc.constantFrom<NetworkUse>('connect', 'connect', 'connect', ...R_USES),
  protocol: fc.constantFrom<PolicyProtocol>('tcp', 'tcp', 'tls', 'udp', 'https', 'ws'),
  name: fc.option(fc.constantFrom(...REQ_NAMES), { nil: undefined }),
  v4: fc.option(fc.constantFrom(...REQ_V4), { nil: undefined }),
  v6: fc.option(fc.constantFrom(...REQ_V6), { nil: undefined }),
  port: fc.constantFrom(80, 443, 22, 8080, 8050, 1024),
});
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

const dotted = (v: number): string => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');

function decide(p: { allow: readonly string[]; deny: readonly string[] }, req: PolicyRequest): { allow: boolean; code: string | undefined } {
  const spec = parsePolicy({ allow: p.allow, deny: p.deny });
  const c = canonicalRequest(req);
  if (!c.ok) return { allow: false, code: c.code };
  const v = evaluate([compilePolicy(spec).rules], c);
  return { allow: v.allow, code: v.code };
}

/** The request with its address spelled `addr` (via `host` when there is no name, else via `address`). */
function build(r: Req, addr: string | undefined, name = r.name): PolicyRequest {
  const out: { use: NetworkUse; protocol: PolicyProtocol; port?: number; host?: string; address?: string } = { use: r.use, protocol: r.protocol };
  if (r.use !== 'lookup') out.port = r.port;
  if (name !== undefined) {
    out.host = name;
    if (addr !== undefined && r.use !== 'lookup') out.address = addr;
  } else if (addr !== undefined) out.host = addr;
  else out.host = 'other.test';
  return out;
}

const shuffled = <T>(xs: readonly T[], seed: number): T[] => {
  const a = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
};

describe('decisions over random policies', () => {
  it('rule order never matters', () => {
    fc.assert(
      fc.property(policy, request, fc.integer(), (p, r, seed) => {
        const req = build(r, r.v4 === undefined ? undefined : dotted(r.v4));
        expect(decide({ allow: shuffled(p.allow, seed), deny: shuffled(p.deny, seed + 1) }, req)).toEqual(decide(p, req));
      }),
      DECISION_RUNS,
    );
  });

  it('deny wins: a deny of everything for that use denies, whatever is allowed', () => {
    fc.assert(
      fc.property(policy, request, (p, r) => {
        const req = build(r, r.v4 === undefined ? undefined : dotted(r.v4));
        const everything = r.use === 'lookup' ? 'lookup:*://*' : `${r.use}:*://*:*`;
        const d = decide({ allow: p.allow, deny: [...p.deny, everything] }, req);
        expect(d.allow).toBe(false);
      }),
      DECISION_RUNS,
    );
  });

  it('monotone: another allow never takes access away, another deny never grants it', () => {
    fc.assert(
      fc.property(policy, validRule, request, (p, extra, r) => {
        const req = build(r, r.v6 ?? (r.v4 === undefined ? undefined : dotted(r.v4)));
        const base = decide(p, req).allow;
        if (base) expect(decide({ allow: [...p.allow, extra], deny: p.deny }, req).allow).toBe(true);
        else expect(decide({ allow: p.allow, deny: [...p.deny, extra] }, req).allow).toBe(false);
      }),
      DECISION_RUNS,
    );
  });

  it('every spelling of an IPv4 address, any name case and a trailing dot: the same answer', () => {
    const spell = fc.constantFrom<(v: number) => string>(
      dotted,
      (v) => String(v),
      (v) => `0x${v.toString(16)}`,
      (v) => `0${v.toString(8)}`,
      (v) => `${v >>> 24}.${v & 0xffffff}`,
      (v) => `0x${(v >>> 24).toString(16)}.${(v >>> 16) & 255}.0${((v >>> 8) & 255).toString(8)}.${v & 255}`,
    );
    fc.assert(
      fc.property(policy, request, spell, (p, r, sp) => {
        const v4 = r.v4 ?? REQ_V4[0]!;
        const plain = decide(p, build({ ...r, name: undefined }, dotted(v4)));
        expect(decide(p, build({ ...r, name: undefined }, sp(v4)))).toEqual(plain);
        if (r.name !== undefined) {
          const a = decide(p, build(r, dotted(v4)));
          expect(decide(p, build(r, dotted(v4), r.name.toUpperCase()))).toEqual(a);
          expect(decide(p, build(r, dotted(v4), `${r.name}.`))).toEqual(a);
        }
      }),
      DECISION_RUNS,
    );
  });

  it('an IPv6 spelling of an IPv4 address never gets more than the IPv4 form', () => {
    fc.assert(
      fc.property(policy, request, fc.constantFrom((v: number) => `[::ffff:${dotted(v)}]`, (v: number) => `[::ffff:${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}]`), (p, r, sp) => {
        const v4 = r.v4 ?? REQ_V4[0]!;
        const plain = decide(p, build({ ...r, name: undefined }, dotted(v4)));
        const mapped = decide(p, build({ ...r, name: undefined }, sp(v4)));
        if (mapped.allow) expect(plain.allow).toBe(true);
      }),
      DECISION_RUNS,
    );
  });

  it('a malformed request is denied with a reason, never thrown', () => {
    const junk = fc.record(
      { use: fc.oneof(fc.constantFrom(...NETWORK_USES), fc.anything()), protocol: fc.oneof(fc.constantFrom(...POLICY_PROTOCOLS), fc.anything()), host: fc.anything(), address: fc.anything(), port: fc.anything(), url: fc.oneof(fc.webUrl(), fc.anything()) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(policy, fc.oneof(junk, fc.anything()), (p, req) => {
        let d: { allow: boolean; code: string | undefined } | undefined;
        try {
          d = decide(p, req as PolicyRequest);
        } catch (err) {
          throw new Error(`decide threw ${(err as Error)?.message} for ${String(JSON.stringify(req))}`, { cause: err });
        }
        if (!d.allow) expect(typeof d.code).toBe('string');
        expect(isTapsError(d)).toBe(false);
      }),
      DECISION_RUNS,
    );
  });
});
