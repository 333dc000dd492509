// The broker's replicated commands: what Entry.data carries in the committed Raft log, and
// their codec. This module owns the wire format of the commit log's payload and the shape
// and bound checks on it; the state machine (state-machine.ts) owns what a command means.
//
// Format: one format byte (COMMAND_FORMAT_VERSION) followed by a msgpackr map. The Packr uses
// `useRecords: false`: every entry is self-describing, so decoding never depends on record
// structures held outside the log (a rebuilt or new node decodes entry N without having seen
// entries 1..N-1), and equal commands encode to equal bytes. Binary bodies are msgpack `bin`
// and decode to Uint8Array views into Entry.data (no copy): entries handed to the broker
// must never be mutated afterwards.
//
// Decode validates the whole shape (types, bounds, no unknown keys, no unknown kinds): a
// record that does not validate is corrupt data (LMQ_CORRUPT_DATA naming the log index),
// never guessed at. Encode runs the same validation (LMQ_BAD_INPUT), so anything the leader
// proposes decodes on every node. Adding a field or a kind therefore needs every node to
// run the new code before the first such entry is proposed.
import { Packr } from 'msgpackr';
import { MAX_ENTRY_PAYLOAD_BYTES } from '../log/frame.js';
import { APPEND_ENTRY_WIRE_BYTES, APPEND_ENVELOPE_WIRE_BYTES } from '../raft/messages.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/framing.js';
import { LmqError } from '../util/errors.js';

/** The seq of a one-way send: no deduplication, no order check, no producer state kept. */
export const UNSEQUENCED = 0;

export type BrokerCommand =
  | { kind: 'createTopic'; topic: string; queues: number }
  /** timestampMs: the leader's clock at proposal, so apply is deterministic. seq: from 1, per producerId; UNSEQUENCED (0) for one-way sends. */
  | { kind: 'produce'; producerId: string; seq: number; timestampMs: number; messages: ProduceMessage[] }
  /** offset = the next offset the group will consume. Moves forward only (see state-machine.ts). */
  | { kind: 'commitOffsets'; group: string; offsets: OffsetPosition[] }
  /** Sets offsets exactly (backwards too): the explicit reset the CLI offers. */
  | { kind: 'resetOffsets'; group: string; offsets: OffsetPosition[] };

export interface ProduceMessage {
  msgId: string;
  topic: string;
  queueId: number;
  body: Uint8Array;
  tag?: string;
  keys?: string[];
  properties?: Record<string, string>;
}

export interface OffsetPosition {
  topic: string;
  queueId: number;
  offset: number;
}

export const COMMAND_FORMAT_VERSION = 1;

/**
 * Largest encoded command: one entry must fit one log frame and, alone in an append message,
 * one peer transport frame. The bounds below do not ensure it (a client frame at its limit
 * encodes to a command a little larger), and an entry no append can carry would stop the
 * leader each time it sends it.
 */
export const MAX_COMMAND_BYTES = Math.min(
  MAX_ENTRY_PAYLOAD_BYTES,
  DEFAULT_MAX_FRAME_BYTES - APPEND_ENVELOPE_WIRE_BYTES - APPEND_ENTRY_WIRE_BYTES,
);

/** Bounds on everything a command carries. Lengths are JS string lengths (UTF-16 units). */
export const COMMAND_LIMITS = Object.freeze({
  /** RocketMQ's limit on topic names; group names share it. */
  nameLengthMax: 127,
  queuesPerTopicMax: 1024,
  messagesPerProduceMax: 1024,
  /** RocketMQ's default maxMessageSize; also the bound on one produce batch's bodies. */
  produceBodyBytesMax: 4 * 1024 * 1024,
  /** msgId and producerId. */
  idLengthMax: 128,
  tagLengthMax: 128,
  keysPerMessageMax: 32,
  keyLengthMax: 128,
  propertiesPerMessageMax: 64,
  propertyNameLengthMax: 128,
  propertyValueLengthMax: 4096,
  offsetsPerCommandMax: 4096,
});

/** RocketMQ's topic/group character set; `%` allows `%RETRY%group` and `%DLQ%group`. */
const NAME_PATTERN = /^[A-Za-z0-9%|_-]+$/;
// Control characters are refused in ids, tags and keys: they are part of lmdb index keys,
// and ordered-binary uses low bytes as separators between key parts.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Validates (LMQ_BAD_INPUT naming the problem) and encodes a command for Entry.data. */
export function encodeCommand(command: BrokerCommand): Uint8Array {
  const checked = validated(command);
  if (typeof checked === 'string') {
    throw new LmqError('LMQ_BAD_INPUT', `invalid ${describeKind(command)} command: ${checked}`);
  }
  const payload = packr.pack(checked);
  if (1 + payload.byteLength > MAX_COMMAND_BYTES) {
    throw new LmqError(
      'LMQ_BAD_INPUT',
      `${describeKind(command)} command of ${1 + payload.byteLength} bytes is more than one Raft entry carries (${MAX_COMMAND_BYTES}); send fewer or smaller messages per request`,
    );
  }
  const data = new Uint8Array(1 + payload.byteLength);
  data[0] = COMMAND_FORMAT_VERSION;
  data.set(payload, 1);
  return data;
}

/**
 * Decodes Entry.data. Throws LMQ_CORRUPT_DATA (naming logIndex when given) for anything that
 * is not a valid command of this format; a committed entry that fails here must stop apply.
 */
export function decodeCommand(data: Uint8Array, logIndex?: number): BrokerCommand {
  const where = logIndex === undefined ? 'command' : `command at log index ${logIndex}`;
  if (data.byteLength === 0 || data[0] !== COMMAND_FORMAT_VERSION) {
    throw corrupt(where, `format byte is ${data[0] ?? 'missing'}, expected ${COMMAND_FORMAT_VERSION}`, logIndex);
  }
  let raw: unknown;
  try {
    raw = packr.unpack(data.subarray(1));
  } catch (error) {
    throw corrupt(where, `not valid msgpack (${(error as Error).message})`, logIndex);
  }
  const checked = validated(raw);
  if (typeof checked === 'string') throw corrupt(where, checked, logIndex);
  return checked;
}

/** A topic name a user may create: checked by the CLI and the node before proposing. */
export function topicNameProblem(name: string): string | undefined {
  return validationProblem(() => checkName(name, 'topic'));
}

/**
 * What is wrong with one message of a produce command, or undefined: the checks encode runs on
 * each message (and its body alone against produceBodyBytesMax). A client runs it before
 * combining messages into one request, so one bad message is refused alone instead of failing
 * the whole request.
 */
export function produceMessageProblem(message: ProduceMessage): string | undefined {
  return validationProblem(() => {
    const checked = validateMessage(message, 'message');
    checkBodyBytes(checked.body.byteLength);
  });
}

function corrupt(where: string, problem: string, logIndex: number | undefined): LmqError {
  const details = logIndex === undefined ? {} : { logIndex };
  return new LmqError('LMQ_CORRUPT_DATA', `corrupt broker ${where}: ${problem}`, details);
}

function describeKind(command: unknown): string {
  const kind = isRecord(command) ? command['kind'] : undefined;
  return typeof kind === 'string' ? JSON.stringify(kind).slice(0, 40) : 'broker';
}

/** Validation throws ShapeError; this turns it into a message, leaving other errors alone. */
class ShapeError extends Error {}

/** The clean command, or what is wrong with it. */
function validated(raw: unknown): BrokerCommand | string {
  let command: BrokerCommand | undefined;
  const problem = validationProblem(() => {
    command = validateCommand(raw);
  });
  return problem ?? command ?? 'no command';
}

function validationProblem(check: () => void): string | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    if (error instanceof ShapeError) return error.message;
    throw error;
  }
}

function fail(message: string): never {
  throw new ShapeError(message);
}

/** Returns a clean copy of a valid command: only known keys; an undefined optional field is omitted. */
function validateCommand(raw: unknown): BrokerCommand {
  if (!isRecord(raw)) fail('not a map');
  const kind = raw['kind'];
  switch (kind) {
    case 'createTopic':
      onlyKeys(raw, ['kind', 'topic', 'queues'], 'createTopic');
      return {
        kind,
        topic: checkName(raw['topic'], 'topic'),
        queues: checkInteger(raw['queues'], 'queues', 1, COMMAND_LIMITS.queuesPerTopicMax),
      };
    case 'produce':
      return validateProduce(raw);
    case 'commitOffsets':
    case 'resetOffsets':
      onlyKeys(raw, ['kind', 'group', 'offsets'], kind);
      return { kind, group: checkName(raw['group'], 'group'), offsets: validateOffsets(raw['offsets']) };
    default:
      return fail(`unknown kind ${JSON.stringify(kind)?.slice(0, 40) ?? 'undefined'}`);
  }
}

function validateProduce(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'producerId', 'seq', 'timestampMs', 'messages'], 'produce');
  const messagesRaw = raw['messages'];
  if (!Array.isArray(messagesRaw)) fail('messages must be an array');
  if (messagesRaw.length < 1 || messagesRaw.length > COMMAND_LIMITS.messagesPerProduceMax) {
    fail(`messages must hold 1 to ${COMMAND_LIMITS.messagesPerProduceMax} messages, not ${messagesRaw.length}`);
  }
  const messages = messagesRaw.map((message, i) => validateMessage(message, `messages[${i}]`));
  checkBodyBytes(messages.reduce((sum, message) => sum + message.body.byteLength, 0));
  return {
    kind: 'produce',
    producerId: checkText(raw['producerId'], 'producerId', COMMAND_LIMITS.idLengthMax),
    seq: checkInteger(raw['seq'], 'seq', UNSEQUENCED, Number.MAX_SAFE_INTEGER),
    timestampMs: checkInteger(raw['timestampMs'], 'timestampMs', 0, Number.MAX_SAFE_INTEGER),
    messages,
  };
}

function checkBodyBytes(bodyBytes: number): void {
  if (bodyBytes > COMMAND_LIMITS.produceBodyBytesMax) {
    fail(`bodies total ${bodyBytes} bytes, more than produceBodyBytesMax ${COMMAND_LIMITS.produceBodyBytesMax}`);
  }
}

function validateMessage(raw: unknown, what: string): ProduceMessage {
  if (!isRecord(raw)) fail(`${what} is not a map`);
  onlyKeys(raw, ['msgId', 'topic', 'queueId', 'body', 'tag', 'keys', 'properties'], what);
  const body = raw['body'];
  if (!(body instanceof Uint8Array)) fail(`${what}.body must be binary`);
  const message: ProduceMessage = {
    msgId: checkText(raw['msgId'], `${what}.msgId`, COMMAND_LIMITS.idLengthMax),
    topic: checkName(raw['topic'], `${what}.topic`),
    queueId: checkInteger(raw['queueId'], `${what}.queueId`, 0, COMMAND_LIMITS.queuesPerTopicMax - 1),
    // A plain Uint8Array view (msgpackr hands out Buffers) so every node sees the same type.
    body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
  };
  if (raw['tag'] !== undefined) message.tag = checkText(raw['tag'], `${what}.tag`, COMMAND_LIMITS.tagLengthMax);
  if (raw['keys'] !== undefined) message.keys = validateKeys(raw['keys'], `${what}.keys`);
  if (raw['properties'] !== undefined) message.properties = validateProperties(raw['properties'], `${what}.properties`);
  return message;
}

function validateKeys(raw: unknown, what: string): string[] {
  if (!Array.isArray(raw)) fail(`${what} must be an array`);
  if (raw.length > COMMAND_LIMITS.keysPerMessageMax) {
    fail(`${what} holds ${raw.length} keys, more than keysPerMessageMax ${COMMAND_LIMITS.keysPerMessageMax}`);
  }
  return raw.map((key, i) => checkText(key, `${what}[${i}]`, COMMAND_LIMITS.keyLengthMax));
}

function validateProperties(raw: unknown, what: string): Record<string, string> {
  if (!isRecord(raw)) fail(`${what} must be a map`);
  const entries = Object.entries(raw);
  if (entries.length > COMMAND_LIMITS.propertiesPerMessageMax) {
    fail(`${what} holds ${entries.length} properties, more than ${COMMAND_LIMITS.propertiesPerMessageMax}`);
  }
  const clean: [string, string][] = entries.map(([name, value]) => {
    checkText(name, `${what} name`, COMMAND_LIMITS.propertyNameLengthMax);
    // __proto__ would change the prototype of a decoded map instead of becoming a property.
    if (name === '__proto__') fail(`${what} name "__proto__" is reserved`);
    if (typeof value !== 'string') fail(`${what}.${name} must be a string`);
    if (value.length > COMMAND_LIMITS.propertyValueLengthMax) fail(`${what}.${name} is longer than ${COMMAND_LIMITS.propertyValueLengthMax}`);
    return [name, value];
  });
  return Object.fromEntries(clean);
}

function validateOffsets(raw: unknown): OffsetPosition[] {
  if (!Array.isArray(raw)) fail('offsets must be an array');
  if (raw.length < 1 || raw.length > COMMAND_LIMITS.offsetsPerCommandMax) {
    fail(`offsets must hold 1 to ${COMMAND_LIMITS.offsetsPerCommandMax} positions, not ${raw.length}`);
  }
  return raw.map((position: unknown, i) => {
    const what = `offsets[${i}]`;
    if (!isRecord(position)) fail(`${what} is not a map`);
    onlyKeys(position, ['topic', 'queueId', 'offset'], what);
    return {
      topic: checkName(position['topic'], `${what}.topic`),
      queueId: checkInteger(position['queueId'], `${what}.queueId`, 0, COMMAND_LIMITS.queuesPerTopicMax - 1),
      offset: checkInteger(position['offset'], `${what}.offset`, 0, Number.MAX_SAFE_INTEGER),
    };
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function onlyKeys(raw: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) fail(`${what} has unknown field ${JSON.stringify(key).slice(0, 40)}`);
  }
}

function checkName(value: unknown, what: string): string {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (value.length < 1 || value.length > COMMAND_LIMITS.nameLengthMax) {
    fail(`${what} must be 1 to ${COMMAND_LIMITS.nameLengthMax} characters long`);
  }
  if (!NAME_PATTERN.test(value)) fail(`${what} "${value}" may only use letters, digits, "%", "|", "_" and "-"`);
  return value;
}

function checkText(value: unknown, what: string, lengthMax: number): string {
  if (typeof value !== 'string') fail(`${what} must be a string`);
  if (value.length < 1 || value.length > lengthMax) fail(`${what} must be 1 to ${lengthMax} characters long`);
  if (CONTROL_CHARACTER.test(value)) fail(`${what} must not contain control characters`);
  return value;
}

function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(`${what} must be a whole number`);
  if (value < min || value > max) fail(`${what} must be from ${min} to ${max}, not ${value}`);
  return value;
}
