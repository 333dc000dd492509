// The `ledgermq` command line (CONTRACT.md). Each command lives in its own module and is
// registered here; this file owns argument parsing conventions and how errors end the process.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { InvariantViolation } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { registerCommandsFor } from './commands.js';

function fail(message: string, exitCode: number): never {
  process.stderr.write(`ledgermq: ${message}\n`);
  process.exit(exitCode);
}

/**
 * The error's line: an error whose outcome is unknown says so (the catalogue's `indeterminate`
 * flag), so a user checks before repeating a write; docs/errors.md says how, per code.
 */
function describe(error: LmqError): string {
  if (error.indeterminate) return `${error.message} (outcome unknown: see ${error.code} in docs/errors.md)`;
  // A refusal by the ACL names its code, the one thing to look up or grep for.
  if (error.code === 'LMQ_UNAUTHENTICATED' || error.code === 'LMQ_FORBIDDEN') return `${error.code}: ${error.message}`;
  return error.message;
}

const program = new Command('ledgermq')
  .description('A message broker on a Raft-replicated commit log')
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });
await registerCommandsFor(program, process.argv.slice(2));

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Commander prints a parse-time bad value and rethrows it as a plain CommanderError; an
  // InvalidArgumentError itself was raised inside an action and is still unprinted.
  if (error instanceof InvalidArgumentError) fail(error.message, 2);
  if (error instanceof CommanderError) {
    // --help and --version end through here with exit code 0; usage errors were already printed.
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  if (error instanceof LmqError) fail(describe(error), error.exitCode);
  if (error instanceof InvariantViolation) throw error; // a bug: crash loudly with the stack
  throw error;
}
