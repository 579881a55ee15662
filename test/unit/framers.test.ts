/**
 * The built-in message framers (RFC 9622 §9.1.2) as pure objects fed bytes:
 * length-prefix and delimiter, with example cases and fast-check properties
 * (any chunking yields the same messages; arbitrary input fails only with
 * ERR_TAPS_DEFRAMING_FAILED and never buffers past the maximum).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isTapsError, SendError, TapsError } from '../../src/errors.js';
import { delimiterFramer, lengthPrefixFramer, type Deframer, type MessageFramer } from '../../src/framers/index.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString();

/** The wire bytes of messages, as one buffer. */
function wireOf(framer: MessageFramer, messages: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(messages.flatMap((m) => [framer.frame(m)].flat()));
}

/** Feed chunks; return the messages (copied, so views cannot change under us). */
function feed(d: Deframer, chunks: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const c of chunks) d.push(c, (m) => out.push(Uint8Array.from(m)));
  return out;
}

/** Split `wire` at the given cut points. */
function cut(wire: Uint8Array, points: readonly number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (wire.byteLength + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of [...at, wire.byteLength]) {
    out.push(wire.subarray(prev, p));
    prev = p;
  }
  return out;
}

function deframingError(fn: () => void): TapsError {
  try {
    fn();
  } catch (err) {
    expect(isTapsError(err)).toBe(true);
    expect((err as TapsError).code).toBe('ERR_TAPS_DEFRAMING_FAILED');
    return err as TapsError;
  }
  throw new Error('expected ERR_TAPS_DEFRAMING_FAILED');
}

describe('lengthPrefixFramer', () => {
  it.each([
    [1, [0x05]],
    [2, [0x00, 0x05]],
    [4, [0x00, 0x00, 0x00, 0x05]],
  ] as const)('a %i-byte header is the big-endian length', (headerBytes, header) => {
    const f = lengthPrefixFramer({ headerBytes });
    const wire = Buffer.from(f.frame(bytes('hello')) as Uint8Array);
    expect([...wire]).toEqual([...header, ...bytes('hello')]);
    expect(feed(f.createDeframer(), [wire]).map(text)).toEqual(['hello']);
  });

  it('maximum sizes: the header width caps the default; a message over the maximum is refused on send', () => {
    expect(lengthPrefixFramer({ headerBytes: 1 }).maxMessageSize).toBe(255);
    expect(lengthPrefixFramer({ headerBytes: 2 }).maxMessageSize).toBe(65535);
    expect(lengthPrefixFramer().maxMessageSize).toBe(16 * 1024 * 1024);
    const f = lengthPrefixFramer({ headerBytes: 2, maxMessageSize: 100 });
    expect(() => f.frame(new Uint8Array(100))).not.toThrow();
    let err: unknown;
    try {
      f.frame(new Uint8Array(101));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SendError);
    expect(err).toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE', message: expect.stringContaining('101') });
  });

  it('a frame announcing more than the maximum fails at once, before its body arrives', () => {
    const d = lengthPrefixFramer({ headerBytes: 2, maxMessageSize: 100 }).createDeframer();
    const err = deframingError(() => d.push(new Uint8Array([0x00, 101]), () => {}));
    expect(err.message).toContain('101');
    expect(d.buffered).toBe(0);
    deframingError(() => d.push(new Uint8Array([0]), () => {})); // unusable afterwards
  });

  it('the announced size is checked even when the header is split across chunks', () => {
    const d = lengthPrefixFramer({ maxMessageSize: 1000 }).createDeframer();
    d.push(new Uint8Array([0x00, 0x00]), () => {});
    deframingError(() => d.push(new Uint8Array([0x10, 0x00]), () => {}));
  });

  it('rejects bad options with TypeError/RangeError naming them', () => {
    expect(() => lengthPrefixFramer({ headerBytes: 3 as 4 })).toThrow(/headerBytes/);
    expect(() => lengthPrefixFramer({ headerBytes: 1, maxMessageSize: 256 })).toThrow(RangeError);
    expect(() => lengthPrefixFramer({ maxMessageSize: -1 })).toThrow(/maxMessageSize/);
    expect(() => lengthPrefixFramer({ maxMessageSize: 1.5 })).toThrow(RangeError);
    expect(() => lengthPrefixFramer(null as unknown as object)).toThrow(TypeError);
  });

  it('small messages go as one buffer; large ones as header + the caller\'s own bytes (no copy)', () => {
    const f = lengthPrefixFramer();
    expect(f.frame(new Uint8Array(1024))).toBeInstanceOf(Uint8Array);
    const big = new Uint8Array(64 * 1024);
    const pieces = f.frame(big) as readonly Uint8Array[];
    expect(Array.isArray(pieces)).toBe(true);
    expect(pieces).toHaveLength(2);
    expect([...pieces[0]!]).toEqual([0x00, 0x01, 0x00, 0x00]);
    expect(pieces[1]).toBe(big);
  });

  it('fast path: whole messages in one chunk come out as views of that chunk', () => {
    const f = lengthPrefixFramer();
    const chunk = Buffer.from(wireOf(f, [bytes('a'), bytes('bb'), bytes('')]));
    const got: Uint8Array[] = [];
    f.createDeframer().push(chunk, (m) => got.push(m));
    expect(got.map(text)).toEqual(['a', 'bb', '']);
    for (const m of got) expect(m.buffer).toBe(chunk.buffer);
  });

  it('a message split over many chunks is reassembled; a zero-length chunk changes nothing', () => {
    const f = lengthPrefixFramer({ headerBytes: 2 });
    const msg = Buffer.alloc(3000, 7);
    const wire = wireOf(f, [msg, bytes('next')]);
    const d = f.createDeframer();
    const got = feed(d, [wire.subarray(0, 1), new Uint8Array(0), wire.subarray(1, 1500), wire.subarray(1500, 3001), wire.subarray(3001)]);
    expect(got.map((m) => m.byteLength)).toEqual([3000, 4]);
    expect(Buffer.from(got[0]!).equals(msg)).toBe(true);
    expect(d.buffered).toBe(0);
    expect(() => d.end()).not.toThrow();
  });

  it('buffered counts a partial message; the stream ending inside one fails', () => {
    const d = lengthPrefixFramer().createDeframer();
    d.push(new Uint8Array([0, 0, 0, 10, 1, 2, 3]), () => {});
    expect(d.buffered).toBe(7);
    const err = deframingError(() => d.end());
    expect(err.message).toContain('7 bytes');
    expect(d.buffered).toBe(0); // freed
  });
});

describe('delimiterFramer', () => {
  it('splits on newline by default and appends it on send', () => {
    const f = delimiterFramer();
    expect(text(f.frame(bytes('hi')) as Uint8Array)).toBe('hi\n');
    expect(feed(f.createDeframer(), [bytes('a\nbb\n\nccc\n')]).map(text)).toEqual(['a', 'bb', '', 'ccc']);
  });

  it('finds a multi-byte delimiter split across chunks, in every possible place', () => {
    const f = delimiterFramer({ delimiter: '<END>' });
    const wire = wireOf(f, [bytes('first'), bytes('second<EN'), bytes('')]);
    for (let i = 0; i <= wire.byteLength; i++) {
      for (let j = i; j <= wire.byteLength; j++) {
        const got = feed(f.createDeframer(), [wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]);
        expect(got.map(text)).toEqual(['first', 'second<EN', '']);
      }
    }
  });

  it('strips a \\r before \\n when asked, and only then', () => {
    const input = [bytes('GET / HTTP/1.1\r\nHost: x\r'), bytes('\nbare\n')];
    expect(feed(delimiterFramer({ stripCarriageReturn: true }).createDeframer(), input).map(text)).toEqual(['GET / HTTP/1.1', 'Host: x', 'bare']);
    expect(feed(delimiterFramer().createDeframer(), input).map(text)).toEqual(['GET / HTTP/1.1\r', 'Host: x\r', 'bare']);
  });

  it('refuses to send a message containing the delimiter, or ending so that it would not arrive whole', () => {
    const expectRefused = (f: MessageFramer, m: string): void => {
      let err: unknown;
      try {
        f.frame(bytes(m));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SendError);
      expect(err).toMatchObject({ code: 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES' });
    };
    expectRefused(delimiterFramer(), 'two\nlines');
    expectRefused(delimiterFramer({ delimiter: '\r\n' }), 'a\r\nb');
    expectRefused(delimiterFramer({ delimiter: 'aba' }), 'xab'); // 'xab' + 'aba' = 'x' 'aba' 'ba'
    expectRefused(delimiterFramer({ stripCarriageReturn: true }), 'ends in CR\r');
    expect(() => delimiterFramer({ delimiter: '\r\n' }).frame(bytes('a\rb\nc'))).not.toThrow();
  });

  it('a message over the maximum fails on send and on receive', () => {
    const f = delimiterFramer({ maxMessageSize: 4 });
    expect(() => f.frame(bytes('12345'))).toThrow(expect.objectContaining({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' }));
    deframingError(() => feed(f.createDeframer(), [bytes('12345\n')])); // fast path
    const d = f.createDeframer();
    feed(d, [bytes('12')]);
    deframingError(() => feed(d, [bytes('345\n')])); // held path
  });

  it('bytes past the maximum without a delimiter fail instead of buffering without bound', () => {
    const f = delimiterFramer({ delimiter: '\r\n', maxMessageSize: 10 });
    const d = f.createDeframer();
    feed(d, [bytes('0123456789\r')]); // max + part of the delimiter: could still be a message
    expect(d.buffered).toBe(11);
    const err = deframingError(() => feed(d, [bytes('x')]));
    expect(err.message).toContain('10 bytes');
    expect(d.buffered).toBe(0);
    const d2 = f.createDeframer();
    deframingError(() => feed(d2, [new Uint8Array(1 << 20)])); // one huge chunk
  });

  it('the stream ending without a final delimiter fails; ending cleanly does not', () => {
    const d = delimiterFramer().createDeframer();
    feed(d, [bytes('done\n')]);
    expect(() => d.end()).not.toThrow();
    feed(d, [bytes('partial')]);
    deframingError(() => d.end());
  });

  it('rejects bad options with TypeError/RangeError naming them', () => {
    expect(() => delimiterFramer({ delimiter: '' })).toThrow(/delimiter/);
    expect(() => delimiterFramer({ delimiter: 5 as unknown as string })).toThrow(TypeError);
    expect(() => delimiterFramer({ maxMessageSize: -1 })).toThrow(/maxMessageSize/);
  });
});

// ── properties ────────────────────────────────────────────────────────────

const lengthFramers = fc.record({ headerBytes: fc.constantFrom(1 as const, 2 as const, 4 as const), maxMessageSize: fc.integer({ min: 0, max: 255 }) });
const delimiters = fc.oneof(
  fc.constantFrom('\n', '\r\n', '\0', 'aba', 'aab', '<<>>').map((s) => bytes(s)),
  fc.uint8Array({ minLength: 1, maxLength: 4 }),
);

describe('framer properties (fast-check)', () => {
  it('length-prefix: any chunking of a framed stream yields the same messages', () => {
    fc.assert(
      fc.property(
        lengthFramers,
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (opts, raw, points) => {
          const f = lengthPrefixFramer(opts);
          const messages = raw.map((m) => m.subarray(0, opts.maxMessageSize));
          const wire = wireOf(f, messages);
          const d = f.createDeframer();
          const got = feed(d, cut(wire, points));
          expect(got.map((m) => Buffer.from(m).toString('hex'))).toEqual(messages.map((m) => Buffer.from(m).toString('hex')));
          expect(d.buffered).toBe(0);
          d.end();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('delimiter: any chunking of a framed stream yields the same messages (messages the framer accepts)', () => {
    fc.assert(
      fc.property(
        delimiters,
        fc.boolean(),
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (delimiter, stripCarriageReturn, raw, points) => {
          const f = delimiterFramer({ delimiter, maxMessageSize: 64, stripCarriageReturn });
          const accepted: Uint8Array[] = [];
          const pieces: Uint8Array[] = [];
          for (const m of raw) {
            try {
              pieces.push(f.frame(m) as Uint8Array);
              accepted.push(m);
            } catch (err) {
              expect(err).toBeInstanceOf(SendError);
            }
          }
          const wire = Buffer.concat(pieces);
          const got = feed(f.createDeframer(), cut(wire, points));
          expect(got.map((m) => Buffer.from(m).toString('hex'))).toEqual(accepted.map((m) => Buffer.from(m).toString('hex')));
        },
      ),
      { numRuns: 300 },
    );
  });

  const garbage = fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 });

  function neverThrowsOtherwise(make: () => Deframer, bound: number, chunks: Uint8Array[], end: boolean): void {
    const d = make();
    try {
      for (const c of chunks) {
        d.push(c, (m) => expect(m.byteLength).toBeLessThanOrEqual(bound));
        expect(d.buffered).toBeLessThanOrEqual(bound);
      }
      if (end) d.end();
    } catch (err) {
      expect(isTapsError(err) && (err as TapsError).code === 'ERR_TAPS_DEFRAMING_FAILED').toBe(true);
      expect(d.buffered).toBe(0);
    }
  }

  it('length-prefix: arbitrary bytes fail only with ERR_TAPS_DEFRAMING_FAILED and never buffer past max + header', () => {
    fc.assert(
      fc.property(lengthFramers, garbage, fc.boolean(), (opts, chunks, end) => {
        const f = lengthPrefixFramer(opts);
        neverThrowsOtherwise(() => f.createDeframer(), opts.maxMessageSize + opts.headerBytes, chunks, end);
      }),
      { numRuns: 500 },
    );
  });

  it('delimiter: arbitrary bytes fail only with ERR_TAPS_DEFRAMING_FAILED and never buffer past max + delimiter', () => {
    fc.assert(
      fc.property(delimiters, fc.integer({ min: 0, max: 100 }), fc.boolean(), garbage, fc.boolean(), (delimiter, max, strip, chunks, end) => {
        const f = delimiterFramer({ delimiter, maxMessageSize: max, stripCarriageReturn: strip });
        neverThrowsOtherwise(() => f.createDeframer(), max + delimiter.byteLength, chunks, end);
      }),
      { numRuns: 500 },
    );
  });
});
