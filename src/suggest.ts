/**
 * "Did you mean …?" for names a caller misspelt: property names, init keys,
 * CLI flags. The closest known name by edit distance (Damerau–Levenshtein,
 * case-insensitive), only when it is close enough to be a likely typo.
 *
 * @example
 * didYouMean('reliabilty', ['reliability', 'preserveOrder']); // ' (did you mean reliability?)'
 * didYouMean('remoteEndpoint', ['remote', 'local']);         // ' (did you mean remote?)'
 * didYouMean('xyz', ['reliability']);                         // ''
 */

/** Edit distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      d[i * cols + j] = best;
    }
  }
  return at(rows - 1, cols - 1);
}

/**
 * The known name closest to `name`: within a third of its length in edits (at
 * least 1, at most 3), else one that `name` starts or ends with (`remoteEndpoint`
 * → `remote`, `transportProperties` → `properties`); undefined when none is.
 */
export function closest(name: string, known: Iterable<string>): string | undefined {
  if (name.length > 64) return undefined;
  const lower = name.toLowerCase();
  const names = [...known];
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of names) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (bestDistance <= limit) return best;
  return names.find((k) => k.length >= 4 && (lower.startsWith(k.toLowerCase()) || lower.endsWith(k.toLowerCase())));
}

/** `' (did you mean X?)'` for the closest known name, or `''`. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const hit = closest(name, known);
  return hit === undefined ? '' : ` (did you mean ${hit}?)`;
}
