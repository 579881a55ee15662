/**
 * Policy documents: one tenant's policy, or a file of many tenants, in the
 * text grammar or JSON. Parsing is all-or-nothing: one bad line and the
 * whole document is refused with a {@link PolicyParseError}.
 *
 * Text form (one directive per line, `#` comments):
 *
 *     tenant acme                      # only in policy files: starts a section
 *     mode audit                       # enforce (default) | audit
 *     answers strict                   # each (default) | strict: one forbidden answer refuses the name
 *     allow tcp://api.example.com:443
 *     allow connect,redirect:https://*.example.com
 *     deny  *://@cloud-metadata:*
 *     limit connections 10
 *     limit listeners 2
 *     limit sent 10MiB per 60s         # also: received, bytes (both ways)
 *
 * JSON form: `{ "mode", "answers", "allow": [rule…], "deny": [rule…], "limits": {…} }`
 * for one tenant, `{ "tenants": { "<id>": {…} } }` for a file.
 *
 * @example
 * const spec = parsePolicy('allow tcp://127.0.0.1:8080\nlimit connections 2');
 * const file = parsePolicyFile(text, 'tenants.policy'); // Map<tenant, PolicySpec>
 */
import { ownField } from '../own.js';
import { parseRule, PolicyParseError, type JsonRule, type ParseLocation, type PolicyRule } from './grammar.js';

/** Bytes allowed per fixed time window. */
export interface ByteBudget {
  readonly bytes: number;
  readonly windowMs: number;
}

/** A tenant's quotas: concurrent connections and listeners, byte budgets. */
export interface PolicyLimits {
  readonly connections?: number | undefined;
  readonly listeners?: number | undefined;
  readonly sent?: ByteBudget | undefined;
  readonly received?: ByteBudget | undefined;
  /** Sent and received together. */
  readonly bytes?: ByteBudget | undefined;
}

/** One tenant's parsed policy (made only by the parsers). */
export interface PolicySpec {
  readonly mode: 'enforce' | 'audit';
  /**
   * `strict`: a name whose answers hold any address the tenant may not
   * connect to is refused whole, whatever rule granted it; `each` (default):
   * each answer is decided on its own (and rules marked ` strict` are strict).
   */
  readonly answers: 'each' | 'strict';
  readonly allow: readonly PolicyRule[];
  readonly deny: readonly PolicyRule[];
  readonly limits: PolicyLimits;
}

/** The JSON form of one tenant's policy. */
export interface PolicyJson {
  readonly mode?: 'enforce' | 'audit';
  readonly answers?: 'each' | 'strict';
  readonly allow?: ReadonlyArray<string | JsonRule>;
  readonly deny?: ReadonlyArray<string | JsonRule>;
  readonly limits?: {
    readonly connections?: number;
    readonly listeners?: number;
    readonly sent?: ByteBudget | string;
    readonly received?: ByteBudget | string;
    readonly bytes?: ByteBudget | string;
  };
}

const TENANT_ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const JSON_FIELDS = ['mode', 'answers', 'allow', 'deny', 'limits'];
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `10MiB per 60s`, `10MiB/60s`, `1000 per 1s`. */
export function parseBudget(t: string): ByteBudget | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kmg]i?b|b)?\s*(?:\/|\s+per\s+)\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)$/i.exec(t.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
  const windowMs = Math.round(Number(m[3]) * TIME_UNITS[m[4]!.toLowerCase()]!);
  if (!Number.isFinite(bytes) || windowMs <= 0) return undefined;
  return { bytes, windowMs };
}

interface Builder {
  mode: 'enforce' | 'audit';
  modeSet: boolean;
  answers: 'each' | 'strict';
  answersSet: boolean;
  allow: PolicyRule[];
  deny: PolicyRule[];
  limits: { -readonly [K in keyof PolicyLimits]: PolicyLimits[K] };
}

const builder = (): Builder => ({ mode: 'enforce', modeSet: false, answers: 'each', answersSet: false, allow: [], deny: [], limits: {} });
const specs = new WeakSet<object>();
const freeze = (b: Builder): PolicySpec => {
  const spec = Object.freeze({ mode: b.mode, answers: b.answers, allow: Object.freeze(b.allow), deny: Object.freeze(b.deny), limits: Object.freeze(b.limits) });
  specs.add(spec);
  return spec;
};

/** True for a PolicySpec made by this module's parsers (not a lookalike object). */
export function isPolicySpec(value: unknown): value is PolicySpec {
  return typeof value === 'object' && value !== null && specs.has(value);
}

function isJson(text: string): boolean {
  return /^\s*\{/.test(text);
}

/** Parse one tenant's policy (text or JSON text or a JSON object). */
export function parsePolicy(source: string | PolicyJson, name = 'policy'): PolicySpec {
  if (typeof source === 'string') {
    if (isJson(source)) return fromJson(parseJsonText(source, name), name, '');
    const out = parseText(source, name, false);
    return out.get('') ?? freeze(builder());
  }
  if (typeof source !== 'object' || source === null) throw new TypeError('policy must be a string or a JSON policy object');
  return fromJson(source, name, '');
}

/** Parse a policy file with one section per tenant (text `tenant <id>` sections or JSON `{ tenants: {…} }`). */
export function parsePolicyFile(text: string, name = 'policy file'): Map<string, PolicySpec> {
  if (typeof text !== 'string') throw new TypeError('policy file text must be a string');
  if (!isJson(text)) return parseText(text, name, true);
  const doc = parseJsonText(text, name) as { tenants?: unknown };
  const keys = typeof doc === 'object' && doc !== null ? Object.keys(doc) : [];
  const tenants = keys.length === 1 && keys[0] === 'tenants' ? ownField(doc, 'tenants', 'policy file') : undefined;
  if (typeof tenants !== 'object' || tenants === null) {
    throw new PolicyParseError('a JSON policy file is { "tenants": { "<id>": { … } } }', text.slice(0, 60), 0, { source: name });
  }
  const out = new Map<string, PolicySpec>();
  for (const [id, pol] of Object.entries(tenants as Record<string, PolicyJson>)) {
    if (!TENANT_ID.test(id)) throw new PolicyParseError('invalid tenant id', id, 0, { source: name, path: `tenants` });
    out.set(id, fromJson(pol, name, `tenants.${id}.`));
  }
  return out;
}

function parseJsonText(text: string, name: string): PolicyJson {
  try {
    return JSON.parse(text) as PolicyJson;
  } catch (e) {
    const msg = (e as Error).message;
    const pos = Number(/position (\d+)/.exec(msg)?.[1] ?? 0);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    const lineText = text.split('\n')[line - 1] ?? '';
    throw new PolicyParseError(`invalid JSON: ${msg}`, lineText, column - 1, { source: name, line, column: 1 });
  }
}

function fromJson(doc: PolicyJson, name: string, prefix: string): PolicySpec {
  const fail = (d: string, path: string, rule = '') => new PolicyParseError(d, rule, 0, { source: name, path: prefix + path });
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw fail('a policy must be an object', prefix || '(root)');
  for (const k of Object.keys(doc)) if (!JSON_FIELDS.includes(k)) throw fail(`unknown field ${JSON.stringify(k)}`, k);
  // Own fields only: a field inherited from a polluted Object.prototype is not part of the policy.
  const field = (k: string): unknown => ownField(doc, k, 'policy');
  const b = builder();
  const mode = field('mode');
  if (mode !== undefined) {
    if (mode !== 'enforce' && mode !== 'audit') throw fail('mode must be "enforce" or "audit"', 'mode', typeof mode === 'string' ? mode : typeof mode);
    b.mode = mode;
  }
  const answers = field('answers');
  if (answers !== undefined) {
    if (answers !== 'each' && answers !== 'strict') throw fail('answers must be "each" or "strict"', 'answers', typeof answers === 'string' ? answers : typeof answers);
    b.answers = answers;
  }
  for (const effect of ['allow', 'deny'] as const) {
    const list = field(effect) as PolicyJson['allow'];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw fail(`${effect} must be an array of rules`, effect);
    list.forEach((r, i) => b[effect].push(parseRule(r, effect, { source: name, path: `${prefix}${effect}[${i}]` })));
  }
  const limits = field('limits');
  if (limits !== undefined) {
    const l = limits as NonNullable<PolicyJson['limits']>;
    if (typeof l !== 'object' || l === null) throw fail('limits must be an object', 'limits');
    for (const [k, v] of Object.entries(l)) {
      if (k === 'connections' || k === 'listeners') {
        if (!Number.isInteger(v) || (v as number) < 0) throw fail(`limits.${k} must be a non-negative integer`, `limits.${k}`, String(v));
        b.limits[k] = v as number;
      } else if (k === 'sent' || k === 'received' || k === 'bytes') {
        const budget = typeof v === 'string' ? parseBudget(v) : checkBudget(v);
        if (!budget) throw fail(`limits.${k} must be "<size> per <duration>" or { bytes, windowMs }`, `limits.${k}`, JSON.stringify(v));
        b.limits[k] = budget;
      } else throw fail(`unknown limit ${JSON.stringify(k)}`, `limits.${k}`);
    }
  }
  return freeze(b);
}

function checkBudget(v: unknown): ByteBudget | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const bytes = ownField(v, 'bytes', 'budget');
  const windowMs = ownField(v, 'windowMs', 'budget');
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < 0 || typeof windowMs !== 'number' || !Number.isFinite(windowMs) || windowMs <= 0) return undefined;
  return { bytes, windowMs };
}

function parseText(text: string, name: string, file: boolean): Map<string, PolicySpec> {
  const out = new Map<string, Builder>();
  let current: Builder | undefined = file ? undefined : builder();
  if (current) out.set('', current);
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const hash = raw.indexOf('#');
    const body = hash === -1 ? raw : raw.slice(0, hash);
    const m = /^(\s*)(\S+)(\s+)?(.*?)\s*$/.exec(body);
    if (!m) return;
    const [, lead, word, gap, rest] = m as unknown as [string, string, string, string | undefined, string];
    const argColumn = lead.length + word.length + (gap?.length ?? 0) + 1;
    const at: ParseLocation = { source: name, line, column: argColumn };
    const fail = (d: string, pos = 0) => new PolicyParseError(d, body.trim(), pos, { source: name, line, column: lead.length + 1 });
    if (word === 'tenant') {
      if (!file) throw fail('"tenant" sections belong in policy files (Host.loadPolicyFile), not in one tenant\'s policy');
      if (!TENANT_ID.test(rest)) throw fail(`invalid tenant id ${JSON.stringify(rest)}`, argColumn - lead.length - 1);
      if (out.has(rest)) throw fail(`tenant ${JSON.stringify(rest)} appears twice`, argColumn - lead.length - 1);
      current = builder();
      out.set(rest, current);
      return;
    }
    if (!current) throw fail('expected "tenant <id>" before the first rule');
    const b = current;
    switch (word) {
      case 'allow':
      case 'deny':
        if (rest.length === 0) throw fail(`"${word}" needs a rule`, word.length);
        b[word].push(parseRule(rest, word, at));
        return;
      case 'mode':
        if (rest !== 'enforce' && rest !== 'audit') throw fail('mode must be "enforce" or "audit"', argColumn - lead.length - 1);
        if (b.modeSet) throw fail('mode is set twice');
        b.mode = rest;
        b.modeSet = true;
        return;
      case 'answers':
        if (rest !== 'each' && rest !== 'strict') throw fail('answers must be "each" or "strict"', argColumn - lead.length - 1);
        if (b.answersSet) throw fail('answers is set twice');
        b.answers = rest;
        b.answersSet = true;
        return;
      case 'limit': {
        const lm = /^(connections|listeners|sent|received|bytes)\s+(.+)$/.exec(rest);
        if (!lm) throw fail('expected "limit connections|listeners <n>" or "limit sent|received|bytes <size> per <duration>"', argColumn - lead.length - 1);
        const kind = lm[1] as keyof PolicyLimits;
        if (kind === 'connections' || kind === 'listeners') {
          if (!/^[0-9]{1,9}$/.test(lm[2]!)) throw fail(`limit ${kind} needs a non-negative integer`, argColumn - lead.length - 1 + kind.length + 1);
          b.limits[kind] = Number(lm[2]);
        } else {
          const budget = parseBudget(lm[2]!);
          if (!budget) throw fail(`limit ${kind} needs "<size> per <duration>", e.g. "10MiB per 60s"`, argColumn - lead.length - 1 + kind.length + 1);
          b.limits[kind] = budget;
        }
        return;
      }
      default:
        throw fail(`unknown directive ${JSON.stringify(word)} (expected allow, deny, mode, answers, limit${file ? ', tenant' : ''})`);
    }
  });
  const result = new Map<string, PolicySpec>();
  for (const [k, v] of out) result.set(k, freeze(v));
  return result;
}
