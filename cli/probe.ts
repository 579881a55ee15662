/**
 * `taps probe`: one real selection, explained. Builds a Preconnection from
 * the flags, runs `initiate()` with `onProgress` (which keeps each stack's
 * ranking reason before a failure replaces it), closes what it got at once,
 * and prints the candidate tree and the race timeline — or, with `--json`,
 * the report as data.
 *
 * Without `--policy`, the tenant `probe` may reach loopback addresses only
 * (`allow *://@loopback:*`, plus a lookup grant for each `--resolve` name):
 * the probe never sends a packet anywhere else unless a policy file says so.
 *
 * @example
 * const code = await probe(parseProbeArgs(['localhost:8443', '--pin', fp]), stdio);
 */
import { readFile } from 'node:fs/promises';
import {
  EstablishmentError, Host, Preconnection, RemoteEndpoint, SecurityParameters, TransportProperties, isTapsError, lengthPrefixFramer,
  type CandidateRecord, type Connection, type PreferenceProperty, type Resolver, type SelectionReport,
} from '../src/index.js';
import { systemResolver } from '../src/registry.js';
import type { ProbeArgs } from './args.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIO } from './output.js';
import { renderHeader, renderResolutions, renderTimeline, renderTree } from './render.js';
import { traceEvents } from './trace-events.js';
import { UsageError } from './usage.js';
import { renderWaterfallHtml, renderWaterfallSvg } from './waterfall.js';

/** The tenant and policy used when no policy file is given. */
export const DEFAULT_TENANT = 'probe';
export function defaultPolicy(resolveNames: Iterable<string>): string {
  const lines = ['# taps probe default: loopback only', 'allow *://@loopback:*'];
  for (const name of resolveNames) lines.push(`allow lookup:*://${name}`);
  return lines.join('\n');
}

/** A resolver that answers `table` names itself and asks `fallback` for the rest. */
export function tableResolver(table: ReadonlyMap<string, readonly string[]>, fallback: Resolver = systemResolver): Resolver {
  return async (host, family, signal) => {
    const answers = table.get(host.toLowerCase());
    if (answers === undefined) return fallback(host, family, signal);
    signal.throwIfAborted();
    return answers.filter((a) => (a.includes(':') ? 6 : 4) === family).map((address) => ({ address, family }));
  };
}

const LEVELS = ['require', 'prefer', 'avoid', 'prohibit'] as const;

function properties(args: ProbeArgs): TransportProperties {
  const props = args.profile ? TransportProperties.profile(args.profile as Parameters<typeof TransportProperties.profile>[0]) : new TransportProperties();
  for (const level of LEVELS) {
    for (const name of args[level]) {
      try {
        props[level](name as PreferenceProperty);
      } catch (err) {
        throw new UsageError(`--${level} ${name}: ${(err as Error).message}`);
      }
    }
  }
  return props;
}

async function security(args: ProbeArgs): Promise<SecurityParameters> {
  try {
    if (args.security === 'disabled') {
      if (args.ca || args.pin.length > 0 || args.alpn.length > 0) throw new UsageError('--ca, --pin and --alpn need security (not --security disabled)');
      return SecurityParameters.disabled();
    }
    const alpn = args.alpn.length > 0 ? { alpn: args.alpn } : {};
    if (args.security === 'opportunistic') return SecurityParameters.opportunistic(alpn);
    const ca = args.ca === undefined ? {} : { ca: await readFile(args.ca, 'utf8') };
    return new SecurityParameters({ ...ca, ...alpn, ...(args.pin.length > 0 ? { pinnedServerCertificates: args.pin } : {}) });
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`security: ${(err as Error).message}`);
  }
}

/** JSON-safe copy of a report: errors become { name, code, message }. */
export function reportJson(report: SelectionReport, rankReasons: ReadonlyMap<string, string>): unknown {
  return {
    ...report,
    candidates: report.candidates.map((c) => ({
      ...c,
      error: c.error === undefined ? undefined : { name: c.error.name, code: (c.error as { code?: string }).code, message: c.error.message },
      rankReason: rankReasons.get(c.id),
    })),
  };
}

function exitFor(err: unknown): ExitCode {
  if (!isTapsError(err)) return EXIT.internal;
  switch (err.code) {
    case 'ERR_TAPS_POLICY_PROHIBITED':
    case 'ERR_TAPS_QUOTA_EXCEEDED':
      return EXIT.denied;
    case 'ERR_TAPS_RESOLUTION_FAILED':
      return EXIT.resolution;
    case 'ERR_TAPS_INVALID_CONFIGURATION':
      return EXIT.invalidPolicy;
    default:
      return EXIT.failed;
  }
}

/** The report as a waterfall (SVG, HTML) or Trace Event JSON (cli/waterfall.ts, cli/trace-events.ts). */
function picture(report: SelectionReport, format: 'svg' | 'html' | 'trace'): string {
  if (format === 'svg') return renderWaterfallSvg(report);
  if (format === 'html') return renderWaterfallHtml(report);
  return `${JSON.stringify(traceEvents(report))}\n`;
}

export async function probe(args: ProbeArgs, io: CliIO): Promise<ExitCode> {
  let remote: RemoteEndpoint;
  try {
    remote = RemoteEndpoint.from(args.target);
  } catch (err) {
    throw new UsageError(`target ${JSON.stringify(args.target)}: ${(err as Error).message}`);
  }
  const props = properties(args);
  const sec = await security(args);
  const host = new Host({ resolver: tableResolver(args.resolve) });
  let policyText: string;
  let tenant: string;
  if (args.policy !== undefined) {
    await host.loadPolicyFile(args.policy); // a parse error is a PolicyParseError (exit 4)
    tenant = args.tenant!;
    policyText = `policy ${args.policy}`;
  } else {
    host.setPolicy(DEFAULT_TENANT, defaultPolicy(args.resolve.keys()));
    tenant = DEFAULT_TENANT;
    policyText = 'default policy: loopback only';
  }
  const scope = await host.tenant(tenant);
  const pre = new Preconnection({
    scope,
    remote,
    properties: props,
    security: sec,
    framers: args.framer ? [lengthPrefixFramer()] : [],
    racing: { ...(args.racing ? { mode: args.racing } : {}), ...(args.attemptDelay !== undefined ? { attemptDelay: args.attemptDelay } : {}) },
  });
  const rankReasons = new Map<string, string>();
  let last: SelectionReport | undefined;
  const onProgress = (c: CandidateRecord, report: SelectionReport): void => {
    last = report;
    if (c.address !== undefined && c.fate === 'pending' && c.startedAt === undefined && c.reason !== undefined && !rankReasons.has(c.id)) rankReasons.set(c.id, c.reason);
  };
  let conn: Connection | undefined;
  let error: unknown;
  try {
    conn = await pre.initiate({ timeout: args.timeout, onProgress });
  } catch (err) {
    error = err;
  } finally {
    host.close();
  }
  const report = conn?.report ?? (error instanceof EstablishmentError ? error.report : last);
  const code: ExitCode = conn ? EXIT.ok : exitFor(error);
  const winner = conn ? report?.candidates.find((c) => c.id === report.winner) : undefined;
  const connection = conn
    ? { stack: conn.stack, remote: conn.remote, local: conn.local, info: conn.info }
    : undefined;
  conn?.abort(); // a probe: nothing to say, so no graceful close to wait for
  const failure = error === undefined ? undefined : { name: (error as Error).name, code: (error as { code?: string }).code, message: (error as Error).message };

  if (args.json) {
    io.out(`${JSON.stringify({ command: 'probe', ok: code === EXIT.ok, exitCode: code, target: args.target, tenant, policy: policyText, connection, error: failure, report: report && reportJson(report, rankReasons) }, null, 2)}\n`);
    return code;
  }
  if (report === undefined) {
    io.err(`taps-node probe: ${failure?.code ?? failure?.name}: ${failure?.message}\n`);
    return code;
  }
  if (args.format === 'svg' || args.format === 'html' || args.format === 'trace') {
    io.out(picture(report, args.format));
    return code;
  }
  const opts = { ascii: args.ascii, rankReasons, cutOff: failure?.message };
  io.out(`${renderHeader(report, policyText)}\n`);
  const res = renderResolutions(report);
  if (res) io.out(`${res}\n`);
  io.out(`${renderTree(report, opts)}\n`);
  io.out(`${renderTimeline(report, opts)}\n`);
  if (conn && winner && connection) {
    const facts = Object.entries(connection.info).filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => `${k}=${String(v)}`);
    io.out(`connected: ${winner.id} ${connection.stack.join('/')} to ${connection.remote.family === 6 ? `[${connection.remote.address}]` : connection.remote.address}:${connection.remote.port} in ${(winner.endedAt ?? 0).toFixed(1)} ms${facts.length ? ` (${facts.join(', ')})` : ''}\n`);
  } else {
    io.out(`not connected: ${failure?.code ?? failure?.name}: ${failure?.message}\n`);
  }
  return code;
}
