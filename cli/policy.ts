/**
 * `taps-node policy check` and `taps-node policy explain`.
 *
 * `check` parses and compiles every tenant of a policy file (text or JSON,
 * the format `Host.loadPolicyFile` reads) and prints every error, each with
 * the line, the column and a caret under the offending character. A
 * JSON error located by a path (`tenants.acme.allow[1]`) is pinned to a line
 * and column by finding the offending rule in the text.
 *
 * `explain` loads the file into a Host, takes the tenant's scope and decides
 * one request (by default `connect` to the URL's host and port), printing
 * the decision, its code and reason, and the rule that made it. A host name
 * is decided as a name (and its lookup grant is shown); `--address` judges
 * the IP it would resolve to.
 *
 * @example
 * await check({ file: 'tenants.policy', json: false }, stdio);          // exit 0 or 4
 * await explain({ file, tenant: 'acme', target: 'tls://api.example.com:443', use: 'connect', ... }, stdio);
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  Host, POLICY_PROTOCOLS, PolicyParseError, RemoteEndpoint, compilePolicy, parsePolicyFile,
  type DecisionRecord, type NetworkUse, type PolicyDecision, type PolicyProtocol, type PolicyRequest, type PolicySpec,
} from '../src/index.js';
import type { ExplainArgs } from './args.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIO } from './output.js';
import { UsageError } from './usage.js';

export interface Located {
  readonly line: number;
  readonly column: number;
}

/** Where in `text` the error points: its own line/column, or the rule's first occurrence for JSON path errors. */
export function locate(err: PolicyParseError, text: string): Located | undefined {
  if (err.line !== undefined) return { line: err.line, column: err.column ?? 1 };
  if (err.rule === '') return undefined;
  const needle = JSON.stringify(err.rule);
  let at = text.indexOf(needle);
  let offset = 1; // skip the opening quote
  if (at < 0) {
    at = text.indexOf(err.rule);
    offset = 0;
  }
  if (at < 0) return undefined;
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const column = at - (before.lastIndexOf('\n') + 1) + 1 + offset + err.position;
  return { line, column };
}

/** The offending line with a caret under the column. */
export function caret(text: string, where: Located): string {
  const src = (text.split(/\r?\n/)[where.line - 1] ?? '').replace(/\t/g, ' ');
  const gutter = String(where.line);
  return `  ${gutter} | ${src}\n  ${' '.repeat(gutter.length)} | ${' '.repeat(Math.max(0, where.column - 1))}^\n`;
}

function describeSpec(id: string, spec: PolicySpec): string {
  const limits = Object.entries(spec.limits).map(([k, v]) => (typeof v === 'number' ? `${k} ${v}` : `${k} ${v?.bytes} B per ${v?.windowMs} ms`));
  return `  ${id}: ${spec.allow.length} allow, ${spec.deny.length} deny, mode ${spec.mode}${limits.length ? `, limits: ${limits.join(', ')}` : ''}`;
}

async function readPolicy(file: string, io: CliIO): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    io.err(`${file}: cannot read: ${(err as Error).message}\n`);
    return undefined;
  }
}

/** One error as JSON data, located in the text. */
function errorJson(err: PolicyParseError, text: string): Record<string, unknown> {
  const where = locate(err, text);
  return { message: err.message, detail: err.detail, rule: err.rule, line: where?.line, column: where?.column, path: err.path };
}

/** One error for people: the message with its line and column, and the offending line with a caret. */
function errorText(err: PolicyParseError, text: string): string {
  const where = locate(err, text);
  // A JSON path error names only the file: put the line and column found in the text in its place.
  const message = where && err.line === undefined && err.source !== undefined && err.message.startsWith(`${err.source}: `)
    ? `${err.source}:${where.line}:${where.column}: ${err.message.slice(err.source.length + 2)}`
    : err.message;
  return `${message}\n${where ? caret(text, where) : ''}`;
}

function reportErrors(errors: readonly unknown[], file: string, text: string, io: CliIO, json: boolean): ExitCode {
  for (const err of errors) if (!(err instanceof PolicyParseError)) throw err;
  const list = errors as readonly PolicyParseError[];
  if (json) {
    const all = list.map((e) => errorJson(e, text));
    io.out(`${JSON.stringify({ command: 'policy check', ok: false, file, error: all[0], errors: all }, null, 2)}\n`);
    return EXIT.invalidPolicy;
  }
  for (const err of list) io.err(errorText(err, text));
  const count = list.length === 1 ? '1 error' : `${list.length} errors`;
  io.err(`${file}: invalid (${count}); no tenant's policy would be installed\n`);
  return EXIT.invalidPolicy;
}

const MAX_ERRORS = 100;

/**
 * Parse and compile the whole file, collecting every error rather than the
 * first: in a text file each error's line is blanked and the file parsed
 * again (the line numbers stay), up to MAX_ERRORS; a JSON file reports its
 * first parse error. Then every tenant is compiled, each error kept.
 */
function checkAll(text: string, name: string): { specs: Map<string, PolicySpec>; errors: unknown[] } {
  const errors: unknown[] = [];
  const lines = text.split('\n');
  let specs: Map<string, PolicySpec> | undefined;
  while (specs === undefined) {
    try {
      specs = parsePolicyFile(lines.join('\n'), name);
    } catch (err) {
      errors.push(err);
      const line = err instanceof PolicyParseError ? err.line : undefined;
      if (line === undefined || lines[line - 1] === '' || errors.length >= MAX_ERRORS) return { specs: new Map(), errors };
      lines[line - 1] = '';
    }
  }
  for (const spec of specs.values()) {
    try {
      compilePolicy(spec);
    } catch (err) {
      errors.push(err);
    }
  }
  return { specs, errors };
}

/** The first error of a file that must load as a whole (explain). */
function parseError(err: unknown, file: string, text: string, io: CliIO, json: boolean): ExitCode {
  return reportErrors([err], file, text, io, json);
}

export async function check(args: { readonly file: string; readonly json: boolean }, io: CliIO): Promise<ExitCode> {
  const text = await readPolicy(args.file, io);
  if (text === undefined) return EXIT.invalidPolicy;
  const { specs, errors } = checkAll(text, basename(args.file));
  if (errors.length > 0) return reportErrors(errors, args.file, text, io, args.json);
  if (args.json) {
    io.out(`${JSON.stringify({ command: 'policy check', ok: true, file: args.file, tenants: Object.fromEntries([...specs].map(([id, s]) => [id, { mode: s.mode, allow: s.allow.map((r) => r.text), deny: s.deny.map((r) => r.text), limits: s.limits }])) }, null, 2)}\n`);
  } else {
    io.out(`${args.file}: ok, ${specs.size} tenant${specs.size === 1 ? '' : 's'}\n${[...specs].map(([id, s]) => describeSpec(id, s)).join('\n')}\n`);
  }
  return EXIT.ok;
}

function protocolOf(endpoint: RemoteEndpoint, flag: string | undefined): PolicyProtocol {
  const p = flag ?? endpoint.scheme ?? 'tcp';
  if (!POLICY_PROTOCOLS.includes(p as PolicyProtocol)) throw new UsageError(`protocol ${JSON.stringify(p)} is not one of ${POLICY_PROTOCOLS.join(', ')}`);
  return p as PolicyProtocol;
}

function line(label: string, d: PolicyDecision, record: DecisionRecord | undefined): string {
  const audit = record !== undefined && record.mode === 'audit' && !record.allow;
  const verdict = d.allow ? (audit ? 'ALLOW (audit mode: the policy would deny)' : 'ALLOW') : `DENY (${d.code})`;
  const rule = d.rule ?? '(no rule: default deny)';
  const reason = d.reason ? `\n    reason: ${d.reason}` : '';
  return `${label}\n    decision: ${verdict}\n    rule: ${rule}${reason}\n`;
}

export async function explain(args: ExplainArgs, io: CliIO): Promise<ExitCode> {
  let endpoint: RemoteEndpoint;
  try {
    endpoint = RemoteEndpoint.from(args.target);
  } catch (err) {
    throw new UsageError(`target ${JSON.stringify(args.target)}: ${(err as Error).message}`);
  }
  const protocol = protocolOf(endpoint, args.protocol);
  const text = await readPolicy(args.file, io);
  if (text === undefined) return EXIT.invalidPolicy;
  const records: DecisionRecord[] = [];
  const host = new Host({ onDecision: (r) => records.push(r) });
  try {
    try {
      await host.loadPolicyFile(args.file);
    } catch (err) {
      return parseError(err, args.file, text, io, args.json);
    }
    let scope;
    try {
      scope = await host.tenant(args.tenant);
    } catch (err) {
      throw new UsageError(`tenant: ${(err as Error).message}`);
    }
    const name = endpoint.hostName;
    const address = endpoint.ipAddress ?? args.address;
    const use = args.use as NetworkUse;
    const request: PolicyRequest =
      use === 'lookup'
        ? { use, protocol, host: name ?? address }
        : { use, protocol, host: name, address, port: endpoint.port, url: use === 'redirect' ? endpoint.url ?? `${protocol}://${args.target}` : undefined };
    const decisions: { label: string; request: PolicyRequest; decision: PolicyDecision; record: DecisionRecord | undefined }[] = [];
    const decide = async (label: string, req: PolicyRequest): Promise<PolicyDecision> => {
      const before = records.length;
      const decision = await scope.guard.decide(req);
      decisions.push({ label, request: req, decision, record: records[before] });
      return decision;
    };
    const main = await decide(`${use} ${protocol}://${name ?? ''}${name && address ? ` (${address})` : (address ?? '')}${endpoint.port !== undefined && use !== 'lookup' ? `:${endpoint.port}` : ''}`, request);
    if (name !== undefined && use !== 'lookup') await decide(`lookup ${name} (needed before any connect by name)`, { use: 'lookup', protocol, host: name });
    const known = host.tenants();
    if (args.json) {
      io.out(`${JSON.stringify({ command: 'policy explain', tenant: args.tenant, revision: scope.revision, known: known.includes(args.tenant), decisions: decisions.map((d) => ({ request: d.request, decision: d.decision, mode: d.record?.mode, policyVerdict: d.record?.allow })) }, null, 2)}\n`);
    } else {
      io.out(`tenant ${args.tenant} · ${args.file}${known.includes(args.tenant) ? '' : ` · this tenant has no policy in the file (tenants: ${known.join(', ') || 'none'})`}\n`);
      for (const d of decisions) io.out(line(d.label, d.decision, d.record));
      if (name !== undefined && address === undefined && use !== 'lookup') {
        io.out('note: decided by name only; each address it resolves to is decided again (name grants cover public addresses only). Use --address to judge one.\n');
      }
    }
    return main.allow ? EXIT.ok : EXIT.denied;
  } finally {
    host.close();
  }
}
