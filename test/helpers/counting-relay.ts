/**
 * A TCP relay on loopback that counts the bytes it carries each way, TCP/IP
 * headers aside: what it read from clients (`fromClient`: what they put on
 * the wire) and passed on to the server (`toServer`: what reached it), and
 * the same the other way. The two differ only by what one end sent after the
 * other had gone (a TLS close_notify racing the peer's close). `idle()`
 * resolves once every connection it carried has closed on both sides, so its
 * counts are final then.
 *
 * @example
 * const relay = await countingRelay(server.port);
 * // ... connect to relay.port ...
 * await relay.idle();
 * expect(host.usage(id).sent).toBe(relay.toServer());
 */
import net from 'node:net';

export interface CountingRelay {
  readonly port: number;
  /** Bytes read from clients so far. */
  fromClient(): number;
  /** Bytes read from clients and passed to the server (still open) so far. */
  toServer(): number;
  /** Bytes read from the server so far. */
  fromServer(): number;
  /** Bytes read from the server and passed to clients (still open) so far. */
  toClient(): number;
  /** Connections carried so far. */
  connections(): number;
  /** Resolves when every connection carried so far has closed on both sides. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export async function countingRelay(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<CountingRelay> {
  let fromClient = 0;
  let toServer = 0;
  let fromServer = 0;
  let toClient = 0;
  let connections = 0;
  const open = new Set<Promise<void>>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((front) => {
    connections++;
    const back = net.connect(upstreamPort, upstreamHost);
    for (const s of [front, back]) {
      sockets.add(s);
      s.on('error', () => {});
    }
    front.on('data', (d: Buffer) => {
      fromClient += d.byteLength;
      if (!back.destroyed) toServer += d.byteLength;
    });
    back.on('data', (d: Buffer) => {
      fromServer += d.byteLength;
      if (!front.destroyed) toClient += d.byteLength;
    });
    front.pipe(back);
    back.pipe(front);
    const gone = (s: net.Socket): Promise<void> => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));
    // One side gone: the other gets a FIN (a reset is not forwarded), and what it still sends is read and counted.
    const after = (gone: net.Socket, other: net.Socket): void => {
      gone.once('close', () => {
        other.end();
        other.resume();
      });
    };
    after(front, back);
    after(back, front);
    const both = Promise.all([gone(front), gone(back)]).then(() => {
      sockets.delete(front);
      sockets.delete(back);
      open.delete(both);
    });
    open.add(both);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    fromClient: () => fromClient,
    toServer: () => toServer,
    fromServer: () => fromServer,
    toClient: () => toClient,
    connections: () => connections,
    idle: async () => {
      while (open.size > 0) await Promise.all([...open]);
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}
