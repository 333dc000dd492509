// `ledgermq consume`: prints messages of a topic for a consumer group and commits the group's
// offsets after printing. Several consume processes of one group share the topic's queues
// (each queue read by one of them). Exits after --max messages, or when nothing arrived for
// --timeout. With --exec, a command handles each message instead (consume-exec.ts).
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import { type ConsumedMessage, PullConsumer } from '../client/consumer.js';
import type { LedgerClient } from '../client/client.js';
import { DEFAULT_PUSH_CONSUMER_OPTIONS } from '../client/push-consumer.js';
import { withClient } from './connect.js';
import { consumeWithExec } from './consume-exec.js';
import { consumeOrderly, orderlyCommand } from './consume-orderly.js';
import { consumeSimple } from './consume-simple.js';
import { loadClientConfig } from '../config/client-config.js';
import { LIMITS } from '../protocol/index.js';
import { compileFilter, type SubscriptionFilter } from '../filter/index.js';
import { type ConnectOptions, parseIntOption, parseTimeOption, withClusterOptions } from './options.js';

interface ConsumeOptions extends ConnectOptions {
  topic: string;
  group: string;
  max?: number;
  timeout: number;
  from: 'first' | 'last';
  fromTime?: number;
  broadcast?: boolean;
  consumerId?: string;
  json?: boolean;
  exec?: string;
  concurrency?: number;
  orderly?: boolean;
  maxReconsumeTimes?: number;
  lockLeaseMs?: number;
  simple?: boolean;
  invisibleMs?: number;
  filterTag?: string;
  filterSql?: string;
}

/** Bounds of one pull per queue. */
const MAX_MESSAGES_PER_PULL = 256;
const MAX_BYTES_PER_PULL = 4 * 1024 * 1024;
/** How often a consumer tells the leader it is alive (the session times out after 3 s). */
const HEARTBEAT_INTERVAL_MS = 1000;

export function registerConsume(program: Command): void {
  withClusterOptions(program.command('consume'))
    .description('print messages for a consumer group, committing its offsets after printing')
    .requiredOption('--topic <topic>', 'topic to read')
    .requiredOption('--group <group>', 'consumer group (its committed offsets are where reading resumes)')
    .option('--max <n>', 'exit after this many messages', parseIntOption('--max', 1, 1_000_000_000))
    .option('--timeout <ms>', 'exit when nothing arrived for this long', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .addOption(new Option('--from <position>', 'where a group without committed offsets starts').choices(['first', 'last']).default('first'))
    .option('--from-time <time>', 'start a group without committed offsets at this time (ISO date or epoch ms)', parseTimeOption('--from-time'))
    .option('--broadcast', 'broadcast mode: this consumer reads every queue, with offsets of its own (--consumer-id)')
    .option('--consumer-id <id>', 'stable consumer identity (broadcast offsets are kept per consumer id)')
    .option('--json', 'one JSON object per message')
    .option('--exec <cmd>', 'run CMD through sh -c once per message (body on stdin; LMQ_MSG_ID, LMQ_RECONSUME_TIMES, LMQ_TOPIC, LMQ_QUEUE, LMQ_OFFSET); exit 0 = success, else reconsume later (with --orderly: suspend)')
    .option('--concurrency <n>', `with --exec: handlers running at once (default ${DEFAULT_PUSH_CONSUMER_OPTIONS.consumeConcurrency})`, parseIntOption('--concurrency', 1, 1024))
    .option('--orderly', 'with --exec: one command per queue at a time, holding the queue\'s lock; a failure suspends the queue and retries the same message')
    .option('--max-reconsume-times <n>', 'with --orderly: suspended deliveries before a message goes to the DLQ (default: the config\'s consumer.maxOrderlyReconsumeTimes, else no limit)', parseIntOption('--max-reconsume-times', 0, LIMITS.maxReconsumeTimes))
    .option('--lock-lease-ms <ms>', 'with --orderly: lease of a queue lock, renewed every third of it; a consumer killed without releasing holds its queues this long (default 60000)', parseIntOption('--lock-lease-ms', LIMITS.minLockLeaseMs, LIMITS.maxLockLeaseMs))
    .option('--simple', 'simple consumer (RocketMQ 5 receive/ack): each message is invisible to the group for --invisible-ms once received, and acked after printing (with --exec: when CMD exits 0)')
    .option('--invisible-ms <ms>', `with --simple: how long a received message stays invisible before it is delivered again (default ${DEFAULT_INVISIBLE_MS})`, parseIntOption('--invisible-ms', LIMITS.minInvisibleDurationMs, LIMITS.maxInvisibleDurationMs))
    .addOption(new Option('--filter-tag <expr>', 'only messages whose tag is one of these: "TagA || TagB" (or "*"); the broker skips the others, and the group commits past them').conflicts('filterSql'))
    .addOption(new Option('--filter-sql <expr>', 'only messages whose user properties match this SQL92 condition, e.g. "a > 5 AND b = \'abc\'"; the broker skips the others, and the group commits past them'))
    .action((options: ConsumeOptions) => runConsume(options));
}

const DEFAULT_INVISIBLE_MS = 30_000;

/** The simple consumer takes no positions, modes or orderly settings: the broker hands messages out. */
function runSimple(options: ConsumeOptions): Promise<void> {
  const refused: [string, boolean][] = [
    ['--orderly', options.orderly === true], ['--broadcast', options.broadcast === true], ['--concurrency', options.concurrency !== undefined],
    ['--from last', options.from !== 'first'], ['--from-time', options.fromTime !== undefined],
    ['--max-reconsume-times', options.maxReconsumeTimes !== undefined], ['--lock-lease-ms', options.lockLeaseMs !== undefined],
    ['--filter-tag', options.filterTag !== undefined], ['--filter-sql', options.filterSql !== undefined],
  ];
  for (const [flag, set] of refused) {
    if (set) throw new InvalidArgumentError(`${flag} does not apply to --simple (the broker hands out each message not yet acked by the group, from the first offset of a new group)`);
  }
  const simple = {
    topic: options.topic, group: options.group, clientId: consumerIdFor(options), invisibleDurationMs: options.invisibleMs ?? DEFAULT_INVISIBLE_MS,
    max: options.max, timeoutMs: options.timeout, json: options.json === true, command: options.exec,
  };
  if (simple.command !== undefined && simple.json) throw new InvalidArgumentError('--json does not apply to --exec (the command handles each message; its output goes to stderr)');
  return withClient(options, Math.max(options.timeout, 10_000), (client) => consumeSimple(client, simple));
}

/**
 * The subscription's filter, compiled here so a malformed expression is exit 2 (naming the
 * character it goes wrong at) before anything connects; the broker checks it again.
 */
function filterFor(options: ConsumeOptions): SubscriptionFilter | undefined {
  const filter: SubscriptionFilter | undefined =
    options.filterTag !== undefined ? { type: 'tag', expression: options.filterTag }
      : options.filterSql !== undefined ? { type: 'sql', expression: options.filterSql } : undefined;
  if (filter !== undefined) compileFilter(filter);
  return filter;
}

async function runConsume(options: ConsumeOptions): Promise<void> {
  if (options.simple) return runSimple(options);
  if (options.invisibleMs !== undefined) throw new InvalidArgumentError('--invisible-ms needs --simple');
  const filter = filterFor(options);
  if (options.orderly) {
    if (options.concurrency !== undefined) throw new InvalidArgumentError('--concurrency does not apply to --orderly (one command per queue at a time)');
    orderlyCommand(options); // bad flags are exit 2 before connecting
    const consumerId = consumerIdFor(options);
    // The flag wins; else the config's consumer.maxOrderlyReconsumeTimes; else no limit.
    const maxReconsumeTimes = options.maxReconsumeTimes ?? (await loadClientConfig(options.config)).consumer.maxOrderlyReconsumeTimes;
    const orderly = maxReconsumeTimes === undefined ? options : { ...options, maxReconsumeTimes };
    await withClient(options, Math.max(options.timeout, 10_000), (client) => consumeOrderly(client, orderly, startFor(options), consumerId, filter));
    return;
  }
  for (const [flag, set] of [['--max-reconsume-times', options.maxReconsumeTimes], ['--lock-lease-ms', options.lockLeaseMs]] as const) {
    if (set !== undefined) throw new InvalidArgumentError(`${flag} needs --orderly`);
  }
  if (options.exec === undefined) {
    if (options.concurrency !== undefined) throw new InvalidArgumentError('--concurrency needs --exec');
    await withClient(options, Math.max(options.timeout, 10_000), (client) => consumeUntilDone(client, options, filter));
    return;
  }
  // The handlers' output goes to stderr and nothing else is printed: there is nothing for --json to shape.
  if (options.json) throw new InvalidArgumentError('--json does not apply to --exec (the command handles each message; its output goes to stderr)');
  const command = options.exec;
  const consumerId = consumerIdFor(options);
  await withClient(options, Math.max(options.timeout, 10_000), (client) => consumeWithExec(client, {
    command, topic: options.topic, group: groupFor(options, consumerId), from: startFor(options), concurrency: options.concurrency ?? DEFAULT_PUSH_CONSUMER_OPTIONS.consumeConcurrency,
    max: options.max, timeoutMs: options.timeout, consumerId: options.broadcast ? undefined : consumerId, filter,
  }));
}

function consumerIdFor(options: ConsumeOptions): string {
  return options.consumerId ?? (options.broadcast ? hostname() : `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`);
}

/**
 * Broadcast mode (RocketMQ BROADCASTING): every consumer reads everything and keeps its own
 * position, here committed under a per-consumer name so it survives restarts; clustering mode:
 * the group's consume processes share the queues.
 */
function groupFor(options: ConsumeOptions, consumerId: string): string {
  return options.broadcast ? `${options.group}%${consumerId}` : options.group;
}

function startFor(options: ConsumeOptions) {
  return options.fromTime === undefined ? options.from : { timestampMs: options.fromTime };
}

/** Polls, prints and commits until --max messages were printed or nothing came for --timeout. */
async function consumeUntilDone(client: LedgerClient, options: ConsumeOptions, filter: SubscriptionFilter | undefined): Promise<void> {
  const consumerId = consumerIdFor(options);
  const consumer = new PullConsumer(client, {
    topic: options.topic,
    group: groupFor(options, consumerId),
    from: startFor(options),
    pollWaitMs: Math.min(options.timeout, 1000), maxMessagesPerPull: Math.min(MAX_MESSAGES_PER_PULL, options.max ?? MAX_MESSAGES_PER_PULL), maxBytesPerPull: MAX_BYTES_PER_PULL,
    ...(options.broadcast ? {} : { rebalance: { consumerId, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS } }),
    ...(filter === undefined ? {} : { filter }),
  });
  await consumer.start();
  let printed = 0;
  let lastMessageAt = performance.now(); // monotonic: --timeout is a duration
  let hadMessages = false;
  while (options.max === undefined || printed < options.max) {
    if (performance.now() - lastMessageAt >= options.timeout) break;
    const batch = await consumer.poll(!hadMessages);
    hadMessages = batch.length > 0;
    if (!hadMessages) {
      // A filter skipped messages: commit past them although none was printed (lag reaches 0).
      if (consumer.movedSinceCommit()) await consumer.commit();
      continue;
    }
    lastMessageAt = performance.now();
    const room = options.max === undefined ? batch.length : options.max - printed;
    consumer.giveBack(batch.slice(room));
    for (const m of batch.slice(0, room)) process.stdout.write(format(m, options.json === true));
    printed += Math.min(room, batch.length);
    await consumer.commit();
  }
  await consumer.close();
}

function format(m: ConsumedMessage, json: boolean): string {
  const body = Buffer.from(m.body).toString('utf8');
  if (!json) return `${body}\n`;
  return `${JSON.stringify({ queue: m.queueId, offset: m.offset, msgId: m.msgId, key: m.key ?? null, tag: m.tag ?? null, body })}\n`;
}
