// The derived records of a placed produce batch — consume queue, key index and msgId index —
// written in one place for both ways they come to be: applying the entry (state-machine.ts)
// and rebuilding them from the retained log after a snapshot restore (snapshot.ts). Sharing
// the code is what makes a rebuilt state equal, record for record, to an applied one.
import { assert } from '../util/assert.js';
import type { ProduceMessage } from './commands.js';
import type { BrokerStore, ConsumeQueueRecord, Placement } from './store.js';

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
  messages: readonly ProduceMessage[],
  logIndex: number,
  storeTimestampMs: number,
  queueOf: (topic: string, queueId: number) => RunningQueue,
): Placement[] {
  assert(logIndex >= 1, 'a placed batch has a log index');
  const placed = messages.map((message, batchPos): Placement => {
    const queue = queueOf(message.topic, message.queueId);
    assert(queue.topic === message.topic && queue.queueId === message.queueId, 'running queue of another queue');
    const offset = queue.nextOffset;
    const keys = message.keys ?? [];
    const at: ConsumeQueueRecord = { logIndex, batchPos, storeTimestampMs, bodyBytes: message.body.byteLength, msgId: message.msgId, keys };
    store.putConsumeQueue(message.topic, message.queueId, offset, at);
    for (const key of keys) store.putKeyIndex(message.topic, key, at, message.queueId, offset);
    // Every copy is indexed (a copy stored again under a new producer session too): a lookup
    // answers the oldest one still retained.
    store.putMsgId(message.msgId, at, { topic: message.topic, queueId: message.queueId, offset });
    queue.nextOffset = offset + 1;
    return { msgId: message.msgId, queueId: message.queueId, offset };
  });
  assert(placed.length === messages.length, 'one placement per message');
  return placed;
}
