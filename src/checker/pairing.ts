// Structural validation of a history and pairing of each invoke with its completion. Owns the
// rules that make a sequence of well-shaped events a history at all (CONTRACT.md): one
// operation in flight per process, a completion matches its invoke, a process whose operation
// ended `info` never acts again, time never goes backwards, bodies are unique per send.
// It knows nothing about anomalies: a broken history is bad input, not an anomaly.
import { assert } from '../util/assert.js';
import { badHistory, type CompletionType, type EventPosition, type HistoryEvent, type OperationF } from './history.js';

/** Names one event of the history so a person can find it: line, process, time. */
export interface OpRef {
  line: number;
  process: number;
  time: number;
  f: OperationF;
  /** `incomplete` marks an operation still in flight when the history ended (treated as info). */
  type: CompletionType | 'invoke' | 'incomplete';
}

/** An operation whose invoke has been seen; `completion` is absent while it is in flight. */
export interface PendingOperation {
  invokeEvent: HistoryEvent & { type: 'invoke' };
  invoke: OpRef;
}

/** A completed operation: its invoke and its completion event (or the end of the history). */
export interface CompletedOperation extends PendingOperation {
  completionEvent: (HistoryEvent & { type: CompletionType }) | undefined;
  completion: OpRef;
  /** ok / fail / info; an operation left in flight at the end of the history counts as info. */
  outcome: CompletionType;
}

export type PairedStep = { kind: 'invoke'; operation: PendingOperation } | { kind: 'complete'; operation: CompletedOperation };

/** The queue an operation names; leader samples and receives name none. */
function queueOf(event: HistoryEvent): string | undefined {
  return event.f === 'leader' || event.f === 'receive' || event.f === 'txsend' || event.f === 'txend' ? undefined : event.value.queue;
}

function refOf(event: HistoryEvent, at: EventPosition): OpRef {
  return { line: at.line, process: event.process, time: event.time, f: event.f, type: event.type };
}

export class OperationPairer {
  private readonly pendingByProcess = new Map<number, PendingOperation>();
  /** Processes whose last operation ended `info`: their line, to name it in the error. */
  private readonly endedByInfo = new Map<number, number>();
  /** Every body ever invoked by a send, with its line: bodies must be unique per send. */
  private readonly sentBodies = new Map<string, number>();
  /** Every transaction a txsend began, with its line. */
  private readonly transactions = new Map<string, number>();
  private lastTime = 0;
  private lastLine = 0;
  private events = 0;

  /** Events accepted so far. */
  get eventCount(): number {
    return this.events;
  }

  /** Validates one event against the history so far; returns it paired. Throws LMQ_BAD_INPUT. */
  accept(event: HistoryEvent, at: EventPosition): PairedStep {
    assert(at.line > this.lastLine, 'history lines are fed in increasing order');
    if (event.time < this.lastTime) {
      throw badHistory(at, `time ${event.time} is earlier than the previous event's time ${this.lastTime}; events must be in the order they happened`);
    }
    this.lastTime = event.time;
    this.lastLine = at.line;
    this.events += 1;
    return event.type === 'invoke' ? this.acceptInvoke(event, at) : this.acceptCompletion(event, at);
  }

  private acceptInvoke(event: HistoryEvent & { type: 'invoke' }, at: EventPosition): PairedStep {
    const pending = this.pendingByProcess.get(event.process);
    if (pending !== undefined) {
      throw badHistory(at, `process ${event.process} invokes ${event.f} while its ${pending.invoke.f} from line ${pending.invoke.line} has not completed; one operation per process at a time`);
    }
    const infoLine = this.endedByInfo.get(event.process);
    if (infoLine !== undefined) {
      throw badHistory(at, `process ${event.process} invokes ${event.f} after its operation ended info at line ${infoLine}; after an info a client goes on under a new process number`);
    }
    if (event.f === 'send') {
      const sentLine = this.sentBodies.get(event.value.body);
      if (sentLine !== undefined) throw badHistory(at, `body ${JSON.stringify(event.value.body)} was already sent at line ${sentLine}; bodies must be unique per send`);
      this.sentBodies.set(event.value.body, at.line);
    }
    if (event.f === 'txsend') {
      if (this.transactions.has(event.value.txId)) throw badHistory(at, `transaction ${JSON.stringify(event.value.txId)} was already sent at line ${this.transactions.get(event.value.txId)}; a txsend begins a new transaction`);
      this.transactions.set(event.value.txId, at.line);
      for (const { body } of event.value.messages) {
        const sentLine = this.sentBodies.get(body);
        if (sentLine !== undefined) throw badHistory(at, `body ${JSON.stringify(body)} was already sent at line ${sentLine}; bodies must be unique per send`);
        this.sentBodies.set(body, at.line);
      }
    }
    if (event.f === 'txend' && !this.transactions.has(event.value.txId)) throw badHistory(at, `txend names transaction ${JSON.stringify(event.value.txId)}, which no earlier txsend began`);
    const operation: PendingOperation = { invokeEvent: event, invoke: refOf(event, at) };
    this.pendingByProcess.set(event.process, operation);
    return { kind: 'invoke', operation };
  }

  private acceptCompletion(event: HistoryEvent & { type: CompletionType }, at: EventPosition): PairedStep {
    const pending = this.pendingByProcess.get(event.process);
    if (pending === undefined) throw badHistory(at, `${event.type} ${event.f} by process ${event.process} has no invoke before it`);
    const invoked = pending.invokeEvent;
    if (invoked.f !== event.f) throw badHistory(at, `${event.type} ${event.f} completes process ${event.process}'s ${invoked.f} from line ${pending.invoke.line}; f must match`);
    if (invoked.f === 'send' && event.f === 'send' && invoked.value.topic !== undefined) {
      this.checkTopicSendCompletion(invoked.value.topic, invoked.value.key, event, pending, at);
    } else if (queueOf(invoked) !== queueOf(event)) {
      throw badHistory(at, `${event.type} names queue ${JSON.stringify(queueOf(event))} but its invoke at line ${pending.invoke.line} named ${JSON.stringify(queueOf(invoked))}`);
    }
    if ((invoked.f === 'send' || invoked.f === 'consume') && (event.f === 'send' || event.f === 'consume') && invoked.value.body !== event.value.body) {
      throw badHistory(at, `${event.type} names body ${JSON.stringify(event.value.body)} but its invoke at line ${pending.invoke.line} named ${JSON.stringify(invoked.value.body)}`);
    }
    if ((invoked.f === 'txsend' || invoked.f === 'txend') && (event.f === 'txsend' || event.f === 'txend') && invoked.value.txId !== event.value.txId) {
      throw badHistory(at, `${event.type} names transaction ${JSON.stringify(event.value.txId)} but its invoke at line ${pending.invoke.line} named ${JSON.stringify(invoked.value.txId)}`);
    }
    if (invoked.f === 'consume' && event.f === 'consume' && (invoked.value.offset !== event.value.offset || invoked.value.reconsumeTimes !== event.value.reconsumeTimes)) {
      throw badHistory(at, `${event.type} consume names another offset or reconsumeTimes than its invoke at line ${pending.invoke.line}`);
    }
    this.pendingByProcess.delete(event.process);
    if (event.type === 'info') this.endedByInfo.set(event.process, at.line);
    const completion = refOf(event, at);
    const operation: CompletedOperation = { invokeEvent: pending.invokeEvent, invoke: pending.invoke, completionEvent: event, completion, outcome: event.type };
    return { kind: 'complete', operation };
  }

  /** A send that named a topic and key: its ok names a queue of that topic, its fail or info the same topic and key. */
  private checkTopicSendCompletion(topic: string, key: string | undefined, event: HistoryEvent & { f: 'send'; type: CompletionType }, pending: PendingOperation, at: EventPosition): void {
    if (event.type === 'ok') {
      if (!event.value.queue.startsWith(`${topic}/`)) throw badHistory(at, `ok names queue ${JSON.stringify(event.value.queue)}, not one of topic ${JSON.stringify(topic)} that its invoke at line ${pending.invoke.line} named`);
      return;
    }
    if (event.value.topic !== topic || event.value.key !== key) {
      throw badHistory(at, `${event.type} names ${JSON.stringify(event.value.topic ?? event.value.queue)} key ${JSON.stringify(event.value.key)} but its invoke at line ${pending.invoke.line} named topic ${JSON.stringify(topic)} key ${JSON.stringify(key)}`);
    }
  }

  /**
   * Ends the history: operations still in flight are completed as `info` (they may or may not
   * have happened, as in Jepsen), in the order they were invoked.
   */
  finish(): CompletedOperation[] {
    const incomplete = [...this.pendingByProcess.values()].sort((a, b) => a.invoke.line - b.invoke.line);
    this.pendingByProcess.clear();
    return incomplete.map((pending) => ({
      ...pending,
      completionEvent: undefined,
      completion: { ...pending.invoke, line: this.lastLine + 1, time: this.lastTime, type: 'incomplete' },
      outcome: 'info',
    }));
  }
}
