// `ledgermq consume … --exec CMD`: a push consumer (src/client/push-consumer.ts) whose listener
// runs CMD through `sh -c` once per message, with the body on stdin and the message in
// LMQ_MSG_ID, LMQ_RECONSUME_TIMES, LMQ_TOPIC, LMQ_QUEUE and LMQ_OFFSET. Exit 0 is SUCCESS;
// anything else is RECONSUME_LATER (the message is sent back for a later retry). CMD's stdout
// and stderr go to consume's stderr, so consume's stdout stays empty. consume stops after
// --max messages were handled, or once nothing arrived for --timeout while no handler ran;
// SIGINT/SIGTERM stop it the same way (handlers in progress finish, offsets are committed).
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerClient } from '../client/client.js';
import type { StartPosition } from '../client/consumer.js';
import { type ConsumeStatus, PushConsumer, type PushMessage } from '../client/push-consumer.js';
import { assert } from '../util/assert.js';

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
}

/** How often the stop conditions are looked at. */
const CHECK_INTERVAL_MS = 50;
const MAX_POLL_WAIT_MS = 1_000;

export async function consumeWithExec(client: LedgerClient, options: ExecOptions): Promise<void> {
  const consumer = new PushConsumer(client, {
    topic: options.topic, group: options.group, from: options.from, consumeConcurrency: options.concurrency,
    pollWaitMs: Math.min(options.timeoutMs, MAX_POLL_WAIT_MS),
    ...(options.max === undefined ? {} : { maxDeliveredMessages: options.max }),
    ...(options.consumerId === undefined ? {} : { consumerId: options.consumerId }),
    onError: (error, what) => {
      process.stderr.write(`consume: ${what}: ${error instanceof Error ? error.message : String(error)}\n`);
    },
  }, (messages) => {
    assert(messages.length === 1, 'the command handles one message at a time (batchSize 1)');
    return runHandler(options.command, messages[0]!);
  });
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  try {
    await consumer.start();
    await untilDone(consumer, options.timeoutMs, () => interrupted);
    await consumer.stop();
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
  }
}

/** Resolves once --max messages were handled, or nothing was handed out for timeoutMs while no handler ran. */
async function untilDone(consumer: PushConsumer, timeoutMs: number, interrupted: () => boolean): Promise<void> {
  let lastActiveMs = performance.now(); // monotonic: --timeout is a duration
  let delivered = 0;
  while (!interrupted() && !consumer.deliveredAll()) {
    const stats = consumer.stats();
    if (stats.runningBatches > 0 || stats.deliveredMessages !== delivered) lastActiveMs = performance.now();
    delivered = stats.deliveredMessages;
    if (performance.now() - lastActiveMs >= timeoutMs) return;
    await sleep(CHECK_INTERVAL_MS);
  }
}

/** Runs the command for one message: exit 0 → SUCCESS. */
function runHandler(command: string, message: PushMessage): Promise<ConsumeStatus> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        LMQ_MSG_ID: message.msgId,
        LMQ_RECONSUME_TIMES: String(message.reconsumeTimes),
        LMQ_TOPIC: message.topic,
        LMQ_QUEUE: String(message.queueId),
        LMQ_OFFSET: String(message.offset),
      },
    });
    // Written as it comes (stderr is synchronous for pipes and files), not piped: twenty
    // handlers piped into one stream would pile listeners on it.
    child.stdout.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    // A command that does not read its stdin closes it early: that is not a failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(message.body);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) return resolve('SUCCESS');
      process.stderr.write(`consume: handler for ${message.msgId} (${message.topic}/${message.queueId}@${message.offset}) ${signal === null ? `exited with ${code}` : `was killed by ${signal}`}: reconsume later\n`);
      resolve('RECONSUME_LATER');
    });
  });
}
