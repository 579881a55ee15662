/**
 * The `taps-node` command: dispatch, error handling and exit codes. `main()`
 * never exits the process and never writes to the terminal itself: it
 * returns the exit code and prints through the {@link CliIO} it is given,
 * so tests run it in-process (`cli/taps.ts` is the thin executable).
 *
 * @example
 * const io = bufferIO();
 * const code = await main(['policy', 'check', 'tenants.policy'], io);
 * io.stdout; // what it printed
 */
import { isTapsError } from '../src/index.js';
import { parseCheckArgs, parseExplainArgs, parseProbeArgs } from './args.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { stdio, type CliIO } from './output.js';
import { check, explain } from './policy.js';
import { probe } from './probe.js';
import { didYouMean } from '../src/suggest.js';
import { SHORT_USAGE, USAGE, UsageError } from './usage.js';
import { packageVersion } from './version.js';

async function dispatch(argv: readonly string[], io: CliIO): Promise<ExitCode> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'probe':
      return probe(parseProbeArgs(rest), io);
    case 'policy': {
      const [sub, ...args] = rest;
      if (sub === 'check') return check(parseCheckArgs(args), io);
      if (sub === 'explain') return explain(parseExplainArgs(args), io);
      throw new UsageError(sub === undefined ? 'policy needs a subcommand: check or explain' : `unknown policy subcommand ${JSON.stringify(sub)}${didYouMean(sub, ['check', 'explain'])}`);
    }
    case 'help':
    case '--help':
    case '-h':
      io.out(USAGE);
      return EXIT.ok;
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}${didYouMean(command, ['probe', 'policy', 'help', '--version'])}`);
  }
}

/** Run the CLI with `argv` (without `node` and the script). Resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO = stdio): Promise<ExitCode> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(USAGE);
    return EXIT.ok;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    io.out(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`taps-node: ${err.message}\n${SHORT_USAGE}`);
      return EXIT.usage;
    }
    if (isTapsError(err) && err.code === 'ERR_TAPS_INVALID_CONFIGURATION') {
      io.err(`taps-node: ${err.message}\n`);
      return EXIT.invalidPolicy;
    }
    if (isTapsError(err)) {
      io.err(`taps-node: ${err.code}: ${err.message}\n`);
      return EXIT.failed;
    }
    io.err(`taps-node: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return EXIT.internal;
  }
}
