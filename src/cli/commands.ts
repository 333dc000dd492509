// Registry of CLI commands: each lives in its own module, and a run imports only the module of
// the command it names. Importing every module costs ~0.2 s (the node's broker, lmdb, pino, the
// simulator, the chaos runner); Node itself starts in ~0.09 s. `ledgermq --help` (or no command,
// or an unknown one) lists every command from the table below without importing any module.
// The table's terms and summaries are each command's own, and test/cli-start.test.ts holds
// them equal to what the modules register.
import { type Command, Help } from 'commander';

type Register = (program: Command) => void;

interface CommandEntry {
  /** The top-level name a user types. */
  readonly name: string;
  /** The line `ledgermq --help` prints for it: term (name, [options], arguments) and summary. */
  readonly term: string;
  readonly summary: string;
  /** The module that registers it (with its options and subcommands), imported on demand. */
  readonly load: () => Promise<Register>;
  /** It only talks to a cluster as a client: it starts no node, in this process or a child. */
  readonly clientOnly?: true;
}

/** In the order `ledgermq --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'cluster', term: 'cluster', summary: 'run the whole local cluster', load: async () => (await import('./cluster-start.js')).registerClusterStart },
  { name: 'node', term: 'node', summary: 'run one node', load: async () => (await import('./node-start.js')).registerNodeStart },
  { name: 'status', term: 'status [options]', summary: 'show every node: role, term, last/commit/applied index, pid, event-loop delay, follower lag', load: async () => (await import('./status.js')).registerStatus, clientOnly: true },
  { name: 'topic', term: 'topic', summary: 'create, grow and list topics', load: async () => (await import('./topic.js')).registerTopic, clientOnly: true },
  { name: 'produce', term: 'produce [options]', summary: 'send messages (from --body, --count/--size, or stdin lines)', load: async () => (await import('./produce.js')).registerProduce, clientOnly: true },
  { name: 'consume', term: 'consume [options]', summary: 'print messages for a consumer group, committing its offsets after printing', load: async () => (await import('./consume.js')).registerConsume, clientOnly: true },
  { name: 'group', term: 'group', summary: 'consumer groups', load: async () => (await import('./group.js')).registerGroup, clientOnly: true },
  { name: 'dlq', term: 'dlq', summary: "a consumer group's dead letters", load: async () => (await import('./dlq.js')).registerDlq, clientOnly: true },
  { name: 'txcheck', term: 'txcheck [options]', summary: "answer a producer group's transaction check-backs (every open transaction of the group) until --timeout or SIGINT", load: async () => (await import('./tx.js')).registerTx, clientOnly: true },
  { name: 'tx', term: 'tx', summary: 'transactional messages', load: async () => (await import('./tx.js')).registerTx, clientOnly: true },
  { name: 'message', term: 'message [options]', summary: 'look stored messages up by key (with --topic) or by message id', load: async () => (await import('./message.js')).registerMessage, clientOnly: true },
  { name: 'leader', term: 'leader', summary: 'move leadership: hand it to a node now, or name a preferred leader', load: async () => (await import('./leader.js')).registerLeader, clientOnly: true },
  { name: 'sim', term: 'sim [options]', summary: 'run the deterministic Raft simulator over many seeds (drops, delays, partitions, crashes)', load: async () => (await import('./sim.js')).registerSim },
  { name: 'check', term: 'check [options] <history>', summary: 'check a Jepsen-style history (JSON Lines) for lost, duplicated, reordered or invented messages', load: async () => (await import('./check.js')).registerCheck },
  { name: 'chaos', term: 'chaos [options]', summary: 'run a fresh 3-node cluster under a produce/consume workload and seeded faults, then check the history', load: async () => (await import('./chaos.js')).registerChaos },
  { name: 'bench', term: 'bench [options]', summary: 'benchmark a fresh local 3-node cluster per mode; prints a table, writes JSON and a chart to --out', load: async () => (await import('./bench.js')).registerBench },
  { name: 'certs', term: 'certs', summary: 'TLS certificates for security.tls', load: async () => (await import('./certs.js')).registerCerts },
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

/**
 * Registers what `args` (process.argv without node and the script) needs: the named command's
 * module alone, or, for help, no command or an unknown one, every command as its help line.
 */
export async function registerCommandsFor(program: Command, args: readonly string[]): Promise<void> {
  const entry = commandNamed(args);
  if (entry !== undefined) return (await (entry.clientOnly ? loadAsClient(entry) : entry.load()))(program);
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
  if (process.env[NO_NATIVE_MSGPACK_ENV] !== undefined) return entry.load(); // the user's own setting
  process.env[NO_NATIVE_MSGPACK_ENV] = 'true';
  try {
    return await entry.load();
  } finally {
    delete process.env[NO_NATIVE_MSGPACK_ENV];
  }
}

/** Every command, fully registered (tests compare the table with it); a module registers once. */
export async function registerAllCommands(program: Command): Promise<void> {
  const registers = new Set<Register>();
  for (const c of COMMANDS) registers.add(await c.load());
  for (const register of registers) register(program);
}
