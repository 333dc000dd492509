// `ledgermq group list`: the backlog — per group and queue, the committed offset, the queue's
// next offset and the lag between them, in messages and in seconds (the oldest unconsumed one's age). `group reset` moves a group's offsets.
import type { Command } from 'commander';
import { formatTable, withClient } from './connect.js';
import { type StartPosition, queryStartOffsets, topicQueues } from '../client/consumer.js';
import { parseIntOption, parseTimeOption, withClusterOptions } from './options.js';

export function registerGroup(program: Command): void {
  const group = program.command('group').description('consumer groups');
  withClusterOptions(group.command('reset'))
    .description("move a group's committed offsets (replicated) to the first or last offset, or to a time")
    .requiredOption('--group <group>', 'consumer group')
    .requiredOption('--topic <topic>', 'topic')
    .requiredOption('--to <position>', 'first, last, or a time (ISO date or epoch ms)')
    .option('--json', 'print {"group","topic","queues":[{"queueId","committedOffset","offset"}]} (committedOffset: before the reset, null if none)')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (options: { config: string; group: string; topic: string; to: string; json?: boolean; timeout: number }) => {
      const to: StartPosition = options.to === 'first' || options.to === 'last' ? options.to : { timestampMs: parseTimeOption('--to')(options.to) };
      const starts = await withClient(options, options.timeout, async (client) => {
        const queues = await queryStartOffsets(client, options.group, options.topic, await topicQueues(client, options.topic), to);
        await client.call({ op: 'resetOffsets', group: options.group, offsets: queues.map((q) => ({ topic: options.topic, queueId: q.queueId, offset: q.start })) });
        return queues;
      });
      if (options.json) {
        const queues = starts.map((q) => ({ queueId: q.queueId, committedOffset: q.committed ?? null, offset: q.start }));
        process.stdout.write(`${JSON.stringify({ group: options.group, topic: options.topic, queues })}\n`);
        return;
      }
      for (const q of starts) process.stdout.write(`${options.topic}/${q.queueId}: ${q.committed ?? '-'} -> ${q.start}\n`);
    });
  withClusterOptions(group.command('list'))
    .description('per group and queue (retry queues included): committed offset, last offset and lag (the backlog) in messages and seconds, and its dead letters')
    .option('--json', 'machine-readable output')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action(async (options: { config: string; json?: boolean; timeout: number }) => {
      const { groups } = await withClient(options, options.timeout, (client) => client.call({ op: 'groups' }));
      // An older broker answers no lagSeconds: null and why, never a made-up number (CONTRACT.md).
      for (const g of groups) for (const q of g.queues) if (q.lagSeconds === undefined) Object.assign(q, { lagSeconds: null, lagSecondsUnknown: 'the broker did not report it (an older version)' });
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ groups })}\n`);
        return;
      }
      const rows = groups.flatMap((g) => g.queues.map((q) => [g.group, `${q.topic}/${q.queueId}`, String(q.committedOffset), String(q.nextOffset), String(q.lag), q.lagSeconds === null ? `unknown (${q.lagSecondsUnknown})` : q.lagSeconds.toFixed(1)]));
      process.stdout.write(rows.length === 0 ? 'no consumer groups have committed offsets yet\n' : formatTable(['group', 'queue', 'committed', 'next', 'lag', 'lag s'], rows));
      // Dead letters are not rows (they are not consumed): one line per group that has some.
      for (const g of groups) if (g.dlq.messages > 0) process.stdout.write(`${g.group}: ${g.dlq.messages} dead letters, ${g.dlq.resent} resent (dlq list --group ${g.group})\n`);
    });
}
