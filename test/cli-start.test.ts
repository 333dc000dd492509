// The CLI loads only the module of the command it runs (src/cli/commands.ts). These tests hold
// the help table equal to what the modules register, and check that client commands load
// nothing of a node (broker, Raft core, lmdb, pino). Timing itself is bench/cli-start.ts's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Help } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS, commandNamed, registerAllCommands, registerCommandsFor } from '../src/cli/commands.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-cli-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function program(): Command {
  return new Command('ledgermq').description('A message broker on a Raft-replicated commit log');
}

/** The URLs of every module `ledgermq ARGS` loads (through a module hook that lists them). */
function modulesLoadedBy(args: readonly string[], exitCode = 0): string[] {
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(hooks, "import { writeSync } from 'node:fs';\nexport async function load(url, context, next) { writeSync(2, `LOADED ${url}\\n`); return next(url, context); }\n");
  const register = join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const result = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, 'bin/ledgermq', ...args], { encoding: 'utf8', timeout: 30_000 });
  expect(result.status).toBe(exitCode);
  return result.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice('LOADED '.length));
}

describe('cli start – each command loads its own module only', () => {
  it('the help table lists every command as its module registers it, in order', async () => {
    const full = program();
    await registerAllCommands(full);
    expect(full.commands.map((c) => c.name())).toEqual(COMMANDS.map((c) => c.name));
    const help = new Help();
    for (const entry of COMMANDS) {
      const command = full.commands.find((c) => c.name() === entry.name)!;
      expect({ term: help.subcommandTerm(command), summary: command.description() }).toEqual({ term: entry.term, summary: entry.summary });
    }
    // And `ledgermq --help` from the table alone reads exactly as with every module loaded.
    const table = program();
    await registerCommandsFor(table, ['--help']);
    expect(table.helpInformation()).toBe(full.helpInformation());
  });

  it('finds the command argv names, also after help, and nothing for options or unknown words', () => {
    expect(commandNamed(['status', '--json'])?.name).toBe('status');
    expect(commandNamed(['help', 'produce'])?.name).toBe('produce');
    expect(commandNamed(['--help'])).toBeUndefined();
    expect(commandNamed(['stats'])).toBeUndefined();
  });

  it('client commands load nothing of a node: no broker, Raft core, lmdb or pino', () => {
    for (const args of [['--help'], ['status', '--help'], ['produce', '--help'], ['consume', '--help'], ['leader', 'transfer', '--help']]) {
      const loaded = modulesLoadedBy(args);
      expect(loaded.some((url) => url.endsWith('/dist/src/cli/main.js'))).toBe(true);
      const heavy = loaded.filter((url) => /\/src\/(broker|log|node|raft|sim|chaos|checker)\/|node_modules\/(lmdb|pino|pino-pretty)\//.test(url));
      expect({ args, heavy }).toEqual({ args, heavy: [] });
    }
    // Reading a good config takes no zod and no full schema (src/config/client-config.ts):
    // a status of nodes that are all down (exit 3) has read it.
    const config = join(dir, 'down.json');
    writeFileSync(config, JSON.stringify({ clusterId: 'down', nodes: [{ id: 'n1', host: '127.0.0.1', raftPort: 1, clientPort: 1, dataDir: 'n1' }], flush: { mode: 'sync' }, quorum: 'majority' }));
    const statusLoaded = modulesLoadedBy(['status', '--timeout', '0', '--config', config], 3);
    expect(statusLoaded.some((url) => url.endsWith('/dist/src/config/client-config.js'))).toBe(true);
    expect(statusLoaded.filter((url) => /\/src\/config\/config\.js$|node_modules\/zod\//.test(url))).toEqual([]);
    // The top-level help loads no command module at all.
    expect(modulesLoadedBy(['--help']).filter((url) => /\/dist\/src\/cli\/(?!main|commands)/.test(url))).toEqual([]);
  });
});
