/**
 * Requests as the guard reads them: a snapshot of the caller's object, taken
 * once, own data properties only (src/own.ts), before anything is decided.
 * The decision, the record and the minted target all come from the snapshot,
 * so a getter, a Proxy or a polluted `Object.prototype` cannot make the
 * policy see one thing and the socket another. A request the library makes
 * itself ({@link OwnRequest}: a selection's candidate) keeps its fields
 * private and is taken as it is: no caller code can run while it is read,
 * and nobody else can change it.
 *
 * @example
 * const req = snapshotRequest(request); // { use, protocol, host, address, port, url }, own data only
 */
import { checkObject, ownField } from '../own.js';
import type { AuthorizeRequest } from './contract.js';
import type { NetworkUse, PolicyProtocol, PolicyRequest } from './types.js';

const REQUEST = 'request';

/** A copy of a policy request's six fields (a fresh object nobody else holds); a non-object or an accessor throws TypeError. */
export function snapshotRequest(request: unknown): PolicyRequest {
  const r = checkObject(request, REQUEST);
  return {
    use: ownField(r, 'use', REQUEST),
    protocol: ownField(r, 'protocol', REQUEST),
    host: ownField(r, 'host', REQUEST),
    address: ownField(r, 'address', REQUEST),
    port: ownField(r, 'port', REQUEST),
    url: ownField(r, 'url', REQUEST),
  } as PolicyRequest;
}

/**
 * @internal An authorize request the library makes itself (a candidate's `connect`). Its fields are
 * private, read through a frozen prototype's getters: the guard takes the request as it was made, without
 * the field-by-field copy a caller's request needs.
 */
export class OwnRequest implements AuthorizeRequest {
  readonly #request: PolicyRequest;

  constructor(use: NetworkUse, protocol: PolicyProtocol, address: string, port: number, hostName: string | undefined) {
    this.#request = { use, protocol, host: hostName, address, port, url: undefined };
  }

  get use(): NetworkUse {
    return this.#request.use;
  }
  get protocol(): PolicyProtocol {
    return this.#request.protocol;
  }
  get address(): string {
    return this.#request.address!;
  }
  get port(): number {
    return this.#request.port!;
  }
  get hostName(): string | undefined {
    return this.#request.host;
  }

  /** The policy request `r` was made as, when the library made it; undefined for anything else. */
  static made(r: object): PolicyRequest | undefined {
    return #request in r ? (r as OwnRequest).#request : undefined;
  }
}
Object.freeze(OwnRequest.prototype);

/** The policy request an authorize request is decided as (its `hostName` is the request's `host`). */
export function snapshotAuthorize(request: unknown): PolicyRequest {
  const r = checkObject(request, REQUEST);
  const own = OwnRequest.made(r);
  if (own !== undefined) return own;
  const address = ownField(r, 'address', REQUEST);
  const port = ownField(r, 'port', REQUEST);
  if (typeof address !== 'string') throw new TypeError('request.address must be an IP address string');
  if (typeof port !== 'number') throw new TypeError('request.port must be a number');
  return {
    use: ownField(r, 'use', REQUEST),
    protocol: ownField(r, 'protocol', REQUEST),
    host: ownField(r, 'hostName', REQUEST),
    address,
    port,
    url: ownField(r, 'url', REQUEST),
  } as PolicyRequest;
}

export type { AuthorizeRequest };
