// The bytes of a consume queue record (store.ts): up to CONSUME_QUEUE_UNITS_PER_RECORD units, one
// per offset from the record's first, in order. A batch appends its units to the record's bytes
// as they are, so a flush copies the record instead of packing again every unit it already held
// (records of nested msgpack arrays cost about a microsecond a message on each node to pack, and
// a tenth of a follower's garbage).
//
// Layout. uint: unsigned LEB128, minimal, at most 2^53 - 1. str: uint byte length, then UTF-8.
//   record = unit{count}
//   unit   = length:uint, then length bytes of body (length 0: no message at the offset — a
//            forgotten one, or below minOffset in a queue rebuilt after a snapshot restore)
//   body   = flags:u8 logIndex:uint batchPos:uint storeTimestampMs:uint bodyBytes:uint msgId:str,
//            then as flags say: tagHash:uint (1), keys: count:uint str{count} (2), and where the
//            msgId is indexed: its entry's msgrun record (4), or the msgseq record of the run
//            from N: N:uint (8); neither flag: its own msgid record
// Only this module writes these bytes, from units the state machine built from checked
// commands (their strings well-formed Unicode); a record that does not decode is corrupt
// state, and an assertion stops the node. The coders are plain functions over one cursor: the
// field-by-field methods of a reader object cost four times as much a unit.
import { assert } from '../util/assert.js';
import type { ConsumeQueueRecord } from './store.js';

const TAG_HASH_FLAG = 1;
const KEYS_FLAG = 2;
const IN_RUN_FLAG = 4;
const IN_SEQ_RUN_FLAG = 8;
const KNOWN_FLAGS = TAG_HASH_FLAG | KEYS_FLAG | IN_RUN_FLAG | IN_SEQ_RUN_FLAG;
/** A uint of up to 2^53 - 1 takes at most 8 LEB128 bytes. */
const MAX_UINT_BYTES = 8;
/** A string of at most 42 UTF-16 units takes at most 126 UTF-8 bytes: its length fits one uint byte. */
const ONE_BYTE_LENGTH_MAX_CHARS = 42;
/** The scratch buffer is kept between encodes up to this size. */
const MAX_KEPT_SCRATCH_BYTES = 1024 * 1024;

/**
 * Buffer's own UTF-8 coders, without write's and toString's argument handling (a fifth of the
 * cost of a short string): Node has them, its types do not list them.
 */
type Utf8Buffer = Buffer & { utf8Slice(start: number, end: number): string; utf8Write(value: string, offset: number, length?: number): number };

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
  written = 0;
  if (record !== undefined) putBytes(record);
  room(position - count);
  for (let gap = count; gap < position; gap++) putUint(0);
  for (let i = from; i < to; i++) putUnit(units[i]!);
  return takeWritten();
}

/** The unit at `position`: undefined past the last one, null for a gap. */
export function unitAt(record: Uint8Array, position: number): ConsumeQueueRecord | null | undefined {
  const starts = unitStarts(record);
  return position < starts.length ? readUnit(record, starts[position]!) : undefined;
}

/**
 * The record with the units at positions below `firstKept` (and at `removed`, if given) turned
 * into gaps; null when no unit is left.
 */
export function withGaps(record: Uint8Array, firstKept: number, removed = -1): Buffer | null {
  const starts = unitStarts(record);
  let left = 0;
  written = 0;
  for (let position = 0; position < starts.length; position++) {
    const start = starts[position]!;
    const end = position + 1 < starts.length ? starts[position + 1]! : record.byteLength;
    if (position < firstKept || position === removed || end === start + 1) {
      room(1);
      putUint(0);
    } else {
      putBytes(record.subarray(start, end));
      left += 1;
    }
  }
  const out = takeWritten();
  return left === 0 ? null : out;
}

// --- writing: into one scratch buffer (encoding is synchronous), then copied out --------------

let scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Buffer;
let written = 0;

function room(bytes: number): void {
  if (written + bytes <= scratch.byteLength) return;
  const grown = Buffer.allocUnsafe(Math.max(2 * scratch.byteLength, written + bytes)) as Utf8Buffer;
  scratch.copy(grown, 0, 0, written);
  scratch = grown;
}

function takeWritten(): Buffer {
  const out = Buffer.allocUnsafeSlow(written);
  scratch.copy(out, 0, 0, written);
  if (scratch.byteLength > MAX_KEPT_SCRATCH_BYTES) scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Buffer;
  return out;
}

function putBytes(bytes: Uint8Array): void {
  room(bytes.byteLength);
  scratch.set(bytes, written);
  written += bytes.byteLength;
}

/** Writes a uint; the caller made room for it (MAX_UINT_BYTES). */
function putUint(value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'a consume queue field is a safe whole number');
  // 32-bit arithmetic for the low 32 bits: far cheaper than the division the bits above need.
  while (value > 0xffffffff) {
    scratch[written++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value >= 0x80) {
    scratch[written++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  scratch[written++] = value;
}

/** Writes a str; the caller made room for it (strRoom). */
function putStr(value: string): void {
  if (value.length <= ONE_BYTE_LENGTH_MAX_CHARS) {
    // ASCII (nearly every msgId and key) byte by byte: a call to the native coder costs more.
    const start = written + 1;
    let i = 0;
    for (; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (code >= 0x80) break;
      scratch[start + i] = code;
    }
    const bytes = i === value.length ? i : scratch.utf8Write(value, start);
    scratch[written] = bytes;
    written = start + bytes;
    return;
  }
  const bytes = Buffer.byteLength(value);
  putUint(bytes);
  written += scratch.utf8Write(value, written, bytes);
}

/** Room a str takes at most: its length, and three UTF-8 bytes per UTF-16 unit. */
function strRoom(value: string): number {
  return MAX_UINT_BYTES + 3 * value.length;
}

function putUnit(unit: ConsumeQueueRecord): void {
  assert(unit.logIndex >= 1, 'consume queue entry points before the log');
  assert(unit.tagHash === null || unit.tagHash >= 0, 'consume queue entry with a bad tag hash');
  const inRun = unit.msgIdInRun;
  const flags =
    (unit.tagHash === null ? 0 : TAG_HASH_FLAG) |
    (unit.keys.length === 0 ? 0 : KEYS_FLAG) |
    (inRun === true ? IN_RUN_FLAG : 0) |
    (typeof inRun === 'number' ? IN_SEQ_RUN_FLAG : 0);
  let keysRoom = MAX_UINT_BYTES;
  for (const key of unit.keys) keysRoom += strRoom(key);
  room(2 + 6 * MAX_UINT_BYTES + strRoom(unit.msgId) + keysRoom);
  // The body's length goes in front: one byte is kept for it, and the body moved on in the
  // rare case (many keys) it needs more.
  const lengthAt = written++;
  scratch[written++] = flags;
  putUint(unit.logIndex);
  putUint(unit.batchPos);
  putUint(unit.storeTimestampMs);
  putUint(unit.bodyBytes);
  putStr(unit.msgId);
  if (unit.tagHash !== null) putUint(unit.tagHash);
  if (unit.keys.length > 0) {
    putUint(unit.keys.length);
    for (const key of unit.keys) putStr(key);
  }
  if (typeof inRun === 'number') putUint(inRun);
  const length = written - lengthAt - 1;
  if (length < 0x80) {
    scratch[lengthAt] = length;
    return;
  }
  const body = Buffer.from(scratch.subarray(lengthAt + 1, written));
  written = lengthAt;
  room(MAX_UINT_BYTES + length);
  putUint(length);
  putBytes(body);
}

// --- reading: the cursor moves past each field read --------------------------------------------

let cursor = 0;

function corrupt(why: string): never {
  assert(false, () => `corrupt consume queue record: ${why}`);
}

function readUint(data: Uint8Array, end: number, what: string): number {
  let at = cursor;
  if (at >= end) corrupt(`${what} past the end`);
  let byte = data[at++]!;
  if (byte < 0x80) {
    cursor = at;
    return byte;
  }
  let value = byte & 0x7f;
  let scale = 0x80;
  for (let i = 1; ; i++) {
    if (at >= end) corrupt(`${what} past the end`);
    if (i === MAX_UINT_BYTES) corrupt(`${what} is a number longer than ${MAX_UINT_BYTES} bytes`);
    byte = data[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) break;
    scale *= 0x80;
  }
  if (byte === 0) corrupt(`${what} is a longer number than it needs`);
  if (value > Number.MAX_SAFE_INTEGER) corrupt(`${what} is more than ${Number.MAX_SAFE_INTEGER}`);
  cursor = at;
  return value;
}

function readStr(data: Utf8Buffer, end: number, what: string): string {
  const length = readUint(data, end, what);
  if (length > end - cursor) corrupt(`${what} past the end`);
  const value = data.utf8Slice(cursor, cursor + length);
  cursor += length;
  return value;
}

/** The record as a Buffer, for its UTF-8 decoder (lmdb's values are Buffers already). */
function asBuffer(record: Uint8Array): Utf8Buffer {
  return (Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength)) as Utf8Buffer;
}

function readUnit(record: Uint8Array, at: number): ConsumeQueueRecord | null {
  const data = asBuffer(record);
  cursor = at;
  const length = readUint(data, data.byteLength, 'unit length');
  if (length === 0) return null;
  const end = cursor + length;
  if (end > data.byteLength) corrupt('unit past the end');
  const flags = data[cursor++]!;
  if ((flags & ~KNOWN_FLAGS) !== 0 || ((flags & IN_RUN_FLAG) !== 0 && (flags & IN_SEQ_RUN_FLAG) !== 0)) corrupt(`unit flags ${flags}`);
  const unit: ConsumeQueueRecord = {
    logIndex: readUint(data, end, 'logIndex'),
    batchPos: readUint(data, end, 'batchPos'),
    storeTimestampMs: readUint(data, end, 'storeTimestampMs'),
    bodyBytes: readUint(data, end, 'bodyBytes'),
    msgId: readStr(data, end, 'msgId'),
    keys: [],
    tagHash: null,
    msgIdInRun: (flags & IN_RUN_FLAG) !== 0,
  };
  if ((flags & TAG_HASH_FLAG) !== 0) unit.tagHash = readUint(data, end, 'tagHash');
  if ((flags & KEYS_FLAG) !== 0) {
    const keys: string[] = [];
    for (let count = readUint(data, end, 'keys'); keys.length < count; ) keys.push(readStr(data, end, 'keys'));
    unit.keys = keys;
  }
  if ((flags & IN_SEQ_RUN_FLAG) !== 0) unit.msgIdInRun = readUint(data, end, 'msgIdInRun');
  if (cursor !== end) corrupt(`unit body is ${length} bytes, its fields ${length + cursor - end}`);
  return unit;
}

/**
 * Where each unit of the last record asked about starts: readers walk a record's offsets in
 * turn, and finding the unit at a position by skipping the ones before it cost each read a walk.
 */
let indexedRecord: Uint8Array | undefined;
let indexedStarts: readonly number[] = [];

function unitStarts(record: Uint8Array): readonly number[] {
  if (record === indexedRecord) return indexedStarts;
  const starts: number[] = [];
  for (cursor = 0; cursor < record.byteLength; ) {
    starts.push(cursor);
    const length = readUint(record, record.byteLength, 'unit length');
    if (length > record.byteLength - cursor) corrupt('unit past the end');
    cursor += length;
  }
  indexedRecord = record;
  indexedStarts = starts;
  return starts;
}
