// The CLI loads only the module of the command it runs (src/cli/command-table.ts), client
// commands and help from the client bundle (src/cli/entry.ts). These tests hold the help table
// equal to what the modules register, and check that client commands load nothing of a node
// (broker, Raft core, lmdb, pino), bundled or not. Timing itself is bench/cli-start.ts's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Help } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLED_MAIN, bundleIsFresh } from '../src/cli/client-bundle.js';
import { COMMANDS, commandNamed } from '../src/cli/command-table.js';
import { registerAllCommands, registerCommandsFor } from '../src/cli/commands.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-cli-start-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function program(): Command {
  return new Command('ledgermq').description('A message broker on a Raft-replicated commit log');
}

const ROOT = pathToFileURL(join(import.meta.dirname, '..', '/')).href;

/**
 * The URLs of every module `ledgermq ARGS` loads (through a module hook that lists them), a
 * file of the client bundle standing for the modules it was built from (its metafile says).
 */
function modulesLoadedBy(args: readonly string[], exitCode = 0, script = 'bin/ledgermq'): string[] {
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(hooks, "import { writeSync } from 'node:fs';\nexport async function load(url, context, next) { writeSync(2, `LOADED ${url}\\n`); return next(url, context); }\n");
  const register = join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  const result = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, script, ...args], { encoding: 'utf8', timeout: 30_000 });
  expect(result.status).toBe(exitCode);
  const loaded = result.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice('LOADED '.length));
  return loaded.flatMap((url) => (url.startsWith(`${ROOT}dist/cli/`) ? [url, ...bundleInputs(url.slice(ROOT.length)).map((path) => ROOT + path)] : [url]));
}

/** The modules one output file of the client bundle was built from. */
function bundleInputs(output: string): string[] {
  const meta = JSON.parse(readFileSync(new URL('dist/cli/meta.json', ROOT), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  const inputs = meta.outputs[output]?.inputs;
  expect(inputs, output).toBeDefined();
  return Object.keys(inputs!);
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

  it('client commands load nothing of a node: no broker, Raft core, lmdb or pino — bundled or not', () => {
    // bin/ledgermq runs them from the client bundle while it is fresh (after `npm run build`);
    // main.js is what runs them unbundled.
    for (const script of ['bin/ledgermq', 'dist/src/cli/main.js']) {
      for (const args of [['--help'], ['status', '--help'], ['produce', '--help'], ['consume', '--help'], ['leader', 'transfer', '--help']]) {
        const loaded = modulesLoadedBy(args, 0, script);
        expect(loaded.some((url) => url.endsWith('/dist/src/cli/main.js'))).toBe(true);
        const heavy = loaded.filter((url) => /\/src\/(broker|log|node|raft|sim|chaos|checker)\/|node_modules\/(lmdb|pino|pino-pretty)\//.test(url));
        expect({ script, args, heavy }).toEqual({ script, args, heavy: [] });
      }
      // Reading a good config takes no zod and no full schema (src/config/client-config.ts):
      // a status of nodes that are all down (exit 3) has read it.
      const config = join(dir, 'down.json');
      writeFileSync(config, JSON.stringify({ clusterId: 'down', nodes: [{ id: 'n1', host: '127.0.0.1', raftPort: 1, clientPort: 1, dataDir: 'n1' }], flush: { mode: 'sync' }, quorum: 'majority' }));
      const statusLoaded = modulesLoadedBy(['status', '--timeout', '0', '--config', config], 3, script);
      expect(statusLoaded.some((url) => url.endsWith('/dist/src/config/client-config.js'))).toBe(true);
      expect(statusLoaded.filter((url) => /\/src\/config\/config\.js$|node_modules\/zod\//.test(url))).toEqual([]);
      // The top-level help loads no command module at all.
      expect(modulesLoadedBy(['--help'], 0, script).filter((url) => /\/dist\/src\/cli\/(?!main|commands|command-table|entry|client-bundle)/.test(url))).toEqual([]);
    }
  });

  it('bin/ledgermq runs client commands and help from the bundle exactly while it is fresh, node commands never', () => {
    const bundled = (args: string[]) => modulesLoadedBy(args).includes(BUNDLED_MAIN.href);
    const fresh = bundleIsFresh();
    expect({ help: bundled(['--help']), status: bundled(['status', '--help']), txcheck: bundled(['txcheck', '--help']) }).toEqual({ help: fresh, status: fresh, txcheck: fresh });
    expect({ node: bundled(['node', '--help']), sim: bundled(['sim', '--help']) }).toEqual({ node: false, sim: false });
  });
});
