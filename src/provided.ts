/**
 * What a stack provides, as preference properties (RFC 9622 §6.2): a
 * driver's declared capabilities read as the selection properties they
 * satisfy. The selector ranks and judges stacks by it, and a Connection
 * reads its selection properties back through it (RFC 9622 §8.1.11), so it
 * lives beside the driver contract, not inside either of them.
 *
 * A stack with per-message reliability (QUIC with datagrams) delivers each
 * message reliably or not, in order or not, as the message asks (RFC 9622
 * §9.1.3.7, §9.1.3.3). Its messages default to the selection properties
 * `reliability` and `preserveOrder` when the caller asked for per-message
 * reliability (`perMsgReliability` require or prefer: "reliable unless a
 * message says otherwise"), and to the stack's own declared delivery
 * otherwise (unreliable datagrams, as `unreliableDatagram()` asks). What it
 * provides for those two properties is that default.
 *
 * @example
 * provided(tcpDriver, 0).preserveMsgBoundaries; // false: a byte stream
 * provided(tcpDriver, 1).preserveMsgBoundaries; // true: a framer finds the messages
 * messageDefaults(quicDgramDriver, new TransportProperties({ perMsgReliability: 'require' })); // { reliable: true, ordered: true }
 */
import type { Capabilities, Driver } from './driver.js';
import type { Preference, PreferenceProperty, TransportProperties } from './properties.js';

type Provided = Readonly<Record<PreferenceProperty, boolean>>;

/** How a message is delivered when it does not say: `msgReliable` and `msgOrdered` unset. */
export interface MessageDefaults {
  readonly reliable: boolean;
  readonly ordered: boolean;
}

const wanted = (p: Preference): boolean => p !== 'avoid' && p !== 'prohibit';

/** The delivery of a message that does not say, on `driver`, for a connection selected with `properties`. */
export function messageDefaults(driver: Driver, properties: TransportProperties): MessageDefaults {
  const c = driver.capabilities;
  const perMessage = properties.preference('perMsgReliability');
  if (!c.perMsgReliability || (perMessage !== 'require' && perMessage !== 'prefer')) return { reliable: c.reliable, ordered: c.ordered };
  return { reliable: wanted(properties.preference('reliability')), ordered: wanted(properties.preference('preserveOrder')) };
}

/** Whether `driver` may deliver a message twice (then messages must be safely replayable, RFC 9622 §9.1.3.4). */
export function mayDuplicate(driver: Driver): boolean {
  const c = driver.capabilities;
  return c.duplicateFree !== true && !c.reliable && driver.framing === 'message';
}

/**
 * What a stack provides for each preference property, given the framers in use (and, for a stack with
 * per-message reliability, the properties that set its messages' defaults).
 */
export function provided(driver: Driver, framerCount: number, properties?: TransportProperties): Provided {
  // Drivers are long-lived: one frozen answer per driver, with and without a framer (shared by every ranking and report).
  let pair = providedBy.get(driver);
  if (pair === undefined) providedBy.set(driver, (pair = [undefined, undefined]));
  const i = framerCount > 0 ? 1 : 0;
  const own = (pair[i] ??= Object.freeze(computeProvided(driver, framerCount)));
  if (properties === undefined || !driver.capabilities.perMsgReliability) return own;
  const d = messageDefaults(driver, properties);
  if (d.reliable === own.reliability && d.ordered === own.preserveOrder) return own;
  let variants = perMessageBy.get(driver);
  if (variants === undefined) perMessageBy.set(driver, (variants = new Map()));
  const key = `${i}${d.reliable ? 1 : 0}${d.ordered ? 1 : 0}`;
  let v = variants.get(key);
  if (v === undefined) variants.set(key, (v = Object.freeze({ ...own, reliability: d.reliable, preserveOrder: d.ordered })));
  return v;
}

const providedBy = new WeakMap<Driver, [Provided | undefined, Provided | undefined]>();
const perMessageBy = new WeakMap<Driver, Map<string, Provided>>();

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

