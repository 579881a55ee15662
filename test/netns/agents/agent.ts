/**
 * What every agent shares: its arguments, `emit()` to report a JSON event on
 * stdout, and `commands()` to read JSON commands from stdin. An agent ends
 * when it reads `{ "type": "exit" }` or stdin closes.
 *
 * @example
 * const args = agentArgs<{ port: number }>();
 * emit('ready', { port: args.port });
 * for await (const cmd of commands()) if (cmd.type === 'exit') break;
 */
import { createInterface } from 'node:readline';

export function agentArgs<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}

export function emit(type: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ type, ...fields })}\n`);
}

export interface Command {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** Commands from stdin, one JSON object a line; ends on `exit` or end of input. */
export async function* commands(): AsyncGenerator<Command> {
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as Command;
    if (cmd.type === 'exit') break;
    yield cmd;
  }
  rl.close();
}

/** Report an error as an event, with the fields tests assert on. */
export function errorFields(err: unknown): Record<string, unknown> {
  const e = err as { code?: string; message?: string; report?: { candidates?: unknown[] } };
  return { code: e?.code, message: e?.message ?? String(err), candidates: e?.report?.candidates };
}
