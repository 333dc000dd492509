// The shared indexes every anomaly function reads, built once in one pass over the paired
// operations: who sent which body and how it ended, what each read showed at each
// (queue, offset), where each body was read, each queue's drains, and the places where one
// process's reads of a queue were not contiguous. Memory is O(distinct bodies + distinct
// (queue, offset) + polls); nothing here judges an anomaly.
import { assert } from '../util/assert.js';
import type { ReadMessage } from './history.js';
import type { CompletedOperation, OpRef, PendingOperation } from './pairing.js';
import { type ConsumptionIndex, ConsumptionIndexBuilder } from './consumption.js';
import { type TransactionIndex, TransactionIndexBuilder } from './transactions.js';

export interface SendRecord {
  body: string;
  /**
   * The queue the send named, or — a send that named its topic and key — the queue its ok
   * named; undefined for such a send that did not complete ok (it may be in any queue of topic).
   */
  queue: string | undefined;
  /** The topic whose queues a keyed send may be in; undefined for a send that named its queue. */
  topic: string | undefined;
  /** The key the producer chose the queue by, when the send named one (key-reorder). */
  key: string | undefined;
  invoke: OpRef;
  /** Absent while the send is in flight; an `incomplete` ref when the history ended first. */
  completion: OpRef | undefined;
  outcome: 'ok' | 'fail' | 'info' | 'pending';
  /** Only for ok: the offset the acknowledgement named; undefined if it named none (leader quorum). */
  ackedOffset: number | undefined;
  /** A delayed send: its delay (history clock) and due time (epoch ms). */
  delay: { delayMs: number; deliverAtMs: number } | undefined;
  /** The message's tag, when the send named one. */
  tag: string | undefined;
}

/** A place a read showed a body, with the earliest read that showed it there. */
export interface BodyLocation {
  queue: string;
  offset: number;
  read: OpRef;
}

/** What reads showed at one (queue, offset): the first body and any different bodies after it. */
export interface Cell {
  body: string;
  read: OpRef;
  /** Other bodies shown at the same place, each once with its first read; normally absent. */
  conflicts: { body: string; read: OpRef }[] | undefined;
}

export interface DrainRecord {
  queue: string;
  invoke: OpRef;
  read: OpRef;
  /** Offsets in the order the drain returned them. */
  offsets: number[];
  bodies: Set<string>;
  /** Where the drain started: the queue's first stored offset (0 when the history names none). */
  minOffset: number;
}

/**
 * A non-contiguous step between two offsets one process read of one queue: within one read
 * (`within`), between successive polls (`successive`), or from a poll's requested `from`
 * offset to its first message (`from`, with previousOffset = from - 1). Contiguous steps
 * (next = previous + 1) are not recorded: they can be neither backwards nor a skip.
 */
export interface ReadStep {
  kind: 'within' | 'successive' | 'from';
  process: number;
  queue: string;
  previousOffset: number;
  /** The read that returned previousOffset; for `from`, the poll itself. */
  previousRead: OpRef;
  nextOffset: number;
  read: OpRef;
  /** The tags the reading poll filtered on: only skipped messages with one of them count. */
  filterTags: string[] | undefined;
}

/** A message a tag-filtered poll returned (filter-mismatch judges its tag). */
export interface FilteredRead {
  queue: string;
  offset: number;
  body: string;
  read: OpRef;
  filterTags: string[];
}

export interface HistoryStats {
  events: number;
  sends: number;
  acked: number;
  failed: number;
  info: number;
  /** Operations still in flight when the history ended, counted as info. */
  incomplete: number;
  polls: number;
  drains: number;
  messagesRead: number;
  queues: number;
}

export interface HistoryIndex {
  /** Every send, by body (bodies are unique per send). */
  sends: Map<string, SendRecord>;
  /** Every distinct (queue, offset) a read showed each body at. */
  bodyLocations: Map<string, BodyLocation[]>;
  /** queue → offset → what reads showed there. */
  cells: Map<string, Map<number, Cell>>;
  /** queue → the offsets any read showed, sorted ascending (computed at the end). */
  existingOffsets: Map<string, number[]>;
  /** queue → its ok drains in completion order; the last is the final drain, the authority for `lost`. */
  drains: Map<string, DrainRecord[]>;
  readSteps: ReadStep[];
  /** queue → offset → how many ok sends' acks named it (more than one: all but one are wrong). */
  ackedOffsetClaims: Map<string, Map<number, number>>;
  /** Every queue named by any operation. */
  queues: Set<string>;
  /** Deliveries to listeners, dead letters, leader samples, first reads (consumption.ts). */
  consumption: ConsumptionIndex;
  /** Transactions' half messages and ends (transactions.ts). */
  transactions: TransactionIndex;
  /** Every message a tag-filtered poll returned. */
  filteredReads: FilteredRead[];
  stats: HistoryStats;
}

interface PollPosition {
  lastOffset: number;
  read: OpRef;
}

/** The tags a poll filtered on; undefined for an unfiltered poll and for drains. */
function filterTagsOf(operation: CompletedOperation): string[] | undefined {
  const event = operation.invokeEvent;
  return event.f === 'poll' ? event.value.filterTags : undefined;
}

/** The queue a poll or drain read. */
function readQueue(operation: CompletedOperation): string {
  const event = operation.invokeEvent;
  assert(event.f === 'poll' || event.f === 'drain', 'only reads record cells');
  return event.value.queue;
}

export class IndexBuilder {
  private readonly consumption = new ConsumptionIndexBuilder();
  private readonly transactions = new TransactionIndexBuilder();
  private readonly index: HistoryIndex = {
    sends: new Map(),
    bodyLocations: new Map(),
    cells: new Map(),
    existingOffsets: new Map(),
    drains: new Map(),
    readSteps: [],
    ackedOffsetClaims: new Map(),
    queues: new Set(),
    consumption: this.consumption.index,
    transactions: this.transactions.index,
    filteredReads: [],
    stats: { events: 0, sends: 0, acked: 0, failed: 0, info: 0, incomplete: 0, polls: 0, drains: 0, messagesRead: 0, queues: 0 },
  };
  /** `${process} ${queue}` → where that process's polls of that queue have reached. */
  private readonly pollPositions = new Map<string, PollPosition>();
  private finished = false;

  invoked(operation: PendingOperation): void {
    assert(!this.finished, 'no operations after finish');
    const event = operation.invokeEvent;
    // Leader samples name no queue; a simple consumer's acks judge deliveries, not the queues' logs.
    if (event.f === 'leader' || event.f === 'receive' || event.f === 'ack') return;
    if (event.f === 'txsend' || event.f === 'txend') return this.transactions.invoked(operation);
    if (event.value.queue !== undefined) this.index.queues.add(event.value.queue);
    if (event.f !== 'send') return;
    assert(!this.index.sends.has(event.value.body), 'pairing rejects a body sent twice');
    this.index.stats.sends += 1;
    this.index.sends.set(event.value.body, {
      body: event.value.body,
      queue: event.value.queue,
      topic: event.value.topic,
      key: event.value.key,
      invoke: operation.invoke,
      completion: undefined,
      outcome: 'pending',
      ackedOffset: undefined,
      delay: event.value.delayMs === undefined || event.value.deliverAtMs === undefined ? undefined : { delayMs: event.value.delayMs, deliverAtMs: event.value.deliverAtMs },
      tag: event.value.tag,
    });
  }

  completed(operation: CompletedOperation): void {
    assert(!this.finished, 'no operations after finish');
    if (operation.completion.type === 'incomplete') this.index.stats.incomplete += 1;
    const event = operation.invokeEvent;
    if (event.f === 'send') return this.completeSend(operation, event.value.body);
    if (event.f === 'consume' || event.f === 'dlq' || event.f === 'leader' || event.f === 'receive' || event.f === 'ack') return this.consumption.completed(operation);
    if (event.f === 'txsend' || event.f === 'txend') return this.transactions.completed(operation);
    if (event.f === 'poll') this.index.stats.polls += 1;
    if (operation.outcome !== 'ok') return;
    const completion = operation.completionEvent;
    assert(completion !== undefined && completion.type === 'ok', 'an ok operation has its ok event');
    assert(completion.f === 'poll' || completion.f === 'drain', 'a read completes as a read');
    const { messages, minOffset } = completion.value as { messages: ReadMessage[]; minOffset?: number };
    this.recordRead(operation, messages);
    if (event.f === 'poll') this.recordPollSteps(operation, messages, event.value.from, minOffset);
    else this.recordDrain(operation, messages, minOffset ?? 0);
  }

  private completeSend(operation: CompletedOperation, body: string): void {
    const send = this.index.sends.get(body);
    assert(send !== undefined, 'a completed send was invoked');
    assert(send.outcome === 'pending', 'a send completes once');
    send.completion = operation.completion;
    send.outcome = operation.outcome;
    const stats = this.index.stats;
    if (operation.outcome === 'ok') {
      const completion = operation.completionEvent;
      assert(completion !== undefined && completion.f === 'send' && completion.type === 'ok', 'an ok send has its ok event');
      send.ackedOffset = completion.value.offset ?? undefined;
      send.queue = completion.value.queue;
      this.index.queues.add(completion.value.queue);
      stats.acked += 1;
    } else if (operation.outcome === 'fail') stats.failed += 1;
    else stats.info += 1;
  }

  /** Records what one ok read showed: cells, body locations, and backward steps within it. */
  private recordRead(operation: CompletedOperation, messages: ReadMessage[]): void {
    const queue = readQueue(operation);
    const read = operation.completion;
    const isDrain = operation.invokeEvent.f === 'drain';
    const filterTags = filterTagsOf(operation);
    let cells = this.index.cells.get(queue);
    if (cells === undefined) this.index.cells.set(queue, (cells = new Map()));
    this.index.stats.messagesRead += messages.length;
    let previous: ReadMessage | undefined;
    for (const message of messages) {
      this.recordCell(cells, queue, message, read);
      this.consumption.readShowed(message, read);
      if (filterTags !== undefined) this.index.filteredReads.push({ queue, offset: message.offset, body: message.body, read, filterTags });
      // A drain's forward gaps are judged against the whole queue instead (findPollSkips).
      if (previous !== undefined && message.offset !== previous.offset + 1 && !(isDrain && message.offset > previous.offset)) {
        this.index.readSteps.push({
          kind: 'within', process: read.process, queue, previousOffset: previous.offset, previousRead: read, nextOffset: message.offset, read, filterTags,
        });
      }
      previous = message;
    }
  }

  private recordCell(cells: Map<number, Cell>, queue: string, message: ReadMessage, read: OpRef): void {
    const cell = cells.get(message.offset);
    if (cell === undefined) {
      cells.set(message.offset, { body: message.body, read, conflicts: undefined });
    } else if (cell.body === message.body || cell.conflicts?.some((c) => c.body === message.body)) {
      return; // this body was already seen here: a re-read, not news
    } else {
      (cell.conflicts ??= []).push({ body: message.body, read });
    }
    let locations = this.index.bodyLocations.get(message.body);
    if (locations === undefined) this.index.bodyLocations.set(message.body, (locations = []));
    locations.push({ queue, offset: message.offset, read });
  }

  /** Records where this poll started relative to where the process's previous poll ended. */
  private recordPollSteps(operation: CompletedOperation, messages: ReadMessage[], from: number | undefined, minOffset: number | undefined): void {
    const read = operation.completion;
    const queue = readQueue(operation);
    const key = `${read.process} ${queue}`;
    let position: PollPosition | undefined = from !== undefined ? { lastOffset: from - 1, read } : this.pollPositions.get(key);
    // Offsets below the queue's minOffset were deleted by retention: moving over them is no skip.
    if (position !== undefined && minOffset !== undefined && position.lastOffset < minOffset - 1) position = { lastOffset: minOffset - 1, read: position.read };
    const first = messages[0];
    const last = messages[messages.length - 1];
    if (first === undefined || last === undefined) {
      if (from !== undefined) this.pollPositions.set(key, { lastOffset: from - 1, read });
      return;
    }
    if (position !== undefined && first.offset !== position.lastOffset + 1) {
      this.index.readSteps.push({
        kind: from !== undefined ? 'from' : 'successive',
        process: read.process,
        queue,
        previousOffset: position.lastOffset,
        previousRead: position.read,
        nextOffset: first.offset,
        read,
        filterTags: filterTagsOf(operation),
      });
    }
    this.pollPositions.set(key, { lastOffset: last.offset, read });
  }

  private recordDrain(operation: CompletedOperation, messages: ReadMessage[], minOffset: number): void {
    const queue = readQueue(operation);
    let drains = this.index.drains.get(queue);
    if (drains === undefined) this.index.drains.set(queue, (drains = []));
    drains.push({
      queue,
      invoke: operation.invoke,
      read: operation.completion,
      offsets: messages.map((m) => m.offset),
      bodies: new Set(messages.map((m) => m.body)),
      minOffset,
    });
    this.index.stats.drains += 1;
  }

  /** Completes the derived indexes (sorted offsets per queue) and hands the index over. */
  finish(events: number): HistoryIndex {
    assert(!this.finished, 'finish once');
    this.finished = true;
    for (const [queue, cells] of this.index.cells) {
      this.index.existingOffsets.set(queue, [...cells.keys()].sort((a, b) => a - b));
    }
    this.index.stats.events = events;
    this.index.stats.queues = this.index.queues.size;
    for (const send of this.index.sends.values()) {
      assert(send.outcome !== 'pending', 'every send is completed by finish');
      if (send.ackedOffset === undefined) continue;
      assert(send.queue !== undefined, 'an acked send has its queue');
      let claims = this.index.ackedOffsetClaims.get(send.queue);
      if (claims === undefined) this.index.ackedOffsetClaims.set(send.queue, (claims = new Map()));
      claims.set(send.ackedOffset, (claims.get(send.ackedOffset) ?? 0) + 1);
    }
    return this.index;
  }
}
