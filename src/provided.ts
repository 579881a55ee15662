/**
 * What a stack provides, as preference properties (RFC 9622 §6.2): a
 * driver's declared capabilities read as the selection properties they
 * satisfy. The selector ranks and judges stacks by it, and a Connection
 * reads its selection properties back through it (RFC 9622 §8.1.11), so it
 * lives beside the driver contract, not inside either of them.
 *
 * @example
 * provided(tcpDriver, 0).preserveMsgBoundaries; // false: a byte stream
 * provided(tcpDriver, 1).preserveMsgBoundaries; // true: a framer finds the messages
 */
import type { Capabilities, Driver } from './driver.js';
import type { PreferenceProperty } from './properties.js';

/** What a stack provides for each preference property, given the framers in use. */
export function provided(driver: Driver, framerCount: number): Readonly<Record<PreferenceProperty, boolean>> {
  // Drivers are long-lived: one frozen answer per driver, with and without a framer (shared by every ranking and report).
  let pair = providedBy.get(driver);
  if (pair === undefined) providedBy.set(driver, (pair = [undefined, undefined]));
  const i = framerCount > 0 ? 1 : 0;
  return (pair[i] ??= Object.freeze(computeProvided(driver, framerCount)));
}

const providedBy = new WeakMap<Driver, [Readonly<Record<PreferenceProperty, boolean>> | undefined, Readonly<Record<PreferenceProperty, boolean>> | undefined]>();

function computeProvided(driver: Driver, framerCount: number): Record<PreferenceProperty, boolean> {
  const c: Capabilities = driver.capabilities;
  return {
    reliability: c.reliable,
    preserveOrder: c.ordered,
    preserveMsgBoundaries: c.messageBoundaries || (driver.framing === 'stream' && framerCount > 0),
    perMsgReliability: c.perMsgReliability,
    zeroRttMsg: c.zeroRtt,
    multistreaming: c.multistream,
    fullChecksumSend: c.fullChecksum,
    fullChecksumRecv: c.fullChecksum,
    congestionControl: c.congestionControl,
    keepAlive: c.keepAlive,
    // Connected UDP sockets report ICMP errors; the TCP stacks here cannot surface them.
    softErrorNotify: driver.ipProtocol === 'udp',
    // Path-level choices the OS makes for every stack alike.
    useTemporaryLocalAddress: true,
    activeReadBeforeSend: true,
  };
}

