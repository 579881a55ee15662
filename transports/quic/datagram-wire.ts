/**
 * The wire form of the `quic-dgram` stack (docs/quic-datagrams.md), as pure
 * functions tested without sockets.
 *
 * A message sent unreliably is one QUIC DATAGRAM frame (RFC 9221):
 *
 * ```
 * flow (varint) | kind (1 byte) | sequence (4 bytes, big-endian) | message
 * ```
 *
 * - `flow`: the stream id of the flow's bidirectional stream: each Connection
 *   of a group is one bidirectional stream and the datagrams that go with it
 *   (as RFC 9297 ties HTTP datagrams to a request stream). Variable-length
 *   integer of RFC 9000 §16.
 * - `kind`: {@link KIND_UNORDERED}, or {@link KIND_ORDERED}: the receiver
 *   drops an ordered message older than the newest ordered one it delivered
 *   on that flow (RFC 9622 §9.1.3.3 without retransmission: late is stale).
 * - `sequence`: per flow and direction, one more per datagram, wrapping at
 *   2^32 (compared with serial number arithmetic, RFC 1982).
 *
 * A message sent reliably goes on a stream: on the flow's bidirectional
 * stream when ordered (each direction opens with the byte {@link STREAM_VERSION},
 * then each message as a 4-byte big-endian length and the bytes), or alone on
 * a new unidirectional stream when unordered (`flow (varint) | message`, then
 * FIN).
 *
 * @example
 * const wire = encodeDatagram(0, false, 7, bytes);
 * const got = decodeDatagram(wire); // { flow: 0, ordered: false, seq: 7, message }
 */

/** A message that may be delivered in any order. */
export const KIND_UNORDERED = 0;
/** A message delivered only if newer than every ordered message already delivered on its flow. */
export const KIND_ORDERED = 1;
/** The first byte of each direction of a flow's bidirectional stream. */
export const STREAM_VERSION = 0x01;

const SEQ_BYTES = 4;
/** The largest value a variable-length integer this module reads may have (JavaScript numbers stay exact). */
const MAX_VARINT = Number.MAX_SAFE_INTEGER;

/** Bytes a QUIC variable-length integer of `v` takes (RFC 9000 §16). */
export function varintLength(v: number): 1 | 2 | 4 | 8 {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x4000_0000) return 4;
  return 8;
}

/** Write `v` at `at` as a QUIC variable-length integer; returns the offset after it. */
export function writeVarint(into: Uint8Array, at: number, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_VARINT) throw new RangeError(`a QUIC variable-length integer must be an integer 0..2^53-1, got ${v}`);
  const n = varintLength(v);
  if (n === 1) into[at] = v;
  else if (n === 2) {
    into[at] = 0x40 | (v >>> 8);
    into[at + 1] = v & 0xff;
  } else if (n === 4) {
    into[at] = 0x80 | (v >>> 24);
    into[at + 1] = (v >>> 16) & 0xff;
    into[at + 2] = (v >>> 8) & 0xff;
    into[at + 3] = v & 0xff;
  } else {
    const hi = Math.floor(v / 2 ** 32);
    const lo = v >>> 0;
    into[at] = 0xc0 | (hi >>> 24);
    into[at + 1] = (hi >>> 16) & 0xff;
    into[at + 2] = (hi >>> 8) & 0xff;
    into[at + 3] = hi & 0xff;
    into[at + 4] = lo >>> 24;
    into[at + 5] = (lo >>> 16) & 0xff;
    into[at + 6] = (lo >>> 8) & 0xff;
    into[at + 7] = lo & 0xff;
  }
  return at + n;
}

/** Read a QUIC variable-length integer at `at`: `[value, next offset]`, or undefined when truncated or beyond 2^53-1. */
export function readVarint(from: Uint8Array, at: number): [number, number] | undefined {
  if (at >= from.byteLength) return undefined;
  const first = from[at]!;
  const n = 1 << (first >>> 6);
  if (at + n > from.byteLength) return undefined;
  let v = first & 0x3f;
  for (let i = 1; i < n; i++) v = v * 256 + from[at + i]!;
  return v > MAX_VARINT ? undefined : [v, at + n];
}

/** Header bytes in front of every datagram of `flow`. */
export function headerLength(flow: number): number {
  return varintLength(flow) + 1 + SEQ_BYTES;
}

/** One datagram's bytes: header and message. */
export function encodeDatagram(flow: number, ordered: boolean, seq: number, message: Uint8Array): Uint8Array {
  const h = headerLength(flow);
  const out = Buffer.allocUnsafe(h + message.byteLength);
  let at = writeVarint(out, 0, flow);
  out[at++] = ordered ? KIND_ORDERED : KIND_UNORDERED;
  out.writeUInt32BE(seq >>> 0, at);
  out.set(message, h);
  return out;
}

/** A datagram read back; `message` is a view of the datagram's bytes. */
export interface DecodedDatagram {
  readonly flow: number;
  readonly ordered: boolean;
  readonly seq: number;
  readonly message: Uint8Array;
}

/** Read one datagram; a string says why it is malformed (a peer's bytes are never trusted). */
export function decodeDatagram(d: Uint8Array): DecodedDatagram | string {
  const flow = readVarint(d, 0);
  if (flow === undefined) return 'truncated flow id';
  let at = flow[1];
  if (at + 1 + SEQ_BYTES > d.byteLength) return `${d.byteLength} bytes: shorter than a header`;
  const kind = d[at++]!;
  if (kind !== KIND_UNORDERED && kind !== KIND_ORDERED) return `unknown kind ${kind}`;
  const seq = ((d[at]! << 24) | (d[at + 1]! << 16) | (d[at + 2]! << 8) | d[at + 3]!) >>> 0;
  at += SEQ_BYTES;
  return { flow: flow[0], ordered: kind === KIND_ORDERED, seq, message: d.subarray(at) };
}

/** Is sequence number `a` after `b` (RFC 1982 serial number arithmetic on 32 bits)? */
export function isNewer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x8000_0000;
}

/** The first bytes of a unidirectional stream that carries one reliable, unordered message of `flow`. */
export function uniPrefix(flow: number): Uint8Array {
  const out = new Uint8Array(varintLength(flow));
  writeVarint(out, 0, flow);
  return out;
}
