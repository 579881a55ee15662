/**
 * Errors: one base class, stable codes, causes kept (STYLE §6).
 *
 * Every failure the library reports is a `TapsError` whose `code` is one of
 * {@link TapsErrorCode} (the reasons of RFC 9623 App. B plus a few this
 * library adds). Subclasses exist only where callers branch on extra data.
 * The brand uses `Symbol.for`, so `isTapsError()` works across duplicate
 * installs where `instanceof` would not. Codes are documented in docs/errors.md.
 *
 * @example
 * try { await pre.initiate({ signal }) }
 * catch (err) { if (isTapsError(err) && err.code === 'ERR_TAPS_POLICY_PROHIBITED') deny() }
 */
import type { PolicyDecision } from './policy/types.js';

/** Every stable error code; each is explained in docs/errors.md. */
export type TapsErrorCode =
  | 'ERR_TAPS_INVALID_CONFIGURATION'
  | 'ERR_TAPS_INVALID_PROPERTIES'
  | 'ERR_TAPS_NO_CANDIDATES'
  | 'ERR_TAPS_RESOLUTION_FAILED'
  | 'ERR_TAPS_ESTABLISHMENT_FAILED'
  | 'ERR_TAPS_POLICY_PROHIBITED'
  | 'ERR_TAPS_QUOTA_EXCEEDED'
  | 'ERR_TAPS_FLEET_UNAVAILABLE'
  | 'ERR_TAPS_NOT_CLONEABLE'
  | 'ERR_TAPS_MESSAGE_TOO_LARGE'
  | 'ERR_TAPS_PROTOCOL_FAILED'
  | 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES'
  | 'ERR_TAPS_DEFRAMING_FAILED'
  | 'ERR_TAPS_CONNECTION_ABORTED'
  | 'ERR_TAPS_CONNECTION_RESET'
  | 'ERR_TAPS_TIMEOUT'
  | 'ERR_TAPS_ABORTED'
  | 'ERR_TAPS_INVALID_STATE'
  | 'ERR_TAPS_PROPERTY_NOT_APPLICABLE'
  | 'ERR_TAPS_SEND_FAILED'
  | 'ERR_TAPS_SECURITY_FAILED'
  | 'ERR_TAPS_PATH_UNAVAILABLE'
  | 'ERR_TAPS_UNAVAILABLE';

const BRAND = Symbol.for('taps-node.TapsError');

/** Options of {@link TapsError}: the `cause` to keep. */
export interface TapsErrorOptions {
  cause?: unknown;
}

/** The one error type of the library: a stable `code` (see docs/errors.md) and the original error as `cause`. */
export class TapsError extends Error {
  readonly code: TapsErrorCode;
  declare readonly [BRAND]: true;

  constructor(code: TapsErrorCode, message: string, options: TapsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}
// The brand lives on the prototype (every subclass inherits it), not on each error: one property less to define per error.
Object.defineProperty(TapsError.prototype, BRAND, { value: true });

/** True for any TapsError, even one made by another copy of this library. */
export function isTapsError(value: unknown): value is TapsError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** One offending property and why (InvalidPropertiesError names all of them). */
export interface PropertyProblem {
  property: string;
  reason: string;
}

/** Transport properties that are unknown, mistyped or contradictory; `problems` names every one. */
export class InvalidPropertiesError extends TapsError {
  readonly problems: readonly PropertyProblem[];
  constructor(problems: readonly PropertyProblem[], options: TapsErrorOptions = {}) {
    super(
      'ERR_TAPS_INVALID_PROPERTIES',
      `invalid transport properties: ${problems.map((p) => `${p.property} (${p.reason})`).join('; ')}`,
      options,
    );
    this.problems = Object.freeze([...problems]);
  }
}

/** A send that could not be carried out (RFC 9622 §9.2.2.3). */
export class SendError extends TapsError {
  constructor(
    code: Extract<
      TapsErrorCode,
      | 'ERR_TAPS_SEND_FAILED'
      | 'ERR_TAPS_MESSAGE_TOO_LARGE'
      | 'ERR_TAPS_INVALID_MESSAGE_PROPERTIES'
      | 'ERR_TAPS_INVALID_STATE'
      | 'ERR_TAPS_CONNECTION_ABORTED'
      | 'ERR_TAPS_QUOTA_EXCEEDED'
    >,
    message: string,
    options: TapsErrorOptions = {},
  ) {
    super(code, message, options);
  }
}

/** A policy said no. Carries the decision record that said it. */
export class PolicyDeniedError extends TapsError {
  readonly decision: PolicyDecision;
  constructor(decision: PolicyDecision & { allow: false }, message?: string, options: TapsErrorOptions = {}) {
    super('ERR_TAPS_POLICY_PROHIBITED', message ?? `denied by policy: ${decision.reason}`, options);
    this.decision = decision;
  }
}

/**
 * Which quota ran out: the connections or listeners a tenant may hold at once,
 * or a byte budget per window — bytes sent, bytes received, or both together.
 */
export type QuotaName = 'connections' | 'listeners' | 'bytes-sent' | 'bytes-received' | 'bytes';

/** A tenant's quota (connections, listeners, bytes) is used up: not a denial. */
export class QuotaExceededError extends TapsError {
  readonly quota: QuotaName;
  constructor(quota: QuotaName, message: string, options: TapsErrorOptions = {}) {
    super('ERR_TAPS_QUOTA_EXCEEDED', message, options);
    this.quota = quota;
  }
}

/** `util.inspect`'s hook, by its registered name (no import of node:util here). */
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * initiate()/listen() gave up. `report` explains every candidate's fate.
 *
 * `util.inspect` (and so an uncaught one, or `console.log(err)`) shows the stack, the code, a one-line
 * tally of the report and the cause's first line: the report itself is one property away (`err.report`,
 * `explainReport(err.report)`), not dozens of lines of nested objects.
 */
export class EstablishmentError extends TapsError {
  /** The selection report: every candidate, its fate and timing. */
  readonly report: import('./report.js').SelectionReport;
  constructor(
    code: Extract<
      TapsErrorCode,
      | 'ERR_TAPS_ESTABLISHMENT_FAILED'
      | 'ERR_TAPS_SECURITY_FAILED'
      | 'ERR_TAPS_NO_CANDIDATES'
      | 'ERR_TAPS_RESOLUTION_FAILED'
      | 'ERR_TAPS_POLICY_PROHIBITED'
      | 'ERR_TAPS_TIMEOUT'
      | 'ERR_TAPS_ABORTED'
      | 'ERR_TAPS_QUOTA_EXCEEDED'
      | 'ERR_TAPS_PATH_UNAVAILABLE'
    >,
    message: string,
    report: import('./report.js').SelectionReport,
    options: TapsErrorOptions = {},
  ) {
    super(code, message, options);
    this.report = report;
  }
  /** The failed attempts, each with the error that ended it. */
  get attempts(): readonly import('./report.js').CandidateRecord[] {
    return this.report.candidates.filter((c) => c.fate === 'failed');
  }

  /** The compact form `util.inspect` shows. */
  [INSPECT](_depth: number, options: { stylize?: (text: string, style: string) => string }): string {
    const style = options?.stylize ?? ((t: string) => t);
    const lines = [`  code: ${style(`'${this.code}'`, 'string')}`, `  report: ${style(`[${reportTally(this.report)}]`, 'special')}`];
    const cause = this.cause;
    if (cause !== undefined) lines.push(`  [cause]: ${cause instanceof Error ? `${cause.name}: ${cause.message.split('\n')[0]}` : String(cause)}`);
    return `${this.stack ?? `${this.name}: ${this.message}`} {\n${lines.join(',\n')}\n}`;
  }
}

/** `SelectionReport localhost:1 (tenant me): 4 failed, 11 unsuitable/unavailable, 250.3 ms; explainReport(err.report)`. */
function reportTally(report: import('./report.js').SelectionReport): string {
  const counts = new Map<string, number>();
  for (const c of report.candidates) counts.set(c.fate, (counts.get(c.fate) ?? 0) + 1);
  const tally = [...counts].map(([fate, n]) => `${n} ${fate}`).join(', ') || 'no candidates';
  const took = report.endedAt === undefined ? '' : `, ${report.endedAt.toFixed(1)} ms`;
  return `SelectionReport ${report.remote} (tenant ${report.tenant}): ${tally}${took}; explainReport(err.report) shows each`;
}

/**
 * OpenSSL's X.509 verification results (as Node reports them on `err.code`)
 * and Node's own TLS/SSL error codes: all of them mean the peer could not be
 * authenticated or the handshake was refused, never a transport fault.
 */
const X509_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE', 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'ERROR_IN_CERT_NOT_BEFORE_FIELD', 'ERROR_IN_CERT_NOT_AFTER_FIELD', 'CERT_CHAIN_TOO_LONG',
]);

function isSecurityCode(code: string): boolean {
  return code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code.startsWith('ERR_OSSL_') || X509_CODES.has(code);
}

/**
 * Whether a failed attempt's error says the peer's certificate failed verification (chain, name, validity,
 * pin, the caller's verification callback), as opposed to another TLS failure (ALPN, version, an alert):
 * the selection ends the race on the former (run-race.ts), since no other address proves the name better.
 */
export function isCertificateFailure(err: unknown): boolean {
  if (!isTapsError(err) || err.code !== 'ERR_TAPS_SECURITY_FAILED') return false;
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (X509_CODES.has(code) || code.startsWith('ERR_TLS_CERT'))) return true;
  }
  return /certificate/i.test(err.message) && !/application protocol|alpn/i.test(err.message);
}

/**
 * The code for an operation a caller's signal ended, by Node's convention on
 * the signal's reason: `AbortSignal.timeout()` aborts with a `TimeoutError`
 * (ERR_TAPS_TIMEOUT); anything else is an abort (ERR_TAPS_ABORTED).
 */
export function abortCode(reason: unknown): 'ERR_TAPS_TIMEOUT' | 'ERR_TAPS_ABORTED' {
  const r = reason as { name?: unknown; code?: unknown } | undefined;
  return r?.name === 'TimeoutError' || r?.code === 'ERR_TAPS_TIMEOUT' ? 'ERR_TAPS_TIMEOUT' : 'ERR_TAPS_ABORTED';
}

/** Turn anything thrown into a TapsError, keeping the original as `cause`. */
export function toTapsError(err: unknown, fallback: TapsErrorCode = 'ERR_TAPS_PROTOCOL_FAILED'): TapsError {
  if (isTapsError(err)) return err;
  const e = err as { code?: string; message?: string; name?: string } | undefined;
  if (e?.name === 'AbortError') return new TapsError('ERR_TAPS_ABORTED', e.message ?? 'aborted', { cause: err });
  if (e?.name === 'TimeoutError') return new TapsError('ERR_TAPS_TIMEOUT', e.message ?? 'timed out', { cause: err });
  switch (e?.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return new TapsError('ERR_TAPS_CONNECTION_RESET', e.message ?? 'connection reset', { cause: err });
    case 'ETIMEDOUT':
      return new TapsError('ERR_TAPS_TIMEOUT', e.message ?? 'timed out', { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NODATA':
    case 'EAI_NONAME':
      return new TapsError('ERR_TAPS_RESOLUTION_FAILED', e.message ?? 'resolution failed', { cause: err });
    default:
      break;
  }
  if (typeof e?.code === 'string' && isSecurityCode(e.code)) {
    return new TapsError('ERR_TAPS_SECURITY_FAILED', e.message ?? 'security failed', { cause: err });
  }
  return new TapsError(fallback, e?.message ?? String(err), { cause: err });
}
