/**
 * `taps-node/otel` with the OpenTelemetry SDK's in-memory exporters, over
 * real loopback sockets: a selection whose name resolves to ::1 (nothing
 * listens: failed) and 127.0.0.1 (a TLS echo: won), an exchange of bytes, a
 * selection the policy denies, and a listen(). The spans and metrics must
 * tell exactly that story. Also the raw channels: the TracingChannel
 * contexts and the connection lifecycle messages.
 */
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel';
import { InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, AggregationTemporality, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instrumentTaps, type TapsInstrumentation } from '../../otel/index.js';
import { Host, Preconnection, SecurityParameters, TransportProperties, lengthPrefixFramer, type Connection, type Listener } from '../../src/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';

const cert = testCertificate({ kind: 'ec', names: ['otel.test', 'localhost'] });
const host = new Host({ resolver: async (name, family) => (name === 'otel.test' ? [family === 6 ? { address: '::1', family: 6 } : { address: '127.0.0.1', family: 4 }] : []) });
host.setPolicy('server', 'allow bind:tls://@loopback:*\nallow accept:tls://@loopback:*');
host.setPolicy('client', 'allow tls://otel.test:*\nallow tls://@loopback:*\ndeny tls://127.0.0.9:*');
const common = { properties: TransportProperties.reliableMessage(), framers: [lengthPrefixFramer()], drivers: [tlsDriver] };

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
let instrumentation: TapsInstrumentation;
let listener: Listener;

beforeAll(async () => {
  instrumentation = instrumentTaps({ tracerProvider, meterProvider });
  listener = await new Preconnection({ ...common, scope: await host.tenant('server'), local: { ipAddress: '127.0.0.1', port: 0 }, security: new SecurityParameters({ certificate: cert.cert, key: cert.key }) }).listen();
  listener.on('connectionReceived', async (c) => {
    for await (const m of c) await c.send(m.data);
    await c.close();
  });
});

afterAll(async () => {
  instrumentation.disable();
  await listener.stop();
  await meterProvider.shutdown();
  await tracerProvider.shutdown();
  host.close();
});

async function client(port: number, address?: string): Promise<Preconnection> {
  return new Preconnection({
    ...common,
    scope: await host.tenant('client'),
    remote: address === undefined ? { hostName: 'otel.test', port } : { ipAddress: address, port },
    security: new SecurityParameters({ ca: cert.cert, serverName: 'otel.test' }),
  });
}

/** Every data point of the metric `name`, from the last export. */
function points(name: string): DataPoint<number | Histogram>[] {
  const last = metricExporter.getMetrics().at(-1);
  return last?.scopeMetrics.flatMap((s) => s.metrics).filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints as DataPoint<number | Histogram>[]) ?? [];
}

describe('taps-node/otel with the SDK in-memory exporters', () => {
  it('one span per selection, a child per candidate with its fate; connect latency, failures, decisions and bytes as metrics', async () => {
    const conn: Connection = await (await client(listener.port)).initiate({ timeout: 5000 });
    await conn.send('x'.repeat(1000));
    await conn.receive();
    await conn.close();
    const denied = await (await client(listener.port, '127.0.0.9')).initiate({ timeout: 5000 }).catch((e: unknown) => e as { code: string });
    expect(denied).toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    await reader.forceFlush();

    const finished = spans.getFinishedSpans();
    const selections = finished.filter((s) => s.name === 'taps.initiate');
    expect(selections).toHaveLength(2);
    const [ok, no] = selections;
    const children = (parent: (typeof finished)[number]) => finished.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
    const okChildren = children(ok!).map((s) => `${s.attributes['network.peer.address']} ${s.attributes['taps.candidate.fate']}`).sort();
    console.log(`spans: ${finished.length}; selection 1 children: ${okChildren.join(', ')}; selection 2: ${children(no!).map((s) => s.attributes['taps.candidate.fate']).join(', ')}`);
    expect(okChildren).toEqual(['127.0.0.1 won', '::1 failed']);
    expect(ok!.attributes).toMatchObject({ 'taps.tenant': 'client', 'taps.driver': 'tls' });
    expect(ok!.status.code).toBe(0);
    expect(children(ok!).find((s) => s.attributes['taps.candidate.fate'] === 'failed')!.status.code).toBe(2);
    expect(no!.status.code).toBe(2);
    expect(no!.attributes['error.type']).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect(children(no!).map((s) => s.attributes['taps.candidate.fate'])).toEqual(['denied']);
    expect(finished.filter((s) => s.name === 'taps.listen')).toHaveLength(1); // the echo listener of beforeAll

    const latency = points('taps.connect.duration');
    expect(latency).toHaveLength(1);
    expect(latency[0]!.attributes).toEqual({ 'taps.tenant': 'client', 'taps.driver': 'tls' });
    expect((latency[0]!.value as Histogram).count).toBe(1);
    expect(points('taps.connect.failures').map((p) => [p.attributes['error.type'], p.value])).toEqual([['ERR_TAPS_POLICY_PROHIBITED', 1]]);
    const decisions = Object.fromEntries(points('taps.policy.decisions').map((p) => [`${p.attributes['taps.tenant']} ${p.attributes['taps.policy.use']} ${p.attributes['taps.policy.result']}`, p.value]));
    console.log(`decisions: ${JSON.stringify(decisions)}`);
    expect(decisions['client connect allow']).toBeGreaterThanOrEqual(2);
    expect(decisions['client connect deny']).toBeGreaterThanOrEqual(1);
    expect(decisions['server accept allow']).toBeGreaterThanOrEqual(1);
    const bytes = Object.fromEntries(points('taps.bytes').map((p) => [`${p.attributes['taps.tenant']} ${p.attributes['network.io.direction']}`, p.value]));
    console.log(`bytes: ${JSON.stringify(bytes)}`);
    // 1000 bytes of payload each way, plus the length prefix the framer adds.
    expect(bytes['client transmit']).toBeGreaterThanOrEqual(1000);
    expect(bytes['client receive']).toBeGreaterThanOrEqual(1000);
    expect(bytes['server receive']).toBeGreaterThanOrEqual(1000);
  });

  it('a listen() is a span too', async () => {
    const l = await new Preconnection({ ...common, scope: await host.tenant('server'), local: { ipAddress: '127.0.0.1', port: 0 }, security: new SecurityParameters({ certificate: cert.cert, key: cert.key }) }).listen();
    await l.stop();
    const span = spans.getFinishedSpans().filter((s) => s.name === 'taps.listen').at(-1);
    expect(span?.attributes).toMatchObject({ 'taps.tenant': 'server', 'taps.local': '127.0.0.1:0' });
  });
});

describe('the channels underneath', () => {
  it('taps:initiate carries tenant and remote, then the Connection; lifecycle channels see ready and closed', async () => {
    const seen: string[] = [];
    const trace = tracingChannel('taps:initiate');
    const handlers = {
      start: (ctx: unknown) => seen.push(`start ${(ctx as { tenant: string }).tenant} ${(ctx as { remote: string }).remote}`),
      end: () => {},
      asyncStart: () => {},
      asyncEnd: (ctx: unknown) => seen.push(`asyncEnd ${(ctx as { result?: { driver: { id: string } } }).result?.driver.id}`),
      error: () => seen.push('error'),
    };
    const ready = (m: unknown) => seen.push(`ready ${(m as { tenant: string }).tenant}`);
    const closed = (m: unknown) => seen.push(`closed ${(m as { tenant: string }).tenant} ${(m as { error?: unknown }).error === undefined ? 'clean' : 'error'}`);
    trace.subscribe(handlers);
    subscribe('taps:connection:ready', ready);
    subscribe('taps:connection:closed', closed);
    try {
      const conn = await (await client(listener.port)).initiate({ timeout: 5000 });
      await conn.close();
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      trace.unsubscribe(handlers);
      unsubscribe('taps:connection:ready', ready);
      unsubscribe('taps:connection:closed', closed);
    }
    const port = listener.port;
    expect(seen.filter((s) => s.includes('client'))).toEqual([`start client otel.test:${port}`, 'ready client', 'closed client clean']);
    expect(seen).toContain('asyncEnd tls');
    expect(seen).toContain('ready server');
  });
});
