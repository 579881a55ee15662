/**
 * The policy chokepoint's vocabulary: what is asked and what is answered.
 *
 * Every candidate the library may touch is put to the tenant's policy as a
 * {@link PolicyRequest} before a packet leaves: the DNS lookup of a name
 * (`use: 'lookup'`), then each resolved address with protocol and port
 * (`use: 'connect'`), binds, accepted peers and HTTP redirect hops. A
 * WebSocket is a `ws:`/`wss:` connect, and UDP datagrams go only to a
 * connected peer or, from a listener, to the peer it accepted: there is no
 * separate `upgrade` or `sendto` use, since no path of the library asks
 * one. A decision speaks
 * with one polarity: `{ allow: true, rule }` or `{ allow: false, code, reason }`
 * (STYLE §5). No policy means deny.
 *
 * @example
 * const policy: NetworkPolicy = {
 *   decide: (req) => req.address === '127.0.0.1'
 *     ? { allow: true, rule: 'loopback' }
 *     : { allow: false, code: 'no-match', reason: 'only loopback', rule: null },
 * };
 */

/** What the candidate will be used for. Each use is a separate grant. */
export type NetworkUse = 'lookup' | 'connect' | 'bind' | 'accept' | 'redirect';

/** The protocol a candidate speaks, as named in policy rules (`scheme://`). */
export type PolicyProtocol =
  | 'tcp'
  | 'tls'
  | 'udp'
  | 'quic'
  | 'webtransport'
  | 'http'
  | 'https'
  | 'ws'
  | 'wss';

/** Every protocol a rule can name. */
export const POLICY_PROTOCOLS: readonly PolicyProtocol[] = Object.freeze([
  'tcp', 'tls', 'udp', 'quic', 'webtransport', 'http', 'https', 'ws', 'wss',
]);

/** Every use a rule can grant. */
export const NETWORK_USES: readonly NetworkUse[] = Object.freeze([
  'lookup', 'connect', 'bind', 'accept', 'redirect',
]);

/** One question to the policy. Fields absent for a use are left undefined. */
export interface PolicyRequest {
  readonly use: NetworkUse;
  readonly protocol: PolicyProtocol;
  /** The name as the caller gave it (lookup; connect/redirect when reached by name). */
  readonly host?: string | undefined;
  /** The IP address that will be used (connect, bind, accept, redirect after resolution). */
  readonly address?: string | undefined;
  readonly port?: number | undefined;
  /** For a redirect: the full target URL as given. */
  readonly url?: string | undefined;
}

/** Stable reason codes for a denial. */
export type DenyCode =
  | 'no-policy' // no policy was configured: default deny
  | 'no-match' // nothing allowed it: default deny
  | 'denied' // an explicit deny rule matched
  | 'invalid-host' // the name or address could not be canonicalised
  | 'bad-scheme' // a redirect to a scheme that is not a network scheme
  | 'policy-error' // the policy itself failed (threw, timed out, bad claims)
  | 'unverified' // a connect to something the policy never checked
  | 'revoked'; // a hot reload forbade a live connection

/** A policy's answer: `{ allow: true, rule }` or `{ allow: false, code, reason, rule }`. */
export type PolicyDecision =
  | { readonly allow: true; readonly rule: string | null; readonly reason?: string }
  | {
      readonly allow: false;
      readonly code: DenyCode;
      readonly reason: string;
      readonly rule: string | null;
    };

/** The one thing a host must supply. May be sync (fast path) or async. */
export interface NetworkPolicy {
  /** Answer one request; throwing or a malformed answer denies (`policy-error`). */
  decide(request: PolicyRequest): PolicyDecision | Promise<PolicyDecision>;
}

/** A policy that denies everything: what "no policy given" means. */
export const DENY_ALL: NetworkPolicy = Object.freeze({
  decide: (): PolicyDecision => ({
    allow: false,
    code: 'no-policy',
    reason: 'no network policy was given; the default is to deny',
    rule: null,
  }),
});
