/**
 * Byte plumbing for framers: a slab allocator for outgoing frames, and a
 * byte accumulator for deframers that keeps received chunks without copying
 * until a message spans several of them, then copies exactly once.
 */

const SLAB = 64 * 1024;
let slab: Buffer | undefined;
let slabUsed = SLAB;

/**
 * Uninitialised bytes for one outgoing frame (the caller writes every byte).
 * Small frames are cut from a shared 64 KiB slab, like Node's own 8 KiB
 * Buffer pool but with fewer allocations per message; a slab is freed by the
 * GC once every frame cut from it is. Never reused: a frame stays valid while
 * the socket holds it.
 */
export function allocFrame(n: number): Buffer {
  if (n > SLAB >>> 3) return Buffer.allocUnsafe(n);
  if (slabUsed + n > SLAB) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabUsed = 0;
  }
  const out = slab!.subarray(slabUsed, slabUsed + n);
  slabUsed = (slabUsed + n + 7) & ~7; // keep frames 8-byte aligned
  return out;
}

export class ChunkBuffer {
  #chunks: Uint8Array[] = [];
  #head = 0; // offset into #chunks[0]
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.length += chunk.byteLength;
  }

  /** The byte at offset `i` from the front (i < length). */
  at(i: number): number {
    let off = i + this.#head;
    for (const c of this.#chunks) {
      if (off < c.byteLength) return c[off]!;
      off -= c.byteLength;
    }
    throw new RangeError('ChunkBuffer.at past the end');
  }

  /** Remove and return the first `n` bytes (n ≤ length), as a view when they lie in one chunk. */
  take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0]!;
    if (first.byteLength - this.#head >= n) {
      const out = first.subarray(this.#head, this.#head + n);
      this.#skipInFirst(n, first);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0]!;
      const want = Math.min(n - filled, c.byteLength - this.#head);
      out.set(c.subarray(this.#head, this.#head + want), filled);
      filled += want;
      this.#skipInFirst(want, c);
    }
    return out;
  }

  /** Drop the first `n` bytes. */
  skip(n: number): void {
    while (n > 0) {
      const c = this.#chunks[0]!;
      const here = Math.min(n, c.byteLength - this.#head);
      this.#skipInFirst(here, c);
      n -= here;
    }
  }

  /** Offset of the first occurrence of `needle` at or after `from`, or -1. */
  indexOf(needle: Uint8Array, from: number): number {
    const first = needle[0]!;
    let base = -this.#head; // offset of the current chunk's byte 0 from the front
    for (const c of this.#chunks) {
      const view = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      let i = Math.max(from - base, base === -this.#head ? this.#head : 0);
      while (i < c.byteLength) {
        const hit = view.indexOf(first, i);
        if (hit < 0) break;
        const at = base + hit;
        if (at + needle.byteLength > this.length) return -1;
        let ok = true;
        for (let j = 1; j < needle.byteLength && ok; j++) ok = this.at(at + j) === needle[j];
        if (ok) return at;
        i = hit + 1;
      }
      base += c.byteLength;
    }
    return -1;
  }

  /** Drop everything (a failed deframer frees what it held). */
  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.length = 0;
  }

  /** Concatenate everything (for small delimiter buffers). */
  toArray(): Uint8Array {
    return this.length === 0 ? new Uint8Array(0) : this.take(this.length);
  }

  #skipInFirst(n: number, first: Uint8Array): void {
    this.#head += n;
    this.length -= n;
    if (this.#head === first.byteLength) {
      this.#chunks.shift();
      this.#head = 0;
    }
  }
}
