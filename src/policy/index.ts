/**
 * The policy engine's public surface: the Host and its tenant scopes, the
 * rule grammar, presets and canonicalisation. The core imports the
 * chokepoint directly; hosts import from here (or the package root).
 *
 * @example
 * import { Host } from 'taps-node';
 * const host = new Host();
 * host.setPolicy('acme', 'allow tcp://@loopback:8080');
 * const scope = await host.tenant('acme');
 */
export { Host, type HostOptions, type PolicySource, type ReloadEvent, type RevokeMode, type SetPolicyOptions } from './host.js';
export type { TenantScope } from './scope.js';
export { parseRule, PolicyParseError, type HostPattern, type JsonRule, type ParseLocation, type PolicyRule } from './grammar.js';
export {
  parsePolicy, parsePolicyFile, parseBudget, isPolicySpec,
  type ByteBudget, type PolicyJson, type PolicyLimits, type PolicySpec,
} from './source.js';
export { compilePolicy, compileRules, CompiledRules, type CompiledPolicy, type CustomRequest, type CustomRule } from './compile.js';
export { canonicalRequest, evaluate, type CanonicalRequest, type Verdict } from './decide.js';
export {
  ADDRESS_CLASSES, CLASS_RANGES, PRESETS, classify, embeddedIPv4, isPresetName,
  type AddressClass, type Preset, type PresetName,
} from './classes.js';
export {
  canonicalAddress, canonicalHost, canonicalUrl, formatIPv4, formatIPv6, parseIPv4, parseIPv6, DEFAULT_PORTS,
  type CanonicalAddress, type CanonicalHost, type CanonicalUrl,
} from './canonical.js';
export { CLAIMS_ALGORITHMS, type ClaimsAlgorithm, type TrustedIssuer, type VerifiedClaims } from './claims.js';
export { TenantLease, TenantQuota, type TenantUsage } from './quota.js';
export type { QuotaStore, QuotaUnit } from './store.js';
export { DECISION_CHANNEL } from './records.js';
export { CheckedNetwork, isCheckedName, isCheckedTarget, isNetworkScope } from './chokepoint.js';
export { BasicScope, createScope, type ScopeOptions } from './basic-scope.js';
export type { AuthorizeRequest, CheckedName, CheckedTarget, DecisionRecord, Lease, PolicyGuard } from './contract.js';
export type { NetworkScope } from '../network.js';
export * from './types.js';
