/**
 * The indexes that make a decision a few lookups instead of a scan:
 *
 * - {@link CidrTrie}: a path-compressed binary (PATRICIA) trie over 32-bit
 *   (IPv4) or 128-bit (IPv6) keys. Walking it visits every stored prefix that
 *   contains the address, at most one node per branching point, so the cost
 *   grows with the depth of the prefix tree, not the number of rules.
 * - {@link NameTrie}: DNS names stored by reversed labels (`com` → `example`
 *   → `api`); each node holds exact-name entries and `*.suffix` entries, the
 *   latter matching names strictly below the node (never the apex).
 * - {@link PortSet}: sorted, merged port ranges, checked by binary search.
 *
 * @example
 * const t = new CidrTrie<string>(1);
 * t.insert([0x0a000000], 8, 'ten');
 * t.visit((e) => void seen.push(e), 0x0a000001); // seen: ['ten']
 */

/** Bit `i` (0 = most significant) of a word-array key. */
function bit(words: ArrayLike<number>, i: number): 0 | 1 {
  return ((words[i >>> 5]! >>> (31 - (i & 31))) & 1) as 0 | 1;
}

/**
 * `words` with every bit from `len` on cleared, as unsigned 32-bit numbers in
 * a plain array (much smaller than a typed array for one to four words).
 */
export function maskWords(words: ArrayLike<number>, len: number, count: number): number[] {
  const out: number[] = new Array<number>(count).fill(0);
  for (let k = 0; k < count; k++) {
    const lo = k * 32;
    const w = words[k]! >>> 0;
    if (len >= lo + 32) out[k] = w;
    else if (len <= lo) out[k] = 0;
    else out[k] = (w & (~0 << (32 - (len - lo)))) >>> 0;
  }
  return out;
}

/** Number of leading bits `a` and `b` share, up to `max`. */
function commonLength(a: ArrayLike<number>, b: ArrayLike<number>, max: number): number {
  let n = 0;
  for (let k = 0; n < max; k++) {
    const x = (a[k]! ^ b[k]!) >>> 0;
    if (x === 0) {
      n += 32;
      continue;
    }
    n += Math.clz32(x);
    break;
  }
  return n < max ? n : max;
}

/** A node's prefix is kept in four number fields, not an array: one fixed layout for a node walked on every decision (docs/performance.md); IPv4 uses p0 only. */
interface CidrNode<T> {
  readonly p0: number;
  readonly p1: number;
  readonly p2: number;
  readonly p3: number;
  readonly len: number;
  entries: T[] | null;
  zero: CidrNode<T> | null;
  one: CidrNode<T> | null;
}

function node<T>(w: ArrayLike<number>, len: number, entries: T[] | null): CidrNode<T> {
  return { p0: w[0]! >>> 0, p1: (w[1] ?? 0) >>> 0, p2: (w[2] ?? 0) >>> 0, p3: (w[3] ?? 0) >>> 0, len, entries, zero: null, one: null };
}

const words = <T>(n: CidrNode<T>): number[] => [n.p0, n.p1, n.p2, n.p3];

/** Whether the first `len` bits of the node's prefix equal the key's (k0..k3 unsigned). */
function matches<T>(n: CidrNode<T>, k0: number, k1: number, k2: number, k3: number): boolean {
  let len = n.len;
  if (len === 0) return true;
  if (len <= 32) return ((n.p0 ^ k0) >>> (32 - len)) === 0;
  if (n.p0 !== k0) return false;
  len -= 32;
  if (len <= 32) return ((n.p1 ^ k1) >>> (32 - len)) === 0;
  if (n.p1 !== k1) return false;
  len -= 32;
  if (len <= 32) return ((n.p2 ^ k2) >>> (32 - len)) === 0;
  if (n.p2 !== k2) return false;
  len -= 32;
  return ((n.p3 ^ k3) >>> (32 - len)) === 0;
}

/** Bit `i` of the key k0..k3. */
function keyBit(i: number, k0: number, k1: number, k2: number, k3: number): number {
  const w = i < 32 ? k0 : i < 64 ? k1 : i < 96 ? k2 : k3;
  return (w >>> (31 - (i & 31))) & 1;
}

export class CidrTrie<T> {
  readonly #words: number;
  readonly #bits: number;
  #root: CidrNode<T>;
  #size = 0;

  /** `words`: 1 for IPv4, 4 for IPv6. */
  constructor(count: 1 | 4) {
    this.#words = count;
    this.#bits = count * 32;
    this.#root = node([0, 0, 0, 0], 0, null);
  }

  get size(): number {
    return this.#size;
  }

  insert(key: ArrayLike<number>, len: number, entry: T): void {
    if (!(len >= 0 && len <= this.#bits)) throw new RangeError(`prefix length ${len} out of range`);
    const k = maskWords(key, len, this.#words);
    this.#size++;
    let cur = this.#root;
    for (;;) {
      if (cur.len === len) {
        (cur.entries ??= []).push(entry);
        return;
      }
      const b = bit(k, cur.len);
      const child = b === 0 ? cur.zero : cur.one;
      if (child === null) {
        const leaf = node(k, len, [entry]);
        if (b === 0) cur.zero = leaf;
        else cur.one = leaf;
        return;
      }
      const childWords = words(child);
      const c = commonLength(childWords, k, Math.min(child.len, len));
      if (c === child.len) {
        cur = child;
        continue;
      }
      const mid = node<T>(maskWords(k, c, this.#words), c, null);
      if (bit(childWords, c) === 0) mid.zero = child;
      else mid.one = child;
      if (c === len) mid.entries = [entry];
      else {
        const leaf = node(k, len, [entry]);
        if (bit(k, c) === 0) mid.zero = leaf;
        else mid.one = leaf;
      }
      if (b === 0) cur.zero = mid;
      else cur.one = mid;
      return;
    }
  }

  /**
   * Call `fn` with every entry whose prefix contains the key (IPv4: k0 only),
   * shortest prefix first. Stops early and returns the first non-undefined
   * result of `fn`. No allocation: this is the hot path.
   */
  visit<R>(fn: (entry: T, len: number) => R | undefined, k0: number, k1 = 0, k2 = 0, k3 = 0): R | undefined {
    k0 >>>= 0;
    k1 >>>= 0;
    k2 >>>= 0;
    k3 >>>= 0;
    const bits = this.#bits;
    let cur: CidrNode<T> | null = this.#root;
    while (cur !== null) {
      if (!matches(cur, k0, k1, k2, k3)) return undefined;
      const es = cur.entries;
      if (es !== null) {
        for (let i = 0; i < es.length; i++) {
          const r = fn(es[i]!, cur.len);
          if (r !== undefined) return r;
        }
      }
      if (cur.len === bits) return undefined;
      cur = keyBit(cur.len, k0, k1, k2, k3) === 0 ? cur.zero : cur.one;
    }
    return undefined;
  }

  /** The entries of the longest stored prefix containing the key. */
  longest(k0: number, k1 = 0, k2 = 0, k3 = 0): T[] | undefined {
    k0 >>>= 0;
    k1 >>>= 0;
    k2 >>>= 0;
    k3 >>>= 0;
    let best: T[] | undefined;
    let cur: CidrNode<T> | null = this.#root;
    while (cur !== null && matches(cur, k0, k1, k2, k3)) {
      if (cur.entries !== null) best = cur.entries;
      if (cur.len === this.#bits) break;
      cur = keyBit(cur.len, k0, k1, k2, k3) === 0 ? cur.zero : cur.one;
    }
    return best;
  }
}

interface NameNode<T> {
  children: Map<string, NameNode<T>> | null;
  exact: T[] | null;
  /** `*.this.node`: names strictly below. */
  below: T[] | null;
}

const nameNode = <T>(): NameNode<T> => ({ children: null, exact: null, below: null });

export class NameTrie<T> {
  readonly #root: NameNode<T> = nameNode();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** `name` is canonical; `below` true stores a `*.name` pattern. */
  insert(name: string, below: boolean, entry: T): void {
    let cur = this.#root;
    const labels = name.split('.');
    for (let i = labels.length - 1; i >= 0; i--) {
      const l = labels[i]!;
      cur.children ??= new Map();
      let next = cur.children.get(l);
      if (next === undefined) {
        next = nameNode();
        cur.children.set(l, next);
      }
      cur = next;
    }
    if (below) (cur.below ??= []).push(entry);
    else (cur.exact ??= []).push(entry);
    this.#size++;
  }

  /** Every entry matching `name` (wildcards from the top down, then exact); stops at the first non-undefined result. */
  visit<R>(name: string, fn: (entry: T) => R | undefined): R | undefined {
    let cur = this.#root;
    let end = name.length;
    for (;;) {
      const children = cur.children;
      if (children === null) return undefined;
      const dot = name.lastIndexOf('.', end - 1);
      const next = children.get(name.slice(dot + 1, end));
      if (next === undefined) return undefined;
      cur = next;
      const es = dot < 0 ? cur.exact : cur.below;
      if (es !== null) {
        for (let i = 0; i < es.length; i++) {
          const r = fn(es[i]!);
          if (r !== undefined) return r;
        }
      }
      if (dot < 0) return undefined;
      end = dot;
    }
  }
}

/** Sorted, merged, inclusive port ranges: [lo0, hi0, lo1, hi1, …]. */
export class PortSet {
  readonly ranges: Int32Array;
  constructor(ranges: ReadonlyArray<readonly [number, number]>) {
    const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
    const merged: number[] = [];
    for (const [lo, hi] of sorted) {
      const n = merged.length;
      if (n > 0 && lo <= merged[n - 1]! + 1) merged[n - 1] = Math.max(merged[n - 1]!, hi);
      else merged.push(lo, hi);
    }
    this.ranges = Int32Array.from(merged);
  }
  has(port: number): boolean {
    const r = this.ranges;
    let lo = 0;
    let hi = (r.length >>> 1) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (port < r[2 * mid]!) hi = mid - 1;
      else if (port > r[2 * mid + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }
  toString(): string {
    const parts: string[] = [];
    for (let i = 0; i < this.ranges.length; i += 2) {
      const lo = this.ranges[i]!;
      const hi = this.ranges[i + 1]!;
      parts.push(lo === hi ? String(lo) : `${lo}-${hi}`);
    }
    return parts.join(',');
  }
}
