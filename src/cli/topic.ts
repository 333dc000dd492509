// `ledgermq topic create NAME --queues N`, `topic update NAME --queues N` (grow) and `topic list`.
import type { Command } from 'commander';
import { LIMITS } from '../protocol/index.js';
import { withClient } from './connect.js';
import { parseIntOption, withClusterOptions } from './options.js';

/** `orders  4 queues  0:0-17 1:3-9 …` — each queue's minOffset (first stored) to maxOffset (next written). */
function formatTopic(t: { topic: string; queues: number; queueOffsets: readonly { queue: number; minOffset: number; maxOffset: number }[] }): string {
  const ranges = t.queueOffsets.map((q) => `${q.queue}:${q.minOffset}-${q.maxOffset}`).join(' ');
  return `${t.topic}\t${t.queues} queues\t${ranges}\n`;
}

export function registerTopic(program: Command): void {
  const topic = program.command('topic').description('create, grow and list topics');
  withClusterOptions(topic.command('create <name>'))
    .description('create a topic with N queues (replicated through the log)')
    .requiredOption('--queues <n>', 'number of queues', parseIntOption('--queues', 1, LIMITS.maxQueuesPerTopic))
    .option('--json', 'print {"topic","queues"}')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (name: string, options: { config: string; queues: number; json?: boolean; timeout: number }) => {
      const created = await withClient(options, options.timeout, (client) => client.call({ op: 'createTopic', topic: name, queues: options.queues }));
      process.stdout.write(options.json ? `${JSON.stringify({ topic: created.topic, queues: created.queues })}\n` : `created topic ${name} with ${options.queues} queues\n`);
    });
  withClusterOptions(topic.command('update <name>'))
    .description('grow a topic to N queues (grow only); prints the groups that keys moving to other queues wait for')
    .requiredOption('--queues <n>', 'the new number of queues, more than it has', parseIntOption('--queues', 2, LIMITS.maxQueuesPerTopic))
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (name: string, options: { config: string; queues: number; json?: boolean; timeout: number }) => {
      const grown = await withClient(options, options.timeout, (client) => client.call({ op: 'growTopic', topic: name, queues: options.queues }));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(grown)}\n`);
        return;
      }
      process.stdout.write(`topic ${name} grew from ${grown.fromQueues} to ${grown.queues} queues\n`);
      if (grown.waiting.length === 0) {
        process.stdout.write('no group has messages left in the old queues: keys move to their new queues at once\n');
        return;
      }
      process.stdout.write(`keyed sends whose queue changed wait (up to ${grown.maxReorderWaitMs} ms, topic.maxReorderWaitMs) until these groups have consumed their old queue up to the change:\n`);
      for (const group of [...new Set(grown.waiting.flatMap((q) => q.groups))].sort()) {
        const queues = grown.waiting.filter((q) => q.groups.includes(group)).map((q) => `${q.queueId} (to offset ${q.boundary})`);
        process.stdout.write(`  ${group}: queues ${queues.join(', ')}\n`);
      }
    });
  withClusterOptions(topic.command('list'))
    .description("list topics, their queues and each queue's stored offsets (minOffset to maxOffset)")
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (options: { config: string; json?: boolean; timeout: number }) => {
      const { topics } = await withClient(options, options.timeout, (client) => client.call({ op: 'topics' }));
      if (options.json) process.stdout.write(`${JSON.stringify({ topics })}\n`);
      else process.stdout.write(topics.map(formatTopic).join('') || 'no topics\n');
    });
}
