/**
 * The policy stage of a selection (RFC 9623 §4.1, checked at the chokepoint): each (stack, address, port)
 * leaf is authorized as a `connect` with the name it will present, and, when the local endpoint names an
 * address or port, connecting from there as a `bind` (decided once per protocol and family; a denial denies
 * that stack's candidates of that family). Only the CheckedTargets minted here reach a driver.
 *
 * @example
 * const auth = new Authorizer(input);
 * const verdict = await auth.decide(stack, { address: '::1', family: 6 }, 443, 'example.com'); // CheckedTarget | TapsError
 */
import type { Driver } from '../driver.js';
import type { LocalEndpoint } from '../endpoints.js';
import { toTapsError, type TapsError } from '../errors.js';
import type { NetworkScope } from '../network.js';
import type { CheckedTarget } from '../policy/contract.js';
import { OwnRequest } from '../policy/requests.js';
import type { RankedStack } from './rank.js';

export class Authorizer {
  readonly #scope: NetworkScope;
  readonly #local: LocalEndpoint | undefined;
  #binds: Map<string, Promise<TapsError | undefined>> | undefined;

  constructor(input: { readonly scope: NetworkScope; readonly local?: LocalEndpoint | undefined }) {
    this.#scope = input.scope;
    this.#local = input.local;
  }

  /** The bind grant for connecting from the local endpoint: undefined when it names nothing, else why not (or undefined: granted). */
  localBind(protocol: Driver['protocol'], family: 4 | 6): Promise<TapsError | undefined> | undefined {
    const local = this.#local;
    if (local === undefined || (local.ipAddress === undefined && !local.port)) return undefined;
    const key = `${protocol}/${family}`;
    this.#binds ??= new Map();
    let p = this.#binds.get(key);
    if (p === undefined) {
      const address = local.ipAddress ?? (family === 6 ? '::' : '0.0.0.0');
      p = this.#scope.guard.authorize({ use: 'bind', protocol, address, port: local.port ?? 0 }).then(
        () => undefined,
        (err: unknown) => toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED'),
      );
      this.#binds.set(key, p);
    }
    return p;
  }

  /** One address's verdict for a stack: its CheckedTarget, or why not (the bind grant first, when there is one). */
  decide(s: RankedStack, a: { address: string; family: 4 | 6 }, port: number, hostName: string | undefined): Promise<CheckedTarget | TapsError> {
    const connect = (): Promise<CheckedTarget | TapsError> =>
      this.#scope.guard.authorize(new OwnRequest('connect', s.driver.protocol, a.address, port, hostName)).then(
        (target) => target,
        (err: unknown) => toTapsError(err, 'ERR_TAPS_POLICY_PROHIBITED'),
      );
    const bind = this.localBind(s.driver.protocol, a.family);
    return bind === undefined ? connect() : bind.then((denied) => denied ?? connect());
  }
}
