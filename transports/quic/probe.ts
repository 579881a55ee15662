/**
 * A refused UDP port, found before the QUIC client is built.
 *
 * Building a `@matrixai/quic` client (its config, its connection, its
 * socket) and unwinding it again when the peer's ICMP port unreachable ends
 * the handshake costs several times what a refused TCP connect costs, so a
 * closed port made every QUIC candidate the slowest of a selection. Before
 * that work the attempt sends an empty datagram (twice: a second send reports
 * an ICMP error already pending on the socket) from a plain UDP socket
 * connected to the checked peer and lets the event loop poll once: a host
 * that answers with ICMP port/host/net unreachable (a near peer answers
 * within that poll) ends the attempt with it at once. An empty datagram is
 * not a QUIC packet, and a QUIC server discards it (RFC 9000 §12.2, §14.1);
 * it goes to the same checked address and port the handshake goes to, from
 * the same local address. No answer within the poll says nothing: the
 * handshake follows, and its own connected socket still reports a later
 * ICMP error (./socket.ts).
 *
 * @example
 * const refused = await udpRefusal(attempt.target, '127.0.0.1'); // a target the guard checked for quic
 * if (refused) throw unreachableError(refused, where);
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { isIP } from 'node:net';
import type { CheckedTarget } from '../../src/policy/chokepoint.js';
import { stackless } from '../../src/stackless.js';
import { targetAddress } from '../kit/dial.js';
import { isUnreachable } from './socket.js';

const EMPTY = new Uint8Array(0);

/** Only the checked IP literal is ever "looked up": a name here would reach DNS. */
function literalOnly(host: string, _options: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const family = isIP(host);
  if (family === 0) callback(new TypeError(`quic probe: ${host} is not an IP literal`), '', 0);
  else callback(null, host, family);
}

/**
 * The ICMP unreachable error the checked peer (a target minted for a UDP protocol: TypeError otherwise) answered an empty datagram with within one poll of the event loop, or
 * undefined (no answer yet, or the probe could not be sent: the handshake then decides).
 */
export async function udpRefusal(target: CheckedTarget, localHost: string): Promise<Error | undefined> {
  const t = targetAddress(target, 'quic probe', 'udp');
  let refusal: Error | undefined;
  // No IPV6_V6ONLY (a system call at bind): a socket connected to one IPv6 peer exchanges with that peer only,
  // and the ephemeral port it takes is the kernel's to choose either way.
  const socket = createSocket({ type: t.family === 6 ? 'udp6' : 'udp4', lookup: literalOnly });
  socket.on('error', (err) => {
    if (isUnreachable(err)) refusal ??= err;
  });
  try {
    // Bound and connected in one wait: dgram runs the connect once the bind is done (at once here: the literal's
    // "lookup" answers synchronously).
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, localHost);
      socket.connect(t.port, t.address, (err?: Error) => {
        socket.off('error', reject);
        if (err) reject(err);
        else resolve();
      });
    });
    // Sent twice in one go: a near peer's ICMP error is pending on the socket by the time the first send returns,
    // and the second send reports it (Linux returns a pending error from the next send) without a loop turn.
    const err = await sentTwice(socket);
    if (isUnreachable(err)) refusal ??= err as Error;
    // Else one poll phase after the sends (an immediate queued from the poll phase itself runs before the next poll).
    for (let turn = 0; turn < 2 && refusal === undefined; turn++) await new Promise((r) => setImmediate(r));
  } catch {
    // Not probed (the address could not be bound, say): the handshake finds out the usual way.
  } finally {
    socket.close();
  }
  return refusal;
}

/**
 * Send the empty datagram twice; resolves with the second send's error, if any (the first's ICMP error
 * surfaces there). Node makes that error inside `send`: it is an answer here, not a bug, so it is made
 * without a stack.
 */
function sentTwice(socket: DgramSocket): Promise<Error | null> {
  return new Promise((resolve) =>
    stackless(() => {
      socket.send(EMPTY);
      socket.send(EMPTY, (err) => resolve(err));
    }),
  );
}
