/**
 * A module imported on first use, then kept: a stack's driver objects (what the default set imports) stay
 * small, and the code that connects or listens loads only when a candidate of that stack is attempted.
 *
 * @example
 * const impl = lazy(() => import('./connect.js'));
 * connect: async (attempt) => (await impl()).connectWebSocket(attempt, { secure: false }),
 */

/** `load` called once, on the first call; every call answers with its promise. */
export function lazy<T>(load: () => Promise<T>): () => Promise<T> {
  let loaded: Promise<T> | undefined;
  return () => (loaded ??= load());
}
