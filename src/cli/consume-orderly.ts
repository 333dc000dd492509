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
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError } from 'commander';
import type { LedgerClient } from '../client/client.js';
import type { StartPosition } from '../client/consumer.js';
import { OrderlyConsumer, type OrderlyMessage, type OrderlyStatus } from '../client/orderly-consumer.js';

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

/** How often the stop conditions are looked at. */
const CHECK_INTERVAL_MS = 50;
const MAX_POLL_WAIT_MS = 1_000;

/** The checks of the flags that --orderly combines with; exit 2 naming the clash. */
export function orderlyCommand(options: OrderlyCliOptions): string {
  if (options.exec === undefined) throw new InvalidArgumentError('--orderly needs --exec CMD (the command that handles each message)');
  if (options.broadcast) throw new InvalidArgumentError('--orderly shares the queues among the group (clustering mode); it does not combine with --broadcast');
  if (options.json) throw new InvalidArgumentError('--json does not apply to --exec (the command handles each message; its output goes to stderr)');
  return options.exec;
}

export async function consumeOrderly(client: LedgerClient, options: OrderlyCliOptions, from: StartPosition, consumerId: string): Promise<void> {
  const command = orderlyCommand(options);
  const consumer = new OrderlyConsumer(client, {
    topic: options.topic, group: options.group, consumerId, from,
    pollWaitMs: Math.min(options.timeout, MAX_POLL_WAIT_MS),
    ...(options.max === undefined ? {} : { maxMessages: options.max }),
    ...(options.maxReconsumeTimes === undefined ? {} : { maxReconsumeTimes: options.maxReconsumeTimes }),
    ...(options.lockLeaseMs === undefined ? {} : { lockLeaseMs: options.lockLeaseMs }),
    onError: (error, what) => {
      process.stderr.write(`consume: ${what}: ${error instanceof Error ? error.message : String(error)}\n`);
    },
  }, (messages, context) => runHandler(command, messages[0]!, context.signal));
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  try {
    await consumer.start();
    await untilDone(consumer, options.timeout, () => interrupted);
    await consumer.stop();
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
  }
}

/** Resolves once --max messages were finished, or no command ran and none finished for timeoutMs. */
async function untilDone(consumer: OrderlyConsumer, timeoutMs: number, interrupted: () => boolean): Promise<void> {
  let lastActiveMs = performance.now(); // monotonic: --timeout is a duration
  let finished = 0;
  while (!interrupted() && !consumer.finishedAll()) {
    const stats = consumer.stats();
    if (stats.runningListeners > 0 || stats.finishedMessages !== finished) lastActiveMs = performance.now();
    finished = stats.finishedMessages;
    if (performance.now() - lastActiveMs >= timeoutMs) return;
    await sleep(CHECK_INTERVAL_MS);
  }
}

/** Runs the command for one message: exit 0 → SUCCESS; killed (SIGKILL) when `signal` aborts. */
function runHandler(command: string, message: OrderlyMessage, signal: AbortSignal): Promise<OrderlyStatus> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a kill reaches whatever CMD started too.
      detached: true,
      env: {
        ...process.env,
        LMQ_MSG_ID: message.msgId,
        LMQ_RECONSUME_TIMES: String(message.reconsumeTimes),
        LMQ_TOPIC: message.topic,
        LMQ_QUEUE: String(message.queueId),
        LMQ_OFFSET: String(message.offset),
      },
    });
    // The lock is lost: the command must not go on while another consumer may take the queue.
    const kill = () => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    };
    signal.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    // A command that does not read its stdin closes it early: that is not a failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(message.body);
    child.once('error', (error) => {
      signal.removeEventListener('abort', kill);
      reject(error);
    });
    child.once('close', (code, exitSignal) => {
      signal.removeEventListener('abort', kill);
      if (code === 0) return resolve('SUCCESS');
      const how = signal.aborted ? 'was killed: this consumer lost the queue\'s lock' : exitSignal === null ? `exited with ${code}` : `was killed by ${exitSignal}`;
      process.stderr.write(`consume: handler for ${message.msgId} (${message.topic}/${message.queueId}@${message.offset}) ${how}: suspend\n`);
      resolve('SUSPEND');
    });
  });
}
