/**
 * A Connection as a Node `Duplex` or as Web Streams, for code that speaks
 * streams (`pipeline()`, `compose()`, `Response` bodies, `TextDecoderStream`).
 *
 * Both keep backpressure end to end: the readable side takes the next
 * message only when its consumer asks for more (an unread connection
 * pauses its transport), and a write completes only when `send()` has
 * handed the data to the transport. Each chunk written is one message and
 * each chunk read is one message's data, so on a message-preserving stack
 * (or with a framer) boundaries survive. Ending the writable side closes the
 * connection gracefully (`close()`); destroying or aborting it aborts the
 * connection (`abort()`); the readable side ends when the peer has finished.
 *
 * @example
 * import { pipeline } from 'node:stream/promises';
 * await pipeline(fs.createReadStream('big.bin'), connectionDuplex(conn), fs.createWriteStream('echo.bin'));
 * const { readable, writable } = connectionStreams(conn);
 * await readable.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write: (t) => console.log(t) }));
 */
import { Duplex } from 'node:stream';
import type { Connection } from './connection/connection.js';

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function checkConnection(conn: Connection): void {
  if (typeof conn !== 'object' || conn === null || typeof conn.send !== 'function' || typeof conn[Symbol.asyncIterator] !== 'function') {
    throw new TypeError('conn must be a Connection');
  }
}

/** The connection as a Node `Duplex` (binary: chunks are `Uint8Array`/`Buffer`). */
export function connectionDuplex(conn: Connection): Duplex {
  checkConnection(conn);
  const messages = conn[Symbol.asyncIterator]();
  let reading = false;
  return new Duplex({
    // One message per read, taken only when the consumer wants more.
    highWaterMark: 1,
    readableObjectMode: false,
    read(this: Duplex) {
      if (reading) return;
      reading = true;
      messages.next().then(
        (r) => {
          reading = false;
          this.push(r.done ? null : r.value.data);
        },
        (err: unknown) => {
          reading = false;
          this.destroy(asError(err));
        },
      );
    },
    write(chunk: Uint8Array | string, _encoding, callback) {
      conn.send(chunk).then(() => callback(), (err: unknown) => callback(asError(err)));
    },
    final(callback) {
      conn.close().then(() => callback(), (err: unknown) => callback(asError(err)));
    },
    destroy(err, callback) {
      if (conn.state !== 'closed') conn.abort(err ?? undefined);
      void messages.return?.();
      callback(err);
    },
  });
}

/** The connection as a `{ readable, writable }` pair of Web Streams. */
export function connectionStreams(conn: Connection): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array | string> } {
  checkConnection(conn);
  const messages = conn[Symbol.asyncIterator]();
  const readable = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await messages.next();
        if (r.done) controller.close();
        else controller.enqueue(r.value.data);
      },
      async cancel() {
        await messages.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  const writable = new WritableStream<Uint8Array | string>(
    {
      write: async (chunk) => {
        await conn.send(chunk);
      },
      close: () => conn.close(),
      abort: (reason: unknown) => {
        conn.abort(reason === undefined ? undefined : asError(reason));
      },
    },
    { highWaterMark: 1 },
  );
  return { readable, writable };
}
