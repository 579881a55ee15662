/**
 * One attempt at a checked target: what a driver is handed (ConnectAttempt), and the name a candidate
 * presents. Shared by the direct attempt (pipeline.ts) and the race (run-race.ts).
 *
 * @example
 * const channel = await scope.network.connect(driver, attemptFor(input, driver, target, signal));
 */
import type { ConnectAttempt, Driver } from '../driver.js';
import type { LocalEndpoint } from '../endpoints.js';
import { OwnAttempt, socketGrant } from '../policy/admission.js';
import type { CheckedTarget } from '../policy/contract.js';
import type { SelectionInput } from './types.js';

/**
 * The name a candidate presents (TLS SNI, the certificate check, HTTP `Host`): the checked name, or the
 * caller's `security.serverName` override. Either way it is part of the candidate's connect decision (name
 * and address together), so an override the tenant may not reach as a name denies the candidate instead
 * of going out in a ClientHello; no name is looked up for it.
 */
export function presented(input: SelectionInput, checked: string | undefined): string | undefined {
  return input.security.serverName ?? checked;
}

/** What a driver gets for one attempt at a checked target (the scope's network takes it without a copy: OwnAttempt). */
export function attemptFor(input: SelectionInput, driver: Driver, target: CheckedTarget, signal: AbortSignal, local: LocalEndpoint | undefined = input.local): ConnectAttempt {
  const fields = {
    signal,
    target,
    remote: input.remote,
    local,
    security: input.security,
    properties: input.properties,
    options: input.driverOptions[driver.id] ?? NO_OPTIONS,
    unit: input.lease === undefined ? undefined : socketGrant(input.scope, input.lease, 'connection'),
  };
  return new OwnAttempt(fields, input.scope.guard);
}

const NO_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({});
