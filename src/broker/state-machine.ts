// The broker's replicated state machine: turns the committed Raft log (the broker's commit log,
// RocketMQ's CommitLog) into topics, consume queues, group offsets, producer dedup state and the
// key/msgId indexes, all in one lmdb environment. Apply is deterministic — every check is made
// against replicated state, time comes from the command — so the same log gives the same state
// and results on every node, and queue order is log order everywhere.
//
// A consume queue entry is an index into the commit log (log index + position in the batch,
// store time, body size), like RocketMQ's CommitLog → ConsumeQueue dispatch; bodies are read
// back through CommittedLogReader. appliedIndex and every change of one apply() call form one
// transaction, and lmdb receives whole transactions only (buffered, store.ts), so after a
// crash the state is exactly that of some applied index and replay from appliedIndex()+1 is
// exact. The lmdb needs no durability of its own: it is rebuilt when its directory is deleted —
// by replaying the log from index 1, or, once retention has deleted the head of the log, by
// restoring a snapshot and replaying from there — so commits skip fsync and a state an OS
// crash may have torn is discarded at open (state-guard.ts).
//
// Retention (retention.ts) and snapshots (snapshot.ts): a replicated truncateLog command moves
// retainedFromIndex and every queue's minOffset; a snapshot holds what the retained log cannot
// give back (topics, queue offset ranges, group offsets, producer dedup state, meta, the log
// indexes of produce entries that placed nothing), and the consume queues and key/msgId
// indexes are rebuilt from the retained log after a restore.
//
// Delayed messages, retry and dead letters (RocketMQ's schedule topic, %RETRY% and %DLQ%
// topics): a message due later than its entry's time waits, whole, in the replicated timer
// index (['timer', deliverAtMs, logIndex, position]) and gets its offset when the leader's
// scheduler (scheduler.ts) proposes deliverDue; a sendBack stores a retry copy (in the timer
// index) or a dead-letter copy (placed at once), deduplicated per (group, queue, offset); a
// dlqResend places resent dead letters' retry copies once each (retry.ts builds the copies).
import type { Logger } from 'pino';
import { EntryType, type Entry } from '../raft/types.js';
import { assert, unreachable } from '../util/assert.js';
import { isLmqError, LmqError } from '../util/errors.js';
import { type DeadLetter, LIMITS, type TxSummary, UNSEQUENCED } from '../protocol/index.js';
import { type BrokerCommand, decodeCommand, type ProduceCommand, type DeliveryRef, dlqTopicOf, type DueMessage, type ProduceMessage, type SendBackTarget } from './commands.js';
import { checkSeq, type ProducerSettings, recordOutcome } from './producers.js';
import { BrokerStore, type ConsumeQueueRecord, type Placement, type ProduceOutcome, type QueueRecord, type SentBackRecord } from './store.js';
import { type CommitDurability, guardStateDir, markStateClean } from './state-guard.js';
import { DecodedEntries, fetchMessages, type QueueRef, type StoredMessage } from './reads.js';
import { type FilteredRead, readMatching } from './filtered-reads.js';
import type { MessageFilter } from '../filter/index.js';
import { applyGrowTopic, type GrowTopicResult, type PendingGrowth, routeChangedMessage, unfinishedGrowth } from './topic-growth.js';
import { EntryPlacer, isDelayed, NO_NAMES, type PlacedItem, placedItems, producePlacedItems, producesTimestampMs, type RunningQueue, sharedRunNames } from './placement.js';
import { collectGarbage, retainedRecordBytes, retainedFromIndex, truncateBelow } from './retention.js';
import { applyLockCommand, type LockApplyResult } from './queue-locks.js';
import { applyAck, applyChangeInvisibleDuration, applyReceive, exhaustedDeliveries, nextVisibleAtMs, receivable, resetReceiveCursor, type SimpleApplyResult } from './simple-consumer.js';
import { applyTxChecked, applyTxEnd, applyTxHalf, dueTransactions, type EndedTransaction, endedTransaction, listTransactions, type OpenTransaction, openTransaction, type TxApplyResult } from './transactions.js';
import { type BrokerSnapshot, DEFAULT_SNAPSHOT_CHUNK_BYTES, decodeSnapshot, RESTORING_META, restoreState, snapshotChunks } from './snapshot.js';

export type { BrokerSnapshot } from './snapshot.js';

export type { StoredMessage } from './reads.js';

/** The committed log, as the log store exposes it. */
export interface CommittedLogReader {
  /**
   * Committed entries with index in [lo, hiExclusive), in index order, starting exactly at lo.
   * Stops before the entry that would take the sum of entryBytes() past maxBytes, but returns
   * at least the entry at lo when lo < hiExclusive. Throws if an index asked for is not
   * committed or no longer stored. Entries are never mutated after they are returned.
   */
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[];
}

export interface BrokerStateMachineOptions {
  /** lmdb environment directory (created if missing). */
  dir: string;
  log: CommittedLogReader;
  /** Producers tracked for dedup; must be the same on every node (it changes apply results). */
  maxProducers?: number;
  /** Outcomes kept per producer for answering retries; same on every node. */
  dedupWindowPerProducer?: number;
  /**
   * Records applied but not yet written to lmdb before a write (store.ts); 0 writes every
   * apply() through. More means fewer lmdb commits and more log to replay after a crash.
   */
  maxBufferedRecords?: number;
  /**
   * Forgotten messages (retention) deleted per apply() call at least; each call also deletes
   * GARBAGE_PER_PLACED_MESSAGE per message it placed. Any value gives the same replicated state.
   */
  minGarbagePerApply?: number;
  logger?: Logger;
}

export const STATE_MACHINE_DEFAULTS = Object.freeze({ maxProducers: 10_000, dedupWindowPerProducer: 8 });

export const STATE_MACHINE_LIMITS = Object.freeze({
  applyEntriesMax: 10_000,
  maxProducersMax: 1_000_000,
  dedupWindowPerProducerMax: 1024,
  // Reads serve pulls and whole-queue reads inside the broker: at least what a pull may ask.
  readMessagesMax: 4096,
  readBytesMax: 64 * 1024 * 1024,
  keyLookupMax: LIMITS.maxLookupMessages,
  topicsListMax: 100_000,
  groupsListMax: 100_000,
  /** Offsets rows listed for one group (queues it committed on). */
  groupQueuesListMax: 100_000,
  /** Resent marks counted for one group's `dlq.resent`. */
  dlqResentCountMax: 1_000_000,
  /** Dead letters looked at per dlqResend (for ones not yet resent). */
  dlqScanMax: 100_000,
  /** Open transactions a txList answers with. */
  transactionsListMax: 10_000,
});

/** Timer records read per range call while collecting due messages (bodies come with them). */
const TIMERS_PER_READ = 16;
/** sentBack records removed per range call when a commit moves past them. */
const SENT_BACK_PER_PAGE = 1024;
/** Entry data whose decoded messages reads keep (about twice that in memory, decoded). */
const MAX_DECODED_ENTRY_BYTES = 4 * 1024 * 1024;
const NO_POSITIONS: ReadonlySet<number> = new Set();

assert(STATE_MACHINE_LIMITS.readMessagesMax >= LIMITS.maxPullMessages, 'a pull the request check accepts is a read the state machine serves');
assert(STATE_MACHINE_LIMITS.readBytesMax >= LIMITS.maxPullBytes, 'a pull the request check accepts is a read the state machine serves');

/**
 * Bumped when the lmdb layout changes; open() deletes an older directory (its state is rebuilt
 * from the log) and refuses a newer one. 2: msgId index per copy, consume queue records carry
 * msgId and keys, unplaced marks (retention and snapshots). 3: timer index, sentBack and
 * dlqResent records, partial unplaced marks, delayed placements (offset null) in producer windows.
 * 4: simple consumer records (popCursor, popInflight, popDue, popRotation: simple-consumer.ts).
 * 5: transactions (half messages, check counts, remembered ends; transactions.ts).
 * 6: consume queue records carry the tag hash (tag filters); growth records (topic-growth.ts).
 * 7: the preferred leader set at run time (leadership.ts).
 * 8: consume queue units CONSUME_QUEUE_UNITS_PER_RECORD to a record (store.ts).
 * 9: msgseq records (an entry's one-message produces named name-N, name-(N+1), …), a unit's
 *    msgIdInRun a number for them; derived records only, so a snapshot of 8 still restores
 *    (OLDEST_RESTORABLE_SCHEMA_VERSION, snapshot.ts). The bump makes an older build refuse this
 *    state instead of misreading it.
 * 10: msgrun and msgseq records flat when their copies are placed in one topic (store.ts);
 *    derived records again, so snapshots of 8 and 9 still restore.
 * 11: consume queue records are bytes (consume-queue-codec.ts), not msgpack arrays; derived
 *    records, so snapshots of 8 to 10 still restore.
 * 12: a consume queue unit whose msgId or keys hold a lone surrogate keeps them exactly (WTF-8;
 *    11 wrote U+FFFD, which no longer named its index records); snapshots of 8 to 11 restore.
 */
export const SCHEMA_VERSION = 12;

/**
 * Forgotten messages deleted per apply() call at least (by default), and per message the call
 * placed: twice the rate messages arrive, so garbage left by a truncate drains under load.
 */
const DEFAULT_MIN_GARBAGE_PER_APPLY = 256;
const GARBAGE_PER_PLACED_MESSAGE = 2;

export type ProduceApplyResult =
  | { kind: 'produce'; placed: Placement[]; duplicate: boolean }
  | { kind: 'produce'; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT' | 'LMQ_ROUTE_CHANGED'; message: string }
  | { kind: 'produce'; error: 'LMQ_OUT_OF_ORDER'; message: string; expectedSeq: number };

export type ApplyResult =
  | { kind: 'noop' }
  | { kind: 'createTopic'; ok: true }
  | { kind: 'createTopic'; ok: false; error: 'LMQ_TOPIC_EXISTS'; message: string }
  | ProduceApplyResult
  /** One result per produce of the batch, in its order. */
  | { kind: 'produceBatch'; results: ProduceApplyResult[] }
  | { kind: 'commitOffsets' | 'resetOffsets'; ok: true }
  | { kind: 'commitOffsets' | 'resetOffsets'; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string }
  /** retainedFromIndex after the command (unchanged when firstIndex was not past it). */
  | { kind: 'truncateLog'; ok: true; retainedFromIndex: number }
  | { kind: 'truncateLog'; error: 'LMQ_BAD_INPUT'; message: string }
  /** delivered: timers placed now; skipped: named timers already delivered (a second proposal). */
  | { kind: 'deliverDue'; delivered: number; skipped: number }
  /** reconsumeTimes: the failed delivery's + 1 (the retry copy's; a dead letter's attempts). */
  | { kind: 'sendBack'; target: SendBackTarget; reconsumeTimes: number; deliverAtMs: number | null; duplicate: boolean }
  | { kind: 'sendBack'; error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string }
  /** resent: dead letters re-delivered now (those resent before are skipped). */
  | { kind: 'dlqResend'; resent: number }
  | LockApplyResult
  | SimpleApplyResult
  | TxApplyResult
  | GrowTopicResult
  | { kind: 'setPreferredLeader'; ok: true };

export interface GroupQueueLag {
  topic: string;
  queueId: number;
  committedOffset: number;
  nextOffset: number;
  /** nextOffset − committedOffset: messages stored but not yet consumed by the group. */
  lag: number;
}

type QueueProblem = { error: 'LMQ_TOPIC_NOT_FOUND' | 'LMQ_BAD_INPUT'; message: string };
type ProduceProblem = { error: QueueProblem['error'] | 'LMQ_ROUTE_CHANGED'; message: string };

export class BrokerStateMachine {
  private closed = false;
  /** A restore is replacing the state: nothing may apply or snapshot meanwhile. */
  private restoring = false;
  /** Forgotten records may be left to delete (retention.ts); false only when none are. */
  private garbagePending = true;
  /** Messages placed by the apply() call in progress (the garbage budget follows it). */
  private placedInCall = 0;
  /** Commands this node proposed, by their Entry.data, until applied (rememberProposal). */
  private readonly proposed = new WeakMap<Uint8Array, BrokerCommand>();
  /** Entries reads decoded lately (reads.ts): the queues of a topic share its entries. */
  private readonly decodedEntries = new DecodedEntries(MAX_DECODED_ENTRY_BYTES);

  private constructor(
    private readonly store: BrokerStore,
    private readonly log: CommittedLogReader,
    private readonly settings: ProducerSettings,
    private readonly logger: Logger | undefined,
    private readonly dir: string,
    private readonly durability: CommitDurability,
    private readonly minGarbagePerApply: number,
  ) {}

  /**
   * Opens (or creates) the state in options.dir. A state that may have been torn by an OS crash
   * is deleted first (state-guard.ts), so appliedIndex() is 0 and the node replays the log.
   */
  static open(options: BrokerStateMachineOptions): BrokerStateMachine {
    const settings = validateSettings(options);
    const durability = guardStateDir(options.dir, options.logger);
    const store = BrokerStore.open(options.dir, durability, options.maxBufferedRecords);
    try {
      checkOrRecordSettings(store, settings, options.dir, options.logger);
    } catch (error) {
      void store.close();
      throw error;
    }
    const minGarbagePerApply = options.minGarbagePerApply ?? DEFAULT_MIN_GARBAGE_PER_APPLY;
    assert(Number.isSafeInteger(minGarbagePerApply) && minGarbagePerApply >= 1, 'minGarbagePerApply must be a positive count');
    const machine = new BrokerStateMachine(store, options.log, settings, options.logger, options.dir, durability, minGarbagePerApply);
    options.logger?.info({ dir: options.dir, appliedIndex: machine.appliedIndex(), durability }, 'broker state opened');
    return machine;
  }

  /** Index of the last applied entry; 0 for a fresh (or deleted, to be rebuilt) state. */
  appliedIndex(): number {
    this.assertOpen();
    return this.store.getMeta('appliedIndex') ?? 0;
  }

  /**
   * Applies committed entries appliedIndex()+1 … in order, in one transaction: all or
   * nothing. One result per entry. A corrupt entry throws LMQ_CORRUPT_DATA and applies nothing
   * of this call (every node stops at the same entry; it is never skipped). What lmdb holds may
   * lag behind (see store.ts): after a crash, appliedIndex() is that of an earlier call.
   */
  apply(entries: readonly Entry[]): ApplyResult[] {
    this.assertOpen();
    assert(entries.length <= STATE_MACHINE_LIMITS.applyEntriesMax, () => `apply of ${entries.length} entries exceeds applyEntriesMax`);
    if (entries.length === 0) return [];
    assert(!this.restoring, 'apply during a snapshot restore');
    this.placedInCall = 0;
    const results = this.store.transaction(() => {
      let appliedIndex = this.store.getMeta('appliedIndex') ?? 0;
      const batchResults = entries.map((entry) => {
        assert(entry.index === appliedIndex + 1, () => `apply of entry ${entry.index} after applied index ${appliedIndex}`);
        const result = this.applyEntry(entry);
        appliedIndex = entry.index;
        return result;
      });
      this.store.putMeta('appliedIndex', appliedIndex);
      // Not part of the replicated state (see retention.ts): when it runs may differ per node.
      if (this.garbagePending) {
        const budget = this.minGarbagePerApply + GARBAGE_PER_PLACED_MESSAGE * this.placedInCall;
        this.garbagePending = collectGarbage(this.store, budget);
      }
      return batchResults;
    });
    assert(results.length === entries.length, 'one apply result per entry');
    return results;
  }

  /**
   * The leader proposed `data`, the encoding of `command` (the clean copy encodeCommand
   * encoded): when this very Entry.data comes to be applied, apply uses the command instead of
   * decoding it again. What it applies is the same: the command equals what decoding gives but
   * that its bodies may be Buffers (views of the request) rather than views of the entry, and
   * apply reads only their bytes. An entry read back from storage, or never applied (a lost
   * term), is decoded as any other; the map holds nothing the data does not keep alive.
   */
  rememberProposal(data: Uint8Array, command: BrokerCommand): void {
    // After close (a flush racing shutdown) the node refuses the proposal itself.
    if (!this.closed) this.proposed.set(data, command);
  }

  /**
   * Deletes up to about maxMessages forgotten messages' records now, e.g. when the node is idle
   * after a truncate (apply() also deletes some each call). Returns whether some may remain.
   */
  collectGarbage(maxMessages: number): boolean {
    this.assertOpen();
    assert(!this.restoring, 'garbage collection during a snapshot restore');
    if (!this.garbagePending) return false;
    this.garbagePending = this.store.transaction(() => collectGarbage(this.store, maxMessages));
    return this.garbagePending;
  }

  /** First log index the broker still needs (1 until a truncateLog is applied). */
  retainedFromIndex(): number {
    this.assertOpen();
    return retainedFromIndex(this.store);
  }

  private applyEntry(entry: Entry): ApplyResult {
    if (entry.type === EntryType.Noop) {
      assert(entry.data.byteLength === 0, () => `noop entry ${entry.index} carries data`);
      return { kind: 'noop' };
    }
    assert(entry.type === EntryType.Normal, () => `entry ${entry.index} has unknown type ${entry.type}`);
    const proposed = this.proposed.get(entry.data);
    if (proposed !== undefined) this.proposed.delete(entry.data);
    const command = proposed ?? decodeCommand(entry.data, entry.index);
    switch (command.kind) {
      case 'createTopic':
        return this.applyCreateTopic(command, entry.index);
      case 'growTopic':
        return applyGrowTopic(this.store, command, entry.index);
      case 'produce':
        return this.applyProduces([command], entry.index)[0]!;
      case 'produceBatch':
        return { kind: 'produceBatch', results: this.applyProduces(command.produces, entry.index) };
      case 'commitOffsets':
      case 'resetOffsets':
        return this.applyOffsets(command);
      case 'truncateLog':
        return this.applyTruncateLog(command.firstIndex, entry.index);
      case 'lockQueues':
      case 'unlockQueues':
        return applyLockCommand(this.store, command, (topic, queueId) => this.queueProblem(topic, queueId));
      case 'deliverDue':
        return this.applyDeliverDue(command, entry.index);
      case 'sendBack':
        return this.applySendBack(command, entry.index);
      case 'dlqResend':
        return this.applyDlqResend(command, entry.index);
      case 'receive':
        return this.applyReceive(command, entry.index);
      case 'ack':
        return applyAck(this.store, command);
      case 'changeInvisibleDuration':
        return applyChangeInvisibleDuration(this.store, command, entry.index);
      case 'txHalf':
        return applyTxHalf(this.store, command, entry.index, (topic, queueId) => this.queueProblem(topic, queueId));
      case 'txEnd':
        return this.applyTxEnd(command, entry.index);
      case 'txChecked':
        return applyTxChecked(this.store, command);
      case 'setPreferredLeader':
        this.store.putPreferredLeader(command.node);
        return { kind: 'setPreferredLeader', ok: true };
      default:
        return unreachable(command, 'broker command');
    }
  }

  private applyCreateTopic(command: Extract<BrokerCommand, { kind: 'createTopic' }>, logIndex: number): ApplyResult {
    const existing = this.store.getTopic(command.topic);
    if (existing !== undefined) {
      const message = `topic "${command.topic}" already exists with ${existing.queues} queues`;
      return { kind: 'createTopic', ok: false, error: 'LMQ_TOPIC_EXISTS', message };
    }
    this.store.putTopic(command.topic, { queues: command.queues, createdAtLogIndex: logIndex });
    for (let queueId = 0; queueId < command.queues; queueId++) {
      this.store.putQueue(command.topic, queueId, { minOffset: 0, nextOffset: 0 });
    }
    return { kind: 'createTopic', ok: true };
  }

  /**
   * Retention, replicated: see retention.ts. A firstIndex past the command's own entry is
   * refused (the log it would keep does not exist yet); one at or below retainedFromIndex
   * changes nothing.
   */
  private applyTruncateLog(firstIndex: number, logIndex: number): ApplyResult {
    if (firstIndex > logIndex) {
      const message = `truncateLog at log index ${logIndex} asks to keep the log from index ${firstIndex}, past its own entry`;
      return { kind: 'truncateLog', error: 'LMQ_BAD_INPUT', message };
    }
    if (firstIndex > retainedFromIndex(this.store)) {
      truncateBelow(this.store, firstIndex);
      this.garbagePending = true;
    }
    return { kind: 'truncateLog', ok: true, retainedFromIndex: retainedFromIndex(this.store) };
  }

  /**
   * Applies an entry's produces (one, or a produceBatch's) in order, each as if it were its own
   * entry; their placements share one pass. A rebuild from the log (snapshot.ts) must know which
   * of the entry's positions placed nothing: those of a refused or duplicate produce.
   */
  private applyProduces(produces: readonly ProduceCommand[], logIndex: number): ProduceApplyResult[] {
    const placing = this.placing(logIndex, producesTimestampMs(produces), sharedRunNames(produces));
    const skipped: number[] = [];
    let runStart = 0;
    const results = produces.map((produce) => {
      const result = this.produceResult(produce, logIndex, placing, runStart);
      if (!('placed' in result) || result.duplicate) for (let i = 0; i < produce.messages.length; i++) skipped.push(runStart + i);
      runStart += produce.messages.length;
      return result;
    });
    placing.finish();
    this.markSkipped(logIndex, skipped, runStart);
    return results;
  }

  private produceResult(command: ProduceCommand, logIndex: number, placing: EntryPlacing, runStart: number): ProduceApplyResult {
    if (command.seq === UNSEQUENCED) {
      // A one-way send (at most once): placed if its queues exist, nothing remembered.
      const problem = this.batchProblem(command, command.timestampMs);
      return outcomeResult(problem === undefined ? { seq: UNSEQUENCED, placed: this.placeProduce(command, logIndex, placing, runStart) } : { seq: UNSEQUENCED, ...problem }, false);
    }
    const check = checkSeq(this.store, command.producerId, command.seq, logIndex);
    switch (check.verdict) {
      case 'outOfOrder':
        return { kind: 'produce', error: 'LMQ_OUT_OF_ORDER', message: check.message, expectedSeq: check.expectedSeq };
      case 'duplicate':
        return check.original === undefined ? { kind: 'produce', placed: [], duplicate: true } : outcomeResult(check.original, true);
      case 'apply': {
        const problem = this.batchProblem(command, command.timestampMs);
        const outcome: ProduceOutcome =
          problem === undefined ? { seq: command.seq, placed: this.placeProduce(command, logIndex, placing, runStart) } : { seq: command.seq, ...problem };
        const evicted = recordOutcome(this.store, this.settings, command.producerId, check.producer, outcome, logIndex);
        if (evicted !== undefined) this.logger?.debug({ evicted, logIndex }, 'producer evicted from dedup state');
        return outcomeResult(outcome, false);
      }
      default:
        return unreachable(check, 'seq verdict');
    }
  }

  /**
   * A batch is all-or-nothing: the first message naming a missing topic or queue, or due more
   * than maxDelayMs after the command's time (the leader checked it too), refuses it; so does a
   * topic that has grown past the queue count the producer routed over.
   */
  private batchProblem(command: ProduceCommand, timestampMs: number): ProduceProblem | undefined {
    // The topic is looked up once per run of messages naming it (a batch's messages mostly
    // share one): its queue count then checks each message's queue.
    let topic: string | undefined;
    let queues = 0;
    for (const message of command.messages) {
      if (message.topic !== topic) {
        const record = this.store.getTopic(message.topic);
        if (record === undefined || message.queueId >= record.queues) return this.queueProblem(message.topic, message.queueId);
        const problem = routeProblem(message.topic, record.queues, command.routedQueues);
        if (problem !== undefined) return problem;
        topic = message.topic;
        queues = record.queues;
      } else if (message.queueId >= queues) {
        return this.queueProblem(message.topic, message.queueId);
      }
      if (message.deliverAtMs !== undefined && message.deliverAtMs - timestampMs > LIMITS.maxDelayMs) {
        return { error: 'LMQ_BAD_INPUT', message: `message ${message.msgId} is due ${message.deliverAtMs - timestampMs} ms after it was sent, more than maxDelayMs ${LIMITS.maxDelayMs} (40 days)` };
      }
    }
    return undefined;
  }

  private queueProblem(topic: string, queueId: number): QueueProblem | undefined {
    const record = this.store.getTopic(topic);
    if (record === undefined) {
      return { error: 'LMQ_TOPIC_NOT_FOUND', message: `topic "${topic}" does not exist; create it with \`ledgermq topic create ${topic} --queues N\`` };
    }
    if (queueId >= record.queues) {
      return { error: 'LMQ_BAD_INPUT', message: `queue ${queueId} does not exist: topic "${topic}" has ${record.queues} queues (0 to ${record.queues - 1})` };
    }
    return undefined;
  }

  /**
   * Places a produce's messages that are due (placedItems), at the entry's positions from
   * runStart, and parks the delayed ones in the timer index: their placements have offset null
   * and their deliverAtMs.
   */
  private placeProduce(command: ProduceCommand, logIndex: number, placing: EntryPlacing, runStart: number): Placement[] {
    const items = producePlacedItems(command, runStart, NO_POSITIONS);
    const placed = placing.place(items);
    if (items.length === command.messages.length) return placed; // none delayed: placements in message order
    const byPosition = new Map(items.map((item, i) => [item.batchPos, placed[i]!]));
    return command.messages.map((message, i): Placement => {
      const position = runStart + i;
      const now = byPosition.get(position);
      if (now !== undefined) return now;
      assert(message.deliverAtMs !== undefined, 'an unplaced produce message is a delayed one');
      this.store.putTimer({ deliverAtMs: message.deliverAtMs, logIndex, position }, message);
      return { msgId: message.msgId, queueId: message.queueId, offset: null, deliverAtMs: message.deliverAtMs };
    });
  }

  /** Appends each item to its consume queue (dense offsets, log order) and indexes it: an entry placed at once. */
  private place(items: readonly PlacedItem[], logIndex: number, timestampMs: number): { msgId: string; queueId: number; offset: number }[] {
    const placing = this.placing(logIndex, timestampMs);
    const placed = placing.place(items);
    placing.finish();
    return placed;
  }

  /**
   * An entry's placements, in one or more place() calls and then finish(), which writes the
   * queues' records. Its store time is fixed at its first placed message; an entry that places
   * nothing leaves the store time alone (a rebuild follows the same rule).
   */
  private placing(logIndex: number, timestampMs: number, sharedRunNamesOfEntry: ReadonlySet<string> = NO_NAMES): EntryPlacing {
    let placer: EntryPlacer | undefined;
    // By topic, then queueId (no key string built per message); `used` in first-use order, for finish().
    const queues = new Map<string, (RunningQueue & { minOffset: number })[]>();
    const used: (RunningQueue & { minOffset: number })[] = [];
    const start = (): EntryPlacer => {
      // Store time never goes backwards along the log (leaders' clocks may disagree), so every
      // queue is sorted by store time and offsetForTimestamp can binary-search it.
      const storeTimestampMs = Math.max(timestampMs, this.store.getMeta('lastStoreTimestampMs') ?? 0);
      this.store.putMeta('lastStoreTimestampMs', storeTimestampMs);
      return new EntryPlacer(this.store, logIndex, storeTimestampMs, sharedRunNamesOfEntry, (topic, queueId) => {
        let ofTopic = queues.get(topic);
        if (ofTopic === undefined) queues.set(topic, (ofTopic = []));
        let running = ofTopic[queueId];
        if (running === undefined) {
          const queue = this.store.getQueue(topic, queueId);
          assert(queue !== undefined, () => `checked queue ${topic}/${queueId} is missing`);
          running = { topic, queueId, minOffset: queue.minOffset, nextOffset: queue.nextOffset };
          ofTopic[queueId] = running;
          used.push(running);
        }
        return running;
      });
    };
    return {
      place: (items) => {
        if (items.length === 0) return [];
        placer ??= start();
        const placed = placer.place(items);
        this.placedInCall += placed.length;
        return placed;
      },
      finish: () => {
        placer?.finish();
        for (const { topic, queueId, minOffset, nextOffset } of used) this.store.putQueue(topic, queueId, { minOffset, nextOffset });
      },
    };
  }

  /**
   * commitOffsets moves an offset forward only (a stale commit after a rebalance cannot rewind
   * the group) and clamps it to the queue's [minOffset, nextOffset]: a consumer cannot have
   * consumed what is not stored. resetOffsets sets the clamped offset, backwards too. A command
   * naming a missing topic or queue changes nothing.
   */
  private applyOffsets(command: Extract<BrokerCommand, { kind: 'commitOffsets' | 'resetOffsets' }>): ApplyResult {
    for (const position of command.offsets) {
      const problem = this.queueProblem(position.topic, position.queueId);
      if (problem !== undefined) return { kind: command.kind, ...problem };
    }
    // One look per command, so a commit of a group that never sent back costs no range per queue.
    const sentBack = this.store.hasSentBack(command.group);
    for (const position of command.offsets) {
      const queue = this.store.getQueue(position.topic, position.queueId);
      assert(queue !== undefined, 'checked queue is missing');
      const clamped = Math.min(Math.max(position.offset, queue.minOffset), queue.nextOffset);
      const current = this.store.getOffset(command.group, position.topic, position.queueId);
      const next = command.kind === 'commitOffsets' && current !== undefined ? Math.max(current, clamped) : clamped;
      this.store.putOffset(command.group, position.topic, position.queueId, next);
      // A simple consumer of the group starts the queue over there too (simple-consumer.ts).
      if (command.kind === 'resetOffsets') resetReceiveCursor(this.store, command.group, position.topic, position.queueId, next);
      // The sentBack records of what the group finished go (they stay bounded by what is in
      // flight); a reset starts the queue over, so all of its records go.
      const below = command.kind === 'commitOffsets' ? next : Number.MAX_SAFE_INTEGER;
      while (sentBack && this.store.removeSentBackBelow(command.group, position.topic, position.queueId, below, SENT_BACK_PER_PAGE) === SENT_BACK_PER_PAGE);
    }
    return { kind: command.kind, ok: true };
  }

  /** Places each named message whose timer record still exists; skips (and records) the others. */
  private applyDeliverDue(command: Extract<BrokerCommand, { kind: 'deliverDue' }>, logIndex: number): ApplyResult {
    const skipped: number[] = [];
    command.messages.forEach(({ timer, message }, position) => {
      const parked = this.store.getTimer(timer);
      if (parked === undefined) {
        skipped.push(position);
        return;
      }
      assert(parked.msgId === message.msgId && parked.topic === message.topic && parked.queueId === message.queueId, () => `deliverDue at ${logIndex} names timer ${JSON.stringify(timer)} with another message`);
      assert(parked.body.byteLength === message.body.byteLength, () => `deliverDue at ${logIndex} carries another body than its timer's`);
      this.store.removeTimer(timer);
    });
    const items = placedItems(command, new Set(skipped));
    for (const { message } of items) assert(this.queueProblem(message.topic, message.queueId) === undefined, 'a delayed message waits for a queue that exists');
    this.place(items, logIndex, command.timestampMs);
    this.markSkipped(logIndex, skipped, command.messages.length);
    return { kind: 'deliverDue', delivered: items.length, skipped: skipped.length };
  }

  /**
   * A failed delivery's copy: stored once per (group, queue, offset) — a repeat, or one the
   * group has already committed past (finished), is a duplicate that stores nothing.
   */
  private applySendBack(command: Extract<BrokerCommand, { kind: 'sendBack' }>, logIndex: number): ApplyResult {
    const { group, from, target, message } = command;
    const problem = this.queueProblem(from.topic, from.queueId);
    const known = this.store.getSentBack(group, from.topic, from.queueId, from.offset);
    const answer: SentBackRecord = known ?? {
      target,
      reconsumeTimes: message.deadLetter?.attempts ?? message.reconsumeTimes ?? 0,
      deliverAtMs: target === 'retry' ? (message.deliverAtMs ?? null) : null,
    };
    const committed = this.store.getOffset(group, from.topic, from.queueId);
    if (problem !== undefined || known !== undefined || (committed !== undefined && committed > from.offset)) {
      this.store.markUnplaced(logIndex);
      return problem !== undefined ? { kind: 'sendBack', ...problem } : { kind: 'sendBack', ...answer, duplicate: true };
    }
    this.ensureSystemTopic(message.topic, logIndex);
    this.store.putSentBack(group, from.topic, from.queueId, from.offset, answer);
    this.store.putGroup(group);
    if (isDelayed(message, command.timestampMs)) {
      assert(message.deliverAtMs !== undefined, 'a delayed copy has a due time');
      this.store.putTimer({ deliverAtMs: message.deliverAtMs, logIndex, position: 0 }, message);
    } else {
      this.place(placedItems(command, NO_POSITIONS), logIndex, command.timestampMs);
    }
    return { kind: 'sendBack', ...answer, duplicate: false };
  }

  /**
   * Places each dead letter's retry copy unless that dead letter was resent before (or is not
   * stored in the group's DLQ: nothing the leader read names such an offset).
   */
  private applyDlqResend(command: Extract<BrokerCommand, { kind: 'dlqResend' }>, logIndex: number): ApplyResult {
    const dlq = this.store.getQueue(dlqTopicOf(command.group), 0) ?? { minOffset: 0, nextOffset: 0 };
    const skipped: number[] = [];
    command.entries.forEach(({ dlqOffset }, position) => {
      const stored = dlqOffset >= dlq.minOffset && dlqOffset < dlq.nextOffset;
      if (!stored || this.store.isDlqResent(command.group, dlqOffset)) skipped.push(position);
      else this.store.markDlqResent(command.group, dlqOffset);
    });
    const items = placedItems(command, new Set(skipped));
    if (items.length > 0) this.ensureSystemTopic(items[0]!.message.topic, logIndex);
    this.place(items, logIndex, command.timestampMs);
    this.markSkipped(logIndex, skipped, command.entries.length);
    return { kind: 'dlqResend', resent: items.length };
  }

  /**
   * A simple consumer's receive (simple-consumer.ts chooses); the dead-letter copies of the
   * exhausted deliveries it accepted are placed in %DLQ%<group>, the others marked skipped.
   */
  private applyReceive(command: Extract<BrokerCommand, { kind: 'receive' }>, logIndex: number): ApplyResult {
    const problem = this.queueProblem(command.topic, 0);
    if (problem !== undefined) {
      if (command.deadLetters.length > 0) this.store.markUnplaced(logIndex);
      return { kind: 'receive', ...problem };
    }
    const { result, accepted } = applyReceive(this.store, command, logIndex, (refs) => fetchMessages(this.log, refs, this.decodedEntries));
    const taken = new Set(accepted);
    const skipped = command.deadLetters.map((_, position) => position).filter((position) => !taken.has(position));
    if (accepted.length > 0) {
      this.ensureSystemTopic(dlqTopicOf(command.group), logIndex);
      this.store.putGroup(command.group);
    }
    if (command.deadLetters.length === 0) return result;
    this.place(placedItems(command, new Set(skipped)), logIndex, command.timestampMs);
    this.markSkipped(logIndex, skipped, command.deadLetters.length);
    return result;
  }

  /**
   * A transaction's end (transactions.ts): a commit places its messages at this entry. An end
   * that carried messages and placed none (a repeat, stale, unknown) is marked unplaced, so a
   * rebuild from the log (snapshot.ts) skips it too.
   */
  private applyTxEnd(command: Extract<BrokerCommand, { kind: 'txEnd' }>, logIndex: number): ApplyResult {
    const result = applyTxEnd(this.store, command, logIndex, (items) => {
      for (const { message } of items) assert(this.queueProblem(message.topic, message.queueId) === undefined, 'a half message waits for a queue that exists');
      return this.place(items, logIndex, command.timestampMs);
    });
    if (command.messages.length > 0 && !('placed' in result && result.placed.length > 0)) this.store.markUnplaced(logIndex);
    return result;
  }

  /** A group's %RETRY% or %DLQ% topic (one queue) appears with the first message it holds. */
  private ensureSystemTopic(topic: string, logIndex: number): void {
    if (this.store.getTopic(topic) !== undefined) return;
    this.store.putTopic(topic, { queues: 1, createdAtLogIndex: logIndex });
    this.store.putQueue(topic, 0, { minOffset: 0, nextOffset: 0 });
  }

  /** A rebuild from the log (snapshot.ts) must know which positions of an entry placed nothing. */
  private markSkipped(logIndex: number, skipped: readonly number[], total: number): void {
    if (skipped.length === total) this.store.markUnplaced(logIndex);
    else if (skipped.length > 0) this.store.markUnplaced(logIndex, skipped);
  }

  // --- queries: pure reads of lmdb and the log --------------------------------------------------

  /** The preferred leader set at run time (null: none), or undefined when never set (the config's applies). */
  preferredLeader(): string | null | undefined {
    this.assertOpen();
    return this.store.getPreferredLeader();
  }

  topics(): { topic: string; queues: number }[] {
    this.assertOpen();
    return this.store.listTopics(STATE_MACHINE_LIMITS.topicsListMax).map(({ topic, record }) => ({ topic, queues: record.queues }));
  }

  topic(name: string): { queues: number } | undefined {
    this.assertOpen();
    const record = this.store.getTopic(name);
    return record === undefined ? undefined : { queues: record.queues };
  }

  /** The topic's last growth while some group has not consumed an old queue up to it (topic-growth.ts). */
  topicGrowth(topic: string): PendingGrowth | undefined {
    this.assertOpen();
    return unfinishedGrowth(this.store, topic);
  }

  /** Throws LMQ_TOPIC_NOT_FOUND / LMQ_BAD_INPUT for a missing topic or queue. */
  queueRange(topic: string, queueId: number): { minOffset: number; nextOffset: number } {
    this.assertOpen();
    const queue = this.requireQueue(topic, queueId);
    return { minOffset: queue.minOffset, nextOffset: queue.nextOffset };
  }

  /** Messages of one queue from fromOffset (or minOffset, when fromOffset is no longer stored): see readFrom. */
  read(topic: string, queueId: number, fromOffset: number, maxMessages: number, maxBytes: number): StoredMessage[] {
    return this.readFrom(topic, queueId, fromOffset, maxMessages, maxBytes).messages;
  }

  /**
   * Messages of one queue from startOffset, in offset order: at most maxMessages, and bodies
   * totalling at most maxBytes — except that the first message is returned even when it alone
   * is larger, so a large message cannot wedge a queue. Empty at or past nextOffset.
   * startOffset is fromOffset, or minOffset when retention deleted fromOffset: a consumer that
   * fell behind retention moves on (as RocketMQ's does) instead of failing each pull.
   */
  readFrom(topic: string, queueId: number, fromOffset: number, maxMessages: number, maxBytes: number): { startOffset: number; messages: StoredMessage[] } {
    this.assertOpen();
    checkArgument(fromOffset, 'fromOffset', 0, Number.MAX_SAFE_INTEGER);
    checkArgument(maxMessages, 'maxMessages', 1, STATE_MACHINE_LIMITS.readMessagesMax);
    checkArgument(maxBytes, 'maxBytes', 1, STATE_MACHINE_LIMITS.readBytesMax);
    const queue = this.requireQueue(topic, queueId);
    const startOffset = Math.max(fromOffset, queue.minOffset);
    const refs: QueueRef[] = [];
    let bytes = 0;
    for (let offset = startOffset; offset < queue.nextOffset && refs.length < maxMessages; offset++) {
      const at = this.store.getConsumeQueue(topic, queueId, offset);
      assert(at !== undefined, () => `consume queue ${topic}/${queueId} has a hole at ${offset}`);
      if (refs.length > 0 && bytes + at.bodyBytes > maxBytes) break;
      bytes += at.bodyBytes;
      refs.push({ topic, queueId, offset, at });
    }
    const messages = fetchMessages(this.log, refs, this.decodedEntries);
    assert(messages.length === 0 || messages[0]!.offset === startOffset, 'a read starts at its start offset');
    return { startOffset, messages };
  }

  /**
   * readFrom with a subscription's filter (filtered-reads.ts): only matching messages, the
   * others skipped (by their consume queue record's tag hash where it tells); nextBeginOffset
   * is past everything looked at. The scan is bounded by LIMITS.maxPullScanRecords and bytes.
   */
  readMatching(topic: string, queueId: number, fromOffset: number, maxMessages: number, maxBytes: number, filter: MessageFilter): FilteredRead {
    this.assertOpen();
    checkArgument(fromOffset, 'fromOffset', 0, Number.MAX_SAFE_INTEGER);
    checkArgument(maxMessages, 'maxMessages', 1, STATE_MACHINE_LIMITS.readMessagesMax);
    checkArgument(maxBytes, 'maxBytes', 1, STATE_MACHINE_LIMITS.readBytesMax);
    const queue = this.requireQueue(topic, queueId);
    return readMatching(this.store, this.log, { topic, queueId, queue }, fromOffset, { maxMessages, maxBytes }, filter, this.decodedEntries);
  }

  /** The last seq applied for a producer; 0 when the broker does not track it (it must start at 1). */
  producerLastSeq(producerId: string): number {
    this.assertOpen();
    return this.store.getProducer(producerId)?.lastSeq ?? 0;
  }

  /** The group's next offset; one below minOffset (retention passed it) counts as minOffset. */
  committedOffset(group: string, topic: string, queueId: number): number | undefined {
    this.assertOpen();
    const offset = this.store.getOffset(group, topic, queueId);
    if (offset === undefined) return undefined;
    const queue = this.store.getQueue(topic, queueId);
    assert(queue !== undefined, () => `group ${group} has an offset on missing queue ${topic}/${queueId}`);
    return Math.max(offset, queue.minOffset);
  }

  /** Groups that ever committed an offset, by name. */
  groups(): string[] {
    this.assertOpen();
    return this.store.listGroups(STATE_MACHINE_LIMITS.groupsListMax);
  }

  /** Per queue the group committed on: committed offset (at least minOffset), queue end and lag. */
  groupLag(group: string): GroupQueueLag[] {
    this.assertOpen();
    return this.store.listOffsets(group, STATE_MACHINE_LIMITS.groupQueuesListMax).map(({ topic, queueId, offset }) => {
      const queue = this.store.getQueue(topic, queueId);
      assert(queue !== undefined, () => `group ${group} has an offset on missing queue ${topic}/${queueId}`);
      assert(offset <= queue.nextOffset, () => `group ${group} committed past the end of ${topic}/${queueId}`);
      const committedOffset = Math.max(offset, queue.minOffset);
      return { topic, queueId, committedOffset, nextOffset: queue.nextOffset, lag: queue.nextOffset - committedOffset };
    });
  }

  /** When the message at (topic, queueId, offset) was stored (the leader's clock); offset must be stored (minOffset <= offset < nextOffset). */
  storeTimestampAt(topic: string, queueId: number, offset: number): number {
    this.assertOpen();
    const queue = this.requireQueue(topic, queueId);
    assert(offset >= queue.minOffset && offset < queue.nextOffset, () => `offset ${offset} of ${topic}/${queueId} is not stored`);
    return this.consumeQueueAt(topic, queueId, offset).storeTimestampMs;
  }

  /** Messages of `topic` carrying `key`, oldest (log order) first, at most max. */
  lookupByKey(topic: string, key: string, max: number): StoredMessage[] {
    this.assertOpen();
    checkArgument(max, 'max', 1, STATE_MACHINE_LIMITS.keyLookupMax);
    if (this.store.getTopic(topic) === undefined) throw topicNotFound(topic);
    const refs = this.store.listByKey(topic, key, retainedFromIndex(this.store), max).map(({ queueId, offset }): QueueRef => ({ topic, queueId, offset, at: this.consumeQueueAt(topic, queueId, offset) }));
    return fetchMessages(this.log, refs, this.decodedEntries);
  }

  /** The oldest copy still retained of the message with this msgId. */
  lookupByMsgId(msgId: string): StoredMessage | undefined {
    this.assertOpen();
    const position = this.store.firstMsgId(msgId, retainedFromIndex(this.store));
    if (position === undefined) return undefined;
    const at = this.consumeQueueAt(position.topic, position.queueId, position.offset);
    const [message] = fetchMessages(this.log, [{ ...position, at }], this.decodedEntries);
    assert(message !== undefined && message.msgId === msgId, 'msgId index points at another message');
    return message;
  }

  /**
   * Timers due at or before dueByMs, in due order (then log order): at most maxMessages, and
   * bodies totalling at most maxBytes but for the first. What the scheduler proposes.
   */
  dueTimers(dueByMs: number, maxMessages: number, maxBytes: number): DueMessage[] {
    this.assertOpen();
    checkArgument(dueByMs, 'dueByMs', 0, Number.MAX_SAFE_INTEGER);
    checkArgument(maxMessages, 'maxMessages', 1, LIMITS.maxMessagesPerProduce);
    const due: DueMessage[] = [];
    let bytes = 0;
    for (;;) {
      // Small pages: each timer record holds its message's body.
      const page = this.store.listDueTimers(dueByMs, due.at(-1)?.timer, Math.min(TIMERS_PER_READ, maxMessages - due.length));
      for (const found of page) {
        if (due.length > 0 && bytes + found.message.body.byteLength > maxBytes) return due;
        bytes += found.message.body.byteLength;
        due.push(found);
      }
      if (page.length < TIMERS_PER_READ || due.length === maxMessages) return due;
    }
  }

  /** Whether a simple consumer's receive at nowMs would hand out or dead-letter something (the leader's look before proposing). */
  receivable(group: string, topic: string, nowMs: number, fifo = false): boolean {
    this.assertOpen();
    if (this.store.getTopic(topic) === undefined) throw topicNotFound(topic);
    return receivable(this.store, group, topic, nowMs, fifo);
  }

  /** When the group's earliest in-flight message of topic becomes visible again (undefined: none in flight). */
  nextVisibleAtMs(group: string, topic: string): number | undefined {
    this.assertOpen();
    return nextVisibleAtMs(this.store, group, topic);
  }

  /**
   * Expired deliveries at nowMs that may not be handed out again, with their stored messages
   * (for their dead-letter copies): at most max, bodies at most maxBytes but for the first.
   */
  exhaustedDeliveries(group: string, topic: string, nowMs: number, maxDeliveryAttempts: number, max: number, maxBytes: number): { delivery: DeliveryRef; attempt: number; message: StoredMessage }[] {
    this.assertOpen();
    const found = exhaustedDeliveries(this.store, group, topic, nowMs, maxDeliveryAttempts, max);
    const refs: QueueRef[] = [];
    let bytes = 0;
    for (const { topic: t, queueId, offset } of found) {
      const at = this.consumeQueueAt(t, queueId, offset);
      if (refs.length > 0 && bytes + at.bodyBytes > maxBytes) break;
      bytes += at.bodyBytes;
      refs.push({ topic: t, queueId, offset, at });
    }
    const messages = fetchMessages(this.log, refs, this.decodedEntries);
    return messages.map((message, i) => {
      const { attempt, ...delivery } = found[i]!;
      return { delivery, attempt, message };
    });
  }

  /** The open transaction txId with its half messages, or undefined (never begun, or ended). */
  openTransaction(txId: string): OpenTransaction | undefined {
    this.assertOpen();
    return openTransaction(this.store, txId);
  }

  /** How transaction txId ended, while the broker remembers it (transactions.ts). */
  transactionOutcome(txId: string): EndedTransaction | undefined {
    this.assertOpen();
    return endedTransaction(this.store, txId);
  }

  /** Open transactions due for a check-back at nowMs, in due order: what the leader's check service works on. */
  dueTransactions(nowMs: number, max: number): TxSummary[] {
    this.assertOpen();
    checkArgument(nowMs, 'nowMs', 0, Number.MAX_SAFE_INTEGER);
    return dueTransactions(this.store, nowMs, max);
  }

  /** Open transactions, oldest first, at most STATE_MACHINE_LIMITS.transactionsListMax. */
  transactions(): TxSummary[] {
    this.assertOpen();
    return listTransactions(this.store, STATE_MACHINE_LIMITS.transactionsListMax);
  }

  /** The group's dead letters from fromOffset (or the DLQ's minOffset), at most max. */
  deadLetters(group: string, fromOffset: number, max: number): { deadLetters: DeadLetter[]; nextOffset: number } {
    this.assertOpen();
    const topic = dlqTopicOf(group);
    if (this.store.getTopic(topic) === undefined) return { deadLetters: [], nextOffset: 0 };
    const { startOffset, messages } = this.readFrom(topic, 0, fromOffset, max, LIMITS.maxPullBytes);
    const deadLetters = messages.map((message) => deadLetterOf(message, this.store.isDlqResent(group, message.offset)));
    return { deadLetters, nextOffset: startOffset + messages.length };
  }

  /**
   * Dead letters of the group not yet resent (only those with msgId, when given), oldest first:
   * at most max, bodies at most maxBytes but for the first. What a dlqResend re-delivers.
   */
  pendingDeadLetters(group: string, msgId: string | undefined, max: number, maxBytes: number): StoredMessage[] {
    this.assertOpen();
    const topic = dlqTopicOf(group);
    const queue = this.store.getQueue(topic, 0);
    if (queue === undefined) return [];
    const refs: QueueRef[] = [];
    let bytes = 0;
    // The consume queue record names the msgId: only the chosen ones are read from the log.
    const end = Math.min(queue.nextOffset, queue.minOffset + STATE_MACHINE_LIMITS.dlqScanMax);
    for (let offset = queue.minOffset; offset < end && refs.length < max; offset++) {
      const at = this.consumeQueueAt(topic, 0, offset);
      if ((msgId !== undefined && at.msgId !== msgId) || this.store.isDlqResent(group, offset)) continue;
      if (refs.length > 0 && bytes + at.bodyBytes > maxBytes) break;
      bytes += at.bodyBytes;
      refs.push({ topic, queueId: 0, offset, at });
    }
    return fetchMessages(this.log, refs, this.decodedEntries);
  }

  /** The group's dead letters stored (resent ones included) and how many of them were resent. */
  deadLetterCounts(group: string): { messages: number; resent: number } {
    this.assertOpen();
    const queue = this.store.getQueue(dlqTopicOf(group), 0);
    if (queue === undefined) return { messages: 0, resent: 0 };
    return { messages: queue.nextOffset - queue.minOffset, resent: this.store.countDlqResent(group, queue.minOffset, STATE_MACHINE_LIMITS.dlqResentCountMax) };
  }

  /** First offset whose store time is >= timestampMs; nextOffset when there is none. */
  offsetForTimestamp(topic: string, queueId: number, timestampMs: number): number {
    this.assertOpen();
    checkArgument(timestampMs, 'timestampMs', 0, Number.MAX_SAFE_INTEGER);
    const queue = this.requireQueue(topic, queueId);
    let lo = queue.minOffset;
    let hi = queue.nextOffset;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (this.consumeQueueAt(topic, queueId, mid).storeTimestampMs >= timestampMs) hi = mid;
      else lo = mid + 1;
    }
    assert(lo >= queue.minOffset && lo <= queue.nextOffset, 'binary search left the queue');
    return lo;
  }

  /**
   * Captures the non-derived state at appliedIndex() (snapshot.ts) and encodes it as it is
   * read: call between applies; applies may go on while the chunks are consumed. The call
   * itself writes the buffered records to lmdb (at most maxBufferedRecords: about a
   * millisecond) and opens an lmdb read transaction, which the chunks read.
   */
  beginSnapshot(maxChunkBytes: number = DEFAULT_SNAPSHOT_CHUNK_BYTES): BrokerSnapshot {
    this.assertOpen();
    assert(!this.restoring, 'snapshot during a snapshot restore');
    const index = this.appliedIndex();
    const fromIndex = retainedFromIndex(this.store);
    const view = this.store.readView();
    let started = false;
    return {
      index,
      retainedFromIndex: fromIndex,
      chunks: () => {
        assert(!started, 'snapshot chunks are read once');
        started = true;
        return snapshotChunks(view, index, fromIndex, maxChunkBytes);
      },
      abort: () => {
        if (!started) view.done();
        started = true;
      },
    };
  }

  /**
   * Replaces the whole state with the snapshot's (the payload is every chunk of a
   * beginSnapshot(), concatenated) and rebuilds the consume queues and key/msgId indexes from
   * `log`, which must hold at least the entries [its retainedFromIndex .. index]; afterwards
   * appliedIndex() === index. A payload of another format version, or one that does not
   * validate, is LMQ_CORRUPT_DATA and changes nothing (LMQ_BAD_CONFIG if it was taken under
   * other settings). A log that disagrees with it is LMQ_CORRUPT_DATA after the state was
   * cleared: the state is then empty (appliedIndex() 0). No apply may run meanwhile; the
   * restore yields to the event loop between steps. A crash part way leaves a state that the
   * next open() deletes.
   */
  /** Why `payload` is not a snapshot this machine can restore at `index` (decoded in full, nothing changed), or null. */
  async snapshotProblem(index: number, payload: Uint8Array): Promise<string | null> {
    try {
      await decodeSnapshot(payload, index, { schemaVersion: SCHEMA_VERSION, ...this.settings });
      return null;
    } catch (error) {
      if (isLmqError(error, 'LMQ_CORRUPT_DATA')) return error.message;
      throw error;
    }
  }

  async restoreSnapshot(index: number, payload: Uint8Array, log: CommittedLogReader): Promise<void> {
    this.assertOpen();
    assert(Number.isSafeInteger(index) && index >= 1, 'a snapshot is of a positive index');
    assert(!this.restoring, 'restores do not overlap');
    this.restoring = true;
    this.decodedEntries.clear();
    try {
      await restoreState(this.store, payload, index, log, { schemaVersion: SCHEMA_VERSION, ...this.settings });
    } catch (error) {
      if (this.store.getMeta(RESTORING_META) !== undefined) {
        this.store.clear();
        recordSettings(this.store, this.settings);
      }
      throw error;
    } finally {
      this.restoring = false;
    }
    this.garbagePending = false;
    assert(this.appliedIndex() === index, 'restored state is at the snapshot index');
    this.logger?.info({ index, retainedFromIndex: this.retainedFromIndex() }, 'broker state restored from a snapshot');
  }

  /**
   * SHA-256 over the whole state but the forgotten records not yet deleted (retention.ts):
   * replicas at one appliedIndex must report the same digest, whenever each deleted them.
   */
  stateDigest(): string {
    this.assertOpen();
    const fromIndex = retainedFromIndex(this.store);
    return this.store.digest((key, bytes) => retainedRecordBytes(this.store, key, bytes, fromIndex));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.decodedEntries.clear();
    await this.store.close();
    markStateClean(this.dir, this.durability);
  }

  private requireQueue(topic: string, queueId: number): QueueRecord {
    const problem = this.queueProblem(topic, queueId);
    if (problem !== undefined) throw new LmqError(problem.error, problem.message, { topic, queueId });
    const queue = this.store.getQueue(topic, queueId);
    assert(queue !== undefined, () => `topic ${topic} lacks queue ${queueId}`);
    return queue;
  }

  private consumeQueueAt(topic: string, queueId: number, offset: number): ConsumeQueueRecord {
    const at = this.store.getConsumeQueue(topic, queueId, offset);
    assert(at !== undefined, () => `consume queue ${topic}/${queueId} lacks indexed offset ${offset}`);
    return at;
  }

  private assertOpen(): void {
    assert(!this.closed, 'broker state machine used after close');
  }
}

/** A dead-letter copy as dlqList answers it: the original's position, the failure, resent. */
function deadLetterOf(message: StoredMessage, resent: boolean): DeadLetter {
  const { origin, deadLetter } = message;
  assert(origin !== undefined && deadLetter !== undefined, () => `DLQ message at ${message.offset} is not a dead-letter copy`);
  return { msgId: message.msgId, topic: origin.topic, queue: origin.queueId, offset: origin.offset, ...deadLetter, dlqOffset: message.offset, resent };
}

/** An entry's placements under way (BrokerStateMachine.placing). */
interface EntryPlacing {
  place(items: readonly PlacedItem[]): { msgId: string; queueId: number; offset: number }[];
  finish(): void;
}

function outcomeResult(outcome: ProduceOutcome, duplicate: boolean): ProduceApplyResult {
  if ('placed' in outcome) return { kind: 'produce', placed: outcome.placed, duplicate };
  return { kind: 'produce', error: outcome.error, message: outcome.message };
}

function topicNotFound(topic: string): LmqError {
  return new LmqError('LMQ_TOPIC_NOT_FOUND', `topic "${topic}" does not exist; create it with \`ledgermq topic create ${topic} --queues N\``, { topic });
}

function checkArgument(value: number, name: string, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new LmqError('LMQ_BAD_INPUT', `${name} must be a whole number from ${min} to ${max}, not ${value}`);
  }
}

function validateSettings(options: BrokerStateMachineOptions): ProducerSettings {
  const settings = {
    maxProducers: options.maxProducers ?? STATE_MACHINE_DEFAULTS.maxProducers,
    dedupWindowPerProducer: options.dedupWindowPerProducer ?? STATE_MACHINE_DEFAULTS.dedupWindowPerProducer,
  };
  const bounds = { maxProducers: STATE_MACHINE_LIMITS.maxProducersMax, dedupWindowPerProducer: STATE_MACHINE_LIMITS.dedupWindowPerProducerMax };
  for (const name of ['maxProducers', 'dedupWindowPerProducer'] as const) {
    const value = settings[name];
    if (!Number.isSafeInteger(value) || value < 1 || value > bounds[name]) {
      throw new LmqError('LMQ_BAD_CONFIG', `broker ${name} must be a whole number from 1 to ${bounds[name]}, not ${value}`);
    }
  }
  return Object.freeze(settings);
}

/**
 * Settings that change apply results are fixed when the state is created: reopening with other
 * values would make this node diverge from a replay of the same log. A state of an older
 * schema, or one a restore left half written, is deleted: the node rebuilds it (replaying the
 * log, or from a snapshot when retention deleted the head of the log).
 */
function checkOrRecordSettings(store: BrokerStore, settings: ProducerSettings, dir: string, logger: Logger | undefined): void {
  const schemaVersion = store.getMeta('schemaVersion');
  const restoring = store.getMeta(RESTORING_META);
  if (schemaVersion === undefined || restoring !== undefined || schemaVersion < SCHEMA_VERSION) {
    if (schemaVersion !== undefined || restoring !== undefined) {
      const why = restoring !== undefined ? `a snapshot restore to index ${restoring} did not finish` : `it has schema version ${schemaVersion}, this build uses ${SCHEMA_VERSION}`;
      logger?.warn({ dir }, `broker state in ${dir}: ${why}; deleting it to rebuild it from the log`);
      store.clear();
    }
    assert(store.getMeta('appliedIndex') === undefined, 'state without a schema version has applied entries');
    recordSettings(store, settings);
    return;
  }
  const recorded = { schemaVersion, maxProducers: store.getMeta('maxProducers'), dedupWindowPerProducer: store.getMeta('dedupWindowPerProducer') };
  const wanted = { schemaVersion: SCHEMA_VERSION, ...settings };
  for (const name of ['schemaVersion', 'maxProducers', 'dedupWindowPerProducer'] as const) {
    if (recorded[name] !== wanted[name]) {
      throw new LmqError(
        'LMQ_BAD_CONFIG',
        name === 'schemaVersion'
          ? `broker state in ${dir} has schema version ${recorded[name]}, newer than this build's ${SCHEMA_VERSION}; run the newer build, or delete ${dir} to rebuild it from the log`
          : `broker state in ${dir} was built with ${name} ${recorded[name]}, not ${wanted[name]}; delete ${dir} to rebuild it from the log (every node must use the same value)`,
      );
    }
  }
}

function recordSettings(store: BrokerStore, settings: ProducerSettings): void {
  store.transaction(() => {
    store.putMeta('schemaVersion', SCHEMA_VERSION);
    store.putMeta('maxProducers', settings.maxProducers);
    store.putMeta('dedupWindowPerProducer', settings.dedupWindowPerProducer);
  });
  store.flush();
}

/** A produce routed over another queue count than its topic has now (it grew since). */
function routeProblem(topic: string, queues: number, routedQueues: number | undefined): ProduceProblem | undefined {
  if (routedQueues === undefined || queues === routedQueues) return undefined;
  return { error: 'LMQ_ROUTE_CHANGED', message: routeChangedMessage(topic, queues, routedQueues) };
}
