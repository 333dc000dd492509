// `ledgermq topic create NAME --queues N` and `topic list`.
import type { Command } from 'commander';
import { LIMITS } from '../protocol/index.js';
import { withClient } from './connect.js';
import { parseIntOption, withConfig } from './options.js';

export function registerTopic(program: Command): void {
  const topic = program.command('topic').description('create and list topics');
  withConfig(topic.command('create <name>'))
    .description('create a topic with N queues (replicated through the log)')
    .requiredOption('--queues <n>', 'number of queues', parseIntOption('--queues', 1, LIMITS.maxQueuesPerTopic))
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (name: string, options: { config: string; queues: number; timeout: number }) => {
      await withClient(options.config, options.timeout, (client) => client.call({ op: 'createTopic', topic: name, queues: options.queues }));
      process.stdout.write(`created topic ${name} with ${options.queues} queues\n`);
    });
  withConfig(topic.command('list'))
    .description('list topics and their queue counts')
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (options: { config: string; json?: boolean; timeout: number }) => {
      const { topics } = await withClient(options.config, options.timeout, (client) => client.call({ op: 'topics' }));
      if (options.json) process.stdout.write(`${JSON.stringify({ topics })}\n`);
      else process.stdout.write(topics.map((t) => `${t.topic}\t${t.queues} queues\n`).join('') || 'no topics\n');
    });
}
