/**
 * The chokepoint around peer sockets (rendezvous): a peer socket binds only a
 * bind target this tenant's guard minted, and sends only to connect targets it
 * minted for the socket's protocol — not a lookalike object, not another
 * tenant's target, not a target minted for another use or protocol. A real
 * UDP socket counts what arrives: nothing refused ever leaves.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PeerSocket } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import { PolicyDeniedError } from '../../src/errors.js';
import { createScope, type CheckedTarget, type NetworkScope } from '../../src/policy/chokepoint.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { udpDriver } from '../../transports/udp/index.js';
import { allowAll } from '../helpers/policy.js';

const attempt = (scope: NetworkScope, target: CheckedTarget) => ({
  signal: new AbortController().signal, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }),
  security: SecurityParameters.disabled(), properties: TransportProperties.unreliableDatagram(), options: {}, guard: scope.guard,
});

describe('peer sockets go through the chokepoint', () => {
  let watcher: Socket;
  let received = 0;
  let port = 0;
  let socket: PeerSocket | undefined;

  beforeEach(async () => {
    received = 0;
    watcher = createSocket('udp4');
    watcher.on('message', () => received++);
    await new Promise<void>((r) => watcher.bind(0, '127.0.0.1', r));
    port = watcher.address().port;
  });

  afterEach(async () => {
    await socket?.close();
    socket = undefined;
    await new Promise<void>((r) => watcher.close(r));
  });

  const send = (s: PeerSocket, target: CheckedTarget): Promise<Error | undefined> => new Promise((r) => s.sendTo(new Uint8Array([1]), target, r));

  it('binds only a minted bind target, and sends only to minted connect targets of its tenant and protocol', async () => {
    const scope = createScope({ tenant: 'a', policy: allowAll });
    const other = createScope({ tenant: 'b', policy: allowAll });
    const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
    const forgedBind = { ...bind } as CheckedTarget;
    await expect(scope.network.openPeerSocket!(udpDriver, attempt(scope, forgedBind))).rejects.toThrow(PolicyDeniedError);
    const connectAsBind = await scope.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port: 0 });
    await expect(scope.network.openPeerSocket!(udpDriver, attempt(scope, connectAsBind))).rejects.toMatchObject({ decision: { code: 'unverified' } });
    socket = await scope.network.openPeerSocket!(udpDriver, attempt(scope, bind));
    socket.start({ datagram: () => {}, error: () => {} });

    const good = await scope.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port });
    const refused: [string, CheckedTarget][] = [
      ['a lookalike object', { ...good } as CheckedTarget],
      ['a prototype copy', Object.create(good) as CheckedTarget],
      ["another tenant's target", await other.guard.authorize({ use: 'connect', protocol: 'udp', address: '127.0.0.1', port })],
      ['a target for another use', await scope.guard.authorize({ use: 'accept', protocol: 'udp', address: '127.0.0.1', port })],
      ['a target for another protocol', await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port })],
    ];
    for (const [what, target] of refused) {
      const err = await send(socket, target);
      expect(err, what).toBeInstanceOf(PolicyDeniedError);
      expect((err as PolicyDeniedError).decision).toMatchObject({ code: 'unverified' });
    }
    await expect(socket.connect({ ...good } as CheckedTarget, () => false)).rejects.toThrow(PolicyDeniedError);
    const first = new Promise((r) => watcher.once('message', r));
    expect(await send(socket, good)).toBeUndefined();
    await first;
    expect(received).toBe(1); // only the minted target's datagram (a refused one would have arrived before it)
  });

  it('is unavailable on a network that cannot open peer sockets, without reaching the driver', async () => {
    const scope = createScope({
      tenant: 'a', policy: allowAll,
      network: { lookup: () => Promise.resolve([]), connect: () => Promise.reject(new Error('no')), listen: () => Promise.reject(new Error('no')) },
    });
    const bind = await scope.guard.authorize({ use: 'bind', protocol: 'udp', address: '127.0.0.1', port: 0 });
    await expect(scope.network.openPeerSocket!(udpDriver, attempt(scope, bind))).rejects.toThrow(/cannot open peer sockets/);
  });
});
