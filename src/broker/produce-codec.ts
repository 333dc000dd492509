// The binary form of produce and produceBatch entries (format byte 2), beside the msgpack form
// of every other command (commands.ts, format byte 1). Produces are nearly every entry of a busy
// log: the leader encodes each once and every node decodes it once per apply and per read, so
// a fixed layout read field by field pays where msgpack's self-describing maps cost most (their
// keys, and a clean copy made after decoding).
//
// Layout (uint, str and bytes as byte-codec.ts writes them):
//   entry    = 0x02 kind:u8 (1 produce, 2 produceBatch) then a produce, or a batch
//   batch    = count:uint produce{count}
//   produce  = producerId:str seq:uint timestampMs:uint routedQueues:uint (0: none)
//              count:uint message{count}
//   message  as src/protocol/produce-messages.ts lays it out, and count:uint message{count}
//              is a produce request's `encoded` messages as they are: the leader copies
//              those bytes after the header it writes (encodeProduceEntryWith)
// A batch's produces are its produces' own encodings less their two head bytes, so the leader
// builds a batch by copying (commands.ts encodeProduceBatch).
//
// Decode makes the checks validateProduce makes on a msgpack produce (commands.ts), with the
// same check functions and messages, and refuses what would not re-encode to the same bytes
// (a longer uint than needed, invalid UTF-8, unknown flags, repeated or reordered property
// names, bytes past the end): one command has one encoding. Encode takes a validated command
// and refuses strings that are not well-formed Unicode, which UTF-8 cannot carry unchanged.
import { LIMITS, RESERVED_PROPERTY_NAME, UNSEQUENCED } from '../protocol/index.js';
import { DELIVER_AT_FLAG, KEYS_FLAG, KNOWN_MESSAGE_FLAGS, PROPERTIES_FLAG, putProduceMessage, putText, TAG_FLAG } from '../protocol/produce-messages.js';
import { fail, prefixed } from '../protocol/shape-error.js';
import { assert } from '../util/assert.js';
import { checkBodyBytes, checkInteger, checkName, checkText, MAX_SCOPED_PRODUCER_ID_LENGTH } from './command-checks.js';
import {
  putRaw,
  putU8,
  putUint,
  readBytes,
  readFieldEnd,
  readPosition,
  readRemaining,
  readStr,
  readTo,
  readU8,
  readUint,
  sameBytesRead,
  startReading,
  startWriting,
  stopReading,
  takeWritten,
} from '../protocol/byte-codec.js';
import type { BrokerCommand, ProduceCommand, ProduceMessage } from './commands.js';

export const PRODUCE_FORMAT = 2;
export const PRODUCE_KIND = 1;
export const PRODUCE_BATCH_KIND = 2;
/** The format and kind bytes every produce encoding starts with. */
export const PRODUCE_HEAD_BYTES = 2;
/** A batch's produce count (at most maxMessagesPerProduce) takes this many uint bytes at most. */
export const MAX_COUNT_BYTES = 3;


/** Encodes a validated produce (commands.ts validateProduce's clean copy). Throws ShapeError. */
export function encodeProduceEntry(produce: ProduceCommand): Uint8Array {
  startWriting();
  putU8(PRODUCE_FORMAT);
  putU8(PRODUCE_KIND);
  writeProduce(produce);
  return takeWritten();
}

/**
 * Encodes a produce whose messages come encoded already (a produce request's `encoded`, which
 * decodeProduceMessages gave `produce.messages` from): the header, then those bytes as they
 * are. What encodeProduceEntry(produce) would give, without encoding the messages again.
 * Throws ShapeError.
 */
export function encodeProduceEntryWith(produce: Omit<ProduceCommand, 'messages'>, encodedMessages: Uint8Array): Uint8Array {
  startWriting();
  putU8(PRODUCE_FORMAT);
  putU8(PRODUCE_KIND);
  writeProduceHeader(produce);
  putRaw(encodedMessages);
  return takeWritten();
}

/**
 * The messages of a produce request's `encoded` bytes (count:uint message{count}), checked as a
 * produce entry's are: bounds on the count and the bodies, and nothing that would re-encode to
 * other bytes, so the bytes can be copied into the entry. Throws ShapeError naming the field.
 */
export function decodeProduceMessages(encoded: Uint8Array): ProduceMessage[] {
  startReading(encoded, 0, 'encoded');
  forgetRepeated();
  try {
    const messages = readMessages();
    if (readRemaining() !== 0) fail(`${readRemaining()} bytes follow the messages`);
    return messages;
  } finally {
    stopReading();
  }
}

/** Encodes a validated produceBatch. Throws ShapeError. */
export function encodeProduceBatchEntry(produces: readonly ProduceCommand[]): Uint8Array {
  startWriting();
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
  startWriting();
  putUint(count);
  return takeWritten();
}

/** Decodes a format-2 entry (data[0] is PRODUCE_FORMAT). Throws ShapeError for anything else. */
export function decodeProduceEntry(data: Uint8Array): BrokerCommand {
  assert(data[0] === PRODUCE_FORMAT, 'a binary produce entry');
  startReading(data, 1, 'the command');
  forgetRepeated();
  try {
    const kind = readU8('kind');
    let command: BrokerCommand;
    if (kind === PRODUCE_KIND) command = readProduce();
    else if (kind === PRODUCE_BATCH_KIND) command = readBatch();
    else fail(`kind byte is ${kind}, expected ${PRODUCE_KIND} (produce) or ${PRODUCE_BATCH_KIND} (produceBatch)`);
    if (readRemaining() !== 0) fail(`${readRemaining()} bytes follow the command`);
    return command;
  } finally {
    stopReading();
  }
}

function writeProduce(produce: ProduceCommand): void {
  writeProduceHeader(produce);
  putUint(produce.messages.length);
  for (let i = 0; i < produce.messages.length; i++) {
    try {
      putProduceMessage(produce.messages[i]!);
    } catch (error) {
      throw prefixed(error, `messages[${i}].`);
    }
  }
}

function writeProduceHeader(produce: Omit<ProduceCommand, 'messages'>): void {
  putText(produce.producerId, 'producerId');
  putUint(produce.seq);
  putUint(produce.timestampMs);
  putUint(produce.routedQueues ?? 0);
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
  const producerId = readRepeated(lastProducerId, 'producerId', checkProducerId);
  const seq = checkInteger(readUint('seq'), 'seq', UNSEQUENCED, Number.MAX_SAFE_INTEGER);
  const timestampMs = readUint('timestampMs');
  const routedQueues = readUint('routedQueues');
  if (routedQueues !== 0) checkInteger(routedQueues, 'routedQueues', 1, LIMITS.maxQueuesPerTopic);
  const messages = readMessages();
  const produce: ProduceCommand = { kind: 'produce', producerId, seq, timestampMs, messages };
  if (routedQueues !== 0) produce.routedQueues = routedQueues;
  return produce;
}

function readMessages(): ProduceMessage[] {
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
  return messages;
}

/** Problems name their field from the message on (".msgId must be…"); readMessages prefixes "messages[i]". */
function readMessage(): ProduceMessage {
  const flags = readU8('');
  if ((flags & ~KNOWN_MESSAGE_FLAGS) !== 0) fail(` has unknown flags ${flags}`);
  const message: ProduceMessage = {
    msgId: checkText(readStr('.msgId'), '.msgId', LIMITS.maxIdLength),
    topic: readRepeated(lastTopic, '.topic', checkTopic),
    queueId: checkInteger(readUint('.queueId'), '.queueId', 0, LIMITS.maxQueuesPerTopic - 1),
    body: readBytes('.body'),
  };
  if ((flags & TAG_FLAG) !== 0) message.tag = checkText(readStr('.tag'), '.tag', LIMITS.maxTagLength);
  if ((flags & KEYS_FLAG) !== 0) message.keys = readKeys('.keys');
  if ((flags & PROPERTIES_FLAG) !== 0) message.properties = readProperties('.properties');
  if ((flags & DELIVER_AT_FLAG) !== 0) message.deliverAtMs = readUint('.deliverAtMs');
  return message;
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
 * A str read earlier in this decode, and where its bytes (length prefix included) lie: a batch's
 * messages mostly share a topic, and an unbatched producer's produces a producerId, each decoded
 * and checked once (a producerId's decode and check were a fifth of decoding a one-message produce).
 */
interface RepeatedStr {
  value: string;
  start: number;
  end: number;
}

const lastTopic: RepeatedStr = { value: '', start: -1, end: -1 };
const lastProducerId: RepeatedStr = { value: '', start: -1, end: -1 };
const checkTopic = (topic: string): string => checkName(topic, '.topic');
const checkProducerId = (producerId: string): string => checkText(producerId, 'producerId', MAX_SCOPED_PRODUCER_ID_LENGTH);

function forgetRepeated(): void {
  lastTopic.start = lastTopic.end = lastProducerId.start = lastProducerId.end = -1;
}

/** A str that `check` accepts, reusing the last one of `last` when its bytes are the same (the same bytes decode and check the same). */
function readRepeated(last: RepeatedStr, what: string, check: (value: string) => string): string {
  const start = readPosition();
  const end = readFieldEnd(what);
  const length = end - start;
  if (length === last.end - last.start && sameBytesRead(last.start, start, length)) {
    readTo(end);
    return last.value;
  }
  readTo(start);
  const value = check(readStr(what));
  last.value = value;
  last.start = start;
  last.end = end;
  return value;
}
