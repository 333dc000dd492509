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
  const writer = Writer.start();
  writer.u8(PRODUCE_FORMAT);
  writer.u8(PRODUCE_KIND);
  writeProduce(writer, produce);
  return writer.finish();
}

/** Encodes a validated produceBatch. Throws ShapeError. */
export function encodeProduceBatchEntry(produces: readonly ProduceCommand[]): Uint8Array {
  const writer = Writer.start();
  writer.u8(PRODUCE_FORMAT);
  writer.u8(PRODUCE_BATCH_KIND);
  writer.uint(produces.length);
  for (let i = 0; i < produces.length; i++) {
    try {
      writeProduce(writer, produces[i]!);
    } catch (error) {
      throw prefixed(error, `produces[${i}].`);
    }
  }
  return writer.finish();
}

/** The uint header of a batch of `count` produces. */
export function countBytes(count: number): Uint8Array {
  const writer = Writer.start();
  writer.uint(count);
  return writer.finish();
}

/** Decodes a format-2 entry (data[0] is PRODUCE_FORMAT). Throws ShapeError for anything else. */
export function decodeProduceEntry(data: Uint8Array): BrokerCommand {
  assert(data[0] === PRODUCE_FORMAT, 'a binary produce entry');
  const reader = new Reader(data, 1);
  const kind = reader.u8('kind');
  let command: BrokerCommand;
  if (kind === PRODUCE_KIND) command = readProduce(reader);
  else if (kind === PRODUCE_BATCH_KIND) command = readBatch(reader);
  else fail(`kind byte is ${kind}, expected ${PRODUCE_KIND} (produce) or ${PRODUCE_BATCH_KIND} (produceBatch)`);
  if (!reader.done()) fail(`${data.byteLength - reader.at} bytes follow the command`);
  return command;
}

function writeProduce(writer: Writer, produce: ProduceCommand): void {
  writer.str(produce.producerId, 'producerId');
  writer.uint(produce.seq);
  writer.uint(produce.timestampMs);
  writer.uint(produce.routedQueues ?? 0);
  writer.uint(produce.messages.length);
  for (let i = 0; i < produce.messages.length; i++) {
    try {
      writeMessage(writer, produce.messages[i]!);
    } catch (error) {
      throw prefixed(error, `messages[${i}].`);
    }
  }
}

function writeMessage(writer: Writer, message: ProduceMessage): void {
  const flags =
    (message.tag === undefined ? 0 : TAG_FLAG) |
    (message.keys === undefined ? 0 : KEYS_FLAG) |
    (message.properties === undefined ? 0 : PROPERTIES_FLAG) |
    (message.deliverAtMs === undefined ? 0 : DELIVER_AT_FLAG);
  writer.u8(flags);
  writer.str(message.msgId, 'msgId');
  writer.str(message.topic, 'topic');
  writer.uint(message.queueId);
  writer.bytes(message.body);
  if (message.tag !== undefined) writer.str(message.tag, 'tag');
  if (message.keys !== undefined) {
    writer.uint(message.keys.length);
    for (const key of message.keys) writer.str(key, 'keys');
  }
  if (message.properties !== undefined) {
    const entries = Object.entries(message.properties);
    writer.uint(entries.length);
    for (const [name, value] of entries) {
      writer.str(name, 'properties');
      writer.str(value, 'properties');
    }
  }
  if (message.deliverAtMs !== undefined) writer.uint(message.deliverAtMs);
}

function readBatch(reader: Reader): BrokerCommand {
  const count = reader.uint('produces');
  if (count < 1 || count > LIMITS.maxMessagesPerProduce) fail(`produces must hold 1 to ${LIMITS.maxMessagesPerProduce} items, not ${count}`);
  const produces: ProduceCommand[] = [];
  let messages = 0;
  let bodyBytes = 0;
  for (let i = 0; i < count; i++) {
    let produce: ProduceCommand;
    try {
      produce = readProduce(reader);
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

function readProduce(reader: Reader): ProduceCommand {
  const producerId = checkText(reader.str('producerId'), 'producerId', MAX_SCOPED_PRODUCER_ID_LENGTH);
  const seq = checkInteger(reader.uint('seq'), 'seq', UNSEQUENCED, Number.MAX_SAFE_INTEGER);
  const timestampMs = reader.uint('timestampMs');
  const routedQueues = reader.uint('routedQueues');
  if (routedQueues !== 0) checkInteger(routedQueues, 'routedQueues', 1, LIMITS.maxQueuesPerTopic);
  const count = reader.uint('messages');
  if (count < 1 || count > LIMITS.maxMessagesPerProduce) fail(`messages must hold 1 to ${LIMITS.maxMessagesPerProduce} messages, not ${count}`);
  const messages: ProduceMessage[] = [];
  let bodyBytes = 0;
  for (let i = 0; i < count; i++) {
    let message: ProduceMessage;
    try {
      message = readMessage(reader);
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
function readMessage(reader: Reader): ProduceMessage {
  const flags = reader.u8('');
  if ((flags & ~KNOWN_FLAGS) !== 0) fail(` has unknown flags ${flags}`);
  const message: ProduceMessage = {
    msgId: checkText(reader.str('.msgId'), '.msgId', LIMITS.maxIdLength),
    topic: reader.topic('.topic'),
    queueId: checkInteger(reader.uint('.queueId'), '.queueId', 0, LIMITS.maxQueuesPerTopic - 1),
    body: reader.bytes('.body'),
  };
  if ((flags & TAG_FLAG) !== 0) message.tag = checkText(reader.str('.tag'), '.tag', LIMITS.maxTagLength);
  if ((flags & KEYS_FLAG) !== 0) message.keys = readKeys(reader, '.keys');
  if ((flags & PROPERTIES_FLAG) !== 0) message.properties = readProperties(reader, '.properties');
  if ((flags & DELIVER_AT_FLAG) !== 0) message.deliverAtMs = reader.uint('.deliverAtMs');
  return message;
}

/** A problem found inside a part, with the part's path in front (messages build no path unless one fails). */
function prefixed(error: unknown, what: string): unknown {
  return error instanceof ShapeError ? new ShapeError(`${what}${error.message}`) : error;
}

function readKeys(reader: Reader, what: string): string[] {
  const count = reader.uint(what);
  if (count > LIMITS.maxKeysPerMessage) fail(`${what} holds ${count} keys, more than maxKeysPerMessage ${LIMITS.maxKeysPerMessage}`);
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(checkText(reader.str(`${what}[${i}]`), `${what}[${i}]`, LIMITS.maxKeyLength));
  return keys;
}

function readProperties(reader: Reader, what: string): Record<string, string> {
  const count = reader.uint(what);
  if (count > LIMITS.maxPropertiesPerMessage) fail(`${what} holds ${count} properties, more than ${LIMITS.maxPropertiesPerMessage}`);
  const names: string[] = [];
  const properties: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const name = checkText(reader.str(`${what} name`), `${what} name`, LIMITS.maxPropertyNameLength);
    // __proto__ would change the prototype of the map instead of becoming a property.
    if (name === RESERVED_PROPERTY_NAME) fail(`${what} name "${RESERVED_PROPERTY_NAME}" is reserved`);
    if (Object.hasOwn(properties, name)) fail(`${what} names "${name}" twice`);
    const value = reader.str(`${what}.${name}`);
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

/** Writes into one scratch buffer reused across encodes (encoding is synchronous), then copies out. */
class Writer {
  private static scratch = Buffer.allocUnsafe(64 * 1024) as Utf8Buffer;
  private buffer = Writer.scratch;
  private at = 0;

  static start(): Writer {
    return new Writer();
  }

  u8(value: number): void {
    this.room(1);
    this.buffer[this.at++] = value;
  }

  uint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, 'a uint is a safe whole number');
    this.room(MAX_UINT_BYTES);
    while (value >= 0x80) {
      this.buffer[this.at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buffer[this.at++] = value;
  }

  str(value: string, what: string): void {
    if (!value.isWellFormed()) fail(`${what} holds a lone surrogate, which is not Unicode text`);
    if (value.length <= ONE_BYTE_LENGTH_MAX_CHARS) {
      this.room(1 + 3 * value.length);
      const written = this.buffer.utf8Write(value, this.at + 1);
      this.buffer[this.at] = written;
      this.at += 1 + written;
      return;
    }
    const bytes = Buffer.byteLength(value);
    this.uint(bytes);
    this.room(bytes);
    this.at += this.buffer.utf8Write(value, this.at, bytes);
  }

  bytes(value: Uint8Array): void {
    this.uint(value.byteLength);
    this.room(value.byteLength);
    this.buffer.set(value, this.at);
    this.at += value.byteLength;
  }

  /**
   * The bytes written, copied out, as a plain Uint8Array view (what every other command's
   * Entry.data is). Below 4 KiB the copy is a slice of Node's shared buffer pool: a buffer of
   * its own cost a one-message produce 1 µs more (2.3 instead of 1.2 µs to encode). Readers of
   * entry data honour byteOffset and byteLength, as for any view; under load a produce's bytes
   * live only until the batcher copies them into its produceBatch entry (a buffer of its own).
   */
  finish(): Uint8Array {
    const out = Buffer.allocUnsafe(this.at);
    this.buffer.copy(out, 0, 0, this.at);
    if (this.buffer.byteLength <= MAX_KEPT_SCRATCH_BYTES) Writer.scratch = this.buffer;
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buffer.byteLength) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buffer.byteLength, this.at + bytes)) as Utf8Buffer;
    this.buffer.copy(grown, 0, 0, this.at);
    this.buffer = grown;
  }
}


class Reader {
  private readonly view: Utf8Buffer;
  /** The last topic read and its bytes: a batch's messages mostly share one, decoded and checked once. */
  private lastTopic = '';
  private lastTopicStart = -1;
  private lastTopicEnd = -1;

  constructor(
    private readonly data: Uint8Array,
    public at: number,
  ) {
    this.view = Buffer.from(data.buffer, data.byteOffset, data.byteLength) as Utf8Buffer;
  }

  done(): boolean {
    return this.at === this.data.byteLength;
  }

  u8(what: string): number {
    if (this.at >= this.data.byteLength) fail(`${what}: the command ends early`);
    return this.data[this.at++]!;
  }

  uint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (this.at >= this.data.byteLength) fail(`${what}: the command ends early`);
      const byte = this.data[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (byte === 0 && i > 0) fail(`${what} is a longer number than it needs`);
        break;
      }
      if (i === MAX_UINT_BYTES - 1) fail(`${what} is a number longer than ${MAX_UINT_BYTES} bytes`);
      scale *= 0x80;
    }
    if (value > Number.MAX_SAFE_INTEGER) fail(`${what} is more than ${Number.MAX_SAFE_INTEGER}`);
    return value;
  }

  str(what: string): string {
    const end = this.end(what);
    const value = this.view.utf8Slice(this.at, end);
    // The decoder replaces invalid UTF-8 with U+FFFD: only a string holding one can be invalid.
    if (value.includes('\uFFFD') && !isUtf8(this.data.subarray(this.at, end))) fail(`${what} is not valid UTF-8`);
    this.at = end;
    return value;
  }

  /** A topic name (checkName), reusing the previous one when its bytes are the same. */
  topic(what: string): string {
    const start = this.at;
    const end = this.end(what);
    const length = end - start;
    if (length === this.lastTopicEnd - this.lastTopicStart && this.sameBytes(this.lastTopicStart, start, length)) {
      this.at = end;
      return this.lastTopic;
    }
    this.at = start;
    const topic = checkName(this.str(what), what);
    this.lastTopic = topic;
    this.lastTopicStart = start;
    this.lastTopicEnd = end;
    return topic;
  }

  /** Whether the entry's `length` bytes at `a` and at `b` are equal (a loop: names are short). */
  private sameBytes(a: number, b: number, length: number): boolean {
    for (let i = 0; i < length; i++) if (this.data[a + i] !== this.data[b + i]) return false;
    return true;
  }

  /** A plain Uint8Array view into the entry (no copy): entries are never mutated. */
  bytes(what: string): Uint8Array {
    const end = this.end(what);
    const bytes = new Uint8Array(this.data.buffer, this.data.byteOffset + this.at, end - this.at);
    this.at = end;
    return bytes;
  }

  /** Reads a length; the end of the field it prefixes. */
  private end(what: string): number {
    const length = this.uint(what);
    if (length > this.data.byteLength - this.at) fail(`${what}: the command ends early`);
    return this.at + length;
  }
}
