/**
 * The probe CLI's exit codes, documented once (also printed by `taps --help`).
 *
 * | code | meaning |
 * |------|---------|
 * | 0    | success: connected (probe), valid (policy check), allowed (policy explain) |
 * | 1    | probe: no candidate could be established (failed, timed out, no suitable stack) |
 * | 2    | bad arguments: usage printed on stderr |
 * | 3    | the policy said no: every candidate denied, a quota hit, or explain's decision is deny |
 * | 4    | the policy file is invalid or unreadable (errors with line and column) |
 * | 5    | probe: the name could not be resolved |
 * | 70   | internal error (a bug: please report it with the output) |
 *
 * @example
 * import { EXIT } from './exit-codes.js';
 * process.exitCode = EXIT.usage;
 */
export const EXIT = Object.freeze({
  ok: 0,
  failed: 1,
  usage: 2,
  denied: 3,
  invalidPolicy: 4,
  resolution: 5,
  internal: 70,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The table above as text, for `--help`. */
export const EXIT_CODES_TEXT = `exit codes:
  0   success: connected (probe), valid (policy check), allowed (policy explain)
  1   probe: no candidate could be established (failed, timed out, no suitable stack)
  2   bad arguments (this usage is printed)
  3   the policy said no: every candidate denied, a quota hit, or explain's decision is deny
  4   the policy file is invalid or unreadable (errors carry line and column)
  5   probe: the name could not be resolved
  70  internal error (a bug)`;
