// The derived records of a placed batch — consume queue, key index and msgId index — written
// in one place for both ways they come to be: applying the entry (state-machine.ts) and
// rebuilding them from the retained log after a snapshot restore (snapshot.ts). Sharing the
// code, and the rule of which of an entry's messages it placed (placedItems), is what makes a
// rebuilt state equal, record for record, to an applied one.
import { assert } from '../util/assert.js';
import { type BrokerCommand, carriedMessages, type ProduceMessage } from './commands.js';
import { type BrokerStore, type ConsumeQueueRecord, msgIdRunPrefix, type QueuePosition } from './store.js';
import { tagHash } from '../filter/index.js';

/** A message an entry places, with its position in the entry (the consume queue's batchPos). */
export interface PlacedItem {
  readonly message: ProduceMessage;
  readonly batchPos: number;
}

/** A message of a produce or sendBack entry due later than the entry's own time waits in the timer index. */
export function isDelayed(message: ProduceMessage, timestampMs: number): boolean {
  return message.deliverAtMs !== undefined && message.deliverAtMs > timestampMs;
}

/**
 * The messages an applied entry placed in their queues, in position order: a produce's and a
 * sendBack's that were not delayed; a deliverDue's and a dlqResend's but those it skipped
 * (already delivered or resent, recorded in its unplaced mark); a committing txEnd's (one that
 * placed nothing is marked unplaced whole). None for other commands.
 */
export function placedItems(command: BrokerCommand, skipped: ReadonlySet<number>): PlacedItem[] {
  const messages = carriedMessages(command) ?? [];
  const timed = command.kind === 'produce' || command.kind === 'sendBack';
  const items: PlacedItem[] = [];
  messages.forEach((message, batchPos) => {
    if (skipped.has(batchPos)) return;
    if (timed && isDelayed(message, command.timestampMs)) return;
    items.push({ message, batchPos });
  });
  return items;
}

/** A queue's running next offset while a batch (or a rebuild) places messages in it. */
export interface RunningQueue {
  readonly topic: string;
  readonly queueId: number;
  nextOffset: number;
}

export function queueKey(topic: string, queueId: number): string {
  return `${topic}\u0000${queueId}`;
}

/**
 * Places each message at its queue's running next offset (dense offsets, log order) and
 * indexes it. `queueOf` returns the running queue of a (topic, queueId), the same object for
 * every message of it; its nextOffset is advanced here. The caller checked every queue exists.
 */
export function indexBatch(
  store: BrokerStore,
  items: readonly PlacedItem[],
  logIndex: number,
  storeTimestampMs: number,
  queueOf: (topic: string, queueId: number) => RunningQueue,
): { msgId: string; queueId: number; offset: number }[] {
  assert(logIndex >= 1, 'a placed batch has a log index');
  // Every copy is indexed (a copy stored again under a new producer session too): a lookup
  // answers the oldest one still retained. A batch named prefix.batchPos shares one record.
  const runPrefix = msgIdRunPrefix(items.map(({ message, batchPos }) => ({ msgId: message.msgId, batchPos })));
  const run: (QueuePosition | null)[] = [];
  // Each queue's units are appended together after the loop: one write per record, not per message.
  const unitsByQueue = new Map<RunningQueue, { firstOffset: number; records: ConsumeQueueRecord[] }>();
  const placed = items.map(({ message, batchPos }) => {
    const queue = queueOf(message.topic, message.queueId);
    assert(queue.topic === message.topic && queue.queueId === message.queueId, 'running queue of another queue');
    const offset = queue.nextOffset;
    const keys = message.keys ?? [];
    const at: ConsumeQueueRecord = {
      logIndex, batchPos, storeTimestampMs, bodyBytes: message.body.byteLength, msgId: message.msgId, keys,
      tagHash: message.tag === undefined ? null : tagHash(message.tag),
      msgIdInRun: runPrefix !== undefined,
    };
    let units = unitsByQueue.get(queue);
    if (units === undefined) unitsByQueue.set(queue, (units = { firstOffset: offset, records: [] }));
    assert(offset === units.firstOffset + units.records.length, () => `${message.topic}/${message.queueId}: offset ${offset} does not follow the batch's previous one`);
    units.records.push(at);
    for (const key of keys) store.putKeyIndex(message.topic, key, at, message.queueId, offset);
    const position = { topic: message.topic, queueId: message.queueId, offset };
    if (runPrefix === undefined) store.putMsgId(message.msgId, at, position);
    else {
      assert(run.length <= batchPos, 'placed items come in position order');
      while (run.length < batchPos) run.push(null); // positions this entry did not place (delayed)
      run.push(position);
    }
    queue.nextOffset = offset + 1;
    return { msgId: message.msgId, queueId: message.queueId, offset };
  });
  if (runPrefix !== undefined) store.putMsgIdRun(runPrefix, logIndex, run);
  for (const [queue, { firstOffset, records }] of unitsByQueue) store.putConsumeQueueRun(queue.topic, queue.queueId, firstOffset, records);
  assert(placed.length === items.length, 'one placement per message');
  return placed;
}
