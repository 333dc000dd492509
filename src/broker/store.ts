// The broker state's lmdb layout: one root database, array keys in ordered-binary order, values
// packed by a module-level msgpackr Packr (useRecords: false, so equal state is equal bytes on
// every node and stateDigest() can compare replicas). This module owns the key schema and the
// typed get/put of every record; it knows nothing of what the records mean.
//
//   ['meta', name]                               → number (appliedIndex, lastStoreTimestampMs, ...)
//   ['topic', topic]                             → TopicRecord
//   ['queue', topic, queueId]                    → QueueRecord
//   ['cq', topic, queueId, offset]               → ConsumeQueueRecord   (index into the commit log)
//   ['key', topic, key, logIndex, batchPos]      → KeyIndexRecord       (log order per key)
//   ['msgid', msgId]                             → MsgIdRecord          (first stored copy)
//   ['group', group]                             → 1                    (groups that ever committed)
//   ['offset', group, topic, queueId]            → number               (next offset to consume)
//   ['producer', producerId]                     → ProducerRecord
//   ['plru', lastUsedLogIndex]                   → producerId           (eviction order)
import { createHash } from 'node:crypto';
import { open, type RootDatabase, TransactionFlags } from 'lmdb';
import { Packr } from 'msgpackr';
import { assert } from '../util/assert.js';
import type { CommitDurability } from './state-guard.js';

export type Key = (string | number)[];

export interface TopicRecord {
  queues: number;
  createdAtLogIndex: number;
}
export interface QueueRecord {
  /** First offset still readable (0 until retention deletes the head of the queue). */
  minOffset: number;
  nextOffset: number;
}
/** A consume queue entry, like RocketMQ's ConsumeQueue unit: where the message lives in the commit log. */
export interface ConsumeQueueRecord {
  logIndex: number;
  /** Position of the message within that entry's produce batch. */
  batchPos: number;
  storeTimestampMs: number;
  bodyBytes: number;
}
export interface QueuePosition {
  topic: string;
  queueId: number;
  offset: number;
}
export type Placement = { msgId: string; queueId: number; offset: number };
/** What an applied seq produced, kept for answering its retries. */
export type ProduceOutcome =
  | { seq: number; placed: Placement[] }
  | { seq: number; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string };
export interface ProducerRecord {
  lastSeq: number;
  lastUsedLogIndex: number;
  /** Outcomes of the most recent applied seqs, oldest first, at most dedupWindowPerProducer. */
  window: ProduceOutcome[];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Only JS string lengths are bounded by the codec; this is lmdb's own limit on key bytes. */
const KEY_BYTES_MAX = 1978;

export class BrokerStore {
  private constructor(private readonly db: RootDatabase<Buffer, Key>) {}

  /**
   * 'unsynced': commits never fsync (lmdb noSync) — atomic and safe across process crashes;
   * state-guard.ts discards the state after an OS crash. 'durable': lmdb's default, fsync per
   * commit (overlappingSync).
   */
  static open(dir: string, durability: CommitDurability): BrokerStore {
    const sync = durability === 'durable' ? {} : { noSync: true, overlappingSync: false };
    return new BrokerStore(open<Buffer, Key>({ path: dir, encoding: 'binary', ...sync }));
  }

  /** Runs `action` in one write transaction, committed before it returns; a throw aborts every write it made. */
  transaction<T>(action: () => T): T {
    return this.db.transactionSync(action, TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT);
  }

  get(key: Key): unknown {
    const bytes = this.db.get(key);
    return bytes === undefined ? undefined : packr.unpack(bytes);
  }

  put(key: Key, value: unknown): void {
    assert(value !== undefined, () => `put of undefined at ${JSON.stringify(key)}`);
    const bytes = packr.pack(value);
    this.db.putSync(key, bytes);
  }

  remove(key: Key): void {
    const removed = this.db.removeSync(key);
    assert(removed, () => `remove of missing key ${JSON.stringify(key)}`);
  }

  /** Records with keys in [start, end), in key order, at most `limit`. */
  range(start: Key, end: Key, limit: number): { key: Key; value: unknown }[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, 'range limit must be a count');
    const out: { key: Key; value: unknown }[] = [];
    for (const { key, value } of this.db.getRange({ start, end, limit })) {
      out.push({ key, value: packr.unpack(value) });
    }
    assert(out.length <= limit, 'range returned more than its limit');
    return out;
  }

  /** SHA-256 over every record in key order: equal digests mean equal state. */
  digest(): string {
    const hash = createHash('sha256');
    for (const { key, value } of this.db.getRange({})) {
      const keyBytes = packr.pack(key);
      hash.update(packr.pack([keyBytes.byteLength, value.byteLength]));
      hash.update(keyBytes);
      hash.update(value);
    }
    return hash.digest('hex');
  }

  close(): Promise<void> {
    return this.db.close();
  }

  // --- typed records -------------------------------------------------------------------------

  getMeta(name: string): number | undefined {
    const value = this.get(['meta', name]);
    assert(value === undefined || typeof value === 'number', () => `meta ${name} is not a number`);
    return value;
  }

  putMeta(name: string, value: number): void {
    assert(Number.isSafeInteger(value), () => `meta ${name} must be an integer, not ${value}`);
    this.put(['meta', name], value);
  }

  getTopic(topic: string): TopicRecord | undefined {
    const value = this.get(['topic', topic]);
    if (value === undefined) return undefined;
    const [queues, createdAtLogIndex] = tuple(value, 2, 'topic');
    return { queues: integer(queues), createdAtLogIndex: integer(createdAtLogIndex) };
  }

  putTopic(topic: string, record: TopicRecord): void {
    this.put(['topic', topic], [record.queues, record.createdAtLogIndex]);
  }

  listTopics(limit: number): { topic: string; record: TopicRecord }[] {
    return this.range(['topic'], ['topic', MAX_KEY_PART], limit).map(({ key }) => {
      const topic = key[1];
      assert(typeof topic === 'string', 'topic key without a name');
      const record = this.getTopic(topic);
      assert(record !== undefined, 'listed topic vanished');
      return { topic, record };
    });
  }

  getQueue(topic: string, queueId: number): QueueRecord | undefined {
    const value = this.get(['queue', topic, queueId]);
    if (value === undefined) return undefined;
    const [minOffset, nextOffset] = tuple(value, 2, 'queue');
    assert(integer(minOffset) <= integer(nextOffset), 'queue minOffset beyond nextOffset');
    return { minOffset: integer(minOffset), nextOffset: integer(nextOffset) };
  }

  putQueue(topic: string, queueId: number, record: QueueRecord): void {
    assert(0 <= record.minOffset && record.minOffset <= record.nextOffset, 'queue offsets out of order');
    this.put(['queue', topic, queueId], [record.minOffset, record.nextOffset]);
  }

  getConsumeQueue(topic: string, queueId: number, offset: number): ConsumeQueueRecord | undefined {
    const value = this.get(['cq', topic, queueId, offset]);
    if (value === undefined) return undefined;
    const [logIndex, batchPos, storeTimestampMs, bodyBytes] = tuple(value, 4, 'consume queue');
    return {
      logIndex: integer(logIndex),
      batchPos: integer(batchPos),
      storeTimestampMs: integer(storeTimestampMs),
      bodyBytes: integer(bodyBytes),
    };
  }

  putConsumeQueue(topic: string, queueId: number, offset: number, record: ConsumeQueueRecord): void {
    assert(record.logIndex >= 1, 'consume queue entry points before the log');
    assert(record.batchPos >= 0, 'consume queue entry has a negative batch position');
    this.put(['cq', topic, queueId, offset], [record.logIndex, record.batchPos, record.storeTimestampMs, record.bodyBytes]);
  }

  putKeyIndex(topic: string, key: string, at: ConsumeQueueRecord, queueId: number, offset: number): void {
    const indexKey: Key = ['key', topic, key, at.logIndex, at.batchPos];
    assert(Buffer.byteLength(topic) + Buffer.byteLength(key) + 64 < KEY_BYTES_MAX, 'key index key too long');
    this.put(indexKey, [queueId, offset]);
  }

  /** Positions of messages of `topic` carrying `key`, in log order. */
  listByKey(topic: string, key: string, limit: number): { queueId: number; offset: number }[] {
    return this.range(['key', topic, key], ['key', topic, key, MAX_KEY_PART], limit).map(({ value }) => {
      const [queueId, offset] = tuple(value, 2, 'key index');
      return { queueId: integer(queueId), offset: integer(offset) };
    });
  }

  getMsgId(msgId: string): QueuePosition | undefined {
    const value = this.get(['msgid', msgId]);
    if (value === undefined) return undefined;
    const [topic, queueId, offset] = tuple(value, 3, 'msgId index');
    assert(typeof topic === 'string', 'msgId index without a topic');
    return { topic, queueId: integer(queueId), offset: integer(offset) };
  }

  putMsgId(msgId: string, position: QueuePosition): void {
    this.put(['msgid', msgId], [position.topic, position.queueId, position.offset]);
  }

  getOffset(group: string, topic: string, queueId: number): number | undefined {
    const value = this.get(['offset', group, topic, queueId]);
    return value === undefined ? undefined : integer(value);
  }

  putOffset(group: string, topic: string, queueId: number, offset: number): void {
    assert(Number.isSafeInteger(offset) && offset >= 0, () => `offset ${offset} is not an offset`);
    this.put(['group', group], 1);
    this.put(['offset', group, topic, queueId], offset);
  }

  listGroups(limit: number): string[] {
    return this.range(['group'], ['group', MAX_KEY_PART], limit).map(({ key }) => {
      const group = key[1];
      assert(typeof group === 'string', 'group key without a name');
      return group;
    });
  }

  listOffsets(group: string, limit: number): (QueuePosition & { offset: number })[] {
    return this.range(['offset', group], ['offset', group, MAX_KEY_PART], limit).map(({ key, value }) => {
      const [, , topic, queueId] = key;
      assert(typeof topic === 'string', 'offset key without a topic');
      return { topic, queueId: integer(queueId), offset: integer(value) };
    });
  }

  getProducer(producerId: string): ProducerRecord | undefined {
    const value = this.get(['producer', producerId]);
    if (value === undefined) return undefined;
    const record = value as ProducerRecord;
    assert(Number.isSafeInteger(record.lastSeq) && record.lastSeq >= 1, 'producer record without lastSeq');
    assert(Array.isArray(record.window) && record.window.length >= 1, 'producer record without a window');
    return record;
  }

  putProducer(producerId: string, record: ProducerRecord): void {
    assert(record.window.at(-1)?.seq === record.lastSeq, 'producer window must end at lastSeq');
    this.put(['producer', producerId], { lastSeq: record.lastSeq, lastUsedLogIndex: record.lastUsedLogIndex, window: record.window });
  }

  removeProducer(producerId: string): void {
    this.remove(['producer', producerId]);
  }

  putProducerRecency(lastUsedLogIndex: number, producerId: string): void {
    assert(this.get(['plru', lastUsedLogIndex]) === undefined, 'two producers used at one log index');
    this.put(['plru', lastUsedLogIndex], producerId);
  }

  removeProducerRecency(lastUsedLogIndex: number): void {
    this.remove(['plru', lastUsedLogIndex]);
  }

  /** The producer used least recently (smallest last-used log index). */
  leastRecentProducer(): { producerId: string; lastUsedLogIndex: number } | undefined {
    const [first] = this.range(['plru'], ['plru', MAX_KEY_PART], 1);
    if (first === undefined) return undefined;
    assert(typeof first.value === 'string', 'producer recency without a producer');
    return { producerId: first.value, lastUsedLogIndex: integer(first.key[1]) };
  }
}

/**
 * Sorts after every string and number part in ordered-binary, so ['x', a, MAX_KEY_PART] ends
 * the range of keys starting with ['x', a]. (Validated names never contain control bytes, so
 * no stored string part can compare above it.)
 */
const MAX_KEY_PART = '\uffff';

function tuple(value: unknown, length: number, what: string): unknown[] {
  assert(Array.isArray(value), () => `${what} record is not an array`);
  assert(value.length === length, () => `${what} record has ${value.length} fields, expected ${length}`);
  return value;
}

function integer(value: unknown): number {
  assert(typeof value === 'number' && Number.isSafeInteger(value), () => `stored ${String(value)} is not an integer`);
  return value;
}
