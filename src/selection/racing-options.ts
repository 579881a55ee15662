/**
 * Racing options and their defaults (RFC 8305 §5, §8): a 250 ms connection
 * attempt delay clamped to 10 ms..2 s, a 50 ms resolution delay, and a cap on
 * addresses per family so a flood of DNS answers cannot explode the race.
 *
 * @example
 * racingFrom({ attemptDelay: 5 }).attemptDelay; // 10: clamped
 */
import type { RacingOptions } from './types.js';
import type { RacingMode } from './race.js';

/**
 * The default racing options: staggered, 250 ms attempt delay, 50 ms resolution delay, 8 addresses per family,
 * and a certificate failure ends the race.
 */
export const DEFAULT_RACING: RacingOptions = Object.freeze({
  mode: 'staggered' as RacingMode,
  attemptDelay: 250,
  resolutionDelay: 50,
  maxAddressesPerFamily: 8,
  continueOnSecurityFailure: false,
});

const RACING_MODES: readonly RacingMode[] = ['staggered', 'simultaneous', 'failover'];

export function racingFrom(r: Partial<RacingOptions> | undefined): RacingOptions {
  if (r === undefined) return DEFAULT_RACING;
  if (typeof r !== 'object' || r === null) throw new TypeError('racing must be an object');
  const mode = r.mode ?? DEFAULT_RACING.mode;
  if (!RACING_MODES.includes(mode)) throw new RangeError(`racing.mode must be one of ${RACING_MODES.join(', ')}, got ${String(mode)}`);
  const num = (name: keyof RacingOptions, v: unknown, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`racing.${name} must be a finite number ≥ 0, got ${String(v)}`);
    return v;
  };
  // RFC 8305 §5: the attempt delay is at least 10 ms and should not exceed 2 s.
  const attemptDelay = Math.min(2000, Math.max(10, num('attemptDelay', r.attemptDelay, DEFAULT_RACING.attemptDelay)));
  const resolutionDelay = num('resolutionDelay', r.resolutionDelay, DEFAULT_RACING.resolutionDelay);
  const maxAddressesPerFamily = Math.max(1, Math.floor(num('maxAddressesPerFamily', r.maxAddressesPerFamily, DEFAULT_RACING.maxAddressesPerFamily)));
  const continueOnSecurityFailure = r.continueOnSecurityFailure ?? false;
  if (typeof continueOnSecurityFailure !== 'boolean') throw new TypeError(`racing.continueOnSecurityFailure must be a boolean, got ${typeof continueOnSecurityFailure}`);
  return Object.freeze({ mode, attemptDelay, resolutionDelay, maxAddressesPerFamily, continueOnSecurityFailure });
}

