/**
 * A ws client over a TCP socket of the test's own (under TLS for wss), whose
 * counters are the bytes on the wire both ways: `raw.bytesRead` is what the
 * server sent, {@link wrote} what the client sent.
 *
 * @example
 * const { raw, ws, opened } = await rawWebSocket(port, cleanups);
 * await opened;
 * expect(host.usage(id).received).toBe(wrote(raw));
 */
import { connect as netConnect, type Socket } from 'node:net';
import tls from 'node:tls';
import { WebSocket } from 'ws';

/** A client of {@link rawWebSocket}: `opened` rejects when it closes before its upgrade, `closed` when its TCP socket does. */
export interface RawWebSocket {
  readonly raw: Socket;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;
}

/** What a TCP socket wrote (its handle's counter). */
export const wrote = (raw: Socket): number => (raw as Socket & { _bytesDispatched: number })._bytesDispatched;

/** Open a ws client to 127.0.0.1:`port` (wss trusting `ca` when given); its socket is destroyed by `cleanups`. */
export async function rawWebSocket(
  port: number, cleanups: (() => unknown)[], init: { readonly ca?: string | Buffer; readonly headers?: Record<string, string> } = {},
): Promise<RawWebSocket> {
  const raw = netConnect(port, '127.0.0.1');
  raw.on('error', () => {});
  await new Promise<void>((r) => raw.once('connect', () => r()));
  const closed = new Promise<void>((r) => raw.once('close', () => r()));
  cleanups.push(() => void raw.destroy());
  let socket: Socket = raw;
  if (init.ca !== undefined) {
    socket = tls.connect({ socket: raw, ca: init.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    socket.on('error', () => {});
  }
  const url = init.ca !== undefined ? `wss://localhost:${port}/` : `ws://127.0.0.1:${port}/`;
  const ws = new WebSocket(url, { createConnection: () => socket, headers: init.headers ?? {} } as ConstructorParameters<typeof WebSocket>[2]);
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('close', () => reject(new Error('closed before open')));
  });
  opened.catch(() => {});
  return { raw, ws, opened, closed };
}
