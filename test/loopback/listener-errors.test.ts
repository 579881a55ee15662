/**
 * A listener that fails before the library called `start()` keeps the
 * failure and reports it at `start()` (the accept queue the listeners share),
 * on real bound sockets: the tcp/tls server listener and the UDP listener.
 * Channels accepted before the failure are aborted, never handed out, and
 * the socket is closed. The failure is emitted on the real bound server:
 * the errors a listening socket reports (EMFILE at accept) cannot be
 * provoked on demand here, since libuv absorbs EMFILE with a reserved
 * descriptor and drops the connection instead.
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { DriverListenerHandler, TransportChannel } from '../../src/driver.js';
import { bindServer, SocketChannel } from '../../transports/tcp/index.js';
import { UdpListener } from '../../transports/udp/index.js';
import { listenAttempt, scopeFor } from '../helpers/policy.js';

function recorder(): DriverListenerHandler & { got: TransportChannel[]; errors: Error[] } {
  const got: TransportChannel[] = [];
  const errors: Error[] = [];
  return { got, errors, connection: (ch) => void got.push(ch), error: (e) => void errors.push(e) };
}

const emfile = (): Error => Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });

describe('a listener failure before start() is reported at start()', () => {
  it('tcp: the server error is kept, the connection accepted before it is aborted, the server closed', async () => {
    const scope = scopeFor();
    const server = createServer({ allowHalfOpen: true, noDelay: true });
    const listener = await bindServer(server, await listenAttempt(scope, 'tcp', '127.0.0.1'), 'connection', (s) => new SocketChannel(s), 'tcp');
    const client = connect({ host: '127.0.0.1', port: listener.local.port });
    client.on('error', () => {});
    const accepted = once(server, 'connection');
    await once(client, 'connect');
    await accepted;
    const clientClosed = new Promise((r) => client.once('close', r));
    server.emit('error', emfile());
    const h = recorder();
    listener.start(h);
    expect(h.got).toEqual([]);
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED', cause: { code: 'EMFILE' } });
    // The queued connection was aborted (RST): the client sees it end.
    await clientClosed;
    // The listening socket is closed: a new connect is refused.
    const refused = connect({ host: '127.0.0.1', port: listener.local.port });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
    await listener.close();
  });

  it('tcp: an error after start() still goes to the handler at once', async () => {
    const scope = scopeFor();
    const server = createServer();
    const listener = await bindServer(server, await listenAttempt(scope, 'tcp', '127.0.0.1'), 'connection', (s: Socket) => new SocketChannel(s), 'tcp');
    const h = recorder();
    listener.start(h);
    server.emit('error', emfile());
    expect(h.errors).toMatchObject([{ code: 'ERR_TAPS_CONNECTION_ABORTED' }]);
    await listener.close();
  });

  it('udp: the socket error is kept, the peer channel made before it is not handed out, the socket closed', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    const listener = new UdpListener(socket, 4, {});
    const peer = createSocket('udp4');
    const arrived = once(socket, 'message');
    peer.send(Buffer.from('hello'), listener.local.port, '127.0.0.1');
    await arrived;
    const closed = new Promise((r) => socket.once('close', r));
    socket.emit('error', Object.assign(new Error('recvmsg ENOMEM'), { code: 'ENOMEM', syscall: 'recvmsg' }));
    const h = recorder();
    listener.start(h);
    expect(h.got).toEqual([]);
    expect(h.errors).toMatchObject([{ code: 'ERR_TAPS_CONNECTION_ABORTED', cause: { code: 'ENOMEM' } }]);
    await closed;
    peer.close();
    await listener.close();
  });
});
