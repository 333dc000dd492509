// A pull consumer for one group on one topic. It resumes each queue at the group's committed
// offset (or at the start position when the group has none), long-polls its queues at once,
// and commits offsets only when the caller says a batch was processed — so a restart resumes
// exactly after the last committed message (at-least-once).
//
// Without `rebalance` it reads every queue of the topic. With it (clustering mode), it
// heartbeats the leader, which splits the queues among the group's live consumers; a queue
// that moves to this consumer is read from the group's committed offset.
import { setTimeout as sleep } from 'node:timers/promises';
import type { MessageOrigin, StoredMessage } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import { compileFilter, type SubscriptionFilter } from '../filter/index.js';
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
  /** 0 for an original; n for the n-th retry copy of a message (the broker's count, from %RETRY%<group>). */
  readonly reconsumeTimes: number;
  /** A retry or dead-letter copy's first delivery (msgId, topic, queue, offset); undefined for an original. */
  readonly origin: MessageOrigin | undefined;
  /** A delayed message's due time (epoch ms, as the producer asked); undefined when it was not delayed. */
  readonly deliverAtMs: number | undefined;
}

export type StartPosition = 'first' | 'last' | { readonly timestampMs: number };

export interface ConsumerOptions {
  readonly topic: string;
  readonly group: string;
  /** Where a queue without a committed offset for the group starts. */
  readonly from: StartPosition;
  /** Longest one pull waits on the broker for a new message. */
  readonly pollWaitMs: number;
  readonly maxMessagesPerPull: number;
  readonly maxBytesPerPull: number;
  /** Clustering mode: share the topic's queues with the group's other live consumers. */
  readonly rebalance?: { readonly consumerId: string; readonly heartbeatIntervalMs: number };
  /** Only messages matching it are returned (the broker skips the others; commits pass them). */
  readonly filter?: SubscriptionFilter;
}

/** A pull's answer may take its wait plus this long (network, a busy leader). */
const PULL_MARGIN_MS = 5_000;

export class PullConsumer {
  /** Next offset to read, per owned queue. */
  private positions = new Map<number, number>();
  /** The positions of the last commit (or where the queues started). */
  private committed = new Map<number, number>();
  private started = false;
  /** Monotonic (performance.now()): a wall-clock step must not stop or flood the heartbeats. */
  private lastHeartbeatMs = Number.NEGATIVE_INFINITY;

  /** Throws LMQ_BAD_INPUT for a malformed filter (the broker refuses it as well). */
  constructor(
    private readonly client: LedgerClient,
    private readonly options: ConsumerOptions,
  ) {
    if (options.filter !== undefined) compileFilter(options.filter);
  }

  async start(): Promise<void> {
    await this.refreshAssignment();
    this.started = true;
  }

  /** Queues this consumer reads now. */
  ownedQueues(): number[] {
    return [...this.positions.keys()];
  }

  /** One round of pulls over the owned queues; waits up to pollWaitMs when `wait` is set. Messages are in offset order per queue. */
  async poll(wait: boolean): Promise<ConsumedMessage[]> {
    if (!this.started) throw new LmqError('LMQ_BAD_INPUT', 'call start() before poll()');
    const heartbeatMs = this.options.rebalance?.heartbeatIntervalMs;
    if (heartbeatMs !== undefined && performance.now() - this.lastHeartbeatMs >= heartbeatMs) await this.refreshAssignment();
    if (this.positions.size === 0) {
      // An idle member (more consumers than queues): wait, then ask again.
      if (wait) await sleep(Math.min(this.options.pollWaitMs, heartbeatMs ?? this.options.pollWaitMs));
      return [];
    }
    const owned = [...this.positions];
    const replies = await Promise.all(owned.map(([queueId, offset]) => this.client.call({
      op: 'pull', topic: this.options.topic, queueId, offset,
      maxMessages: this.options.maxMessagesPerPull, maxBytes: this.options.maxBytesPerPull, waitMs: wait ? this.options.pollWaitMs : 0,
      ...(this.options.filter === undefined ? {} : { filter: this.options.filter }),
    }, this.options.pollWaitMs + PULL_MARGIN_MS, (wait ? this.options.pollWaitMs : 0) + PULL_MARGIN_MS)));
    const messages: ConsumedMessage[] = [];
    replies.forEach((reply, i) => {
      const queueId = owned[i]![0];
      // Retention deleted the offsets below startOffset, a filter skipped those up to
      // nextBeginOffset: the position moves past them, so the next pull and the next commit
      // do not ask for them again.
      for (const m of reply.messages) messages.push(consumed(queueId, m));
      if (this.positions.has(queueId)) this.positions.set(queueId, Math.max(this.positions.get(queueId)!, reply.nextBeginOffset));
    });
    return messages;
  }

  /** Hands messages back (e.g. beyond --max): they are read again and not committed. */
  giveBack(messages: readonly ConsumedMessage[]): void {
    for (const m of messages) {
      const position = this.positions.get(m.queueId);
      if (position !== undefined) this.positions.set(m.queueId, Math.min(position, m.offset));
    }
  }

  /** Commits the group's position in every owned queue: everything returned so far was processed. */
  async commit(): Promise<void> {
    if (this.positions.size === 0) return;
    const offsets = [...this.positions].map(([queueId, offset]) => ({ topic: this.options.topic, queueId, offset }));
    await this.client.call({ op: 'commitOffsets', group: this.options.group, offsets });
    this.committed = new Map(this.positions);
  }

  /** Whether a position moved since the last commit (a filter skipped messages, say, though none were returned). */
  movedSinceCommit(): boolean {
    for (const [queueId, offset] of this.positions) if (this.committed.get(queueId) !== offset) return true;
    return false;
  }

  /** Leaves the group (clustering mode) so its queues move to the others at once. */
  async close(): Promise<void> {
    const rebalance = this.options.rebalance;
    if (rebalance === undefined) return;
    await this.client.call({ op: 'leaveGroup', group: this.options.group, topic: this.options.topic, consumerId: rebalance.consumerId });
  }

  private async refreshAssignment(): Promise<void> {
    const queueIds = await this.assignedQueues();
    const kept = new Map([...this.positions].filter(([queueId]) => queueIds.includes(queueId)));
    const added = queueIds.filter((queueId) => !kept.has(queueId));
    if (added.length > 0) {
      for (const [queueId, offset] of await this.startOffsets(added)) {
        kept.set(queueId, offset);
        this.committed.set(queueId, offset);
      }
    }
    this.positions = kept;
  }

  private async assignedQueues(): Promise<number[]> {
    const rebalance = this.options.rebalance;
    if (rebalance === undefined) return topicQueues(this.client, this.options.topic);
    this.lastHeartbeatMs = performance.now();
    const assignment = await this.client.call({ op: 'heartbeat', group: this.options.group, topic: this.options.topic, consumerId: rebalance.consumerId });
    return [...assignment.queueIds];
  }

  private async startOffsets(queueIds: number[]): Promise<[number, number][]> {
    const from = this.options.from;
    const offsets = await queryStartOffsets(this.client, this.options.group, this.options.topic, queueIds, from);
    return offsets.map((o) => [o.queueId, o.committed ?? o.start]);
  }
}

export function consumed(queueId: number, m: StoredMessage): ConsumedMessage {
  return {
    queueId, offset: m.offset, msgId: m.msgId, key: m.keys?.[0], tag: m.tag, properties: m.properties, body: m.body, storeTimestampMs: m.storeTimestampMs,
    reconsumeTimes: m.reconsumeTimes ?? 0, origin: m.origin, deliverAtMs: m.deliverAtMs,
  };
}

export interface QueueStart {
  readonly queueId: number;
  /** The group's committed offset, if it has one. */
  readonly committed: number | null;
  /** Where `from` points in this queue. */
  readonly start: number;
}

/** The group's committed offset and the offset `from` designates, for each queue. */
export async function queryStartOffsets(client: LedgerClient, group: string, topic: string, queueIds: number[], from: StartPosition): Promise<QueueStart[]> {
  const queues = queueIds.map((queueId) => ({ topic, queueId }));
  const timestampMs = typeof from === 'object' ? from.timestampMs : undefined;
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues, ...(timestampMs === undefined ? {} : { timestampMs }) });
  return offsets.map((o) => ({ queueId: o.queueId, committed: o.offset, start: from === 'first' ? o.minOffset : from === 'last' ? o.nextOffset : o.timeOffset! }));
}

export async function topicQueues(client: LedgerClient, topic: string): Promise<number[]> {
  const { queues } = await client.call({ op: 'route', topic });
  return Array.from({ length: queues }, (_, queueId) => queueId);
}
