/**
 * An echoing peer for listener tests: every message a Connection of the
 * listener receives goes back to its sender, until the peer goes away.
 *
 * @example
 * const got = echoEach(await preconnection.listen());
 * expect(got()).toHaveLength(1);
 */
import type { Connection } from '../../src/connection/connection.js';
import type { Listener } from '../../src/listener.js';

/** Echo on every Connection `listener` hands over; returns what it handed over so far. */
export function echoEach(listener: Listener): () => Connection[] {
  const got: Connection[] = [];
  listener.on('connectionReceived', (c: Connection) => {
    got.push(c);
    c.on('connectionError', () => {});
    void (async () => {
      try {
        for await (const m of c) await c.send(m.data);
      } catch {
        /* the peer went away */
      }
    })();
  });
  return () => got;
}
