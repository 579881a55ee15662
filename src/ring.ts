/**
 * A first-in first-out queue over a ring of slots: `push` and `shift` move
 * no other element, and once the ring has grown to the most the queue held
 * it allocates nothing more (an array emptied with `length = 0` or shifted
 * from the front reallocates or copies). The send paths keep one per
 * connection for what they handed to the transport and wait to hear back
 * about, in send order.
 *
 * @example
 * const q = new Ring<string>();
 * q.push('a');
 * q.push('b');
 * q.shift(); // 'a'
 * q.peek(); // 'b'
 */
export class Ring<T> {
  /** Slots; the length is a power of two so an index wraps with a mask. */
  #slots: (T | undefined)[];
  #head = 0;
  #size = 0;

  /** `capacity` is rounded up to a power of two (at least 2). */
  constructor(capacity = 16) {
    let n = 2;
    while (n < capacity) n *= 2;
    this.#slots = new Array<T | undefined>(n).fill(undefined);
  }

  /** How many are queued. */
  get size(): number {
    return this.#size;
  }

  /** Queue `item` last. */
  push(item: T): void {
    if (this.#size === this.#slots.length) this.#grow();
    const slots = this.#slots;
    slots[(this.#head + this.#size) & (slots.length - 1)] = item;
    this.#size++;
  }

  /** The first queued, left in place (undefined when empty). */
  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#slots[this.#head];
  }

  /** The last queued, left in place (undefined when empty). */
  peekLast(): T | undefined {
    return this.#size === 0 ? undefined : this.#slots[(this.#head + this.#size - 1) & (this.#slots.length - 1)];
  }

  /** Remove and return the first queued (undefined when empty). */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const slots = this.#slots;
    const item = slots[this.#head];
    slots[this.#head] = undefined; // the ring must not keep what left it alive
    this.#head = (this.#head + 1) & (slots.length - 1);
    this.#size--;
    return item;
  }

  /** Twice the slots, the queue unwrapped to the front of them. */
  #grow(): void {
    const old = this.#slots;
    const slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    for (let i = 0; i < this.#size; i++) slots[i] = old[(this.#head + i) & (old.length - 1)];
    this.#slots = slots;
    this.#head = 0;
  }
}
