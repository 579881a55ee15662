/**
 * A vitest reporter for the interop tier: at the end of the run it prints one
 * row per peer and direction (the suite names "<peer> · library as client" or
 * "… as server"), with how many cases passed, failed and were skipped, and
 * the names of the ones that did not pass, so a reader sees at a glance which
 * peers the library works with.
 */
import type { Reporter, TestModule } from 'vitest/node';

interface Row {
  peer: string;
  direction: string;
  passed: number;
  failed: string[];
  skipped: string[];
}

const SUITE = /^(.+) · library as (client|server)$/;

export default class InteropTableReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows = new Map<string, Row>();
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const suite = t.parent.type === 'suite' ? t.parent.name : '';
        const [, peer = suite || m.moduleId.replace(/.*\//, ''), direction = ''] = SUITE.exec(suite) ?? [];
        const key = `${peer}\0${direction}`;
        const row = rows.get(key) ?? { peer, direction, passed: 0, failed: [], skipped: [] };
        rows.set(key, row);
        const state = t.result().state;
        if (state === 'passed') row.passed++;
        else if (state === 'failed') row.failed.push(t.name);
        else row.skipped.push(t.name);
      }
    }
    const lines = [...rows.values()].map((r) => {
      const result = r.failed.length > 0 ? 'FAILED' : r.passed === 0 ? 'SKIPPED' : r.skipped.length > 0 ? 'partly skipped' : 'passed';
      const detail = [...r.failed.map((n) => `failed: ${n}`), ...r.skipped.map((n) => `skipped: ${n}`)].join('; ');
      const peer = r.peer.length > 34 ? `${r.peer.slice(0, 33)}…` : r.peer;
      return `${peer.padEnd(34)} ${(r.direction ? `library as ${r.direction}` : '').padEnd(18)} ${result.padEnd(15)} ${String(r.passed).padStart(3)}/${r.passed + r.failed.length + r.skipped.length}  ${detail}`;
    });
    process.stdout.write(`\n== interop table (peer, direction, result, cases passed) ==\n${lines.join('\n')}\n\n`);
  }
}
