// Retention in the broker state: what applying `truncateLog { firstIndex }` means, and the
// deletion of what it forgets. The command is replicated, so every node moves the same queues'
// minOffset at the same log index; the lead's retention policy proposes it and each node then
// deletes its own log segments below it.
//
// Applying it (deterministic): retainedFromIndex becomes max(current, firstIndex), and every
// queue's minOffset moves to its first offset whose message is at log index >= that (queues
// are in log order, so a binary search finds it). The records below — consume queue entries,
// their key and msgId index records, unplaced marks — are not deleted in that apply: it could
// be millions. Readers never see them (reads start at minOffset, index lookups start their
// range at retainedFromIndex, both part of the key), stateDigest() leaves them out, and
// collectGarbage() deletes them in bounded steps after the applies (state-machine.ts), so
// when that happens may differ from node to node without the replicas' digests differing.
// The resent marks of forgotten dead letters are deleted in the apply itself (one per resent
// dead letter, so few).
import { assert } from '../util/assert.js';
import { DLQ_TOPIC_PREFIX } from './commands.js';
import { type BrokerStore, type Key, type QueueRecord, retainedConsumeQueueBytes } from './store.js';

/** Meta names this module owns. */
export const RETAINED_FROM_INDEX_META = 'retainedFromIndex';
/** Store time of the last message placed below retainedFromIndex (0: none); rebuilds start their running store time at it. */
export const RETAINED_FROM_STORE_TIMESTAMP_META = 'retainedFromStoreTimestampMs';

/** Resent marks removed per range call when retention forgets a group's dead letters. */
const RESENT_MARKS_PER_PAGE = 1024;
/** Queues read per range call while a truncate looks for the queues it moves. */
const QUEUES_PER_PAGE = 1024;

export function retainedFromIndex(store: BrokerStore): number {
  return store.getMeta(RETAINED_FROM_INDEX_META) ?? 1;
}

/**
 * Moves retainedFromIndex to firstIndex (> the current one) and each queue's minOffset with it;
 * marks the forgotten consume queue records as garbage.
 */
export function truncateBelow(store: BrokerStore, firstIndex: number): void {
  const previous = retainedFromIndex(store);
  assert(firstIndex > previous, () => `truncate to ${firstIndex} does not pass retainedFromIndex ${previous}`);
  // Two passes: listing the queues while writing them would re-scan the written records per page.
  const moves: { topic: string; queueId: number; queue: QueueRecord; minOffset: number }[] = [];
  let after: { topic: string; queueId: number } | undefined;
  for (;;) {
    const page = store.listQueues(after, QUEUES_PER_PAGE);
    for (const { topic, queueId, minOffset, nextOffset } of page) {
      const newMinOffset = firstOffsetFrom(store, topic, queueId, { minOffset, nextOffset }, firstIndex);
      if (newMinOffset !== minOffset) moves.push({ topic, queueId, queue: { minOffset, nextOffset }, minOffset: newMinOffset });
    }
    if (page.length < QUEUES_PER_PAGE) break;
    after = page.at(-1);
  }
  // Store time never goes backwards along the log, so the last message placed below firstIndex
  // has the greatest store time of those; it is some moved queue's last forgotten message, or
  // was already below the previous retainedFromIndex.
  let storeTimestampMs = store.getMeta(RETAINED_FROM_STORE_TIMESTAMP_META) ?? 0;
  for (const { topic, queueId, queue, minOffset } of moves) {
    const last = store.getConsumeQueue(topic, queueId, minOffset - 1);
    assert(last !== undefined, () => `forgotten offset ${minOffset - 1} of ${topic}/${queueId} is already gone`);
    storeTimestampMs = Math.max(storeTimestampMs, last.storeTimestampMs);
    store.putQueue(topic, queueId, { minOffset, nextOffset: queue.nextOffset });
    if (store.getGarbage(topic, queueId) === undefined) store.putGarbage(topic, queueId, queue.minOffset);
    // The resent marks of forgotten dead letters go with them (one small record each).
    if (topic.startsWith(DLQ_TOPIC_PREFIX)) {
      const group = topic.slice(DLQ_TOPIC_PREFIX.length);
      while (store.removeDlqResentBelow(group, minOffset, RESENT_MARKS_PER_PAGE) === RESENT_MARKS_PER_PAGE);
    }
  }
  store.putMeta(RETAINED_FROM_INDEX_META, firstIndex);
  store.putMeta(RETAINED_FROM_STORE_TIMESTAMP_META, storeTimestampMs);
}

/** The first offset of the queue whose message is at log index >= firstIndex (nextOffset if none). */
function firstOffsetFrom(store: BrokerStore, topic: string, queueId: number, queue: QueueRecord, firstIndex: number): number {
  const logIndexAt = (offset: number): number => {
    const at = store.getConsumeQueue(topic, queueId, offset);
    assert(at !== undefined, () => `consume queue ${topic}/${queueId} lacks offset ${offset}`);
    return at.logIndex;
  };
  if (queue.minOffset === queue.nextOffset || logIndexAt(queue.minOffset) >= firstIndex) return queue.minOffset;
  let lo = queue.minOffset + 1;
  let hi = queue.nextOffset;
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (logIndexAt(mid) >= firstIndex) hi = mid;
    else lo = mid + 1;
  }
  assert(lo > queue.minOffset && lo <= queue.nextOffset, 'binary search left the queue');
  return lo;
}

/**
 * Deletes the records of up to about maxMessages forgotten messages (consume queue entry, key
 * and msgId index records) and unplaced marks below retainedFromIndex. Returns whether any
 * garbage may remain. Call inside a store transaction.
 */
export function collectGarbage(store: BrokerStore, maxMessages: number): boolean {
  assert(Number.isSafeInteger(maxMessages) && maxMessages >= 1, 'garbage budget must be a positive count');
  const unplaced = store.listUnplacedBelow(retainedFromIndex(store), maxMessages);
  for (const logIndex of unplaced) store.removeUnplaced(logIndex);
  let budget = maxMessages - unplaced.length;
  if (budget === 0) return true;
  // One listing per call: each range call scans the records this transaction wrote.
  const garbage = store.listGarbage(budget);
  for (const { topic, queueId, fromOffset } of garbage) {
    const queue = store.getQueue(topic, queueId);
    assert(queue !== undefined && fromOffset < queue.minOffset, () => `garbage record of ${topic}/${queueId} is past its minOffset`);
    const end = Math.min(queue.minOffset, fromOffset + budget);
    for (let offset = fromOffset; offset < end; offset++) forgetMessage(store, topic, queueId, offset);
    budget -= end - fromOffset;
    if (end < queue.minOffset) {
      store.putGarbage(topic, queueId, end);
      return true;
    }
    store.removeGarbage(topic, queueId);
    if (budget === 0) return true;
  }
  // Fewer queues than the budget allowed were listed: none is left.
  return garbage.length === maxMessages - unplaced.length;
}

function forgetMessage(store: BrokerStore, topic: string, queueId: number, offset: number): void {
  const at = store.getConsumeQueue(topic, queueId, offset);
  assert(at !== undefined, () => `forgotten offset ${offset} of ${topic}/${queueId} is missing`);
  // A message may carry one key twice: it has one key index record.
  for (const key of new Set(at.keys)) store.removeKeyIndex(topic, key, at);
  store.removeMsgId(at);
  store.removeConsumeQueue(topic, queueId, offset);
}

/**
 * A record's bytes as the replicas compare them, or null when it is not part of that state:
 * garbage (forgotten and not yet deleted, or the garbage bookkeeping itself) is not.
 */
export function retainedRecordBytes(store: BrokerStore, key: Key, bytes: Uint8Array, fromIndex: number): Uint8Array | null {
  switch (key[0]) {
    case 'gc':
      return null;
    case 'cq': {
      const queue = store.getQueue(key[1] as string, key[2] as number);
      assert(queue !== undefined, 'consume queue record of a missing queue');
      return retainedConsumeQueueBytes(key, bytes, queue.minOffset);
    }
    case 'key':
    case 'msgseq':
      return (key[3] as number) >= fromIndex ? bytes : null;
    case 'msgid':
    case 'msgrun':
      return (key[2] as number) >= fromIndex ? bytes : null;
    case 'unplaced':
      return (key[1] as number) >= fromIndex ? bytes : null;
    default:
      return bytes;
  }
}
