/**
 * A connection's settable properties (RFC 9622 §8.1) and what setting them
 * does to the stack: the values (checked in properties.ts), keep-alive on
 * the channel, and connTimeout handed to the send path.
 *
 * - keepAliveTimeout (§8.1.4) is in milliseconds; `Infinity` ("Disabled")
 *   turns keep-alive off, and so does a value greater than connTimeout (as
 *   §8.1.4 says). The selection property `keepAlive: 'require' | 'prefer'`
 *   (§6.2.10) turns it on at the system's default period until a
 *   keepAliveTimeout is set.
 * - connTimeout (§8.1.3) bounds how long data may wait for the transport
 *   without progress; the Sender watches it (see sender.ts). It applies only
 *   on reliable stacks (§8.1.3); elsewhere it is recorded and has no effect.
 * - Protocol-specific names (`tcp.*`) go to the channel's setOption, which
 *   refuses what it cannot do with ERR_TAPS_PROPERTY_NOT_APPLICABLE.
 *
 * A value the stack cannot honour throws ERR_TAPS_PROPERTY_NOT_APPLICABLE
 * and leaves the connection as it was (§8.1).
 *
 * @example
 * const settings = new ConnectionSettings(host, wantsKeepAlive);
 * settings.set('keepAliveTimeout', 30_000); // kernel timer 30 s on TCP
 * settings.value('connTimeout');            // Infinity
 */
import { debuglog } from 'node:util';
import type { Driver, TransportChannel } from '../driver.js';
import { CONNECTION_DEFAULTS, checkValue, notApplicable, type SettableConnectionProperties } from './properties.js';

const debug = debuglog('taps');

/** What the settings act on. */
export interface SettingsHost {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  /** connTimeout changed: the send path's watchdog follows it (Infinity: none). */
  deliveryTimeout(ms: number): void;
}

export type SettableName = keyof SettableConnectionProperties;

export class ConnectionSettings {
  readonly #host: SettingsHost;
  /** The shared frozen defaults until the first change copies them (most connections never set one). */
  #props: Readonly<SettableConnectionProperties> = CONNECTION_DEFAULTS;
  /** The selection asked for keep-alive (keepAlive require/prefer): on at the system's period until a timeout is set. */
  readonly #wantsKeepAlive: boolean;

  constructor(host: SettingsHost, wantsKeepAlive: boolean) {
    this.#host = host;
    this.#wantsKeepAlive = wantsKeepAlive && host.driver.capabilities.keepAlive && host.channel.setOption !== undefined;
    if (!this.#wantsKeepAlive) return;
    try {
      host.channel.setOption!('keepAlive', true);
    } catch (err) {
      debug('%s could not turn keep-alive on: %s', host.driver.id, (err as Error).message);
    }
  }

  value<K extends SettableName>(name: K): SettableConnectionProperties[K] {
    return this.#props[name];
  }

  /** Every settable property's value. */
  get all(): Readonly<SettableConnectionProperties> {
    return this.#props;
  }

  /** The properties changed from their defaults: what a clone copies (RFC 9622 §7.4). */
  changed(): Record<string, unknown> {
    if (this.#props === CONNECTION_DEFAULTS) return {};
    return Object.fromEntries(Object.entries(this.#props).filter(([k, v]) => CONNECTION_DEFAULTS[k as SettableName] !== v));
  }

  /** A protocol-specific setting (`tcp.userTimeoutValue` …): the channel's to take or refuse. */
  setSpecific(name: string, value: unknown): void {
    const channel = this.#host.channel;
    if (!channel.setOption) throw notApplicable(name, `${this.#host.driver.id} has no protocol-specific settings`);
    channel.setOption(name, value);
  }

  /** Check and apply a value to this connection alone. Throws TypeError/RangeError, or ERR_TAPS_PROPERTY_NOT_APPLICABLE. */
  set(key: SettableName, value: unknown): void {
    checkValue(key, value);
    const { channel, driver } = this.#host;
    switch (key) {
      case 'keepAliveTimeout':
        this.#keepAlive(value as number, this.#props.connTimeout);
        break;
      case 'connTimeout':
        // A keep-alive period longer than the new timeout is disabled (§8.1.4); a shorter one applies again.
        if (this.#props.keepAliveTimeout !== Infinity) this.#keepAlive(this.#props.keepAliveTimeout, value as number);
        if (driver.capabilities.reliable) this.#host.deliveryTimeout(value as number);
        break;
      case 'minSendRate':
      case 'minRecvRate':
      case 'maxSendRate':
      case 'maxRecvRate':
        if (value !== Infinity) throw notApplicable(key, `${driver.id} does not pace or guarantee rates`);
        break;
      case 'connPriority':
        channel.setOption?.('connPriority', value);
        break;
      default:
        break;
    }
    if (this.#props === CONNECTION_DEFAULTS) this.#props = { ...CONNECTION_DEFAULTS };
    (this.#props as unknown as Record<string, unknown>)[key] = value;
  }

  /** Keep-alive after ms of idleness, or off (Infinity, or longer than connTimeout: RFC 9622 §8.1.4). */
  #keepAlive(ms: number, connTimeout: number): void {
    const { channel, driver } = this.#host;
    const off = ms === Infinity || ms > connTimeout;
    if (off) {
      // Disabled is true of every stack; one that can keep alive is told to stop (unless the selection wants it on).
      if (driver.capabilities.keepAlive && channel.setOption) channel.setOption('keepAlive', this.#wantsKeepAlive);
      return;
    }
    if (!driver.capabilities.keepAlive || !channel.setOption) throw notApplicable('keepAliveTimeout', `${driver.id} cannot send keep-alives`);
    channel.setOption('keepAliveTimeout', ms);
  }
}
