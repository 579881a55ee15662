/**
 * A loopback port number nothing listens on, over TCP or UDP, on 127.0.0.1 and ::1: a connect to it is refused
 * (RST for TCP, ICMP port unreachable for UDP). The kernel picks a free TCP port; it is kept only if UDP is free too.
 *
 * @example
 * const port = await refusedPort();
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

export async function refusedPort(): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const { port } = s.address() as { port: number };
    await new Promise((r) => s.close(r));
    const free = await Promise.all(
      (['udp4', 'udp6'] as const).map(
        (type) =>
          new Promise<boolean>((resolve) => {
            const u = createSocket(type);
            u.once('error', () => resolve(false));
            u.bind(port, type === 'udp4' ? '127.0.0.1' : '::1', () => u.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
}
