// The one table of limits on what a client may ask of a broker, and the character rules for
// names and texts. The request check (src/protocol/requests.ts, src/broker/requests.ts), the
// client's pre-check (src/client/producer.ts), the commit-log codec (src/broker/commands.ts),
// the state machine's read bounds and the CLI's flag ranges all read these; none restates a
// number. Each bound is the one the codec and the storage can really hold, so anything the
// request check accepts can be stored (test/protocol.test.ts proves it for produce).
//
// Raising a limit is safe. Lowering one is not: entries already in a commit log that exceed
// the new bound would no longer decode (LMQ_CORRUPT_DATA) — give the codec its own bound first.
// Lengths are JS string lengths (UTF-16 units).

export const LIMITS = Object.freeze({
  /** Topic and group names: RocketMQ's limit on topic names. */
  maxNameLength: 127,
  maxQueuesPerTopic: 1024,
  /** Messages in one produce request (one log entry). */
  maxMessagesPerProduce: 1024,
  /** RocketMQ's default maxMessageSize; also the bound on the bodies of one produce, together. */
  maxProduceBodyBytes: 4 * 1024 * 1024,
  /** msgId, producerId and consumerId. */
  maxIdLength: 128,
  maxTagLength: 128,
  maxKeysPerMessage: 32,
  maxKeyLength: 128,
  maxPropertiesPerMessage: 64,
  maxPropertyNameLength: 128,
  maxPropertyValueLength: 4096,
  /** Positions in one commitOffsets or resetOffsets request (one log entry). */
  maxOffsetsPerCommit: 4096,
  /** Queues one queryOffsets request asks about. */
  maxQueuesPerOffsetQuery: 4096,
  maxPullMessages: 1024,
  maxPullBytes: 8 * 1024 * 1024,
  /** Characters of a subscription's tag or SQL92 filter expression (src/filter). */
  maxFilterExpressionLength: 4096,
  /** Parentheses and NOTs nested in one SQL92 filter: bounds the parser's recursion. */
  maxFilterNestingDepth: 64,
  /**
   * Consume queue records one filtered pull looks at, and body bytes it reads from the log to
   * test them (an SQL92 filter reads every message; a tag filter only those whose tag hash is
   * among its tags). A pull that reaches either answers what matched so far, with nextBeginOffset
   * past what it looked at, so a long run of non-matching messages costs several pulls.
   */
  maxPullScanRecords: 4096,
  maxPullScanBytes: 16 * 1024 * 1024,
  /** Messages one lookup by key answers with at most. */
  maxLookupMessages: 1024,
  /** How long a leader transfer may be waited for: a catch-up and an election take seconds at most. */
  maxLeaderTransferWaitMs: 600_000,
  /** How far ahead a delayed message may be due: RocketMQ 5's timer limit (40 days). */
  maxDelayMs: 40 * 24 * 60 * 60 * 1000,
  /** Delay levels a cluster may configure (`delay.levels`), numbered from 1. */
  maxDelayLevels: 64,
  /** The largest maxReconsumeTimes a consumer may ask for. */
  maxReconsumeTimes: 100_000,
  /** Dead letters one dlqList or dlqResend answers for at most. */
  maxDeadLettersPerRequest: 1024,
  /** Characters of the reason a consumer gives for a failed delivery. */
  maxReasonLength: 512,
  /** Queues one lockQueues or unlockQueues request names. */
  maxQueuesPerLock: 1024,
  /** The longest topic.maxReorderWaitMs: how long keys whose queue a topic's growth changes may wait. */
  maxReorderWaitMs: 3_600_000,
  /** Bounds on an orderly consumer's queue lock lease (RocketMQ: 60 s, renewed every 20 s). */
  minLockLeaseMs: 1_000,
  maxLockLeaseMs: 300_000,
  /** Messages one simple-consumer receive hands out at most (RocketMQ 5's receive batch bound). */
  maxReceiveMessages: 32,
  /**
   * Bound on one receive's reply, bodies and metadata as src/broker/simple-consumer.ts counts
   * them: below the frame and per-connection reply limits (16 MiB), and above what one message
   * alone can take (a 4 MiB body and its properties), so a chosen message always fits.
   */
  maxReceiveReplyBytes: 8 * 1024 * 1024,
  /** Bounds on a received message's invisible duration (RocketMQ 5 allows up to 12 h). */
  minInvisibleDurationMs: 1_000,
  maxInvisibleDurationMs: 12 * 60 * 60 * 1000,
  /** Receipts one ack names. */
  maxReceiptsPerAck: 1024,
  /** Characters of a receipt handle (topic, queue, offset and tag: src/protocol/receipts.ts). */
  maxReceiptLength: 200,
  /** The most check-backs a cluster may configure per transaction (`transaction.maxChecks`). */
  maxTransactionChecks: 1000,
  /** Transactions one txChecks poll answers with at most. */
  maxTxChecksPerPoll: 64,
});

/** RocketMQ's topic/group character set; `%` allows `%RETRY%group` and `%DLQ%group`. */
export const NAME_PATTERN = /^[A-Za-z0-9%|_-]+$/;
export const NAME_RULE = 'may only use letters, digits, "%", "|", "_" and "-"';

/**
 * Control characters are refused in ids, tags and keys: they are part of lmdb index keys, and
 * ordered-binary uses low bytes as separators between key parts.
 */
export const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/** A property name that a decoded map would take as its prototype rather than as a property. */
export const RESERVED_PROPERTY_NAME = '__proto__';

export function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= LIMITS.maxNameLength && NAME_PATTERN.test(value);
}

/** An id, tag or key: 1 to maxLength units, no control characters. */
export function isText(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= maxLength && !CONTROL_CHARACTER.test(value);
}

export function isQueueId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < LIMITS.maxQueuesPerTopic;
}
