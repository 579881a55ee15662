/**
 * When an established QUIC client connection's peer is gone: the ICMP
 * unreachable reports its connected UDP socket gets (./socket.ts), weighed
 * against what QUIC itself knows, so a vanished peer ends the connection in
 * a few probe timeouts instead of at the idle timeout (or never, with the
 * idle timeout off, the default).
 *
 * Before the handshake completes one report ends the attempt (./client.ts).
 * After it, ICMP is unauthenticated: an off-path attacker who guesses the
 * addresses and ports can forge one (RFC 5927 §5, the blind connection-reset
 * attack; RFC 8085 §5.2 asks UDP applications to validate ICMP before acting
 * on it; RFC 9000 §14.2.1 has QUIC validate even PMTU messages), and Linux
 * TCP takes an ICMP unreachable on an established connection as a soft
 * error, reported only if the connection times out (as RFC 5927 §5 advises
 * for hard errors in synchronized states). So one report never ends it.
 * The peer counts as gone only when all of these hold:
 * - at least {@link MIN_REPORTS} reports came since the last packet QUIC
 *   accepted from the peer (quiche's count of the packets it accepted: only
 *   authenticated ones count, so a forged datagram cannot pass for the peer);
 * - a datagram left the socket after the first of them, and one probe
 *   timeout (RFC 9002 §6.2.1, estimated from quiche's smoothed RTT and the
 *   peer's max_ack_delay) passed since without any packet from the peer: a
 *   live peer acknowledges an ack-eliciting packet within that time, and
 *   nothing this client sends unprompted is anything else.
 * Forging reports therefore cannot end a connection whose peer still
 * answers; it can only hasten the end of one whose peer stopped answering.
 * Each report is also a soft error (RFC 9622 §8.3.1) while the connection
 * stays open.
 *
 * The cost while nothing is wrong is one comparison per datagram sent; the
 * counters are read only when a report arrives and by the one timer a
 * suspicion arms.
 *
 * @example
 * const loss = new PeerLoss({ probe: quicheProbe(connection), soft: (e) => group.softError(e), lost: (e) => group.lost(e) });
 * // each ICMP report: loss.unreachable(err); each datagram that left: loss.left(); on teardown: loss.stop();
 */

/** Reports needed since the peer was last heard (a single stray one never ends a connection). */
export const MIN_REPORTS = 2;

/** What the watch reads from QUIC: packets accepted from the peer so far, and the current probe timeout in ms. */
export interface QuicProbe {
  received(): number;
  pto(): number;
}

/** What the watch concluded, for the error's message. */
export interface LossFacts {
  /** ICMP reports since the peer was last heard. */
  readonly reports: number;
  /** ms since the first of them. */
  readonly sinceFirstReport: number;
  /** ms since a datagram left unanswered. */
  readonly unanswered: number;
  /** The probe timeout it was weighed against (ms). */
  readonly pto: number;
}

export interface PeerLossOptions {
  readonly probe: QuicProbe;
  /** Each report while the connection stays open. */
  readonly soft: (error: Error) => void;
  /** The peer is gone (called once, then the watch is stopped): `error` is the last report. */
  readonly lost: (error: Error, facts: LossFacts) => void;
  /** Clock in ms (tests); `performance.now` by default. */
  readonly now?: () => number;
}

export class PeerLoss {
  readonly #o: PeerLossOptions;
  readonly #now: () => number;
  #reports = 0;
  #firstAt = 0;
  /** Packets accepted from the peer when the first report came. */
  #receivedAt = 0;
  /** When a datagram first left after the first report. */
  #leftAt: number | undefined;
  #last: Error | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(options: PeerLossOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether a report came since the peer was last heard (tests, diagnostics). */
  get suspecting(): boolean {
    return this.#reports > 0;
  }

  /** An ICMP unreachable was reported for the peer. */
  unreachable(error: Error): void {
    if (this.#stopped) return;
    if (this.#reports > 0 && this.#heard()) this.#clear();
    if (this.#reports === 0) {
      this.#firstAt = this.#now();
      this.#receivedAt = this.#o.probe.received();
    }
    this.#reports++;
    this.#last = error;
    this.#o.soft(error);
    this.#check();
  }

  /** A datagram left the socket (called for every one: a comparison unless a report is pending). */
  left(): void {
    if (this.#reports === 0 || this.#leftAt !== undefined || this.#stopped) return;
    this.#leftAt = this.#now();
    this.#arm(this.#o.probe.pto());
  }

  /** Stop watching and release the timer (the connection is closing). */
  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  #heard(): boolean {
    return this.#o.probe.received() !== this.#receivedAt;
  }

  #clear(): void {
    this.#reports = 0;
    this.#leftAt = undefined;
    this.#last = undefined;
    this.#disarm();
  }

  /** The timer's end: it is gone, then the same weighing as a report's. */
  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#check();
  };

  #check(): void {
    if (this.#stopped || this.#reports === 0) return;
    if (this.#heard()) return this.#clear();
    if (this.#leftAt === undefined) return;
    const pto = this.#o.probe.pto();
    const unanswered = this.#now() - this.#leftAt;
    if (unanswered < pto) return this.#arm(pto - unanswered);
    if (this.#reports < MIN_REPORTS) return;
    const facts: LossFacts = { reports: this.#reports, sinceFirstReport: this.#now() - this.#firstAt, unanswered, pto };
    const error = this.#last!;
    this.stop();
    this.#o.lost(error, facts);
  }

  #arm(ms: number): void {
    this.#disarm();
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(ms)));
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** quiche's statistics the probe reads (package-internal `conn`, @matrixai/quic ~2.0.9). */
interface QuicheStats {
  stats(): { recv: number; peerMaxAckDelay: number };
  pathStats(): ReadonlyArray<{ active: boolean; rtt: number }>;
}

/** RFC 9002 §6.2.2: the RTT assumed before any sample (quiche's too). */
const INITIAL_RTT_MS = 333;

/**
 * QUIC's view for the watch, from quiche's statistics: packets accepted (`recv`), and an upper estimate of
 * the PTO, srtt + 4·rttvar + max_ack_delay (RFC 9002 §6.2.1) with rttvar taken as 3/4 srtt, since quiche
 * does not expose it: 4·srtt + the peer's max_ack_delay. Undefined when the package has no such internals
 * (then nothing is watched and the idle timeout stays the only end).
 */
export function quicheProbe(connection: object): QuicProbe | undefined {
  const conn = (connection as { conn?: Partial<QuicheStats> }).conn;
  if (typeof conn?.stats !== 'function' || typeof conn.pathStats !== 'function') return undefined;
  const c = conn as QuicheStats;
  return {
    received: () => {
      try {
        return c.stats().recv;
      } catch {
        return -1; // closed under us: counts as heard, so nothing is concluded from it
      }
    },
    pto: () => {
      try {
        const path = c.pathStats().find((p) => p.active);
        return 4 * (path?.rtt ?? INITIAL_RTT_MS) + c.stats().peerMaxAckDelay;
      } catch {
        return 4 * INITIAL_RTT_MS;
      }
    },
  };
}
