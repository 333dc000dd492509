// `ledgermq produce`: sends messages and prints each acknowledgement once it is acknowledged
// under the cluster's quorum mode. Bodies come from --body, --count/--size, or stdin (one
// per line, or JSON objects with --jsonl). A leader change is retried with the same message
// identity (deduplicated by the broker) until --timeout, then exit 3.
import { type Command, Option } from 'commander';
import { createInterface } from 'node:readline';
import { Producer, type OutgoingMessage } from '../client/producer.js';
import { LIMITS } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import { withClient } from './connect.js';
import { type ConnectOptions, parseIntOption, parseTimeOption, withClusterOptions } from './options.js';
import { checkTransactionOptions, TRANSACTION_MODES, type TransactionMode, sendTransaction } from './produce-tx.js';

export interface ProduceOptions extends ConnectOptions {
  topic: string;
  body?: string;
  count?: number;
  size: number;
  key?: string;
  tag?: string;
  queueByKey?: boolean;
  jsonl?: boolean;
  json?: boolean;
  timeout: number;
  concurrency: number;
  batch: number;
  delayLevel?: number;
  delayMs?: number;
  deliverAt?: number;
  transaction?: TransactionMode;
  producerGroup?: string;
}

export function registerProduce(program: Command): void {
  withClusterOptions(program.command('produce'))
    .description('send messages (from --body, --count/--size, or stdin lines)')
    .requiredOption('--topic <topic>', 'topic to send to')
    .option('--body <text>', 'send one message with this body')
    .option('--count <n>', 'send N generated messages', parseIntOption('--count', 1, 1_000_000_000))
    .option('--size <bytes>', 'body size of generated messages', parseIntOption('--size', 1, LIMITS.maxProduceBodyBytes), 256)
    .option('--key <key>', 'business key (indexed; with --queue-by-key it picks the queue)')
    .option('--tag <tag>', 'message tag')
    .option('--queue-by-key', 'choose the queue by hashing the key, so one key keeps its order in one queue')
    .option('--jsonl', 'stdin lines are JSON objects {"body","key","tag","properties"}')
    .option('--json', 'print {"msgId","queue","offset"} per acknowledged message (a delayed one: "offset":null and "deliverAtMs")')
    .option('--timeout <ms>', 'keep retrying one message this long, then exit 3', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .option('--concurrency <n>', 'sends in flight at once; sends that wait leave together in one request (order per queue is kept)', parseIntOption('--concurrency', 1, 4096), 1)
    .option('--batch <n>', 'messages per explicit batch: a request of its own, one log entry, one queue, stored all or none', parseIntOption('--batch', 1, LIMITS.maxMessagesPerProduce), 1)
    .option('--delay-level <n>', "deliver after the cluster's delay level N (delay.levels, from 1)", parseIntOption('--delay-level', 1, LIMITS.maxDelayLevels))
    .option('--delay-ms <ms>', 'deliver this long after the send (up to 40 days)', parseIntOption('--delay-ms', 0, LIMITS.maxDelayMs))
    .option('--deliver-at <time>', 'deliver at this time: ISO-8601 or epoch ms, up to 40 days ahead', parseTimeOption('--deliver-at'))
    .addOption(new Option('--transaction <end>', 'send every message as one transaction, then commit it, roll it back, or (none) leave it open for check-backs').choices(TRANSACTION_MODES))
    .option('--producer-group <group>', 'the transaction\'s producer group (whose producers and txcheck answer its check-backs)')
    .action((options: ProduceOptions) => runProduce(options));
}

async function runProduce(options: ProduceOptions): Promise<void> {
  if (options.body !== undefined && options.count !== undefined) throw new LmqError('LMQ_BAD_INPUT', 'use either --body or --count, not both');
  checkDelayOptions(options);
  if (options.transaction !== undefined || options.producerGroup !== undefined) {
    const transaction = checkTransactionOptions(options);
    await withClient(options, options.timeout, (client) => sendTransaction(client, transaction, messagesFrom(options), options));
    return;
  }
  // Explicit batches are never combined: --concurrency of them are requests in flight, as before.
  const producerOptions = options.batch > 1 ? { maxInflightRequests: options.concurrency } : {};
  const counts = await withClient(options, options.timeout, (client) => sendAll(new Producer(client, options.timeout, producerOptions, (message) => process.stderr.write(`produce: ${message}\n`)), options));
  if (!options.json) process.stdout.write(`${counts.acknowledged} messages acknowledged${counts.duplicates ? ` (${counts.duplicates} were retries the broker had already stored)` : ''}\n`);
}

/**
 * Sends every message, at most --concurrency sends in flight: single sends (the producer
 * combines those that wait), or explicit batches of --batch.
 */
async function sendAll(producer: Producer, options: ProduceOptions): Promise<{ acknowledged: number; duplicates: number }> {
  const counts = { acknowledged: 0, duplicates: 0 };
  const inFlight = new Set<Promise<void>>();
  let firstError: unknown = null;
  const selector = options.queueByKey ? 'byKey' : 'roundRobin';
  const send = async (batch: OutgoingMessage[]) => {
    const results = options.batch === 1 ? [await producer.send(options.topic, batch[0]!, selector)] : await producer.sendBatch(options.topic, batch, selector);
    for (const result of results) {
      counts.acknowledged++;
      if (result.duplicate) counts.duplicates++;
      if (options.json) {
        const due = result.deliverAtMs === undefined ? {} : { deliverAtMs: result.deliverAtMs };
        process.stdout.write(`${JSON.stringify({ msgId: result.msgId, queue: result.queueId, offset: result.offset, ...due })}\n`);
      }
    }
  };
  const dispatch = async (batch: OutgoingMessage[]) => {
    if (firstError !== null) throw firstError; // stop sending after the first failure
    // Each send's failure is caught at once (no unhandled rejection) and ends the command.
    const pending: Promise<void> = send(batch)
      .catch((error: unknown) => {
        firstError ??= error;
      })
      .finally(() => inFlight.delete(pending));
    inFlight.add(pending);
    if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
  };
  let batch: OutgoingMessage[] = [];
  for await (const message of messagesFrom(options)) {
    // One batch holds one key at most, so --queue-by-key keeps every key in its own queue.
    if (batch.length > 0 && (batch.length >= options.batch || batch[0]!.key !== message.key)) {
      await dispatch(batch);
      batch = [];
    }
    batch.push(message);
  }
  if (batch.length > 0) await dispatch(batch);
  await Promise.all(inFlight);
  if (firstError !== null) throw firstError;
  return counts;
}

/** At most one of the delay flags; an absolute time more than 40 days ahead is bad input (exit 2). */
function checkDelayOptions(options: ProduceOptions): void {
  const given = (['delayLevel', 'delayMs', 'deliverAt'] as const).filter((name) => options[name] !== undefined);
  if (given.length > 1) throw new LmqError('LMQ_BAD_INPUT', 'use one of --delay-level, --delay-ms and --deliver-at, not several');
  if (options.deliverAt !== undefined && options.deliverAt - Date.now() > LIMITS.maxDelayMs) {
    throw new LmqError('LMQ_BAD_INPUT', `--deliver-at ${new Date(options.deliverAt).toISOString()} is more than 40 days ahead (RocketMQ 5's timer limit)`);
  }
}

/** The delay flags as message fields; --delay-ms counts from each message's send. */
function delayOf(options: ProduceOptions): Pick<OutgoingMessage, 'deliverAtMs' | 'delayLevel'> {
  if (options.delayLevel !== undefined) return { delayLevel: options.delayLevel };
  if (options.delayMs !== undefined) return { deliverAtMs: Date.now() + options.delayMs };
  if (options.deliverAt !== undefined) return { deliverAtMs: options.deliverAt };
  return {};
}

export async function* messagesFrom(options: ProduceOptions): AsyncGenerator<OutgoingMessage> {
  for await (const message of userMessagesFrom(options)) yield { ...message, ...delayOf(options) };
}

async function* userMessagesFrom(options: ProduceOptions): AsyncGenerator<OutgoingMessage> {
  const common = { ...(options.key ? { key: options.key } : {}), ...(options.tag ? { tag: options.tag } : {}) };
  if (options.body !== undefined) {
    yield { body: Buffer.from(options.body), ...common };
    return;
  }
  if (options.count !== undefined) {
    for (let i = 0; i < options.count; i++) yield { body: Buffer.from(`msg-${i}-`.padEnd(options.size, 'x').slice(0, options.size)), ...common };
    return;
  }
  let line = 0;
  for await (const text of createInterface({ input: process.stdin })) {
    line++;
    if (!options.jsonl) {
      yield { body: Buffer.from(text), ...common };
      continue;
    }
    if (text.trim() === '') continue;
    yield parseJsonlMessage(text, line, common);
  }
}

function parseJsonlMessage(text: string, line: number, defaults: { key?: string; tag?: string }): OutgoingMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new LmqError('LMQ_BAD_INPUT', `stdin line ${line} is not JSON`);
  }
  const m = raw as Record<string, unknown>;
  if (typeof m !== 'object' || m === null || typeof m.body !== 'string') throw new LmqError('LMQ_BAD_INPUT', `stdin line ${line}: "body" must be a string`);
  for (const field of ['key', 'tag'] as const) {
    if (m[field] !== undefined && typeof m[field] !== 'string') throw new LmqError('LMQ_BAD_INPUT', `stdin line ${line}: "${field}" must be a string`);
  }
  const properties = m.properties;
  if (properties !== undefined && (typeof properties !== 'object' || properties === null || Object.values(properties).some((v) => typeof v !== 'string'))) {
    throw new LmqError('LMQ_BAD_INPUT', `stdin line ${line}: "properties" must be an object of strings`);
  }
  const key = (m.key as string | undefined) ?? defaults.key;
  const tag = (m.tag as string | undefined) ?? defaults.tag;
  return { body: Buffer.from(m.body), ...(key ? { key } : {}), ...(tag ? { tag } : {}), ...(properties ? { properties: properties as Record<string, string> } : {}) };
}
