// The client-port request shapes, validated at the edge: anything else is LMQ_BAD_INPUT with
// the offending field named, never a crash.
import { z } from 'zod';
import { LmqError } from '../util/errors.js';

/** Bounds of one request; larger ones are refused with a message naming the bound. */
export const MAX_MESSAGES_PER_PRODUCE = 1024;
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
export const MAX_PULL_MESSAGES = 1024;
export const MAX_PULL_BYTES = 8 * 1024 * 1024;

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
    properties: z.record(z.string().max(1024)).optional(),
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
]);

export type Request = z.infer<typeof request>;

export function parseRequest(body: unknown): Request {
  const result = request.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'request' : issue.path.join('.');
  throw new LmqError('LMQ_BAD_INPUT', `bad request: ${where}: ${issue?.message ?? 'invalid'}`);
}
