// `ledgermq consume … --exec CMD --orderly`: an orderly consumer (src/client/orderly-consumer.ts)
// whose listener runs CMD through `sh -c` once per message, with the body on stdin and the
// message in LMQ_MSG_ID, LMQ_RECONSUME_TIMES (orderly retries of it), LMQ_TOPIC, LMQ_QUEUE and
// LMQ_OFFSET. Exit 0 is SUCCESS; anything else suspends the queue and retries the same message
// after the suspend pause, later messages of the queue waiting. One command runs per queue at a
// time, and only while this consumer holds the queue's lock: if the lock is lost mid-command
// (the cluster unreachable past the lease), the command is killed, so two consumers never
// process one queue at once. CMD's stdout and stderr go to consume's stderr. consume stops
// after --max messages were finished, or once no command ran and none finished for --timeout
// (a consumer left with no queue too); SIGINT/SIGTERM stop it the same way (commands in
// progress finish, offsets are committed, locks released).
import { InvalidArgumentError } from 'commander';
import type { LedgerClient } from '../client/client.js';
import type { StartPosition } from '../client/consumer.js';
import { OrderlyConsumer } from '../client/orderly-consumer.js';
import type { SubscriptionFilter } from '../filter/index.js';
import { runHandler, runUntilDone } from './exec-handler.js';

/** What consume.ts hands over: its options, of which these matter here. */
export interface OrderlyCliOptions {
  readonly topic: string;
  readonly group: string;
  readonly max?: number;
  readonly timeout: number;
  readonly broadcast?: boolean;
  readonly json?: boolean;
  readonly exec?: string;
  readonly orderly?: boolean;
  readonly maxReconsumeTimes?: number;
  readonly lockLeaseMs?: number;
}

const MAX_POLL_WAIT_MS = 1_000;

/** The checks of the flags that --orderly combines with; exit 2 naming the clash. */
export function orderlyCommand(options: OrderlyCliOptions): string {
  if (options.exec === undefined) throw new InvalidArgumentError('--orderly needs --exec CMD (the command that handles each message)');
  if (options.broadcast) throw new InvalidArgumentError('--orderly shares the queues among the group (clustering mode); it does not combine with --broadcast');
  if (options.json) throw new InvalidArgumentError('--json does not apply to --exec (the command handles each message; its output goes to stderr)');
  return options.exec;
}

export async function consumeOrderly(client: LedgerClient, options: OrderlyCliOptions, from: StartPosition, consumerId: string, filter: SubscriptionFilter | undefined): Promise<void> {
  const command = orderlyCommand(options);
  const consumer = new OrderlyConsumer(client, {
    topic: options.topic, group: options.group, consumerId, from,
    pollWaitMs: Math.min(options.timeout, MAX_POLL_WAIT_MS),
    ...(options.max === undefined ? {} : { maxMessages: options.max }),
    ...(options.maxReconsumeTimes === undefined ? {} : { maxReconsumeTimes: options.maxReconsumeTimes }),
    ...(options.lockLeaseMs === undefined ? {} : { lockLeaseMs: options.lockLeaseMs }),
    ...(filter === undefined ? {} : { filter }),
    onError: (error, what) => {
      process.stderr.write(`consume: ${what}: ${error instanceof Error ? error.message : String(error)}\n`);
    },
  }, async (messages, context) => {
    const succeeded = await runHandler(command, messages[0]!, 'suspend', context.signal, 'was killed: this consumer lost the queue\'s lock');
    return succeeded ? 'SUCCESS' : 'SUSPEND';
  });
  await runUntilDone(consumer, () => {
    const stats = consumer.stats();
    return { running: stats.runningListeners, progressed: stats.finishedMessages, done: consumer.finishedAll() };
  }, options.timeout);
}
