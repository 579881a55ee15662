/**
 * Connection properties (RFC 9622 §8.1): the settable ones with their
 * defaults and checks, and the read-only ones that reflect the chosen stack.
 *
 * Setting a property the chosen stack cannot honour throws a TapsError
 * ERR_TAPS_PROPERTY_NOT_APPLICABLE and leaves the connection open (§8.1:
 * "an error ... but the Connection is not affected"). A wrong type or an
 * unknown name is a programmer error (TypeError/RangeError).
 *
 * | property | default | honoured by |
 * |---|---|---|
 * | connPriority | 100 | ordering among a group's streams where the stack can (setOption): WebTransport sendOrder, QUIC stream urgency (RFC 9218) |
 * | connTimeout | Infinity | reliable stacks: abort with ERR_TAPS_TIMEOUT when sent data makes no progress for that long (sender.ts) |
 * | keepAliveTimeout | Infinity (disabled) | stacks with keep-alive (TCP, TLS) via setOption, in ms; off when over connTimeout |
 * | connScheduler | 'weightedFairQueueing' | recorded for the group |
 * | connCapacityProfile | 'default' | recorded (a hint, §8.1.6) |
 * | multipathPolicy | 'handover' | recorded (single-path stacks) |
 * | min/max Send/Recv Rate | Infinity | only Infinity: no stack here paces |
 * | groupConnLimit | Infinity | clone() refuses past it |
 * | isolateSession | false | recorded (only meaningful before establishment) |
 */
import { TapsError } from '../errors.js';
import { didYouMean } from '../suggest.js';

/**
 * A connection's state (RFC 9622 §11). A Connection object exists only once
 * established: RFC 9622's Establishing state is the pending `initiate()`.
 */
export type ConnState = 'established' | 'closing' | 'closed';

/** The connection properties an application may set (RFC 9622 §8.1), with their types. */
export interface SettableConnectionProperties {
  connPriority: number;
  connTimeout: number;
  keepAliveTimeout: number;
  connScheduler: string;
  connCapacityProfile: string;
  multipathPolicy: 'handover' | 'interactive' | 'aggregate';
  minSendRate: number;
  minRecvRate: number;
  maxSendRate: number;
  maxRecvRate: number;
  groupConnLimit: number;
  isolateSession: boolean;
}

/** Connection properties as a plain object (a Preconnection's `connectionProperties`): generic ones typed, protocol-specific ones as `namespace.name`. */
export type ConnectionPropertiesInit = { readonly [K in keyof SettableConnectionProperties]?: SettableConnectionProperties[K] | undefined } & {
  readonly [name: `${string}.${string}`]: unknown;
};

export const CONNECTION_DEFAULTS: Readonly<SettableConnectionProperties> = Object.freeze({
  connPriority: 100,
  connTimeout: Infinity,
  keepAliveTimeout: Infinity,
  connScheduler: 'weightedFairQueueing',
  connCapacityProfile: 'default',
  multipathPolicy: 'handover',
  minSendRate: Infinity,
  minRecvRate: Infinity,
  maxSendRate: Infinity,
  maxRecvRate: Infinity,
  groupConnLimit: Infinity,
  isolateSession: false,
});

export const READ_ONLY = Object.freeze([
  'connState', 'canSend', 'canReceive', 'sendMsgMaxLen', 'recvMsgMaxLen', 'singularTransmissionMsgMaxLen', 'zeroRttMsgMaxLen',
] as const);

const SCHEDULERS = new Set(['fifo', 'roundRobin', 'weightedFairQueueing', 'firstComeFirstServed', 'strictPriority', 'roundRobinWithWeights']);
const PROFILES = new Set(['default', 'scavenger', 'lowLatency/interactive', 'lowLatency/nonInteractive', 'constantRate', 'capacitySeeking']);
const MULTIPATH = new Set(['handover', 'interactive', 'aggregate']);

/** Case-insensitive lookup of a connection property's canonical name. */
const CANONICAL = new Map<string, string>([...Object.keys(CONNECTION_DEFAULTS), ...READ_ONLY].map((n) => [n.toLowerCase(), n]));

export function canonicalName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError('property name must be a non-empty string');
  if (name.includes('.')) return name; // protocol-specific (tcp.userTimeoutValue …), handled by the channel
  const c = CANONICAL.get(name.toLowerCase());
  if (c === undefined) {
    throw new TypeError(`unknown connection property '${name}'${didYouMean(name, CANONICAL.values())} (RFC 9622 §8.1; known: ${[...CANONICAL.values()].join(', ')})`);
  }
  return c;
}

export function isReadOnly(name: string): boolean {
  return (READ_ONLY as readonly string[]).includes(name);
}

/** Check a value's type and range for a settable property. Throws TypeError/RangeError. */
export function checkValue(name: keyof SettableConnectionProperties, value: unknown): void {
  const ms = (v: unknown): boolean => typeof v === 'number' && !Number.isNaN(v) && v >= 0;
  switch (name) {
    case 'connPriority':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new RangeError(`connPriority must be an integer ≥ 0, got ${String(value)}`);
      return;
    case 'connTimeout':
    case 'keepAliveTimeout':
      if (!ms(value) || value === 0) throw new RangeError(`${name} must be a positive number of ms, or Infinity to disable, got ${String(value)}`);
      return;
    case 'minSendRate':
    case 'minRecvRate':
    case 'maxSendRate':
    case 'maxRecvRate':
    case 'groupConnLimit':
      if (!ms(value)) throw new RangeError(`${name} must be a number ≥ 0, or Infinity for unlimited, got ${String(value)}`);
      return;
    case 'connScheduler':
      if (typeof value !== 'string' || !SCHEDULERS.has(value)) throw new RangeError(`connScheduler must be one of ${[...SCHEDULERS].join(', ')}`);
      return;
    case 'connCapacityProfile':
      if (typeof value !== 'string' || !PROFILES.has(value)) throw new RangeError(`connCapacityProfile must be one of ${[...PROFILES].join(', ')}`);
      return;
    case 'multipathPolicy':
      if (typeof value !== 'string' || !MULTIPATH.has(value)) throw new RangeError(`multipathPolicy must be one of ${[...MULTIPATH].join(', ')}`);
      return;
    case 'isolateSession':
      if (typeof value !== 'boolean') throw new TypeError(`isolateSession must be a boolean, got ${typeof value}`);
      return;
  }
}

export function notApplicable(name: string, why: string): TapsError {
  return new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name} does not apply to this connection: ${why}`);
}
