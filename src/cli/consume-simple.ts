// `ledgermq consume … --simple`: a simple consumer (src/client/simple-consumer.ts). Each
// received message is printed and then acked; with --exec, CMD handles it (exec-handler.ts:
// body on stdin, LMQ_MSG_ID, LMQ_RECONSUME_TIMES = deliveryAttempt - 1, LMQ_TOPIC, LMQ_QUEUE,
// LMQ_OFFSET) and exit 0 acks it, anything else leaves it invisible until its duration ends,
// when it is received again (after maxReconsumeTimes + 1 deliveries the broker dead-letters
// it). A receipt that expired meanwhile (the message went to another consumer) is one line on
// stderr, not a command error. Stops after --max messages, when nothing arrived for --timeout
// (handlers' time not counted), or on SIGINT/SIGTERM, after the message in hand.
import type { LedgerClient } from '../client/client.js';
import { SimpleConsumer, type SimpleMessage } from '../client/simple-consumer.js';
import { LIMITS } from '../protocol/index.js';
import { runHandler } from './exec-handler.js';

export interface SimpleConsumeOptions {
  readonly topic: string;
  readonly group: string;
  readonly clientId: string;
  readonly invisibleDurationMs: number;
  readonly max: number | undefined;
  readonly timeoutMs: number;
  readonly json: boolean;
  readonly command: string | undefined;
}

/** Longest one receive waits on the broker: short, so a signal is answered soon. */
const MAX_RECEIVE_WAIT_MS = 2_000;

export async function consumeSimple(client: LedgerClient, options: SimpleConsumeOptions): Promise<void> {
  const consumer = new SimpleConsumer(client, { group: options.group, clientId: options.clientId, awaitDurationMs: MAX_RECEIVE_WAIT_MS }).subscribe(options.topic);
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
  try {
    let handled = 0;
    let lastActiveMs = performance.now(); // monotonic: --timeout is a duration
    while (!interrupted && (options.max === undefined || handled < options.max)) {
      const leftMs = options.timeoutMs - (performance.now() - lastActiveMs);
      if (leftMs <= 0) break;
      // Never more than --max asks for: a message received and not handled would stay invisible.
      const max = Math.min(LIMITS.maxReceiveMessages, (options.max ?? Number.MAX_SAFE_INTEGER) - handled);
      const batch = await consumer.receive(max, options.invisibleDurationMs, { waitMs: Math.ceil(Math.min(leftMs, MAX_RECEIVE_WAIT_MS)) });
      if (batch.length === 0) continue;
      if (options.command === undefined) await printAndAck(consumer, batch, options.json);
      else for (const message of batch) await handleAndAck(consumer, message, options.command);
      handled += batch.length;
      lastActiveMs = performance.now();
    }
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
  }
}

async function printAndAck(consumer: SimpleConsumer, batch: readonly SimpleMessage[], json: boolean): Promise<void> {
  for (const m of batch) process.stdout.write(format(m, json));
  for (const receipt of await consumer.ackAll(batch)) warnExpired(batch.find((m) => m.receipt === receipt)!);
}

async function handleAndAck(consumer: SimpleConsumer, m: SimpleMessage, command: string): Promise<void> {
  const handled = { msgId: m.msgId, reconsumeTimes: m.deliveryAttempt - 1, topic: m.topic, queueId: m.queueId, offset: m.offset, body: m.body };
  if (!(await runHandler(command, handled, `left invisible until ${new Date(m.invisibleUntilMs).toISOString()}, then received again`))) return;
  if ((await consumer.ackAll([m])).length > 0) warnExpired(m);
}

function warnExpired(m: SimpleMessage): void {
  process.stderr.write(`consume: ${m.msgId} (${m.topic}/${m.queueId}@${m.offset}) was not acked: its invisible duration ran out and it was delivered again\n`);
}

function format(m: SimpleMessage, json: boolean): string {
  const body = Buffer.from(m.body).toString('utf8');
  if (!json) return `${body}\n`;
  const line = { queue: m.queueId, offset: m.offset, msgId: m.msgId, key: m.key ?? null, tag: m.tag ?? null, body, topic: m.topic, receipt: m.receipt, deliveryAttempt: m.deliveryAttempt };
  return `${JSON.stringify(line)}\n`;
}
