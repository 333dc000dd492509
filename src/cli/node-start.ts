// `ledgermq node start --id ID`: one broker node in the foreground. SIGTERM/SIGINT stop it
// cleanly: stop accepting, finish in-flight work, flush, exit 0.
import { type Command, Option } from 'commander';
import { join } from 'node:path';
import { type ClusterConfig, findNode, loadConfig } from '../config/config.js';
import { startBrokerNode } from '../broker/server.js';
import { STORAGE_MODES, type StorageMode } from '../log/file-io.js';
import { withConfig } from './options.js';
import { applyModeOverrides, modeOptions, type ModeOverrides } from './mode-options.js';
import { createLogger } from './logging.js';

interface NodeStartOptions extends ModeOverrides {
  config: string;
  id: string;
  data?: string;
  unsafeStorage?: StorageMode;
}

/** `--data DIR` puts every node's data under DIR/<id> (CONTRACT.md). */
export function withDataRoot(config: ClusterConfig, dataRoot: string | undefined): ClusterConfig {
  if (dataRoot === undefined) return config;
  return { ...config, nodes: config.nodes.map((n) => ({ ...n, dataDir: join(dataRoot, n.id) })) };
}

export function registerNodeStart(program: Command): void {
  const node = program.command('node').description('run one node');
  modeOptions(withConfig(node.command('start')))
    .description('start one node of the config in the foreground')
    .requiredOption('--id <id>', 'node id from the config')
    .option('--data <dir>', 'data root: this node keeps its data in DIR/<id>')
    // Hidden, and no config key: only the chaos runner's power nemesis passes it (file-io.ts).
    .addOption(new Option('--unsafe-storage <mode>', 'lazy: lose unsynced writes on any crash (chaos runs only)').choices(STORAGE_MODES).hideHelp())
    .action(async (options: NodeStartOptions) => {
      const config = applyModeOverrides(withDataRoot(loadConfig(options.config), options.data), options);
      findNode(config, options.id);
      // Every line carries the node's current term and role once the node exists.
      let logContext: () => Record<string, unknown> = () => ({});
      const logger = createLogger({ node: options.id }, () => logContext());
      const broker = await startBrokerNode(config, options.id, logger, (node) => (logContext = () => node.logContext()), options.unsafeStorage);
      // The console's modules (fastify, prom-client) load only on a node that serves it.
      const httpConsole = findNode(config, options.id).httpPort === undefined ? null : await (await import('../http/server.js')).startConsole(config, options.id, broker, logger);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          // Ctrl-C under `cluster start` reaches a node twice: SIGINT from the terminal, then
          // SIGTERM from cluster start. One clean stop; the second signal changes nothing.
          if (stopping) return logger.info({ signal }, 'already stopping');
          stopping = true;
          logger.info({ signal }, 'stopping');
          void (httpConsole?.close() ?? Promise.resolve()).then(() => broker.stop()).then(resolve, (error: unknown) => {
            logger.fatal({ err: error }, 'stop failed');
            process.exit(1);
          });
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
      logger.info('stopped');
      logger.flush();
    });
}
