// The bytes of a consume queue record (store.ts): up to CONSUME_QUEUE_UNITS_PER_RECORD units, one
// per offset from the record's first, in order. A batch appends its units to the record's bytes
// as they are, so a flush copies the record instead of packing again every unit it already held
// (records of nested msgpack arrays, packed again at each flush, were most of a follower's
// msgpack time in its profile and half its garbage collection; the CPU a message the bench
// reports did not move beyond its noise).
//
// Layout (uint and str as byte-codec.ts writes them):
//   record = unit{count}
//   unit   = length:uint, then length bytes of body (length 0: no message at the offset — a
//            forgotten one, or below minOffset in a queue rebuilt after a snapshot restore)
//   body   = flags:u8 logIndex:uint batchPos:uint storeTimestampMs:uint bodyBytes:uint msgId:str,
//            then as flags say: tagHash:uint (1), keys: count:uint str{count} (2), and where the
//            msgId is indexed: its entry's msgrun record (4), or the msgseq record of the run
//            from N: N:uint (8); neither flag: its own msgid record. Flag 16: msgId and keys are
//            WTF-8 (byte-codec.ts putWtf8), for a string holding a lone surrogate: a message
//            sent in a msgpack command may carry one, and the unit must name it exactly, as its
//            key and msgId index records do.
// Only this module writes these bytes; a record that does not decode is corrupt state, and an
// assertion stops the node. Records are never changed in place (each write is a new buffer),
// which the index of unit starts below relies on.
import { assert } from '../util/assert.js';
import {
  endLengthPrefixed,
  putRaw,
  putStr,
  putU8,
  putUint,
  putWtf8,
  readFieldEnd,
  readPosition,
  readRemaining,
  readStr,
  readTo,
  readU8,
  readUint,
  readWtf8,
  startLengthPrefixed,
  startReading,
  startWriting,
  stopReading,
  takeWrittenOwned,
} from '../protocol/byte-codec.js';
import { ShapeError } from '../protocol/shape-error.js';
import type { ConsumeQueueRecord } from './store.js';

const TAG_HASH_FLAG = 1;
const KEYS_FLAG = 2;
const IN_RUN_FLAG = 4;
const IN_SEQ_RUN_FLAG = 8;
/** msgId and keys in WTF-8: one of them holds a lone surrogate, which UTF-8 would turn into U+FFFD. */
const WTF8_FLAG = 16;
const KNOWN_FLAGS = TAG_HASH_FLAG | KEYS_FLAG | IN_RUN_FLAG | IN_SEQ_RUN_FLAG | WTF8_FLAG;

/** The number of units (messages or gaps) the record holds. */
export function unitCount(record: Uint8Array): number {
  return unitStarts(record).length;
}

/**
 * The record with `position - unitCount(record)` gaps and then units[from..to) appended (a
 * record starts at position 0 when `record` is undefined), in a buffer of its own: a read
 * cache may hold it long, which a slice of Node's shared pool would keep the whole chunk for.
 */
export function appendUnits(record: Uint8Array | undefined, position: number, units: readonly ConsumeQueueRecord[], from: number, to: number): Buffer {
  const count = record === undefined ? 0 : unitCount(record);
  assert(count <= position, () => `consume queue record already holds position ${position} (it has ${count} units)`);
  startWriting();
  if (record !== undefined) putRaw(record);
  for (let gap = count; gap < position; gap++) putUint(0);
  for (let i = from; i < to; i++) putUnit(units[i]!);
  return takeWrittenOwned();
}

/** The unit at `position`: undefined past the last one, null for a gap. */
export function unitAt(record: Uint8Array, position: number): ConsumeQueueRecord | null | undefined {
  const starts = unitStarts(record);
  return position < starts.length ? decoded(record, starts[position]!, readUnit) : undefined;
}

/**
 * The record with the units at positions below `firstKept` (and at `removed`, if given) turned
 * into gaps; null when no unit is left.
 */
export function withGaps(record: Uint8Array, firstKept: number, removed = -1): Buffer | null {
  const starts = unitStarts(record);
  let left = 0;
  startWriting();
  for (let position = 0; position < starts.length; position++) {
    const start = starts[position]!;
    const end = position + 1 < starts.length ? starts[position + 1]! : record.byteLength;
    if (position < firstKept || position === removed || end === start + 1) {
      putUint(0);
    } else {
      putRaw(record.subarray(start, end));
      left += 1;
    }
  }
  return left === 0 ? null : takeWrittenOwned();
}

function putUnit(unit: ConsumeQueueRecord): void {
  assert(unit.logIndex >= 1, 'consume queue entry points before the log');
  assert(unit.tagHash === null || unit.tagHash >= 0, 'consume queue entry with a bad tag hash');
  const inRun = unit.msgIdInRun;
  const wtf8 = !unit.msgId.isWellFormed() || !unit.keys.every((key) => key.isWellFormed());
  const putText = wtf8 ? putWtf8 : putStr;
  const flags =
    (unit.tagHash === null ? 0 : TAG_HASH_FLAG) |
    (unit.keys.length === 0 ? 0 : KEYS_FLAG) |
    (inRun === true ? IN_RUN_FLAG : 0) |
    (typeof inRun === 'number' ? IN_SEQ_RUN_FLAG : 0) |
    (wtf8 ? WTF8_FLAG : 0);
  const body = startLengthPrefixed();
  putU8(flags);
  putUint(unit.logIndex);
  putUint(unit.batchPos);
  putUint(unit.storeTimestampMs);
  putUint(unit.bodyBytes);
  putText(unit.msgId);
  if (unit.tagHash !== null) putUint(unit.tagHash);
  if (unit.keys.length > 0) {
    putUint(unit.keys.length);
    for (const key of unit.keys) putText(key);
  }
  if (typeof inRun === 'number') putUint(inRun);
  endLengthPrefixed(body);
}

function readUnit(): ConsumeQueueRecord | null {
  const end = readFieldEnd('unit');
  if (end === readPosition()) return null;
  const flags = readU8('flags');
  if ((flags & ~KNOWN_FLAGS) !== 0 || ((flags & IN_RUN_FLAG) !== 0 && (flags & IN_SEQ_RUN_FLAG) !== 0)) throw new ShapeError(`unit flags ${flags}`);
  const readText = (flags & WTF8_FLAG) !== 0 ? readWtf8 : readStr;
  const unit: ConsumeQueueRecord = {
    logIndex: readUint('logIndex'),
    batchPos: readUint('batchPos'),
    storeTimestampMs: readUint('storeTimestampMs'),
    bodyBytes: readUint('bodyBytes'),
    msgId: readText('msgId'),
    keys: [],
    tagHash: null,
    msgIdInRun: (flags & IN_RUN_FLAG) !== 0,
  };
  if ((flags & TAG_HASH_FLAG) !== 0) unit.tagHash = readUint('tagHash');
  if ((flags & KEYS_FLAG) !== 0) {
    const keys: string[] = [];
    const count = readUint('keys');
    if (count === 0) throw new ShapeError('the keys flag is set on a unit without keys');
    while (keys.length < count) keys.push(readText('keys'));
    unit.keys = keys;
  }
  // One unit, one encoding: WTF-8 only where UTF-8 could not carry a string.
  if ((flags & WTF8_FLAG) !== 0 && unit.msgId.isWellFormed() && unit.keys.every((key) => key.isWellFormed())) throw new ShapeError('the WTF-8 flag is set on a unit whose strings are all Unicode text');
  if ((flags & IN_SEQ_RUN_FLAG) !== 0) unit.msgIdInRun = readUint('msgIdInRun');
  if (readPosition() !== end) throw new ShapeError(`a unit's fields end at byte ${readPosition()}, its length says ${end}`);
  return unit;
}

/**
 * Where each unit of the last record asked about starts: readers walk a record's offsets in
 * turn, and finding the unit at a position by skipping the ones before it cost each read a walk.
 * Keyed by the record's identity (records are never changed in place) and length.
 */
let indexedRecord: Uint8Array | undefined;
let indexedBytes = -1;
let indexedStarts: readonly number[] = [];

function unitStarts(record: Uint8Array): readonly number[] {
  if (record === indexedRecord && record.byteLength === indexedBytes) return indexedStarts;
  const starts = decoded(record, 0, () => {
    const found: number[] = [];
    while (readRemaining() > 0) {
      found.push(readPosition());
      readTo(readFieldEnd('unit'));
    }
    return found;
  });
  indexedRecord = record;
  indexedBytes = record.byteLength;
  indexedStarts = starts;
  return starts;
}

/** Runs `read` over the record from byte `at`; a record that does not decode stops the node. */
function decoded<T>(record: Uint8Array, at: number, read: () => T): T {
  startReading(record, at, 'the consume queue record');
  try {
    return read();
  } catch (error) {
    if (error instanceof ShapeError) assert(false, `corrupt consume queue record: ${error.message}`);
    throw error;
  } finally {
    stopReading();
  }
}
