/**
 * The CLI's output module: the one place in `cli/` that writes to the
 * terminal. Everything else returns strings or calls an {@link CliIO}, so
 * tests run the CLI in-process and read what it printed.
 *
 * @example
 * import { stdio } from './output.js';
 * stdio.out('hello\n');
 */

/** Where the CLI writes: `out` for results, `err` for diagnostics and usage. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

/** The process's stdout and stderr. */
export const stdio: CliIO = Object.freeze({
  out: (text: string) => void process.stdout.write(text),
  err: (text: string) => void process.stderr.write(text),
});

/** An in-memory IO for tests and embedding: everything printed, per stream. */
export function bufferIO(): CliIO & { readonly stdout: string; readonly stderr: string } {
  let stdout = '';
  let stderr = '';
  return {
    out: (t: string) => void (stdout += t),
    err: (t: string) => void (stderr += t),
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}
