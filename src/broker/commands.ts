// The broker's replicated commands: what Entry.data carries in the committed Raft log, and
// their codec. This module owns the wire format of the commit log's payload and the shape
// and bound checks on it; the state machine (state-machine.ts) owns what a command means.
//
// Format: one format byte, then the command. Produces and produceBatches (nearly every entry of
// a busy log) have a binary form of their own, format byte 2 (produce-codec.ts); every other
// command, and the produces of logs written before it, is format 1 (COMMAND_FORMAT_VERSION):
// a msgpackr map. The Packr uses `useRecords: false`: every entry is self-describing, so
// decoding never depends on record structures held outside the log (a rebuilt or new node
// decodes entry N without having seen entries 1..N-1). In both formats equal commands encode
// to equal bytes, and bodies decode to Uint8Array views into Entry.data (no copy): entries
// handed to the broker must never be mutated afterwards.
//
// Decode validates the whole shape (types, bounds, no unknown keys, no unknown kinds): a
// record that does not validate is corrupt data (LMQ_CORRUPT_DATA naming the log index),
// never guessed at. Encode runs the same validation (LMQ_BAD_INPUT), so anything the leader
// proposes decodes on every node. Adding a field or a kind therefore needs every node to
// run the new code before the first such entry is proposed.
//
// The bounds come from the protocol's limits table (src/protocol/limits.ts), so that whatever
// the client-port request check accepts is a command this codec encodes; see the note there
// before lowering one.
import { Packr } from 'msgpackr';
import { MAX_ENTRY_PAYLOAD_BYTES } from '../log/frame.js';
import { APPEND_ENTRY_WIRE_BYTES, APPEND_ENVELOPE_WIRE_BYTES } from '../raft/messages.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../transport/framing.js';
import { LIMITS, RESERVED_PROPERTY_NAME, UNSEQUENCED } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { fail, ShapeError } from '../protocol/shape-error.js';
import { checkBodyBytes, checkInteger, checkName, checkText, isRecord, MAX_SCOPED_PRODUCER_ID_LENGTH, onlyKeys, validationProblem, valueOrProblem } from './command-checks.js';
import { countBytes, decodeProduceEntry, encodeProduceBatchEntry, encodeProduceEntry, encodeProduceEntryWith, MAX_COUNT_BYTES, PRODUCE_BATCH_KIND, PRODUCE_FORMAT, PRODUCE_HEAD_BYTES, PRODUCE_KIND } from './produce-codec.js';

export type BrokerCommand =
  | { kind: 'createTopic'; topic: string; queues: number }
  /**
   * Grows a topic to `queues` (topic-growth.ts): keys whose queue changes wait until
   * timestampMs + maxReorderWaitMs at most (both the leader's, so apply is deterministic).
   */
  | { kind: 'growTopic'; topic: string; queues: number; timestampMs: number; maxReorderWaitMs: number }
  | ProduceCommand
  /**
   * Produces the leader received while its last batch of them was out, in arrival order, as
   * one entry: applied one after another as if each were its own entry (its seq check, outcome
   * and result), but with one pass over the store and one consume queue record per queue. The
   * entry's positions (batchPos) run on from one produce to the next. Its messages and bodies
   * stay within one produce's bounds, so every position fits where a produce's does.
   */
  | { kind: 'produceBatch'; produces: ProduceCommand[] }
  /** offset = the next offset the group will consume. Moves forward only (see state-machine.ts). */
  | { kind: 'commitOffsets'; group: string; offsets: OffsetPosition[] }
  /** Sets offsets exactly (backwards too): the explicit reset the CLI offers. */
  | { kind: 'resetOffsets'; group: string; offsets: OffsetPosition[] }
  /**
   * Retention, decided by the leader and replicated so every node forgets the same messages:
   * log entries below firstIndex are no longer needed by the broker (see state-machine.ts).
   */
  | { kind: 'truncateLog'; firstIndex: number }
  /** Orderly consumers' queue locks, decided at apply by the command's time (queue-locks.ts). */
  | { kind: 'lockQueues'; timestampMs: number; group: string; clientId: string; queues: LockedQueue[]; leaseMs: number }
  | { kind: 'unlockQueues'; group: string; clientId: string; queues: LockedQueue[] }
  /**
   * The leader's delivery scheduler (scheduler.ts): these timers are due at timestampMs (each
   * deliverAtMs <= timestampMs); apply places each message whose timer record still exists.
   */
  | { kind: 'deliverDue'; timestampMs: number; messages: DueMessage[] }
  /**
   * A consumer of `group` failed the message at `from`: `message` is its retry copy (topic
   * `%RETRY%<group>`, due at its deliverAtMs) or dead-letter copy (`%DLQ%<group>`, at once),
   * built by the leader from the stored message (retry.ts).
   */
  | { kind: 'sendBack'; timestampMs: number; group: string; from: OffsetPosition; target: SendBackTarget; message: ProduceMessage }
  /** Dead letters of `group` re-delivered through `%RETRY%<group>`, once each (retry.ts). */
  | { kind: 'dlqResend'; timestampMs: number; group: string; entries: ResentDeadLetter[] }
  /**
   * Simple consumer (simple-consumer.ts): apply chooses up to `max` messages of `topic` and of
   * `%RETRY%<group>` for the group — expired deliveries first, then new offsets — each
   * invisible until timestampMs + invisibleDurationMs, their reply within maxReplyBytes. A
   * delivery past maxDeliveryAttempts is not handed out: the leader read its message and
   * carries its dead-letter copy in deadLetters, which apply places unless the delivery
   * changed meanwhile. clientId is the receiver, kept in the log for diagnosis.
   */
  | { kind: 'receive'; timestampMs: number; group: string; topic: string; clientId: string; max: number; invisibleDurationMs: number; maxDeliveryAttempts: number; maxReplyBytes: number; deadLetters: ExpiredDeadLetter[]; fifo?: true }
  /** Acks the deliveries the receipts name (those still current). */
  | { kind: 'ack'; group: string; receipts: DeliveryRef[] }
  /** The delivery becomes invisible until timestampMs + invisibleDurationMs, under a new tag (this entry's index). */
  | { kind: 'changeInvisibleDuration'; timestampMs: number; group: string; receipt: DeliveryRef; invisibleDurationMs: number }
  /**
   * Transactional messages (transactions.ts): half messages of txId, stored invisible. checkAtMs
   * (the leader's time + transaction.checkAfterMs) is when the first check-back is due, if this
   * command opens the transaction.
   */
  | { kind: 'txHalf'; timestampMs: number; producerGroup: string; producerId: string; txId: string; checkAtMs: number; messages: ProduceMessage[] }
  /**
   * Ends txId: a commit carries every half message of the transaction (copied by the leader
   * from the half index, so this entry is the one their consume-queue records point at), a
   * rollback none. Applied once; a later end answers the first outcome.
   */
  | { kind: 'txEnd'; timestampMs: number; txId: string; outcome: TxOutcome; source: TxEndSource; messages: ProduceMessage[] }
  /** The leader checked these open transactions back: each one's count and next due time. */
  | { kind: 'txChecked'; timestampMs: number; checks: TxCheckMark[] }
  /** The preferred leader from now on (null: none), set by `leader preferred` (leadership.ts). */
  | { kind: 'setPreferredLeader'; node: string | null };

/**
 * timestampMs: the leader's clock at proposal, so apply is deterministic. seq: from 1, per
 * producerId; UNSEQUENCED (0) for one-way sends.
 * routedQueues: the topic's queue count the producer chose the queues with; a topic that has
 * grown since refuses the whole produce at apply (LMQ_ROUTE_CHANGED), so no key lands in an
 * old queue after a growth's boundary (topic-growth.ts).
 */
export interface ProduceCommand {
  kind: 'produce';
  producerId: string;
  seq: number;
  timestampMs: number;
  messages: ProduceMessage[];
  routedQueues?: number;
}

/** A simple consumer's delivery of the message at (topic, queueId, offset): tag is the log index that made it. */
export interface DeliveryRef {
  topic: string;
  queueId: number;
  offset: number;
  tag: number;
}

/** An exhausted delivery (as the leader saw it) and its dead-letter copy for `%DLQ%<group>`. */
export interface ExpiredDeadLetter {
  delivery: DeliveryRef;
  message: ProduceMessage;
}

export type TxOutcome = 'commit' | 'rollback';
/** Who ended a transaction: its producer, a check-back answer, or the leader after maxChecks. */
export type TxEndSource = 'producer' | 'check' | 'maxChecks';

export interface TxCheckMark {
  txId: string;
  /** The transaction's check count with this check (applied only when it had checks - 1). */
  checks: number;
  nextCheckAtMs: number;
}

export interface LockedQueue {
  topic: string;
  queueId: number;
}

export type SendBackTarget = 'retry' | 'dlq';

/**
 * A message as the log carries it. A produce's message has the user's fields and, when it is
 * delayed, deliverAtMs (resolved by the leader). The copies the broker makes (delivered, retry
 * and dead-letter copies) may carry the system fields too.
 */
export interface ProduceMessage {
  msgId: string;
  topic: string;
  queueId: number;
  body: Uint8Array;
  tag?: string;
  keys?: string[];
  properties?: Record<string, string>;
  /** Due at this time (epoch ms): held in the timer index until then. */
  deliverAtMs?: number;
  /** A retry copy: the n-th redelivery. */
  reconsumeTimes?: number;
  /** A retry or dead-letter copy: the first delivery's message. */
  origin?: MessageOrigin;
  /** A retry or dead-letter copy: when the first delivery failed. */
  firstFailureMs?: number;
  deadLetter?: DeadLetterInfo;
}

export interface MessageOrigin {
  msgId: string;
  topic: string;
  queueId: number;
  offset: number;
}

export interface DeadLetterInfo {
  reason: string;
  attempts: number;
  firstFailureMs: number;
  lastFailureMs: number;
}

/** A timer record's key: the produce (or sendBack) entry and position that parked the message. */
export interface TimerRef {
  deliverAtMs: number;
  logIndex: number;
  position: number;
}

export interface DueMessage {
  timer: TimerRef;
  message: ProduceMessage;
}

export interface ResentDeadLetter {
  /** Its offset in `%DLQ%<group>` queue 0. */
  dlqOffset: number;
  /** The retry copy: topic `%RETRY%<group>` queue 0, due at once, reconsumeTimes 0. */
  message: ProduceMessage;
}

/** The system topics of a group (1 queue each), created by the apply that first needs them. */
export const RETRY_TOPIC_PREFIX = '%RETRY%';
export const DLQ_TOPIC_PREFIX = '%DLQ%';
/** Names starting with this are the broker's: users may not create such topics. */
export const SYSTEM_TOPIC_MARK = '%';

export function retryTopicOf(group: string): string {
  return `${RETRY_TOPIC_PREFIX}${group}`;
}

export function dlqTopicOf(group: string): string {
  return `${DLQ_TOPIC_PREFIX}${group}`;
}

/**
 * The messages an entry of this command carries, by position (a consume queue record's
 * batchPos); undefined for commands that carry none.
 */
export function carriedMessages(command: BrokerCommand): readonly ProduceMessage[] | undefined {
  switch (command.kind) {
    case 'produce':
      return command.messages;
    case 'produceBatch':
      return command.produces.flatMap((produce) => produce.messages);
    case 'deliverDue':
      return command.messages.map((due) => due.message);
    case 'sendBack':
      return [command.message];
    case 'dlqResend':
      return command.entries.map((entry) => entry.message);
    case 'receive':
      return command.deadLetters.map((deadLetter) => deadLetter.message);
    case 'txEnd':
      return command.messages;
    default:
      return undefined;
  }
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

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** Validates (LMQ_BAD_INPUT naming the problem) and encodes a command for Entry.data. */
export function encodeCommand(command: BrokerCommand): Uint8Array {
  return encodeChecked(command).data;
}

/** encodeCommand, with the clean copy it encoded (what decoding the data gives, bodies aside). */
function encodeChecked<C extends BrokerCommand>(command: C): { checked: C; data: Uint8Array } {
  const checked = validated(command) as C | string;
  if (typeof checked === 'string') {
    throw new LmqError('LMQ_BAD_INPUT', `invalid ${describeKind(command)} command: ${checked}`);
  }
  const data = encodeClean(checked);
  checkCommandBytes(command, data);
  return { checked, data };
}

function checkCommandBytes(command: BrokerCommand, data: Uint8Array): void {
  if (data.byteLength > MAX_COMMAND_BYTES) {
    throw new LmqError(
      'LMQ_BAD_INPUT',
      `${describeKind(command)} command of ${data.byteLength} bytes is more than one Raft entry carries (${MAX_COMMAND_BYTES}); send fewer or smaller messages per request`,
    );
  }
}

/** A validated command's bytes: produces in their binary form, everything else msgpack. */
function encodeClean(checked: BrokerCommand): Uint8Array {
  if (checked.kind === 'produce' || checked.kind === 'produceBatch') {
    const encoded = valueOrProblem(() => (checked.kind === 'produce' ? encodeProduceEntry(checked) : encodeProduceBatchEntry(checked.produces)));
    if (typeof encoded === 'string') throw new LmqError('LMQ_BAD_INPUT', `invalid ${describeKind(checked)} command: ${encoded}`);
    return encoded;
  }
  const payload = packr.pack(checked);
  const data = new Uint8Array(1 + payload.byteLength);
  data[0] = COMMAND_FORMAT_VERSION;
  data.set(payload, 1);
  return data;
}

/** A produce encoded once, on its way into a produceBatch: the clean command, its Entry.data, its sizes. */
export interface EncodedProduce {
  readonly command: ProduceCommand;
  readonly data: Uint8Array;
  readonly bodyBytes: number;
}

/** Validates and encodes a produce (LMQ_BAD_INPUT as encodeCommand) for encodeProduceBatch. */
export function encodeProduce(command: ProduceCommand): EncodedProduce {
  const { checked, data } = encodeChecked(command);
  return { command: checked, data, bodyBytes: produceBodyBytes(checked) };
}

/**
 * encodeProduce for a produce whose messages came encoded (a produce request's `encoded`, which
 * the broker's edge decoded and checked into command.messages, requests.ts): the fields around
 * the messages are checked as validateProduce checks them, and the bytes are copied after them
 * instead of the messages being checked and encoded again.
 */
export function encodeProduceWith(command: ProduceCommand, encodedMessages: Uint8Array): EncodedProduce {
  let data: Uint8Array;
  try {
    data = encodeProduceEntryWith(validateProduceHeader(command.producerId, command.seq, command.timestampMs, command.routedQueues), encodedMessages);
  } catch (error) {
    if (error instanceof ShapeError) throw new LmqError('LMQ_BAD_INPUT', `invalid produce command: ${error.message}`);
    throw error;
  }
  checkCommandBytes(command, data);
  return { command, data, bodyBytes: produceBodyBytes(command) };
}

/** Running totals of produces meant for one entry (produceBatchFits). */
export interface ProduceBatchTotals {
  produces: number;
  messages: number;
  bodyBytes: number;
  /** Their Entry.data bytes together. */
  dataBytes: number;
}

/** Whether produces with these totals make one entry encodeProduceBatch can encode. */
export function produceBatchFits(totals: ProduceBatchTotals): boolean {
  if (totals.produces <= 1) return true; // one produce is proposed as itself
  const bytes = PRODUCE_HEAD_BYTES + MAX_COUNT_BYTES + totals.dataBytes - PRODUCE_HEAD_BYTES * totals.produces;
  return totals.produces <= LIMITS.maxMessagesPerProduce && totals.messages <= LIMITS.maxMessagesPerProduce && totals.bodyBytes <= LIMITS.maxProduceBodyBytes && bytes <= MAX_COMMAND_BYTES;
}

/**
 * The entry of produces proposed together: the produce itself when alone, else their
 * produceBatch — with the bytes encodeCommand gives it, built from each produce's own encoding
 * (produce-codec.ts) instead of encoding every message again.
 */
export function encodeProduceBatch(produces: readonly EncodedProduce[]): { data: Uint8Array; command: BrokerCommand } {
  assert(produces.length >= 1, 'a produce batch holds a produce');
  if (produces.length === 1) return produces[0]!;
  const totals = {
    produces: produces.length,
    messages: produces.reduce((sum, produce) => sum + produce.command.messages.length, 0),
    bodyBytes: produces.reduce((sum, produce) => sum + produce.bodyBytes, 0),
    dataBytes: produces.reduce((sum, produce) => sum + produce.data.byteLength, 0),
  };
  assert(produceBatchFits(totals), "a produce batch within one entry and one produce's bounds");
  const count = countBytes(produces.length);
  const data = new Uint8Array(PRODUCE_HEAD_BYTES + count.byteLength + totals.dataBytes - PRODUCE_HEAD_BYTES * produces.length);
  data[0] = PRODUCE_FORMAT;
  data[1] = PRODUCE_BATCH_KIND;
  data.set(count, PRODUCE_HEAD_BYTES);
  let at = PRODUCE_HEAD_BYTES + count.byteLength;
  for (const { data: produce } of produces) {
    assert(produce[0] === PRODUCE_FORMAT && produce[1] === PRODUCE_KIND, 'a produce encoded by encodeCommand');
    data.set(produce.subarray(PRODUCE_HEAD_BYTES), at);
    at += produce.byteLength - PRODUCE_HEAD_BYTES;
  }
  assert(at === data.byteLength, 'the produce batch is filled');
  return { data, command: { kind: 'produceBatch', produces: produces.map((produce) => produce.command) } };
}

/**
 * Decodes Entry.data. Throws LMQ_CORRUPT_DATA (naming logIndex when given) for anything that
 * is not a valid command of this format; a committed entry that fails here must stop apply.
 */
export function decodeCommand(data: Uint8Array, logIndex?: number): BrokerCommand {
  const where = logIndex === undefined ? 'command' : `command at log index ${logIndex}`;
  if (data[0] === PRODUCE_FORMAT) {
    const command = valueOrProblem(() => decodeProduceEntry(data));
    if (typeof command === 'string') throw corrupt(where, command, logIndex);
    return command;
  }
  if (data.byteLength === 0 || data[0] !== COMMAND_FORMAT_VERSION) {
    throw corrupt(where, `format byte is ${data[0] ?? 'missing'}, expected ${COMMAND_FORMAT_VERSION} or ${PRODUCE_FORMAT}`, logIndex);
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
  const problem = validationProblem(() => checkName(name, 'topic'));
  if (problem !== undefined || !name.startsWith(SYSTEM_TOPIC_MARK)) return problem;
  return `topic "${name}" starts with "${SYSTEM_TOPIC_MARK}", which is kept for the broker's own topics (${RETRY_TOPIC_PREFIX}<group>, ${DLQ_TOPIC_PREFIX}<group>); choose another name`;
}

/** What is wrong with a message record (a timer record's value, from a snapshot), or undefined. */
export function carriedMessageProblem(raw: unknown): string | undefined {
  return validationProblem(() => validateMessage(raw, 'message', true));
}

function corrupt(where: string, problem: string, logIndex: number | undefined): LmqError {
  const details = logIndex === undefined ? {} : { logIndex };
  return new LmqError('LMQ_CORRUPT_DATA', `corrupt broker ${where}: ${problem}`, details);
}

function describeKind(command: unknown): string {
  const kind = isRecord(command) ? command['kind'] : undefined;
  return typeof kind === 'string' ? JSON.stringify(kind).slice(0, 40) : 'broker';
}

/** The clean command, or what is wrong with it. */
function validated(raw: unknown): BrokerCommand | string {
  return valueOrProblem(() => validateCommand(raw));
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
        queues: checkInteger(raw['queues'], 'queues', 1, LIMITS.maxQueuesPerTopic),
      };
    case 'growTopic':
      onlyKeys(raw, ['kind', 'topic', 'queues', 'timestampMs', 'maxReorderWaitMs'], kind);
      return {
        kind,
        topic: checkName(raw['topic'], 'topic'),
        queues: checkInteger(raw['queues'], 'queues', 2, LIMITS.maxQueuesPerTopic),
        timestampMs: checkInteger(raw['timestampMs'], 'timestampMs', 0, Number.MAX_SAFE_INTEGER),
        maxReorderWaitMs: checkInteger(raw['maxReorderWaitMs'], 'maxReorderWaitMs', 0, LIMITS.maxReorderWaitMs),
      };
    case 'produce':
      return validateProduce(raw);
    case 'produceBatch':
      return validateProduceBatch(raw);
    case 'commitOffsets':
    case 'resetOffsets':
      onlyKeys(raw, ['kind', 'group', 'offsets'], kind);
      return { kind, group: checkName(raw['group'], 'group'), offsets: validateOffsets(raw['offsets']) };
    case 'truncateLog':
      onlyKeys(raw, ['kind', 'firstIndex'], kind);
      return { kind, firstIndex: checkInteger(raw['firstIndex'], 'firstIndex', 1, Number.MAX_SAFE_INTEGER) };
    case 'lockQueues':
    case 'unlockQueues':
      return validateLockCommand(raw, kind);
    case 'deliverDue':
      return validateDeliverDue(raw);
    case 'sendBack':
      return validateSendBack(raw);
    case 'dlqResend':
      return validateDlqResend(raw);
    case 'receive':
      return validateReceive(raw);
    case 'ack':
      onlyKeys(raw, ['kind', 'group', 'receipts'], kind);
      return { kind, group: checkName(raw['group'], 'group'), receipts: checkArray(raw['receipts'], 'receipts', LIMITS.maxReceiptsPerAck).map((r, i) => validateDelivery(r, `receipts[${i}]`)) };
    case 'changeInvisibleDuration':
      onlyKeys(raw, ['kind', 'timestampMs', 'group', 'receipt', 'invisibleDurationMs'], kind);
      return {
        kind,
        timestampMs: checkTimestamp(raw),
        group: checkName(raw['group'], 'group'),
        receipt: validateDelivery(raw['receipt'], 'receipt'),
        invisibleDurationMs: checkInteger(raw['invisibleDurationMs'], 'invisibleDurationMs', LIMITS.minInvisibleDurationMs, LIMITS.maxInvisibleDurationMs),
      };
    case 'txHalf':
    case 'txEnd':
    case 'txChecked':
      return validateTxCommand(raw, kind);
    case 'setPreferredLeader':
      onlyKeys(raw, ['kind', 'node'], kind);
      return { kind, node: raw['node'] === null ? null : checkText(raw['node'], 'node', LIMITS.maxIdLength) };
    default:
      return fail(`unknown kind ${JSON.stringify(kind)?.slice(0, 40) ?? 'undefined'}`);
  }
}

function validateProduce(raw: Record<string, unknown>): ProduceCommand {
  onlyKeys(raw, ['kind', 'producerId', 'seq', 'timestampMs', 'messages', 'routedQueues'], 'produce');
  const messagesRaw = raw['messages'];
  if (!Array.isArray(messagesRaw)) fail('messages must be an array');
  if (messagesRaw.length < 1 || messagesRaw.length > LIMITS.maxMessagesPerProduce) {
    fail(`messages must hold 1 to ${LIMITS.maxMessagesPerProduce} messages, not ${messagesRaw.length}`);
  }
  const messages = messagesRaw.map((message, i) => validateMessage(message, `messages[${i}]`, false));
  checkBodyBytes(messages.reduce((sum, message) => sum + message.body.byteLength, 0));
  const produce = validateProduceHeader(raw['producerId'], raw['seq'], raw['timestampMs'], raw['routedQueues']) as ProduceCommand;
  produce.messages = messages;
  return produce;
}

/** A produce's fields but its messages, checked (a clean copy, as validateCommand makes). */
function validateProduceHeader(producerId: unknown, seq: unknown, timestampMs: unknown, routedQueues: unknown): Omit<ProduceCommand, 'messages'> {
  const header: Omit<ProduceCommand, 'messages'> = {
    kind: 'produce',
    producerId: checkText(producerId, 'producerId', MAX_SCOPED_PRODUCER_ID_LENGTH),
    seq: checkInteger(seq, 'seq', UNSEQUENCED, Number.MAX_SAFE_INTEGER),
    timestampMs: checkInteger(timestampMs, 'timestampMs', 0, Number.MAX_SAFE_INTEGER),
  };
  if (routedQueues !== undefined) header.routedQueues = checkInteger(routedQueues, 'routedQueues', 1, LIMITS.maxQueuesPerTopic);
  return header;
}

function validateProduceBatch(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'produces'], 'produceBatch');
  const produces = checkArray(raw['produces'], 'produces', LIMITS.maxMessagesPerProduce).map((produce, i) => {
    if (!isRecord(produce) || produce['kind'] !== 'produce') fail(`produces[${i}] is not a produce`);
    try {
      return validateProduce(produce);
    } catch (error) {
      if (error instanceof ShapeError) fail(`produces[${i}]: ${error.message}`);
      throw error;
    }
  });
  const messages = produces.reduce((sum, produce) => sum + produce.messages.length, 0);
  if (messages > LIMITS.maxMessagesPerProduce) fail(`produces carry ${messages} messages, more than maxMessagesPerProduce ${LIMITS.maxMessagesPerProduce}`);
  checkBodyBytes(produces.reduce((sum, produce) => sum + produceBodyBytes(produce), 0));
  return { kind: 'produceBatch', produces };
}

function produceBodyBytes(produce: ProduceCommand): number {
  return produce.messages.reduce((sum, message) => sum + message.body.byteLength, 0);
}

function checkTimestamp(raw: Record<string, unknown>): number {
  return checkInteger(raw['timestampMs'], 'timestampMs', 0, Number.MAX_SAFE_INTEGER);
}

function checkArray(raw: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(raw)) fail(`${what} must be an array`);
  if (raw.length < 1 || raw.length > max) fail(`${what} must hold 1 to ${max} items, not ${raw.length}`);
  return raw;
}

function validateDeliverDue(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'timestampMs', 'messages'], 'deliverDue');
  const timestampMs = checkTimestamp(raw);
  const messages = checkArray(raw['messages'], 'messages', LIMITS.maxMessagesPerProduce).map((due, i): DueMessage => {
    const what = `messages[${i}]`;
    if (!isRecord(due)) fail(`${what} is not a map`);
    onlyKeys(due, ['timer', 'message'], what);
    const timer = due['timer'];
    if (!isRecord(timer)) fail(`${what}.timer is not a map`);
    onlyKeys(timer, ['deliverAtMs', 'logIndex', 'position'], `${what}.timer`);
    const ref: TimerRef = {
      // A timer is proposed only once it is due by the proposal's own clock.
      deliverAtMs: checkInteger(timer['deliverAtMs'], `${what}.timer.deliverAtMs`, 0, timestampMs),
      logIndex: checkInteger(timer['logIndex'], `${what}.timer.logIndex`, 1, Number.MAX_SAFE_INTEGER),
      position: checkInteger(timer['position'], `${what}.timer.position`, 0, LIMITS.maxMessagesPerProduce - 1),
    };
    const message = validateMessage(due['message'], `${what}.message`, true);
    if (message.deliverAtMs !== ref.deliverAtMs) fail(`${what}.message.deliverAtMs differs from its timer's`);
    return { timer: ref, message };
  });
  checkBodyBytes(messages.reduce((sum, due) => sum + due.message.body.byteLength, 0));
  return { kind: 'deliverDue', timestampMs, messages };
}

function validateSendBack(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'timestampMs', 'group', 'from', 'target', 'message'], 'sendBack');
  const group = checkName(raw['group'], 'group');
  const target = raw['target'];
  if (target !== 'retry' && target !== 'dlq') fail('target must be "retry" or "dlq"');
  const from = validatePosition(raw['from'], 'from');
  const message = validateMessage(raw['message'], 'message', true);
  if (target === 'retry') {
    checkCopy(message, retryTopicOf(group), 'message');
    if (message.deliverAtMs === undefined || message.reconsumeTimes === undefined || message.deadLetter !== undefined) {
      fail('a retry copy has deliverAtMs and reconsumeTimes, and no deadLetter');
    }
  } else {
    checkCopy(message, dlqTopicOf(group), 'message');
    if (message.deadLetter === undefined || message.deliverAtMs !== undefined) fail('a dead-letter copy has deadLetter and no deliverAtMs');
  }
  return { kind: 'sendBack', timestampMs: checkTimestamp(raw), group, from, target, message };
}

function validateDlqResend(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'timestampMs', 'group', 'entries'], 'dlqResend');
  const group = checkName(raw['group'], 'group');
  const entries = checkArray(raw['entries'], 'entries', LIMITS.maxDeadLettersPerRequest).map((entry, i): ResentDeadLetter => {
    const what = `entries[${i}]`;
    if (!isRecord(entry)) fail(`${what} is not a map`);
    onlyKeys(entry, ['dlqOffset', 'message'], what);
    const message = validateMessage(entry['message'], `${what}.message`, true);
    checkCopy(message, retryTopicOf(group), `${what}.message`);
    if (message.deliverAtMs !== undefined || message.reconsumeTimes !== undefined || message.deadLetter !== undefined) {
      fail(`${what}.message is re-delivered at once as a first delivery: no deliverAtMs, reconsumeTimes or deadLetter`);
    }
    return { dlqOffset: checkInteger(entry['dlqOffset'], `${what}.dlqOffset`, 0, Number.MAX_SAFE_INTEGER), message };
  });
  checkBodyBytes(entries.reduce((sum, entry) => sum + entry.message.body.byteLength, 0));
  return { kind: 'dlqResend', timestampMs: checkTimestamp(raw), group, entries };
}

function validateReceive(raw: Record<string, unknown>): BrokerCommand {
  onlyKeys(raw, ['kind', 'timestampMs', 'group', 'topic', 'clientId', 'max', 'invisibleDurationMs', 'maxDeliveryAttempts', 'maxReplyBytes', 'deadLetters', 'fifo'], 'receive');
  if (raw['fifo'] !== undefined && raw['fifo'] !== true) fail('fifo is true when present');
  const group = checkName(raw['group'], 'group');
  const deadLettersRaw = raw['deadLetters'];
  if (!Array.isArray(deadLettersRaw) || deadLettersRaw.length > LIMITS.maxReceiveMessages) fail(`deadLetters must be an array of at most ${LIMITS.maxReceiveMessages}`);
  const deadLetters = deadLettersRaw.map((entry: unknown, i): ExpiredDeadLetter => {
    const what = `deadLetters[${i}]`;
    if (!isRecord(entry)) fail(`${what} is not a map`);
    onlyKeys(entry, ['delivery', 'message'], what);
    const message = validateMessage(entry['message'], `${what}.message`, true);
    checkCopy(message, dlqTopicOf(group), `${what}.message`);
    if (message.deadLetter === undefined || message.deliverAtMs !== undefined) fail(`${what}.message is a dead-letter copy: deadLetter and no deliverAtMs`);
    return { delivery: validateDelivery(entry['delivery'], `${what}.delivery`), message };
  });
  checkBodyBytes(deadLetters.reduce((sum, entry) => sum + entry.message.body.byteLength, 0));
  return {
    kind: 'receive',
    timestampMs: checkTimestamp(raw),
    group,
    topic: checkName(raw['topic'], 'topic'),
    clientId: checkText(raw['clientId'], 'clientId', MAX_SCOPED_PRODUCER_ID_LENGTH),
    max: checkInteger(raw['max'], 'max', 1, LIMITS.maxReceiveMessages),
    invisibleDurationMs: checkInteger(raw['invisibleDurationMs'], 'invisibleDurationMs', LIMITS.minInvisibleDurationMs, LIMITS.maxInvisibleDurationMs),
    maxDeliveryAttempts: checkInteger(raw['maxDeliveryAttempts'], 'maxDeliveryAttempts', 1, LIMITS.maxReconsumeTimes + 1),
    maxReplyBytes: checkInteger(raw['maxReplyBytes'], 'maxReplyBytes', 1, LIMITS.maxReceiveReplyBytes),
    deadLetters,
    ...(raw['fifo'] === true ? { fifo: true as const } : {}),
  };
}

function validateDelivery(raw: unknown, what: string): DeliveryRef {
  if (!isRecord(raw)) fail(`${what} is not a map`);
  onlyKeys(raw, ['topic', 'queueId', 'offset', 'tag'], what);
  return {
    topic: checkName(raw['topic'], `${what}.topic`),
    queueId: checkInteger(raw['queueId'], `${what}.queueId`, 0, LIMITS.maxQueuesPerTopic - 1),
    offset: checkInteger(raw['offset'], `${what}.offset`, 0, Number.MAX_SAFE_INTEGER),
    tag: checkInteger(raw['tag'], `${what}.tag`, 1, Number.MAX_SAFE_INTEGER),
  };
}

function validateTxCommand(raw: Record<string, unknown>, kind: 'txHalf' | 'txEnd' | 'txChecked'): BrokerCommand {
  const timestampMs = checkTimestamp(raw);
  if (kind === 'txChecked') {
    onlyKeys(raw, ['kind', 'timestampMs', 'checks'], kind);
    const checks = checkArray(raw['checks'], 'checks', LIMITS.maxTxChecksPerPoll).map((mark, i): TxCheckMark => {
      const what = `checks[${i}]`;
      if (!isRecord(mark)) fail(`${what} is not a map`);
      onlyKeys(mark, ['txId', 'checks', 'nextCheckAtMs'], what);
      return {
        txId: checkText(mark['txId'], `${what}.txId`, LIMITS.maxIdLength),
        checks: checkInteger(mark['checks'], `${what}.checks`, 1, LIMITS.maxTransactionChecks),
        nextCheckAtMs: checkInteger(mark['nextCheckAtMs'], `${what}.nextCheckAtMs`, 0, Number.MAX_SAFE_INTEGER),
      };
    });
    return { kind, timestampMs, checks };
  }
  const txId = checkText(raw['txId'], 'txId', LIMITS.maxIdLength);
  if (kind === 'txHalf') {
    onlyKeys(raw, ['kind', 'timestampMs', 'producerGroup', 'producerId', 'txId', 'checkAtMs', 'messages'], kind);
    return {
      kind, timestampMs, txId,
      producerGroup: checkName(raw['producerGroup'], 'producerGroup'),
      producerId: checkText(raw['producerId'], 'producerId', MAX_SCOPED_PRODUCER_ID_LENGTH),
      checkAtMs: checkInteger(raw['checkAtMs'], 'checkAtMs', 0, Number.MAX_SAFE_INTEGER),
      messages: validateTxMessages(raw['messages'], 1),
    };
  }
  onlyKeys(raw, ['kind', 'timestampMs', 'txId', 'outcome', 'source', 'messages'], kind);
  const outcome = raw['outcome'];
  if (outcome !== 'commit' && outcome !== 'rollback') fail('outcome must be "commit" or "rollback"');
  const source = raw['source'];
  if (source !== 'producer' && source !== 'check' && source !== 'maxChecks') fail('source must be "producer", "check" or "maxChecks"');
  const messages = validateTxMessages(raw['messages'], outcome === 'commit' ? 1 : 0);
  if (outcome === 'rollback' && messages.length > 0) fail('a rollback carries no messages');
  return { kind, timestampMs, txId, outcome, source, messages };
}

/** A transaction's messages: user fields only, never delayed, within one produce's bounds. */
function validateTxMessages(raw: unknown, min: number): ProduceMessage[] {
  if (!Array.isArray(raw)) fail('messages must be an array');
  if (raw.length < min || raw.length > LIMITS.maxMessagesPerProduce) fail(`messages must hold ${min} to ${LIMITS.maxMessagesPerProduce} messages, not ${raw.length}`);
  const messages = raw.map((message, i) => validateMessage(message, `messages[${i}]`, false));
  if (messages.some((message) => message.deliverAtMs !== undefined)) fail('a transactional message is never delayed');
  checkBodyBytes(messages.reduce((sum, message) => sum + message.body.byteLength, 0));
  return messages;
}

/** A retry or dead-letter copy lives in its group's system topic (one queue) and says where it came from. */
function checkCopy(message: ProduceMessage, topic: string, what: string): void {
  if (message.topic !== topic || message.queueId !== 0) fail(`${what} must be in ${topic} queue 0, not ${message.topic}/${message.queueId}`);
  if (message.origin === undefined) fail(`${what} lacks its origin`);
}

const USER_FIELDS = ['msgId', 'topic', 'queueId', 'body', 'tag', 'keys', 'properties', 'deliverAtMs'] as const;
const SYSTEM_FIELDS = [...USER_FIELDS, 'reconsumeTimes', 'origin', 'firstFailureMs', 'deadLetter'] as const;

/** `system`: a copy the broker made, which may carry the system fields besides deliverAtMs. */
function validateMessage(raw: unknown, what: string, system: boolean): ProduceMessage {
  if (!isRecord(raw)) fail(`${what} is not a map`);
  onlyKeys(raw, system ? SYSTEM_FIELDS : USER_FIELDS, what);
  const body = raw['body'];
  if (!(body instanceof Uint8Array)) fail(`${what}.body must be binary`);
  const message: ProduceMessage = {
    msgId: checkText(raw['msgId'], `${what}.msgId`, LIMITS.maxIdLength),
    topic: checkName(raw['topic'], `${what}.topic`),
    queueId: checkInteger(raw['queueId'], `${what}.queueId`, 0, LIMITS.maxQueuesPerTopic - 1),
    // A plain Uint8Array view (msgpackr hands out Buffers) so every node sees the same type.
    body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
  };
  if (raw['tag'] !== undefined) message.tag = checkText(raw['tag'], `${what}.tag`, LIMITS.maxTagLength);
  if (raw['keys'] !== undefined) message.keys = validateKeys(raw['keys'], `${what}.keys`);
  if (raw['properties'] !== undefined) message.properties = validateProperties(raw['properties'], `${what}.properties`);
  if (raw['deliverAtMs'] !== undefined) message.deliverAtMs = checkInteger(raw['deliverAtMs'], `${what}.deliverAtMs`, 0, Number.MAX_SAFE_INTEGER);
  if (!system) return message;
  if (raw['reconsumeTimes'] !== undefined) message.reconsumeTimes = checkInteger(raw['reconsumeTimes'], `${what}.reconsumeTimes`, 1, LIMITS.maxReconsumeTimes + 1);
  if (raw['origin'] !== undefined) message.origin = validateOrigin(raw['origin'], `${what}.origin`);
  if (raw['firstFailureMs'] !== undefined) message.firstFailureMs = checkInteger(raw['firstFailureMs'], `${what}.firstFailureMs`, 0, Number.MAX_SAFE_INTEGER);
  if (raw['deadLetter'] !== undefined) message.deadLetter = validateDeadLetter(raw['deadLetter'], `${what}.deadLetter`);
  return message;
}

function validateOrigin(raw: unknown, what: string): MessageOrigin {
  if (!isRecord(raw)) fail(`${what} is not a map`);
  onlyKeys(raw, ['msgId', 'topic', 'queueId', 'offset'], what);
  return {
    msgId: checkText(raw['msgId'], `${what}.msgId`, LIMITS.maxIdLength),
    topic: checkName(raw['topic'], `${what}.topic`),
    queueId: checkInteger(raw['queueId'], `${what}.queueId`, 0, LIMITS.maxQueuesPerTopic - 1),
    offset: checkInteger(raw['offset'], `${what}.offset`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function validateDeadLetter(raw: unknown, what: string): DeadLetterInfo {
  if (!isRecord(raw)) fail(`${what} is not a map`);
  onlyKeys(raw, ['reason', 'attempts', 'firstFailureMs', 'lastFailureMs'], what);
  return {
    reason: checkText(raw['reason'], `${what}.reason`, LIMITS.maxReasonLength),
    attempts: checkInteger(raw['attempts'], `${what}.attempts`, 1, LIMITS.maxReconsumeTimes + 1),
    firstFailureMs: checkInteger(raw['firstFailureMs'], `${what}.firstFailureMs`, 0, Number.MAX_SAFE_INTEGER),
    lastFailureMs: checkInteger(raw['lastFailureMs'], `${what}.lastFailureMs`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function validateKeys(raw: unknown, what: string): string[] {
  if (!Array.isArray(raw)) fail(`${what} must be an array`);
  if (raw.length > LIMITS.maxKeysPerMessage) {
    fail(`${what} holds ${raw.length} keys, more than maxKeysPerMessage ${LIMITS.maxKeysPerMessage}`);
  }
  return raw.map((key, i) => checkText(key, `${what}[${i}]`, LIMITS.maxKeyLength));
}

function validateProperties(raw: unknown, what: string): Record<string, string> {
  if (!isRecord(raw)) fail(`${what} must be a map`);
  const entries = Object.entries(raw);
  if (entries.length > LIMITS.maxPropertiesPerMessage) {
    fail(`${what} holds ${entries.length} properties, more than ${LIMITS.maxPropertiesPerMessage}`);
  }
  const clean: [string, string][] = entries.map(([name, value]) => {
    checkText(name, `${what} name`, LIMITS.maxPropertyNameLength);
    // __proto__ would change the prototype of a decoded map instead of becoming a property.
    if (name === RESERVED_PROPERTY_NAME) fail(`${what} name "${RESERVED_PROPERTY_NAME}" is reserved`);
    if (typeof value !== 'string') fail(`${what}.${name} must be a string`);
    if (value.length > LIMITS.maxPropertyValueLength) fail(`${what}.${name} is longer than ${LIMITS.maxPropertyValueLength}`);
    return [name, value];
  });
  return Object.fromEntries(clean);
}

function validateOffsets(raw: unknown): OffsetPosition[] {
  if (!Array.isArray(raw)) fail('offsets must be an array');
  if (raw.length < 1 || raw.length > LIMITS.maxOffsetsPerCommit) {
    fail(`offsets must hold 1 to ${LIMITS.maxOffsetsPerCommit} positions, not ${raw.length}`);
  }
  return raw.map((position: unknown, i) => validatePosition(position, `offsets[${i}]`));
}

function validatePosition(position: unknown, what: string): OffsetPosition {
  if (!isRecord(position)) fail(`${what} is not a map`);
  onlyKeys(position, ['topic', 'queueId', 'offset'], what);
  return {
    topic: checkName(position['topic'], `${what}.topic`),
    queueId: checkInteger(position['queueId'], `${what}.queueId`, 0, LIMITS.maxQueuesPerTopic - 1),
    offset: checkInteger(position['offset'], `${what}.offset`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function validateLockCommand(raw: Record<string, unknown>, kind: 'lockQueues' | 'unlockQueues'): BrokerCommand {
  const group = checkName(raw['group'], 'group');
  const clientId = checkText(raw['clientId'], 'clientId', MAX_SCOPED_PRODUCER_ID_LENGTH);
  const queuesRaw = raw['queues'];
  if (!Array.isArray(queuesRaw)) fail('queues must be an array');
  if (queuesRaw.length < 1 || queuesRaw.length > LIMITS.maxQueuesPerLock) {
    fail(`queues must hold 1 to ${LIMITS.maxQueuesPerLock} queues, not ${queuesRaw.length}`);
  }
  const queues = queuesRaw.map((queue: unknown, i): LockedQueue => {
    const what = `queues[${i}]`;
    if (!isRecord(queue)) fail(`${what} is not a map`);
    onlyKeys(queue, ['topic', 'queueId'], what);
    return { topic: checkName(queue['topic'], `${what}.topic`), queueId: checkInteger(queue['queueId'], `${what}.queueId`, 0, LIMITS.maxQueuesPerTopic - 1) };
  });
  if (kind === 'unlockQueues') {
    onlyKeys(raw, ['kind', 'group', 'clientId', 'queues'], kind);
    return { kind, group, clientId, queues };
  }
  onlyKeys(raw, ['kind', 'timestampMs', 'group', 'clientId', 'queues', 'leaseMs'], kind);
  return {
    kind,
    timestampMs: checkInteger(raw['timestampMs'], 'timestampMs', 0, Number.MAX_SAFE_INTEGER),
    group,
    clientId,
    queues,
    leaseMs: checkInteger(raw['leaseMs'], 'leaseMs', LIMITS.minLockLeaseMs, LIMITS.maxLockLeaseMs),
  };
}

