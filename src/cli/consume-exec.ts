// `ledgermq consume … --exec CMD`: a push consumer (src/client/push-consumer.ts) whose listener
// runs CMD through `sh -c` once per message, with the body on stdin and the message in
// LMQ_MSG_ID, LMQ_RECONSUME_TIMES, LMQ_TOPIC, LMQ_QUEUE and LMQ_OFFSET. Exit 0 is SUCCESS;
// anything else is RECONSUME_LATER (the message is sent back for a later retry). CMD's stdout
// and stderr go to consume's stderr, so consume's stdout stays empty. consume stops after
// --max messages were handled, or once nothing arrived for --timeout while no handler ran;
// SIGINT/SIGTERM stop it the same way (handlers in progress finish, offsets are committed).
import type { LedgerClient } from '../client/client.js';
import type { StartPosition } from '../client/consumer.js';
import { PushConsumer } from '../client/push-consumer.js';
import { assert } from '../util/assert.js';
import type { SubscriptionFilter } from '../filter/index.js';
import { runHandler, runUntilDone } from './exec-handler.js';

export interface ExecOptions {
  readonly command: string;
  readonly topic: string;
  readonly group: string;
  readonly from: StartPosition;
  readonly concurrency: number;
  readonly max: number | undefined;
  readonly timeoutMs: number;
  /** Clustering mode (the group's consume processes share its queues); omitted: every queue. */
  readonly consumerId: string | undefined;
  readonly filter: SubscriptionFilter | undefined;
}

const MAX_POLL_WAIT_MS = 1_000;

export async function consumeWithExec(client: LedgerClient, options: ExecOptions): Promise<void> {
  const consumer = new PushConsumer(client, {
    topic: options.topic, group: options.group, from: options.from, consumeConcurrency: options.concurrency,
    pollWaitMs: Math.min(options.timeoutMs, MAX_POLL_WAIT_MS),
    ...(options.max === undefined ? {} : { maxDeliveredMessages: options.max }),
    ...(options.consumerId === undefined ? {} : { consumerId: options.consumerId }),
    ...(options.filter === undefined ? {} : { filter: options.filter }),
    onError: (error, what) => {
      process.stderr.write(`consume: ${what}: ${error instanceof Error ? error.message : String(error)}\n`);
    },
  }, async (messages) => {
    assert(messages.length === 1, 'the command handles one message at a time (batchSize 1)');
    return (await runHandler(options.command, messages[0]!, 'reconsume later')) ? 'SUCCESS' : 'RECONSUME_LATER';
  });
  await runUntilDone(consumer, () => {
    const stats = consumer.stats();
    return { running: stats.runningBatches, progressed: stats.deliveredMessages, done: consumer.deliveredAll() };
  }, options.timeoutMs);
}
