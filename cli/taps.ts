#!/usr/bin/env node
/**
 * The `taps` executable (package.json `bin`): runs {@link main} with the
 * process's arguments and sets the exit code. See `taps --help` and
 * cli/exit-codes.ts.
 *
 * @example
 * // npx taps probe localhost:8443 --prefer multistreaming
 * // npm run taps -- policy check tenants.policy
 */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
