// A pull consumer for one group over every queue of a topic. It resumes each queue at the
// group's committed offset (or at the start position when the group has none), long-polls
// all queues at once, and commits offsets only after the caller has processed a batch —
// so a restart resumes exactly after the last committed message (at-least-once).
import { LmqError } from '../util/errors.js';
import type { LedgerClient } from './client.js';

export interface ConsumedMessage {
  readonly queueId: number;
  readonly offset: number;
  readonly msgId: string;
  readonly key: string | undefined;
  readonly tag: string | undefined;
  readonly properties: Readonly<Record<string, string>> | undefined;
  readonly body: Uint8Array;
  readonly storeTimestampMs: number;
}

export interface ConsumerOptions {
  readonly topic: string;
  readonly group: string;
  readonly from: 'first' | 'last';
  /** Longest one pull waits on the broker for a new message. */
  readonly pollWaitMs: number;
  readonly maxMessagesPerPull: number;
  readonly maxBytesPerPull: number;
}

interface StoredMessageWire {
  queueId: number;
  offset: number;
  msgId: string;
  keys?: string[];
  tag?: string;
  properties?: Record<string, string>;
  body: Uint8Array;
  storeTimestampMs: number;
}

export class PullConsumer {
  /** Next offset to read per queue; undefined until start(). */
  private positions: number[] = [];

  constructor(
    private readonly client: LedgerClient,
    private readonly options: ConsumerOptions,
  ) {}

  async start(): Promise<void> {
    const { queues } = (await this.client.call({ op: 'route', topic: this.options.topic })) as { queues: number };
    const queueIds = Array.from({ length: queues }, (_, queueId) => ({ topic: this.options.topic, queueId }));
    const { offsets } = (await this.client.call({ op: 'queryOffsets', group: this.options.group, queues: queueIds })) as {
      offsets: { queueId: number; offset: number | null; minOffset: number; nextOffset: number }[];
    };
    this.positions = offsets.map((o) => o.offset ?? (this.options.from === 'first' ? o.minOffset : o.nextOffset));
  }

  /** One round of pulls over every queue; waits up to pollWaitMs when `wait` is set. Messages are in offset order per queue. */
  async poll(wait: boolean): Promise<ConsumedMessage[]> {
    if (this.positions.length === 0) throw new LmqError('LMQ_BAD_INPUT', 'call start() before poll()');
    const replies = await Promise.all(this.positions.map((offset, queueId) => this.client.call({
      op: 'pull', topic: this.options.topic, queueId, offset,
      maxMessages: this.options.maxMessagesPerPull, maxBytes: this.options.maxBytesPerPull, waitMs: wait ? this.options.pollWaitMs : 0,
    }, this.options.pollWaitMs + 10_000) as Promise<{ messages: StoredMessageWire[] }>));
    const messages: ConsumedMessage[] = [];
    replies.forEach((reply, queueId) => {
      for (const m of reply.messages) {
        messages.push({ queueId, offset: m.offset, msgId: m.msgId, key: m.keys?.[0], tag: m.tag, properties: m.properties, body: m.body, storeTimestampMs: m.storeTimestampMs });
        this.positions[queueId] = m.offset + 1;
      }
    });
    return messages;
  }

  /** Hands messages back (e.g. beyond --max): they are read again and not committed. */
  giveBack(messages: readonly ConsumedMessage[]): void {
    for (const m of messages) this.positions[m.queueId] = Math.min(this.positions[m.queueId]!, m.offset);
  }

  /** Commits the group's position in every queue: everything returned so far was processed. */
  async commit(): Promise<void> {
    const offsets = this.positions.map((offset, queueId) => ({ topic: this.options.topic, queueId, offset }));
    await this.client.call({ op: 'commitOffsets', group: this.options.group, offsets });
  }
}
