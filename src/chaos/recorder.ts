// The chaos run's history (CONTRACT.md "History format"): every operation's invoke and
// completion, in the order they happened, with monotonic times; process numbers (one per
// client session, a fresh one after every `info`); the lane (worker) each process belongs to,
// for the timeline; and the faults and leader changes seen, also for the timeline and report.
import { appendFileSync, writeFileSync } from 'node:fs';
import type { AckValue, ConsumeResult, ConsumeValue, DeadLetterMessage, HistoryEvent, ReadMessage, ReceivedMessage, TxEndValue, TxSendValue } from '../checker/index.js';
import { assert } from '../util/assert.js';

export interface FaultRecord {
  kind: 'kill' | 'pause' | 'partition' | 'power';
  /** Nodes the fault hit (for a partition: the side that was cut off). */
  nodes: string[];
  /** One line for people, e.g. "SIGKILL n2 (leader)". */
  detail: string;
  /** ms on the history clock. */
  start: number;
  /** null while the fault lasts. */
  end: number | null;
}

export interface LeaderChange {
  time: number;
  /** null: no node claimed leadership at that sample. */
  leader: string | null;
  term: number;
}

/** Lines written per appendFileSync when the history is saved. */
const historyWriteChunkLines = 10_000;

export class HistoryRecorder {
  readonly events: HistoryEvent[] = [];
  readonly faults: FaultRecord[] = [];
  readonly leaders: LeaderChange[] = [];
  /** process → lane name (the worker it belongs to), for the timeline. */
  readonly lanes = new Map<number, string>();
  /** Time of the latest ok send; -1 before the first. */
  lastAckMs = -1;
  private nextProcess = 0;
  private readonly origin = performance.now();

  /** `workloadEventsMax`: past it, `full` tells workers to stop issuing operations. */
  constructor(readonly workloadEventsMax: number) {
    assert(workloadEventsMax > 0, 'workloadEventsMax is positive');
  }

  /** Milliseconds since the run began, to the microsecond; never decreases. */
  now(): number {
    return Math.round((performance.now() - this.origin) * 1000) / 1000;
  }

  get full(): boolean {
    return this.events.length >= this.workloadEventsMax;
  }

  /** A new client session of `lane`. */
  newProcess(lane: string): number {
    const process = this.nextProcess++;
    this.lanes.set(process, lane);
    return process;
  }

  /** `delay`: a delayed send, due delayMs after this invoke (deliverAtMs on the wall clock). */
  invokeSend(process: number, queue: string, body: string, delay?: { delayMs: number; deliverAtMs: number }, tag?: string): void {
    const value: { queue: string; body: string; delayMs?: number; deliverAtMs?: number; tag?: string } = { queue, body };
    if (delay !== undefined) {
      value.delayMs = delay.delayMs;
      value.deliverAtMs = delay.deliverAtMs;
    }
    if (tag !== undefined) value.tag = tag;
    this.push({ type: 'invoke', process, f: 'send', value, time: this.now() });
  }

  /** A send whose queue the producer picks by key (the grow workload): its ok names the queue. */
  invokeKeyedSend(process: number, topic: string, key: string, body: string): void {
    this.push({ type: 'invoke', process, f: 'send', value: { topic, key, body }, time: this.now() });
  }

  keyedSendFailed(type: 'fail' | 'info', process: number, topic: string, key: string, body: string, error: string): void {
    this.push({ type, process, f: 'send', value: { topic, key, body }, time: this.now(), error });
  }

  sendOk(process: number, queue: string, body: string, offset: number | null): void {
    this.lastAckMs = this.now();
    this.push({ type: 'ok', process, f: 'send', value: { queue, body, offset }, time: this.now() });
  }

  sendFailed(type: 'fail' | 'info', process: number, queue: string, body: string, error: string): void {
    this.push({ type, process, f: 'send', value: { queue, body }, time: this.now(), error });
  }

  /** `from`: the offset the poll starts at, when the process's position was (re)set. */
  /** `filterTags`: a poll that subscribed with a tag filter. */
  invokeRead(process: number, f: 'poll' | 'drain', queue: string, from?: number, filterTags?: readonly string[]): void {
    const value: { queue: string; from?: number; filterTags?: string[] } = from === undefined || f === 'drain' ? { queue } : { queue, from };
    if (filterTags !== undefined && filterTags.length > 0 && f === 'poll') value.filterTags = [...filterTags];
    this.push({ type: 'invoke', process, f, value, time: this.now() } as HistoryEvent);
  }

  /** `minOffset`: the queue's first stored offset when the broker answered (history.ts ReadOk). */
  readOk(process: number, f: 'poll' | 'drain', queue: string, messages: ReadMessage[], minOffset: number): void {
    this.push({ type: 'ok', process, f, value: { queue, messages, minOffset }, time: this.now() });
  }

  readFailed(type: 'fail' | 'info', process: number, f: 'poll' | 'drain', queue: string, error: string): void {
    this.push({ type, process, f, value: { queue }, time: this.now(), error });
  }

  /** A listener is handed one message (the retry workload). */
  invokeConsume(process: number, value: ConsumeValue): void {
    this.push({ type: 'invoke', process, f: 'consume', value, time: this.now() });
  }

  /** The listener returned `result`; `info`: it never will (its consumer was killed). */
  consumeEnded(process: number, value: ConsumeValue, result: ConsumeResult | 'info'): void {
    if (result === 'info') this.push({ type: 'info', process, f: 'consume', value, time: this.now() });
    else this.push({ type: 'ok', process, f: 'consume', value: { ...value, result }, time: this.now() });
  }

  invokeDlq(process: number, queue: string): void {
    this.push({ type: 'invoke', process, f: 'dlq', value: { queue }, time: this.now() });
  }

  dlqOk(process: number, queue: string, messages: DeadLetterMessage[]): void {
    this.push({ type: 'ok', process, f: 'dlq', value: { queue, messages }, time: this.now() });
  }

  dlqFailed(type: 'fail' | 'info', process: number, queue: string, error: string): void {
    this.push({ type, process, f: 'dlq', value: { queue }, time: this.now(), error });
  }

  /** A simple consumer's receive (the simple workload); its group dead-letters past maxReconsumeTimes. */
  invokeReceive(process: number, maxReconsumeTimes: number): void {
    this.push({ type: 'invoke', process, f: 'receive', value: { maxReconsumeTimes }, time: this.now() });
  }

  receiveOk(process: number, maxReconsumeTimes: number, messages: ReceivedMessage[]): void {
    this.push({ type: 'ok', process, f: 'receive', value: { maxReconsumeTimes, messages }, time: this.now() });
  }

  receiveFailed(type: 'fail' | 'info', process: number, maxReconsumeTimes: number, error: string): void {
    this.push({ type, process, f: 'receive', value: { maxReconsumeTimes }, time: this.now(), error });
  }

  invokeAck(process: number, value: AckValue): void {
    this.push({ type: 'invoke', process, f: 'ack', value, time: this.now() });
  }

  /** ok: the broker confirmed the ack; fail: it refused it (a stale receipt); info: unknown. */
  ackEnded(type: 'ok' | 'fail' | 'info', process: number, value: AckValue, error?: string): void {
    this.push(error === undefined ? { type, process, f: 'ack', value, time: this.now() } : { type, process, f: 'ack', value, time: this.now(), error });
  }

  /** A producer stores a transaction's half messages (the tx workload). */
  invokeTxSend(process: number, value: TxSendValue): void {
    this.push({ type: 'invoke', process, f: 'txsend', value, time: this.now() });
  }

  txSendEnded(type: 'ok' | 'fail' | 'info', process: number, value: TxSendValue, error?: string): void {
    this.push(error === undefined ? { type, process, f: 'txsend', value, time: this.now() } : { type, process, f: 'txsend', value, time: this.now(), error });
  }

  /** A transaction's end asked by its producer or a check-back responder. */
  invokeTxEnd(process: number, value: TxEndValue): void {
    this.push({ type: 'invoke', process, f: 'txend', value, time: this.now() });
  }

  /** ok: the broker ended it this way; fail: it had ended the other way (or was refused); info: unknown. */
  txEndEnded(type: 'ok' | 'fail' | 'info', process: number, value: TxEndValue, error?: string): void {
    this.push(error === undefined ? { type, process, f: 'txend', value, time: this.now() } : { type, process, f: 'txend', value, time: this.now(), error });
  }

  invokeLeader(process: number): void {
    this.push({ type: 'invoke', process, f: 'leader', value: {}, time: this.now() });
  }

  leaderOk(process: number, leader: string | null): void {
    this.push({ type: 'ok', process, f: 'leader', value: { leader }, time: this.now() });
  }

  /** Writes the history as JSON Lines, in chunks (a long run holds hundreds of thousands of events). */
  save(path: string): void {
    writeFileSync(path, '');
    for (let i = 0; i < this.events.length; i += historyWriteChunkLines) {
      const lines = this.events.slice(i, i + historyWriteChunkLines).map((e) => JSON.stringify(e));
      appendFileSync(path, `${lines.join('\n')}\n`);
    }
  }

  private push(event: HistoryEvent): void {
    const previous = this.events[this.events.length - 1];
    assert(previous === undefined || previous.time <= event.time, 'history time never goes backwards');
    this.events.push(event);
  }
}
