/**
 * The tenant's byte budget at the socket, for bytes a protocol library
 * writes itself: every chunk written to a socket the kit opened is charged
 * to the attempt's {@link ByteMeter} before it reaches the socket's handle
 * (the WebSocket upgrade request ws writes, with the caller's path and
 * headers). A chunk the budget cannot take is not written: the write fails
 * with the `QuotaExceededError` and the socket is destroyed with it (a
 * protocol cannot go on after a refused write), so the library reports that
 * error. Channels that write messages themselves charge them before writing
 * instead, and refuse one message without ending the connection.
 *
 * Hooked at `_write`/`_writev`, which a Writable calls with exactly the bytes
 * about to be handed to the handle (after corking), not at `write`:
 * `end(chunk)` and library internals reach them too. Over TLS this is the
 * plaintext written into the TLS socket.
 *
 * @example
 * const stop = meterWrites(socket, attempt.meter); // until the channel counts its own frames
 */
import type { Socket } from 'node:net';
import type { ByteMeter } from '../../src/driver.js';
import { scopeMeterFor } from '../../src/policy/admission.js';

/**
 * The tenant's byte budget for an attempt (dial, listen or peer socket): its `meter` when a scope's network
 * (or a host's network passing it on) set it, else the budget of the scope that minted its target. A caller
 * that calls a driver directly cannot drop or replace the budget with a meter of its own.
 */
export function meterFor(attempt: { readonly meter?: unknown; readonly target: unknown }): ByteMeter | undefined {
  return scopeMeterFor(attempt.meter, attempt.target);
}

type WriteCallback = (err?: Error | null) => void;
type Chunk = { chunk: Buffer | string; encoding: BufferEncoding };

interface Writes {
  _write(chunk: Buffer | string, encoding: BufferEncoding, cb: WriteCallback): void;
  _writev?(chunks: Chunk[], cb: WriteCallback): void;
}

function size(chunk: Buffer | string, encoding: BufferEncoding): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
}

/**
 * Charge `meter` for every chunk written to `socket` from now on; a refused chunk fails the write (and the
 * socket). Returns what ends the metering (a channel that counts its own messages from then on).
 */
export function meterWrites(socket: Socket, meter: ByteMeter): () => void {
  const s = socket as unknown as Writes;
  const write = s._write;
  const writev = s._writev;
  s._write = function meteredWrite(this: Writes, chunk, encoding, cb) {
    try {
      meter.sent(size(chunk, encoding));
    } catch (err) {
      return cb(err as Error);
    }
    write.call(this, chunk, encoding, cb);
  };
  if (writev !== undefined) {
    s._writev = function meteredWritev(this: Writes, chunks, cb) {
      let n = 0;
      for (const c of chunks) n += size(c.chunk, c.encoding);
      try {
        meter.sent(n);
      } catch (err) {
        return cb(err as Error);
      }
      writev.call(this, chunks, cb);
    };
  }
  return () => {
    s._write = write;
    if (writev !== undefined) s._writev = writev;
  };
}
