/**
 * Messages and their properties (RFC 9622 §9.1).
 *
 * {@link MessageContextInit} is what a caller may attach to `send()`: the
 * message properties of §9.1.3 plus `fields` for protocol data (an HTTP
 * request's method, path and headers). They are checked at once: an unknown
 * name or a wrong type is a programmer error and throws a TypeError/RangeError
 * naming it. Whether the chosen stack can honour them is decided by the
 * Connection, which reports a `sendError` when it cannot.
 *
 * {@link Message} is what `receive()` and `for await` give back: the bytes,
 * and a context with what the stack said about them.
 *
 * @example
 * await conn.send(update, { msgLifetime: 50, msgPriority: 10 });
 * for await (const msg of conn) console.log(msg.text(), msg.context.final);
 */

export type CapacityProfile = 'default' | 'scavenger' | 'lowLatency/interactive' | 'lowLatency/nonInteractive' | 'constantRate' | 'capacitySeeking';

/** Message properties (RFC 9622 §9.1.3), all optional. */
export interface MessageContextInit {
  /** ms after `send()` after which an unsent message expires (§9.1.3.1). Default Infinity. */
  readonly msgLifetime?: number;
  /** Lower is sent sooner among queued messages (§9.1.3.2). Default 100. */
  readonly msgPriority?: number;
  /** Must this message keep its place in the order (§9.1.3.3)? Default: the connection's preserveOrder. */
  readonly msgOrdered?: boolean;
  /** Safe to deliver more than once (§9.1.3.4). Default false; true on stacks that need it. */
  readonly safelyReplayable?: boolean;
  /** Last message: the sending side closes after it (§9.1.3.5). */
  readonly final?: boolean;
  /** Bytes covered by the checksum (§9.1.3.6). Default: all. */
  readonly msgChecksumLen?: number;
  /** Send reliably (§9.1.3.7). Default: the connection's reliability. */
  readonly msgReliable?: boolean;
  readonly msgCapacityProfile?: CapacityProfile;
  /** Do not fragment at the IP layer (§9.1.3.9). */
  readonly noFragmentation?: boolean;
  /** Send in one segment (§9.1.3.10). */
  readonly noSegmentation?: boolean;
  /** Protocol fields (e.g. HTTP `method`, `path`, `headers`). */
  readonly fields?: Readonly<Record<string, unknown>>;
  /**
   * Not a message property but Send's endOfMessage parameter (§9.2.3):
   * false sends a piece of a message whose later pieces follow in the next
   * sends, until one without it (or true). Default true.
   */
  readonly endOfMessage?: boolean;
}

/** The names `send()` accepts in a message context. */
export const MESSAGE_PROPERTY_NAMES: readonly (keyof MessageContextInit)[] = Object.freeze([
  'msgLifetime', 'msgPriority', 'msgOrdered', 'safelyReplayable', 'final', 'msgChecksumLen',
  'msgReliable', 'msgCapacityProfile', 'noFragmentation', 'noSegmentation', 'fields', 'endOfMessage',
]);

const BOOLEANS = new Set(['msgOrdered', 'safelyReplayable', 'final', 'msgReliable', 'noFragmentation', 'noSegmentation', 'endOfMessage']);
const PROFILES = new Set<string>(['default', 'scavenger', 'lowLatency/interactive', 'lowLatency/nonInteractive', 'constantRate', 'capacitySeeking']);
const KNOWN = new Set<string>(MESSAGE_PROPERTY_NAMES);

/** Throws TypeError/RangeError naming the first bad property. */
export function checkMessageContext(ctx: unknown): asserts ctx is MessageContextInit {
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx)) throw new TypeError('message context must be an object');
  for (const [name, value] of Object.entries(ctx)) {
    if (value === undefined) continue;
    if (!KNOWN.has(name)) throw new TypeError(`unknown message property '${name}' (known: ${MESSAGE_PROPERTY_NAMES.join(', ')})`);
    if (BOOLEANS.has(name)) {
      if (typeof value !== 'boolean') throw new TypeError(`message property ${name} must be a boolean, got ${typeof value}`);
    } else if (name === 'msgLifetime') {
      if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`message property msgLifetime must be a number of ms ≥ 0 (or Infinity), got ${String(value)}`);
    } else if (name === 'msgPriority') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new RangeError(`message property msgPriority must be an integer ≥ 0, got ${String(value)}`);
    } else if (name === 'msgChecksumLen') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new RangeError(`message property msgChecksumLen must be an integer ≥ 0, got ${String(value)}`);
    } else if (name === 'msgCapacityProfile') {
      if (typeof value !== 'string' || !PROFILES.has(value)) throw new RangeError(`message property msgCapacityProfile must be one of ${[...PROFILES].join(', ')}, got ${String(value)}`);
    } else if (name === 'fields') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError('message property fields must be an object');
    }
  }
}

/** What the stack told us about a received message. */
export interface ReceivedContext {
  /** The peer sent nothing after this message (FIN / end of stream seen right after it). */
  readonly final: boolean;
  /** Protocol fields (e.g. HTTP `status` and `headers`). */
  readonly fields?: Readonly<Record<string, unknown>> | undefined;
  /** On a stack with per-message reliability: whether it came reliably (a stream) or not (a datagram), RFC 9622 §9.1.3.7. */
  readonly msgReliable?: boolean | undefined;
  /** On a stack with per-message reliability: whether its sender marked it ordered (§9.1.3.3). */
  readonly msgOrdered?: boolean | undefined;
}

/** The received context of a message whose stack said which way it came (one frozen object per way). */
export function deliveredContext(reliable: boolean, ordered: boolean): ReceivedContext {
  return DELIVERED[(reliable ? 2 : 0) + (ordered ? 1 : 0)]!;
}

const DELIVERED: readonly ReceivedContext[] = [
  Object.freeze({ final: false, msgReliable: false, msgOrdered: false }),
  Object.freeze({ final: false, msgReliable: false, msgOrdered: true }),
  Object.freeze({ final: false, msgReliable: true, msgOrdered: false }),
  Object.freeze({ final: false, msgReliable: true, msgOrdered: true }),
];

const decoder = new TextDecoder();
const NO_FIELDS: ReceivedContext = Object.freeze({ final: false });

/** One received message (RFC 9622 §9.3.2.1). */
export class Message {
  readonly data: Uint8Array;
  readonly context: ReceivedContext;

  constructor(data: Uint8Array, context: ReceivedContext = NO_FIELDS) {
    this.data = data;
    this.context = context;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  /** The bytes decoded as UTF-8. */
  text(): string {
    return decoder.decode(this.data);
  }

  /** The bytes parsed as JSON (throws SyntaxError on bad JSON). */
  json(): unknown {
    return JSON.parse(this.text());
  }

  /** Whether this is the last (or only) piece of its message: always true for a whole message (RFC 9622 §9.3.2.2). */
  get endOfMessage(): boolean {
    return true;
  }

  /** Whether this is a piece of a message handed over with ReceivedPartial (§9.3.2.2) rather than a whole message. */
  get partial(): boolean {
    return false;
  }
}

/**
 * A piece of a message (RFC 9622 §9.3.2.2 ReceivedPartial): the pieces of
 * one message come in order without gaps and share one `context` object;
 * the last has `endOfMessage` true.
 */
export class PartialMessage extends Message {
  readonly #end: boolean;

  constructor(data: Uint8Array, context: ReceivedContext, endOfMessage: boolean) {
    super(data, context);
    this.#end = endOfMessage;
  }

  override get endOfMessage(): boolean {
    return this.#end;
  }

  override get partial(): boolean {
    return true;
  }
}
