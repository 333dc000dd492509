// The table of CLI commands: each lives in its own module, and a run imports only the module of
// the command it names. Importing every module costs ~0.2 s (the node's broker, lmdb, pino, the
// simulator, the chaos runner); Node itself starts in ~0.09 s. `ledgermq --help` (or no command,
// or an unknown one) lists every command from the table below without importing any module.
// The table's terms and summaries are each command's own, and test/cli-start.test.ts holds
// them equal to what the modules register. This module imports nothing, so entry.ts can read
// the table before it decides where the command runs from.
import type { Command } from 'commander';

export type Register = (program: Command) => void;

export interface CommandEntry {
  /** The top-level name a user types. */
  readonly name: string;
  /** The line `ledgermq --help` prints for it: term (name, [options], arguments) and summary. */
  readonly term: string;
  readonly summary: string;
  /**
   * The module (in this folder, without `.js`) that registers it with its options and
   * subcommands, and the function that does. The module is imported by name at run time, so
   * the client bundle (scripts/bundle-cli.mjs) holds each client command's module as an entry
   * of its own and never the node's.
   */
  readonly module: string;
  readonly register: string;
  /** It only talks to a cluster as a client: it starts no node, in this process or a child. */
  readonly clientOnly?: true;
}

/** In the order `ledgermq --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'cluster', term: 'cluster', summary: 'run the whole local cluster', module: 'cluster-start', register: 'registerClusterStart' },
  { name: 'node', term: 'node', summary: 'run one node', module: 'node-start', register: 'registerNodeStart' },
  { name: 'status', term: 'status [options]', summary: 'show every node: role, term, last/commit/applied index, pid, event-loop delay, follower lag', module: 'status', register: 'registerStatus', clientOnly: true },
  { name: 'topic', term: 'topic', summary: 'create, grow and list topics', module: 'topic', register: 'registerTopic', clientOnly: true },
  { name: 'produce', term: 'produce [options]', summary: 'send messages (from --body, --count/--size, or stdin lines)', module: 'produce', register: 'registerProduce', clientOnly: true },
  { name: 'consume', term: 'consume [options]', summary: 'print messages for a consumer group, committing its offsets after printing', module: 'consume', register: 'registerConsume', clientOnly: true },
  { name: 'group', term: 'group', summary: 'consumer groups', module: 'group', register: 'registerGroup', clientOnly: true },
  { name: 'dlq', term: 'dlq', summary: "a consumer group's dead letters", module: 'dlq', register: 'registerDlq', clientOnly: true },
  { name: 'txcheck', term: 'txcheck [options]', summary: "answer a producer group's transaction check-backs (every open transaction of the group) until --timeout or SIGINT", module: 'tx', register: 'registerTx', clientOnly: true },
  { name: 'tx', term: 'tx', summary: 'transactional messages', module: 'tx', register: 'registerTx', clientOnly: true },
  { name: 'message', term: 'message [options]', summary: 'look stored messages up by key (with --topic) or by message id', module: 'message', register: 'registerMessage', clientOnly: true },
  { name: 'leader', term: 'leader', summary: 'move leadership: hand it to a node now, or name a preferred leader', module: 'leader', register: 'registerLeader', clientOnly: true },
  { name: 'sim', term: 'sim [options]', summary: 'run the deterministic Raft simulator over many seeds (drops, delays, partitions, crashes)', module: 'sim', register: 'registerSim' },
  { name: 'check', term: 'check [options] <history>', summary: 'check a Jepsen-style history (JSON Lines) for lost, duplicated, reordered or invented messages', module: 'check', register: 'registerCheck' },
  { name: 'chaos', term: 'chaos [options]', summary: 'run a fresh 3-node cluster under a produce/consume workload and seeded faults, then check the history', module: 'chaos', register: 'registerChaos' },
  { name: 'bench', term: 'bench [options]', summary: 'benchmark a fresh local 3-node cluster per mode; prints a table, writes JSON and a chart to --out', module: 'bench', register: 'registerBench' },
  { name: 'certs', term: 'certs', summary: 'TLS certificates for security.tls', module: 'certs', register: 'registerCerts' },
];

/**
 * The command argv names: its first word (the program takes no options of its own, so the
 * first word that is not an option is the command), or the word after `help`.
 */
export function commandNamed(args: readonly string[]): CommandEntry | undefined {
  const words = args.filter((a) => !a.startsWith('-'));
  const name = words[0] === 'help' ? words[1] : words[0];
  return COMMANDS.find((c) => c.name === name);
}

/** The entry's register function, its module imported from beside this one (or the bundle's copy). */
export async function loadRegister(entry: CommandEntry): Promise<Register> {
  // A specifier in a variable: the bundler leaves it to run time rather than inline the module.
  const specifier = `./${entry.module}.js`;
  const register = ((await import(specifier)) as Record<string, unknown>)[entry.register];
  if (typeof register !== 'function') throw new TypeError(`${specifier} exports no function ${entry.register}`);
  return register as Register;
}
