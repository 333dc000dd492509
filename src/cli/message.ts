// `ledgermq message`: looks stored messages up by business key (within a topic) or by message
// id — RocketMQ's queryMsgByKey / queryMsgById — to find out whether a message was stored and
// where. Prints one line per message, oldest first; exits 1 when none is found, so a script
// can tell "stored" from "missing".
import type { Command } from 'commander';
import { LIMITS, type RequestOf, type StoredMessage } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import { withClient } from './connect.js';
import { type ConnectOptions, parseIntOption, withClusterOptions } from './options.js';

interface MessageOptions extends ConnectOptions {
  topic?: string;
  key?: string;
  msgId?: string;
  max: number;
  json?: boolean;
  timeout: number;
}

export function registerMessage(program: Command): void {
  withClusterOptions(program.command('message'))
    .description('look stored messages up by key (with --topic) or by message id')
    .option('--topic <topic>', 'topic to search by key')
    .option('--key <key>', 'business key the messages carry')
    .option('--msg-id <id>', 'message id (as printed by produce --json)')
    .option('--max <n>', 'messages to print at most (by key)', parseIntOption('--max', 1, LIMITS.maxLookupMessages), 32)
    .option('--json', 'one JSON object per message: {"topic","queue","offset","msgId","key","tag","storeTime","body"}')
    .option('--timeout <ms>', 'give up after this long without a leader (exit 3)', parseIntOption('--timeout', 1, 3_600_000), 10_000)
    .action((options: MessageOptions) => runMessage(options));
}

async function runMessage(options: MessageOptions): Promise<void> {
  const request = lookupRequest(options);
  const { messages } = await withClient(options, options.timeout, (client) => client.call(request, options.timeout));
  for (const message of messages) process.stdout.write(format(message, options.json === true));
  if (messages.length === 0) {
    const what = options.msgId !== undefined ? `with id "${options.msgId}"` : `with key "${options.key}" in topic "${options.topic}"`;
    process.stderr.write(`ledgermq: no stored message ${what}\n`);
    process.exitCode = 1;
  }
}

function lookupRequest(options: MessageOptions): RequestOf<'lookupByMsgId' | 'lookupByKey'> {
  if (options.msgId !== undefined) {
    if (options.key !== undefined || options.topic !== undefined) throw new LmqError('LMQ_BAD_INPUT', 'use either --msg-id, or --topic with --key, not both');
    return { op: 'lookupByMsgId', msgId: options.msgId };
  }
  if (options.key === undefined || options.topic === undefined) throw new LmqError('LMQ_BAD_INPUT', 'say what to look up: --topic T --key K, or --msg-id ID');
  return { op: 'lookupByKey', topic: options.topic, key: options.key, max: options.max };
}

function format(m: StoredMessage, json: boolean): string {
  const body = Buffer.from(m.body).toString('utf8');
  const storeTime = new Date(m.storeTimestampMs).toISOString();
  if (json) {
    return `${JSON.stringify({ topic: m.topic, queue: m.queueId, offset: m.offset, msgId: m.msgId, key: m.keys?.[0] ?? null, tag: m.tag ?? null, storeTime, body })}\n`;
  }
  return `${m.topic}/${m.queueId}@${m.offset} ${m.msgId} ${storeTime} ${body}\n`;
}
