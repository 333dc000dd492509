// The derived records of a placed batch — consume queue, key index and msgId index — written
// in one place for both ways they come to be: applying the entry (state-machine.ts) and
// rebuilding them from the retained log after a snapshot restore (snapshot.ts). Sharing the
// code, and the rule of which of an entry's messages it placed (placedItems), is what makes a
// rebuilt state equal, record for record, to an applied one.
import { assert } from '../util/assert.js';
import { type BrokerCommand, carriedMessages, type ProduceCommand, type ProduceMessage } from './commands.js';
import { type BrokerStore, type ConsumeQueueRecord, msgIdRunName, msgIdRunPrefix, type QueuePosition, seqNameOf } from './store.js';
import { tagHash } from '../filter/index.js';

/** A message an entry places, with its position in the entry (the consume queue's batchPos). */
export interface PlacedItem {
  readonly message: ProduceMessage;
  readonly batchPos: number;
  /**
   * The position of the first message of its produce: a produceBatch entry carries several
   * produces one after another, and a producer names its copies prefix.N from its own first.
   */
  readonly runStart: number;
}

/** A message of a produce or sendBack entry due later than the entry's own time waits in the timer index. */
export function isDelayed(message: ProduceMessage, timestampMs: number): boolean {
  return message.deliverAtMs !== undefined && message.deliverAtMs > timestampMs;
}

/**
 * The messages an applied entry placed in their queues, in position order: a produce's and a
 * sendBack's that were not delayed; a produceBatch's likewise, but those of its produces that
 * placed nothing (their positions are in its unplaced mark); a deliverDue's and a dlqResend's
 * but those it skipped (already delivered or resent, recorded in its unplaced mark); a
 * committing txEnd's (one that placed nothing is marked unplaced whole). None for other commands.
 */
export function placedItems(command: BrokerCommand, skipped: ReadonlySet<number>): PlacedItem[] {
  if (command.kind === 'produce') return producePlacedItems(command, 0, skipped);
  if (command.kind === 'produceBatch') {
    const items: PlacedItem[] = [];
    let runStart = 0;
    for (const produce of command.produces) {
      for (const item of producePlacedItems(produce, runStart, skipped)) items.push(item);
      runStart += produce.messages.length;
    }
    return items;
  }
  const timed = command.kind === 'sendBack';
  const items: PlacedItem[] = [];
  (carriedMessages(command) ?? []).forEach((message, batchPos) => {
    if (skipped.has(batchPos)) return;
    if (timed && isDelayed(message, command.timestampMs)) return;
    items.push({ message, batchPos, runStart: 0 });
  });
  return items;
}

/** A produce's messages due at its time, at an entry's positions from runStart, but those skipped. */
export function producePlacedItems(produce: ProduceCommand, runStart: number, skipped: ReadonlySet<number>): PlacedItem[] {
  const items: PlacedItem[] = [];
  produce.messages.forEach((message, i) => {
    const batchPos = runStart + i;
    if (!skipped.has(batchPos) && !isDelayed(message, produce.timestampMs)) items.push({ message, batchPos, runStart });
  });
  return items;
}

/** The keys of a message without keys (shared: a record's keys are never changed). */
const NO_KEYS: readonly string[] = Object.freeze([]);

/** No shared run prefixes: what every entry but a produceBatch has. */
export const NO_NAMES: ReadonlySet<string> = new Set();

/** The run prefixes messages of more than one of an entry's produces are named with (EntryPlacer). */
export function sharedRunNamesOf(command: BrokerCommand): ReadonlySet<string> {
  return command.kind === 'produceBatch' ? sharedRunNames(command.produces) : NO_NAMES;
}

export function sharedRunNames(produces: readonly ProduceCommand[]): ReadonlySet<string> {
  if (produces.length < 2) return NO_NAMES;
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const produce of produces) {
    const names = new Set<string>();
    for (const { msgId } of produce.messages) {
      const name = msgIdRunName(msgId);
      if (name !== undefined) names.add(name);
    }
    for (const name of names) (seen.has(name) ? shared : seen).add(name);
  }
  return shared.size === 0 ? NO_NAMES : shared;
}

/**
 * The time an entry's placements are stored at (before the store's never-backwards rule): its
 * command's time — for a produceBatch, its latest produce's, whether or not that one placed
 * anything (apply must not depend on which produces it refuses before it knows the time). The
 * leader stamps a batch's produces while they wait for it, within a round or MAX_PRODUCE_HOLD_MS
 * (produce-batcher.ts) of each other, so a refused one moves the store time by that much at most.
 */
export function entryTimestampMs(command: BrokerCommand): number {
  if (command.kind === 'produceBatch') return producesTimestampMs(command.produces);
  return 'timestampMs' in command ? command.timestampMs : 0;
}

/** The latest of an entry's produces' times. */
export function producesTimestampMs(produces: readonly ProduceCommand[]): number {
  return Math.max(...produces.map((produce) => produce.timestampMs));
}

/** A queue's running next offset while a batch (or a rebuild) places messages in it. */
export interface RunningQueue {
  readonly topic: string;
  readonly queueId: number;
  nextOffset: number;
}

export function queueKey(topic: string, queueId: number): string {
  return `${topic}\u0000${queueId}`;
}

/**
 * Places an entry's messages, each at its queue's running next offset (dense offsets, log order),
 * and indexes them: place() as often as the entry has produces to place, in position order, then
 * finish() once. `queueOf` returns the running queue of a (topic, queueId), the same object for
 * every message of it; its nextOffset is advanced here. The caller checked every queue exists.
 */
export class EntryPlacer {
  /** Each queue's units, appended together by finish(): one write per record, not per message. */
  private readonly unitsByQueue = new Map<RunningQueue, { firstOffset: number; records: ConsumeQueueRecord[] }>();
  /** Each run's copies by the N of its msgIds prefix.N (null: a position it did not place). */
  private readonly runs = new Map<string, (QueuePosition | null)[]>();
  /**
   * Messages placed alone by their produce (its only message, or its only one due now) and
   * named name-N, by name: indexed at finish() by one msgseq record per name when their Ns
   * count up by one, else each by its own record.
   */
  private readonly seqCandidates = new Map<string, SeqCandidate[]>();
  /** Names (name-N) of messages this entry indexes by their own record in any case: their name's candidates are too. */
  private readonly ownRecordSeqNames = new Set<string>();
  private lastBatchPos = -1;
  private lastRunStart = -1;
  private finished = false;

  /**
   * `sharedRunNames`: run prefixes (msgIdRunPrefix) that messages of more than one of the
   * entry's produces are named with (sharedRunNamesOf): those produces index each copy on its
   * own, so a lookup finds the oldest of an entry's copies of a msgId by its position.
   */
  constructor(
    private readonly store: BrokerStore,
    private readonly logIndex: number,
    private readonly storeTimestampMs: number,
    private readonly sharedRunNames: ReadonlySet<string>,
    private readonly queueOf: (topic: string, queueId: number) => RunningQueue,
  ) {
    assert(logIndex >= 1, 'a placed batch has a log index');
  }

  place(items: readonly PlacedItem[]): { msgId: string; queueId: number; offset: number }[] {
    assert(!this.finished, 'an entry placed after it finished');
    // One run (one produce's messages, the common case) as it is: items come in position order,
    // so the first and the last share runStart only when all do.
    if (items.length > 0 && items[0]!.runStart === items.at(-1)!.runStart) return this.placeRun(items);
    const placed: { msgId: string; queueId: number; offset: number }[] = [];
    for (let i = 0; i < items.length; ) {
      let end = i + 1;
      while (end < items.length && items[end]!.runStart === items[i]!.runStart) end++;
      for (const one of this.placeRun(items.slice(i, end))) placed.push(one);
      i = end;
    }
    assert(placed.length === items.length, 'one placement per message');
    return placed;
  }

  /** Writes the consume queue units and the msgId runs of everything placed. */
  finish(): void {
    assert(!this.finished, 'an entry finished twice');
    this.finished = true;
    for (const [prefix, copies] of this.runs) this.store.putMsgIdRun(prefix, this.logIndex, copies);
    for (const [name, candidates] of this.seqCandidates) this.indexSeqCandidates(name, candidates);
    for (const [queue, { firstOffset, records }] of this.unitsByQueue) this.store.putConsumeQueueRun(queue.topic, queue.queueId, firstOffset, records);
  }

  /** One produce's messages (or all of another command's): they share runStart. */
  private placeRun(items: readonly PlacedItem[]): { msgId: string; queueId: number; offset: number }[] {
    const runStart = items[0]!.runStart;
    assert(runStart > this.lastRunStart, "a produce's messages are placed in one run");
    this.lastRunStart = runStart;
    // Every copy is indexed (a copy stored again under a new producer session too): a lookup
    // answers the oldest one still retained. A produce naming its copies prefix.N shares one
    // record — unless another produce of this entry names messages with that prefix too.
    let runPrefix = msgIdRunPrefix(items, runStart);
    if (runPrefix !== undefined && this.sharedRunNames.has(runPrefix)) runPrefix = undefined;
    assert(runPrefix === undefined || !this.runs.has(runPrefix), 'one run per prefix in an entry');
    const run: (QueuePosition | null)[] = [];
    const placed = items.map(({ message, batchPos }) => {
      assert(batchPos > this.lastBatchPos, 'placed items come in position order');
      this.lastBatchPos = batchPos;
      const queue = this.queueOf(message.topic, message.queueId);
      assert(queue.topic === message.topic && queue.queueId === message.queueId, 'running queue of another queue');
      const offset = queue.nextOffset;
      const keys = message.keys ?? NO_KEYS;
      const at: ConsumeQueueRecord = {
        logIndex: this.logIndex, batchPos, storeTimestampMs: this.storeTimestampMs, bodyBytes: message.body.byteLength, msgId: message.msgId, keys,
        tagHash: message.tag === undefined ? null : tagHash(message.tag),
        msgIdInRun: runPrefix !== undefined,
      };
      let units = this.unitsByQueue.get(queue);
      if (units === undefined) this.unitsByQueue.set(queue, (units = { firstOffset: offset, records: [] }));
      assert(offset === units.firstOffset + units.records.length, () => `${message.topic}/${message.queueId}: offset ${offset} does not follow the entry's previous one`);
      units.records.push(at);
      for (const key of keys) this.store.putKeyIndex(message.topic, key, at, message.queueId, offset);
      const position = { topic: message.topic, queueId: message.queueId, offset };
      if (runPrefix === undefined) this.indexOwnOrLater(message.msgId, at, position, items.length === 1);
      else {
        while (run.length < batchPos - runStart) run.push(null); // positions this entry did not place (delayed)
        run.push(position);
      }
      queue.nextOffset = offset + 1;
      return { msgId: message.msgId, queueId: message.queueId, offset };
    });
    if (runPrefix !== undefined) this.runs.set(runPrefix, run);
    return placed;
  }

  /** Indexes a message not in a msgrun: by its own record now, or (alone in its produce, named name-N) at finish(). */
  private indexOwnOrLater(msgId: string, at: ConsumeQueueRecord, position: QueuePosition, alone: boolean): void {
    const named = seqNameOf(msgId);
    if (named !== undefined && alone) {
      const candidates = this.seqCandidates.get(named.name);
      if (candidates === undefined) this.seqCandidates.set(named.name, [{ n: named.n, at, position }]);
      else candidates.push({ n: named.n, at, position });
      return;
    }
    if (named !== undefined) this.ownRecordSeqNames.add(named.name);
    this.store.putMsgId(msgId, at, position);
  }

  /**
   * One msgseq record for a name's candidates when they are two or more, their Ns count up by
   * one and no other message of the entry has the name (so a msgId is indexed once per entry);
   * else one record each. Their units say which (they are written after this).
   */
  private indexSeqCandidates(name: string, candidates: readonly SeqCandidate[]): void {
    const firstN = candidates[0]!.n;
    const oneRun = candidates.length >= 2 && !this.ownRecordSeqNames.has(name) && candidates.every(({ n }, i) => n === firstN + i);
    for (const { at, position } of candidates) {
      if (oneRun) at.msgIdInRun = firstN;
      else this.store.putMsgId(at.msgId, at, position);
    }
    if (oneRun) this.store.putMsgIdSeqRun(name, firstN, this.logIndex, candidates.map(({ position }) => position));
  }
}

interface SeqCandidate {
  readonly n: number;
  readonly at: ConsumeQueueRecord;
  readonly position: QueuePosition;
}
