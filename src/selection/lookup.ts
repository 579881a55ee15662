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
import { toTapsError, type TapsError } from '../errors.js';
import { authorizeLookupNow } from '../policy/admission.js';
import type { CheckedName, PolicyGuard } from '../policy/contract.js';
import type { CandidateRecord } from '../report.js';

/** The first granted CheckedName (undefined when every protocol was denied) and the stacks that may use it. */
export interface LookupGrants<S> {
  readonly name: CheckedName | undefined;
  readonly allowed: S[];
}

type Grant = { name: CheckedName } | { err: TapsError };

/**
 * Each stack in order, its protocol's grant asked once. Answered at once when every decision is (the usual
 * synchronous policy: no turn before the lookup); a promise as soon as one decision is a promise.
 */
export function grantLookups<S extends { readonly driver: Driver }>(
  guard: PolicyGuard,
  host: string,
  stacks: readonly S[],
  record: (r: Omit<CandidateRecord, 'id'>) => unknown,
  /** The port the answers will be dialled on (strict answers decide each answer for it); none for a bind. */
  portOf: (s: S) => number | undefined = () => undefined,
): LookupGrants<S> | Promise<LookupGrants<S>> {
  const grants = new Map<string, Grant>();
  const allowed: S[] = [];
  let name: CheckedName | undefined;
  const from = (i: number): LookupGrants<S> | Promise<LookupGrants<S>> => {
    for (; i < stacks.length; i++) {
      const s = stacks[i]!;
      let grant = grants.get(s.driver.protocol);
      if (grant === undefined) {
        const asked = ask(guard, s.driver.protocol, host, portOf(s));
        if (asked instanceof Promise) {
          const at = i;
          return asked.then((g) => {
            grants.set(s.driver.protocol, g);
            return from(at);
          });
        }
        grants.set(s.driver.protocol, (grant = asked));
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
  };
  return from(0);
}

/** One protocol's grant: a name or the typed refusal, at once when the guard answers at once. */
function ask(guard: PolicyGuard, protocol: Driver['protocol'], host: string, port: number | undefined): Grant | Promise<Grant> {
  let r: CheckedName | Promise<CheckedName>;
  try {
    r = authorizeLookupNow(guard, protocol, host, port);
  } catch (err) {
    return { err: toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED') };
  }
  if (!(r instanceof Promise)) return { name: r };
  return r.then(
    (n) => ({ name: n }),
    (err: unknown) => ({ err: toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED') }),
  );
}
