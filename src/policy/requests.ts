/**
 * Requests as the guard reads them: a snapshot of the caller's object, taken
 * once, own data properties only (src/own.ts), before anything is decided.
 * The decision, the record and the minted target all come from the snapshot,
 * so a getter, a Proxy or a polluted `Object.prototype` cannot make the
 * policy see one thing and the socket another.
 *
 * @example
 * const req = snapshotRequest(request); // { use, protocol, host, address, port, url }, own data only
 */
import { checkObject, ownField } from '../own.js';
import type { AuthorizeRequest } from './contract.js';
import type { PolicyRequest } from './types.js';

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

/** The policy request an authorize request is decided as (its `hostName` is the request's `host`). */
export function snapshotAuthorize(request: unknown): PolicyRequest {
  const r = checkObject(request, REQUEST);
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
