// A push consumer for one group on one topic, concurrent mode (RocketMQ's
// DefaultMQPushConsumer with a MessageListenerConcurrently). Each owned queue is pulled into a
// local cache (process-queue.ts), and its messages are handed, `batchSize` at a time, to a
// listener run by at most `consumeConcurrency` workers. The listener answers SUCCESS or
// RECONSUME_LATER (a throw counts as RECONSUME_LATER); RECONSUME_LATER sends each message of
// the batch back to the broker, which stores a retry copy in `%RETRY%<group>` (or, past
// maxReconsumeTimes, a dead letter). The consumer also reads `%RETRY%<group>`, which exists
// from the group's first retry on.
//
// Offsets: a message is finished when the listener succeeded on it or its sendBack was
// acknowledged; each queue commits the lowest offset not yet finished — periodically while
// it moves, when the queue moves away and on stop — so a crash redelivers, never skips.
// Flow control: a queue is not pulled while its cache holds maxCachedMessagesPerQueue
// messages or maxCachedBytesPerQueue bytes.
//
// Rebalance (clustering) is the PullConsumer's: heartbeats to the leader, which splits each
// topic's queues among the group's live consumers. A queue that moves away stops handing out
// messages, lets those in hand finish, commits and drops its cache.
import { setTimeout as sleep } from 'node:timers/promises';
import { isName, LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError } from '../util/errors.js';
import { compileFilter, type SubscriptionFilter } from '../filter/index.js';
import type { LedgerClient } from './client.js';
import { queryStartOffsets, type StartPosition, topicQueues } from './consumer.js';
import { ProcessQueue, type PushMessage } from './process-queue.js';

export type { PushMessage } from './process-queue.js';

export type ConsumeStatus = 'SUCCESS' | 'RECONSUME_LATER';

export interface ConsumeContext {
  /** The queue the batch came from (all its messages are of one queue). */
  readonly topic: string;
  readonly queueId: number;
}

/** Anything but 'SUCCESS', and a thrown error, count as RECONSUME_LATER for the whole batch. */
export type MessageListener = (messages: readonly PushMessage[], context: ConsumeContext) => Promise<ConsumeStatus>;

export interface PushConsumerOptions {
  readonly topic: string;
  readonly group: string;
  /** Where a queue of `topic` without a committed offset starts (the retry topic always starts at its first offset). */
  readonly from: StartPosition;
  /** Listener calls in progress at once. */
  readonly consumeConcurrency: number;
  /** Messages of one queue per listener call, at most. */
  readonly batchSize: number;
  readonly maxCachedMessagesPerQueue: number;
  readonly maxCachedBytesPerQueue: number;
  /** Passed with every sendBack; omitted: the cluster's consumer.maxReconsumeTimes. */
  readonly maxReconsumeTimes?: number;
  /** Longest one pull waits on the broker for a new message. */
  readonly pollWaitMs: number;
  readonly maxMessagesPerPull: number;
  readonly maxBytesPerPull: number;
  /** How often moved offsets are committed. */
  readonly commitIntervalMs: number;
  /** How often the assignment (and whether the retry topic exists yet) is asked for. */
  readonly rebalanceIntervalMs: number;
  /** A sendBack the broker refused (not retriable): the message goes to the listener again after this long. */
  readonly redeliverAfterMs: number;
  /** Bound of the pause between retries of a failing pull or sendBack (doubling from 50 ms). */
  readonly maxRetryBackoffMs: number;
  /** Hand out at most this many messages in all (e.g. `consume --max`); omitted: no bound. */
  readonly maxDeliveredMessages?: number;
  /** Clustering mode: share each topic's queues with the group's other live consumers. */
  readonly consumerId?: string;
  /**
   * Only messages of `topic` matching it are delivered (the broker skips the others; commits
   * pass them). The retry topic is read whole, as RocketMQ's is: what is in it matched once.
   */
  readonly filter?: SubscriptionFilter;
  /** Errors the consumer carries on through (failed pulls, refused sendBacks, throwing listeners). */
  readonly onError?: (error: unknown, what: string) => void;
}

export const DEFAULT_PUSH_CONSUMER_OPTIONS = Object.freeze({
  from: 'first' as StartPosition,
  consumeConcurrency: 20,
  batchSize: 1,
  maxCachedMessagesPerQueue: 1000,
  maxCachedBytesPerQueue: 100 * 1024 * 1024,
  pollWaitMs: 5_000,
  // RocketMQ's pullBatchSize.
  maxMessagesPerPull: 32,
  maxBytesPerPull: 4 * 1024 * 1024,
  commitIntervalMs: 1_000,
  // Well inside the broker's 3 s session timeout.
  rebalanceIntervalMs: 1_000,
  // RocketMQ reconsumes locally 5 s after a failed sendBack.
  redeliverAfterMs: 5_000,
  maxRetryBackoffMs: 5_000,
});

/** Bounds on the options (RocketMQ's: consumeThreadMax and consumeMessageBatchMaxSize go to 1024). */
const MAX_CONSUME_CONCURRENCY = 1024;
const MAX_BATCH_SIZE = 1024;
const MIN_RETRY_BACKOFF_MS = 50;
/** A pull's answer may take its wait plus this long (network, a busy leader). */
const PULL_MARGIN_MS = 5_000;
const RETRY_TOPIC_PREFIX = '%RETRY%';

export function retryTopic(group: string): string {
  return `${RETRY_TOPIC_PREFIX}${group}`;
}

/** One topic this consumer reads: the subscribed one, and the group's retry topic. */
interface Subscription {
  readonly topic: string;
  readonly from: StartPosition;
  /** The retry topic does not exist until the group's first retry: not finding it is normal. */
  readonly mayBeMissing: boolean;
  readonly filter: SubscriptionFilter | undefined;
  readonly queues: Map<number, ProcessQueue>;
  /** Heartbeated successfully at least once (it is left on stop). */
  joined: boolean;
}

interface Stats {
  /** Messages handed to the listener (redeliveries included). */
  readonly deliveredMessages: number;
  readonly pulledMessages: number;
  /** Listener calls (with their sendBacks) in progress. */
  readonly runningBatches: number;
  /** Owned queues, and (draining) those that moved away and are finishing what they had in hand. */
  readonly queues: readonly { topic: string; queueId: number; draining: boolean; heldMessages: number; heldBytes: number; committedOffset: number; nextOffset: number }[];
}

export class PushConsumer {
  private readonly options: PushConsumerOptions;
  private readonly subscriptions: Subscription[];
  private running = false;
  private stopping: Promise<void> | null = null;
  /** Queues that moved away and are finishing what they have in hand, then commit. */
  private readonly draining = new Map<ProcessQueue, Promise<void>>();
  /** Open queues in hand-out order; `cursor` is where the next search for a ready one starts. */
  private rotation: ProcessQueue[] = [];
  private cursor = 0;
  private runningBatches = 0;
  private deliveredMessages = 0;
  private pulledMessages = 0;
  private readonly loops = new AbortController();
  private rebalanceLoop: Promise<void> | null = null;
  private commitLoop: Promise<void> | null = null;
  /** One commit at a time, so an older commit cannot land after a newer one. */
  private committing: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: LedgerClient,
    options: Partial<PushConsumerOptions> & Pick<PushConsumerOptions, 'topic' | 'group'>,
    private readonly listener: MessageListener,
  ) {
    this.options = Object.freeze({ ...DEFAULT_PUSH_CONSUMER_OPTIONS, ...options });
    validate(this.options);
    const subscription = (topic: string, from: StartPosition, mayBeMissing: boolean, filter?: SubscriptionFilter): Subscription => ({ topic, from, mayBeMissing, filter, queues: new Map(), joined: false });
    // The retry topic starts at its first offset: its first message must not be missed.
    this.subscriptions = [subscription(this.options.topic, this.options.from, false, this.options.filter), subscription(retryTopic(this.options.group), 'first', true)];
  }

  /** Joins the group, takes the queues assigned to it and starts pulling and consuming. A missing subscribed topic is an error here. */
  async start(): Promise<void> {
    if (this.running || this.stopping !== null) throw new LmqError('LMQ_BAD_INPUT', 'a push consumer starts once');
    this.running = true;
    try {
      for (const subscription of this.subscriptions) await this.rebalance(subscription);
    } catch (error) {
      await this.stop().catch(() => undefined);
      throw error;
    }
    this.rebalanceLoop = this.every(this.options.rebalanceIntervalMs, () => this.rebalanceAll());
    this.commitLoop = this.every(this.options.commitIntervalMs, () => this.commit(this.openQueues()));
  }

  /** Stops handing out messages, waits for the listener calls in progress, commits and leaves the group. */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  stats(): Stats {
    const queues = [...this.openQueues(), ...this.draining.keys()].map((q) => ({
      topic: q.topic, queueId: q.queueId, draining: this.draining.has(q), heldMessages: q.heldMessages, heldBytes: q.heldBytes, committedOffset: q.committedOffset, nextOffset: q.nextOffset,
    }));
    return { deliveredMessages: this.deliveredMessages, pulledMessages: this.pulledMessages, runningBatches: this.runningBatches, queues };
  }

  /** Whether every message it may hand out was handed out and finished its listener call (`maxDeliveredMessages` reached). */
  deliveredAll(): boolean {
    return this.options.maxDeliveredMessages !== undefined && this.deliveredMessages >= this.options.maxDeliveredMessages && this.runningBatches === 0;
  }

  private async shutDown(): Promise<void> {
    this.running = false;
    this.loops.abort();
    await Promise.all([this.rebalanceLoop, this.commitLoop]);
    const queues = this.openQueues();
    for (const queue of queues) queue.close();
    this.rotation = [];
    await Promise.all([...queues.flatMap((q) => [...q.inFlight]), ...this.draining.values()]);
    let failure: unknown = null;
    await this.commit(queues).catch((error: unknown) => (failure ??= error));
    for (const subscription of this.subscriptions) {
      subscription.queues.clear();
      if (this.options.consumerId === undefined || !subscription.joined) continue;
      await this.client.call({ op: 'leaveGroup', group: this.options.group, topic: subscription.topic, consumerId: this.options.consumerId }).catch((error: unknown) => (failure ??= error));
    }
    if (failure !== null) throw failure;
  }

  /** Runs `round` every `intervalMs` until stop; a failed round is reported, never fatal. */
  private async every(intervalMs: number, round: () => Promise<void>): Promise<void> {
    const signal = this.loops.signal;
    while (this.running) {
      await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
      if (!this.running) return;
      await round().catch((error: unknown) => this.report(error, 'consumer round'));
    }
  }

  private async rebalanceAll(): Promise<void> {
    for (const subscription of this.subscriptions) {
      await this.rebalance(subscription).catch((error: unknown) => {
        // A heartbeat abandoned because the consumer stops is no failure.
        if (this.running) this.report(error, `rebalance of ${subscription.topic}`);
      });
    }
  }

  /** Takes the queues now assigned to this consumer in one topic and lets go of the others. */
  private async rebalance(subscription: Subscription): Promise<void> {
    const queueIds = await this.assignedQueues(subscription);
    if (!this.running || queueIds === null) return;
    for (const [queueId, queue] of subscription.queues) {
      if (queueIds.includes(queueId)) continue;
      subscription.queues.delete(queueId);
      this.letGo(queue);
    }
    const drainingIds = new Set([...this.draining.keys()].filter((q) => q.topic === subscription.topic).map((q) => q.queueId));
    // A queue still draining from an earlier move is taken again in a later round, once it has committed.
    const added = queueIds.filter((queueId) => !subscription.queues.has(queueId) && !drainingIds.has(queueId));
    if (added.length === 0) return;
    const starts = await queryStartOffsets(this.client, this.options.group, subscription.topic, added, subscription.from);
    if (!this.running) return;
    assert(starts.length === added.length, 'one start offset per queue taken');
    for (const start of starts) {
      assert(!subscription.queues.has(start.queueId), 'a queue is taken once');
      const queue = new ProcessQueue(subscription.topic, start.queueId, start.committed ?? start.start, subscription.filter);
      subscription.queues.set(start.queueId, queue);
      this.rotation.push(queue);
      void this.pullLoop(queue);
    }
  }

  /** The queue ids of the topic this consumer owns now; null when the topic is (normally) missing. */
  private async assignedQueues(subscription: Subscription): Promise<number[] | null> {
    const consumerId = this.options.consumerId;
    try {
      if (consumerId === undefined) return await topicQueues(this.client, subscription.topic);
      const assignment = await this.client.call({ op: 'heartbeat', group: this.options.group, topic: subscription.topic, consumerId }, undefined, undefined, this.loops.signal);
      subscription.joined = true;
      return [...assignment.queueIds];
    } catch (error) {
      if (subscription.mayBeMissing && isLmqError(error, 'LMQ_TOPIC_NOT_FOUND')) return null;
      throw error;
    }
  }

  /** A queue moved away: no more hand-outs; the batches in hand finish, then its offset is committed. */
  private letGo(queue: ProcessQueue): void {
    queue.close();
    this.rotation = this.rotation.filter((q) => q !== queue);
    const drained = (async () => {
      await Promise.all([...queue.inFlight]);
      await this.commit([queue]).catch((error: unknown) => this.report(error, `commit of ${queue.topic}/${queue.queueId} after it moved away`));
      this.draining.delete(queue);
    })();
    this.draining.set(queue, drained);
  }

  /** Pulls one queue while it is open, waiting while its cache is full. */
  private async pullLoop(queue: ProcessQueue): Promise<void> {
    const o = this.options;
    let backoffMs = MIN_RETRY_BACKOFF_MS;
    while (!queue.closed) {
      if (queue.isFull(o.maxCachedMessagesPerQueue, o.maxCachedBytesPerQueue)) {
        await queue.untilRoom();
        continue;
      }
      try {
        // Asking for no more than the cache has room for keeps it within its bound of messages
        // (and of bytes, but for the one message a pull returns whatever its size).
        const reply = await this.client.call({
          op: 'pull', topic: queue.topic, queueId: queue.queueId, offset: queue.nextOffset,
          maxMessages: Math.min(o.maxMessagesPerPull, o.maxCachedMessagesPerQueue - queue.heldMessages),
          maxBytes: Math.max(1, Math.min(o.maxBytesPerPull, o.maxCachedBytesPerQueue - queue.heldBytes)),
          waitMs: o.pollWaitMs,
          ...(queue.filter === undefined ? {} : { filter: queue.filter }),
        }, o.pollWaitMs + PULL_MARGIN_MS, o.pollWaitMs + PULL_MARGIN_MS);
        if (queue.closed) return;
        this.pulledMessages += queue.add(reply.startOffset, reply.messages, reply.nextBeginOffset).length;
        backoffMs = MIN_RETRY_BACKOFF_MS;
        this.pump();
      } catch (error) {
        if (queue.closed) return;
        this.report(error, `pull of ${queue.topic}/${queue.queueId}`);
        await sleep(backoffMs, undefined, { signal: queue.abort.signal }).catch(() => undefined);
        backoffMs = Math.min(backoffMs * 2, o.maxRetryBackoffMs);
      }
    }
  }

  /** Hands ready messages to free workers, taking the queues in turn. */
  private pump(): void {
    while (this.running && this.runningBatches < this.options.consumeConcurrency) {
      const allowance = this.options.maxDeliveredMessages === undefined ? Number.POSITIVE_INFINITY : this.options.maxDeliveredMessages - this.deliveredMessages;
      if (allowance <= 0) return;
      const queue = this.nextReadyQueue();
      if (queue === null) return;
      const batch = queue.take(Math.min(this.options.batchSize, allowance));
      assert(batch.length > 0, 'a ready queue hands out a batch');
      assert(batch.length <= this.options.batchSize, 'a batch holds at most batchSize messages');
      this.deliveredMessages += batch.length;
      this.runningBatches++;
      const work: Promise<void> = this.consume(queue, batch).finally(() => {
        this.runningBatches--;
        queue.inFlight.delete(work);
        this.pump();
      });
      queue.inFlight.add(work);
    }
  }

  private nextReadyQueue(): ProcessQueue | null {
    for (let i = 0; i < this.rotation.length; i++) {
      const queue = this.rotation[(this.cursor + i) % this.rotation.length]!;
      if (queue.readyMessages === 0) continue;
      this.cursor = (this.cursor + i + 1) % this.rotation.length;
      return queue;
    }
    return null;
  }

  /** One listener call; its messages are finished on SUCCESS, else once each is sent back. */
  private async consume(queue: ProcessQueue, batch: PushMessage[]): Promise<void> {
    let status: ConsumeStatus;
    let reason = 'RECONSUME_LATER';
    try {
      status = (await this.listener(batch, { topic: queue.topic, queueId: queue.queueId })) === 'SUCCESS' ? 'SUCCESS' : 'RECONSUME_LATER';
    } catch (error) {
      this.report(error, `listener on ${queue.topic}/${queue.queueId}@${batch[0]!.offset}`);
      status = 'RECONSUME_LATER';
      reason = `listener threw: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (status === 'SUCCESS') {
      for (const message of batch) queue.finish(message);
      return;
    }
    await Promise.all(batch.map((message) => this.sendBack(queue, message, reason)));
  }

  /**
   * Sends a failed message back until the broker acknowledges it (then it is finished). A
   * retriable failure is retried with a growing pause while the queue is open; a refusal is
   * reported and the message goes to the listener again later. Either way an unacknowledged
   * message stays unfinished: it is never skipped, and never committed past.
   */
  private async sendBack(queue: ProcessQueue, message: PushMessage, reason: string): Promise<void> {
    const o = this.options;
    let backoffMs = MIN_RETRY_BACKOFF_MS;
    for (;;) {
      try {
        await this.client.call({
          op: 'sendBack', group: o.group, topic: message.topic, queueId: message.queueId, offset: message.offset, msgId: message.msgId,
          reason: reasonText(reason), ...(o.maxReconsumeTimes === undefined ? {} : { maxReconsumeTimes: o.maxReconsumeTimes }),
        });
        queue.finish(message);
        return;
      } catch (error) {
        this.report(error, `sendBack of ${message.topic}/${message.queueId}@${message.offset}`);
        if (isLmqError(error) && !error.retriable) {
          queue.redeliverLater(message, o.redeliverAfterMs, () => this.pump());
          return;
        }
        if (queue.closed) return;
        await sleep(backoffMs, undefined, { signal: queue.abort.signal }).catch(() => undefined);
        if (queue.closed) return;
        backoffMs = Math.min(backoffMs * 2, o.maxRetryBackoffMs);
      }
    }
  }

  /** Commits the commit point of each queue that moved past its last commit. */
  private commit(queues: readonly ProcessQueue[]): Promise<void> {
    const next = this.committing.then(async () => {
      const moved = queues.map((queue) => ({ queue, offset: queue.commitPoint() })).filter(({ queue, offset }) => offset > queue.committedOffset);
      // Offsets only move forward (the broker keeps the highest), and never past the next pull.
      for (const { queue, offset } of moved) assert(offset <= queue.nextOffset, 'a commit point is at or below the next pull');
      for (let i = 0; i < moved.length; i += LIMITS.maxOffsetsPerCommit) {
        const chunk = moved.slice(i, i + LIMITS.maxOffsetsPerCommit);
        await this.client.call({ op: 'commitOffsets', group: this.options.group, offsets: chunk.map(({ queue, offset }) => ({ topic: queue.topic, queueId: queue.queueId, offset })) });
        for (const { queue, offset } of chunk) queue.committedOffset = offset;
      }
    });
    this.committing = next.catch(() => undefined);
    return next;
  }

  private openQueues(): ProcessQueue[] {
    return this.subscriptions.flatMap((s) => [...s.queues.values()]);
  }

  private report(error: unknown, what: string): void {
    this.options.onError?.(error, what);
  }
}

/** The protocol's reason text: no control characters, at most maxReasonLength. */
function reasonText(reason: string): string {
  const clean = reason.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, LIMITS.maxReasonLength);
  return clean.trim() === '' ? 'RECONSUME_LATER' : clean;
}

function validate(o: PushConsumerOptions): void {
  const whole = (value: number | undefined, name: string, min: number, max: number) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= min && value <= max)) {
      throw new LmqError('LMQ_BAD_INPUT', `push consumer option ${name} must be a whole number from ${min} to ${max}, not ${value}`);
    }
  };
  whole(o.consumeConcurrency, 'consumeConcurrency', 1, MAX_CONSUME_CONCURRENCY);
  whole(o.batchSize, 'batchSize', 1, MAX_BATCH_SIZE);
  whole(o.maxCachedMessagesPerQueue, 'maxCachedMessagesPerQueue', 1, Number.MAX_SAFE_INTEGER);
  whole(o.maxCachedBytesPerQueue, 'maxCachedBytesPerQueue', 1, Number.MAX_SAFE_INTEGER);
  whole(o.maxReconsumeTimes, 'maxReconsumeTimes', 0, LIMITS.maxReconsumeTimes);
  whole(o.maxMessagesPerPull, 'maxMessagesPerPull', 1, LIMITS.maxPullMessages);
  whole(o.maxBytesPerPull, 'maxBytesPerPull', 1, LIMITS.maxPullBytes);
  whole(o.maxDeliveredMessages, 'maxDeliveredMessages', 1, Number.MAX_SAFE_INTEGER);
  whole(o.pollWaitMs, 'pollWaitMs', 0, 3_600_000);
  whole(o.redeliverAfterMs, 'redeliverAfterMs', 0, 3_600_000);
  // Rounds run back to back at their interval: zero would spin.
  for (const name of ['commitIntervalMs', 'rebalanceIntervalMs'] as const) whole(o[name], name, 10, 3_600_000);
  whole(o.maxRetryBackoffMs, 'maxRetryBackoffMs', MIN_RETRY_BACKOFF_MS, 3_600_000);
  if (!isName(o.topic)) throw new LmqError('LMQ_BAD_INPUT', `push consumer topic "${o.topic}" is not a valid topic name`);
  if (o.filter !== undefined) compileFilter(o.filter);
  // The group names its retry topic, which must be a valid topic name too.
  if (!isName(retryTopic(o.group))) throw new LmqError('LMQ_BAD_INPUT', `group "${o.group}" is not a valid group name, or too long for its retry topic ${retryTopic(o.group)} (names are at most ${LIMITS.maxNameLength} characters)`);
}
