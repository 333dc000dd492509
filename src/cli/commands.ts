// Registers the CLI's commands with commander: the named command's module alone, or for help
// every command as its line of the table (command-table.ts), or, for tests, every module.
import { type Command, Help } from 'commander';
import { COMMANDS, type CommandEntry, commandNamed, loadRegister, type Register } from './command-table.js';

/**
 * Registers what `args` (process.argv without node and the script) needs: the named command's
 * module alone, or, for help, no command or an unknown one, every command as its help line.
 */
export async function registerCommandsFor(program: Command, args: readonly string[]): Promise<void> {
  const entry = commandNamed(args);
  if (entry !== undefined) return (await (entry.clientOnly ? loadAsClient(entry) : loadRegister(entry)))(program);
  for (const c of COMMANDS) program.command(c.name).description(c.summary);
  const terms = new Map(COMMANDS.map((c) => [c.name, c.term]));
  program.configureHelp({ subcommandTerm: (cmd) => terms.get(cmd.name()) ?? new Help().subcommandTerm(cmd) });
}

const NO_NATIVE_MSGPACK_ENV = 'MSGPACKR_NATIVE_ACCELERATION_DISABLED';

/**
 * msgpackr loads a native string decoder (msgpackr-extract) when first imported, unless this
 * variable is set. It pays off decoding many long strings, which a client command never does
 * (bodies are bytes), and loading it costs a client command a quarter of Node's own start. It
 * is unset again once the command's modules are loaded, so no child process inherits it.
 */
async function loadAsClient(entry: CommandEntry): Promise<Register> {
  if (process.env[NO_NATIVE_MSGPACK_ENV] !== undefined) return loadRegister(entry); // the user's own setting
  process.env[NO_NATIVE_MSGPACK_ENV] = 'true';
  try {
    return await loadRegister(entry);
  } finally {
    delete process.env[NO_NATIVE_MSGPACK_ENV];
  }
}

/** Every command, fully registered (tests compare the table with it); a module registers once. */
export async function registerAllCommands(program: Command): Promise<void> {
  const registers = new Set<Register>();
  for (const c of COMMANDS) registers.add(await loadRegister(c));
  for (const register of registers) register(program);
}
