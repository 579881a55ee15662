/**
 * What a selection takes and gives (pipeline.ts), in a module of its own so each stage can name them
 * without importing the pipeline.
 */
import type { Clock } from '../clock.js';
import type { Driver, TransportChannel } from '../driver.js';
import type { LocalEndpoint, RemoteEndpoint } from '../endpoints.js';
import type { NetworkScope } from '../network.js';
import type { CheckedTarget, Lease } from '../policy/contract.js';
import type { TransportProperties } from '../properties.js';
import type { CandidateRecord, SelectionReport } from '../report.js';
import type { SecurityParameters } from '../security.js';
import type { RacingMode } from './race.js';
import type { Fallback } from './udp-failover.js';

/** How candidates are raced (RFC 8305): mode, attempt delay, resolution delay, address cap. */
export interface RacingOptions {
  readonly mode: RacingMode;
  /** Connection attempt delay, clamped to 10 ms..2 s (RFC 8305 §5). */
  readonly attemptDelay: number;
  /** How long IPv4 answers wait for a late AAAA answer (RFC 8305 §3), and a UDP winner for the other family's answer. */
  readonly resolutionDelay: number;
  /** At most this many addresses per family per name join the race (the rest are recorded, not tried). */
  readonly maxAddressesPerFamily: number;
  /**
   * A certificate that fails verification for the checked name (ERR_TAPS_SECURITY_FAILED) ends the race by
   * default: no other address or stack, and never the unencrypted group of opportunistic security, is tried
   * against a peer that could not prove it is the name. `true` lets the race go on (a name served by
   * several certificates); the error is still ERR_TAPS_SECURITY_FAILED when nothing else succeeds.
   */
  readonly continueOnSecurityFailure: boolean;
}

export interface SelectionInput {
  readonly scope: NetworkScope;
  readonly remote: RemoteEndpoint;
  readonly local?: LocalEndpoint | undefined;
  readonly properties: TransportProperties;
  readonly security: SecurityParameters;
  readonly framerCount: number;
  readonly drivers: readonly Driver[];
  readonly driverOptions: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly racing: RacingOptions;
  readonly clock: Clock;
  readonly signal?: AbortSignal | undefined;
  /** Overall budget in ms for the whole selection. */
  readonly timeout?: number | undefined;
  /** Called whenever a candidate record changes (CLI timelines, progress UIs). */
  readonly onProgress?: ((record: CandidateRecord, report: SelectionReport) => void) | undefined;
  /** The connection unit the caller took: each attempt's socket counts under it (a grant per attempt), not under one of its own. */
  readonly lease?: Lease | undefined;
}

export interface Selected {
  readonly channel: TransportChannel;
  readonly driver: Driver;
  readonly candidate: CandidateRecord;
  readonly report: SelectionReport;
  /** The checked address the winner connected to. */
  readonly target: CheckedTarget;
  /** A UDP winner: the ranked, checked, never started candidates of its stack, to move to on an ICMP unreachable (udp-failover.ts). */
  readonly fallbacks?: readonly Fallback[] | undefined;
  /** Milliseconds since the report began, on the selection's clock. */
  readonly elapsed?: (() => number) | undefined;
}
