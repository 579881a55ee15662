/**
 * The `ws` package, imported on first use: it is ~8 MB of resident memory
 * once loaded, so the first WebSocket connect or listen loads it, not the
 * import of this driver. Kept apart from the public modules so the package's
 * declarations never name `ws` types (a consumer needs no `@types/ws`).
 *
 * @example
 * const { WebSocketServer } = await loadWs();
 */
let wsModule: Promise<typeof import('ws')> | undefined;

/** The ws package, imported on first use. */
export const loadWs = (): Promise<typeof import('ws')> => (wsModule ??= import('ws'));
