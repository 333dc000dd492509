// Growing a topic's queues (`topic update NAME --queues N`, grow only), replicated as one
// growTopic command. Applying it adds the queues, gives every group that consumes the topic
// (has an offset on any of its queues) offset 0 on each new one — so their backlog shows and
// their consumers start the new queues at their first message whatever `from` says — and keeps
// a growth record: the old queue count, each old queue's next offset at the change (its
// boundary) and until when keys wait (the command's time + topic.maxReorderWaitMs).
//
// A keyed producer's key whose queue changes (hash % old ≠ hash % new) must not overtake its
// messages still unread in the old queue: while a growth is pending the route answers which old
// queues some group has not consumed up to their boundary, and the producer holds those keys
// (src/client/producer.ts) until every group has, or until the growth's time runs out — only
// then may a key's order break, and the producer logs it. Everything here is read from
// replicated state and the command's own time, so every node, and a new leader, agree.
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import type { BrokerCommand } from './commands.js';
import type { BrokerStore, GrowthRecord } from './store.js';

export type GrowTopicCommand = Extract<BrokerCommand, { kind: 'growTopic' }>;

/** An old queue some groups have not consumed up to its boundary yet. */
export interface WaitingQueue {
  readonly queueId: number;
  readonly boundary: number;
  readonly groups: readonly string[];
}

export interface PendingGrowth {
  readonly fromQueues: number;
  readonly toQueues: number;
  readonly untilMs: number;
  readonly waiting: readonly WaitingQueue[];
}

export type GrowTopicResult =
  | { kind: 'growTopic'; ok: true; fromQueues: number; toQueues: number; untilMs: number; waiting: WaitingQueue[] }
  | { kind: 'growTopic'; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string };

/** Why a produce routed over `routedQueues` is refused by a topic that has `queues` now (LMQ_ROUTE_CHANGED). */
export function routeChangedMessage(topic: string, queues: number, routedQueues: number): string {
  return `topic "${topic}" has ${queues} queues now, not the ${routedQueues} this produce was routed over; nothing was stored: route again and resend`;
}

/** Groups listed when looking for those that consume a topic. */
const MAX_GROUPS = 100_000;

/** Groups with an offset on any queue of the topic: the ones whose order a growth must keep. */
export function groupsOnTopic(store: BrokerStore, topic: string): string[] {
  return store.listGroups(MAX_GROUPS).filter((group) => store.hasOffsetOn(group, topic));
}

export function applyGrowTopic(store: BrokerStore, command: GrowTopicCommand, logIndex: number): GrowTopicResult {
  const topic = store.getTopic(command.topic);
  if (topic === undefined) return { kind: 'growTopic', error: 'LMQ_TOPIC_NOT_FOUND', message: `topic "${command.topic}" does not exist` };
  if (command.queues <= topic.queues) {
    return { kind: 'growTopic', error: 'LMQ_BAD_INPUT', message: `topic "${command.topic}" has ${topic.queues} queues; a topic only grows: give more than ${topic.queues}` };
  }
  const previous = pendingGrowth(store, command.topic, command.timestampMs);
  if (previous !== undefined) {
    const groups = [...new Set(previous.waiting.flatMap((q) => q.groups))].join(', ');
    return { kind: 'growTopic', error: 'LMQ_BAD_INPUT', message: `topic "${command.topic}" is still growing from ${previous.fromQueues} queues: keys wait for ${groups} (at most until ${new Date(previous.untilMs).toISOString()}); grow it again after that` };
  }
  const groups = groupsOnTopic(store, command.topic);
  const boundaries = Array.from({ length: topic.queues }, (_, queueId) => store.getQueue(command.topic, queueId)!.nextOffset);
  store.putTopic(command.topic, { queues: command.queues, createdAtLogIndex: topic.createdAtLogIndex });
  for (let queueId = topic.queues; queueId < command.queues; queueId++) {
    store.putQueue(command.topic, queueId, { minOffset: 0, nextOffset: 0 });
    for (const group of groups) store.putOffset(group, command.topic, queueId, 0);
  }
  const untilMs = command.timestampMs + command.maxReorderWaitMs;
  store.putGrowth(command.topic, { fromQueues: topic.queues, toQueues: command.queues, logIndex, untilMs, boundaries });
  const waiting = pendingGrowth(store, command.topic, command.timestampMs)?.waiting ?? [];
  return { kind: 'growTopic', ok: true, fromQueues: topic.queues, toQueues: command.queues, untilMs, waiting: [...waiting] };
}

/**
 * The topic's last growth while some group has not consumed an old queue up to its boundary —
 * also past its untilMs, so a producer that then moves a held key can tell (and log) that its
 * order may break; undefined once every group has passed every boundary.
 */
export function unfinishedGrowth(store: BrokerStore, topic: string): PendingGrowth | undefined {
  const growth = store.getGrowth(topic);
  if (growth === undefined) return undefined;
  const waiting = waitingQueues(store, topic, growth);
  return waiting.length === 0 ? undefined : { fromQueues: growth.fromQueues, toQueues: growth.toQueues, untilMs: growth.untilMs, waiting };
}

/** The unfinished growth whose wait is still on at nowMs (keys are held), if any. */
export function pendingGrowth(store: BrokerStore, topic: string, nowMs: number): PendingGrowth | undefined {
  const growth = unfinishedGrowth(store, topic);
  return growth !== undefined && nowMs < growth.untilMs ? growth : undefined;
}

function waitingQueues(store: BrokerStore, topic: string, growth: GrowthRecord): WaitingQueue[] {
  assert(growth.boundaries.length === growth.fromQueues, 'a growth has one boundary per old queue');
  const groups = groupsOnTopic(store, topic);
  const waiting: WaitingQueue[] = [];
  growth.boundaries.forEach((boundary, queueId) => {
    const queue = store.getQueue(topic, queueId);
    assert(queue !== undefined && queueId < LIMITS.maxQueuesPerTopic, () => `growth of ${topic} names missing queue ${queueId}`);
    // Retention may have deleted messages below the boundary: those no group can read any more.
    const behind = groups.filter((group) => Math.max(store.getOffset(group, topic, queueId) ?? 0, queue.minOffset) < boundary);
    if (behind.length > 0) waiting.push({ queueId, boundary, groups: behind });
  });
  return waiting;
}
