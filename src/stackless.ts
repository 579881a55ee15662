/**
 * Errors that are data, made without a stack trace.
 *
 * An attempt that a peer refuses ends with an error the selection keeps in its report and folds into the one
 * error it rejects with; its stack would only name the library's own event-loop frames. Capturing a stack
 * walks every frame (optimized ones are deoptimized to be read), and a refused port makes several such
 * errors per selection, Node's own included (a failed `send` of a UDP socket). The error the caller gets
 * keeps its stack; these are built with none.
 *
 * @example
 * reject(stackless(() => establishmentError(err, 'tcp connect to 127.0.0.1:1')));
 */

/**
 * Run `make` (synchronous) with stack capture off: every Error it makes has only its header as `stack`.
 * If the host froze `Error.stackTraceLimit`, `make` runs as it is.
 */
export function stackless<T>(make: () => T): T {
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 0;
  } catch {
    return make();
  }
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
