/**
 * `taps-node/otel`: OpenTelemetry for taps-node, on `@opentelemetry/api` (an
 * optional peer: install it to use this entry; nothing else loads it). It
 * subscribes to the library's `diagnostics_channel` channels, so the library
 * itself never calls OpenTelemetry and costs nothing while this is off.
 *
 * Traces: one span per selection (`taps.initiate`, and `taps.listen`), with a
 * child span per candidate of its report — stack × address — whose
 * attributes say its fate (won, failed, cancelled, denied, unsuitable, …),
 * why, and the policy rule; a failed candidate's span has status ERROR.
 * Metrics:
 *
 * | instrument | kind | attributes |
 * |---|---|---|
 * | `taps.connect.duration` (ms) | histogram | `taps.tenant`, `taps.driver` of the winner |
 * | `taps.connect.failures` | counter | `taps.tenant`, `error.type` (the `ERR_TAPS_…` code) |
 * | `taps.policy.decisions` | counter | `taps.tenant`, `taps.policy.use`, `taps.policy.result` (`allow`/`deny`) |
 * | `taps.bytes` (By) | counter | `taps.tenant`, `network.io.direction` (`transmit`/`receive`) |
 *
 * @example
 * import { instrumentTaps } from 'taps-node/otel';
 * const instrumentation = instrumentTaps(); // the global tracer and meter providers, or pass your own
 * // … later
 * instrumentation.disable();
 *
 * @module taps-node/otel
 */
import { SpanKind, SpanStatusCode, context, metrics, trace, type Attributes, type MeterProvider, type Span, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel';
import type { InitiateTraceContext, ListenTraceContext } from '../src/diagnostics.js';
import type { DecisionRecord, SelectionReport } from '../src/index.js';

/** Where spans and metrics go; the global providers when not given. */
export interface TapsInstrumentationOptions {
  readonly tracerProvider?: TracerProvider | undefined;
  readonly meterProvider?: MeterProvider | undefined;
}

/** A running instrumentation: `disable()` unsubscribes from every channel. */
export interface TapsInstrumentation {
  /** Stop: unsubscribe from every channel (spans already started still end). */
  disable(): void;
}

const NAME = 'taps-node';

interface Instruments {
  readonly tracer: Tracer;
  readonly duration: ReturnType<ReturnType<MeterProvider['getMeter']>['createHistogram']>;
  readonly failures: ReturnType<ReturnType<MeterProvider['getMeter']>['createCounter']>;
  readonly decisions: ReturnType<ReturnType<MeterProvider['getMeter']>['createCounter']>;
  readonly bytes: ReturnType<ReturnType<MeterProvider['getMeter']>['createCounter']>;
}

function instruments(options: TapsInstrumentationOptions): Instruments {
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(NAME);
  return {
    tracer: (options.tracerProvider ?? trace.getTracerProvider()).getTracer(NAME),
    duration: meter.createHistogram('taps.connect.duration', { unit: 'ms', description: 'time from initiate() to a ready connection' }),
    failures: meter.createCounter('taps.connect.failures', { description: 'initiate() calls that ended without a connection, by error code' }),
    decisions: meter.createCounter('taps.policy.decisions', { description: 'policy decisions, by use and result' }),
    bytes: meter.createCounter('taps.bytes', { unit: 'By', description: 'bytes counted against tenants\' budgets, framing included' }),
  };
}

/** The selection report a finished initiate()/listen() left: on the result, or on the error. */
function reportOf(ctx: { result?: unknown; error?: unknown }): SelectionReport | undefined {
  const holder = (ctx.result ?? ctx.error) as { report?: SelectionReport } | undefined;
  return holder?.report;
}

/** One child span per candidate, timed by the report (ms since its start). */
function candidateSpans(tracer: Tracer, parent: Span, report: SelectionReport): void {
  const parentContext = trace.setSpan(context.active(), parent);
  for (const c of report.candidates) {
    const start = report.startedAt + (c.startedAt ?? c.endedAt ?? 0);
    const end = report.startedAt + (c.endedAt ?? report.endedAt ?? c.startedAt ?? 0);
    const attributes: Attributes = {
      'taps.candidate.id': c.id,
      'taps.candidate.fate': c.fate,
      'taps.driver': c.driver,
      'taps.stack': c.stack.join('/'),
      ...(c.address !== undefined ? { 'network.peer.address': c.address } : {}),
      ...(c.port !== undefined ? { 'network.peer.port': c.port } : {}),
      ...(c.hostName !== undefined ? { 'server.address': c.hostName } : {}),
      ...(c.reason !== undefined ? { 'taps.candidate.reason': c.reason } : {}),
      ...(c.code !== undefined ? { 'error.type': c.code } : {}),
      ...(c.decision?.rule ? { 'taps.policy.rule': c.decision.rule } : {}),
    };
    const span = tracer.startSpan(`taps.candidate ${c.driver}`, { kind: SpanKind.CLIENT, startTime: start, attributes }, parentContext);
    if (c.fate === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: c.reason ?? 'failed' });
    span.end(Math.max(start, end));
  }
}

/** End a selection span from its trace context; record the metrics of an initiate(). */
function finish(i: Instruments, span: Span, ctx: { tenant: string; result?: unknown; error?: unknown }, isInitiate: boolean): void {
  const report = reportOf(ctx);
  if (report !== undefined) candidateSpans(i.tracer, span, report);
  const code = (ctx.error as { code?: string } | undefined)?.code;
  if (ctx.error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (ctx.error as Error)?.message ?? String(ctx.error) });
    span.setAttribute('error.type', code ?? (ctx.error as Error)?.name ?? 'Error');
    if (isInitiate) i.failures.add(1, { 'taps.tenant': ctx.tenant, 'error.type': code ?? 'unknown' });
  } else if (isInitiate && report !== undefined) {
    const winner = report.candidates.find((c) => c.id === report.winner);
    span.setAttribute('taps.driver', winner?.driver ?? 'unknown');
    i.duration.record(winner?.endedAt ?? report.endedAt ?? 0, { 'taps.tenant': ctx.tenant, 'taps.driver': winner?.driver ?? 'unknown' });
  }
  span.end();
}

/** Start recording taps-node's selections, connections and decisions as OpenTelemetry spans and metrics. */
export function instrumentTaps(options: TapsInstrumentationOptions = {}): TapsInstrumentation {
  const i = instruments(options);
  const spans = new WeakMap<object, Span>();
  const initiate = tracingChannel<unknown, InitiateTraceContext>('taps:initiate');
  const listen = tracingChannel<unknown, ListenTraceContext>('taps:listen');
  const onInitiate = {
    start: (ctx: InitiateTraceContext) => {
      spans.set(ctx, i.tracer.startSpan('taps.initiate', { kind: SpanKind.CLIENT, attributes: { 'taps.tenant': ctx.tenant, 'taps.remote': ctx.remote } }));
    },
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (ctx: InitiateTraceContext) => {
      const span = spans.get(ctx);
      if (span !== undefined) finish(i, span, ctx, true);
    },
    error: () => {
      /* asyncEnd follows a rejection too: the span ends there */
    },
  };
  const onListen = {
    start: (ctx: ListenTraceContext) => {
      spans.set(ctx, i.tracer.startSpan('taps.listen', { kind: SpanKind.SERVER, attributes: { 'taps.tenant': ctx.tenant, 'taps.local': ctx.local } }));
    },
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (ctx: ListenTraceContext) => {
      const span = spans.get(ctx);
      if (span !== undefined) finish(i, span, ctx, false);
    },
    error: () => {},
  };
  const onDecision = (message: unknown): void => {
    const r = message as DecisionRecord;
    i.decisions.add(1, { 'taps.tenant': r.tenant, 'taps.policy.use': r.use, 'taps.policy.result': r.allow ? 'allow' : 'deny' });
  };
  const onBytes = (message: unknown): void => {
    const m = message as { tenant: string; direction: 'sent' | 'received'; bytes: number };
    i.bytes.add(m.bytes, { 'taps.tenant': m.tenant, 'network.io.direction': m.direction === 'sent' ? 'transmit' : 'receive' });
  };
  initiate.subscribe(onInitiate);
  listen.subscribe(onListen);
  subscribe('taps:policy:decision', onDecision);
  subscribe('taps:connection:bytes', onBytes);
  return {
    disable: () => {
      initiate.unsubscribe(onInitiate);
      listen.unsubscribe(onListen);
      unsubscribe('taps:policy:decision', onDecision);
      unsubscribe('taps:connection:bytes', onBytes);
    },
  };
}
