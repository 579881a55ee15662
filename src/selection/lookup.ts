/**
 * The `lookup` grant for a name, asked once per stack protocol (RFC 9623 §4.1: a name is a candidate the
 * policy decides before any query leaves): shared by initiate() (pipeline.ts) and listen() on a local name.
 * A stack whose protocol may not look the name up is recorded `denied`, with the rule, and gets no answers.
 *
 * @example
 * const { name, allowed } = await grantLookups(scope.guard, 'svc.example', ranked, record);
 * if (name) for (const a of await scope.guard.resolve(name, 4, signal)) ...;
 */
import type { Driver } from '../driver.js';
import { toTapsError } from '../errors.js';
import type { CheckedName, PolicyGuard } from '../policy/contract.js';
import type { CandidateRecord } from '../report.js';

/** The first granted CheckedName (undefined when every protocol was denied) and the stacks that may use it. */
export async function grantLookups<S extends { readonly driver: Driver }>(
  guard: PolicyGuard,
  host: string,
  stacks: readonly S[],
  record: (r: Omit<CandidateRecord, 'id'>) => unknown,
  /** The port the answers will be dialled on (strict answers decide each answer for it); none for a bind. */
  portOf: (s: S) => number | undefined = () => undefined,
): Promise<{ name: CheckedName | undefined; allowed: S[] }> {
  const grants = new Map<string, { name: CheckedName } | { err: ReturnType<typeof toTapsError> }>();
  const allowed: S[] = [];
  let name: CheckedName | undefined;
  for (const s of stacks) {
    let grant = grants.get(s.driver.protocol);
    if (grant === undefined) {
      try {
        grant = { name: await guard.authorizeLookup(s.driver.protocol, host, portOf(s)) };
      } catch (err) {
        grant = { err: toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED') };
      }
      grants.set(s.driver.protocol, grant);
    }
    if ('name' in grant) {
      allowed.push(s);
      name ??= grant.name;
      continue;
    }
    const decision = (grant.err as { decision?: CandidateRecord['decision'] }).decision;
    record({
      driver: s.driver.id, stack: s.driver.stack, hostName: host, fate: 'denied', reason: `lookup of ${host} denied: ${decision?.reason ?? grant.err.message}`,
      code: decision && !decision.allow ? decision.code : grant.err.code, decision, error: grant.err,
    });
  }
  return { name, allowed };
}
