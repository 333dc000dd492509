// `ledgermq dlq list|resend`: a group's dead letters (messages that failed maxReconsumeTimes + 1
// deliveries, in %DLQ%<group>), and re-delivering them once, to that group only, through
// %RETRY%<group> (due at once, reconsumeTimes 0). Repeating a resend resends nothing.
import type { Command } from 'commander';
import type { LedgerClient } from '../client/client.js';
import { type DeadLetter, LIMITS } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import { formatTable, withClient } from './connect.js';
import { type ConnectOptions, parseIntOption, withClusterOptions } from './options.js';

interface ListOptions extends ConnectOptions {
  group: string;
  json?: boolean;
  timeout: number;
}

interface ResendOptions extends ConnectOptions {
  group: string;
  msgId?: string;
  all?: boolean;
  json?: boolean;
  timeout: number;
}

export function registerDlq(program: Command): void {
  const dlq = program.command('dlq').description("a consumer group's dead letters");
  withClusterOptions(dlq.command('list'))
    .description("list a group's dead letters (nothing when it has none)")
    .requiredOption('--group <group>', 'consumer group')
    .option('--json', 'one line per dead letter: {"msgId","topic","queue","offset","reason","attempts","firstFailureMs","lastFailureMs","resent"}')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action((options: ListOptions) => runList(options));
  withClusterOptions(dlq.command('resend'))
    .description('re-deliver dead letters once, to this group only (through %RETRY%<group>, at once)')
    .requiredOption('--group <group>', 'consumer group')
    .option('--msg-id <id>', 'the dead letter(s) with this message id')
    .option('--all', 'every dead letter not yet resent')
    .option('--json', 'print {"resent":N}')
    .option('--timeout <ms>', 'give up after this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action((options: ResendOptions) => runResend(options));
}

async function runList(options: ListOptions): Promise<void> {
  const deadLetters = await withClient(options, options.timeout, (client) => listAll(client, options.group));
  if (options.json) {
    for (const d of deadLetters) {
      const line = { msgId: d.msgId, topic: d.topic, queue: d.queue, offset: d.offset, reason: d.reason, attempts: d.attempts, firstFailureMs: d.firstFailureMs, lastFailureMs: d.lastFailureMs, resent: d.resent };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    return;
  }
  if (deadLetters.length === 0) return;
  const rows = deadLetters.map((d) => [d.msgId, `${d.topic}/${d.queue}`, String(d.offset), String(d.attempts), new Date(d.lastFailureMs).toISOString(), d.resent ? 'yes' : 'no', d.reason]);
  process.stdout.write(formatTable(['msgId', 'queue', 'offset', 'attempts', 'last failure', 'resent', 'reason'], rows));
}

/** Pages through the whole DLQ. */
async function listAll(client: LedgerClient, group: string): Promise<DeadLetter[]> {
  const all: DeadLetter[] = [];
  let fromOffset = 0;
  for (;;) {
    const page = await client.dlqList({ group, fromOffset, max: LIMITS.maxDeadLettersPerRequest });
    all.push(...page.deadLetters);
    if (page.deadLetters.length === 0 || page.nextOffset <= fromOffset) return all;
    fromOffset = page.nextOffset;
  }
}

async function runResend(options: ResendOptions): Promise<void> {
  if ((options.msgId === undefined) === (options.all !== true)) throw new LmqError('LMQ_BAD_INPUT', 'dlq resend needs exactly one of --msg-id ID and --all');
  const msgId = options.msgId === undefined ? {} : { msgId: options.msgId };
  // One request resends at most maxDeadLettersPerRequest: repeat until nothing is left.
  const resent = await withClient(options, options.timeout, async (client) => {
    let total = 0;
    for (;;) {
      const { resent: now } = await client.dlqResend({ group: options.group, ...msgId });
      if (now === 0) return total;
      total += now;
    }
  });
  process.stdout.write(options.json ? `${JSON.stringify({ resent })}\n` : `${resent} dead letters re-delivered to group ${options.group}\n`);
}
