/**
 * `src/` has no import cycles: no module reaches itself through the modules
 * it imports, type-only imports included (a cycle of types is still two
 * modules that cannot be understood one without the other). A static scan of
 * each file's relative specifiers (static imports, re-exports, `import()`
 * with a literal, `import('…')` types), read by TypeScript's pre-processor,
 * then a depth-first search that names every cycle it meets. The same for
 * `transports/`; `src/` imports nothing of `transports/` but the two lazy
 * seams (the registry's default set, the system resolver: each an `import()`
 * of a literal, loaded on first use), the policy engine does not import the driver registry, and
 * driver.ts names the chokepoint's types-only contract, not its machinery.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Module → the modules of `within` it imports (paths relative to the repository). */
function importGraph(within: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(join(root, within))) {
    const deps = ts
      .preProcessFile(readFileSync(file, 'utf8'), true, true)
      .importedFiles.map((f) => f.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => relative(root, resolve(dirname(file), s.replace(/\.js$/, '.ts'))))
      .filter((p) => p.startsWith(`${within}/`));
    graph.set(relative(root, file), [...new Set(deps)]);
  }
  return graph;
}

/** Every cycle a depth-first search meets, each as `a -> b -> a`. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...path.slice(path.indexOf(next)), next].join(' -> '));
      else if (state.get(next) === undefined && graph.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (state.get(node) === undefined) visit(node);
  return found;
}

describe('import cycles', () => {
  it('src/ has none', () => {
    const graph = importGraph('src');
    expect(graph.size).toBeGreaterThan(30);
    expect(cycles(graph)).toEqual([]);
  });

  it('transports/ has none, and src/ imports nothing of transports/', () => {
    expect(cycles(importGraph('transports'))).toEqual([]);
    const graph = importGraph('src');
    const toTransports = sources(join(root, 'src')).flatMap((file) =>
      ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles
        .map((f) => relative(root, resolve(dirname(file), f.fileName)))
        .filter((p) => p.startsWith('transports/'))
        .map((p) => `${relative(root, file)} -> ${p}`),
    );
    // Two seams only, each a lazy `import()` with a literal (so bundlers follow it): the driver registry loads
    // the default set, the system resolver loads the getaddrinfo module. Nothing else of src/ names transports/.
    expect([...new Set(toTransports)].sort()).toEqual(['src/network.ts -> transports/system/resolver.js', 'src/registry.ts -> transports/defaults.js']);
    for (const [file, target] of [['src/network.ts', 'transports/system/resolver.js'], ['src/registry.ts', 'transports/defaults.js']] as const) {
      const text = readFileSync(join(root, file), 'utf8');
      const specifier = relative(dirname(join(root, file)), join(root, target));
      expect(text).toContain(`import('${specifier}')`);
      expect(text).not.toMatch(new RegExp(`^import [^(]*'${specifier.replace(/[.]/g, '\\.')}'`, 'm'));
    }
    // The policy engine does not import the driver registry; driver.ts names only the contract's types.
    const fromPolicy = [...graph].filter(([f]) => f.startsWith('src/policy/')).flatMap(([f, deps]) => deps.filter((d) => d === 'src/registry.ts').map((d) => `${f} -> ${d}`));
    expect(fromPolicy).toEqual([]);
    expect(graph.get('src/driver.ts')).toContain('src/policy/contract.ts');
    expect(graph.get('src/driver.ts')).not.toContain('src/policy/chokepoint.ts');
  });

  it('the chokepoint contract (CheckedTarget, PolicyGuard, Network, NetworkScope) is types only', () => {
    for (const file of ['src/policy/contract.ts', 'src/network-types.ts']) {
      const js = ts.transpileModule(readFileSync(join(root, file), 'utf8'), { compilerOptions: { removeComments: true, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: true } }).outputText;
      expect(js.replace(/export \{\};?/g, '').trim(), file).toBe('');
    }
    expect(readFileSync(join(root, 'src/policy/contract.ts'), 'utf8')).toMatch(/declare const checkedTarget: unique symbol;/);
    expect(readFileSync(join(root, 'src/network-types.ts'), 'utf8')).toMatch(/export interface NetworkScope \{/);
  });

  it('the search finds a cycle when there is one', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a', 'd']],
      ['d', []],
    ]);
    expect(cycles(graph)).toEqual(['a -> b -> c -> a']);
  });
});
