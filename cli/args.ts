/**
 * Argument parsing for the `taps-node` CLI on `node:util` parseArgs (strict:
 * an unknown flag is a usage error naming the flag meant, never ignored).
 *
 * @example
 * const a = parseProbeArgs(['localhost:8443', '--prefer', 'multistreaming', '--json']);
 * a.target; a.prefer; a.json; // 'localhost:8443', ['multistreaming'], true
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../src/suggest.js';
import { UsageError } from './usage.js';

export interface ProbeArgs {
  readonly target: string;
  readonly require: readonly string[];
  readonly prefer: readonly string[];
  readonly avoid: readonly string[];
  readonly prohibit: readonly string[];
  readonly profile: string | undefined;
  readonly framer: boolean;
  readonly security: 'required' | 'opportunistic' | 'disabled';
  readonly ca: string | undefined;
  readonly pin: readonly string[];
  readonly alpn: readonly string[];
  readonly policy: string | undefined;
  readonly tenant: string | undefined;
  readonly resolve: ReadonlyMap<string, readonly string[]>;
  readonly timeout: number;
  readonly attemptDelay: number | undefined;
  readonly racing: 'staggered' | 'simultaneous' | 'failover' | undefined;
  readonly json: boolean;
  readonly ascii: boolean;
  /** Output: the text report (default), JSON, an SVG or HTML waterfall, or Trace Event JSON. */
  readonly format: ProbeFormat;
}

/** What `probe` prints. */
export type ProbeFormat = 'text' | 'json' | 'svg' | 'html' | 'trace';

export interface ExplainArgs {
  readonly file: string;
  readonly tenant: string;
  readonly target: string;
  readonly use: string;
  readonly address: string | undefined;
  readonly protocol: string | undefined;
  readonly json: boolean;
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = (err as Error).message;
    const unknown = /^Unknown option '([^']+)'/.exec(message)?.[1];
    if (unknown !== undefined) throw new UsageError(`unknown option ${unknown}${didYouMean(unknown, Object.keys(options).map((o) => `--${o}`))}`);
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec(message)?.[1];
    if (ambiguous !== undefined) throw new UsageError(`${ambiguous} needs a value (one that starts with '-' is written ${ambiguous}=-…)`);
    throw new UsageError(message.split('\n')[0] ?? message);
  }
}

function positiveMs(v: string | undefined, flag: string, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw new UsageError(`${flag} must be a positive number of milliseconds, got ${JSON.stringify(v)}`);
  return n;
}

function oneOf<T extends string>(v: string | undefined, flag: string, values: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) throw new UsageError(`${flag} must be one of ${values.join(', ')}, got ${JSON.stringify(v)}${didYouMean(v, values)}`);
  return v as T;
}

/** `--resolve name=addr[,addr]`, repeatable. */
export function parseResolve(entries: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of entries) {
    const eq = e.indexOf('=');
    const name = e.slice(0, eq).trim().toLowerCase();
    const addrs = e.slice(eq + 1).split(',').map((a) => a.trim().replace(/^\[(.*)\]$/, '$1')).filter((a) => a.length > 0);
    if (eq <= 0 || addrs.length === 0) throw new UsageError(`--resolve wants <name>=<addr>[,<addr>], got ${JSON.stringify(e)}`);
    out.set(name, [...(out.get(name) ?? []), ...addrs]);
  }
  return out;
}

export function parseProbeArgs(argv: readonly string[]): ProbeArgs {
  const { values: v, positionals } = parse(argv, {
    require: { type: 'string', multiple: true },
    prefer: { type: 'string', multiple: true },
    avoid: { type: 'string', multiple: true },
    prohibit: { type: 'string', multiple: true },
    profile: { type: 'string' },
    framer: { type: 'boolean' },
    security: { type: 'string' },
    ca: { type: 'string' },
    pin: { type: 'string', multiple: true },
    alpn: { type: 'string', multiple: true },
    policy: { type: 'string' },
    tenant: { type: 'string' },
    resolve: { type: 'string', multiple: true },
    timeout: { type: 'string' },
    'attempt-delay': { type: 'string' },
    racing: { type: 'string' },
    json: { type: 'boolean' },
    ascii: { type: 'boolean' },
    format: { type: 'string' },
  } as const);
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'probe needs a target: <url | host:port>' : `probe takes one target, got ${positionals.length}: ${positionals.join(' ')}`);
  }
  if ((v.policy === undefined) !== (v.tenant === undefined)) throw new UsageError('--policy and --tenant go together: give both or neither');
  return {
    target: positionals[0]!,
    require: v.require ?? [],
    prefer: v.prefer ?? [],
    avoid: v.avoid ?? [],
    prohibit: v.prohibit ?? [],
    profile: oneOf(v.profile, '--profile', ['reliable-inorder-stream', 'reliable-message', 'unreliable-datagram']),
    framer: v.framer ?? false,
    security: oneOf(v.security, '--security', ['required', 'opportunistic', 'disabled'] as const) ?? 'required',
    ca: v.ca,
    pin: v.pin ?? [],
    alpn: v.alpn ?? [],
    policy: v.policy,
    tenant: v.tenant,
    resolve: parseResolve(v.resolve ?? []),
    timeout: positiveMs(v.timeout, '--timeout', 5000)!,
    attemptDelay: positiveMs(v['attempt-delay'], '--attempt-delay', undefined),
    racing: oneOf(v.racing, '--racing', ['staggered', 'simultaneous', 'failover'] as const),
    json: v.json ?? v.format === 'json',
    ascii: v.ascii ?? false,
    format: oneOf(v.format, '--format', ['text', 'json', 'svg', 'html', 'trace'] as const) ?? (v.json ? 'json' : 'text'),
  };
}

export function parseCheckArgs(argv: readonly string[]): { readonly file: string; readonly json: boolean } {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } } as const);
  if (positionals.length !== 1) throw new UsageError('policy check takes one file');
  return { file: positionals[0]!, json: values.json ?? false };
}

export function parseExplainArgs(argv: readonly string[]): ExplainArgs {
  const { values: v, positionals } = parse(argv, {
    use: { type: 'string' },
    address: { type: 'string' },
    protocol: { type: 'string' },
    json: { type: 'boolean' },
  } as const);
  if (positionals.length !== 3) throw new UsageError('policy explain takes <file> <tenant> <url | host:port>');
  const use = oneOf(v.use, '--use', ['lookup', 'connect', 'bind', 'accept', 'redirect']) ?? 'connect';
  return { file: positionals[0]!, tenant: positionals[1]!, target: positionals[2]!, use, address: v.address, protocol: v.protocol, json: v.json ?? false };
}
