/**
 * Decision records: one per decision, to the host's `onDecision` callback
 * and the `taps:policy:decision` diagnostics channel (STYLE §11). Building a
 * record costs an object and a few strings, so callers first ask
 * {@link wantsRecords} and skip it all when nobody listens.
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe('taps:policy:decision', (r) => log((r as DecisionRecord).reason));
 */
import { channel } from 'node:diagnostics_channel';
import type { DecisionRecord } from './contract.js';

/** The channel every decision is published on. */
export const DECISION_CHANNEL = 'taps:policy:decision';
export const decisionChannel = channel(DECISION_CHANNEL);

let nextId = 1;

/** A process-wide increasing record id. */
export function nextRecordId(): number {
  return nextId++;
}

/** True when a record would be seen by anyone. */
export function wantsRecords(onDecision: ((r: DecisionRecord) => void) | undefined): boolean {
  return onDecision !== undefined || decisionChannel.hasSubscribers;
}

/** Publish a record; a throwing callback or subscriber never breaks the decision. */
export function emitRecord(record: DecisionRecord, onDecision: ((r: DecisionRecord) => void) | undefined): void {
  const frozen = Object.freeze(record);
  if (decisionChannel.hasSubscribers) {
    try {
      decisionChannel.publish(frozen);
    } catch {
      /* a subscriber must not break the decision */
    }
  }
  if (onDecision) {
    try {
      onDecision(frozen);
    } catch {
      /* a host callback must not break the decision */
    }
  }
}
