// The console's JSON API beyond the overview: message lookup, dead letters, and the write
// actions (create or grow a topic, reset a group's offsets, resend dead letters) — each one
// client operation, as the CLI's topic, message, group reset and dlq commands send it; the
// broker checks every request as it checks theirs. A write needs http.allowWrites (403 naming
// the key otherwise); a reset's dry run is a read and always allowed.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { LedgerClient } from '../client/client.js';
import { queryStartOffsets, type StartPosition, topicQueues } from '../client/consumer.js';
import { LIMITS, type StoredMessage } from '../protocol/index.js';
import { type ErrorCode, isLmqError } from '../util/errors.js';
import { describeError } from './cluster-view.js';

/** The body bytes the page is sent of one message; the rest is cut (and said so). */
const MAX_SHOWN_BODY_BYTES = 64 * 1024;
/** "Resend all" asks the broker for batches until none is left, at most this many. */
const MAX_RESEND_ROUNDS = 100;

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  LMQ_BAD_INPUT: 400,
  LMQ_TOPIC_NOT_FOUND: 404,
  LMQ_TOPIC_EXISTS: 409,
  LMQ_UNAUTHENTICATED: 401,
  LMQ_FORBIDDEN: 403,
  LMQ_UNAVAILABLE: 503,
  LMQ_TIMEOUT: 504,
  LMQ_NOT_LEADER: 503,
  LMQ_OVERLOADED: 503,
};

const WRITES_OFF = 'write actions are disabled on this console: set "http": { "allowWrites": true } in the cluster config and restart the node';

const text = z.string().min(1).max(LIMITS.maxKeyLength);
const queues = z.coerce.number().int().min(1).max(LIMITS.maxQueuesPerTopic);
const topicBody = z.object({ topic: text, queues }).strict();
const resetBody = z.object({ group: text, topic: text, to: text, dryRun: z.boolean() }).strict();
const resendBody = z.object({ group: text, msgId: text.optional() }).strict();
const lookupQuery = z.union([z.object({ topic: text, key: text }).strict(), z.object({ msgId: text }).strict()]);
const dlqQuery = z.object({ group: text }).strict();

export function registerActions(app: FastifyInstance, client: LedgerClient, allowWrites: boolean): void {
  const write = <T>(schema: z.ZodType<T>, run: (body: T) => Promise<unknown>) => (request: { body: unknown }, reply: FastifyReply) => {
    if (!allowWrites) return reply.code(403).send({ error: WRITES_OFF });
    return answer(reply, schema, request.body, run);
  };
  app.get('/api/messages', (request, reply) => answer(reply, lookupQuery, request.query, async (query) => {
    // Three answers: found, not found (HTTP 404, a definite no), failed (the error's status).
    const { messages } = 'msgId' in query ? await client.call({ op: 'lookupByMsgId', msgId: query.msgId }) : await client.call({ op: 'lookupByKey', topic: query.topic, key: query.key, max: LIMITS.maxLookupMessages });
    if (messages.length === 0) return reply.code(404).send({ result: 'not-found' });
    return { result: 'found', messages: messages.map(shownMessage) };
  }));
  app.get('/api/dlq', (request, reply) => answer(reply, dlqQuery, request.query, async ({ group }) => client.dlqList({ group, fromOffset: 0, max: LIMITS.maxDeadLettersPerRequest })));
  app.post('/api/topics', write(topicBody, ({ topic, queues }) => client.call({ op: 'createTopic', topic, queues })));
  app.post('/api/topics/grow', write(topicBody, ({ topic, queues }) => client.call({ op: 'growTopic', topic, queues })));
  app.post('/api/dlq/resend', write(resendBody, async ({ group, msgId }) => {
    if (msgId !== undefined) return client.dlqResend({ group, msgId });
    let resent = 0;
    for (let round = 0; round < MAX_RESEND_ROUNDS; round++) {
      const batch = await client.dlqResend({ group });
      resent += batch.resent;
      if (batch.resent === 0) break;
    }
    return { resent };
  }));
  app.post('/api/groups/reset', (request, reply) => {
    const dryRun = typeof request.body === 'object' && request.body !== null && (request.body as { dryRun?: unknown }).dryRun === true;
    if (!dryRun && !allowWrites) return reply.code(403).send({ error: WRITES_OFF });
    return answer(reply, resetBody, request.body, async ({ group, topic, to }) => {
      const position = startPosition(to);
      if (position === null) return reply.code(400).send({ error: `"to" must be first, last, an ISO date or epoch milliseconds, not ${JSON.stringify(to)}` });
      const offsets = await queryStartOffsets(client, group, topic, await topicQueues(client, topic), position);
      if (!dryRun) await client.call({ op: 'resetOffsets', group, offsets: offsets.map((q) => ({ topic, queueId: q.queueId, offset: q.start })) });
      return { dryRun, offsets };
    });
  });
}

/** Checks the input, runs the operation, and turns a refusal into its HTTP status and one line. */
async function answer<T>(reply: FastifyReply, schema: z.ZodType<T>, input: unknown, run: (input: T) => Promise<unknown>): Promise<unknown> {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return reply.code(400).send({ error: `bad request: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(body)'}: ${issue.message}`}` });
  }
  try {
    return await run(parsed.data);
  } catch (error) {
    const status = isLmqError(error) ? HTTP_STATUS[error.code] ?? 500 : 502;
    return reply.code(status).send({ result: 'failed', error: describeError(error) });
  }
}

/** As `group reset --to` takes it: first, last, epoch ms or an ISO date; null when it is none. */
function startPosition(to: string): StartPosition | null {
  if (to === 'first' || to === 'last') return to;
  const ms = /^\d+$/.test(to) ? Number(to) : Date.parse(to);
  return Number.isSafeInteger(ms) && ms >= 0 ? { timestampMs: ms } : null;
}

/** A message as the page shows it: the body as text when it is UTF-8 without control characters, and always as hex. */
function shownMessage(m: StoredMessage): Record<string, unknown> {
  const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
  const shown = body.subarray(0, MAX_SHOWN_BODY_BYTES);
  let bodyText: string | null = null;
  try {
    const decoded = new TextDecoder('utf-8', { fatal: true }).decode(shown);
    // eslint-disable-next-line no-control-regex
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(decoded)) bodyText = decoded;
  } catch {
    bodyText = null; // not UTF-8 (or cut inside a character): hex only
  }
  const { body: _body, ...fields } = m;
  return { ...fields, bodyBytes: body.byteLength, bodyTruncated: body.byteLength > shown.byteLength, bodyText, bodyHex: shown.toString('hex') };
}
