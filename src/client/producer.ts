// A producer: picks a queue (round robin, or a hash of the business key so all messages of one
// key keep their order in one queue — RocketMQ's MessageQueueSelector), and sends with an
// idempotent identity (producerId, seq). Retries reuse the seq, so the broker drops
// duplicates; sends in flight together keep their order per queue because the broker refuses
// a seq that skips one (LMQ_OUT_OF_ORDER) until the earlier one arrives.
import { randomBytes } from 'node:crypto';
import { LmqError, isLmqError } from '../util/errors.js';
import type { LedgerClient } from './client.js';

export interface OutgoingMessage {
  readonly body: Uint8Array;
  readonly key?: string;
  readonly tag?: string;
  readonly properties?: Readonly<Record<string, string>>;
}

export interface SendResult {
  readonly msgId: string;
  readonly queueId: number;
  /** null under `leader` quorum, which acknowledges before the offset is assigned. */
  readonly offset: number | null;
  readonly duplicate: boolean;
}

export type QueueSelector = 'roundRobin' | 'byKey';

/** FNV-1a: a stable hash, so a key maps to the same queue in every client and every run. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

export class Producer {
  private producerId = '';
  private nextSeq = 1;
  private roundRobin = 0;
  private readonly queueCounts = new Map<string, number>();

  constructor(
    private readonly client: LedgerClient,
    private readonly timeoutMs: number,
  ) {
    this.newSession();
  }

  /** Sends one message and resolves once the broker acknowledged it under its quorum mode. */
  async send(topic: string, message: OutgoingMessage, selector: QueueSelector = 'roundRobin'): Promise<SendResult> {
    const queues = await this.queueCount(topic);
    if (selector === 'byKey' && message.key === undefined) throw new LmqError('LMQ_BAD_INPUT', 'selecting the queue by key needs a key (--key)');
    const queueId = selector === 'byKey' ? hashKey(message.key!) % queues : this.roundRobin++ % queues;
    const seq = this.nextSeq++;
    const msgId = `${this.producerId}-${seq}`;
    const request = {
      op: 'produce', producerId: this.producerId, seq,
      messages: [{ msgId, topic, queueId, body: message.body, ...(message.tag ? { tag: message.tag } : {}), ...(message.key ? { keys: [message.key] } : {}), ...(message.properties ? { properties: message.properties } : {}) }],
    };
    const reply = (await this.sendInOrder(request)) as { placed: { msgId: string; queueId: number; offset: number | null }[]; duplicate: boolean };
    const placed = reply.placed[0];
    return { msgId, queueId, offset: placed?.offset ?? null, duplicate: reply.duplicate };
  }

  private async sendInOrder(request: { seq: number }): Promise<unknown> {
    try {
      // The client retries redirects, lost connections and LMQ_OUT_OF_ORDER (an earlier seq
      // of ours is still on its way) with the same seq until the deadline.
      return await this.client.call(request, this.timeoutMs);
    } catch (error) {
      // The caller gets an error for this seq; if its outcome is unknown, later seqs would
      // wait on it forever, so the producer starts a fresh session.
      if (!isLmqError(error) || error.indeterminate || error.code === 'LMQ_OUT_OF_ORDER') this.newSession();
      throw error;
    }
  }

  private async queueCount(topic: string): Promise<number> {
    let count = this.queueCounts.get(topic);
    if (count === undefined) {
      count = ((await this.client.call({ op: 'route', topic }, this.timeoutMs)) as { queues: number }).queues;
      this.queueCounts.set(topic, count);
    }
    return count;
  }

  private newSession(): void {
    this.producerId = randomBytes(8).toString('hex');
    this.nextSeq = 1;
  }
}
