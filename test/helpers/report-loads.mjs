// Module hooks for test/unit/lazy-imports.test.ts: report every heavy package a child process resolves.
// The hooks run on their own thread; writeSync puts each line on fd 2 at once, so none is lost when the
// child exits right after its last import (process.stderr.write from this thread is handed over asynchronously).
import { writeSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(r.url);
  if (m) writeSync(2, `LOADED ${m[1]}\n`);
  return r;
}
