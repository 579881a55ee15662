/**
 * Decision records to a Redis Stream, for a central audit view of the whole
 * fleet. Each entry has the fields of a {@link DecisionRecord} (scalars as
 * strings, `request` and `decision` as JSON; an absent field is left out)
 * plus `node` (the host id that decided) and `fleetRevision` (the tenant's
 * fleet policy revision); a field longer than 2,048 characters is cut
 * there (a guest chooses the names it asks for). The stream is trimmed to about `maxLen` entries
 * (`XADD … MAXLEN ~`).
 *
 * Recording never slows a decision: records are queued and written in
 * pipelines of up to 1,000, one after the other. While Redis is unreachable, or when
 * more than `maxQueued` are waiting, new records are dropped and counted
 * (`dropped`), never kept without bound.
 *
 * @example
 * XREVRANGE taps:prod:records + - COUNT 10     # the ten latest decisions, fleet-wide
 */
import type { DecisionRecord } from '../src/policy/chokepoint.js';
import type { FleetContext } from './context.js';

/** How the decision stream is bounded. */
export interface RecordSinkOptions {
  /** About how many entries the stream keeps (default 100,000). */
  readonly maxLen?: number;
  /** Most records waiting to be written (default 10,000); more are dropped and counted. */
  readonly maxQueued?: number;
}

const BATCH = 1000;

/** Writes decision records to the fleet's Redis Stream (see the module comment). */
export class RecordSink {
  readonly #ctx: FleetContext;
  readonly #maxLen: number;
  readonly #maxQueued: number;
  readonly #revision: (tenant: string) => number;
  #queue: DecisionRecord[] = [];
  #scheduled = false;
  #writing: Promise<void> = Promise.resolve();
  /** Records written to the stream. */
  written = 0;
  /** Records dropped (Redis unreachable, or the queue full). */
  dropped = 0;

  /** @internal Made by the Fleet. */
  constructor(ctx: FleetContext, options: RecordSinkOptions, revision: (tenant: string) => number) {
    this.#ctx = ctx;
    this.#maxLen = options.maxLen ?? 100_000;
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#revision = revision;
  }

  /** The Host's `onDecision`: queue one record. */
  readonly record = (r: DecisionRecord): void => {
    if (!this.#ctx.link.up || this.#queue.length >= this.#maxQueued) {
      this.dropped++;
      return;
    }
    this.#queue.push(r);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#writing = this.#writing.then(() => this.#flush());
      });
    }
  };

  /** Settles when every record queued so far has been written (or dropped). */
  async flushed(): Promise<void> {
    while (this.#scheduled || this.#queue.length > 0) {
      await new Promise((r) => setImmediate(r));
      await this.#writing;
    }
    await this.#writing;
  }

  /** Write what is queued, in pipelines of at most BATCH entries (a huge pipeline would outlast the command deadline). */
  async #flush(): Promise<void> {
    const ctx = this.#ctx;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, BATCH);
      const p = ctx.link.cmd.pipeline();
      for (const r of batch) p.xadd(ctx.keys.records, 'MAXLEN', '~', this.#maxLen, '*', ...this.#fields(r));
      try {
        const results = (await p.exec()) ?? [];
        for (const [err] of results) err ? this.dropped++ : this.written++;
        ctx.link.ok();
      } catch (err) {
        ctx.link.failed(err);
        this.dropped += batch.length;
      }
    }
  }

  #fields(r: DecisionRecord): string[] {
    const out = ['id', String(r.id), 'node', this.#ctx.hostId, 'tenant', r.tenant, 'time', String(r.time), 'mode', r.mode, 'allow', String(r.allow)];
    const put = (k: string, v: string | number | null | undefined) => {
      if (v !== undefined && v !== null) out.push(k, clip(String(v)));
    };
    put('use', r.use);
    put('protocol', r.protocol);
    put('host', r.host);
    put('canonicalHost', r.canonicalHost);
    put('address', r.address);
    put('port', r.port);
    put('rule', r.rule);
    put('code', r.code);
    out.push('reason', clip(r.reason), 'revision', String(r.revision), 'fleetRevision', String(this.#revision(r.tenant)));
    out.push('request', clip(safeJson(r.request)), 'decision', clip(safeJson(r.decision)));
    return out;
  }
}

/** Longest field kept in a stream entry: a guest chooses what it asks for, and MAXLEN bounds entries, not their size. */
const MAX_FIELD = 2048;

function clip(s: string): string {
  return s.length <= MAX_FIELD ? s : `${s.slice(0, MAX_FIELD)}…(${s.length} characters)`;
}

/** The request as the caller gave it may hold anything (a getter, a cycle): never let it break recording. */
function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return '"(unserialisable)"';
  }
}
