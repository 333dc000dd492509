// The client-port responses: what the broker answers to each operation. The service's handler
// table is typed against ResponseOf (src/broker/service.ts), so a handler that answers another
// shape does not compile; the client's call() returns ResponseOf of the request it sent.
import type { OpName } from './requests.js';

export type NodeRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

export interface NodeStatus {
  readonly id: string;
  readonly pid: number;
  readonly role: NodeRole;
  readonly term: number;
  readonly leader: string | null;
  /** First index the log holds (lastIndex + 1 when it is empty). */
  readonly firstIndex: number;
  /** Index of the newest snapshot on this node's disk (0 when it has none). */
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  readonly persistedIndex: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** Leader only: each follower's match index and how far it lags behind the leader's last index. */
  readonly followers: readonly { id: string; matchIndex: number; lag: number; state: string }[];
  /** The log store's counters since the node process started. */
  readonly storage: { fsyncs: number; appendedEntries: number; appendedBytes: number };
  /** Bytes the log's segments hold on disk. */
  readonly logBytes: number;
  /** How late this process's event loop ran, p99 and max over roughly the last 10 s. */
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
}

export interface TopicInfo {
  readonly topic: string;
  readonly queues: number;
}

/** One queue's stored range, as `topic list --json` prints it. */
export interface QueueOffsetRange {
  readonly queue: number;
  /** The first offset still stored (retention moves it forward). */
  readonly minOffset: number;
  /** The next offset to be written. */
  readonly maxOffset: number;
}

export interface PlacedMessage {
  readonly msgId: string;
  readonly queueId: number;
  /** null under `leader` quorum, which acknowledges before the offset is assigned, and for a delayed message (placed when due). */
  readonly offset: number | null;
  /** A delayed message: when it is due (it gets its offset then). */
  readonly deliverAtMs?: number;
}

/** Where a retry or dead-letter copy came from: the first delivery's message. */
export interface MessageOrigin {
  readonly msgId: string;
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
}

/** Why and when a message went to its group's dead-letter queue. */
export interface DeadLetterInfo {
  readonly reason: string;
  /** Deliveries that failed: maxReconsumeTimes + 1 after the last retry. */
  readonly attempts: number;
  readonly firstFailureMs: number;
  readonly lastFailureMs: number;
}

/** A stored message as reads and lookups answer it. */
export interface StoredMessage {
  readonly msgId: string;
  readonly topic: string;
  readonly queueId: number;
  readonly offset: number;
  readonly logIndex: number;
  readonly storeTimestampMs: number;
  readonly body: Uint8Array;
  readonly tag?: string;
  readonly keys?: readonly string[];
  readonly properties?: Readonly<Record<string, string>>;
  /** A delayed message: when it was due. */
  readonly deliverAtMs?: number;
  /** A retry copy: the n-th redelivery (absent: 0, the first delivery). */
  readonly reconsumeTimes?: number;
  /** A retry or dead-letter copy: the message it copies (its msgId is the same). */
  readonly origin?: MessageOrigin;
  /** A retry copy: when its first delivery failed. */
  readonly firstFailureMs?: number;
  /** A dead-letter copy. */
  readonly deadLetter?: DeadLetterInfo;
}

/** A message a simple consumer received: ack it by its receipt before its invisible duration ends. */
export interface ReceivedMessage extends StoredMessage {
  /** Names this delivery in ack and changeInvisibleDuration (opaque; src/protocol/receipts.ts). */
  readonly receipt: string;
  /** 1 on the first delivery to the group's simple consumers, n on the n-th. */
  readonly deliveryAttempt: number;
  /** When it becomes visible again unless acked (the leader's clock, epoch ms). */
  readonly invisibleUntilMs: number;
}

/** One dead letter as `dlq list` shows it (CONTRACT.md): topic, queue and offset are the original's. */
export interface DeadLetter extends DeadLetterInfo {
  readonly msgId: string;
  readonly topic: string;
  readonly queue: number;
  readonly offset: number;
  /** Its offset in `%DLQ%<group>`. */
  readonly dlqOffset: number;
  readonly resent: boolean;
}

/** A group's dead letters: stored in %DLQ%<group> (resent ones included), and resent. */
export interface DeadLetterCounts {
  readonly messages: number;
  readonly resent: number;
}

export interface QueueRange {
  /** The first offset still stored. */
  readonly minOffset: number;
  /** The next offset to be written. */
  readonly nextOffset: number;
}

export interface QueueOffsets extends QueueRange {
  readonly topic: string;
  readonly queueId: number;
  /** The group's committed offset; null when it has none. */
  readonly offset: number | null;
  /** When the query gave timestampMs: the first offset stored at or after it. */
  readonly timeOffset?: number;
}

export interface GroupQueueLag {
  readonly topic: string;
  readonly queueId: number;
  readonly committedOffset: number;
  readonly nextOffset: number;
  /** nextOffset − committedOffset: messages stored but not yet consumed by the group. */
  readonly lag: number;
  /**
   * Age of the oldest unconsumed message (now − its store time on the leader's clock), seconds;
   * 0 with no lag; null when it cannot be told, lagSecondsUnknown saying why. Never negative.
   */
  readonly lagSeconds: number | null;
  readonly lagSecondsUnknown?: string;
}

/** A consumer the leader has heard from (soft state: heartbeats since it became leader). */
export interface GroupMember {
  readonly topic: string;
  readonly consumerId: string;
  readonly queueIds: readonly number[];
}

/** One second of the leader's produce requests (BrokerStats, src/broker/stats.ts). */
export interface ProduceSecond {
  /** Start of the second, epoch ms on the leader's clock. */
  readonly atMs: number;
  readonly messages: number;
  /** p99 of the produce requests answered in it, from receipt to answer; null without any. */
  readonly p99Ms: number | null;
}

/** What one node's broker counted since its process started (leaders only do the counting). */
export interface BrokerStatsReply {
  readonly nodeId: string;
  /** Messages answered to pulls and receives, per topic. */
  readonly messagesOut: Readonly<Record<string, number>>;
  /** Body bytes of acknowledged produce requests, per topic. */
  readonly bytesIn: Readonly<Record<string, number>>;
  /** The last completed seconds, oldest first (at most 300: five minutes). */
  readonly seconds: readonly ProduceSecond[];
}

export interface Assignment {
  readonly queueIds: readonly number[];
  readonly members: number;
  /** Changes whenever the member set changes. */
  readonly generation: number;
}

export interface Ack {
  readonly ok: true;
}

/** A transaction's end: commit places its messages (in the order they were sent), rollback discards them. */
export type TxOutcome = 'commit' | 'rollback';

/** One open transaction as txList answers it. */
export interface TxSummary {
  readonly txId: string;
  readonly producerGroup: string;
  readonly producerId: string;
  /** The topics its half messages are for, in first-sent order. */
  readonly topics: readonly string[];
  readonly messages: number;
  /** The leader's time when its first half message was stored (epoch ms). */
  readonly storedAtMs: number;
  /** Check-backs made so far (each counts whether or not a producer answered). */
  readonly checks: number;
  /** When the next check-back is due (epoch ms, the leaders' clocks); past maxChecks, the rollback. */
  readonly nextCheckAtMs: number;
}

/** A half message as a check-back shows it: a message's own fields, no place in a queue yet. */
export type HalfMessage = Pick<StoredMessage, 'msgId' | 'topic' | 'queueId' | 'body' | 'tag' | 'keys' | 'properties'>;

/** A check-back: the producer group's checker answers whether transaction txId committed locally. */
export interface TxCheck extends TxSummary {
  readonly halfMessages: readonly HalfMessage[];
}

/** An old queue of a growing topic that some groups have not consumed up to the growth yet. */
export interface WaitingQueue {
  readonly queueId: number;
  /** Its next offset at the growth: the groups must commit at least this far. */
  readonly boundary: number;
  readonly groups: readonly string[];
}

/**
 * The topic's last growth while some group has not consumed an old queue up to it: keys whose
 * queue changes (hash % fromQueues ≠ hash % queues) and whose old queue is in heldQueues are
 * held by keyed producers for remainingMs more; at 0 the wait is over and such a key moves,
 * its order possibly broken (the producer logs it).
 */
export interface RouteGrowth {
  readonly fromQueues: number;
  readonly heldQueues: readonly number[];
  readonly remainingMs: number;
}

interface Responses {
  status: NodeStatus;
  topics: { readonly topics: readonly (TopicInfo & { readonly queueOffsets: readonly QueueOffsetRange[] })[] };
  createTopic: TopicInfo;
  route: TopicInfo & { readonly growth?: RouteGrowth };
  /** waiting: the old queues keys wait on, and for which groups; none: keys move at once. */
  growTopic: { readonly topic: string; readonly fromQueues: number; readonly queues: number; readonly maxReorderWaitMs: number; readonly waiting: readonly WaitingQueue[] };
  /**
   * Where the request's messages went, in its message order: each one's offset in the queue the
   * producer chose (null as in PlacedMessage), and, when any was delayed, each one's due time
   * (null: not delayed). The producer named every message and its queue, so they do not come back:
   * a number a message to pack and send, where an object with its msgId cost the leader
   * ~0.3 µs a message (README, Performance). A duplicate older than the broker's window is
   * acknowledged without its offsets (both empty).
   */
  produce: { readonly offsets: readonly (number | null)[]; readonly deliverAtMs?: readonly (number | null)[]; readonly duplicate: boolean };
  /**
   * startOffset: where the read started — the offset asked for, or minOffset when retention had
   * deleted it (the consumer moves its position there).
   */
  pull: QueueRange & {
    readonly startOffset: number;
    readonly messages: readonly StoredMessage[];
    /**
     * Where the next pull starts (RocketMQ's nextBeginOffset): past the last message answered
     * and, with a filter, past every message the broker skipped as not matching — so a pull
     * whose messages were all filtered out answers none and still moves the consumer on, and
     * the consumer commits it. Without a filter: the last message's offset + 1, else startOffset.
     */
    readonly nextBeginOffset: number;
  };
  commitOffsets: Ack;
  heartbeat: Assignment;
  leaveGroup: Ack;
  /** queues: the group's rows, its %RETRY% queues included; dlq: its dead letters (never rows). */
  /** members: the consumers the leader has heard from, with the queues each owns. */
  groups: { readonly groups: readonly { group: string; queues: readonly GroupQueueLag[]; dlq: DeadLetterCounts; members: readonly GroupMember[] }[] };
  queryOffsets: { readonly offsets: readonly QueueOffsets[] };
  resetOffsets: Ack;
  lookupByKey: { readonly messages: readonly StoredMessage[] };
  lookupByMsgId: { readonly messages: readonly StoredMessage[] };
  /** duplicate: this message was already sent back (or the group's offset is past it); nothing new was stored. */
  sendBack: { readonly target: 'retry' | 'dlq'; readonly reconsumeTimes: number; readonly deliverAtMs: number | null; readonly duplicate: boolean };
  /** nextOffset: where the next dlqList continues (the DLQ's next offset when all were listed). */
  dlqList: { readonly deadLetters: readonly DeadLetter[]; readonly nextOffset: number };
  /** The queues the client now holds (a subset of those asked), each until expiresAtMs (the leader's clock). */
  lockQueues: { readonly locked: readonly { topic: string; queueId: number; expiresAtMs: number }[] };
  unlockQueues: Ack;
  /** resent: dead letters re-delivered by this request; 0 when none was left to resend. */
  dlqResend: { readonly resent: number };
  receive: { readonly messages: readonly ReceivedMessage[] };
  /** acked: receipts now acked (by this request or before); expired: those whose message was delivered again since (not acked). */
  ack: { readonly acked: number; readonly expired: readonly string[] };
  /** The delivery's new receipt (the one given is stale now) and when it becomes visible again. */
  changeInvisibleDuration: { readonly receipt: string; readonly invisibleUntilMs: number };
  /** messages: the transaction's half messages now; duplicate: these were stored before (a retry). */
  txHalf: { readonly txId: string; readonly messages: number; readonly duplicate: boolean };
  /** outcome: the transaction's one end (the first one applied); placed: a commit's messages, as produce answers them. */
  txEnd: { readonly outcome: TxOutcome; readonly duplicate: boolean; readonly placed: readonly PlacedMessage[] };
  /** Open transactions of the group due for a check-back ([] when none came within waitMs). */
  txChecks: { readonly checks: readonly TxCheck[] };
  txList: { readonly transactions: readonly TxSummary[] };
  brokerStats: BrokerStatsReply;
  /** moved: false when `leader` led already. term: the new leader's term. */
  transferLeader: { readonly leader: string; readonly term: number; readonly moved: boolean };
  /** The preferred leader now in force (null: none). */
  setPreferredLeader: { readonly preferredLeader: string | null };
}

export type ResponseOf<Op extends OpName> = Responses[Op];
