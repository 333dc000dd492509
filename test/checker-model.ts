// A correct in-memory queue model that writes Jepsen-style histories, and mutations that
// plant one anomaly of each kind into such a history. Used by the checker's properties and
// by bench/checker-bench.ts. Every decision comes from `choose`, so fast-check can shrink it
// and the bench can drive it from a seeded generator.
import type { HistoryEvent, ReadMessage } from '../src/checker/index.js';
import type { queueAnomalyKinds } from '../src/checker/index.js';

/** The queue model plants the anomalies of the log; consumption has its own tests. */
type QueueAnomalyKind = (typeof queueAnomalyKinds)[number];

/** Returns an integer in [0, n). */
export type Choose = (n: number) => number;

export interface ModelShape {
  queues: number;
  producers: number;
  consumers: number;
  /** Stop after this many scheduling steps… */
  stepsMax: number;
  /** …or once this many sends were invoked. */
  sendsMax: number;
  /** Messages one poll returns at most. */
  pollBatchMax: number;
  /** Retention deletes the oldest messages of a queue now and then (reads carry minOffset). */
  retention: boolean;
}

interface SendInFlight {
  process: number;
  queue: number;
  body: string;
  /** ok: lands, then acks. fail: never lands. info: lands before the info, after it, or never. */
  fate: 'ok' | 'fail' | 'info';
  landing: 'before' | 'after' | 'never';
  landedAt: number | undefined;
}

interface Producer {
  process: number;
  inflight: SendInFlight | undefined;
}

interface Consumer {
  process: number;
  /** Next offset this process reads per queue; absent until its first poll of the queue. */
  positions: Map<number, number>;
  /** Queues handed back at a committed offset: the next poll names it as `from`. */
  resumeFrom: Map<number, number>;
  inflight: { queue: number } | undefined;
}

/** Simulates producers, consumers and a final drain against a correct queue; emits the history. */
export class QueueModel {
  private readonly logs: string[][];
  private readonly committed: number[];
  /** Per queue, the first offset retention has not deleted. */
  private readonly minOffsets: number[];
  private readonly producers: Producer[] = [];
  private readonly consumers: Consumer[] = [];
  private readonly lateLandings: SendInFlight[] = [];
  private nextProcess = 0;
  private time = 0;
  sends = 0;

  constructor(
    private readonly shape: ModelShape,
    private readonly choose: Choose,
    private readonly emit: (event: HistoryEvent) => void,
  ) {
    this.logs = Array.from({ length: shape.queues }, () => []);
    this.committed = Array.from({ length: shape.queues }, () => 0);
    this.minOffsets = Array.from({ length: shape.queues }, () => 0);
    for (let i = 0; i < shape.producers; i++) this.producers.push({ process: this.nextProcess++, inflight: undefined });
    for (let i = 0; i < shape.consumers; i++) this.consumers.push(this.newConsumer());
  }

  static queueName(queue: number): string {
    return `t/${queue}`;
  }

  run(): void {
    for (let step = 0; step < this.shape.stepsMax && this.sends < this.shape.sendsMax; step++) this.step();
    this.finish();
  }

  private newConsumer(): Consumer {
    return { process: this.nextProcess++, positions: new Map(), resumeFrom: new Map(), inflight: undefined };
  }

  private record(event: Omit<HistoryEvent, 'time'>): void {
    this.time += this.choose(3) === 0 ? 0.5 : 1;
    this.emit({ ...event, time: this.time } as HistoryEvent);
  }

  private step(): void {
    const action = this.choose(10);
    if (action < 5 && this.producers.length > 0) return this.stepProducer(this.producers[this.choose(this.producers.length)]!);
    if (action < 9 && this.consumers.length > 0) return this.stepConsumer(this.consumers[this.choose(this.consumers.length)]!);
    if (this.shape.retention && this.choose(4) === 0) return this.retain(this.choose(this.shape.queues));
    const late = this.lateLandings.splice(this.choose(this.lateLandings.length + 1), 1)[0];
    if (late !== undefined) this.land(late);
  }

  /** Retention deletes the queue's first few messages, whatever the consumers' progress. */
  private retain(queue: number): void {
    this.minOffsets[queue] = Math.min(this.logs[queue]!.length, this.minOffsets[queue]! + 1 + this.choose(3));
  }

  private land(send: SendInFlight): void {
    const log = this.logs[send.queue]!;
    send.landedAt = log.length;
    log.push(send.body);
  }

  private stepProducer(producer: Producer): void {
    const send = producer.inflight;
    if (send === undefined) {
      if (this.sends >= this.shape.sendsMax) return;
      const fateRoll = this.choose(10);
      const inflight: SendInFlight = {
        process: producer.process,
        queue: this.choose(this.shape.queues),
        body: `p${producer.process}-${this.sends++}`,
        fate: fateRoll < 7 ? 'ok' : fateRoll < 8 ? 'fail' : 'info',
        landing: (['before', 'after', 'never'] as const)[this.choose(3)]!,
        landedAt: undefined,
      };
      producer.inflight = inflight;
      this.record({ type: 'invoke', process: producer.process, f: 'send', value: { queue: QueueModel.queueName(inflight.queue), body: inflight.body } });
      return;
    }
    if (this.mustLandBeforeCompleting(send) && send.landedAt === undefined) return this.land(send);
    this.completeSend(producer, send);
  }

  private mustLandBeforeCompleting(send: SendInFlight): boolean {
    return send.fate === 'ok' || (send.fate === 'info' && send.landing === 'before');
  }

  private completeSend(producer: Producer, send: SendInFlight): void {
    const queue = QueueModel.queueName(send.queue);
    producer.inflight = undefined;
    if (send.fate === 'ok') {
      this.record({ type: 'ok', process: send.process, f: 'send', value: { queue, body: send.body, offset: send.landedAt! } });
      return;
    }
    this.record({ type: send.fate, process: send.process, f: 'send', value: { queue, body: send.body } });
    if (send.fate === 'info') {
      if (send.landing === 'after') this.lateLandings.push(send);
      producer.process = this.nextProcess++; // after an info a client goes on as a new process
    }
  }

  private stepConsumer(consumer: Consumer): void {
    if (consumer.inflight !== undefined) return this.completePoll(consumer, consumer.inflight.queue);
    const roll = this.choose(20);
    if (roll === 0) return this.restartConsumer(consumer);
    if (roll === 1) return this.rebalance(consumer);
    const queue = this.choose(this.shape.queues);
    consumer.inflight = { queue };
    const from = consumer.resumeFrom.get(queue);
    const value = from === undefined ? { queue: QueueModel.queueName(queue) } : { queue: QueueModel.queueName(queue), from };
    this.record({ type: 'invoke', process: consumer.process, f: 'poll', value });
  }

  private completePoll(consumer: Consumer, queue: number): void {
    consumer.inflight = undefined;
    const name = QueueModel.queueName(queue);
    const roll = this.choose(10);
    if (roll === 0) return this.record({ type: 'fail', process: consumer.process, f: 'poll', value: { queue: name } });
    if (roll === 1) {
      this.record({ type: 'info', process: consumer.process, f: 'poll', value: { queue: name } });
      return this.restartConsumer(consumer);
    }
    const log = this.logs[queue]!;
    // A process's first poll of a queue starts at the group's committed offset (mid-queue).
    const minOffset = this.minOffsets[queue]!;
    const start = Math.max(minOffset, consumer.resumeFrom.get(queue) ?? consumer.positions.get(queue) ?? this.committed[queue]!);
    const count = Math.min(log.length - start, this.choose(this.shape.pollBatchMax + 1));
    const messages: ReadMessage[] = [];
    for (let i = 0; i < count; i++) messages.push({ offset: start + i, body: log[start + i]! });
    consumer.positions.set(queue, start + count);
    consumer.resumeFrom.delete(queue);
    if (this.choose(2) === 0) this.committed[queue] = Math.max(this.committed[queue]!, start + count);
    const value = this.shape.retention ? { queue: name, messages, minOffset } : { queue: name, messages };
    this.record({ type: 'ok', process: consumer.process, f: 'poll', value });
  }

  /** A consumer restart: a new process that resumes at committed offsets, re-reading what it had not committed. */
  private restartConsumer(consumer: Consumer): void {
    Object.assign(consumer, this.newConsumer());
  }

  /** The queue is handed back to this process at the committed offset, which its next poll names. */
  private rebalance(consumer: Consumer): void {
    const queue = this.choose(this.shape.queues);
    if (consumer.positions.has(queue)) consumer.resumeFrom.set(queue, this.committed[queue]!);
  }

  /** Ends in-flight operations (some stay incomplete), lands or drops late info sends, drains every queue. */
  private finish(): void {
    for (const producer of this.producers) {
      const send = producer.inflight;
      if (send === undefined) continue;
      if (this.choose(3) === 0) {
        if (send.fate !== 'fail' && this.choose(2) === 0 && send.landedAt === undefined) this.land(send); // in flight forever: may land
        continue;
      }
      if (this.mustLandBeforeCompleting(send) && send.landedAt === undefined) this.land(send);
      this.completeSend(producer, send);
    }
    for (const consumer of this.consumers) if (consumer.inflight !== undefined && this.choose(2) === 0) this.completePoll(consumer, consumer.inflight.queue);
    for (const late of this.lateLandings) if (this.choose(2) === 0) this.land(late);
    for (let queue = 0; queue < this.shape.queues; queue++) {
      const process = this.nextProcess++;
      const name = QueueModel.queueName(queue);
      this.record({ type: 'invoke', process, f: 'drain', value: { queue: name } });
      const minOffset = this.minOffsets[queue]!;
      const messages = this.logs[queue]!.map((body, offset) => ({ offset, body })).slice(minOffset);
      const value = this.shape.retention ? { queue: name, messages, minOffset } : { queue: name, messages };
      this.record({ type: 'ok', process, f: 'drain', value });
    }
  }
}

/** A history of a correct queue, collected in memory. */
export function modelHistory(shape: ModelShape, choose: Choose): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  new QueueModel(shape, choose, (event) => events.push(event)).run();
  return events;
}

/** Draws from a fixed list of numbers (what fast-check generates and shrinks); 0 once it runs out. */
export function chooserFrom(choices: readonly number[]): Choose {
  let next = 0;
  return (n) => (n <= 1 ? 0 : (choices[next++] ?? 0) % n);
}

// ---- Planting anomalies -------------------------------------------------------------------

type Mutation = (events: HistoryEvent[], pick: number) => HistoryEvent[] | undefined;

function clone(events: HistoryEvent[]): HistoryEvent[] {
  return structuredClone(events);
}

function pickOf<T>(items: readonly T[], pick: number): T | undefined {
  return items.length === 0 ? undefined : items[pick % items.length];
}

type ReadOkEvent = HistoryEvent & { type: 'ok'; f: 'poll' | 'drain' };
type SendOkEvent = HistoryEvent & { type: 'ok'; f: 'send' };

function reads(events: HistoryEvent[], f?: 'poll' | 'drain'): ReadOkEvent[] {
  return events.filter((e): e is ReadOkEvent => e.type === 'ok' && (e.f === 'poll' || e.f === 'drain') && (f === undefined || e.f === f));
}

function ackedSends(events: HistoryEvent[]): SendOkEvent[] {
  return events.filter((e): e is SendOkEvent => e.type === 'ok' && e.f === 'send');
}

function lineOfInvoke(events: HistoryEvent[], body: string): number {
  return events.findIndex((e) => e.type === 'invoke' && e.f === 'send' && e.value.body === body);
}

function drainedBodies(events: HistoryEvent[]): Set<string> {
  return new Set(reads(events, 'drain').flatMap((e) => e.value.messages.map((m) => m.body)));
}

/** Acked sends the final drain shows: retention did not delete them, so they can be judged. */
function drainedAckedSends(events: HistoryEvent[]): SendOkEvent[] {
  const drained = drainedBodies(events);
  return ackedSends(events).filter((e) => drained.has(e.value.body));
}

/** One mutation per kind: each plants exactly that anomaly into a valid model history. */
export const plantAnomaly: Readonly<Record<QueueAnomalyKind, Mutation>> = {
  /** Remove an acked body the drain shows from every read: the broker lost it (before anyone read it). */
  lost(original, pick) {
    const events = clone(original);
    const victim = pickOf(drainedAckedSends(events), pick);
    if (victim === undefined) return undefined;
    for (const read of reads(events)) read.value.messages = read.value.messages.filter((m) => m.body !== victim.value.body);
    return events;
  },
  /** Append a body nobody sent to the end of a drain. */
  unexpected(original, pick) {
    const events = clone(original);
    const target = pickOf(reads(events, 'drain'), pick);
    if (target === undefined) return undefined;
    const last = target.value.messages[target.value.messages.length - 1];
    target.value.messages.push({ offset: last === undefined ? (target.value.minOffset ?? 0) : last.offset + 1, body: 'invented-by-no-send' });
    return events;
  },
  /** Append a body the drain already holds to its end: stored twice. */
  duplicate(original, pick) {
    const events = clone(original);
    const target = pickOf(reads(events, 'drain').filter((d) => d.value.messages.length > 0), pick);
    if (target === undefined) return undefined;
    const messages = target.value.messages;
    messages.push({ offset: messages[messages.length - 1]!.offset + 1, body: messages[pick % messages.length]!.body });
    return events;
  },
  /** Make one poll show, at an offset the drain fills with X, an info send that never landed. */
  'inconsistent-offsets'(original, pick) {
    const events = clone(original);
    const landed = drainedBodies(events);
    // Retention may have deleted a landed info send before the drain: "never landed" means no read shows it.
    const readBodies = new Set(reads(events).flatMap((e) => e.value.messages.map((m) => m.body)));
    const candidates: { poll: ReadOkEvent; index: number; body: string }[] = [];
    events.forEach((e, line) => {
      if (e.type !== 'ok' || e.f !== 'poll') return;
      const drained = e.value.messages.flatMap((m, index) => (landed.has(m.body) ? [index] : []));
      if (drained.length === 0) return;
      const unlanded = events.slice(0, line).find((s) => s.type === 'info' && s.f === 'send' && s.value.queue === e.value.queue && !readBodies.has(s.value.body));
      if (unlanded !== undefined && unlanded.f === 'send') candidates.push({ poll: e, index: drained[pick % drained.length]!, body: unlanded.value.body });
    });
    const chosen = pickOf(candidates, pick);
    if (chosen === undefined) return undefined;
    chosen.poll.value.messages[chosen.index]!.body = chosen.body;
    return events;
  },
  /** Make one ack name an offset one past where the message really is (and the drain shows it). */
  'offset-mismatch'(original, pick) {
    const events = clone(original);
    const victim = pickOf(drainedAckedSends(events), pick);
    if (victim === undefined) return undefined;
    victim.value.offset = (victim.value.offset ?? 0) + 1 + (pick % 3);
    return events;
  },
  /** Swap two acked sends A, B (A acked before B was invoked, both drained) everywhere: acks and reads. */
  reorder(original, pick) {
    const events = clone(original);
    const acked = drainedAckedSends(events);
    const pairs: [SendOkEvent, SendOkEvent][] = [];
    for (const a of acked) {
      const aLine = events.indexOf(a);
      const b = acked.find((s) => s.value.queue === a.value.queue && lineOfInvoke(events, s.value.body) > aLine);
      if (b !== undefined) pairs.push([a, b]);
    }
    const pair = pickOf(pairs, pick);
    if (pair === undefined) return undefined;
    const [a, b] = pair;
    [a.value.offset, b.value.offset] = [b.value.offset, a.value.offset];
    for (const read of reads(events)) {
      if (read.value.queue !== a.value.queue) continue;
      for (const m of read.value.messages) m.body = m.body === a.value.body ? b.value.body : m.body === b.value.body ? a.value.body : m.body;
    }
    return events;
  },
  /** Turn the completion of a send that landed (ok or info) into fail. */
  'failed-present'(original, pick) {
    const events = clone(original);
    const landed = drainedBodies(events);
    const completions = events
      .map((e, line) => ({ e, line }))
      .filter(({ e }) => (e.type === 'ok' || e.type === 'info') && e.f === 'send' && landed.has(e.value.body));
    const chosen = pickOf(completions, pick);
    if (chosen === undefined || chosen.e.f !== 'send') return undefined;
    events[chosen.line] = { type: 'fail', process: chosen.e.process, f: 'send', value: { queue: chosen.e.value.queue, body: chosen.e.value.body }, time: chosen.e.time };
    return events;
  },
  /** Right after a non-empty poll, the same process polls and gets the same messages again. */
  'nonmonotonic-poll'(original, pick) {
    const events = clone(original);
    const polls = reads(events, 'poll').filter((p) => p.value.messages.length > 0);
    const chosen = pickOf(polls, pick);
    if (chosen === undefined) return undefined;
    const line = events.indexOf(chosen);
    const again: HistoryEvent[] = [
      { type: 'invoke', process: chosen.process, f: 'poll', value: { queue: chosen.value.queue }, time: chosen.time },
      { ...structuredClone(chosen) },
    ];
    events.splice(line + 1, 0, ...again);
    return events;
  },
  /** Drop a message the drain also shows from the middle of a poll that returned three or more. */
  'poll-skip'(original, pick) {
    const events = clone(original);
    const landed = drainedBodies(events);
    const candidates = reads(events, 'poll').flatMap((poll) =>
      poll.value.messages.flatMap((m, index) => (index > 0 && index < poll.value.messages.length - 1 && landed.has(m.body) ? [{ poll, index }] : [])),
    );
    const chosen = pickOf(candidates, pick);
    if (chosen === undefined) return undefined;
    chosen.poll.value.messages.splice(chosen.index, 1);
    return events;
  },
};

/**
 * Kinds a planted anomaly may trigger besides its own, because they are implied by it:
 * - inconsistent-offsets: the poll now shows the never-landed body Y at offset O. If O was
 *   acked for X, that read contradicts the ack (offset-mismatch); and Y now reads as placed
 *   at O, before sends that were acked before Y was even invoked (reorder).
 * - reorder: after swapping A and B, a poll that read A's old offset before B was invoked
 *   now shows B before its send existed (unexpected).
 */
export const impliedKinds: Readonly<Record<QueueAnomalyKind, readonly QueueAnomalyKind[]>> = {
  lost: [],
  unexpected: [],
  duplicate: [],
  'inconsistent-offsets': ['offset-mismatch', 'reorder'],
  'offset-mismatch': [],
  reorder: ['unexpected'],
  'failed-present': [],
  'nonmonotonic-poll': [],
  'poll-skip': [],
};
