// `ledgermq produce --transaction commit|rollback|none --producer-group G`: every message of the
// command (stdin lines, --body or --count) forms one transaction. The messages are stored as
// half messages (invisible), then the transaction is committed or rolled back and the command
// exits 0 once that end is applied; `none` exits once the half messages are stored and leaves
// the transaction open, as a producer that crashed would — its group's check-backs decide it
// (`txcheck`), or the leader rolls it back after transaction.maxChecks. The messages are read
// and checked before the first is sent, so a transaction too large is exit 2 with nothing stored.
import type { LedgerClient } from '../client/client.js';
import type { OutgoingMessage } from '../client/producer.js';
import { type HalfSendResult, TransactionProducer } from '../client/transaction.js';
import { isName, LIMITS, NAME_RULE } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import type { ProduceOptions } from './produce.js';

export const TRANSACTION_MODES = ['commit', 'rollback', 'none'] as const;
export type TransactionMode = (typeof TRANSACTION_MODES)[number];

export interface TransactionRequest {
  readonly mode: TransactionMode;
  readonly producerGroup: string;
}

/** The transaction flags, or exit 2 naming what is missing or does not go with them. */
export function checkTransactionOptions(options: ProduceOptions): TransactionRequest {
  const { transaction: mode, producerGroup } = options;
  if (mode === undefined) throw new LmqError('LMQ_BAD_INPUT', '--producer-group goes with --transaction commit|rollback|none');
  if (producerGroup === undefined) throw new LmqError('LMQ_BAD_INPUT', '--transaction needs --producer-group G (the group whose producers answer its check-backs)');
  if (!isName(producerGroup)) throw new LmqError('LMQ_BAD_INPUT', `--producer-group "${String(producerGroup).slice(0, 200)}" must be 1 to ${LIMITS.maxNameLength} characters and ${NAME_RULE}`);
  if (options.delayLevel !== undefined || options.delayMs !== undefined || options.deliverAt !== undefined) {
    throw new LmqError('LMQ_BAD_INPUT', 'a transactional message cannot be delayed: drop --delay-level, --delay-ms and --deliver-at');
  }
  if (options.batch > 1 || options.concurrency > 1) throw new LmqError('LMQ_BAD_INPUT', '--transaction sends one transaction, one message after another: --batch and --concurrency do not apply');
  return { mode, producerGroup };
}

/** Sends the messages as one transaction and ends it as asked; prints one line per message with --json. */
export async function sendTransaction(client: LedgerClient, request: TransactionRequest, source: AsyncIterable<OutgoingMessage>, options: ProduceOptions): Promise<void> {
  const messages = await collect(source);
  const producer = new TransactionProducer(client, { producerGroup: request.producerGroup, timeoutMs: options.timeout });
  const tx = producer.beginTransaction();
  const sent: HalfSendResult[] = [];
  for (const message of messages) sent.push(await tx.send(options.topic, message, options.queueByKey ? 'byKey' : 'roundRobin'));
  const end = request.mode === 'none' ? null : request.mode === 'commit' ? await tx.commit() : await tx.rollback();
  const outcome = end?.outcome ?? 'open';
  if (options.json) {
    sent.forEach((half, i) => {
      const offset = end?.outcome === 'commit' ? end.placed[i]!.offset : null;
      process.stdout.write(`${JSON.stringify({ msgId: half.msgId, queue: half.queueId, offset, txId: tx.txId, outcome })}\n`);
    });
    return;
  }
  const done = end === null ? `stored as half messages of open transaction ${tx.txId} (check-backs of producer group ${request.producerGroup} decide it)` : `${end.outcome === 'commit' ? 'committed' : 'rolled back'} in transaction ${tx.txId}`;
  process.stdout.write(`${sent.length} messages ${done}\n`);
}

/** Every message, checked against what one transaction holds before anything is sent. */
async function collect(source: AsyncIterable<OutgoingMessage>): Promise<OutgoingMessage[]> {
  const messages: OutgoingMessage[] = [];
  let bodyBytes = 0;
  for await (const message of source) {
    messages.push(message);
    bodyBytes += message.body.byteLength;
    if (messages.length > LIMITS.maxMessagesPerProduce || bodyBytes > LIMITS.maxProduceBodyBytes) {
      throw new LmqError('LMQ_BAD_INPUT', `one transaction holds at most ${LIMITS.maxMessagesPerProduce} messages and ${LIMITS.maxProduceBodyBytes} body bytes; split the input into several transactions`);
    }
  }
  if (messages.length === 0) throw new LmqError('LMQ_BAD_INPUT', 'a transaction needs at least one message (stdin was empty)');
  return messages;
}
