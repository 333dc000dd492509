// The history format (CONTRACT.md "History format"): the event types, the shape validation
// of one event, and reading a JSON Lines file line by line. This module knows nothing about
// pairing invokes with completions or about anomalies; it only turns raw JSON into typed
// events, or into an LmqError naming the line and what is wrong with it.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export type OperationType = 'invoke' | 'ok' | 'fail' | 'info';
export type OperationF = 'send' | 'poll' | 'drain';
export type CompletionType = Exclude<OperationType, 'invoke'>;

/** One message as a read returned it. Offsets are per queue. */
export interface ReadMessage {
  offset: number;
  body: string;
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
  value: { queue: string; body: string };
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
  value: { queue: string; body: string };
}
export interface PollInvoke extends EventBase {
  type: 'invoke';
  f: 'poll';
  /**
   * `from`, optional: the offset this poll asked to start at (e.g. the group's committed
   * offset after a rebalance handed the queue back to this process). A poll with `from` starts
   * a new sequence for its process and queue; without it the poll continues where the
   * process's previous poll of the queue ended.
   */
  value: { queue: string; from?: number };
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

/** One line of a history. */
export type HistoryEvent = SendInvoke | SendOk | SendFailOrInfo | PollInvoke | DrainInvoke | ReadOk | ReadFailOrInfo;

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
const operationFs: ReadonlySet<string> = new Set<OperationF>(['send', 'poll', 'drain']);

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
    messages[i] = {
      offset: requireOffset(message['offset'], `value.messages[${i}].offset`, at),
      body: requireString(message['body'], `value.messages[${i}].body`, at),
    };
  }
  return messages;
}

// The parsers build each event as one object literal (no spreads): the checker parses
// hundreds of thousands of them, and spread copies dominated its profile.

function parseSend(type: OperationType, process: number, time: number, value: Record<string, unknown>, at: EventPosition): HistoryEvent {
  const queue = requireQueue(value, at);
  const body = requireString(value['body'], 'value.body', at);
  if (type === 'ok') {
    if (!('offset' in value)) throw badHistory(at, 'an ok send must name value.offset, where the message was stored (null if the ack named none)');
    const offset = value['offset'] === null ? null : requireOffset(value['offset'], 'value.offset', at);
    return { type, process, f: 'send', value: { queue, body, offset }, time };
  }
  forbid(value, 'offset', `only an ok send names the offset it was stored at, this is ${type}`, at);
  if (type === 'invoke') return { type, process, f: 'send', value: { queue, body }, time };
  return { type, process, f: 'send', value: { queue, body }, time };
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
  if ('from' in value) return { type, process, f, value: { queue, from: requireOffset(value['from'], 'value.from', at) }, time };
  return { type, process, f, value: { queue }, time };
}

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
    throw badHistory(at, `f must be one of send, poll, drain, not ${JSON.stringify(f) ?? 'missing'}`);
  }
  const process = requireOffset(raw['process'], 'process', at);
  const time = raw['time'];
  if (typeof time !== 'number' || !Number.isFinite(time) || time < 0) {
    throw badHistory(at, `time must be a non-negative number of milliseconds, not ${JSON.stringify(time) ?? 'missing'}`);
  }
  const value = raw['value'];
  if (!isRecord(value)) throw badHistory(at, `value must be an object, not ${describe(value)}`);
  const event =
    f === 'send' ? parseSend(type as OperationType, process, time, value, at) : parseRead(type as OperationType, process, f as 'poll' | 'drain', time, value, at);
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
