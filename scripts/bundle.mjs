/**
 * Bundle the package's JavaScript (Rolldown, from the TypeScript sources): one ES module per `exports`
 * target and the `bin`, and shared chunks. Everything a first default connection loads is one chunk,
 * `chunks/core-<hash>.js`: `src/index.ts` and what it imports, plus what the registry imports on first use
 * (`transports/defaults.ts`, the tcp/tls/udp drivers, the system resolver, the optional stacks' small
 * driver-list modules). Each ES module a process loads costs its own resolution, read, compile and link:
 * importing `taps-node` and connecting reads three files (the entry, the core, the bundler's helpers), not
 * the 25 chunks that splitting by which entries reach each statement gives (docs/performance.md). A
 * stack's connecting code behind a lazy `import()` (WebSocket, HTTP, QUIC, WebTransport) stays in its own
 * chunks, loaded on first use. Every module has one copy across entries (one registry, one class per
 * error); names the bundle renames keep their `name` (`TapsError`'s is its constructor's); comments are
 * left out (the source maps point at the shipped sources). Declarations come from `tsc`
 * (tsconfig.build.json: declarations only).
 *
 *   node scripts/bundle.mjs dist              # npm run build
 *   node scripts/bundle.mjs dist-bench/package  # what bench/first-use.ts starts fresh processes on
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RolldownMagicString, rolldown } from 'rolldown';
import { parseAst } from 'rolldown/parseAst';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = process.argv[2];
if (outdir === undefined) throw new TypeError('usage: node scripts/bundle.mjs <outdir>');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** `./dist/src/index.js` → [`src/index`, `<root>/src/index.ts`]: where the entry goes, and its source. */
function entry(target) {
  const path = target.replace(/^\.\/dist\//, '').replace(/\.js$/, '');
  return [path, join(root, `${path}.ts`)];
}

const INDEX = join(root, 'src/index.ts');
/**
 * Modules whose `import()`s a first default connection always takes: the registry (the default set), the
 * system network (the resolver) and the default set (each optional stack's driver list).
 */
const EAGER_IMPORTERS = new Set(['src/registry.ts', 'src/network.ts', 'transports/defaults.ts'].map((p) => join(root, p)));
const eagerImporters = (id) => EAGER_IMPORTERS.has(id);

/** The core: modules reached from `src/index.ts` by static imports and by the `import()`s of {@link eagerImporters}. */
const core = new Set();
const collectCore = {
  name: 'taps-core',
  buildEnd() {
    const todo = [INDEX];
    while (todo.length > 0) {
      const id = todo.pop();
      if (core.has(id)) continue;
      const info = this.getModuleInfo(id);
      if (info === null || info.external) continue;
      core.add(id);
      todo.push(...info.importedIds);
      if (eagerImporters(id)) todo.push(...info.dynamicallyImportedIds);
    }
  },
};

/** Every node of an ESTree program, depth first. */
function* nodes(node) {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) yield* nodes(n);
    return;
  }
  if (typeof node.type === 'string') yield node;
  for (const [key, value] of Object.entries(node)) if (key !== 'parent') yield* nodes(value);
}

/**
 * In the bundle only, the {@link eagerImporters}' `import()`s of the package's own modules become static
 * imports (`Promise.resolve(namespace)`): those modules are in the core chunk and evaluated with it anyway,
 * and a dynamic import of a module inside a shared chunk makes the bundler emit a facade file for it (six
 * on the default path: the default set, its four driver lists, the resolver), each one more file and one
 * more round of reads before the first connection. Packages (`jose`, `@msimerson/stun`) stay dynamic.
 */
const eagerImportsInCore = {
  name: 'taps-core-static-imports',
  transform(code, id) {
    if (!eagerImporters(id)) return null;
    const found = [...nodes(parseAst(code, { lang: 'ts' }, id))].filter((n) => n.type === 'ImportExpression' && n.source.type === 'Literal' && /^\.\.?\//.test(n.source.value));
    if (found.length === 0) return null;
    const s = new RolldownMagicString(code);
    found.forEach((n, i) => {
      if (!code.slice(n.start, n.end).startsWith('import(')) throw new Error(`bundle: ${id}: unexpected import() at ${n.start}`);
      s.overwrite(n.start, n.end, `Promise.resolve(__tapsCore${i})`);
      s.append(`\nimport * as __tapsCore${i} from ${JSON.stringify(n.source.value)};`);
    });
    return { code: s.toString(), map: JSON.parse(s.generateMap({ hires: true, source: id }).toString()) };
  },
};

/**
 * In the output, a static import of a Node built-in becomes `process.getBuiltinModule()` (Node >= 20.16; the
 * package needs 20.19). An `import` of a built-in makes the ES module loader build that module's facade, which
 * reads every export once: on Node 22 and 24 that runs the lazy getters of `node:util`, `node:net`, `node:dns`,
 * `node:module` and others (`node:util` alone loads `worker_threads`, the diff and argument parsers), ~17
 * million instructions per cold start that `tls.connect` does not pay (docs/performance.md). The module object
 * is the same one the default import gives; `import()` of a built-in stays as it is.
 */
const builtinsAtRun = {
  name: 'taps-builtins-at-run',
  renderChunk(code, chunk) {
    const found = parseAst(code, { lang: 'js' }, chunk.fileName).body.filter((n) => n.type === 'ImportDeclaration' && n.source.value.startsWith('node:'));
    if (found.length === 0) return null;
    const s = new RolldownMagicString(code);
    for (const n of found) {
      const get = `process.getBuiltinModule(${JSON.stringify(n.source.value)})`;
      const whole = n.specifiers.filter((sp) => sp.type !== 'ImportSpecifier').map((sp) => sp.local.name);
      const named = n.specifiers.filter((sp) => sp.type === 'ImportSpecifier');
      if (n.importKind === 'type' || n.attributes?.length > 0 || named.some((sp) => sp.imported.type !== 'Identifier')) throw new Error(`bundle: ${chunk.fileName}: unexpected import at ${n.start}`);
      const decls = whole.map((name) => `const ${name} = ${get};`);
      if (named.length > 0) {
        const fields = named.map((sp) => (sp.imported.name === sp.local.name ? sp.local.name : `${sp.imported.name}: ${sp.local.name}`));
        decls.push(`const { ${fields.join(', ')} } = ${whole[0] ?? get};`);
      }
      s.overwrite(n.start, n.end, decls.join(' ') || `${get};`);
    }
    return { code: s.toString(), map: JSON.parse(s.generateMap({ hires: true, source: chunk.fileName }).toString()) };
  },
};

/** ECMAScript's global intrinsics the package's code names; see {@link intrinsicsAsLocals}. */
const INTRINSICS = ['Object', 'Array', 'Promise', 'Error', 'TypeError', 'RangeError', 'AggregateError', 'Symbol', 'Math', 'Number', 'String', 'JSON', 'Map', 'Set', 'WeakMap', 'WeakSet', 'Uint8Array', 'isFinite', 'Infinity', 'NaN'];

/** The names a module's top level declares (imports, variables, functions, classes). */
function topLevelNames(program) {
  const names = new Set();
  const pattern = (p) => {
    if (p === null) return;
    if (p.type === 'Identifier') names.add(p.name);
    else if (p.type === 'ObjectPattern') for (const q of p.properties) pattern(q.type === 'RestElement' ? q.argument : q.value);
    else if (p.type === 'ArrayPattern') for (const q of p.elements) pattern(q?.type === 'RestElement' ? q.argument : q);
    else if (p.type === 'AssignmentPattern') pattern(p.left);
  };
  for (let n of program.body) {
    if (n.type === 'ImportDeclaration') for (const sp of n.specifiers) names.add(sp.local.name);
    if ((n.type === 'ExportNamedDeclaration' || n.type === 'ExportDefaultDeclaration') && n.declaration) n = n.declaration;
    if (n.type === 'VariableDeclaration') for (const d of n.declarations) pattern(d.id);
    if ((n.type === 'FunctionDeclaration' || n.type === 'ClassDeclaration') && n.id) names.add(n.id.name);
  }
  return names;
}

/**
 * In the output, each module reads the ECMAScript intrinsics it names (`Object`, `Promise`, `TypeError`, ...)
 * into module constants once: `const { Object, Promise } = globalThis;`. When V8 compiles a function on its
 * first call, each name the function does not declare is looked up in the module's scope; one not found
 * among its constants is then searched for among the module's imports and exports one by one before it
 * falls to the global object, and the core chunk exports ~180 names: ~500 such searches on the way to a
 * first connection, ~6.5 million instructions on Node 24 (docs/performance.md). Only the language's own
 * intrinsics are read so (never timers, `Date`, `process` or `performance`, which test tools replace after
 * the import).
 */
const intrinsicsAsLocals = {
  name: 'taps-intrinsics-as-locals',
  renderChunk(code, chunk) {
    const program = parseAst(code, { lang: 'js' }, chunk.fileName);
    const declared = topLevelNames(program);
    const used = INTRINSICS.filter((name) => !declared.has(name) && new RegExp(`(?<![.\\w$])${name}(?![\\w$])`).test(code));
    if (used.length === 0 || program.body.length === 0) return null;
    const s = new RolldownMagicString(code);
    const imports = program.body.filter((n) => n.type === 'ImportDeclaration');
    const line = `const { ${used.join(', ')} } = globalThis;`;
    if (imports.length > 0) s.appendLeft(imports.at(-1).end, `\n${line}`);
    else s.appendLeft(program.body[0].start, `${line}\n`);
    return { code: s.toString(), map: JSON.parse(s.generateMap({ hires: true, source: chunk.fileName }).toString()) };
  },
};

const targets = [...Object.values(manifest.exports).flatMap((e) => (typeof e === 'string' ? [] : [e.default])), ...Object.values(manifest.bin)];
const bundle = await rolldown({
  cwd: root,
  input: Object.fromEntries(targets.map(entry)),
  platform: 'node',
  transform: { target: 'node20' },
  // Packages and node: builtins stay imports; only the package's own files are bundled.
  external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('\0'),
  plugins: [eagerImportsInCore, collectCore, builtinsAtRun, intrinsicsAsLocals],
  logLevel: 'warn',
});
await bundle.write({
  dir: join(root, outdir),
  format: 'esm',
  entryFileNames: '[name].js',
  chunkFileNames: 'chunks/[name]-[hash].js',
  codeSplitting: { groups: [{ name: 'core', test: (id) => core.has(id) }] },
  keepNames: true,
  comments: false,
  // Not minified, but ASCII only (`\u2265` for `≥` in a message): a source with any other character is held
  // by V8 as UTF-16 and scanned slower (the core chunk: 16 million instructions more per cold start).
  minify: { compress: false, mangle: false, codegen: { removeWhitespace: false, asciiOnly: true } },
  sourcemap: true,
  sourcemapExcludeSources: true,
});
await bundle.close();
if (core.size === 0) throw new Error('bundle: no core modules found');
console.log(`bundled ${targets.length} entries into ${relative(root, join(root, outdir)) || '.'} (core: ${core.size} modules)`);
