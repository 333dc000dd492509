// The client-port request shapes, validated at the edge: anything else is LMQ_BAD_INPUT with
// the offending field named, never a crash.
import { z } from 'zod';
import { LmqError } from '../util/errors.js';
import { COMMAND_LIMITS } from './commands.js';
import { STATE_MACHINE_LIMITS } from './state-machine.js';

/** Bounds of one request; larger ones are refused with a message naming the bound. */
export const MAX_MESSAGES_PER_PRODUCE = 1024;
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
export const MAX_PULL_MESSAGES = 1024;
export const MAX_PULL_BYTES = 8 * 1024 * 1024;
/** Messages one key lookup answers with at most. */
export const MAX_LOOKUP_MESSAGES = STATE_MACHINE_LIMITS.keyLookupMax;

const name = z.string().min(1).max(255).regex(/^[A-Za-z0-9_%|.-]+$/, 'letters, digits and _ % | . -');
const queueId = z.number().int().min(0).max(65_535);
const offset = z.number().int().min(0);

const produceMessage = z
  .object({
    msgId: z.string().min(1).max(128),
    topic: name,
    queueId,
    body: z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_BODY_BYTES, `body larger than ${MAX_BODY_BYTES} bytes`),
    tag: z.string().max(255).optional(),
    keys: z.array(z.string().min(1).max(255)).max(32).optional(),
    // The command's bound: a value the producer's per-message check accepts must not fail its whole request here.
    properties: z.record(z.string().max(COMMAND_LIMITS.propertyValueLengthMax)).optional(),
  })
  .strict();

const request = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('topics') }).strict(),
  z.object({ op: z.literal('createTopic'), topic: name, queues: z.number().int().min(1).max(1024) }).strict(),
  z.object({ op: z.literal('route'), topic: name }).strict(),
  z
    .object({ op: z.literal('produce'), producerId: z.string().min(1).max(64), seq: z.number().int().min(0) /* 0: one-way, unsequenced */, messages: z.array(produceMessage).min(1).max(MAX_MESSAGES_PER_PRODUCE) })
    .strict(),
  z
    .object({
      op: z.literal('pull'),
      topic: name,
      queueId,
      offset,
      maxMessages: z.number().int().min(1).max(MAX_PULL_MESSAGES),
      maxBytes: z.number().int().min(1).max(MAX_PULL_BYTES),
      waitMs: z.number().int().min(0),
    })
    .strict(),
  z.object({ op: z.literal('commitOffsets'), group: name, offsets: z.array(z.object({ topic: name, queueId, offset }).strict()).min(1).max(4096) }).strict(),
  z.object({ op: z.literal('heartbeat'), group: name, topic: name, consumerId: z.string().min(1).max(128) }).strict(),
  z.object({ op: z.literal('leaveGroup'), group: name, topic: name, consumerId: z.string().min(1).max(128) }).strict(),
  z.object({ op: z.literal('groups') }).strict(),
  z
    .object({
      op: z.literal('queryOffsets'),
      group: name,
      queues: z.array(z.object({ topic: name, queueId }).strict()).min(1).max(4096),
      /** Also answer, per queue, the first offset stored at or after this time. */
      timestampMs: z.number().int().min(0).optional(),
    })
    .strict(),
  z.object({ op: z.literal('resetOffsets'), group: name, offsets: z.array(z.object({ topic: name, queueId, offset }).strict()).min(1).max(4096) }).strict(),
  /** Messages of a topic carrying a business key, oldest first (RocketMQ's queryMsgByKey). */
  z.object({ op: z.literal('lookupByKey'), topic: name, key: z.string().min(1).max(255), max: z.number().int().min(1).max(MAX_LOOKUP_MESSAGES) }).strict(),
  /** The first stored copy of a message by its id (RocketMQ's queryMsgById). */
  z.object({ op: z.literal('lookupByMsgId'), msgId: z.string().min(1).max(128) }).strict(),
]);

export type Request = z.infer<typeof request>;

export function parseRequest(body: unknown): Request {
  return producePassesFastCheck(body) ? body : parseWithSchema(body);
}

/** The schema's verdict alone (what the fast check must agree with; tests compare the two). */
export function parseWithSchema(body: unknown): Request {
  const result = request.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'request' : issue.path.join('.');
  throw new LmqError('LMQ_BAD_INPUT', `bad request: ${where}: ${issue?.message ?? 'invalid'}`);
}

// Produce is the hot request: zod's parse of it was a fifth of the leader's request handling
// in CPU profiles under load. This hand check accepts only produces the schema accepts too
// (without properties, which are rare); everything else, valid or not, goes through zod,
// which also words the errors. test/broker-requests.test.ts holds the two in agreement.
const PRODUCE_KEYS: ReadonlySet<string> = new Set(['op', 'producerId', 'seq', 'messages']);
const MESSAGE_KEYS: ReadonlySet<string> = new Set(['msgId', 'topic', 'queueId', 'body', 'tag', 'keys']);
const NAME_PATTERN = /^[A-Za-z0-9_%|.-]+$/;

function producePassesFastCheck(body: unknown): body is Extract<Request, { op: 'produce' }> {
  if (!isPlainObject(body) || body.op !== 'produce' || !onlyKeysFrom(body, PRODUCE_KEYS)) return false;
  const { producerId, seq, messages } = body;
  if (typeof producerId !== 'string' || producerId.length < 1 || producerId.length > 64) return false;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return false;
  if (!Array.isArray(messages) || messages.length < 1 || messages.length > MAX_MESSAGES_PER_PRODUCE) return false;
  // Index loops, not every(): every() skips the holes of a sparse array, which zod refuses.
  for (let i = 0; i < messages.length; i++) if (!messagePassesFastCheck(messages[i])) return false;
  return true;
}

function messagePassesFastCheck(message: unknown): boolean {
  if (!isPlainObject(message) || !onlyKeysFrom(message, MESSAGE_KEYS)) return false;
  const { msgId, topic, queueId, body, tag, keys } = message;
  if (typeof msgId !== 'string' || msgId.length < 1 || msgId.length > 128) return false;
  if (typeof topic !== 'string' || topic.length < 1 || topic.length > 255 || !NAME_PATTERN.test(topic)) return false;
  if (typeof queueId !== 'number' || !Number.isInteger(queueId) || queueId < 0 || queueId > 65_535) return false;
  if (!(body instanceof Uint8Array) || body.byteLength > MAX_BODY_BYTES) return false;
  if (tag !== undefined && (typeof tag !== 'string' || tag.length > 255)) return false;
  if (keys === undefined) return true;
  if (!Array.isArray(keys) || keys.length > 32) return false;
  for (let i = 0; i < keys.length; i++) {
    const key: unknown = keys[i];
    if (typeof key !== 'string' || key.length < 1 || key.length > 255) return false;
  }
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function onlyKeysFrom(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
