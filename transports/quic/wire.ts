/**
 * QUIC on the wire against the tenant's sent-bytes budget: every UDP datagram
 * the client's socket sends (Initial and Handshake packets, packet and frame
 * headers, acknowledgements, padding, retransmissions) counts, not only the
 * stream and datagram payload the channels charge before writing. The
 * payload is charged where it is written (refused whole when over); each
 * datagram's size is added to a counter as it leaves, and what the datagrams
 * carried beyond the payload charged so far is counted then (never refused:
 * it is gone; a budget it exceeded refuses the next send). UDP and IP headers
 * do not count.
 *
 * @example
 * const wire = new QuicWire(wireMeter);
 * connectedQuicSocket(engine, { ..., onSent: wire.sent });
 * new QuicGroup(..., { meter: wire.payload(meterFor(attempt)) });
 */
import type { ByteMeter } from '../../src/driver.js';
import type { WireMeter } from '../kit/account.js';

export class QuicWire {
  readonly #meter: WireMeter;
  /** Payload charged by the channels; datagram bytes sent; overhead charged here. */
  #payload = 0;
  #wire = 0;
  #overhead = 0;

  constructor(meter: WireMeter) {
    this.#meter = meter;
  }

  /** One datagram of `bytes` left the socket: charge what it carried beyond the payload (a counter add). */
  readonly sent = (bytes: number): void => {
    this.#wire += bytes;
    const over = this.#wire - this.#payload - this.#overhead;
    if (over > 0) {
      this.#overhead += over;
      this.#meter.sentAfter(over);
    }
  };

  /** The channels' meter: `inner` charges the payload first, and this connection learns how much it was. */
  payload(inner: ByteMeter | undefined): ByteMeter | undefined {
    if (inner === undefined) return undefined;
    return Object.freeze({
      sent: (bytes: number): void => {
        inner.sent(bytes);
        this.#payload += bytes;
      },
    });
  }
}
