// The broker state's lmdb layout: one root database, array keys in ordered-binary order, values
// packed by a module-level msgpackr Packr (useRecords: false, so equal state is equal bytes on
// every node and stateDigest() can compare replicas). This module owns the key schema and the
// typed get/put of every record; it knows nothing of what the records mean.
//
//   ['meta', name]                               → number (appliedIndex, lastStoreTimestampMs, ...)
//   ['topic', topic]                             → TopicRecord
//   ['queue', topic, queueId]                    → QueueRecord
//   ['cq', topic, queueId, firstOffset]          → bytes: units          (consume queue: CONSUME_QUEUE_UNITS_PER_RECORD units, consume-queue-codec.ts)
//   ['key', topic, key, logIndex, batchPos]      → KeyIndexRecord       (log order per key)
//   ['msgid', msgId, logIndex, batchPos]         → [topic, queueId, offset]  (a stored copy, log order)
//   ['msgrun', prefix, logIndex]                 → run of copies (a produce's copies named prefix.N, N from its first message)
//   ['msgseq', name, firstN, logIndex]           → run of copies (an entry's one-message produces named name-N, name-(N+1), …)
//   A run of copies: [topic, queueId, offset, queueId, offset, …] when every copy is placed, in
//   one topic (nearly always; flat, so packing it and collecting it cost little), else
//   ([topic, queueId, offset] | null)[] (null: not placed by the entry, e.g. delayed).
//   ['group', group]                             → 1                    (groups that ever committed)
//   ['offset', group, topic, queueId]            → number               (next offset to consume)
//   ['producer', producerId]                     → ProducerRecord
//   ['plru', lastUsedLogIndex]                   → producerId | producerId[] (eviction order; a list when one produceBatch entry used several)
//   ['unplaced', logIndex]                       → 1 | positions[]      (entries that placed nothing, or skipped these)
//   ['gc', topic, queueId]                       → offset               (first consume queue record to delete)
//   ['timer', deliverAtMs, logIndex, position]   → ProduceMessage       (delayed messages, due-time order)
//   ['sentBack', group, topic, queueId, offset]  → SentBackRecord       (failed deliveries already sent back)
//   ['dlqResent', group, dlqOffset]              → 1                    (dead letters already re-delivered)
//   ['tx' | 'txMsg' | 'txDue' | 'txEnded' | 'txEndOrder', …]                (transactions: transactions.ts)
//   ['growth', topic]                            → GrowthRecord         (the topic's last growth, topic-growth.ts)
//   ['preferredLeader', 'node']                  → node id | null       (set at run time; absent: the config's)
//
// The consume queue unit carries the message's msgId and keys, so forgetting it (retention)
// finds its key and msgId index records without the log entry, which may be gone by then.
// Units are kept CONSUME_QUEUE_UNITS_PER_RECORD to an lmdb record (RocketMQ's fixed-size
// ConsumeQueue units, grouped): one record per message cost an lmdb write per message on every
// node, and one lmdb read per message a consumer pulls. The record of offsets [f, f + N) holds
// unit i for offset f + i: a message's, or a gap where none is stored (a forgotten one, or below
// minOffset in a queue rebuilt after a snapshot restore).
//
// Writes are buffered: apply() runs many times a millisecond under load, and an lmdb commit
// per apply() (copy-on-write pages, meta page) cost more than the apply itself. A transaction
// stages its writes in memory and, when it returns, moves them to the buffered records; reads
// see staged, then buffered, then cached, then lmdb records. The buffer is written to lmdb in
// one commit when it holds maxBufferedRecords (and on flush()/close()), so lmdb always holds
// the state of some transaction boundary and the broker replays the log from its appliedIndex.
// Small hot records (meta, topics, queues, groups, offsets) are also kept in a read cache.
//
// The msgId index: the native producer names a batch's messages `<session>-<seq>.<position>`,
// so a produce whose every placed message is named `prefix.N` (N: its position in the
// produce, which is its batchPos unless a produceBatch entry carries produces before it) is
// indexed by one msgrun record (its copy N: where that message went) instead of one per message —
// the per-message records were a third of the apply's cost. It names a single send
// `<session>-<seq>`, and the leader batches the one-message produces that arrive together into
// one entry: the messages an entry's produces place alone (one each), when all of one name are
// named name-N, name-(N+1), … (N counting up by one in position order, two at least, no other
// message of the entry named name-M), share one msgseq record (its copy i: name-(N+i)).
// A lookup scans the runs of a name starting up to maxMessagesPerProduce before N, in every
// retained entry: a few records for a producer's seqs, more when clients reuse such names.
// Other msgIds (other clients, delayed copies placed later) keep one msgid record each; a
// lookup looks in all three.
import { createHash } from 'node:crypto';
import { open, type RootDatabase, type Transaction, TransactionFlags } from 'lmdb';
import { Packr } from 'msgpackr';
import { LIMITS } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import type { ProduceMessage, SendBackTarget, TimerRef } from './commands.js';
import { appendUnits, unitAt, unitCount, withGaps } from './consume-queue-codec.js';
import type { CommitDurability } from './state-guard.js';
import { type Key, RecordBuffer, REMOVED, type Slot } from './record-buffer.js';

export type { Key } from './record-buffer.js';

export const PREFERRED_LEADER_KIND = 'preferredLeader';

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
  /** The message's msgId and keys, for forgetting its index records with it. */
  msgId: string;
  keys: readonly string[];
  /**
   * Where its msgId is indexed: false, its own msgid record; true, its entry's msgrun record
   * (msgIdRunPrefix); a number N, its entry's msgseq record of the run from name-N (seqNameOf).
   */
  msgIdInRun: boolean | number;
  /**
   * tagHash(tag) (src/filter/tag.ts), null for a message without a tag: RocketMQ's tagsCode,
   * so a tag filter skips a message without reading it from the commit log.
   */
  tagHash: number | null;
}
export interface QueuePosition {
  topic: string;
  queueId: number;
  offset: number;
}
/** offset null: a delayed message, placed (and given its offset) at deliverAtMs. */
export type Placement = { msgId: string; queueId: number; offset: number | null; deliverAtMs?: number };
/** A topic's last growth: keys whose queue changed wait for groups to pass each old queue's boundary. */
export interface GrowthRecord {
  fromQueues: number;
  toQueues: number;
  logIndex: number;
  /** Keys wait until this time at most (the command's time + maxReorderWaitMs). */
  untilMs: number;
  /** Each old queue's next offset at the growth. */
  boundaries: number[];
}
/** What a sendBack stored, to answer its retries alike. */
export interface SentBackRecord {
  target: SendBackTarget;
  reconsumeTimes: number;
  deliverAtMs: number | null;
}
/** What an applied seq produced, kept for answering its retries. */
export type ProduceOutcome =
  | { seq: number; placed: Placement[] }
  | { seq: number; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT' | 'LMQ_ROUTE_CHANGED'; message: string };
export interface ProducerRecord {
  lastSeq: number;
  lastUsedLogIndex: number;
  /** Outcomes of the most recent applied seqs, oldest first, at most dedupWindowPerProducer. */
  window: ProduceOutcome[];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Only JS string lengths are bounded by the codec; this is lmdb's own limit on key bytes. */
const KEY_BYTES_MAX = 1978;

/**
 * Consume queue units per lmdb record. A batch's units are appended to the record's bytes
 * until it fills (buffered, so lmdb sees it about once per flush); a read decodes one unit.
 */
export const CONSUME_QUEUE_UNITS_PER_RECORD = 64;
/** Bound on the consume queue records kept for reads (their bytes: up to 64 units, ~3 KiB for msgIds of 25 characters). */
const MAX_CACHED_CONSUME_QUEUE_RECORDS = 2048;

/** Default bound on records written but not yet in lmdb (each a few hundred bytes in memory). */
export const DEFAULT_MAX_BUFFERED_RECORDS = 1024;
/** Bounds on the two read caches, in records (the oldest cached makes room); tests shrink them. */
export interface CacheBounds {
  readonly maxCachedRecords: number;
  readonly maxCachedConsumeQueueRecords: number;
}
const DEFAULT_CACHE_BOUNDS: CacheBounds = { maxCachedRecords: 100_000, maxCachedConsumeQueueRecords: MAX_CACHED_CONSUME_QUEUE_RECORDS };
/**
 * Kinds of record that are few, small and read on every produce or commit. Producer records
 * are not among them: each keeps up to dedupWindowPerProducer outcomes of up to 1,024
 * placements (hundreds of KiB), and a busy producer's record stays in the write buffer anyway.
 */
const CACHED_KINDS: ReadonlySet<string> = new Set(['meta', 'topic', 'queue', 'group', 'offset']);

export interface StoreReadView {
  /** Records with keys in [start, end) (one kind), in key order, with their packed values. */
  records(start: Key, end: Key): IterableIterator<{ key: Key; bytes: Uint8Array }>;
  done(): void;
}

export class BrokerStore {
  /** Writes of the transaction in progress; null outside one. */
  private staged: RecordBuffer | null = null;
  /** Writes of finished transactions, not yet committed to lmdb. */
  private readonly buffered = new RecordBuffer();
  /** Values of CACHED_KINDS records as lmdb holds them, by key id. */
  private readonly cache: ReadCache;
  /** Consume queue records as lmdb holds them, by key id: pulls read their units in order. */
  private readonly consumeQueueCache: ReadCache;

  private constructor(
    private readonly db: RootDatabase<Buffer, Key>,
    private readonly maxBufferedRecords: number,
    cacheBounds: CacheBounds,
  ) {
    assert(Number.isSafeInteger(maxBufferedRecords) && maxBufferedRecords >= 0, 'maxBufferedRecords must be a count');
    for (const bound of [cacheBounds.maxCachedRecords, cacheBounds.maxCachedConsumeQueueRecords]) assert(Number.isSafeInteger(bound) && bound >= 1, 'a read cache holds at least one record');
    this.cache = { records: new Map(), maxRecords: cacheBounds.maxCachedRecords };
    this.consumeQueueCache = { records: new Map(), maxRecords: cacheBounds.maxCachedConsumeQueueRecords };
  }

  /**
   * 'unsynced': commits never fsync (lmdb noSync) — atomic and safe across process crashes;
   * state-guard.ts discards the state after an OS crash. 'durable': lmdb's default, fsync per
   * commit (overlappingSync). maxBufferedRecords 0 writes every transaction through to lmdb.
   */
  static open(dir: string, durability: CommitDurability, maxBufferedRecords = DEFAULT_MAX_BUFFERED_RECORDS, cacheBounds: CacheBounds = DEFAULT_CACHE_BOUNDS): BrokerStore {
    const sync = durability === 'durable' ? {} : { noSync: true, overlappingSync: false };
    return new BrokerStore(open<Buffer, Key>({ path: dir, encoding: 'binary', ...sync }), maxBufferedRecords, cacheBounds);
  }

  /**
   * Runs `action` as one transaction: its writes become visible to later reads together when
   * it returns, and a throw discards every write it made. They reach lmdb with the buffer.
   */
  transaction<T>(action: () => T): T {
    assert(this.staged === null, 'transactions do not nest');
    const staged = new RecordBuffer();
    this.staged = staged;
    let result: T;
    try {
      result = action();
    } finally {
      this.staged = null;
    }
    this.buffered.absorb(staged);
    if (this.buffered.size() > this.maxBufferedRecords) this.flush();
    return result;
  }

  /** Commits every buffered record to lmdb in one lmdb transaction. */
  flush(): void {
    assert(this.staged === null, 'flush inside a transaction');
    if (this.buffered.size() === 0) return;
    this.db.transactionSync(() => {
      for (const [, , slot] of this.buffered.all()) {
        assert(!(slot.value === REMOVED && slot.fresh), 'a removed fresh record leaves the buffer');
        if (slot.value === REMOVED) this.db.removeSync(slot.key);
        else this.db.putSync(slot.key, packr.pack(slot.value));
      }
    }, TransactionFlags.ABORTABLE | TransactionFlags.SYNCHRONOUS_COMMIT);
    for (const [kind, id, slot] of this.buffered.all()) {
      const cache = this.cacheOf(kind);
      if (cache === null) continue;
      remember(cache, id, slot.value === REMOVED ? ABSENT : slot.value);
    }
    this.buffered.clear();
  }

  /** The record at key (staged, buffered, cached or in lmdb). Callers never mutate what it returns. */
  get(key: Key): unknown {
    return this.read(locate(key));
  }

  /** Stages a write; `value` must not be mutated afterwards (it is kept, not copied). */
  put(key: Key, value: unknown): void {
    assert(value !== undefined, () => `put of undefined at ${JSON.stringify(key)}`);
    const at = locate(key);
    this.stage(at, value, this.slotAt(at)?.fresh ?? false);
  }

  /** A put of a key that must not exist (asserted); removing it before the next flush costs lmdb nothing. */
  insert(key: Key, value: unknown): void {
    assert(value !== undefined, () => `insert of undefined at ${JSON.stringify(key)}`);
    const at = locate(key);
    const slot = this.slotAt(at);
    assert(this.read(at, slot) === undefined, () => `insert of existing key ${JSON.stringify(key)}`);
    // Absent with no write since the last flush means absent from lmdb too.
    this.stage(at, value, slot?.fresh ?? true);
  }

  remove(key: Key): void {
    const at = locate(key);
    const slot = this.slotAt(at);
    assert(this.read(at, slot) !== undefined, () => `remove of missing key ${JSON.stringify(key)}`);
    this.stage(at, REMOVED, slot?.fresh ?? false);
  }

  /**
   * A remove of a key the caller knows exists (it read a record written together with it):
   * skips remove()'s read, which would cost an lmdb lookup per key on the retention path.
   */
  private removeExisting(key: Key): void {
    const at = locate(key);
    this.stage(at, REMOVED, this.slotAt(at)?.fresh ?? false);
  }

  private read(at: Located, slot: Slot | undefined = this.slotAt(at)): unknown {
    if (slot !== undefined) return slot.value === REMOVED ? undefined : slot.value;
    const cache = this.cacheOf(at.kind);
    const cached = cache?.records.get(at.id);
    if (cached !== undefined) return cached === ABSENT ? undefined : cached;
    const bytes = this.db.get(at.key);
    if (bytes === undefined) {
      // A miss costs lmdb a read transaction (~30 µs after a write one). Meta records are asked
      // for on every apply without existing (the preferred leader), and a queue's next consume
      // queue record once per 64 messages: those misses are cached. Other kinds' misses are
      // clients' (unknown topics, groups): caching them would let a client flush the cache.
      if (cache !== null && NEGATIVELY_CACHED_KINDS.has(at.kind)) remember(cache, at.id, ABSENT);
      return undefined;
    }
    const value: unknown = packr.unpack(bytes);
    if (cache !== null) remember(cache, at.id, value);
    return value;
  }

  /** The read cache records of `kind` go to, or null for a kind that is not cached. */
  private cacheOf(kind: string): ReadCache | null {
    if (kind === 'cq') return this.consumeQueueCache;
    return CACHED_KINDS.has(kind) ? this.cache : null;
  }

  /** The staged or buffered write of the key, if any. */
  private slotAt(at: Located): Slot | undefined {
    return this.staged?.lookup(at.kind, at.id) ?? this.buffered.lookup(at.kind, at.id);
  }

  private stage(at: Located, value: unknown, fresh: boolean): void {
    assert(this.staged !== null, () => `write outside a transaction at ${JSON.stringify(at.key)}`);
    this.staged.set(at.kind, at.id, { key: at.key, value, fresh });
  }

  /** Records with keys in [start, end) (both of one kind), in lmdb's key order, at most `limit`. */
  range(start: Key, end: Key, limit: number): { key: Key; value: unknown }[] {
    assert(Number.isSafeInteger(limit) && limit >= 0, 'range limit must be a count');
    const kind = kindOf(start);
    assert(kindOf(end) === kind, 'a range stays within one kind of record');
    // Written records in the range, staged over buffered; they replace lmdb's copies.
    const written = new Map<string, Slot>();
    for (const layer of [this.buffered, this.staged]) {
      if (layer === null) continue;
      for (const [id, slot] of layer.ofKind(kind)) {
        if (compareKeys(slot.key, start) >= 0 && compareKeys(slot.key, end) < 0) written.set(id, slot);
      }
    }
    const out: { key: Key; value: unknown }[] = [];
    // At most written.size of lmdb's records are replaced, so limit + that many cover the first `limit`.
    for (const { key, value } of this.db.getRange({ start, end, limit: limit + written.size })) {
      if (!written.has(keyId(key))) out.push({ key, value: packr.unpack(value) });
    }
    for (const slot of written.values()) if (slot.value !== REMOVED) out.push({ key: slot.key, value: slot.value });
    if (written.size > 0) out.sort((a, b) => compareKeys(a.key, b.key));
    out.length = Math.min(out.length, limit);
    return out;
  }

  /**
   * SHA-256 over every record in key order as compared(key, bytes) gives it — the caller leaves
   * out (null) or trims what it treats as deleted: equal digests mean equal state. Flushes first.
   */
  digest(compared: (key: Key, bytes: Uint8Array) => Uint8Array | null = (_key, bytes) => bytes): string {
    this.flush();
    const hash = createHash('sha256');
    for (const { key, value } of this.db.getRange({})) {
      const bytes = compared(key, value);
      if (bytes === null) continue;
      const keyBytes = packr.pack(key);
      hash.update(packr.pack([keyBytes.byteLength, bytes.byteLength]));
      hash.update(keyBytes);
      hash.update(bytes);
    }
    return hash.digest('hex');
  }

  /**
   * Flushes, then holds an lmdb read transaction: the view sees the state of this moment while
   * later transactions go on. Call done() when finished (an open view keeps lmdb from reusing
   * the pages it sees).
   */
  readView(): StoreReadView {
    this.flush();
    const transaction: Transaction = this.db.useReadTransaction();
    const db = this.db;
    let done = false;
    return {
      *records(start: Key, end: Key): IterableIterator<{ key: Key; bytes: Uint8Array }> {
        assert(!done, 'read of a released view');
        assert(kindOf(start) === kindOf(end), 'a view range stays within one kind of record');
        for (const { key, value } of db.getRange({ start, end, transaction })) yield { key, bytes: value };
      },
      done(): void {
        if (done) return;
        done = true;
        transaction.done();
      },
    };
  }

  /** Deletes every record: lmdb, the buffer and the cache. */
  clear(): void {
    assert(this.staged === null, 'clear inside a transaction');
    this.buffered.clear();
    this.cache.records.clear();
    this.consumeQueueCache.records.clear();
    this.db.clearSync();
  }

  /** Decodes a record's value as read from a view (the codec is this module's). */
  static unpack(bytes: Uint8Array): unknown {
    return packr.unpack(bytes);
  }

  /** Flushes the buffer, then closes lmdb. */
  close(): Promise<void> {
    this.flush();
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

  /** The preferred leader set at run time: a node id, null for none, undefined when never set. */
  getPreferredLeader(): string | null | undefined {
    const value = this.get([PREFERRED_LEADER_KIND, 'node']);
    assert(value === undefined || value === null || typeof value === 'string', 'the preferred leader is a node id or null');
    return value;
  }

  putPreferredLeader(node: string | null): void {
    this.put([PREFERRED_LEADER_KIND, 'node'], node);
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
    const record = this.consumeQueueRecord(topic, queueId, offset);
    return record === undefined ? undefined : (unitAt(record, offset % CONSUME_QUEUE_UNITS_PER_RECORD) ?? undefined);
  }

  /**
   * Appends the units of offsets firstOffset, firstOffset + 1, … (the queue's next offsets), in
   * one write per record they fall in: a batch's messages of one queue share a record or two.
   */
  putConsumeQueueRun(topic: string, queueId: number, firstOffset: number, records: readonly ConsumeQueueRecord[]): void {
    for (let done = 0; done < records.length;) {
      const offset = firstOffset + done;
      const position = offset % CONSUME_QUEUE_UNITS_PER_RECORD;
      const count = Math.min(records.length - done, CONSUME_QUEUE_UNITS_PER_RECORD - position);
      // A new buffer, never the old one changed in place: that may be a staged, buffered or cached value.
      this.put(consumeQueueKey(topic, queueId, offset), appendUnits(this.consumeQueueRecord(topic, queueId, offset), position, records, done, done + count));
      done += count;
    }
  }

  /** Removes a consume queue unit the caller just read (forgetting a message); a record left with none goes. */
  removeConsumeQueue(topic: string, queueId: number, offset: number): void {
    const record = this.consumeQueueRecord(topic, queueId, offset);
    const position = offset % CONSUME_QUEUE_UNITS_PER_RECORD;
    assert(record !== undefined && (unitAt(record, position) ?? null) !== null, () => `consume queue ${topic}/${queueId} lacks offset ${offset}`);
    const next = withGaps(record, 0, position);
    if (next === null) this.removeExisting(consumeQueueKey(topic, queueId, offset));
    else this.put(consumeQueueKey(topic, queueId, offset), next);
  }

  /** The bytes of the consume queue record holding `offset` (consume-queue-codec.ts). */
  private consumeQueueRecord(topic: string, queueId: number, offset: number): Uint8Array | undefined {
    const record = this.get(consumeQueueKey(topic, queueId, offset));
    assert(record === undefined || record instanceof Uint8Array, () => `consume queue record of ${topic}/${queueId} at ${offset} is not bytes`);
    assert(record === undefined || (record.byteLength > 0 && unitCount(record) <= CONSUME_QUEUE_UNITS_PER_RECORD), () => `consume queue record of ${topic}/${queueId} at ${offset} holds no units or too many`);
    return record;
  }

  putKeyIndex(topic: string, key: string, at: ConsumeQueueRecord, queueId: number, offset: number): void {
    const indexKey: Key = ['key', topic, key, at.logIndex, at.batchPos];
    assert(Buffer.byteLength(topic) + Buffer.byteLength(key) + 64 < KEY_BYTES_MAX, 'key index key too long');
    this.put(indexKey, [queueId, offset]);
  }

  /** Removes the key index record of a consume queue record (written with it). */
  removeKeyIndex(topic: string, key: string, at: ConsumeQueueRecord): void {
    this.removeExisting(['key', topic, key, at.logIndex, at.batchPos]);
  }

  /** Positions of messages of `topic` carrying `key` stored at log index >= fromLogIndex, in log order. */
  listByKey(topic: string, key: string, fromLogIndex: number, limit: number): { queueId: number; offset: number }[] {
    return this.range(['key', topic, key, fromLogIndex], ['key', topic, key, MAX_KEY_PART], limit).map(({ value }) => {
      const [queueId, offset] = tuple(value, 2, 'key index');
      return { queueId: integer(queueId), offset: integer(offset) };
    });
  }

  /**
   * The oldest copy of msgId stored at log index >= fromLogIndex, from its own record or its
   * entry's msgrun or msgseq record (an entry indexes a msgId in one of them only).
   */
  firstMsgId(msgId: string, fromLogIndex: number): QueuePosition | undefined {
    const [own] = this.range(['msgid', msgId, fromLogIndex], ['msgid', msgId, MAX_KEY_PART], 1);
    let oldest: IndexedCopy | undefined = own === undefined ? undefined : { logIndex: integer(own.key[2]), position: queuePosition(own.value, 'msgId index') };
    oldest = this.firstInRun(msgId, fromLogIndex, oldest?.logIndex ?? Number.MAX_SAFE_INTEGER) ?? oldest;
    // A copy at fromLogIndex is the oldest there can be: the runs of its name need no scan.
    if (oldest?.logIndex === fromLogIndex) return oldest.position;
    oldest = this.firstInSeqRun(msgId, fromLogIndex, oldest?.logIndex ?? Number.MAX_SAFE_INTEGER) ?? oldest;
    return oldest?.position;
  }

  /** The oldest copy of msgId in a msgrun record at log index [fromLogIndex, beforeLogIndex). */
  private firstInRun(msgId: string, fromLogIndex: number, beforeLogIndex: number): IndexedCopy | undefined {
    const named = runNameOf(msgId);
    if (named === undefined) return undefined;
    let from = fromLogIndex;
    // Runs of one prefix are one per stored copy of a batch: nearly always one.
    for (;;) {
      const page = this.range(['msgrun', named.name, from], ['msgrun', named.name, beforeLogIndex], MSG_ID_RUNS_PER_PAGE);
      for (const { key, value } of page) {
        const position = copyInRun(value, named.n, 'msgrun');
        if (position !== undefined) return { logIndex: integer(key[2]), position };
      }
      if (page.length < MSG_ID_RUNS_PER_PAGE) return undefined;
      from = integer(page.at(-1)!.key[2]) + 1;
    }
  }

  /**
   * The oldest copy of msgId name-N in a msgseq record at log index [fromLogIndex,
   * beforeLogIndex): the runs of name that start at most a run's length before N.
   */
  private firstInSeqRun(msgId: string, fromLogIndex: number, beforeLogIndex: number): IndexedCopy | undefined {
    const named = seqNameOf(msgId);
    if (named === undefined) return undefined;
    let oldest: IndexedCopy | undefined;
    let from: Key = ['msgseq', named.name, Math.max(0, named.n - LIMITS.maxMessagesPerProduce + 1)];
    for (;;) {
      const page = this.range(from, ['msgseq', named.name, named.n, MAX_KEY_PART], MSG_ID_RUNS_PER_PAGE);
      for (const { key, value } of page) {
        const logIndex = integer(key[3]);
        if (logIndex < fromLogIndex || logIndex >= (oldest?.logIndex ?? beforeLogIndex)) continue;
        const position = copyInRun(value, named.n - integer(key[2]), 'msgseq');
        if (position !== undefined) oldest = { logIndex, position };
      }
      if (page.length < MSG_ID_RUNS_PER_PAGE) return oldest;
      const last = page.at(-1)!.key;
      from = ['msgseq', named.name, integer(last[2]), integer(last[3]) + 1];
    }
  }

  /** One record per stored copy: a put never needs to read whether the msgId is known. */
  putMsgId(msgId: string, at: ConsumeQueueRecord, position: QueuePosition): void {
    assert(at.msgIdInRun === false, 'a copy indexed in its run has no msgid record');
    assert(Buffer.byteLength(msgId) + 32 < KEY_BYTES_MAX, 'msgId index key too long');
    this.put(['msgid', msgId, at.logIndex, at.batchPos], [position.topic, position.queueId, position.offset]);
  }

  /** The msgrun record of an entry's produce: copies[N] is where the copy named `prefix.N` went (null: not placed by it). */
  putMsgIdRun(prefix: string, logIndex: number, copies: readonly (QueuePosition | null)[]): void {
    assert(Buffer.byteLength(prefix) + 32 < KEY_BYTES_MAX, 'msgrun key too long');
    this.insert(['msgrun', prefix, logIndex], runOfCopies(copies));
  }

  /** The msgseq record of an entry's one-message produces named name-firstN, name-(firstN + 1), … in position order. */
  putMsgIdSeqRun(name: string, firstN: number, logIndex: number, copies: readonly QueuePosition[]): void {
    assert(Buffer.byteLength(name) + 40 < KEY_BYTES_MAX, 'msgseq key too long');
    assert(copies.length >= 2 && copies.length <= LIMITS.maxMessagesPerProduce, 'a msgseq run holds 2 to maxMessagesPerProduce copies');
    this.insert(['msgseq', name, firstN, logIndex], runOfCopies(copies));
  }

  /** Removes the msgId index record of a consume queue unit (written with it): its own, or its entry's run. */
  removeMsgId(at: ConsumeQueueRecord): void {
    if (at.msgIdInRun === false) return this.removeExisting(['msgid', at.msgId, at.logIndex, at.batchPos]);
    // The entry's other copies share the run: the first of them forgotten removes it.
    const key: Key = at.msgIdInRun === true ? ['msgrun', runNameOf(at.msgId)!.name, at.logIndex] : ['msgseq', seqNameOf(at.msgId)!.name, at.msgIdInRun, at.logIndex];
    if (this.get(key) !== undefined) this.removeExisting(key);
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

  /** Whether the group has an offset on any queue of the topic. */
  hasOffsetOn(group: string, topic: string): boolean {
    return this.range(['offset', group, topic], ['offset', group, topic, MAX_KEY_PART], 1).length > 0;
  }

  getGrowth(topic: string): GrowthRecord | undefined {
    const value = this.get(['growth', topic]);
    if (value === undefined) return undefined;
    const [fromQueues, toQueues, logIndex, untilMs, boundaries] = tuple(value, 5, 'growth');
    assert(Array.isArray(boundaries) && boundaries.length === fromQueues, 'growth record without a boundary per old queue');
    return { fromQueues: integer(fromQueues), toQueues: integer(toQueues), logIndex: integer(logIndex), untilMs: integer(untilMs), boundaries: boundaries.map(integer) };
  }

  putGrowth(topic: string, record: GrowthRecord): void {
    assert(record.fromQueues < record.toQueues, 'a growth adds queues');
    assert(record.boundaries.length === record.fromQueues, 'a growth has a boundary per old queue');
    this.put(['growth', topic], [record.fromQueues, record.toQueues, record.logIndex, record.untilMs, record.boundaries]);
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

  /**
   * Adds the producer at the most-recent end of the eviction order, at the entry being applied
   * (logIndex). One produceBatch entry can use several producers: they share its log index, in
   * the order the entry used them.
   */
  putProducerRecency(logIndex: number, producerId: string): void {
    const users = this.producersUsingApplyingEntry(logIndex);
    assert(!users.includes(producerId), 'a producer is in the eviction order once');
    this.put(['plru', logIndex], users.length === 0 ? producerId : [...users, producerId]);
  }

  removeProducerRecency(lastUsedLogIndex: number, producerId: string): void {
    const users = this.producersUsedAt(lastUsedLogIndex);
    assert(users.includes(producerId), () => `producer ${producerId} is not in the eviction order at ${lastUsedLogIndex}`);
    const rest = users.filter((user) => user !== producerId);
    if (rest.length === 0) this.remove(['plru', lastUsedLogIndex]);
    else this.put(['plru', lastUsedLogIndex], rest.length === 1 ? rest[0]! : rest);
  }

  /** The producer the entry being applied (logIndex) used last so far (undefined: none). */
  lastProducerUsingApplyingEntry(logIndex: number): string | undefined {
    return this.producersUsingApplyingEntry(logIndex).at(-1);
  }

  /**
   * producersUsedAt for the entry being applied: its record is one this apply wrote or none,
   * never one in lmdb (lmdb holds the state of an earlier applied index, flushed with it), so
   * lmdb is not asked. A miss there costs ~30 µs (a new read transaction after each write one),
   * once per entry.
   */
  private producersUsingApplyingEntry(logIndex: number): readonly string[] {
    assert(logIndex > (this.getMeta('appliedIndex') ?? 0), () => `entry ${logIndex} is already applied`);
    const slot = this.slotAt(locate(['plru', logIndex]));
    return slot === undefined || slot.value === REMOVED ? [] : recencyUsers(slot.value);
  }

  private producersUsedAt(lastUsedLogIndex: number): readonly string[] {
    const value = this.get(['plru', lastUsedLogIndex]);
    return value === undefined ? [] : recencyUsers(value);
  }

  /** The entry placed nothing; with `skipped`, it placed all of its messages but those positions. */
  markUnplaced(logIndex: number, skipped?: readonly number[]): void {
    assert(skipped === undefined || skipped.length >= 1, 'a partial unplaced mark names positions');
    this.insert(['unplaced', logIndex], skipped ?? 1);
  }

  /** Log indexes of unplaced produce entries below `belowLogIndex`, smallest first, at most limit. */
  listUnplacedBelow(belowLogIndex: number, limit: number): number[] {
    return this.range(['unplaced'], ['unplaced', belowLogIndex], limit).map(({ key }) => integer(key[1]));
  }

  removeUnplaced(logIndex: number): void {
    this.remove(['unplaced', logIndex]);
  }

  /** Queues in key order after (topic, queueId) when given, at most limit. */
  listQueues(after: { topic: string; queueId: number } | undefined, limit: number): (QueueRecord & { topic: string; queueId: number })[] {
    // A queueId is at most maxQueuesPerTopic - 1, so after + 0.5 starts just past `after`.
    const start: Key = after === undefined ? ['queue'] : ['queue', after.topic, after.queueId + 0.5];
    return this.range(start, ['queue', MAX_KEY_PART], limit).map(({ key, value }) => {
      const [, topic, queueId] = key;
      assert(typeof topic === 'string', 'queue key without a topic');
      const [minOffset, nextOffset] = tuple(value, 2, 'queue');
      return { topic, queueId: integer(queueId), minOffset: integer(minOffset), nextOffset: integer(nextOffset) };
    });
  }

  /** Consume queue records [fromOffset, ..) of a queue wait for deletion (retention). */
  putGarbage(topic: string, queueId: number, fromOffset: number): void {
    this.put(['gc', topic, queueId], fromOffset);
  }

  removeGarbage(topic: string, queueId: number): void {
    this.remove(['gc', topic, queueId]);
  }

  getGarbage(topic: string, queueId: number): number | undefined {
    const value = this.get(['gc', topic, queueId]);
    return value === undefined ? undefined : integer(value);
  }

  /** Queues with consume queue records to delete, in key order, at most limit. */
  listGarbage(limit: number): { topic: string; queueId: number; fromOffset: number }[] {
    return this.range(['gc'], ['gc', MAX_KEY_PART], limit).map(({ key, value }) => {
      const [, topic, queueId] = key;
      assert(typeof topic === 'string', 'gc key without a topic');
      return { topic, queueId: integer(queueId), fromOffset: integer(value) };
    });
  }

  putTimer(timer: TimerRef, message: ProduceMessage): void {
    assert(message.deliverAtMs === timer.deliverAtMs, 'a timer is keyed by its message due time');
    // The body as a copy of its own: the message waits in the write buffer until a flush, and
    // its body views the whole entry it came in (or, on the leader, the request's frame).
    this.insert(timerKey(timer), { ...message, body: new Uint8Array(message.body) });
  }

  getTimer(timer: TimerRef): ProduceMessage | undefined {
    return this.get(timerKey(timer)) as ProduceMessage | undefined;
  }

  removeTimer(timer: TimerRef): void {
    this.remove(timerKey(timer));
  }

  /** Timers due at or before dueByMs, in due order, after `after` when given, at most limit. */
  listDueTimers(dueByMs: number, after: TimerRef | undefined, limit: number): { timer: TimerRef; message: ProduceMessage }[] {
    // A position is a whole number, so position + 0.5 starts just past `after`.
    const start: Key = after === undefined ? ['timer'] : ['timer', after.deliverAtMs, after.logIndex, after.position + 0.5];
    return this.range(start, ['timer', dueByMs + 0.5], limit).map(({ key, value }) => {
      const [, deliverAtMs, logIndex, position] = key;
      return { timer: { deliverAtMs: integer(deliverAtMs), logIndex: integer(logIndex), position: integer(position) }, message: value as ProduceMessage };
    });
  }

  putSentBack(group: string, topic: string, queueId: number, offset: number, record: SentBackRecord): void {
    this.insert(['sentBack', group, topic, queueId, offset], [record.target, record.reconsumeTimes, record.deliverAtMs]);
  }

  getSentBack(group: string, topic: string, queueId: number, offset: number): SentBackRecord | undefined {
    const value = this.get(['sentBack', group, topic, queueId, offset]);
    if (value === undefined) return undefined;
    const [target, reconsumeTimes, deliverAtMs] = tuple(value, 3, 'sentBack');
    assert(target === 'retry' || target === 'dlq', 'sentBack record without a target');
    return { target, reconsumeTimes: integer(reconsumeTimes), deliverAtMs: deliverAtMs === null ? null : integer(deliverAtMs) };
  }

  /** Whether the group has any sentBack record (most groups never send one back). */
  hasSentBack(group: string): boolean {
    return this.range(['sentBack', group], ['sentBack', group, MAX_KEY_PART], 1).length > 0;
  }

  /** Removes a queue's sentBack records of the group below belowOffset; returns how many. */
  removeSentBackBelow(group: string, topic: string, queueId: number, belowOffset: number, limit: number): number {
    const records = this.range(['sentBack', group, topic, queueId], ['sentBack', group, topic, queueId, belowOffset], limit);
    for (const { key } of records) this.removeExisting(key);
    return records.length;
  }

  markDlqResent(group: string, dlqOffset: number): void {
    this.insert(['dlqResent', group, dlqOffset], 1);
  }

  isDlqResent(group: string, dlqOffset: number): boolean {
    return this.get(['dlqResent', group, dlqOffset]) !== undefined;
  }

  /** Removes the group's resent marks below belowOffset (retention forgot those dead letters); returns how many. */
  removeDlqResentBelow(group: string, belowOffset: number, limit: number): number {
    const records = this.range(['dlqResent', group], ['dlqResent', group, belowOffset], limit);
    for (const { key } of records) this.removeExisting(key);
    return records.length;
  }

  /** Dead letters of the group re-delivered at DLQ offsets >= fromOffset, counted up to limit. */
  countDlqResent(group: string, fromOffset: number, limit: number): number {
    return this.range(['dlqResent', group, fromOffset], ['dlqResent', group, MAX_KEY_PART], limit).length;
  }

  /** Marks a group as known (groups() lists it) without an offset, e.g. when it first sends back. */
  putGroup(group: string): void {
    this.put(['group', group], 1);
  }

  /** The producer used least recently (smallest last-used log index; the first one that entry used). */
  leastRecentProducer(): { producerId: string; lastUsedLogIndex: number } | undefined {
    const [first] = this.range(['plru'], ['plru', MAX_KEY_PART], 1);
    if (first === undefined) return undefined;
    return { producerId: recencyUsers(first.value)[0]!, lastUsedLogIndex: integer(first.key[1]) };
  }
}

/** The producers a recency record names: one (a string) or, used by one produceBatch entry, several. */
export function recencyUsers(value: unknown): readonly string[] {
  if (typeof value === 'string') return [value];
  assert(isProducerList(value), 'producer recency without a producer');
  return value;
}

/** Two or more distinct producerIds. */
export function isProducerList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length >= 2 && value.every((id) => typeof id === 'string') && new Set(value).size === value.length;
}

/**
 * Sorts after every string and number part in ordered-binary, so ['x', a, MAX_KEY_PART] ends
 * the range of keys starting with ['x', a]. (Validated names never contain control bytes, so
 * no stored string part can compare above it.)
 */
export const MAX_KEY_PART = '\uffff';

/** Runs read per range call while a lookup looks for a msgId's copy. */
const MSG_ID_RUNS_PER_PAGE = 16;

/**
 * The prefix shared by a produce's placed messages when every one is named `prefix.N`, N its
 * position in the produce (batchPos - runStart; two at least), else undefined: then its msgIds
 * go to one msgrun record.
 */
export function msgIdRunPrefix(items: readonly { readonly message: { readonly msgId: string }; readonly batchPos: number }[], runStart: number): string | undefined {
  if (items.length < 2) return undefined;
  const prefix = runNameOf(items[0]!.message.msgId)?.name;
  if (prefix === undefined) return undefined;
  return items.every(({ message, batchPos }) => isNamed(message.msgId, prefix, batchPos - runStart)) ? prefix : undefined;
}

/** Whether msgId is `${prefix}.${n}`, compared in place (building the string to compare cost more than the rest of the check). */
function isNamed(msgId: string, prefix: string, n: number): boolean {
  const digits = String(n);
  return msgId.length === prefix.length + 1 + digits.length && msgId.charCodeAt(prefix.length) === DOT && msgId.startsWith(prefix) && msgId.endsWith(digits);
}

const DOT = 0x2e;
const MINUS = 0x2d;
const DIGIT_ZERO = 0x30;
/** 2^53 - 1 has 16 digits: a longer N is not a safe integer. */
const MAX_SAFE_INTEGER_DIGITS = 16;

/** The prefix of a msgId named `prefix.N` (msgIdRunPrefix), or undefined. */
export function msgIdRunName(msgId: string): string | undefined {
  return runNameOf(msgId)?.name;
}

/** A msgId named `name-N` (N as the producer writes a seq: no sign, no leading zero), split; else undefined. */
export function seqNameOf(msgId: string): NumberedName | undefined {
  return splitNumbered(msgId, '-');
}

/** A copy an index record points at, with the log index of its entry. */
interface IndexedCopy {
  logIndex: number;
  position: QueuePosition;
}

/** `prefix.N` with N a position as the producer writes it (no sign, no leading zero), split: name is the prefix. */
function runNameOf(msgId: string): NumberedName | undefined {
  return splitNumbered(msgId, '.');
}

/** A msgId `name${separator}N` split at its last separator. */
interface NumberedName {
  name: string;
  n: number;
}

/** msgId as `name${separator}N`, N a safe integer written as String(N) writes it, split at the last separator. */
function splitNumbered(msgId: string, separator: '.' | '-'): NumberedName | undefined {
  const at = msgId.lastIndexOf(separator);
  if (at <= 0) return undefined;
  // Read in place (a slice, Number() and String() back cost twice as much), as String(N) writes
  // N: an optional minus (after a '.' only: a '-' would have been the last separator), no
  // leading zero, and no "-0".
  let from = at + 1;
  const negative = msgId.charCodeAt(from) === MINUS;
  if (negative) from += 1;
  const digits = msgId.length - from;
  if (digits === 0 || digits > MAX_SAFE_INTEGER_DIGITS) return undefined;
  if (msgId.charCodeAt(from) === DIGIT_ZERO && (digits > 1 || negative)) return undefined;
  let n = 0;
  for (let i = from; i < msgId.length; i++) {
    const digit = msgId.charCodeAt(i) - DIGIT_ZERO;
    if (digit < 0 || digit > 9) return undefined;
    n = n * 10 + digit;
  }
  // Exact below 2^53; above, rounding stays above 2^53 - 1, so a too-large N is still refused.
  if (n > Number.MAX_SAFE_INTEGER) return undefined;
  return { name: msgId.slice(0, at), n: negative ? -n : n };
}

/** A msgrun or msgseq record's value: flat when every copy is placed in one topic (see the header). */
function runOfCopies(copies: readonly (QueuePosition | null)[]): unknown[] {
  const topic = copies[0]?.topic;
  if (topic !== undefined && copies.every((copy) => copy !== null && copy.topic === topic)) {
    const flat: unknown[] = [topic];
    for (const copy of copies as readonly QueuePosition[]) flat.push(copy.queueId, copy.offset);
    return flat;
  }
  return copies.map((copy) => (copy === null ? null : [copy.topic, copy.queueId, copy.offset]));
}

/** Where copy i of a run went (runOfCopies' value, either form), or undefined when the run did not place it. */
function copyInRun(run: unknown, i: number, what: string): QueuePosition | undefined {
  assert(Array.isArray(run), () => `${what} record is not an array`);
  if (typeof run[0] === 'string') {
    assert(run.length % 2 === 1, () => `flat ${what} record of ${run.length} elements`);
    if (i < 0 || 1 + 2 * i >= run.length) return undefined;
    return { topic: run[0], queueId: integer(run[1 + 2 * i]), offset: integer(run[2 + 2 * i]) };
  }
  const copy: unknown = run[i];
  return copy === undefined || copy === null ? undefined : queuePosition(copy, what);
}

function queuePosition(value: unknown, what: string): QueuePosition {
  const [topic, queueId, offset] = tuple(value, 3, what);
  assert(typeof topic === 'string', () => `${what} without a topic`);
  return { topic, queueId: integer(queueId), offset: integer(offset) };
}

function consumeQueueKey(topic: string, queueId: number, offset: number): Key {
  return ['cq', topic, queueId, offset - (offset % CONSUME_QUEUE_UNITS_PER_RECORD)];
}

/**
 * A consume queue record's bytes as the replicas compare them (stateDigest): only units at or
 * above minOffset, the rest gaps, since replicas forget (or, rebuilt, never had) the others at
 * different times; null when it holds none.
 */
export function retainedConsumeQueueBytes(key: Key, bytes: Uint8Array, minOffset: number): Uint8Array | null {
  const firstOffset = key[3];
  assert(typeof firstOffset === 'number', 'consume queue key without its first offset');
  if (firstOffset >= minOffset) return bytes;
  const record = packr.unpack(bytes);
  assert(record instanceof Uint8Array, 'consume queue record is not bytes');
  const retained = withGaps(record, minOffset - firstOffset);
  return retained === null ? null : packr.pack(retained);
}

function timerKey(timer: TimerRef): Key {
  return ['timer', timer.deliverAtMs, timer.logIndex, timer.position];
}

function tuple(value: unknown, length: number, what: string): unknown[] {
  assert(Array.isArray(value), () => `${what} record is not an array`);
  assert(value.length === length, () => `${what} record has ${value.length} fields, expected ${length}`);
  return value;
}

function integer(value: unknown): number {
  assert(typeof value === 'number' && Number.isSafeInteger(value), () => `stored ${String(value)} is not an integer`);
  return value;
}

/** A read cache's note that lmdb holds no record at the key. */
const ABSENT = Symbol('absent');
/** Kinds whose lmdb misses are cached (read). */
const NEGATIVELY_CACHED_KINDS: ReadonlySet<string> = new Set(['meta', 'cq']);

/** Decoded records as lmdb holds them (ABSENT: none), by key id, at most maxRecords (see remember). */
interface ReadCache {
  readonly records: Map<string, unknown>;
  readonly maxRecords: number;
}

/**
 * Caches a record, making room by dropping the one cached longest ago (a Map iterates in
 * insertion order). A rewritten record moves to the young end. A full cache must keep taking
 * what is read next: a pull walks a consume queue record unit by unit, and one left uncached
 * was unpacked whole again for each of its 64 units (43% of a leader's CPU while a consumer
 * read a backlog larger than the cache).
 */
function remember(cache: ReadCache, id: string, value: unknown): void {
  cache.records.delete(id);
  if (cache.records.size >= cache.maxRecords) cache.records.delete(cache.records.keys().next().value as string);
  cache.records.set(id, value);
  assert(cache.records.size <= cache.maxRecords, 'read cache within its bound');
}

interface Located {
  readonly key: Key;
  readonly kind: string;
  readonly id: string;
}

/**
 * The last two-part key located of each kind. Applying produces asks for the same few records
 * again and again (its producer, its topic, the entry's recency record, meta appliedIndex: five
 * or six lookups a produce, each joining a new id string and hashing it in two maps). The same
 * Located again keeps the id string, whose hash V8 keeps with it. A Located is a function of the
 * key's parts alone, so any store may share it; it keeps the first caller's key array, which
 * holds because keys are never changed after they are built.
 */
const lastLocatedOfKind = new Map<string, Located>();

function locate(key: Key): Located {
  const kind = kindOf(key);
  if (key.length !== 2) return { key, kind, id: keyId(key) };
  const last = lastLocatedOfKind.get(kind);
  // Only two-part keys are kept here; === tells a number part from a string of its digits.
  if (last !== undefined && last.key[1] === key[1]) return last;
  const located = { key, kind, id: keyId(key) };
  lastLocatedOfKind.set(kind, located);
  return located;
}

function kindOf(key: Key): string {
  const kind = key[0];
  assert(typeof kind === 'string', 'a key starts with its kind');
  return kind;
}

/**
 * A string naming the key within its kind. Unambiguous because every kind fixes the type of
 * each key part and stored names never contain control characters.
 */
function keyId(key: Key): string {
  return key.join('\u0000');
}

/**
 * lmdb's order of keys (ordered-binary): part by part, numbers before strings, numbers by
 * value, strings by their UTF-8 bytes; a key that is a prefix of another sorts first.
 */
export function compareKeys(a: Key, b: Key): number {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) {
    const order = comparePart(a[i]!, b[i]!);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

function comparePart(a: string | number, b: string | number): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  if (typeof b === 'number') return 1;
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
