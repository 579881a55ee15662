/**
 * Usage text and argument errors for the `taps-node` CLI.
 *
 * A {@link UsageError} means the command line itself is wrong: the CLI prints
 * the message (with "did you mean …?" where a name was misspelt) and the
 * short {@link SHORT_USAGE} on stderr, and exits 2. `--help` prints the full
 * {@link USAGE}.
 *
 * @example
 * throw new UsageError('--tenant needs --policy');
 */
import { EXIT_CODES_TEXT } from './exit-codes.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Printed after a usage error: the command forms, and where the options are. */
export const SHORT_USAGE = `usage: taps-node probe <url | host:port> [options]
       taps-node policy check <file>
       taps-node policy explain <file> <tenant> <url | host:port> [options]
       taps-node --help (every option) | --version
`;

export const USAGE = `usage:
  taps-node probe <url | host:port> [options]
      Run a real selection and print the candidate tree and the race timeline.
      --require <p>   --prefer <p>   --avoid <p>   --prohibit <p>
                          selection property preferences (repeatable), e.g.
                          --prefer multistreaming --prohibit reliability
      --profile <name>    start from reliable-inorder-stream | reliable-message |
                          unreliable-datagram
      --framer            add a length-prefix framer (stream stacks then keep
                          message boundaries)
      --security <mode>   required (default) | opportunistic | disabled
      --ca <file>         trust this CA (PEM) instead of the system roots
      --pin <sha256>      accept a server certificate with this fingerprint
                          (repeatable; hex or base64)
      --alpn <proto>      offer this ALPN protocol (repeatable)
      --policy <file>     decide with this policy file ...
      --tenant <id>       ... as this tenant (both or neither). Without them the
                          probe allows loopback addresses only (127.0.0.0/8, ::1)
      --resolve <name>=<addr>[,<addr>]
                          answer lookups of <name> from this table, not DNS
                          (repeatable; the default policy may then look it up)
      --timeout <ms>      give up after this long (default 5000)
      --attempt-delay <ms>  --racing staggered|simultaneous|failover
      --format <f>        text (default) | json | svg | html | trace: the race as
                          a waterfall picture (svg, html) or Trace Event JSON
                          for Perfetto (trace)
      --json              the same as --format json
      --ascii             draw the timeline with ASCII characters only

  taps-node policy check <file>
      Validate a policy file; errors name the line and column.

  taps-node policy explain <file> <tenant> <url | host:port>
          [--use <use>] [--address <ip>] [--protocol <scheme>] [--json]
      Print the decision for one request and the rule that made it.
      --use       lookup | connect (default) | bind | accept | redirect
      --address   the resolved IP to judge with a host name
      --protocol  the scheme for a bare host:port (default tcp)

${EXIT_CODES_TEXT}
`;
