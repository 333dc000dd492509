// Snapshots of the broker state: the payload bytes (the snapshot file store, src/log, makes
// them atomic and checksummed) and the restore that rebuilds the derived state from the log.
//
// What is in it: every record the retained log cannot give back — meta (appliedIndex, settings,
// lastStoreTimestampMs, retainedFromIndex, retainedFromStoreTimestampMs, producer count),
// topics, queues (minOffset and nextOffset), group offsets, producer dedup records and their
// eviction order, the unplaced marks (entries at or above retainedFromIndex that placed
// nothing — duplicates, gaps, missing queues — or skipped some positions), the timer index
// (delayed messages with their bodies: the produce entry that parked one may be long gone),
// the sentBack and dlqResent records, orderly consumers' queue locks with the lock clock
// (queue-locks.ts), the simple consumer's cursors, in-flight messages, their due index and
// rotations (simple-consumer.ts), transactions — half messages with their bodies, check
// counts, remembered ends (transactions.ts) — and each topic's last growth (topic-growth.ts).
// Not in it: consume queues and the key and msgId
// indexes, which are derived — a restore walks the retained log [retainedFromIndex .. index]
// forward with running per-queue offsets from each queue's minOffset and stores what applying
// placed (placement.ts, the same code and the same rule of which messages an entry placed),
// then checks the running offsets end at each queue's nextOffset.
//
// Format (version SNAPSHOT_FORMAT_VERSION): a sequence of msgpack values — a header map
// {format, version, index, retainedFromIndex}, then one [key, packed value] array per record
// in key order, then a trailer map {records}. The payload does not depend on where chunks
// end. The values are the lmdb records' own bytes (store.ts's layout, schema SCHEMA_VERSION),
// so encoding copies them without decoding; the restore decodes and validates every one: a
// payload is input from disk or the network, and anything wrong in it is LMQ_CORRUPT_DATA,
// never an assertion.
//
// Encoding, decoding and the rebuild run in slices of at most MAX_SLICE_MS, yielding to the
// event loop between them, so applies (while a snapshot is encoded) and heartbeats (while one
// is restored) wait at most that long.
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { Packr } from 'msgpackr';
import { type Entry, EntryType } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { LIMITS } from '../protocol/index.js';
import { carriedMessageProblem, decodeCommand, dlqTopicOf } from './commands.js';
import { EntryPlacer, entryTimestampMs, placedItems, queueKey, type RunningQueue, sharedRunNamesOf } from './placement.js';
import { LOCK_CLOCK_META, LOCK_KIND, lockedQueueOf, lockRecordProblem } from './queue-locks.js';
import { CURSOR_KIND, DUE_KIND, INFLIGHT_KIND, ROTATION_KIND, simpleRecordProblem, simpleRelationProblem } from './simple-consumer.js';
import { RETAINED_FROM_INDEX_META, RETAINED_FROM_STORE_TIMESTAMP_META } from './retention.js';
import { TX_DUE_KIND, TX_END_ORDER_KIND, TX_ENDED_COUNT_META, TX_ENDED_KIND, TX_KIND, TX_MESSAGE_KIND, TX_OPEN_COUNT_META, txRecordProblem, txRelationProblem } from './transactions.js';
import type { CommittedLogReader } from './state-machine.js';
import { type BrokerStore, compareKeys, isProducerList, type Key, MAX_KEY_PART, PREFERRED_LEADER_KIND, recencyUsers, type StoreReadView } from './store.js';

/** 2: timer, sentBack and dlqResent records; partial unplaced marks; delayed placements. 3: simple-consumer records and transactions. 4: the preferred leader record. */
export const SNAPSHOT_FORMAT_VERSION = 4;
const FORMAT_NAME = 'ledgermq-broker-state';

/** The kinds of record a snapshot holds, in key order; the rest is derived from the log. */
export const SNAPSHOT_KINDS = [
  'dlqResent', 'group', 'growth', LOCK_KIND, 'meta', 'offset', 'plru', CURSOR_KIND, DUE_KIND, INFLIGHT_KIND, ROTATION_KIND, PREFERRED_LEADER_KIND, 'producer', 'queue', 'sentBack', 'timer', 'topic',
  TX_KIND, TX_DUE_KIND, TX_END_ORDER_KIND, TX_ENDED_KIND, TX_MESSAGE_KIND, 'unplaced',
] as const;

/** Default bound on one chunk's bytes (one record larger than it makes a chunk of its own). */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Records written to lmdb per restore transaction, and log bytes read per rebuild step. */
const RESTORE_RECORDS_PER_STEP = 1024;
const REBUILD_READ_BYTES = 1024 * 1024;
/** Longest stretch of encoding, decoding or rebuilding between two turns of the event loop. */
const MAX_SLICE_MS = 4;
/** Payload bytes given to one decode call (grown for a single larger value). */
const DECODE_WINDOW_BYTES = 256 * 1024;
/** Records between two looks at the clock. */
const RECORDS_PER_CLOCK_CHECK = 64;

/** Meta records a snapshot may hold; the meta name marking a restore in progress is not one. */
const SNAPSHOT_META = new Set([
  'appliedIndex', 'schemaVersion', 'maxProducers', 'dedupWindowPerProducer', 'lastStoreTimestampMs', 'producerCount',
  RETAINED_FROM_INDEX_META, RETAINED_FROM_STORE_TIMESTAMP_META, LOCK_CLOCK_META, TX_OPEN_COUNT_META, TX_ENDED_COUNT_META,
]);
export const RESTORING_META = 'restoringIndex';
/**
 * The oldest schema (state-machine.ts SCHEMA_VERSION) whose snapshots this build restores: the
 * schemas since changed only records a restore rebuilds from the log, which a snapshot lacks.
 */
export const OLDEST_RESTORABLE_SCHEMA_VERSION = 8;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });
const NO_POSITIONS: ReadonlySet<number> = new Set();

export interface BrokerSnapshot {
  /** The applied index whose state the snapshot holds. */
  readonly index: number;
  /** retainedFromIndex at that index: a restore needs the log [retainedFromIndex .. index]. */
  readonly retainedFromIndex: number;
  /**
   * The payload, in order, in chunks of about maxChunkBytes. Call once; iterating to the end,
   * breaking off or a throw releases the lmdb view it reads.
   */
  chunks(): AsyncIterable<Uint8Array>;
  /** Releases the view when chunks() is never iterated. */
  abort(): void;
}

/** Settings a snapshot must have been taken under (they change apply results). */
export interface SnapshotSettings {
  schemaVersion: number;
  maxProducers: number;
  dedupWindowPerProducer: number;
}

/** Encodes the view's snapshot records, a slice per chunk, yielding to the event loop between chunks. */
export async function* snapshotChunks(view: StoreReadView, index: number, retainedFromIndex: number, maxChunkBytes: number): AsyncGenerator<Uint8Array> {
  assert(Number.isSafeInteger(maxChunkBytes) && maxChunkBytes >= 1, 'chunk bound must be a positive count');
  try {
    yield packr.pack({ format: FORMAT_NAME, version: SNAPSHOT_FORMAT_VERSION, index, retainedFromIndex });
    let records = 0;
    let parts: Uint8Array[] = [];
    let chunkBytes = 0;
    let sliceStartMs = performance.now();
    for (const kind of SNAPSHOT_KINDS) {
      // Unplaced marks below retainedFromIndex are garbage not yet deleted (retention.ts).
      const start: Key = kind === 'unplaced' ? [kind, retainedFromIndex] : [kind];
      for (const { key, bytes } of view.records(start, [kind, MAX_KEY_PART])) {
        const packed = packr.pack([key, bytes]);
        parts.push(packed);
        chunkBytes += packed.byteLength;
        records++;
        if (chunkBytes < maxChunkBytes && (records % RECORDS_PER_CLOCK_CHECK !== 0 || performance.now() - sliceStartMs < MAX_SLICE_MS)) continue;
        yield Buffer.concat(parts);
        parts = [];
        chunkBytes = 0;
        await yieldTurn();
        sliceStartMs = performance.now();
      }
    }
    parts.push(packr.pack({ records }));
    yield Buffer.concat(parts);
  } finally {
    view.done();
  }
}

/**
 * The header of a payload (its first chunk suffices): the index it holds and the first log
 * index a restore needs. LMQ_CORRUPT_DATA when it is not a header of this format version.
 */
export function readSnapshotHeader(payloadStart: Uint8Array): { index: number; retainedFromIndex: number } {
  let header: unknown;
  try {
    packr.unpackMultiple(payloadStart, (value: unknown) => {
      header = value;
      return false; // the first value only
    });
  } catch (error) {
    throw corrupt(`no readable header (${(error as Error).message})`);
  }
  return checkHeader(header);
}

function checkHeader(header: unknown): { index: number; retainedFromIndex: number } {
  if (!isMap(header) || header['format'] !== FORMAT_NAME) throw corrupt('no snapshot header');
  if (header['version'] !== SNAPSHOT_FORMAT_VERSION) {
    throw corrupt(`format version ${String(header['version'])} is not ${SNAPSHOT_FORMAT_VERSION}, the one this build reads`);
  }
  const { index, retainedFromIndex } = header;
  if (!isCount(index) || index < 1) throw corrupt(`index ${String(index)} is not a log index`);
  if (!isCount(retainedFromIndex) || retainedFromIndex < 1 || retainedFromIndex > index) {
    throw corrupt(`retainedFromIndex ${String(retainedFromIndex)} is not within [1, ${index}]`);
  }
  return { index, retainedFromIndex };
}

interface DecodedSnapshot {
  readonly index: number;
  readonly retainedFromIndex: number;
  readonly records: readonly { key: Key; value: unknown }[];
}

function corrupt(problem: string): LmqError {
  return new LmqError('LMQ_CORRUPT_DATA', `corrupt broker snapshot: ${problem}`);
}

/** Decodes and validates a whole payload, in slices; LMQ_CORRUPT_DATA names the first problem. */
export async function decodeSnapshot(payload: Uint8Array, index: number, settings: SnapshotSettings): Promise<DecodedSnapshot> {
  let header: { index: number; retainedFromIndex: number } | undefined;
  let trailer: unknown;
  const records: { key: Key; value: unknown }[] = [];
  const take = (value: unknown): void => {
    if (header === undefined) header = checkHeader(value);
    else if (trailer !== undefined) throw corrupt('values follow its trailer');
    else if (Array.isArray(value)) records.push(decodeRecord(value, records.at(-1)?.key));
    else trailer = value;
  };
  let windowBytes = DECODE_WINDOW_BYTES;
  for (let position = 0; position < payload.byteLength; ) {
    // A window of bytes per decode: msgpackr extracts the strings of everything it is given
    // at once, so a decode of the whole rest each slice would be quadratic. A value cut at
    // the window's end is decoded with the next window (a larger one if it alone fills one).
    const end = Math.min(payload.byteLength, position + windowBytes);
    const sliceStartMs = performance.now();
    // Values are validated after the decode returns: an unpack nested in its callback makes
    // msgpackr copy the rest of its input each time.
    const values: unknown[] = [];
    let consumed = position;
    try {
      packr.unpackMultiple(payload.subarray(position, end), (value: unknown, _start?: number, valueEnd?: number) => {
        values.push(value);
        consumed = position + (valueEnd ?? end - position);
        return performance.now() - sliceStartMs < MAX_SLICE_MS / 2;
      });
    } catch (error) {
      if (end === payload.byteLength) throw corrupt(`not valid msgpack at byte ${consumed} (${(error as Error).message})`);
    }
    if (consumed === position) {
      windowBytes *= 2;
      continue;
    }
    windowBytes = DECODE_WINDOW_BYTES;
    position = consumed;
    for (const value of values) take(value);
    await yieldTurn();
  }
  if (header === undefined) throw corrupt('no snapshot header');
  if (header.index !== index) throw corrupt(`it holds index ${header.index}, not ${index}`);
  if (!isMap(trailer) || trailer['records'] !== records.length) throw corrupt(`it ends early (${records.length} records before the end)`);
  const decoded = { index, retainedFromIndex: header.retainedFromIndex, records };
  checkRelations(decoded, settings);
  return decoded;
}

function decodeRecord(record: unknown, previous: Key | undefined): { key: Key; value: unknown } {
  if (!Array.isArray(record) || record.length !== 2 || !(record[1] instanceof Uint8Array)) throw corrupt('a record is not [key, bytes]');
  const key: unknown = record[0];
  if (!Array.isArray(key) || !key.every((part) => typeof part === 'string' || isCount(part))) throw corrupt('a record key is not a key');
  if (previous !== undefined && compareKeys(previous, key) >= 0) throw corrupt(`records are not in key order at ${describeKey(key)}`);
  let value: unknown;
  try {
    value = packr.unpack(record[1]);
  } catch (error) {
    throw corrupt(`record ${describeKey(key)} is not valid msgpack (${(error as Error).message})`);
  }
  const problem = recordProblem(key, value);
  if (problem !== undefined) throw corrupt(`record ${describeKey(key)} ${problem}`);
  return { key, value };
}

function describeKey(key: unknown[]): string {
  return JSON.stringify(key).slice(0, 200);
}

/** What is wrong with one record's shape, if anything. */
function recordProblem(key: Key, value: unknown): string | undefined {
  const [kind, a] = key;
  const shape = (length: number, ...types: ('s' | 'n')[]) =>
    key.length === length && types.every((type, i) => (type === 's' ? typeof key[i + 1] === 'string' : isCount(key[i + 1])));
  switch (kind) {
    case 'meta':
      if (!shape(2, 's') || !SNAPSHOT_META.has(a as string)) return 'is not a known meta record';
      return isCount(value) ? undefined : 'is not a count';
    case 'topic':
      if (!shape(2, 's')) return 'has a bad key';
      return isTuple(value, 2) && isCount(value[0]) && value[0] >= 1 && value[0] <= LIMITS.maxQueuesPerTopic && isCount(value[1]) ? undefined : 'is not [queues, createdAtLogIndex]';
    case 'queue':
      if (!shape(3, 's', 'n')) return 'has a bad key';
      return isTuple(value, 2) && isCount(value[0]) && isCount(value[1]) && value[0] <= value[1] ? undefined : 'is not [minOffset <= nextOffset]';
    case 'group':
      return shape(2, 's') && value === 1 ? undefined : 'is not a group mark';
    case 'offset':
      return shape(4, 's', 's', 'n') && isCount(value) ? undefined : 'is not an offset';
    case 'plru':
      return shape(2, 'n') && (typeof value === 'string' || isProducerList(value)) ? undefined : 'is not a producer recency record';
    case 'unplaced':
      return shape(2, 'n') && (value === 1 || isPositions(value)) ? undefined : 'is not an unplaced mark';
    case 'timer': {
      if (!shape(4, 'n', 'n', 'n')) return 'has a bad key';
      const problem = carriedMessageProblem(value);
      if (problem !== undefined) return `is not a message: ${problem}`;
      return (value as { deliverAtMs?: unknown }).deliverAtMs === key[1] ? undefined : 'is not due at its key';
    }
    case 'sentBack':
      if (!shape(5, 's', 's', 'n', 'n')) return 'has a bad key';
      return isTuple(value, 3) && (value[0] === 'retry' || value[0] === 'dlq') && isCount(value[1]) && (value[2] === null || isCount(value[2])) ? undefined : 'is not [target, reconsumeTimes, deliverAtMs]';
    case 'dlqResent':
      return shape(3, 's', 'n') && value === 1 ? undefined : 'is not a resent mark';
    case 'growth':
      if (!shape(2, 's')) return 'has a bad key';
      return isTuple(value, 5) && value.slice(0, 4).every(isCount) && Array.isArray(value[4]) && value[4].length === value[0] && value[4].every(isCount) && (value[0] as number) < (value[1] as number)
        ? undefined
        : 'is not [fromQueues < toQueues, logIndex, untilMs, boundaries]';
    case 'producer':
      return shape(2, 's') ? producerProblem(value) : 'has a bad key';
    case PREFERRED_LEADER_KIND:
      return shape(2, 's') && a === 'node' && (value === null || (typeof value === 'string' && value.length > 0)) ? undefined : 'is not a node id or null';
    case LOCK_KIND:
      return lockRecordProblem(key, value);
    case CURSOR_KIND:
    case DUE_KIND:
    case INFLIGHT_KIND:
    case ROTATION_KIND:
      return simpleRecordProblem(key, value);
    case TX_KIND:
    case TX_MESSAGE_KIND:
    case TX_DUE_KIND:
    case TX_ENDED_KIND:
    case TX_END_ORDER_KIND:
      return txRecordProblem(key, value);
    default:
      return `is of a kind a snapshot does not hold`;
  }
}

function producerProblem(value: unknown): string | undefined {
  if (!isMap(value) || Object.keys(value).join() !== 'lastSeq,lastUsedLogIndex,window') return 'is not a producer record';
  const { lastSeq, lastUsedLogIndex, window } = value;
  if (!isCount(lastSeq) || lastSeq < 1 || !isCount(lastUsedLogIndex) || lastUsedLogIndex < 1) return 'has a bad seq or log index';
  if (!Array.isArray(window) || window.length < 1) return 'has no outcome window';
  for (const outcome of window) {
    if (!isMap(outcome) || !isCount(outcome['seq'])) return 'has an outcome without a seq';
    const placed = outcome['placed'];
    const placedOk = Array.isArray(placed) && placed.every((p) => isMap(p) && typeof p['msgId'] === 'string' && isCount(p['queueId']) && isPlacedAt(p));
    const errorOk = (outcome['error'] === 'LMQ_TOPIC_NOT_FOUND' || outcome['error'] === 'LMQ_BAD_INPUT' || outcome['error'] === 'LMQ_ROUTE_CHANGED') && typeof outcome['message'] === 'string';
    if (!placedOk && !errorOk) return 'has an outcome that is neither placements nor an error';
  }
  return (window.at(-1) as Record<string, unknown>)['seq'] === lastSeq ? undefined : 'has a window that does not end at lastSeq';
}

/** Relations between records: every reference resolves, counts agree, the settings match. */
function checkRelations(snapshot: DecodedSnapshot, settings: SnapshotSettings): void {
  const of = (kind: string) => snapshot.records.filter(({ key }) => key[0] === kind);
  const meta = new Map(of('meta').map(({ key, value }) => [key[1] as string, value as number]));
  const topics = new Map(of('topic').map(({ key, value }) => [key[1] as string, (value as number[])[0]!]));
  const groups = new Set(of('group').map(({ key }) => key[1] as string));
  const queues = new Map<string, number>();
  const queuesPerTopic = new Map<string, number>();
  for (const { key, value } of of('queue')) {
    const [, topic, queueId] = key as [string, string, number];
    if (!(queueId < (topics.get(topic) ?? 0))) throw corrupt(`queue ${topic}/${queueId} does not belong to a topic`);
    queues.set(queueKey(topic, queueId), (value as number[])[1]!);
    queuesPerTopic.set(topic, (queuesPerTopic.get(topic) ?? 0) + 1);
  }
  for (const [topic, count] of topics) if (queuesPerTopic.get(topic) !== count) throw corrupt(`topic ${topic} lacks queues`);
  for (const { key, value } of of('offset')) {
    const [, group, topic, queueId] = key as [string, string, string, number];
    const nextOffset = queues.get(queueKey(topic, queueId));
    if (nextOffset === undefined || (value as number) > nextOffset || !groups.has(group)) throw corrupt(`offset of ${group} on ${topic}/${queueId} has no queue or group`);
  }
  for (const { key, value } of of('growth')) {
    const [fromQueues, toQueues, , , boundaries] = value as [number, number, number, number, number[]];
    const topic = key[1] as string;
    if (topics.get(topic) !== toQueues) throw corrupt(`growth of ${topic} to ${toQueues} queues does not match the topic`);
    boundaries.forEach((boundary, queueId) => {
      if (queueId >= fromQueues || boundary > (queues.get(queueKey(topic, queueId)) ?? -1)) throw corrupt(`growth of ${topic} has a boundary past queue ${queueId}'s end`);
    });
  }
  for (const { key } of of(LOCK_KIND)) {
    const { topic, queueId } = lockedQueueOf(key);
    if (!queues.has(queueKey(topic, queueId))) throw corrupt(`lock on ${topic}/${queueId} has no queue`);
  }
  // A timer naming no queue would trip an assertion at its delivery, a resent mark outside the
  // DLQ would hide a future dead letter from resend: the snapshot is corrupt, refused here.
  const minOffsets = new Map(of('queue').map(({ key, value }) => [queueKey(key[1] as string, key[2] as number), (value as number[])[0]!]));
  for (const { key, value } of of('timer')) {
    const { topic, queueId } = value as { topic: string; queueId: number };
    const logIndex = key[2] as number;
    if (!queues.has(queueKey(topic, queueId))) throw corrupt(`timer for ${topic}/${queueId} has no queue`);
    if (logIndex < 1 || logIndex > snapshot.index) throw corrupt(`timer from log index ${logIndex} is past the snapshot's index ${snapshot.index}`);
  }
  for (const { key } of of('dlqResent')) {
    const [, group, dlqOffset] = key as [string, string, number];
    const dlq = queueKey(dlqTopicOf(group), 0);
    const nextOffset = queues.get(dlq);
    if (nextOffset === undefined || dlqOffset < minOffsets.get(dlq)! || dlqOffset >= nextOffset) throw corrupt(`resent mark of ${group} at DLQ offset ${dlqOffset} names no stored dead letter`);
  }
  const ranges = new Map(of('queue').map(({ key, value }) => [queueKey(key[1] as string, key[2] as number), value as [number, number]]));
  const simple = simpleRelationProblem(snapshot.records.filter(({ key }) => [CURSOR_KIND, DUE_KIND, INFLIGHT_KIND].includes(key[0] as string)), ranges);
  if (simple !== undefined) throw corrupt(simple);
  const txProblem = txRelationProblem(of, new Set(queues.keys()), meta, snapshot.index);
  if (txProblem !== undefined) throw corrupt(txProblem);
  for (const { key } of of('unplaced')) {
    const logIndex = key[1] as number;
    if (logIndex < snapshot.retainedFromIndex || logIndex > snapshot.index) throw corrupt(`unplaced mark ${logIndex} is outside the retained log`);
  }
  const producers = of('producer');
  const recency = new Map<string, number>();
  for (const { key, value } of of('plru')) {
    for (const producerId of recencyUsers(value)) {
      if (recency.has(producerId)) throw corrupt(`producer ${producerId} is in the eviction order twice`);
      recency.set(producerId, key[1] as number);
    }
  }
  if ((meta.get('producerCount') ?? 0) !== producers.length || recency.size !== producers.length) throw corrupt('producer counts disagree');
  for (const { key, value } of producers) {
    if (recency.get(key[1] as string) !== (value as { lastUsedLogIndex: number }).lastUsedLogIndex) throw corrupt(`producer ${String(key[1])} is missing from the eviction order`);
  }
  if (meta.get('appliedIndex') !== snapshot.index) throw corrupt(`appliedIndex ${String(meta.get('appliedIndex'))} is not ${snapshot.index}`);
  if ((meta.get(RETAINED_FROM_INDEX_META) ?? 1) !== snapshot.retainedFromIndex) throw corrupt('retainedFromIndex differs from its header');
  for (const name of ['schemaVersion', 'maxProducers', 'dedupWindowPerProducer'] as const) {
    if (meta.get(name) === settings[name]) continue;
    if (name === 'schemaVersion') {
      const schema = meta.get(name);
      if (typeof schema === 'number' && OLDEST_RESTORABLE_SCHEMA_VERSION <= schema && schema < settings.schemaVersion) continue;
      throw corrupt(`it holds state of schema ${String(schema)}; this build restores schemas ${OLDEST_RESTORABLE_SCHEMA_VERSION} to ${settings.schemaVersion}`);
    }
    throw new LmqError('LMQ_BAD_CONFIG', `broker snapshot was taken with ${name} ${String(meta.get(name))}, this node runs with ${settings[name]}; every node must use the same value`);
  }
}

/**
 * Replaces the store's whole state with the snapshot's (validated first: a bad payload changes
 * nothing) and rebuilds the derived records from `log`. A log that disagrees with the snapshot
 * is LMQ_CORRUPT_DATA after the store was cleared; the caller then resets it.
 */
export async function restoreState(store: BrokerStore, payload: Uint8Array, index: number, log: CommittedLogReader, settings: SnapshotSettings): Promise<void> {
  const snapshot = await decodeSnapshot(payload, index, settings);
  store.clear();
  store.transaction(() => store.putMeta(RESTORING_META, index));
  for (let i = 0; i < snapshot.records.length; i += RESTORE_RECORDS_PER_STEP) {
    store.transaction(() => {
      for (const { key, value } of snapshot.records.slice(i, i + RESTORE_RECORDS_PER_STEP)) store.put(key, value);
    });
    await yieldTurn();
  }
  await rebuildDerived(store, snapshot, log);
  // Rebuilt by this build: its schema, whichever restorable schema the snapshot was taken under.
  store.transaction(() => {
    store.putMeta('schemaVersion', settings.schemaVersion);
    store.remove(['meta', RESTORING_META]);
  });
  store.flush();
  assert(store.getMeta('appliedIndex') === index, 'restored state is at its index');
}

/** Walks the retained log, storing what applying its placed produce entries stored. */
async function rebuildDerived(store: BrokerStore, snapshot: DecodedSnapshot, log: CommittedLogReader): Promise<void> {
  const queues = new Map<string, RunningQueue & { expectedNextOffset: number }>();
  /** Per unplaced entry: null when it placed nothing, else the positions it skipped. */
  const unplaced = new Map<number, ReadonlySet<number> | null>();
  let lastStoreTimestampMs = 0;
  let storeTimestampMs = 0;
  for (const { key, value } of snapshot.records) {
    if (key[0] === 'queue') {
      const [minOffset, nextOffset] = value as [number, number];
      const [, topic, queueId] = key as [string, string, number];
      queues.set(queueKey(topic, queueId), { topic, queueId, nextOffset: minOffset, expectedNextOffset: nextOffset });
    }
    if (key[0] === 'unplaced') unplaced.set(key[1] as number, value === 1 ? null : new Set(value as number[]));
    if (key[0] === 'meta' && key[1] === 'lastStoreTimestampMs') lastStoreTimestampMs = value as number;
    if (key[0] === 'meta' && key[1] === RETAINED_FROM_STORE_TIMESTAMP_META) storeTimestampMs = value as number;
  }
  const place = (entry: Entry): void => {
    const skipped = unplaced.get(entry.index);
    if (entry.type !== EntryType.Normal || skipped === null) return;
    const command = decodeCommand(entry.data, entry.index);
    const items = placedItems(command, skipped ?? NO_POSITIONS);
    if (items.length === 0) return;
    storeTimestampMs = Math.max(entryTimestampMs(command), storeTimestampMs);
    const placer = new EntryPlacer(store, entry.index, storeTimestampMs, sharedRunNamesOf(command), (topic, queueId) => {
      const queue = queues.get(queueKey(topic, queueId));
      if (queue === undefined) throw corrupt(`log entry ${entry.index} placed a message in ${topic}/${queueId}, a queue the snapshot lacks`);
      if (queue.nextOffset >= queue.expectedNextOffset) throw corrupt(`log entry ${entry.index} places more messages in ${topic}/${queueId} than the snapshot holds`);
      return queue;
    });
    placer.place(items);
    placer.finish();
  };
  for (let lo = snapshot.retainedFromIndex; lo <= snapshot.index; ) {
    const entries = log.entries(lo, snapshot.index + 1, REBUILD_READ_BYTES);
    assert(entries.length >= 1 && entries[0]!.index === lo, () => `log returned no entry at ${lo}`);
    // One transaction per slice of entries: its records reach lmdb with the buffer.
    for (let i = 0; i < entries.length; ) {
      const sliceStartMs = performance.now();
      store.transaction(() => {
        do place(entries[i++]!);
        while (i < entries.length && performance.now() - sliceStartMs < MAX_SLICE_MS);
      });
      await yieldTurn();
    }
    lo += entries.length;
  }
  for (const queue of queues.values()) {
    if (queue.nextOffset !== queue.expectedNextOffset) {
      throw corrupt(`the retained log places ${queue.topic}/${queue.queueId} up to offset ${queue.nextOffset}, the snapshot says ${queue.expectedNextOffset}`);
    }
  }
  if (storeTimestampMs !== lastStoreTimestampMs) throw corrupt(`the retained log ends at store time ${storeTimestampMs}, the snapshot says ${lastStoreTimestampMs}`);
}

/** A placement has its offset, or (a delayed message) offset null and its due time. */
function isPlacedAt(placement: Record<string, unknown>): boolean {
  if (placement['offset'] === null) return isCount(placement['deliverAtMs']);
  return isCount(placement['offset']) && placement['deliverAtMs'] === undefined;
}

/** Positions an entry skipped: ascending, distinct, at least one. */
function isPositions(value: unknown): boolean {
  return Array.isArray(value) && value.length >= 1 && value.every((p, i) => isCount(p) && (i === 0 || p > (value[i - 1] as number)));
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isTuple(value: unknown, length: number): value is unknown[] {
  return Array.isArray(value) && value.length === length;
}
