// A simple consumer (RocketMQ 5's SimpleConsumer): the application asks for messages,
// processes them at its own pace and acks each one by its receipt. A message not acked within
// its invisible duration becomes visible again and is received again (by this or another
// consumer of the group) with deliveryAttempt + 1; after maxReconsumeTimes + 1 deliveries the
// broker moves it to `%DLQ%<group>`. The broker holds all of it in the replicated log
// (src/broker/simple-consumer.ts): no rebalance, no offsets to commit, and a leader change
// neither loses an ack nor redelivers an acked message.
//
// Calls go through LedgerClient.call, so they follow leader changes and retry until the
// client's timeout. An ack is idempotent (a retried ack whose first attempt was applied
// succeeds), so is a changeInvisibleDuration (a repeat answers the same new receipt). A
// receive whose reply is lost leaves its messages invisible until their duration ends: they
// come again then, one attempt later.
import { LIMITS, type ReceivedMessage } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import type { LedgerClient } from './client.js';

export interface SimpleConsumerOptions {
  readonly group: string;
  /** Names this consumer in the broker's log (diagnosis only). */
  readonly clientId: string;
  /** How long a receive waits on the broker for a message when none is visible (long polling). */
  readonly awaitDurationMs: number;
}

export const DEFAULT_SIMPLE_CONSUMER_OPTIONS = Object.freeze({ awaitDurationMs: 20_000 });

export interface ReceiveOptions {
  /** Overrides awaitDurationMs for this receive (0: answer at once). */
  readonly waitMs?: number;
}

/** A received message: what a pull returns, plus its receipt and delivery attempt. */
export interface SimpleMessage {
  /** The queue's topic: the subscribed topic, or `%RETRY%<group>` for a retry copy (origin names the first). */
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
  readonly msgId: string;
  readonly receipt: string;
  /** 1 on the first delivery to the group's simple consumers, n on the n-th. */
  readonly deliveryAttempt: number;
  /** When it becomes visible again unless acked (the leader's clock, epoch ms). */
  readonly invisibleUntilMs: number;
  readonly key: string | undefined;
  readonly keys: readonly string[];
  readonly tag: string | undefined;
  readonly properties: Readonly<Record<string, string>> | undefined;
  readonly body: Uint8Array;
  readonly storeTimestampMs: number;
  readonly origin: ReceivedMessage['origin'];
}

/** One attempt of a receive may take its wait plus this long (network, a busy leader, a commit). */
const RECEIVE_MARGIN_MS = 5_000;
/** A receive keeps retrying (leader changes) for its wait plus this long. */
const RECEIVE_RETRY_MS = 10_000;

export class SimpleConsumer {
  private readonly topics: string[] = [];
  /** Which subscribed topic the next receive asks for (round-robin over them). */
  private nextTopic = 0;

  constructor(
    private readonly client: LedgerClient,
    private readonly options: SimpleConsumerOptions,
  ) {
    assert(Number.isSafeInteger(options.awaitDurationMs) && options.awaitDurationMs >= 0, 'awaitDurationMs must be a count of ms');
  }

  /** Adds a topic; receives take the subscribed topics in turn (each with the group's retry queue). */
  subscribe(topic: string): this {
    if (!this.topics.includes(topic)) this.topics.push(topic);
    return this;
  }

  /**
   * Up to max (1 to maxReceiveMessages) visible messages, each invisible to the group for
   * invisibleDurationMs; waits up to waitMs when none is visible, then answers what there is
   * (possibly none). Errors: those of LedgerClient.call (a timeout or UNAVAILABLE may have
   * handed messages out: they come again after their duration).
   */
  async receive(max: number, invisibleDurationMs: number, options: ReceiveOptions = {}): Promise<SimpleMessage[]> {
    if (this.topics.length === 0) throw new LmqError('LMQ_BAD_INPUT', 'subscribe to a topic before receive()');
    checkRange('max', max, 1, LIMITS.maxReceiveMessages);
    checkRange('invisibleDurationMs', invisibleDurationMs, LIMITS.minInvisibleDurationMs, LIMITS.maxInvisibleDurationMs);
    const waitMs = options.waitMs ?? this.options.awaitDurationMs;
    const topic = this.topics[this.nextTopic++ % this.topics.length]!;
    const request = { op: 'receive' as const, group: this.options.group, topic, clientId: this.options.clientId, max, invisibleDurationMs, waitMs };
    const { messages } = await this.client.call(request, waitMs + RECEIVE_RETRY_MS, waitMs + RECEIVE_MARGIN_MS);
    return messages.map(simpleMessage);
  }

  /**
   * Acks one message (or its receipt). Throws LMQ_RECEIPT_EXPIRED (determinate: nothing was
   * acked) when the message was delivered again since this receipt was handed out; a message
   * acked before (or dead-lettered) acks again without error.
   */
  async ack(message: SimpleMessage | string): Promise<void> {
    const receipt = receiptOf(message);
    const { expired } = await this.client.call({ op: 'ack', group: this.options.group, receipts: [receipt] });
    if (expired.length > 0) throw expiredError(receipt);
  }

  /** Acks several messages in one request; answers the receipts that were not acked (delivered again since). */
  async ackAll(messages: readonly (SimpleMessage | string)[]): Promise<string[]> {
    if (messages.length === 0) return [];
    const expired: string[] = [];
    for (let i = 0; i < messages.length; i += LIMITS.maxReceiptsPerAck) {
      const receipts = messages.slice(i, i + LIMITS.maxReceiptsPerAck).map(receiptOf);
      expired.push(...(await this.client.call({ op: 'ack', group: this.options.group, receipts })).expired);
    }
    return expired;
  }

  /**
   * Makes the message invisible for invisibleDurationMs from now (e.g. to finish a long task)
   * and answers its new receipt: the old one no longer acks. LMQ_RECEIPT_EXPIRED when it was
   * delivered again since, or is no longer in flight.
   */
  async changeInvisibleDuration(message: SimpleMessage | string, invisibleDurationMs: number): Promise<string> {
    checkRange('invisibleDurationMs', invisibleDurationMs, LIMITS.minInvisibleDurationMs, LIMITS.maxInvisibleDurationMs);
    const reply = await this.client.call({ op: 'changeInvisibleDuration', group: this.options.group, receipt: receiptOf(message), invisibleDurationMs });
    return reply.receipt;
  }
}

function simpleMessage(m: ReceivedMessage): SimpleMessage {
  return {
    topic: m.topic, queueId: m.queueId, offset: m.offset, msgId: m.msgId, receipt: m.receipt, deliveryAttempt: m.deliveryAttempt,
    invisibleUntilMs: m.invisibleUntilMs, key: m.keys?.[0], keys: m.keys ?? [], tag: m.tag, properties: m.properties, body: m.body,
    storeTimestampMs: m.storeTimestampMs, origin: m.origin,
  };
}

function receiptOf(message: SimpleMessage | string): string {
  return typeof message === 'string' ? message : message.receipt;
}

function expiredError(receipt: string): LmqError {
  return new LmqError('LMQ_RECEIPT_EXPIRED', 'the message was delivered again since this receipt was handed out; it was not acked (expect it again, and ack the newest receipt)', { receipt });
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new LmqError('LMQ_BAD_INPUT', `${name} must be a whole number from ${min} to ${max}, not ${value}`);
}
