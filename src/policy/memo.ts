/**
 * A scope's memory of one of its last self-contained decisions (a scope keeps a few: a selection asks one
 * per stack and address, and the next selection to that endpoint asks them again). Deciding is a pure
 * function of the request and the compiled policy (when there is no custom
 * rule and no claims, which expire), so the same question under the same
 * revision gets the same answer without canonicalising and probing again —
 * the common case of a pool re-dialling one destination, or a UDP socket
 * sending datagram after datagram to one peer. The answer is kept as values
 * and every repeat gets a fresh decision object, so nothing a caller does to
 * the object it was given can change a later answer. A few objects per scope,
 * overwritten in place in turn: no allocation on the decision path.
 *
 * @example
 * if (memo.matches(policy, revision, use, protocol, host, address, port, url)) return memo.decision();
 * memo.store(policy, revision, use, protocol, host, address, port, url, canonical, verdict, decision);
 */
import type { CheckedTarget } from './contract.js';
import type { CompiledPolicy } from './compile.js';
import type { CanonicalRequest } from './decide.js';
import type { DenyCode, PolicyDecision } from './types.js';

export class DecisionMemo {
  #policy: CompiledPolicy | undefined;
  #revision = -1;
  #use: unknown;
  #protocol: unknown;
  #host: unknown;
  #address: unknown;
  #port: unknown;
  #url: unknown;
  #allow = false;
  #code: DenyCode = 'no-match';
  #reason: string | undefined;
  #rule: string | null = null;
  /** The canonical request of the remembered answer (undefined: nothing remembered yet). */
  request: CanonicalRequest | undefined;
  /** The policy's verdict, for records (never handed to the tenant). */
  verdict: PolicyDecision | undefined;
  /** The target minted for the remembered answer: targets are immutable, so one serves every identical authorize. */
  target: CheckedTarget | undefined;

  /** True when these raw fields (compared as given) were the last question, under this very policy and revision. */
  matches(policy: CompiledPolicy | undefined, revision: number, use: unknown, protocol: unknown, host: unknown, address: unknown, port: unknown, url: unknown): boolean {
    return (
      this.request !== undefined && this.#policy === policy && this.#revision === revision && this.#address === address &&
      this.#port === port && this.#host === host && this.#use === use && this.#protocol === protocol && this.#url === url
    );
  }

  /** A fresh copy of the remembered decision (audit may have turned a denial into an allow). */
  decision(): PolicyDecision {
    if (!this.#allow) return { allow: false, code: this.#code, reason: this.#reason ?? '', rule: this.#rule };
    return this.#reason === undefined ? { allow: true, rule: this.#rule } : { allow: true, rule: this.#rule, reason: this.#reason };
  }

  /** Remember an answer (the decision is copied as values; the caller keeps its object). */
  store(
    policy: CompiledPolicy | undefined, revision: number, use: unknown, protocol: unknown, host: unknown, address: unknown, port: unknown,
    url: unknown, request: CanonicalRequest, verdict: PolicyDecision, decision: PolicyDecision,
  ): void {
    this.#policy = policy;
    this.#revision = revision;
    this.#use = use;
    this.#protocol = protocol;
    this.#host = host;
    this.#address = address;
    this.#port = port;
    this.#url = url;
    this.request = request;
    this.verdict = verdict;
    this.#allow = decision.allow;
    this.#code = decision.allow ? 'no-match' : decision.code;
    this.#reason = decision.reason;
    this.#rule = decision.rule;
    this.target = undefined;
  }
}
