// The simple consumer's state (RocketMQ 5's pop consumption: receive, ack,
// changeInvisibleDuration), replicated: every delivery and every ack is a command in the Raft
// log, applied here, so a new leader knows every message handed out and every ack, and a
// leader change neither loses an ack nor redelivers an acked message.
//
// Records (all in snapshots, snapshot.ts: the retained log cannot give them back):
//   ['popCursor', group, topic, queueId]                          → offset
//       the next offset of the queue never handed to the group;
//   ['popInflight', group, topic, queueId, offset]                → [attempt, visibleAtMs, tag, subscription, previousTag]
//       one per message received and not acked: its delivery attempt (from 1), when it
//       becomes visible again, the tag of its current delivery (the log index of the receive
//       or change that made it), the topic whose receive took it (for a %RETRY% message the
//       subscribed topic), and the tag a changeInvisibleDuration replaced (0: none);
//   ['popDue', group, subscription, visibleAtMs, topic, queueId, offset] → tag
//       the in-flight records by visibility, so a receive finds the expired ones in visibleAt
//       order without looking at the others;
//   ['popRotation', group, subscription]                          → index
//       which of the receive's queues (the topic's, then %RETRY%<group> queue 0) is looked at first.
// The group's committed offset on a queue (the record commitOffsets writes, which `group list`
// and lag read) is kept at its lowest offset not yet acked: the lowest in-flight offset, else
// the cursor. It only moves forward, as the cursor does and as in-flight records go.
//
// Apply is deterministic: the choice is made from replicated state and the command's time.
// A receive takes first the group's in-flight messages of its topic whose visibleAtMs <=
// timestampMs, in visibleAt order (a redelivery, attempt + 1), then new offsets from the
// cursors, queues taken round-robin, until `max` messages or `maxReplyBytes` (the first
// always; sizes are the fetched messages', so what apply chose fits the reply and none is
// left out of it). An expired invisible duration makes a message visible again at once — the
// duration was its back-off, as in RocketMQ 5's pop revive; there is no further delay. A
// delivery that would exceed maxDeliveryAttempts is not handed out: the leader read its
// message and carries its dead-letter copy in the command, which apply places in
// `%DLQ%<group>` unless the delivery changed meanwhile (then it waits for the next receive,
// handed out by none). A message retention forgot is dropped from flight when found.
// A FIFO receive (RocketMQ 5's orderly pop) holds each queue while a message of it is in flight
// for the group and not visible again: it looks at no due records across queues; per queue,
// in rotation, one with no invisible message hands out its expired messages in offset order
// (attempt + 1), then new offsets — so one queue's messages reach the group in order, and the
// next waits until the earlier one is acked or its invisible duration ends. A queue whose
// expired message has no delivery attempt left stays held until the message is dead-lettered.
import { assert } from '../util/assert.js';
import { LIMITS } from '../protocol/index.js';
import { type BrokerCommand, type DeliveryRef, retryTopicOf } from './commands.js';
import { queueKey } from './placement.js';
import type { QueueRef, StoredMessage } from './reads.js';
import { deadLetterCopy, type RetrySettings } from './retry.js';
import type { BrokerStateMachine } from './state-machine.js';
import { type BrokerStore, type ConsumeQueueRecord, type Key, MAX_KEY_PART, type QueueRecord } from './store.js';

export const CURSOR_KIND = 'popCursor';
export const INFLIGHT_KIND = 'popInflight';
export const DUE_KIND = 'popDue';
export const ROTATION_KIND = 'popRotation';

type ReceiveCommand = Extract<BrokerCommand, { kind: 'receive' }>;
type AckCommand = Extract<BrokerCommand, { kind: 'ack' }>;
type ChangeCommand = Extract<BrokerCommand, { kind: 'changeInvisibleDuration' }>;

/**
 * Due records a receive looks at, at most. Exhausted deliveries waiting for their dead-letter
 * copy are among them; this bound is part of apply's rule (changing it changes results).
 */
const MAX_DUE_SCANNED_PER_RECEIVE = 256;
/** In-flight records removed per range call when a reset starts a queue over. */
const INFLIGHT_PER_PAGE = 1024;
/** A received message's reply bytes beyond its strings and body: field names, numbers, receipt. */
const REPLY_OVERHEAD_BYTES = 1024;
/** msgpack's header of one string (at most). */
const STRING_HEADER_BYTES = 5;

interface InFlight {
  attempt: number;
  visibleAtMs: number;
  tag: number;
  subscription: string;
  previousTag: number;
}

/** A message a receive handed out: its delivery, the attempt it is, and until when it is invisible. */
export interface Received {
  delivery: DeliveryRef;
  attempt: number;
  visibleAtMs: number;
  message: StoredMessage;
}

export type SimpleApplyResult =
  /** deadLettered: exhausted deliveries whose dead-letter copy this receive placed. */
  | { kind: 'receive'; received: Received[]; deadLettered: number }
  | { kind: 'receive'; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string }
  /** acked: receipts acked now or before; expired: positions of those whose message was delivered again since. */
  | { kind: 'ack'; acked: number; expired: number[] }
  | { kind: 'changeInvisibleDuration'; tag: number; visibleAtMs: number }
  | { kind: 'changeInvisibleDuration'; error: 'LMQ_RECEIPT_EXPIRED'; message: string };

/** Reads of the log a receive needs (the state machine's reader). */
export type MessageFetcher = (refs: readonly QueueRef[]) => StoredMessage[];

interface Candidate {
  ref: QueueRef;
  /** The current in-flight record of a redelivery; undefined for a new offset. */
  previous: InFlight | undefined;
  /** A new offset: which of the receive's queues it came from. */
  queueIndex: number;
}

/**
 * Applies a receive whose topic exists. Returns its result and the positions of the command's
 * dead letters it accepted (the caller places those copies and marks the others skipped).
 */
export function applyReceive(store: BrokerStore, command: ReceiveCommand, logIndex: number, fetch: MessageFetcher): { result: SimpleApplyResult; accepted: number[] } {
  const touched = new Map<string, { topic: string; queueId: number }>();
  const touch = (topic: string, queueId: number) => touched.set(queueKey(topic, queueId), { topic, queueId });
  const accepted: number[] = [];
  command.deadLetters.forEach(({ delivery }, position) => {
    const held = getInFlight(store, command.group, delivery);
    if (held === undefined || held.tag !== delivery.tag || held.visibleAtMs > command.timestampMs || held.attempt < command.maxDeliveryAttempts) return;
    removeInFlight(store, command.group, delivery, held);
    touch(delivery.topic, delivery.queueId);
    accepted.push(position);
  });
  const queues = receiveQueues(store, command.group, command.topic);
  const rotation = (getRotation(store, command.group, command.topic) ?? 0) % queues.length;
  const candidates = collectCandidates(store, command, queues, rotation, touch);
  const messages = fetch(candidates.map((c) => c.ref));
  assert(messages.length === candidates.length, 'one message per candidate');
  let bytes = 0;
  let chosen = 0;
  for (; chosen < messages.length; chosen++) {
    const size = receivedReplyBytes(messages[chosen]!);
    if (chosen > 0 && bytes + size > command.maxReplyBytes) break;
    bytes += size;
  }
  const visibleAtMs = command.timestampMs + command.invisibleDurationMs;
  const received = candidates.slice(0, chosen).map((candidate, i): Received => {
    const { topic, queueId, offset } = candidate.ref;
    const delivery = { topic, queueId, offset, tag: logIndex };
    const attempt = (candidate.previous?.attempt ?? 0) + 1;
    if (candidate.previous !== undefined) removeInFlight(store, command.group, delivery, candidate.previous);
    else store.put(cursorKey(command.group, topic, queueId), offset + 1);
    putInFlight(store, command.group, delivery, { attempt, visibleAtMs, tag: logIndex, subscription: command.topic, previousTag: 0 });
    touch(topic, queueId);
    return { delivery, attempt, visibleAtMs, message: messages[i]! };
  });
  const lastNew = candidates.slice(0, chosen).filter((c) => c.previous === undefined).at(-1);
  if (lastNew !== undefined && queues.length > 1) store.put([ROTATION_KIND, command.group, command.topic], (lastNew.queueIndex + 1) % queues.length);
  for (const { topic, queueId } of touched.values()) updateCommitted(store, command.group, topic, queueId);
  assert(received.length <= command.max, 'a receive hands out at most max messages');
  return { result: { kind: 'receive', received, deadLettered: accepted.length }, accepted };
}

/** Expired deliveries first (visibleAt order), then new offsets round-robin from `rotation`; bounded by max and, on body sizes, by maxReplyBytes. */
function collectCandidates(store: BrokerStore, command: ReceiveCommand, queues: readonly { topic: string; queueId: number }[], rotation: number, touch: (topic: string, queueId: number) => void): Candidate[] {
  const candidates: Candidate[] = [];
  let bodyBytes = 0;
  // A candidate's reply is at least its body: past the bound no more can be chosen.
  const room = (at: ConsumeQueueRecord) => candidates.length < command.max && (candidates.length === 0 || bodyBytes + at.bodyBytes + REPLY_OVERHEAD_BYTES <= command.maxReplyBytes);
  const add = (ref: QueueRef, previous: InFlight | undefined, queueIndex: number) => {
    bodyBytes += ref.at.bodyBytes + REPLY_OVERHEAD_BYTES;
    candidates.push({ ref, previous, queueIndex });
  };
  if (command.fifo === true) {
    collectFifoCandidates(store, command, queues, rotation, room, add, touch);
    return candidates;
  }
  for (const due of listDue(store, command.group, command.topic, command.timestampMs, MAX_DUE_SCANNED_PER_RECEIVE)) {
    const held = getInFlight(store, command.group, due);
    assert(held !== undefined && held.tag === due.tag && held.visibleAtMs === due.visibleAtMs, 'a due record has its in-flight record');
    const queue = requireQueue(store, due.topic, due.queueId);
    if (due.offset < queue.minOffset) {
      // Retention forgot the message: nothing is left to deliver or to dead-letter.
      removeInFlight(store, command.group, due, held);
      touch(due.topic, due.queueId);
      continue;
    }
    if (held.attempt >= command.maxDeliveryAttempts) continue;
    const at = consumeQueueAt(store, due.topic, due.queueId, due.offset);
    if (!room(at)) return candidates;
    add({ topic: due.topic, queueId: due.queueId, offset: due.offset, at }, held, -1);
  }
  for (let k = 0; k < queues.length; k++) {
    const queueIndex = (rotation + k) % queues.length;
    const { topic, queueId } = queues[queueIndex]!;
    const queue = requireQueue(store, topic, queueId);
    for (let offset = Math.max(cursorOf(store, command.group, topic, queueId, queue), queue.minOffset); offset < queue.nextOffset; offset++) {
      const at = consumeQueueAt(store, topic, queueId, offset);
      if (!room(at)) return candidates;
      add({ topic, queueId, offset, at }, undefined, queueIndex);
    }
  }
  return candidates;
}

/** A FIFO receive's candidates: per queue not held, its expired in-flight messages in offset order, then new offsets. */
function collectFifoCandidates(
  store: BrokerStore,
  command: ReceiveCommand,
  queues: readonly { topic: string; queueId: number }[],
  rotation: number,
  room: (at: ConsumeQueueRecord) => boolean,
  add: (ref: QueueRef, previous: InFlight | undefined, queueIndex: number) => void,
  touch: (topic: string, queueId: number) => void,
): void {
  for (let k = 0; k < queues.length; k++) {
    const queueIndex = (rotation + k) % queues.length;
    const { topic, queueId } = queues[queueIndex]!;
    const queue = requireQueue(store, topic, queueId);
    const held = fifoInFlight(store, command.group, topic, queueId, command.timestampMs);
    // Held while a message is invisible, or has no attempt left (until it is dead-lettered).
    if (held === undefined || held.some(({ record }) => record.attempt >= command.maxDeliveryAttempts)) continue;
    for (const { offset, record } of held) {
      if (offset < queue.minOffset) {
        removeInFlight(store, command.group, { topic, queueId, offset }, record);
        touch(topic, queueId);
        continue;
      }
      const at = consumeQueueAt(store, topic, queueId, offset);
      if (!room(at)) return;
      add({ topic, queueId, offset, at }, record, queueIndex);
    }
    for (let offset = Math.max(cursorOf(store, command.group, topic, queueId, queue), queue.minOffset); offset < queue.nextOffset; offset++) {
      const at = consumeQueueAt(store, topic, queueId, offset);
      if (!room(at)) return;
      add({ topic, queueId, offset, at }, undefined, queueIndex);
    }
  }
}

/**
 * The group's in-flight messages of a queue in offset order when none is invisible at nowMs,
 * else undefined (the queue is held). More than MAX_DUE_SCANNED_PER_RECEIVE count as held: a
 * FIFO receive hands out at most maxReceiveMessages per queue, so only a mix with other receives
 * of the group gets there.
 */
function fifoInFlight(store: BrokerStore, group: string, topic: string, queueId: number, nowMs: number): { offset: number; record: InFlight }[] | undefined {
  const page = store.range([INFLIGHT_KIND, group, topic, queueId], [INFLIGHT_KIND, group, topic, queueId, MAX_KEY_PART], MAX_DUE_SCANNED_PER_RECEIVE + 1);
  if (page.length > MAX_DUE_SCANNED_PER_RECEIVE) return undefined;
  const records = page.map(({ key, value }) => ({ offset: key[4] as number, record: decodeInFlight(value) }));
  return records.some(({ record }) => record.visibleAtMs > nowMs) ? undefined : records;
}

/** Acks each current delivery named; a receipt of a message no longer in flight was acked before (or dead-lettered). */
export function applyAck(store: BrokerStore, command: AckCommand): SimpleApplyResult {
  const expired: number[] = [];
  const touched = new Map<string, { topic: string; queueId: number }>();
  command.receipts.forEach((delivery, position) => {
    const held = getInFlight(store, command.group, delivery);
    if (held === undefined) return;
    if (held.tag !== delivery.tag) {
      expired.push(position);
      return;
    }
    removeInFlight(store, command.group, delivery, held);
    touched.set(queueKey(delivery.topic, delivery.queueId), delivery);
  });
  for (const { topic, queueId } of touched.values()) updateCommitted(store, command.group, topic, queueId);
  return { kind: 'ack', acked: command.receipts.length - expired.length, expired };
}

/**
 * Moves a current delivery's visibility to timestampMs + invisibleDurationMs under a new tag
 * (this entry's index). A repeat of the change (its receipt is the tag it replaced) answers
 * the same new tag again, so a client may retry it across a leader change.
 */
export function applyChangeInvisibleDuration(store: BrokerStore, command: ChangeCommand, logIndex: number): SimpleApplyResult {
  const { group, receipt } = command;
  const held = getInFlight(store, group, receipt);
  if (held !== undefined && held.tag === receipt.tag) {
    removeInFlight(store, group, receipt, held);
    const changed = { ...held, visibleAtMs: command.timestampMs + command.invisibleDurationMs, tag: logIndex, previousTag: receipt.tag };
    putInFlight(store, group, receipt, changed);
    return { kind: 'changeInvisibleDuration', tag: changed.tag, visibleAtMs: changed.visibleAtMs };
  }
  if (held !== undefined && held.previousTag === receipt.tag) return { kind: 'changeInvisibleDuration', tag: held.tag, visibleAtMs: held.visibleAtMs };
  const where = `${receipt.topic}/${receipt.queueId} offset ${receipt.offset}`;
  const why = held === undefined ? 'is no longer in flight (acked, or sent to the DLQ)' : 'was delivered again since this receipt was handed out';
  return { kind: 'changeInvisibleDuration', error: 'LMQ_RECEIPT_EXPIRED', message: `the message at ${where} for group ${group} ${why}` };
}

/**
 * A resetOffsets of a queue the group receives from starts it over at `offset`: the cursor
 * moves there and the queue's in-flight records go (their messages are handed out again from
 * the cursor if they lie past it). Nothing happens for a queue the group never received from.
 */
export function resetReceiveCursor(store: BrokerStore, group: string, topic: string, queueId: number, offset: number): void {
  if (store.get(cursorKey(group, topic, queueId)) === undefined) return;
  store.put(cursorKey(group, topic, queueId), offset);
  for (;;) {
    const page = store.range([INFLIGHT_KIND, group, topic, queueId], [INFLIGHT_KIND, group, topic, queueId, MAX_KEY_PART], INFLIGHT_PER_PAGE);
    for (const { key, value } of page) removeInFlight(store, group, { topic, queueId, offset: key[4] as number }, decodeInFlight(value));
    if (page.length < INFLIGHT_PER_PAGE) return;
  }
}

// --- the leader's side -----------------------------------------------------------------------

export interface ReceiveRequest {
  readonly group: string;
  readonly topic: string;
  readonly clientId: string;
  readonly max: number;
  readonly invisibleDurationMs: number;
  readonly fifo?: boolean | undefined;
}

/**
 * The receive command the leader proposes at nowMs: the cluster's consumer.maxReconsumeTimes
 * resolved into maxDeliveryAttempts, and the dead-letter copies of the exhausted deliveries it
 * sees (their messages read now; at most maxReceiveMessages, bodies within one produce's).
 */
export function receiveCommand(state: BrokerStateMachine, request: ReceiveRequest, settings: RetrySettings, nowMs: number): ReceiveCommand {
  const maxDeliveryAttempts = settings.maxReconsumeTimes + 1;
  const reason = (attempts: number) => `not acked within its invisible duration on ${attempts} deliveries (maxReconsumeTimes ${settings.maxReconsumeTimes})`;
  const deadLetters = state
    .exhaustedDeliveries(request.group, request.topic, nowMs, maxDeliveryAttempts, LIMITS.maxReceiveMessages, LIMITS.maxProduceBodyBytes)
    .map(({ delivery, attempt, message }) => ({ delivery, message: deadLetterCopy(message, request.group, reason(attempt), attempt, nowMs) }));
  const { group, topic, clientId, max, invisibleDurationMs } = request;
  const fifo = request.fifo === true ? { fifo: true as const } : {};
  return { kind: 'receive', timestampMs: nowMs, group, topic, clientId, max, invisibleDurationMs, maxDeliveryAttempts, maxReplyBytes: LIMITS.maxReceiveReplyBytes, deadLetters, ...fifo };
}

/**
 * Whether a receive at nowMs would find something to do: an expired delivery, or an offset not
 * yet handed out — for a FIFO receive, of a queue that is not held.
 */
export function receivable(store: BrokerStore, group: string, topic: string, nowMs: number, fifo = false): boolean {
  if (fifo) return receiveQueues(store, group, topic).some(({ topic: t, queueId }) => fifoQueueReceivable(store, group, t, queueId, nowMs));
  const next = nextVisibleAtMs(store, group, topic);
  if (next !== undefined && next <= nowMs) return true;
  return receiveQueues(store, group, topic).some(({ topic: t, queueId }) => {
    const queue = requireQueue(store, t, queueId);
    return Math.max(cursorOf(store, group, t, queueId, queue), queue.minOffset) < queue.nextOffset;
  });
}

function fifoQueueReceivable(store: BrokerStore, group: string, topic: string, queueId: number, nowMs: number): boolean {
  const held = fifoInFlight(store, group, topic, queueId, nowMs);
  if (held === undefined) return false;
  if (held.length > 0) return true; // expired: redelivered, or dead-lettered when it has no attempt left
  const queue = requireQueue(store, topic, queueId);
  return Math.max(cursorOf(store, group, topic, queueId, queue), queue.minOffset) < queue.nextOffset;
}

/** When the group's earliest in-flight message of the topic becomes visible again; undefined when none is in flight. */
export function nextVisibleAtMs(store: BrokerStore, group: string, topic: string): number | undefined {
  return listDue(store, group, topic, Number.MAX_SAFE_INTEGER, 1)[0]?.visibleAtMs;
}

/** Expired deliveries at nowMs that may not be handed out again (attempt >= maxDeliveryAttempts), in visibleAt order, at most max. */
export function exhaustedDeliveries(store: BrokerStore, group: string, topic: string, nowMs: number, maxDeliveryAttempts: number, max: number): (DeliveryRef & { attempt: number })[] {
  const found: (DeliveryRef & { attempt: number })[] = [];
  for (const due of listDue(store, group, topic, nowMs, MAX_DUE_SCANNED_PER_RECEIVE)) {
    const held = getInFlight(store, group, due);
    assert(held !== undefined, 'a due record has its in-flight record');
    if (held.attempt < maxDeliveryAttempts || due.offset < requireQueue(store, due.topic, due.queueId).minOffset) continue;
    found.push({ topic: due.topic, queueId: due.queueId, offset: due.offset, tag: due.tag, attempt: held.attempt });
    if (found.length === max) break;
  }
  return found;
}

/**
 * Bytes a received message takes in a reply, at most: its body and strings as UTF-8, each
 * with a string header, and a fixed part for field names, numbers and the receipt.
 */
export function receivedReplyBytes(message: StoredMessage): number {
  const strings = [message.msgId, message.topic, message.tag ?? '', ...(message.keys ?? []), ...Object.entries(message.properties ?? {}).flat(), message.origin?.msgId ?? '', message.origin?.topic ?? '', message.deadLetter?.reason ?? ''];
  let bytes = message.body.byteLength + REPLY_OVERHEAD_BYTES;
  for (const text of strings) bytes += Buffer.byteLength(text, 'utf8') + STRING_HEADER_BYTES;
  return bytes;
}

// --- records ----------------------------------------------------------------------------------

/** The queues a receive of `topic` reads for the group: the topic's, then %RETRY%<group> once it exists. */
function receiveQueues(store: BrokerStore, group: string, topic: string): { topic: string; queueId: number }[] {
  const record = store.getTopic(topic);
  assert(record !== undefined, () => `receive of missing topic ${topic}`);
  const queues = Array.from({ length: record.queues }, (_, queueId) => ({ topic, queueId }));
  const retry = retryTopicOf(group);
  if (retry !== topic && store.getTopic(retry) !== undefined) queues.push({ topic: retry, queueId: 0 });
  return queues;
}

/** The next offset never handed to the group: its cursor, else the group's committed offset, else the queue's first. */
function cursorOf(store: BrokerStore, group: string, topic: string, queueId: number, queue: QueueRecord): number {
  const cursor = store.get(cursorKey(group, topic, queueId));
  if (cursor !== undefined) return cursor as number;
  return store.getOffset(group, topic, queueId) ?? queue.minOffset;
}

/** The committed offset follows the lowest offset not yet acked (forward only, within the queue). */
function updateCommitted(store: BrokerStore, group: string, topic: string, queueId: number): void {
  const [lowest] = store.range([INFLIGHT_KIND, group, topic, queueId], [INFLIGHT_KIND, group, topic, queueId, MAX_KEY_PART], 1);
  const queue = requireQueue(store, topic, queueId);
  const cursor = store.get(cursorKey(group, topic, queueId)) as number | undefined;
  assert(cursor !== undefined, () => `group ${group} has deliveries of ${topic}/${queueId} without a cursor`);
  const unacked = lowest === undefined ? cursor : (lowest.key[4] as number);
  const offset = Math.min(Math.max(unacked, store.getOffset(group, topic, queueId) ?? 0), queue.nextOffset);
  store.putOffset(group, topic, queueId, offset);
}

function getInFlight(store: BrokerStore, group: string, at: { topic: string; queueId: number; offset: number }): InFlight | undefined {
  const value = store.get([INFLIGHT_KIND, group, at.topic, at.queueId, at.offset]);
  return value === undefined ? undefined : decodeInFlight(value);
}

function putInFlight(store: BrokerStore, group: string, at: { topic: string; queueId: number; offset: number }, record: InFlight): void {
  assert(record.attempt >= 1 && record.tag >= 1, 'an in-flight record has an attempt and a tag');
  store.put([INFLIGHT_KIND, group, at.topic, at.queueId, at.offset], [record.attempt, record.visibleAtMs, record.tag, record.subscription, record.previousTag]);
  store.insert(dueKey(group, record.subscription, record.visibleAtMs, at), record.tag);
}

function removeInFlight(store: BrokerStore, group: string, at: { topic: string; queueId: number; offset: number }, record: InFlight): void {
  store.remove([INFLIGHT_KIND, group, at.topic, at.queueId, at.offset]);
  store.remove(dueKey(group, record.subscription, record.visibleAtMs, at));
}

function listDue(store: BrokerStore, group: string, subscription: string, dueByMs: number, limit: number): (DeliveryRef & { visibleAtMs: number })[] {
  return store.range([DUE_KIND, group, subscription], [DUE_KIND, group, subscription, dueByMs + 0.5], limit).map(({ key, value }) => {
    const [, , , visibleAtMs, topic, queueId, offset] = key as [string, string, string, number, string, number, number];
    return { topic, queueId, offset, tag: value as number, visibleAtMs };
  });
}

function getRotation(store: BrokerStore, group: string, topic: string): number | undefined {
  return store.get([ROTATION_KIND, group, topic]) as number | undefined;
}

function cursorKey(group: string, topic: string, queueId: number): Key {
  return [CURSOR_KIND, group, topic, queueId];
}

function dueKey(group: string, subscription: string, visibleAtMs: number, at: { topic: string; queueId: number; offset: number }): Key {
  return [DUE_KIND, group, subscription, visibleAtMs, at.topic, at.queueId, at.offset];
}

function decodeInFlight(value: unknown): InFlight {
  assert(inFlightProblem(value) === undefined, 'an in-flight record is [attempt, visibleAtMs, tag, subscription, previousTag]');
  const [attempt, visibleAtMs, tag, subscription, previousTag] = value as [number, number, number, string, number];
  return { attempt, visibleAtMs, tag, subscription, previousTag };
}

function requireQueue(store: BrokerStore, topic: string, queueId: number): QueueRecord {
  const queue = store.getQueue(topic, queueId);
  assert(queue !== undefined, () => `simple consumer state names missing queue ${topic}/${queueId}`);
  return queue;
}

function consumeQueueAt(store: BrokerStore, topic: string, queueId: number, offset: number): ConsumeQueueRecord {
  const at = store.getConsumeQueue(topic, queueId, offset);
  assert(at !== undefined, () => `consume queue ${topic}/${queueId} lacks offset ${offset}`);
  return at;
}

// --- snapshot checks (a payload is input from disk or the network) ----------------------------

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

function inFlightProblem(value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 5) return 'is not [attempt, visibleAtMs, tag, subscription, previousTag]';
  const [attempt, visibleAtMs, tag, subscription, previousTag] = value as unknown[];
  if (!isCount(attempt) || attempt < 1 || attempt > LIMITS.maxReconsumeTimes + 1) return 'has no attempt';
  if (!isCount(tag) || tag < 1 || !isCount(previousTag) || previousTag >= tag) return 'has bad tags';
  return isCount(visibleAtMs) && typeof subscription === 'string' && subscription.length >= 1 ? undefined : 'has no visibility or subscription';
}

/** What is wrong with one simple-consumer record's shape, if anything. */
export function simpleRecordProblem(key: Key, value: unknown): string | undefined {
  const shape = (types: string) => key.length === types.length + 1 && [...types].every((type, i) => (type === 's' ? typeof key[i + 1] === 'string' : isCount(key[i + 1])));
  switch (key[0]) {
    case CURSOR_KIND:
      return shape('ssn') && isCount(value) ? undefined : 'is not a receive cursor';
    case INFLIGHT_KIND:
      return shape('ssnn') ? inFlightProblem(value) : 'has a bad key';
    case DUE_KIND:
      return shape('ssnsnn') && isCount(value) && value >= 1 ? undefined : 'is not a due record';
    case ROTATION_KIND:
      return shape('ss') && isCount(value) ? undefined : 'is not a rotation';
    default:
      return 'is not a simple-consumer record';
  }
}

/**
 * Relations of a snapshot's simple-consumer records: each names a stored queue position, and
 * in-flight and due records pair up one to one. `queues` maps queueKey to [minOffset, nextOffset].
 */
export function simpleRelationProblem(records: readonly { key: Key; value: unknown }[], queues: ReadonlyMap<string, readonly [number, number]>): string | undefined {
  const due = new Set<string>();
  for (const { key, value } of records) {
    if (key[0] !== DUE_KIND) continue;
    const [, group, subscription, visibleAtMs, topic, queueId, offset] = key as [string, string, string, number, string, number, number];
    due.add(JSON.stringify([group, subscription, visibleAtMs, topic, queueId, offset, value]));
  }
  let inFlight = 0;
  for (const { key, value } of records) {
    const kind = key[0];
    if (kind !== CURSOR_KIND && kind !== INFLIGHT_KIND) continue;
    const [, group, topic, queueId, offset] = key as [string, string, string, number, number | undefined];
    const range = queues.get(queueKey(topic, queueId));
    if (range === undefined) return `${kind} of ${group} on ${topic}/${queueId} has no queue`;
    if (kind === CURSOR_KIND && (value as number) > range[1]) return `receive cursor of ${group} on ${topic}/${queueId} is past the queue's end`;
    if (kind === INFLIGHT_KIND) {
      const record = decodeInFlight(value);
      if (offset! >= range[1]) return `in-flight message of ${group} at ${topic}/${queueId} offset ${offset} is past the queue's end`;
      if (!due.has(JSON.stringify([group, record.subscription, record.visibleAtMs, topic, queueId, offset, record.tag]))) return `in-flight message of ${group} at ${topic}/${queueId} offset ${offset} has no due record`;
      inFlight++;
    }
  }
  return inFlight === due.size ? undefined : 'due records without in-flight messages';
}
