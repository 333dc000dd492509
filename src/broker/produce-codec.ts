// The binary form of produce and produceBatch entries (format byte 2), beside the msgpack form
// of every other command (commands.ts, format byte 1). Produces are nearly every entry of a busy
// log: the leader encodes each once and every node decodes it once per apply and per read, so
// a fixed layout read field by field pays where msgpack's self-describing maps cost most (their
// keys, and a clean copy made after decoding).
//
// Layout. uint: unsigned LEB128, minimal, at most 2^53 - 1. str: uint byte length, then UTF-8.
// bytes: uint length, then the bytes.
//   entry    = 0x02 kind:u8 (1 produce, 2 produceBatch) then a produce, or a batch
//   batch    = count:uint produce{count}
//   produce  = producerId:str seq:uint timestampMs:uint routedQueues:uint (0: none)
//              count:uint message{count}
//   message  = flags:u8 msgId:str topic:str queueId:uint body:bytes, then as flags say (1 tag,
//              2 keys, 4 properties, 8 deliverAtMs): tag:str, keys: count:uint str{count},
//              properties: count:uint (name:str value:str){count}, deliverAtMs:uint
// A batch's produces are its produces' own encodings less their two head bytes, so the leader
// builds a batch by copying (commands.ts encodeProduceBatch).
//
// Decode makes the checks validateProduce makes on a msgpack produce (commands.ts), with the
// same check functions and messages, and refuses what would not re-encode to the same bytes
// (a longer uint than needed, invalid UTF-8, unknown flags, repeated or reordered property
// names, bytes past the end): one command has one encoding. Encode takes a validated command
// and refuses strings that are not well-formed Unicode, which UTF-8 cannot carry unchanged.
import { isUtf8 } from 'node:buffer';
import { LIMITS, RESERVED_PROPERTY_NAME, UNSEQUENCED } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { checkBodyBytes, checkInteger, checkName, checkText, fail, MAX_SCOPED_PRODUCER_ID_LENGTH, ShapeError } from './command-checks.js';
import type { BrokerCommand, ProduceCommand, ProduceMessage } from './commands.js';

export const PRODUCE_FORMAT = 2;
export const PRODUCE_KIND = 1;
export const PRODUCE_BATCH_KIND = 2;
/** The format and kind bytes every produce encoding starts with. */
export const PRODUCE_HEAD_BYTES = 2;
/** A batch's produce count (at most maxMessagesPerProduce) takes this many uint bytes at most. */
export const MAX_COUNT_BYTES = 3;

const TAG_FLAG = 1;
const KEYS_FLAG = 2;
const PROPERTIES_FLAG = 4;
const DELIVER_AT_FLAG = 8;
const KNOWN_FLAGS = TAG_FLAG | KEYS_FLAG | PROPERTIES_FLAG | DELIVER_AT_FLAG;
/** A uint of up to 2^53 - 1 takes at most 8 LEB128 bytes. */
const MAX_UINT_BYTES = 8;
/** A string of at most 42 UTF-16 units takes at most 126 UTF-8 bytes: its length fits one uint byte. */
const ONE_BYTE_LENGTH_MAX_CHARS = 42;
/** The scratch buffer is kept between encodes up to this size; a larger one (a big produce) goes. */
const MAX_KEPT_SCRATCH_BYTES = 1024 * 1024;

/** Encodes a validated produce (commands.ts validateProduce's clean copy). Throws ShapeError. */
export function encodeProduceEntry(produce: ProduceCommand): Uint8Array {
  written = 0;
  putU8(PRODUCE_FORMAT);
  putU8(PRODUCE_KIND);
  writeProduce(produce);
  return takeWritten();
}

/** Encodes a validated produceBatch. Throws ShapeError. */
export function encodeProduceBatchEntry(produces: readonly ProduceCommand[]): Uint8Array {
  written = 0;
  putU8(PRODUCE_FORMAT);
  putU8(PRODUCE_BATCH_KIND);
  putUint(produces.length);
  for (let i = 0; i < produces.length; i++) {
    try {
      writeProduce(produces[i]!);
    } catch (error) {
      throw prefixed(error, `produces[${i}].`);
    }
  }
  return takeWritten();
}

/** The uint header of a batch of `count` produces. */
export function countBytes(count: number): Uint8Array {
  written = 0;
  putUint(count);
  return takeWritten();
}

/** Decodes a format-2 entry (data[0] is PRODUCE_FORMAT). Throws ShapeError for anything else. */
export function decodeProduceEntry(data: Uint8Array): BrokerCommand {
  assert(data[0] === PRODUCE_FORMAT, 'a binary produce entry');
  startReading(data, 1);
  const kind = readU8('kind');
  let command: BrokerCommand;
  if (kind === PRODUCE_KIND) command = readProduce();
  else if (kind === PRODUCE_BATCH_KIND) command = readBatch();
  else fail(`kind byte is ${kind}, expected ${PRODUCE_KIND} (produce) or ${PRODUCE_BATCH_KIND} (produceBatch)`);
  if (cursor !== source.byteLength) fail(`${source.byteLength - cursor} bytes follow the command`);
  return command;
}

function writeProduce(produce: ProduceCommand): void {
  putStr(produce.producerId, 'producerId');
  putUint(produce.seq);
  putUint(produce.timestampMs);
  putUint(produce.routedQueues ?? 0);
  putUint(produce.messages.length);
  for (let i = 0; i < produce.messages.length; i++) {
    try {
      writeMessage(produce.messages[i]!);
    } catch (error) {
      throw prefixed(error, `messages[${i}].`);
    }
  }
}

function writeMessage(message: ProduceMessage): void {
  const flags =
    (message.tag === undefined ? 0 : TAG_FLAG) |
    (message.keys === undefined ? 0 : KEYS_FLAG) |
    (message.properties === undefined ? 0 : PROPERTIES_FLAG) |
    (message.deliverAtMs === undefined ? 0 : DELIVER_AT_FLAG);
  putU8(flags);
  putStr(message.msgId, 'msgId');
  putStr(message.topic, 'topic');
  putUint(message.queueId);
  putBytes(message.body);
  if (message.tag !== undefined) putStr(message.tag, 'tag');
  if (message.keys !== undefined) {
    putUint(message.keys.length);
    for (const key of message.keys) putStr(key, 'keys');
  }
  if (message.properties !== undefined) {
    const entries = Object.entries(message.properties);
    putUint(entries.length);
    for (const [name, value] of entries) {
      putStr(name, 'properties');
      putStr(value, 'properties');
    }
  }
  if (message.deliverAtMs !== undefined) putUint(message.deliverAtMs);
}

function readBatch(): BrokerCommand {
  const count = readUint('produces');
  if (count < 1 || count > LIMITS.maxMessagesPerProduce) fail(`produces must hold 1 to ${LIMITS.maxMessagesPerProduce} items, not ${count}`);
  const produces: ProduceCommand[] = [];
  let messages = 0;
  let bodyBytes = 0;
  for (let i = 0; i < count; i++) {
    let produce: ProduceCommand;
    try {
      produce = readProduce();
    } catch (error) {
      throw prefixed(error, `produces[${i}]: `);
    }
    messages += produce.messages.length;
    for (const message of produce.messages) bodyBytes += message.body.byteLength;
    produces.push(produce);
  }
  if (messages > LIMITS.maxMessagesPerProduce) fail(`produces carry ${messages} messages, more than maxMessagesPerProduce ${LIMITS.maxMessagesPerProduce}`);
  checkBodyBytes(bodyBytes);
  return { kind: 'produceBatch', produces };
}

function readProduce(): ProduceCommand {
  const producerId = checkText(readStr('producerId'), 'producerId', MAX_SCOPED_PRODUCER_ID_LENGTH);
  const seq = checkInteger(readUint('seq'), 'seq', UNSEQUENCED, Number.MAX_SAFE_INTEGER);
  const timestampMs = readUint('timestampMs');
  const routedQueues = readUint('routedQueues');
  if (routedQueues !== 0) checkInteger(routedQueues, 'routedQueues', 1, LIMITS.maxQueuesPerTopic);
  const count = readUint('messages');
  if (count < 1 || count > LIMITS.maxMessagesPerProduce) fail(`messages must hold 1 to ${LIMITS.maxMessagesPerProduce} messages, not ${count}`);
  const messages: ProduceMessage[] = [];
  let bodyBytes = 0;
  for (let i = 0; i < count; i++) {
    let message: ProduceMessage;
    try {
      message = readMessage();
    } catch (error) {
      throw prefixed(error, `messages[${i}]`);
    }
    bodyBytes += message.body.byteLength;
    messages.push(message);
  }
  checkBodyBytes(bodyBytes);
  const produce: ProduceCommand = { kind: 'produce', producerId, seq, timestampMs, messages };
  if (routedQueues !== 0) produce.routedQueues = routedQueues;
  return produce;
}

/** Problems name their field from the message on (".msgId must be…"); readProduce prefixes "messages[i]". */
function readMessage(): ProduceMessage {
  const flags = readU8('');
  if ((flags & ~KNOWN_FLAGS) !== 0) fail(` has unknown flags ${flags}`);
  const message: ProduceMessage = {
    msgId: checkText(readStr('.msgId'), '.msgId', LIMITS.maxIdLength),
    topic: readTopic('.topic'),
    queueId: checkInteger(readUint('.queueId'), '.queueId', 0, LIMITS.maxQueuesPerTopic - 1),
    body: readBytes('.body'),
  };
  if ((flags & TAG_FLAG) !== 0) message.tag = checkText(readStr('.tag'), '.tag', LIMITS.maxTagLength);
  if ((flags & KEYS_FLAG) !== 0) message.keys = readKeys('.keys');
  if ((flags & PROPERTIES_FLAG) !== 0) message.properties = readProperties('.properties');
  if ((flags & DELIVER_AT_FLAG) !== 0) message.deliverAtMs = readUint('.deliverAtMs');
  return message;
}

/** A problem found inside a part, with the part's path in front (messages build no path unless one fails). */
function prefixed(error: unknown, what: string): unknown {
  return error instanceof ShapeError ? new ShapeError(`${what}${error.message}`) : error;
}

function readKeys(what: string): string[] {
  const count = readUint(what);
  if (count > LIMITS.maxKeysPerMessage) fail(`${what} holds ${count} keys, more than maxKeysPerMessage ${LIMITS.maxKeysPerMessage}`);
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(checkText(readStr(`${what}[${i}]`), `${what}[${i}]`, LIMITS.maxKeyLength));
  return keys;
}

function readProperties(what: string): Record<string, string> {
  const count = readUint(what);
  if (count > LIMITS.maxPropertiesPerMessage) fail(`${what} holds ${count} properties, more than ${LIMITS.maxPropertiesPerMessage}`);
  const names: string[] = [];
  const properties: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const name = checkText(readStr(`${what} name`), `${what} name`, LIMITS.maxPropertyNameLength);
    // __proto__ would change the prototype of the map instead of becoming a property.
    if (name === RESERVED_PROPERTY_NAME) fail(`${what} name "${RESERVED_PROPERTY_NAME}" is reserved`);
    if (Object.hasOwn(properties, name)) fail(`${what} names "${name}" twice`);
    const value = readStr(`${what}.${name}`);
    if (value.length > LIMITS.maxPropertyValueLength) fail(`${what}.${name} is longer than ${LIMITS.maxPropertyValueLength}`);
    properties[name] = value;
    names.push(name);
  }
  // A map lists integer-like names first: another order would encode differently.
  if (!Object.keys(properties).every((name, i) => name === names[i])) fail(`${what} are not in the order a map lists them`);
  return properties;
}

/**
 * Buffer's own UTF-8 coders, without write's and toString's argument handling (a fifth of the
 * cost of a short string): Node has them, its types do not list them.
 */
type Utf8Buffer = Buffer & { utf8Slice(start: number, end: number): string; utf8Write(value: string, offset: number, length?: number): number };

// The coders are plain functions over module state (encoding and decoding are synchronous, and
// call nothing that encodes or decodes): field-by-field methods of writer and reader objects
// cost a decode and an encode two to four times as much.

// --- writing: into one scratch buffer reused across encodes, then copied out -----------------

let scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Buffer;
let written = 0;

function room(bytes: number): void {
  if (written + bytes <= scratch.byteLength) return;
  const grown = Buffer.allocUnsafe(Math.max(2 * scratch.byteLength, written + bytes)) as Utf8Buffer;
  scratch.copy(grown, 0, 0, written);
  scratch = grown;
}

function putU8(value: number): void {
  room(1);
  scratch[written++] = value;
}

function putUint(value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'a uint is a safe whole number');
  room(MAX_UINT_BYTES);
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

function putStr(value: string, what: string): void {
  if (!value.isWellFormed()) fail(`${what} holds a lone surrogate, which is not Unicode text`);
  if (value.length <= ONE_BYTE_LENGTH_MAX_CHARS) {
    room(1 + 3 * value.length);
    // ASCII (nearly every id and name) byte by byte: a call to the native coder costs more.
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
  room(bytes);
  written += scratch.utf8Write(value, written, bytes);
}

function putBytes(value: Uint8Array): void {
  putUint(value.byteLength);
  room(value.byteLength);
  scratch.set(value, written);
  written += value.byteLength;
}

/**
 * The bytes written, copied out, as a plain Uint8Array view (what every other command's
 * Entry.data is). Below 4 KiB the copy is a slice of Node's shared buffer pool: a buffer of
 * its own cost a one-message produce 1 µs more (2.3 instead of 1.2 µs to encode). Readers of
 * entry data honour byteOffset and byteLength, as for any view; under load a produce's bytes
 * live only until the batcher copies them into its produceBatch entry (a buffer of its own).
 */
function takeWritten(): Uint8Array {
  const out = Buffer.allocUnsafe(written);
  scratch.copy(out, 0, 0, written);
  if (scratch.byteLength > MAX_KEPT_SCRATCH_BYTES) scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Buffer;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

// --- reading: the cursor moves past each field read ------------------------------------------

/** The entry being decoded, and a Buffer view of it for the UTF-8 decoder. */
let source: Uint8Array = new Uint8Array(0);
let sourceText = Buffer.alloc(0) as Utf8Buffer;
let cursor = 0;
/** The last topic read and its bytes: a batch's messages mostly share one, decoded and checked once. */
let lastTopic = '';
let lastTopicStart = -1;
let lastTopicEnd = -1;

function startReading(data: Uint8Array, at: number): void {
  source = data;
  sourceText = Buffer.from(data.buffer, data.byteOffset, data.byteLength) as Utf8Buffer;
  cursor = at;
  lastTopic = '';
  lastTopicStart = -1;
  lastTopicEnd = -1;
}

function readU8(what: string): number {
  if (cursor >= source.byteLength) fail(`${what}: the command ends early`);
  return source[cursor++]!;
}

function readUint(what: string): number {
  const data = source;
  let at = cursor;
  if (at >= data.byteLength) fail(`${what}: the command ends early`);
  let byte = data[at++]!;
  if (byte < 0x80) {
    cursor = at;
    return byte;
  }
  let value = byte & 0x7f;
  let scale = 0x80;
  for (let i = 1; ; i++) {
    if (i === MAX_UINT_BYTES) fail(`${what} is a number longer than ${MAX_UINT_BYTES} bytes`);
    if (at >= data.byteLength) fail(`${what}: the command ends early`);
    byte = data[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) break;
    scale *= 0x80;
  }
  if (byte === 0) fail(`${what} is a longer number than it needs`);
  if (value > Number.MAX_SAFE_INTEGER) fail(`${what} is more than ${Number.MAX_SAFE_INTEGER}`);
  cursor = at;
  return value;
}

function readStr(what: string): string {
  const end = fieldEnd(what);
  const value = sourceText.utf8Slice(cursor, end);
  // The decoder replaces invalid UTF-8 with U+FFFD: only a string holding one can be invalid.
  if (value.includes('\uFFFD') && !isUtf8(source.subarray(cursor, end))) fail(`${what} is not valid UTF-8`);
  cursor = end;
  return value;
}

/** A topic name (checkName), reusing the previous one when its bytes are the same. */
function readTopic(what: string): string {
  const start = cursor;
  const end = fieldEnd(what);
  const length = end - start;
  if (length === lastTopicEnd - lastTopicStart && sameBytes(lastTopicStart, start, length)) {
    cursor = end;
    return lastTopic;
  }
  cursor = start;
  const topic = checkName(readStr(what), what);
  lastTopic = topic;
  lastTopicStart = start;
  lastTopicEnd = end;
  return topic;
}

/** Whether the entry's `length` bytes at `a` and at `b` are equal (a loop: names are short). */
function sameBytes(a: number, b: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (source[a + i] !== source[b + i]) return false;
  return true;
}

/** A plain Uint8Array view into the entry (no copy): entries are never mutated. */
function readBytes(what: string): Uint8Array {
  const end = fieldEnd(what);
  const bytes = new Uint8Array(source.buffer, source.byteOffset + cursor, end - cursor);
  cursor = end;
  return bytes;
}

/** Reads a length; the end of the field it prefixes. */
function fieldEnd(what: string): number {
  const length = readUint(what);
  if (length > source.byteLength - cursor) fail(`${what}: the command ends early`);
  return cursor + length;
}
