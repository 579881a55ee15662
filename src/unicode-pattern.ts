/**
 * Regular expressions with Unicode property classes (`\p{Cn}`, `\p{L}`), built on first use.
 *
 * V8 (Node 22 and 24) checks the syntax of every regular expression literal when it parses the file
 * holding it, used or not, and a property class is looked up in ICU's tables for that check and again
 * when the expression first runs. The package's code is one file on the default path, so a literal such
 * as `/[\p{Cn}]/u` cost every process that imports the library, though only a name or value that is not
 * ASCII ever needs it (docs/performance.md, "cold start"). Built from a string, it costs nothing until then.
 *
 * @example
 * const BAD = unicodePattern('[\\p{Cc}\\p{Cf}]');
 * if (!/^[\x20-\x7e]*$/.test(s) && BAD().test(s)) throw new TypeError('...');
 */

/** A function returning `new RegExp(source, 'u')`, made on its first call and kept. */
export function unicodePattern(source: string): () => RegExp {
  let re: RegExp | undefined;
  return () => (re ??= new RegExp(source, 'u'));
}
