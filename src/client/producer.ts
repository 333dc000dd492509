// A producer: picks a queue (round robin, or a hash of the business key so all messages of one
// key keep their order in one queue — RocketMQ's MessageQueueSelector), and sends with an
// idempotent identity (producerId, seq). Retries reuse the seq, so the broker drops
// duplicates; sends in flight together keep their order per queue because the broker refuses
// a seq that skips one (LMQ_OUT_OF_ORDER) until the earlier one arrives.
import { randomBytes } from 'node:crypto';
import { UNSEQUENCED } from '../broker/commands.js';
import { LmqError } from '../util/errors.js';
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

/** The request form of one message (the broker's ProduceMessage); the key is indexed as a key. */
function toWire(message: OutgoingMessage, msgId: string, topic: string, queueId: number) {
  return {
    msgId, topic, queueId, body: message.body,
    ...(message.tag ? { tag: message.tag } : {}),
    ...(message.key ? { keys: [message.key] } : {}),
    ...(message.properties ? { properties: message.properties } : {}),
  };
}

export class Producer {
  private producerId = '';
  private nextSeq = 1;
  private oneWayCount = 0;
  private roundRobin = 0;
  private readonly queueCounts = new Map<string, Promise<number>>();

  constructor(
    private readonly client: LedgerClient,
    private readonly timeoutMs: number,
  ) {
    this.newSession();
  }

  /** Sends one message and resolves once the broker acknowledged it under its quorum mode. */
  async send(topic: string, message: OutgoingMessage, selector: QueueSelector = 'roundRobin'): Promise<SendResult> {
    const [result] = await this.sendBatch(topic, [message], selector);
    return result!;
  }

  /**
   * One-way (RocketMQ's sendOneway): hands the message to the leader believed current and
   * returns at once. At most once: no retry, no deduplication, no acknowledgement — for data
   * that may be lost (metrics, logs), never for what must arrive.
   */
  sendOneWay(topic: string, queueId: number, message: OutgoingMessage): void {
    const msgId = `${this.producerId}-oneway-${this.oneWayCount++}`;
    const wire = toWire(message, msgId, topic, queueId);
    this.client.callOnce({ op: 'produce', producerId: this.producerId, seq: UNSEQUENCED, messages: [wire] }).catch(() => undefined);
  }

  /**
   * Sends messages as one batch: one request, one log entry, one queue (chosen by the first
   * message's key, or round robin), stored all or none, in this order.
   */
  async sendBatch(topic: string, messages: readonly OutgoingMessage[], selector: QueueSelector = 'roundRobin'): Promise<SendResult[]> {
    if (messages.length === 0) throw new LmqError('LMQ_BAD_INPUT', 'a batch needs at least one message');
    const key = messages[0]!.key;
    if (selector === 'byKey' && key === undefined) throw new LmqError('LMQ_BAD_INPUT', 'selecting the queue by key needs a key (--key)');
    // Numbered before any await, so sends in flight together carry seqs in call order.
    const session = this.producerId;
    const seq = this.nextSeq++;
    const turn = this.roundRobin++;
    let queues: number;
    try {
      queues = await this.queueCount(topic);
    } catch (error) {
      this.endSession(session); // this seq will never reach the log: later ones would wait on it
      throw error;
    }
    const queueId = selector === 'byKey' ? hashKey(key!) % queues : turn % queues;
    const wire = messages.map((message, i) => toWire(message, `${session}-${seq}${messages.length > 1 ? `.${i}` : ''}`, topic, queueId));
    const reply = (await this.sendInOrder(session, { op: 'produce', producerId: session, seq, messages: wire })) as {
      placed: { msgId: string; queueId: number; offset: number | null }[];
      duplicate: boolean;
    };
    // A duplicate older than the broker's window is acknowledged without its placement.
    return wire.map((m, i) => ({ msgId: m.msgId, queueId, offset: reply.placed[i]?.offset ?? null, duplicate: reply.duplicate }));
  }

  private async sendInOrder(session: string, request: Readonly<Record<string, unknown>>): Promise<unknown> {
    try {
      // The client retries redirects, lost connections and LMQ_OUT_OF_ORDER (an earlier seq
      // of ours is still on its way) with the same seq until the deadline.
      return await this.client.call(request, this.timeoutMs);
    } catch (error) {
      // Whether this seq failed for sure or its outcome is unknown, later seqs would wait on
      // it: the producer starts a fresh session (an unknown outcome may then be stored twice,
      // under two msgIds — at-least-once).
      this.endSession(session);
      throw error;
    }
  }

  /** Starts a new session unless `session` is already over (a late failure of an old one). */
  private endSession(session: string): void {
    if (session === this.producerId) this.newSession();
  }

  /** The topic's queue count, asked once and shared by every send (a failed ask is not kept). */
  private queueCount(topic: string): Promise<number> {
    let count = this.queueCounts.get(topic);
    if (count === undefined) {
      count = this.client.call({ op: 'route', topic }, this.timeoutMs).then((reply) => (reply as { queues: number }).queues);
      this.queueCounts.set(topic, count);
      count.catch(() => this.queueCounts.delete(topic));
    }
    return count;
  }

  private newSession(): void {
    this.producerId = randomBytes(8).toString('hex');
    this.nextSeq = 1;
  }
}
