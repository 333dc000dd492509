// The client-port requests: one zod schema per operation, built from the limits table, and
// the request types inferred from them. The broker parses every request against these
// (src/broker/requests.ts); the client builds requests of these types and runs the same check
// on each message before a send shares a request with others (produceMessageProblem).
import { z } from 'zod';
import { CONTROL_CHARACTER, isName, isQueueId, isText, LIMITS, NAME_PATTERN, NAME_RULE, RESERVED_PROPERTY_NAME } from './limits.js';
import { parseReceipt } from './receipts.js';

/** The seq of a one-way send: no deduplication, no order check, no producer state kept. */
export const UNSEQUENCED = 0;

const lengthRule = (maxLength: number) => `must be 1 to ${maxLength} characters long`;

const name = z.string().min(1, lengthRule(LIMITS.maxNameLength)).max(LIMITS.maxNameLength, lengthRule(LIMITS.maxNameLength)).regex(NAME_PATTERN, NAME_RULE);
const text = (maxLength: number) =>
  z.string().min(1, lengthRule(maxLength)).max(maxLength, lengthRule(maxLength)).refine((s) => !CONTROL_CHARACTER.test(s), 'must not contain control characters');
const id = text(LIMITS.maxIdLength);
const queueId = z.number().int().min(0).max(LIMITS.maxQueuesPerTopic - 1, `must be below maxQueuesPerTopic ${LIMITS.maxQueuesPerTopic}`);
const wholeNumber = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const propertyName = text(LIMITS.maxPropertyNameLength).refine((n) => n !== RESERVED_PROPERTY_NAME, `"${RESERVED_PROPERTY_NAME}" is reserved`);
const properties = z
  .record(propertyName, z.string().max(LIMITS.maxPropertyValueLength, `must be at most ${LIMITS.maxPropertyValueLength} characters long`))
  .refine((p) => Object.keys(p).length <= LIMITS.maxPropertiesPerMessage, `more than maxPropertiesPerMessage ${LIMITS.maxPropertiesPerMessage} properties`);

export const produceMessageSchema = z
  .object({
    msgId: id,
    topic: name,
    queueId,
    body: z
      .custom<Uint8Array>((b) => b instanceof Uint8Array, 'must be binary')
      .refine((b) => b.byteLength <= LIMITS.maxProduceBodyBytes, `body larger than ${LIMITS.maxProduceBodyBytes} bytes`),
    tag: text(LIMITS.maxTagLength).optional(),
    keys: z.array(text(LIMITS.maxKeyLength)).max(LIMITS.maxKeysPerMessage, `more than maxKeysPerMessage ${LIMITS.maxKeysPerMessage} keys`).optional(),
    properties: properties.optional(),
    /** Delayed message: due at this time (epoch ms; the client computes it for a relative delay). */
    deliverAtMs: wholeNumber.optional(),
    /** Delayed message: due after the cluster's delay level N (`delay.levels`, from 1), counted by the leader. */
    delayLevel: z.number().int().min(1).max(LIMITS.maxDelayLevels).optional(),
  })
  .strict()
  .refine((m) => m.deliverAtMs === undefined || m.delayLevel === undefined, 'deliverAtMs and delayLevel exclude each other');

const produceMessages = z
  .array(produceMessageSchema)
  .min(1)
  .max(LIMITS.maxMessagesPerProduce, `more than maxMessagesPerProduce ${LIMITS.maxMessagesPerProduce} messages`)
  .refine((messages) => totalBodyBytes(messages) <= LIMITS.maxProduceBodyBytes, `bodies total more than maxProduceBodyBytes ${LIMITS.maxProduceBodyBytes}`);

/** RocketMQ refuses delayed transactional messages too: a commit places them at once. */
const txMessages = produceMessages.refine((messages) => messages.every((m) => m.deliverAtMs === undefined && m.delayLevel === undefined), 'a transactional message cannot be delayed');

const position = z.object({ topic: name, queueId, offset: wholeNumber }).strict();
const positions = z.array(position).min(1).max(LIMITS.maxOffsetsPerCommit, `more than maxOffsetsPerCommit ${LIMITS.maxOffsetsPerCommit} positions`);

/** A subscription's filter (src/filter): compiled, and a bad one refused, by the broker on every pull. */
const filter = z
  .object({
    type: z.enum(['tag', 'sql']),
    expression: z.string().max(LIMITS.maxFilterExpressionLength, `must be at most maxFilterExpressionLength ${LIMITS.maxFilterExpressionLength} characters long`),
  })
  .strict();

const lockedQueues = z
  .array(z.object({ topic: name, queueId }).strict())
  .min(1)
  .max(LIMITS.maxQueuesPerLock, `more than maxQueuesPerLock ${LIMITS.maxQueuesPerLock} queues`);

// Simple consumer (RocketMQ 5 receive / ack / changeInvisibleDuration): see src/broker/simple-consumer.ts.
const receipt = z
  .string()
  .max(LIMITS.maxReceiptLength, `must be at most ${LIMITS.maxReceiptLength} characters long`)
  .refine((r) => parseReceipt(r) !== undefined, 'is not a receipt handle a receive handed out');
const invisibleDurationMs = z
  .number()
  .int()
  .min(LIMITS.minInvisibleDurationMs, `must be at least minInvisibleDurationMs ${LIMITS.minInvisibleDurationMs}`)
  .max(LIMITS.maxInvisibleDurationMs, `must be at most maxInvisibleDurationMs ${LIMITS.maxInvisibleDurationMs} (12 h)`);

export const requestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('topics') }).strict(),
  z.object({ op: z.literal('createTopic'), topic: name, queues: z.number().int().min(1).max(LIMITS.maxQueuesPerTopic) }).strict(),
  z.object({ op: z.literal('route'), topic: name }).strict(),
  /** Grows a topic to `queues` (more than it has): keys whose queue changes wait for the groups (topic.maxReorderWaitMs). */
  z.object({ op: z.literal('growTopic'), topic: name, queues: z.number().int().min(2).max(LIMITS.maxQueuesPerTopic) }).strict(),
  /** seq from 1 per producerId; UNSEQUENCED (0) for a one-way send. */
  z
    .object({
      op: z.literal('produce'), producerId: id, seq: wholeNumber, messages: produceMessages,
      /** The topic's queue count the producer chose the queues with: a topic grown since refuses the produce (LMQ_ROUTE_CHANGED). */
      routedQueues: z.number().int().min(1).max(LIMITS.maxQueuesPerTopic).optional(),
      /**
       * The messages' binary form, when the client sent them so (EncodedProduceRequest): the
       * broker's edge decoded `messages` from it, and the leader copies it into the entry.
       */
      encoded: z.custom<Uint8Array>((b) => b instanceof Uint8Array, 'must be binary').optional(),
    })
    .strict(),
  z
    .object({
      op: z.literal('pull'),
      topic: name,
      queueId,
      offset: wholeNumber,
      maxMessages: z.number().int().min(1).max(LIMITS.maxPullMessages),
      maxBytes: z.number().int().min(1).max(LIMITS.maxPullBytes),
      waitMs: wholeNumber,
      /** Only messages matching it are answered; the others are skipped (nextBeginOffset passes them). */
      filter: filter.optional(),
    })
    .strict(),
  /** offset = the next offset the group will consume; moves forward only. */
  z.object({ op: z.literal('commitOffsets'), group: name, offsets: positions }).strict(),
  z.object({ op: z.literal('heartbeat'), group: name, topic: name, consumerId: id }).strict(),
  z.object({ op: z.literal('leaveGroup'), group: name, topic: name, consumerId: id }).strict(),
  z.object({ op: z.literal('groups') }).strict(),
  z
    .object({
      op: z.literal('queryOffsets'),
      group: name,
      queues: z.array(z.object({ topic: name, queueId }).strict()).min(1).max(LIMITS.maxQueuesPerOffsetQuery),
      /** Also answer, per queue, the first offset stored at or after this time. */
      timestampMs: wholeNumber.optional(),
    })
    .strict(),
  /** Sets offsets exactly, backwards too. */
  z.object({ op: z.literal('resetOffsets'), group: name, offsets: positions }).strict(),
  /** Messages of a topic carrying a business key, oldest first (RocketMQ's queryMsgByKey). */
  z.object({ op: z.literal('lookupByKey'), topic: name, key: text(LIMITS.maxKeyLength), max: z.number().int().min(1).max(LIMITS.maxLookupMessages) }).strict(),
  /** The first stored copy of a message by its id (RocketMQ's queryMsgById). */
  z.object({ op: z.literal('lookupByMsgId'), msgId: id }).strict(),
  /**
   * A consumer of `group` failed the message at (topic, queueId, offset), whose id is msgId:
   * the broker stores it again in `%RETRY%<group>` (due after the next delay level) or, past
   * maxReconsumeTimes (else the cluster's consumer.maxReconsumeTimes), in `%DLQ%<group>`.
   * RocketMQ's consumerSendMsgBack.
   */
  z
    .object({
      op: z.literal('sendBack'),
      group: name,
      topic: name,
      queueId,
      offset: wholeNumber,
      msgId: id,
      maxReconsumeTimes: z.number().int().min(0).max(LIMITS.maxReconsumeTimes).optional(),
      /**
       * An orderly consumer's dead letter: the message failed this many deliveries in place
       * (orderly retries never go through the retry queue, so the stored copy cannot count
       * them); it goes to the DLQ at once with these attempts.
       */
      orderlyAttempts: z.number().int().min(1).max(LIMITS.maxReconsumeTimes + 1).optional(),
      reason: text(LIMITS.maxReasonLength).optional(),
    })
    .strict(),
  /** The group's dead letters, from DLQ offset fromOffset on. */
  z.object({ op: z.literal('dlqList'), group: name, fromOffset: wholeNumber, max: z.number().int().min(1).max(LIMITS.maxDeadLettersPerRequest) }).strict(),
  /**
   * Orderly consumption: locks (or renews) the queues for clientId of group, each unless another
   * client of the group holds it, for leaseMs from when the leader decides it. Replicated, so a
   * new leader never grants a lock an old leader's lease may still cover. RocketMQ's lockBatchMQ.
   */
  z
    .object({
      op: z.literal('lockQueues'),
      group: name,
      clientId: id,
      queues: lockedQueues,
      leaseMs: z.number().int().min(LIMITS.minLockLeaseMs).max(LIMITS.maxLockLeaseMs),
    })
    .strict(),
  /** Releases the queues clientId holds (a rebalance moved them away): no waiting out the lease. */
  z.object({ op: z.literal('unlockQueues'), group: name, clientId: id, queues: lockedQueues }).strict(),
  /** Re-delivers dead letters not yet resent (the one with msgId, else up to maxDeadLettersPerRequest of them) once, to the group only. */
  z.object({ op: z.literal('dlqResend'), group: name, msgId: id.optional() }).strict(),
  /**
   * Simple consumer: up to max messages of topic (and of the group's %RETRY%<group>) that the
   * group has not acked and that are visible — expired deliveries first, then new ones — each
   * invisible to the group for invisibleDurationMs. Waits up to waitMs when there are none.
   */
  z
    .object({
      op: z.literal('receive'),
      group: name,
      topic: name,
      clientId: id,
      max: z.number().int().min(1).max(LIMITS.maxReceiveMessages, `must be at most maxReceiveMessages ${LIMITS.maxReceiveMessages}`),
      invisibleDurationMs,
      waitMs: wholeNumber,
      /**
       * FIFO (RocketMQ 5's orderly pop): a queue with a message of the group in flight and not
       * yet visible again hands out nothing; its expired messages come back first, in offset order.
       */
      fifo: z.boolean().optional(),
    })
    .strict(),
  /** Acks received messages by their receipts; a receipt of an acked message acks nothing more. */
  z.object({ op: z.literal('ack'), group: name, receipts: z.array(receipt).min(1).max(LIMITS.maxReceiptsPerAck, `more than maxReceiptsPerAck ${LIMITS.maxReceiptsPerAck} receipts`) }).strict(),
  /** Makes a received message invisible for invisibleDurationMs from now; answers its new receipt (the old one is stale). */
  z.object({ op: z.literal('changeInvisibleDuration'), group: name, receipt, invisibleDurationMs }).strict(),
  // Transactional messages (src/broker/transactions.ts), RocketMQ's half messages and check-back.
  /**
   * Stores messages of transaction txId (of producerGroup) as half messages: durable, invisible
   * to every consumer until a txEnd commits them. A repeat (the same msgIds) stores nothing more.
   */
  z.object({ op: z.literal('txHalf'), producerGroup: name, producerId: id, txId: id, messages: txMessages }).strict(),
  /** Ends transaction txId once: commit places all its messages, rollback discards them; a repeat answers the first outcome. */
  z.object({ op: z.literal('txEnd'), producerGroup: name, txId: id, outcome: z.enum(['commit', 'rollback']), source: z.enum(['producer', 'check']) }).strict(),
  /** A producer of producerGroup waits up to waitMs for open transactions due for a check-back (the long poll a check goes over). */
  z.object({ op: z.literal('txChecks'), producerGroup: name, clientId: id, waitMs: wholeNumber }).strict(),
  /** The open transactions (half messages not yet ended), oldest first. */
  z.object({ op: z.literal('txList') }).strict(),
  /** The leader's produce and delivery counters and its last minutes of produce latency (the console's chart). */
  z.object({ op: z.literal('brokerStats') }).strict(),
  // Leadership (src/broker/leadership.ts).
  /** The leader hands leadership to node `to` and answers once `to` leads, or fails within waitMs. */
  z.object({ op: z.literal('transferLeader'), to: id, waitMs: z.number().int().min(1).max(LIMITS.maxLeaderTransferWaitMs) }).strict(),
  /** Replicates the preferred leader (null: none), which the leader hands leadership to once it has caught up. */
  z.object({ op: z.literal('setPreferredLeader'), node: id.nullable() }).strict(),
]);

export type Request = z.infer<typeof requestSchema>;
export type OpName = Request['op'];
export type RequestOf<Op extends OpName> = Extract<Request, { op: Op }>;
export type ProduceMessageWire = z.infer<typeof produceMessageSchema>;

/**
 * A produce as a client sends it with its messages in their binary form (produce-messages.ts)
 * instead of as maps: the broker decodes and checks them at its edge into the produce request
 * the schema describes (src/broker/requests.ts), and copies the bytes into the log entry.
 */
export type EncodedProduceRequest = Omit<RequestOf<'produce'>, 'messages' | 'encoded'> & { encoded: Uint8Array };
/** What a client may send: a request, or a produce in its encoded form. */
export type WireRequest = Request | EncodedProduceRequest;
export type OffsetPositionWire = z.infer<typeof position>;

export function totalBodyBytes(messages: readonly { body: Uint8Array }[]): number {
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) bytes += messages[i]!.body.byteLength;
  return bytes;
}

/**
 * What is wrong with one message of a produce, or undefined: the request check on that message
 * alone (its body alone against maxProduceBodyBytes). The client runs it before combining
 * messages into one request, so one bad message is refused alone instead of failing them all.
 */
export function produceMessageProblem(message: ProduceMessageWire): string | undefined {
  if (produceMessagePassesFastCheck(message)) return undefined;
  const result = produceMessageSchema.safeParse(message);
  if (result.success) return undefined;
  const issue = result.error.issues[0];
  return issue === undefined ? 'invalid message' : `${issuePath(issue.path)} ${issue.message}`.trim();
}

/** `keys[0]`, `properties.a`: a zod issue path as a reader would write it. */
function issuePath(path: readonly (string | number)[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
}

// Produce is the hot request: zod's parse of it was a fifth of the leader's request handling
// in CPU profiles under load. This hand check accepts only messages the schema accepts too
// (without properties, which are rare); everything else, valid or not, goes through zod,
// which also words the errors. test/broker-requests.test.ts holds the two in agreement.
const MESSAGE_KEYS: ReadonlySet<string> = new Set(['msgId', 'topic', 'queueId', 'body', 'tag', 'keys']);

export function produceMessagePassesFastCheck(message: unknown): boolean {
  if (!isPlainObject(message) || !onlyKeysFrom(message, MESSAGE_KEYS)) return false;
  const { msgId, topic, queueId: queue, body, tag, keys } = message;
  if (!isText(msgId, LIMITS.maxIdLength) || !isName(topic) || !isQueueId(queue)) return false;
  if (!(body instanceof Uint8Array) || body.byteLength > LIMITS.maxProduceBodyBytes) return false;
  if (tag !== undefined && !isText(tag, LIMITS.maxTagLength)) return false;
  if (keys === undefined) return true;
  if (!Array.isArray(keys) || keys.length > LIMITS.maxKeysPerMessage) return false;
  // Index loops, not every(): every() skips the holes of a sparse array, which zod refuses.
  for (let i = 0; i < keys.length; i++) if (!isText(keys[i], LIMITS.maxKeyLength)) return false;
  return true;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

export function onlyKeysFrom(value: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
