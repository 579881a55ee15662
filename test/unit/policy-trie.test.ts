/**
 * The indexes against brute force: for random prefixes and names, the tries
 * find exactly the entries a linear scan finds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CidrTrie, NameTrie, PortSet, maskWords } from '../../src/policy/trie.js';

const contains = (prefix: number[], len: number, key: number[]) => {
  const a = maskWords(prefix, len, key.length);
  const b = maskWords(key, len, key.length);
  return a.every((w, i) => w === b[i]);
};

describe('CidrTrie', () => {
  it.each([1, 4] as const)('finds every containing prefix, shortest first (%i words)', (n) => {
    const word = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.constant(0x0a000000), fc.integer({ min: 0, max: 0xffffffff }));
    const key = fc.array(word, { minLength: n, maxLength: n });
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.integer({ min: 0, max: 32 * n })), { maxLength: 40 }), fc.array(key, { minLength: 1, maxLength: 10 }), (prefixes, probes) => {
        const trie = new CidrTrie<number>(n);
        prefixes.forEach(([p, len], i) => trie.insert(p, len, i));
        for (const k of probes) {
          // Probe both a random key and each stored prefix itself.
          for (const probe of [k, ...prefixes.map(([p]) => p)]) {
            const seen: Array<[number, number]> = [];
            trie.visit((e, len) => void seen.push([e, len]), probe[0]!, probe[1], probe[2], probe[3]);
            const expected = prefixes.map(([p, len], i) => [i, len] as [number, number]).filter(([i, len]) => contains(prefixes[i]![0], len, probe));
            expect(seen.map(([i]) => i).sort((a, b) => a - b)).toEqual(expected.map(([i]) => i).sort((a, b) => a - b));
            const lens = seen.map(([, len]) => len);
            expect(lens).toEqual([...lens].sort((a, b) => a - b));
            const longest = trie.longest(probe[0]!, probe[1], probe[2], probe[3]);
            const maxLen = Math.max(-1, ...expected.map(([, len]) => len));
            expect(longest === undefined ? -1 : seen.find(([i]) => longest.includes(i))![1]).toBe(maxLen);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('stops at the first non-undefined answer', () => {
    const t = new CidrTrie<string>(1);
    t.insert([0x0a000000], 8, 'ten');
    t.insert([0x0a010000], 16, 'ten-one');
    expect(t.visit((e) => (e === 'ten' ? e : undefined), 0x0a010203)).toBe('ten');
    expect(t.visit((e) => (e === 'ten-one' ? e : undefined), 0x0a020203)).toBeUndefined();
  });
});

describe('NameTrie', () => {
  it('exact names match themselves; *.suffix matches strictly below, never the apex', () => {
    const label = fc.constantFrom('a', 'b', 'example', 'com', 'x-y', '1');
    const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, fc.boolean()), { maxLength: 30 }), fc.array(name, { minLength: 1, maxLength: 10 }), (stored, probes) => {
        const t = new NameTrie<number>();
        stored.forEach(([n, below], i) => t.insert(n, below, i));
        for (const p of probes) {
          const seen: number[] = [];
          t.visit(p, (e) => void seen.push(e));
          const expected = stored.map(([n, below], i) => ({ n, below, i })).filter(({ n, below }) => (below ? p.endsWith(`.${n}`) : p === n)).map(({ i }) => i);
          expect(seen.sort((a, b) => a - b)).toEqual(expected);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('PortSet', () => {
  it('merges ranges and answers membership like a linear scan', () => {
    const range = fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20 })).map(([lo, w]) => [lo, lo + w] as [number, number]);
    fc.assert(
      fc.property(fc.array(range, { minLength: 1, maxLength: 12 }), (ranges) => {
        const set = new PortSet(ranges);
        for (let p = 0; p <= 230; p++) expect(set.has(p)).toBe(ranges.some(([lo, hi]) => p >= lo && p <= hi));
      }),
    );
    expect(new PortSet([[80, 80], [81, 90], [443, 443]]).toString()).toBe('80-90,443');
  });
});
