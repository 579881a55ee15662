// Module hooks for test/unit/lazy-imports.test.ts: report every heavy package a child process resolves.
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(r.url);
  if (m) process.stderr.write(`LOADED ${m[1]}\n`);
  return r;
}
