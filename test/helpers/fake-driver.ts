/**
 * A driver for unit tests of selection: no sockets, behaviour scripted per
 * address (`ready` after n ms, `refuse` after n ms, or `hang` until aborted),
 * timed by the test's ManualClock. Records every attempt's target.
 */
import { NO_CAPABILITIES, type Capabilities, type ConnectAttempt, type Driver, type TransportChannel } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import type { PolicyProtocol } from '../../src/policy/types.js';
import type { ManualClock } from './manual-clock.js';

export type Behaviour = { ready: number } | { refuse: number } | 'hang';

export interface FakeDriverOptions {
  id: string;
  protocol?: PolicyProtocol;
  ipProtocol?: 'tcp' | 'udp';
  framing?: 'stream' | 'message';
  security?: 'none' | 'tls';
  capabilities?: Partial<Capabilities>;
  schemes?: string[];
  defaultPort?: number;
  unavailable?: string;
  clock: ManualClock;
  /** Behaviour by address; default `{ ready: 1 }`. */
  behaviour?: (address: string) => Behaviour;
}

export interface FakeDriver extends Driver {
  readonly attempts: { address: string; port: number; hostName?: string | undefined; aborted: boolean; signal: AbortSignal }[];
  readonly channels: FakeTransportChannel[];
}

export interface FakeTransportChannel extends TransportChannel {
  aborted: boolean;
}

export function fakeChannel(address: string, port: number, framing: 'stream' | 'message' = 'stream'): FakeTransportChannel {
  const family = address.includes(':') ? 6 : 4;
  const ch: FakeTransportChannel = {
    framing,
    local: { address: family === 6 ? '::1' : '127.0.0.1', port: 40000, family },
    remote: { address, port, family },
    maxMessageSize: framing === 'stream' ? Infinity : 65507,
    info: {},
    aborted: false,
    start: () => {},
    send: (_d, _m, done) => (done(), true),
    pause: () => {},
    resume: () => {},
    close: async () => {},
    abort: () => {
      ch.aborted = true;
    },
  };
  return ch;
}

export function fakeDriver(o: FakeDriverOptions): FakeDriver {
  const attempts: FakeDriver['attempts'] = [];
  const channels: FakeTransportChannel[] = [];
  const caps: Capabilities = { ...NO_CAPABILITIES, reliable: true, ordered: true, congestionControl: true, fullChecksum: true, ...o.capabilities };
  const d: FakeDriver = {
    id: o.id,
    stack: [o.id],
    protocol: o.protocol ?? 'tcp',
    ipProtocol: o.ipProtocol ?? 'tcp',
    framing: o.framing ?? 'stream',
    security: o.security ?? 'none',
    capabilities: caps,
    ...(o.schemes ? { schemes: o.schemes } : {}),
    ...(o.defaultPort !== undefined ? { defaultPort: o.defaultPort } : {}),
    attempts,
    channels,
    available: () => (o.unavailable ? { available: false, reason: o.unavailable } : { available: true }),
    connect(attempt: ConnectAttempt): Promise<TransportChannel> {
      attempt.signal.throwIfAborted();
      const rec = { address: attempt.target.address, port: attempt.target.port, hostName: attempt.target.hostName, aborted: false, signal: attempt.signal };
      attempts.push(rec);
      const b = o.behaviour?.(attempt.target.address) ?? { ready: 1 };
      return new Promise((resolve, reject) => {
        let timer: unknown;
        const onAbort = (): void => {
          rec.aborted = true;
          if (timer !== undefined) o.clock.clearTimeout(timer);
          reject(new TapsError('ERR_TAPS_ABORTED', 'aborted', { cause: attempt.signal.reason }));
        };
        attempt.signal.addEventListener('abort', onAbort, { once: true });
        if (b === 'hang') return;
        if ('ready' in b) {
          timer = o.clock.setTimeout(() => {
            attempt.signal.removeEventListener('abort', onAbort);
            const ch = fakeChannel(attempt.target.address, attempt.target.port, d.framing);
            channels.push(ch);
            resolve(ch);
          }, b.ready);
        } else {
          timer = o.clock.setTimeout(() => {
            attempt.signal.removeEventListener('abort', onAbort);
            reject(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `connect ECONNREFUSED ${attempt.target.address}:${attempt.target.port}`));
          }, b.refuse);
        }
      });
    },
  };
  return d;
}
