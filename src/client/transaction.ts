// Transactional messages, the producer's side (RocketMQ's TransactionMQProducer): a
// transaction's sends are stored as half messages (durable, invisible to every consumer), and
// commit() makes all of them visible at once — at the commit's place in the log — or
// rollback() discards them. Every call is idempotent (the transaction's id and each message's
// msgId are fixed when it is begun or sent), so the client retries it across leader changes
// like a produce; a commit first resends any half send whose outcome it does not know (the
// same msgId: stored once), so what commits is exactly what was sent.
//
// Check-back: the broker asks the producer group about a transaction left open past
// transaction.checkAfterMs. There is no server push on the client port, so a producer with a
// `transactionChecker` holds a txChecks long poll at the leader; each check it receives runs
// the checker, and COMMIT or ROLLBACK ends the transaction (source 'check'); UNKNOWN leaves it
// for the next check (transaction.checkIntervalMs later, at most transaction.maxChecks, after
// which the broker rolls it back).
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LIMITS, type ProduceMessageWire, produceMessageProblem, type ResponseOf, type TxCheck, type TxOutcome } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError } from '../util/errors.js';
import type { LedgerClient } from './client.js';
import { hashKey, type OutgoingMessage, type QueueSelector } from './producer.js';

export type TransactionState = 'COMMIT' | 'ROLLBACK' | 'UNKNOWN';
/** Answers a check-back: did the local transaction of `check.txId` commit? A throw counts as UNKNOWN. */
export type TransactionChecker = (check: TxCheck) => TransactionState | Promise<TransactionState>;

export interface TransactionProducerOptions {
  readonly producerGroup: string;
  /** How long one call (a half send, an end) is retried across leader changes before it fails. */
  readonly timeoutMs: number;
  /** Given: the producer answers check-backs for its group while started (start()). */
  readonly transactionChecker?: TransactionChecker;
  /** How long one check-back poll is held at the leader (the broker caps it at 30 s). */
  readonly checkPollWaitMs: number;
  /**
   * Failures of the check-back loop, never thrown: a poll's (retried), or with `check` a
   * checker's throw (answered UNKNOWN) or the failed end of that check (its outcome is the
   * error's: indeterminate or not; the next check asks again).
   */
  readonly onError?: (error: unknown, check?: TxCheck) => void;
  /** After each answered check-back: the checker's answer and how the transaction ended (null: left open). */
  readonly onCheck?: (check: TxCheck, state: TransactionState, outcome: TxOutcome | null) => void;
}

export const DEFAULT_TRANSACTION_OPTIONS = Object.freeze({ timeoutMs: 10_000, checkPollWaitMs: 10_000 });

/** A stored half message: where it will be placed on commit. */
export interface HalfSendResult {
  readonly txId: string;
  readonly msgId: string;
  readonly topic: string;
  readonly queueId: number;
}

export interface TransactionEnd {
  readonly txId: string;
  readonly outcome: TxOutcome;
  /** A commit's messages where they were placed, in send order (offset null: not found by a later lookup); [] for a rollback. */
  readonly placed: readonly { msgId: string; topic: string; queueId: number; offset: number | null }[];
  /** The broker had this end already (a retry across a leader change). */
  readonly duplicate: boolean;
}

/** Between two failed check-back polls, growing to the max. */
const MIN_POLL_BACKOFF_MS = 100;
const MAX_POLL_BACKOFF_MS = 2_000;
/** A held poll's attempt may take its wait plus this before the client gives up on it. */
const POLL_MARGIN_MS = 3_000;

export class TransactionProducer {
  /** This producer's identity: transaction ids and msgIds start with it. */
  readonly producerId = randomBytes(8).toString('hex');
  private readonly options: TransactionProducerOptions;
  private serial = 0;
  private readonly queueCounts = new Map<string, number>();
  private stopped = false;
  private readonly abandon = new AbortController();
  private loop: Promise<void> | null = null;

  constructor(
    private readonly client: LedgerClient,
    options: Partial<TransactionProducerOptions> & Pick<TransactionProducerOptions, 'producerGroup'>,
  ) {
    this.options = Object.freeze({ ...DEFAULT_TRANSACTION_OPTIONS, ...options });
    for (const name of ['timeoutMs', 'checkPollWaitMs'] as const) {
      const value = this.options[name];
      if (!Number.isSafeInteger(value) || value < 1) throw new LmqError('LMQ_BAD_INPUT', `transaction producer option ${name} must be a positive whole number of ms, not ${value}`);
    }
  }

  get producerGroup(): string {
    return this.options.producerGroup;
  }

  /** A new transaction: nothing is stored until its first send. */
  beginTransaction(): Transaction {
    return new Transaction(this.client, this.options, this.producerId, `${this.producerId}-tx${++this.serial}`, (topic) => this.queueCount(topic));
  }

  /** Starts answering check-backs of the group (needs `transactionChecker`). */
  start(): void {
    assert(this.loop === null, 'a transaction producer starts once');
    if (this.options.transactionChecker === undefined) throw new LmqError('LMQ_BAD_INPUT', 'answering check-backs needs a transactionChecker');
    this.loop = this.pollChecks(this.options.transactionChecker);
  }

  /**
   * Stops answering check-backs; resolves once the loop ended. A poll held at the leader ends
   * within checkPollWaitMs, or at once when the client is closed.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abandon.abort();
    await this.loop;
  }

  private async pollChecks(checker: TransactionChecker): Promise<void> {
    const { producerGroup, checkPollWaitMs, timeoutMs } = this.options;
    let backoffMs = MIN_POLL_BACKOFF_MS;
    while (!this.stopped) {
      let checks: readonly TxCheck[];
      try {
        const request = { op: 'txChecks', producerGroup, clientId: this.producerId, waitMs: checkPollWaitMs } as const;
        ({ checks } = await this.client.call(request, timeoutMs + checkPollWaitMs, checkPollWaitMs + POLL_MARGIN_MS, this.abandon.signal));
        backoffMs = MIN_POLL_BACKOFF_MS;
      } catch (error) {
        if (this.stopped) return;
        this.options.onError?.(error);
        await sleep(backoffMs, undefined, { signal: this.abandon.signal }).catch(() => undefined);
        backoffMs = Math.min(2 * backoffMs, MAX_POLL_BACKOFF_MS);
        continue;
      }
      for (const check of checks) await this.answer(checker, check);
    }
  }

  private async answer(checker: TransactionChecker, check: TxCheck): Promise<void> {
    let state: TransactionState;
    try {
      state = await checker(check);
    } catch (error) {
      this.options.onError?.(error, check);
      state = 'UNKNOWN';
    }
    if (state === 'UNKNOWN') {
      this.options.onCheck?.(check, state, null);
      return;
    }
    const outcome = state === 'COMMIT' ? 'commit' : 'rollback';
    try {
      const reply = await this.client.call({ op: 'txEnd', producerGroup: this.options.producerGroup, txId: check.txId, outcome, source: 'check' }, this.options.timeoutMs);
      this.options.onCheck?.(check, state, reply.outcome);
    } catch (error) {
      this.options.onError?.(error, check);
    }
  }

  /** The topic's queue count, asked once and kept. */
  private async queueCount(topic: string): Promise<number> {
    const known = this.queueCounts.get(topic);
    if (known !== undefined) return known;
    const { queues } = await this.client.call({ op: 'route', topic }, this.options.timeoutMs);
    assert(Number.isSafeInteger(queues) && queues >= 1, 'a topic has at least one queue');
    this.queueCounts.set(topic, queues);
    return queues;
  }
}

interface SentHalf {
  readonly wire: ProduceMessageWire;
  /** The broker acknowledged it; false: its outcome is unknown (commit sends it again). */
  stored: boolean;
}

/** One transaction: send() stores half messages, commit() or rollback() ends it, once. */
export class Transaction {
  private readonly sent: SentHalf[] = [];
  private ended: TransactionEnd | null = null;
  private roundRobin = 0;
  /** Numbers the msgIds; never reused, though a refused send leaves `sent`. */
  private sends = 0;

  constructor(
    private readonly client: LedgerClient,
    private readonly options: TransactionProducerOptions,
    private readonly producerId: string,
    readonly txId: string,
    private readonly queueCount: (topic: string) => Promise<number>,
  ) {
    assert(txId.length + 6 <= LIMITS.maxIdLength, 'msgIds of the transaction stay within maxIdLength');
  }

  /** Stores one half message; resolves once it is stored (invisible until the commit). */
  async send(topic: string, message: OutgoingMessage, selector: QueueSelector = 'roundRobin'): Promise<HalfSendResult> {
    if (this.ended !== null) throw new LmqError('LMQ_BAD_INPUT', `transaction ${this.txId} has ended (${this.ended.outcome}); begin a new one`);
    if (message.deliverAtMs !== undefined || message.delayLevel !== undefined) throw new LmqError('LMQ_BAD_INPUT', 'a transactional message cannot be delayed');
    if (selector === 'byKey' && message.key === undefined) throw new LmqError('LMQ_BAD_INPUT', 'selecting the queue by key needs a key (--key)');
    if (this.sent.length >= LIMITS.maxMessagesPerProduce) throw new LmqError('LMQ_BAD_INPUT', `a transaction holds at most ${LIMITS.maxMessagesPerProduce} messages (one commit entry)`);
    const queues = await this.queueCount(topic);
    const queueId = selector === 'byKey' ? hashKey(message.key!) % queues : this.roundRobin++ % queues;
    const wire: ProduceMessageWire = {
      msgId: `${this.txId}.${this.sends}`, topic, queueId, body: message.body,
      ...(message.tag ? { tag: message.tag } : {}),
      ...(message.key ? { keys: [message.key] } : {}),
      ...(message.properties ? { properties: message.properties } : {}),
    };
    const problem = produceMessageProblem(wire);
    if (problem !== undefined) throw new LmqError('LMQ_BAD_INPUT', `message for topic "${topic.slice(0, 200)}" cannot be sent: ${problem}`);
    const half: SentHalf = { wire, stored: false };
    this.sends++;
    this.sent.push(half);
    try {
      await this.storeHalf(half);
    } catch (error) {
      // Refused for sure: it is not part of the transaction. Unknown: commit sends it again.
      if (isLmqError(error) && !error.indeterminate) this.sent.splice(this.sent.indexOf(half), 1);
      throw error;
    }
    return { txId: this.txId, msgId: wire.msgId, topic, queueId };
  }

  /**
   * Makes every message sent in this transaction visible, at once. LMQ_TX_ENDED when it had
   * already been rolled back (a check-back answer, or after transaction.maxChecks).
   */
  commit(): Promise<TransactionEnd> {
    return this.end('commit');
  }

  /** Discards every message sent in this transaction. LMQ_TX_ENDED when it had already been committed. */
  rollback(): Promise<TransactionEnd> {
    return this.end('rollback');
  }

  private async end(outcome: TxOutcome): Promise<TransactionEnd> {
    if (this.ended !== null) {
      if (this.ended.outcome !== outcome) throw endedOtherWay(this.txId, this.ended.outcome);
      return this.ended;
    }
    if (this.sent.length === 0) {
      if (outcome === 'commit') throw new LmqError('LMQ_BAD_INPUT', `transaction ${this.txId} has no messages to commit`);
      return (this.ended = { txId: this.txId, outcome, placed: [], duplicate: false });
    }
    // What commits must be what was sent: a half send of unknown outcome is sent again first.
    if (outcome === 'commit') for (const half of this.sent) if (!half.stored) await this.storeHalf(half);
    let reply: ResponseOf<'txEnd'>;
    try {
      reply = await this.client.call({ op: 'txEnd', producerGroup: this.options.producerGroup, txId: this.txId, outcome, source: 'producer' }, this.options.timeoutMs);
    } catch (error) {
      // A rollback of sends none of which was stored: nothing was stored, nothing to discard.
      if (outcome === 'rollback' && isLmqError(error, 'LMQ_BAD_INPUT') && this.sent.every((half) => !half.stored)) {
        return (this.ended = { txId: this.txId, outcome, placed: [], duplicate: false });
      }
      throw error;
    }
    if (reply.outcome !== outcome) throw endedOtherWay(this.txId, reply.outcome);
    this.ended = { txId: this.txId, outcome, placed: outcome === 'commit' ? await this.placements(reply) : [], duplicate: reply.duplicate };
    return this.ended;
  }

  private async storeHalf(half: SentHalf): Promise<void> {
    const { producerGroup, timeoutMs } = this.options;
    await this.client.call({ op: 'txHalf', producerGroup, producerId: this.producerId, txId: this.txId, messages: [half.wire] }, timeoutMs);
    half.stored = true;
  }

  /** The commit's placements; a repeated end is answered without them, so they are looked up by msgId. */
  private async placements(reply: ResponseOf<'txEnd'>): Promise<TransactionEnd['placed']> {
    if (reply.placed.length === this.sent.length) {
      return this.sent.map(({ wire }, i) => {
        const placed = reply.placed[i]!;
        assert(placed.msgId === wire.msgId, 'placements come in send order');
        return { msgId: wire.msgId, topic: wire.topic, queueId: placed.queueId, offset: placed.offset };
      });
    }
    assert(reply.duplicate, 'a first commit answers every placement');
    const placed: TransactionEnd['placed'][number][] = [];
    for (const { wire } of this.sent) {
      const { messages } = await this.client.call({ op: 'lookupByMsgId', msgId: wire.msgId }, this.options.timeoutMs);
      placed.push({ msgId: wire.msgId, topic: wire.topic, queueId: wire.queueId, offset: messages[0]?.offset ?? null });
    }
    return placed;
  }
}

function endedOtherWay(txId: string, outcome: TxOutcome): LmqError {
  const how = outcome === 'commit' ? 'committed' : 'rolled back';
  return new LmqError('LMQ_TX_ENDED', `transaction ${txId} was already ${how} (by a check-back answer, or by the leader after transaction.maxChecks check-backs)`, { txId, outcome });
}
