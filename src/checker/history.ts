// The history format (CONTRACT.md "History format"): the event types, the shape validation
// of one event, and reading a JSON Lines file line by line. This module knows nothing about
// pairing invokes with completions or about anomalies; it only turns raw JSON into typed
// events, or into an LmqError naming the line and what is wrong with it.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export type OperationType = 'invoke' | 'ok' | 'fail' | 'info';
export type OperationF = 'send' | 'poll' | 'drain' | 'consume' | 'dlq' | 'leader' | 'receive' | 'ack' | 'txsend' | 'txend';
export type CompletionType = Exclude<OperationType, 'invoke'>;

/** One message as a read returned it. Offsets are per queue. */
export interface ReadMessage {
  offset: number;
  body: string;
  /**
   * Optional: when the broker placed the message in its queue (epoch ms, the leader's clock).
   * For a delayed message that is when it was delivered (early-delivery, late-delivery).
   */
  storeTimestampMs?: number;
}

interface EventBase {
  /** One client session (Jepsen's process): a non-negative integer. */
  process: number;
  /** Monotonic milliseconds (fractions allowed); never decreases from one line to the next. */
  time: number;
  /** Free text for fail/info (why it failed or is unknown); the checker ignores it. */
  error?: string;
}

export interface SendInvoke extends EventBase {
  type: 'invoke';
  f: 'send';
  /**
   * A delayed send names both `delayMs` (due this long after the invoke, on the history clock)
   * and `deliverAtMs` (the same due time as epoch ms, the clock the broker stamps
   * storeTimestampMs with). `tag`, optional: the message's tag (judged against filtered polls).
   * A send names its `queue`, or — a producer that picks the queue by key, which a topic's
   * growth can change — its `topic` and `key` instead: its ok then names the queue it was
   * stored in, and its order against the key's other sends is judged across queues
   * (key-reorder). `key` may also come with a queue.
   */
  value: SendTarget & { body: string; delayMs?: number; deliverAtMs?: number; tag?: string };
}
/** Where a send went: a queue, or a topic whose queue the producer picks by key (with `key`). */
export interface SendTarget {
  queue?: string;
  topic?: string;
  key?: string;
}
export interface SendOk extends EventBase {
  type: 'ok';
  f: 'send';
  /**
   * `offset`: where the broker acknowledged storing the body; `null` when the acknowledgement
   * named no offset (`leader` quorum acks before the offset is assigned). A null-offset ok
   * still counts for `lost`, but offset-mismatch and reorder cannot use its ack.
   */
  value: { queue: string; body: string; offset: number | null };
}
export interface SendFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'send';
  /** Names the target its invoke named. */
  value: SendTarget & { body: string };
}
export interface PollInvoke extends EventBase {
  type: 'invoke';
  f: 'poll';
  /**
   * `from`, optional: the offset this poll asked to start at (e.g. the group's committed
   * offset after a rebalance handed the queue back to this process). A poll with `from` starts
   * a new sequence for its process and queue; without it the poll continues where the
   * process's previous poll of the queue ended. `filterTags`, optional: the poll subscribed
   * with a tag filter (`a || b`): only messages with one of these tags may be returned, and
   * skipping the others is no poll-skip.
   */
  value: { queue: string; from?: number; filterTags?: string[] };
}
export interface DrainInvoke extends EventBase {
  type: 'invoke';
  f: 'drain';
  value: { queue: string };
}
export interface ReadOk extends EventBase {
  type: 'ok';
  f: 'poll' | 'drain';
  /**
   * `messages` in the order the broker returned them (increasing offsets when correct).
   * `minOffset`, optional: the queue's first stored offset when the broker answered (for a
   * drain: where it started reading). Retention deleted the offsets below it, so a poll that
   * jumps over them to minOffset has not skipped them (poll-skip), a drain that lacks them has
   * not skipped them either, and an acked send stored below the final drain's minOffset is not
   * `lost` (the report counts it under retainedAwaySends).
   */
  value: { queue: string; messages: ReadMessage[]; minOffset?: number };
}
export interface ReadFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'poll' | 'drain';
  value: { queue: string };
}

/**
 * One delivery of a message to a consumer's listener (the retry workload): `queue` and
 * `offset` are where this copy is stored (the topic's queue, or the group's retry queue for a
 * redelivery), `body` the original body, `reconsumeTimes` which redelivery this is (0: the
 * first delivery), `maxReconsumeTimes` the consumer's limit. `ok` names the listener's
 * `result`; `info` is a listener that never returned (its consumer was killed). `orderly`: an
 * orderly consumer's call (judged for orderly-overlap; its failures are SUSPEND, retried in
 * place rather than through the retry queue).
 */
export interface ConsumeValue {
  queue: string;
  offset: number;
  body: string;
  reconsumeTimes: number;
  maxReconsumeTimes: number;
  orderly?: true;
}
export type ConsumeResult = 'SUCCESS' | 'RECONSUME_LATER' | 'SUSPEND';
export interface ConsumeInvoke extends EventBase {
  type: 'invoke';
  f: 'consume';
  value: ConsumeValue;
}
export interface ConsumeOk extends EventBase {
  type: 'ok';
  f: 'consume';
  value: ConsumeValue & { result: ConsumeResult };
}
export interface ConsumeFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'consume';
  value: ConsumeValue;
}

/** One dead letter as the final read of a group's dead-letter queue returned it. */
export interface DeadLetterMessage {
  offset: number;
  body: string;
  /** Deliveries that failed before the broker dead-lettered it. */
  attempts: number;
}
/** The final read of a group's whole dead-letter queue (`queue`: e.g. "%DLQ%group/0"). */
export interface DlqInvoke extends EventBase {
  type: 'invoke';
  f: 'dlq';
  value: { queue: string };
}
export interface DlqOk extends EventBase {
  type: 'ok';
  f: 'dlq';
  value: { queue: string; messages: DeadLetterMessage[] };
}
export interface DlqFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'dlq';
  value: { queue: string };
}

/**
 * Who leads, as one client asked the cluster (the delay workload samples it): `leader` null
 * when no node claimed leadership. A failed or info sample counts as no leader.
 */
export interface LeaderInvoke extends EventBase {
  type: 'invoke';
  f: 'leader';
  value: Record<string, never>;
}
export interface LeaderOk extends EventBase {
  type: 'ok';
  f: 'leader';
  value: { leader: string | null };
}
export interface LeaderFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'leader';
  value: Record<string, never>;
}

/** One message a simple consumer's receive returned: its stored copy and its delivery attempt (from 1). */
export interface ReceivedMessage {
  queue: string;
  offset: number;
  body: string;
  attempt: number;
}
/**
 * A simple consumer's receive (RocketMQ 5 style): the messages it was handed, each invisible
 * to the group until acked or its invisible duration ran out. `maxReconsumeTimes` is the
 * group's limit: a message is received at most maxReconsumeTimes + 1 times, then dead-lettered.
 */
export interface ReceiveInvoke extends EventBase {
  type: 'invoke';
  f: 'receive';
  value: { maxReconsumeTimes: number };
}
export interface ReceiveOk extends EventBase {
  type: 'ok';
  f: 'receive';
  value: { maxReconsumeTimes: number; messages: ReceivedMessage[] };
}
export interface ReceiveFailOrInfo extends EventBase {
  type: 'fail' | 'info';
  f: 'receive';
  value: { maxReconsumeTimes: number };
}
/** A simple consumer's ack of one received message (ok: the broker confirmed it). */
export interface AckValue {
  queue: string;
  offset: number;
  body: string;
}
export interface AckInvoke extends EventBase {
  type: 'invoke';
  f: 'ack';
  value: AckValue;
}
export interface AckCompletion extends EventBase {
  type: CompletionType;
  f: 'ack';
  value: AckValue;
}

/** One message of a transaction: the queue it is for and its unique body. */
export interface TxMessage {
  queue: string;
  body: string;
}
/**
 * A producer stores a transaction's half messages (invisible until committed); ok: every one
 * is stored. A transaction's id is unique in the history.
 */
export interface TxSendValue {
  txId: string;
  messages: TxMessage[];
}
export interface TxSendInvoke extends EventBase {
  type: 'invoke';
  f: 'txsend';
  value: TxSendValue;
}
export interface TxSendCompletion extends EventBase {
  type: CompletionType;
  f: 'txsend';
  value: TxSendValue;
}
/**
 * A transaction's end asked of the broker: by its producer, or (`by: "check"`) by a responder
 * answering the broker's check-back. ok: the broker acknowledged that end; since a
 * transaction ends once, an ok end names how it ended.
 */
export interface TxEndValue {
  txId: string;
  end: 'commit' | 'rollback';
  by: 'producer' | 'check';
}
export interface TxEndInvoke extends EventBase {
  type: 'invoke';
  f: 'txend';
  value: TxEndValue;
}
export interface TxEndCompletion extends EventBase {
  type: CompletionType;
  f: 'txend';
  value: TxEndValue;
}

/** One line of a history. */
export type HistoryEvent =
  | SendInvoke
  | SendOk
  | SendFailOrInfo
  | PollInvoke
  | DrainInvoke
  | ReadOk
  | ReadFailOrInfo
  | ConsumeInvoke
  | ConsumeOk
  | ConsumeFailOrInfo
  | DlqInvoke
  | DlqOk
  | DlqFailOrInfo
  | LeaderInvoke
  | LeaderOk
  | LeaderFailOrInfo
  | ReceiveInvoke
  | ReceiveOk
  | ReceiveFailOrInfo
  | AckInvoke
  | AckCompletion
  | TxSendInvoke
  | TxSendCompletion
  | TxEndInvoke
  | TxEndCompletion;

/** Where an event came from, for error messages: `source:line`. */
export interface EventPosition {
  source: string;
  /** 1-based line number in the file (or index + 1 in an array). */
  line: number;
}

/** A single history line longer than this is refused rather than parsed (a drain of ~1M messages fits). */
export const historyLineCharsMax = 256 * 1024 * 1024;

export function badHistory(at: EventPosition, what: string): LmqError {
  return new LmqError('LMQ_BAD_INPUT', `${at.source}:${at.line}: ${what}`, { source: at.source, line: at.line });
}

const operationTypes: ReadonlySet<string> = new Set<OperationType>(['invoke', 'ok', 'fail', 'info']);
const operationFs: ReadonlySet<string> = new Set<OperationF>(['send', 'poll', 'drain', 'consume', 'dlq', 'leader', 'receive', 'ack', 'txsend', 'txend']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

function requireOffset(value: unknown, name: string, at: EventPosition): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw badHistory(at, `${name} must be a non-negative integer, not ${JSON.stringify(value) ?? describe(value)}`);
  }
  return value;
}

function requireString(value: unknown, name: string, at: EventPosition): string {
  if (typeof value !== 'string') throw badHistory(at, `${name} must be a string, not ${describe(value)}`);
  return value;
}

function requireQueue(value: Record<string, unknown>, at: EventPosition): string {
  const queue = requireString(value['queue'], 'value.queue', at);
  if (queue.length === 0) throw badHistory(at, 'value.queue must not be empty');
  return queue;
}

function forbid(value: Record<string, unknown>, key: string, why: string, at: EventPosition): void {
  if (key in value) throw badHistory(at, `value.${key} is not allowed here: ${why}`);
}

function parseMessages(raw: unknown, at: EventPosition): ReadMessage[] {
  if (!Array.isArray(raw)) throw badHistory(at, `value.messages must be an array, not ${describe(raw)}`);
  const messages: ReadMessage[] = new Array<ReadMessage>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const message: unknown = raw[i];
    if (!isRecord(message)) throw badHistory(at, `value.messages[${i}] must be an object, not ${describe(message)}`);
    const offset = requireOffset(message['offset'], `value.messages[${i}].offset`, at);
    const body = requireString(message['body'], `value.messages[${i}].body`, at);
    messages[i] =
      message['storeTimestampMs'] === undefined
        ? { offset, body }
        : { offset, body, storeTimestampMs: requireOffset(message['storeTimestampMs'], `value.messages[${i}].storeTimestampMs`, at) };
  }
  return messages;
}

function parseDeadLetters(raw: unknown, at: EventPosition): DeadLetterMessage[] {
  if (!Array.isArray(raw)) throw badHistory(at, `value.messages must be an array, not ${describe(raw)}`);
  return raw.map((message: unknown, i) => {
    if (!isRecord(message)) throw badHistory(at, `value.messages[${i}] must be an object, not ${describe(message)}`);
    return {
      offset: requireOffset(message['offset'], `value.messages[${i}].offset`, at),
      body: requireString(message['body'], `value.messages[${i}].body`, at),
      attempts: requireOffset(message['attempts'], `value.messages[${i}].attempts`, at),
    };
  });
}

// The parsers build each event as one object literal (no spreads): the checker parses
// hundreds of thousands of them, and spread copies dominated its profile.

/** A send's queue, or its topic and key (SendTarget); an ok always names its queue. */
function parseSendTarget(type: OperationType, value: Record<string, unknown>, at: EventPosition): SendTarget {
  const key = 'key' in value ? requireString(value['key'], 'value.key', at) : undefined;
  if (type === 'ok' || !('topic' in value)) {
    if (type === 'ok') forbid(value, 'topic', 'an ok send names the queue it was stored in', at);
    const queue = requireQueue(value, at);
    return key === undefined ? { queue } : { queue, key };
  }
  forbid(value, 'queue', 'a send names its queue or its topic and key, not both', at);
  const topic = requireString(value['topic'], 'value.topic', at);
  if (topic.length === 0) throw badHistory(at, 'value.topic must not be empty');
  if (key === undefined) throw badHistory(at, 'a send that names a topic names the key its producer picks the queue by (value.key)');
  return { topic, key };
}

function parseSend(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const target = parseSendTarget(type, value, at);
  const body = requireString(value['body'], 'value.body', at);
  if (type === 'ok') {
    if (!('offset' in value)) throw badHistory(at, 'an ok send must name value.offset, where the message was stored (null if the ack named none)');
    const offset = value['offset'] === null ? null : requireOffset(value['offset'], 'value.offset', at);
    assert(target.queue !== undefined, 'an ok send names its queue');
    return { type, process, f: 'send', value: { queue: target.queue, body, offset }, time };
  }
  forbid(value, 'offset', `only an ok send names the offset it was stored at, this is ${type}`, at);
  const keyed = target.key !== undefined;
  if (type === 'invoke' && (keyed || 'delayMs' in value || 'deliverAtMs' in value || 'tag' in value)) {
    return { type, process, f: 'send', value: withSendOptions({ ...target, body }, value, at), time };
  }
  if (type === 'invoke') return { type, process, f: 'send', value: keyed ? { ...target, body } : { queue: target.queue!, body }, time };
  return { type, process, f: 'send', value: keyed ? { ...target, body } : { queue: target.queue!, body }, time };
}

/** A send invoke's optional delay and tag (the rare, slower path). */
function withSendOptions(invoked: SendInvoke['value'], value: Record<string, unknown>, at: EventPosition): SendInvoke['value'] {
  if ('delayMs' in value || 'deliverAtMs' in value) {
    invoked.delayMs = requireOffset(value['delayMs'], 'value.delayMs (a delayed send names delayMs and deliverAtMs)', at);
    invoked.deliverAtMs = requireOffset(value['deliverAtMs'], 'value.deliverAtMs (a delayed send names delayMs and deliverAtMs)', at);
  }
  if ('tag' in value) invoked.tag = requireString(value['tag'], 'value.tag', at);
  return invoked;
}

function parseRead(type: OperationType, process: number, f: 'poll' | 'drain', time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const queue = requireQueue(value, at);
  if (type === 'ok') {
    if (!('messages' in value)) throw badHistory(at, `an ok ${f} must have value.messages (an array, possibly empty)`);
    const messages = parseMessages(value['messages'], at);
    if (!('minOffset' in value)) return { type, process, f, value: { queue, messages }, time };
    return { type, process, f, value: { queue, messages, minOffset: requireOffset(value['minOffset'], 'value.minOffset', at) }, time };
  }
  forbid(value, 'messages', `only an ok ${f} returns messages, this is ${type}`, at);
  if (type !== 'invoke' || f === 'drain') {
    forbid(value, 'from', 'only a poll invoke names the offset it starts at', at);
    if (type !== 'invoke') return { type, process, f, value: { queue }, time };
    return { type, process, f: 'drain', value: { queue }, time };
  }
  const filterTags = 'filterTags' in value ? requireTags(value['filterTags'], at) : undefined;
  if ('from' in value) {
    const from = requireOffset(value['from'], 'value.from', at);
    return filterTags === undefined ? { type, process, f, value: { queue, from }, time } : { type, process, f, value: { queue, from, filterTags }, time };
  }
  return filterTags === undefined ? { type, process, f, value: { queue }, time } : { type, process, f, value: { queue, filterTags }, time };
}

function requireTags(raw: unknown, at: EventPosition): string[] {
  if (!Array.isArray(raw) || raw.length === 0 || !raw.every((t) => typeof t === 'string')) throw badHistory(at, 'value.filterTags, when present, must be a non-empty array of tags');
  return raw as string[];
}

const consumeResults: ReadonlySet<string> = new Set<ConsumeResult>(['SUCCESS', 'RECONSUME_LATER', 'SUSPEND']);

function parseConsume(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const consumed: ConsumeValue = {
    queue: requireQueue(value, at),
    offset: requireOffset(value['offset'], 'value.offset', at),
    body: requireString(value['body'], 'value.body', at),
    reconsumeTimes: requireOffset(value['reconsumeTimes'], 'value.reconsumeTimes', at),
    maxReconsumeTimes: requireOffset(value['maxReconsumeTimes'], 'value.maxReconsumeTimes', at),
  };
  if (value['orderly'] !== undefined) {
    if (value['orderly'] !== true) throw badHistory(at, `value.orderly, when present, must be true, not ${JSON.stringify(value['orderly'])}`);
    consumed.orderly = true;
  }
  if (type === 'ok') {
    const result = value['result'];
    if (typeof result !== 'string' || !consumeResults.has(result)) {
      throw badHistory(at, `an ok consume must name value.result, SUCCESS, RECONSUME_LATER or SUSPEND, not ${JSON.stringify(result) ?? 'missing'}`);
    }
    return { type, process, f: 'consume', value: { ...consumed, result: result as ConsumeResult }, time };
  }
  forbid(value, 'result', `only an ok consume names the listener's result, this is ${type}`, at);
  if (type === 'invoke') return { type, process, f: 'consume', value: consumed, time };
  return { type, process, f: 'consume', value: consumed, time };
}

function parseDlq(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const queue = requireQueue(value, at);
  if (type === 'ok') {
    if (!('messages' in value)) throw badHistory(at, 'an ok dlq must have value.messages (an array, possibly empty)');
    return { type, process, f: 'dlq', value: { queue, messages: parseDeadLetters(value['messages'], at) }, time };
  }
  forbid(value, 'messages', `only an ok dlq returns messages, this is ${type}`, at);
  if (type === 'invoke') return { type, process, f: 'dlq', value: { queue }, time };
  return { type, process, f: 'dlq', value: { queue }, time };
}

function parseLeader(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  if (type === 'ok') {
    const leader = value['leader'];
    if (leader !== null && typeof leader !== 'string') throw badHistory(at, `an ok leader must name value.leader, a node id or null, not ${describe(leader)}`);
    return { type, process, f: 'leader', value: { leader }, time };
  }
  forbid(value, 'leader', `only an ok leader names the leader, this is ${type}`, at);
  if (type === 'invoke') return { type, process, f: 'leader', value: {}, time };
  return { type, process, f: 'leader', value: {}, time };
}

function parseReceivedMessages(raw: unknown, at: EventPosition): ReceivedMessage[] {
  if (!Array.isArray(raw)) throw badHistory(at, `value.messages must be an array, not ${describe(raw)}`);
  return raw.map((message: unknown, i) => {
    if (!isRecord(message)) throw badHistory(at, `value.messages[${i}] must be an object, not ${describe(message)}`);
    const attempt = requireOffset(message['attempt'], `value.messages[${i}].attempt`, at);
    if (attempt === 0) throw badHistory(at, `value.messages[${i}].attempt counts deliveries from 1, not 0`);
    return {
      queue: requireQueue(message, at),
      offset: requireOffset(message['offset'], `value.messages[${i}].offset`, at),
      body: requireString(message['body'], `value.messages[${i}].body`, at),
      attempt,
    };
  });
}

function parseReceive(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const maxReconsumeTimes = requireOffset(value['maxReconsumeTimes'], 'value.maxReconsumeTimes', at);
  if (type === 'ok') {
    if (!('messages' in value)) throw badHistory(at, 'an ok receive must have value.messages (an array, possibly empty)');
    return { type, process, f: 'receive', value: { maxReconsumeTimes, messages: parseReceivedMessages(value['messages'], at) }, time };
  }
  forbid(value, 'messages', `only an ok receive returns messages, this is ${type}`, at);
  if (type === 'invoke') return { type, process, f: 'receive', value: { maxReconsumeTimes }, time };
  return { type, process, f: 'receive', value: { maxReconsumeTimes }, time };
}

function parseAck(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const acked: AckValue = { queue: requireQueue(value, at), offset: requireOffset(value['offset'], 'value.offset', at), body: requireString(value['body'], 'value.body', at) };
  if (type === 'invoke') return { type, process, f: 'ack', value: acked, time };
  return { type, process, f: 'ack', value: acked, time };
}

function parseTxSend(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const txId = requireString(value['txId'], 'value.txId', at);
  const raw = value['messages'];
  if (!Array.isArray(raw) || raw.length === 0) throw badHistory(at, 'value.messages of a txsend must be a non-empty array');
  const messages = raw.map((message: unknown, i): TxMessage => {
    if (!isRecord(message)) throw badHistory(at, `value.messages[${i}] must be an object, not ${describe(message)}`);
    return { queue: requireQueue(message, at), body: requireString(message['body'], `value.messages[${i}].body`, at) };
  });
  if (type === 'invoke') return { type, process, f: 'txsend', value: { txId, messages }, time };
  return { type, process, f: 'txsend', value: { txId, messages }, time };
}

function parseTxEnd(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const txId = requireString(value['txId'], 'value.txId', at);
  const end = value['end'];
  if (end !== 'commit' && end !== 'rollback') throw badHistory(at, `value.end must be commit or rollback, not ${JSON.stringify(end) ?? 'missing'}`);
  const by = value['by'];
  if (by !== 'producer' && by !== 'check') throw badHistory(at, `value.by must be producer or check, not ${JSON.stringify(by) ?? 'missing'}`);
  if (type === 'invoke') return { type, process, f: 'txend', value: { txId, end, by }, time };
  return { type, process, f: 'txend', value: { txId, end, by }, time };
}

type EventParser = (type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition) => HistoryEvent;

const parsers: Readonly<Record<OperationF, EventParser>> = {
  send: parseSend,
  poll: (type, process, time, value, at) => parseRead(type, process, 'poll', time, value, at),
  drain: (type, process, time, value, at) => parseRead(type, process, 'drain', time, value, at),
  consume: parseConsume,
  dlq: parseDlq,
  leader: parseLeader,
  receive: parseReceive,
  ack: parseAck,
  txsend: parseTxSend,
  txend: parseTxEnd,
};

/**
 * Validates the shape of one event (CONTRACT.md "History format") and returns it typed.
 * Unknown extra keys are ignored (room for fields such as a node name); missing or mistyped
 * known keys, an unknown `type` or `f`, are an LmqError LMQ_BAD_INPUT naming the line.
 */
export function parseHistoryEvent(raw: unknown, at: EventPosition): HistoryEvent {
  if (!isRecord(raw)) throw badHistory(at, `an event must be a JSON object, not ${describe(raw)}`);
  const type = raw['type'];
  if (typeof type !== 'string' || !operationTypes.has(type)) {
    throw badHistory(at, `type must be one of invoke, ok, fail, info, not ${JSON.stringify(type) ?? 'missing'}`);
  }
  const f = raw['f'];
  if (typeof f !== 'string' || !operationFs.has(f)) {
    throw badHistory(at, `f must be one of ${[...operationFs].join(', ')}, not ${JSON.stringify(f) ?? 'missing'}`);
  }
  const process = requireOffset(raw['process'], 'process', at);
  const time = raw['time'];
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) {
    throw badHistory(at, `time must be a non-negative number of milliseconds, not ${JSON.stringify(time) ?? 'missing'}`);
  }
  const value = raw['value'];
  if (!isRecord(value)) throw badHistory(at, `value must be an object, not ${describe(value)}`);
  const event = parsers[f as OperationF](type as OperationType, process, time, value, at);
  if ('error' in raw) event.error = requireString(raw['error'], 'error', at);
  assert(event.type === type, 'parsed event keeps its type');
  assert(event.f === f, 'parsed event keeps its f');
  return event;
}

/** An event with the line it came from. */
export interface NumberedEvent {
  event: HistoryEvent;
  at: EventPosition;
}

/**
 * Streams a JSON Lines history file: one parsed, shape-validated event per non-blank line,
 * in file order. Memory is bounded by the longest line, not the file size.
 */
export async function* readHistoryFile(path: string): AsyncGenerator<NumberedEvent> {
  const input = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of lines) {
      line += 1;
      const at = { source: path, line };
      if (text.trim().length === 0) continue;
      yield { event: parseHistoryEvent(parseJsonLine(text, at), at), at };
    }
  } catch (error) {
    if (error instanceof LmqError) throw error;
    // fs errors (missing file, a directory, no permission) surface here, from the stream.
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new LmqError('LMQ_BAD_INPUT', `cannot read history file ${path}: ${code}`, { path }, { cause: error });
  } finally {
    lines.close();
    input.destroy();
  }
}

function parseJsonLine(text: string, at: EventPosition): unknown {
  if (text.length > historyLineCharsMax) {
    throw badHistory(at, `line is ${text.length} characters, more than historyLineCharsMax ${historyLineCharsMax}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badHistory(at, `not valid JSON (${(error as Error).message})`);
  }
}
