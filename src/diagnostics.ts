/**
 * The library's `diagnostics_channel` channels for whole operations and
 * connection lifecycles (the per-candidate and policy channels live with
 * the selection pipeline and the policy records). Tracers (OpenTelemetry
 * through `taps-node/otel`, or your own) subscribe; nothing is built or
 * published while nobody does. docs/debugging.md lists every channel.
 *
 * - `taps:initiate` and `taps:listen` are TracingChannels
 *   (`tracing:taps:initiate:start`, `…:asyncEnd`, `…:error`): the context
 *   is `{ tenant, remote }` (listen: `{ tenant, local }`), and Node adds
 *   `result` (the Connection or Listener) or `error`.
 * - `taps:connection:ready` / `taps:connection:closed`: `{ tenant, connection }`
 *   when a Connection exists (initiated or accepted), and when it ends
 *   (`error` set when it ended with one).
 * - `taps:connection:bytes`: `{ tenant, direction, bytes }` for each chunk a
 *   connection counts against the tenant's byte budget (framing included),
 *   for connections made while someone is subscribed.
 *
 * @example
 * import { tracingChannel } from 'node:diagnostics_channel';
 * tracingChannel('taps:initiate').subscribe({ start(ctx) {}, asyncEnd(ctx) {}, error(ctx) {}, end() {}, asyncStart() {} });
 */
import { channel, tracingChannel } from 'node:diagnostics_channel';
import type { Lease } from './policy/contract.js';

/** Context of the `taps:initiate` TracingChannel. */
export interface InitiateTraceContext {
  readonly tenant: string;
  readonly remote: string;
  /** Set by Node when the operation resolved: the Connection. */
  result?: unknown;
  /** Set by Node when it rejected. */
  error?: unknown;
}

/** Context of the `taps:listen` TracingChannel. */
export interface ListenTraceContext {
  readonly tenant: string;
  readonly local: string;
  result?: unknown;
  error?: unknown;
}

export const initiateChannel = tracingChannel<unknown, InitiateTraceContext>('taps:initiate');
export const listenChannel = tracingChannel<unknown, ListenTraceContext>('taps:listen');
export const connectionReady = channel('taps:connection:ready');
export const connectionClosed = channel('taps:connection:closed');
export const connectionBytes = channel('taps:connection:bytes');

/** Run `fn` inside the TracingChannel when it has subscribers, else plainly. */
export function traced<T, C extends object>(tc: ReturnType<typeof tracingChannel<unknown, C>>, context: () => C, fn: () => Promise<T>): Promise<T> {
  return tc.hasSubscribers ? tc.tracePromise(fn, context()) : fn();
}

/**
 * A lease whose sent bytes (and, with `received`, received bytes) its channel already charged (the driver
 * metered them at the socket, framing and protocol fields included): those count nothing more here; the
 * rest is the lease's.
 */
export function chargedByChannel(lease: Lease, sent: boolean, received = false): Lease {
  const charged: Lease = {
    sent: sent ? () => {} : (bytes) => lease.sent(bytes),
    received: received ? () => {} : (bytes) => lease.received(bytes),
    release: () => lease.release(),
  };
  if (lease.onRevoke) Object.assign(charged, { onRevoke: lease.onRevoke.bind(lease) });
  if (lease.bind) Object.assign(charged, { bind: lease.bind.bind(lease) });
  return charged;
}

/**
 * The lease a connection counts its bytes with: `lease` itself, or — while
 * someone listens on `taps:connection:bytes` — one that also publishes each
 * count there. Decided when the connection is made.
 */
export function countingLease(lease: Lease, tenant: string): Lease {
  if (!connectionBytes.hasSubscribers) return lease;
  const publish = (direction: 'sent' | 'received', bytes: number): void => {
    if (connectionBytes.hasSubscribers) connectionBytes.publish({ tenant, direction, bytes });
  };
  const counted: Lease = {
    sent: (bytes) => {
      lease.sent(bytes);
      publish('sent', bytes);
    },
    received: (bytes) => {
      lease.received(bytes);
      publish('received', bytes);
    },
    release: () => lease.release(),
  };
  if (lease.onRevoke) Object.assign(counted, { onRevoke: lease.onRevoke.bind(lease) });
  if (lease.bind) Object.assign(counted, { bind: lease.bind.bind(lease) });
  return counted;
}
