/**
 * The chokepoint, as the core and hosts import it: the contract's types
 * (contract.ts), the run-time checks and the scope's network (admission.ts)
 * and the simple scope `createScope` makes (basic-scope.ts). A guest is
 * handed a {@link NetworkScope}; the guard inside it alone mints the
 * CheckedTargets its network admits.
 *
 * @example
 * const scope = createScope({ tenant: 'acme', policy, resolver });
 * const target = await scope.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port: 8080 });
 */
export type { AuthorizeRequest, CheckedName, CheckedTarget, DecisionRecord, Lease, PolicyGuard, ResolvedAddress } from './contract.js';
export type { NetworkScope } from '../network-types.js';
export {
  admit, brandScope, CheckedNetwork, decisionChannel, isCheckedName, isCheckedTarget, isNetworkScope, mintedBy, mintName, mintTarget,
  targetRequest, type AdmittingScope, type TargetFields,
} from './admission.js';
export { BasicScope, createScope, type ScopeOptions } from './basic-scope.js';
