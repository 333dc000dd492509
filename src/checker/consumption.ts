// The consumer-side anomalies (issue 15's retry, orderly, delay and simple workloads) and the
// index they read: every delivery of a message to a listener (`consume` operations), every
// message a simple consumer received and every ack it sent (`receive`, `ack`), the final reads
// of the dead-letter queues (`dlq`), the leader samples (`leader`), and where and when reads
// first showed each body. The queue anomalies (anomalies.ts) judge the log; these judge what a
// consumer group and the delay scheduler made of it. Each finder is a pure function of the
// shared HistoryIndex with its exact definition in its doc comment.
import { assert } from '../util/assert.js';
import type { CompletionType, ConsumeResult, DeadLetterMessage, ReadMessage } from './history.js';
import type { HistoryIndex, SendRecord } from './indexes.js';
import type { CompletedOperation, OpRef } from './pairing.js';
import { type AnomalyResult, describeOp, Findings, quote } from './findings.js';

/**
 * How far apart the clocks that judge a delayed message may be: the producer's (deliverAtMs,
 * the history clock) and the leader's (storeTimestampMs). The chaos cluster runs on one host.
 */
export const deliveryClockToleranceMs = 100;
/** A delayed message placed later than this after it was due, while a leader existed, is late. */
export const lateDeliveryBoundMs = 5_000;

/** One listener call: the copy it was given and how it ended. */
export interface Delivery {
  queue: string;
  offset: number;
  reconsumeTimes: number;
  maxReconsumeTimes: number;
  orderly: boolean;
  /** The listener's result; `unknown` when it never returned (info, or in flight at the end). */
  result: ConsumeResult | 'unknown';
  invoke: OpRef;
  completion: OpRef;
}

/** One message a simple consumer's ok receive handed out. */
export interface Reception {
  queue: string;
  offset: number;
  attempt: number;
  maxReconsumeTimes: number;
  invoke: OpRef;
  read: OpRef;
}

/** One ack a simple consumer sent for a body, and how it ended. */
export interface AckRecord {
  outcome: CompletionType;
  invoke: OpRef;
  completion: OpRef;
}

/** The last ok read of one dead-letter queue. */
export interface DlqRead {
  queue: string;
  invoke: OpRef;
  read: OpRef;
  messages: DeadLetterMessage[];
}

/** The first read that showed a body, and the earliest store time any read gave for it. */
export interface FirstRead {
  read: OpRef;
  storeTimestampMs: number | undefined;
}

export interface ConsumptionIndex {
  /** body → its deliveries, in completion order. */
  deliveries: Map<string, Delivery[]>;
  /** queue → its final (last ok) dlq read. */
  finalDlqReads: Map<string, DlqRead>;
  /** Leader samples in completion order: whether some node led at that time. */
  leaderSamples: { time: number; hasLeader: boolean }[];
  /** body → the first poll, drain or delivery that showed it. */
  firstReads: Map<string, FirstRead>;
  /** queue → its orderly deliveries, in completion order. */
  orderlyByQueue: Map<string, Delivery[]>;
  /** body → what simple consumers' receives handed out of it, in completion order. */
  receptions: Map<string, Reception[]>;
  /** body → the acks simple consumers sent for it, in completion order. */
  acks: Map<string, AckRecord[]>;
}

export class ConsumptionIndexBuilder {
  readonly index: ConsumptionIndex = {
    deliveries: new Map(), finalDlqReads: new Map(), leaderSamples: [], firstReads: new Map(), orderlyByQueue: new Map(), receptions: new Map(), acks: new Map(),
  };

  /** A completed consume, dlq, leader, receive or ack operation. */
  completed(operation: CompletedOperation): void {
    const event = operation.invokeEvent;
    const completion = operation.completionEvent;
    if (event.f === 'leader') {
      const hasLeader = operation.outcome === 'ok' && completion?.f === 'leader' && completion.type === 'ok' && completion.value.leader !== null;
      this.index.leaderSamples.push({ time: operation.completion.time, hasLeader });
    } else if (event.f === 'consume') {
      const result = operation.outcome === 'ok' && completion?.f === 'consume' && completion.type === 'ok' ? completion.value.result : 'unknown';
      const { queue, offset, body, reconsumeTimes, maxReconsumeTimes } = event.value;
      const delivery: Delivery = { queue, offset, reconsumeTimes, maxReconsumeTimes, orderly: event.value.orderly === true, result, invoke: operation.invoke, completion: operation.completion };
      let deliveries = this.index.deliveries.get(body);
      if (deliveries === undefined) this.index.deliveries.set(body, (deliveries = []));
      deliveries.push(delivery);
      if (delivery.orderly) {
        let inQueue = this.index.orderlyByQueue.get(queue);
        if (inQueue === undefined) this.index.orderlyByQueue.set(queue, (inQueue = []));
        inQueue.push(delivery);
      }
      // A listener was handed the message when the consume was invoked.
      this.showed(body, operation.invoke, undefined);
    } else if (event.f === 'receive' && operation.outcome === 'ok') {
      assert(completion?.f === 'receive' && completion.type === 'ok', 'an ok receive has its ok event');
      for (const m of completion.value.messages) {
        pushTo(this.index.receptions, m.body, { queue: m.queue, offset: m.offset, attempt: m.attempt, maxReconsumeTimes: event.value.maxReconsumeTimes, invoke: operation.invoke, read: operation.completion });
        this.showed(m.body, operation.completion, undefined);
      }
    } else if (event.f === 'ack') {
      pushTo(this.index.acks, event.value.body, { outcome: operation.outcome, invoke: operation.invoke, completion: operation.completion });
    } else if (event.f === 'dlq' && operation.outcome === 'ok') {
      assert(completion?.f === 'dlq' && completion.type === 'ok', 'an ok dlq has its ok event');
      this.index.finalDlqReads.set(event.value.queue, { queue: event.value.queue, invoke: operation.invoke, read: operation.completion, messages: completion.value.messages });
    }
  }

  /** What an ok poll or drain showed (called by IndexBuilder for every read message). */
  readShowed(message: ReadMessage, read: OpRef): void {
    this.showed(message.body, read, message.storeTimestampMs);
  }

  private showed(body: string, read: OpRef, storeTimestampMs: number | undefined): void {
    const first = this.index.firstReads.get(body);
    if (first === undefined) {
      this.index.firstReads.set(body, { read, storeTimestampMs });
    } else if (storeTimestampMs !== undefined && (first.storeTimestampMs === undefined || storeTimestampMs < first.storeTimestampMs)) {
      first.storeTimestampMs = storeTimestampMs;
    }
  }
}

function pushTo<T>(map: Map<string, T[]>, key: string, item: T): void {
  const items = map.get(key);
  if (items === undefined) map.set(key, [item]);
  else items.push(item);
}

/** body → the dead letter the final dlq reads hold for it (the first, if several). */
function deadLetters(index: ConsumptionIndex): Map<string, { letter: DeadLetterMessage; dlq: DlqRead }> {
  const letters = new Map<string, { letter: DeadLetterMessage; dlq: DlqRead }>();
  for (const dlq of index.finalDlqReads.values()) {
    for (const letter of dlq.messages) if (!letters.has(letter.body)) letters.set(letter.body, { letter, dlq });
  }
  return letters;
}

/** The limit the body's consumers used, else any consumer's in the history; undefined when none consumed. */
function maxReconsumeTimesFor(index: ConsumptionIndex, body: string): number | undefined {
  const own = index.deliveries.get(body)?.[0];
  if (own !== undefined) return own.maxReconsumeTimes;
  for (const deliveries of index.deliveries.values()) if (deliveries[0] !== undefined) return deliveries[0].maxReconsumeTimes;
  return undefined;
}

/**
 * `lost-retry`: in a history with concurrent (not orderly) deliveries or simple receives and an
 * ok dlq read, an ok send that completed before every final dlq read was invoked, yet no
 * delivery of its body ended SUCCESS, no ack of it was confirmed or left unknown (ok or info),
 * and no final dlq read holds it — a failed message that neither came back nor reached the DLQ.
 * Sends judged no further (no dlq read, or still running when it began) are `unchecked`.
 */
export function findLostRetries(index: HistoryIndex): AnomalyResult & { unchecked: number } {
  const findings = new Findings();
  const consumption = index.consumption;
  let unchecked = 0;
  // Orderly deliveries retry in place, without a DLQ read to judge by: only concurrent ones count.
  const concurrent = [...consumption.deliveries.values()].some((deliveries) => deliveries.some((d) => !d.orderly));
  if (!concurrent && consumption.receptions.size === 0) return { ...findings.result(), unchecked };
  const dlqReads = [...consumption.finalDlqReads.values()];
  const letters = deadLetters(consumption);
  const firstDlqInvokeLine = Math.min(...dlqReads.map((d) => d.invoke.line));
  for (const send of index.sends.values()) {
    if (send.outcome !== 'ok') continue;
    if (dlqReads.length === 0 || send.completion === undefined || send.completion.line > firstDlqInvokeLine) {
      unchecked += 1;
      continue;
    }
    const deliveries = consumption.deliveries.get(send.body) ?? [];
    if (deliveries.some((d) => d.result === 'SUCCESS') || letters.has(send.body)) continue;
    if (consumption.acks.get(send.body)?.some((a) => a.outcome !== 'fail')) continue;
    const last = deliveries[deliveries.length - 1];
    const received = consumption.receptions.get(send.body)?.length ?? 0;
    const handedOut =
      last !== undefined
        ? `delivered ${deliveries.length} time(s), last ${describeOp(last.completion)} with reconsumeTimes ${last.reconsumeTimes},`
        : received > 0
          ? `received ${received} time(s), never acked,`
          : 'never delivered';
    findings.add(() => ({
      description: `send ${quote(send.body)} acked (${describeOp(send.completion!)}) was ${handedOut} never consumed with SUCCESS, and is in no dead-letter queue`,
      body: send.body,
      send: send.completion!,
      deliveries: deliveries.length + received,
    }));
  }
  return { ...findings.result(), unchecked };
}

/**
 * `retry-exceeded`: a body delivered with reconsumeTimes above its maxReconsumeTimes, or
 * delivered from more distinct stored copies (queue, offset) than maxReconsumeTimes + 1 — a
 * message retried past its limit, or a retry stored twice. Redelivery of the same copy
 * (a consumer died before committing) is not counted again. A simple consumer's receive of a
 * body with a delivery attempt above maxReconsumeTimes + 1 counts too.
 */
export function findRetryExceeded(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [body, receptions] of index.consumption.receptions) {
    const beyond = receptions.find((r) => r.attempt > r.maxReconsumeTimes + 1);
    if (beyond === undefined) continue;
    findings.add(() => ({
      description: `${quote(body)} was received with delivery attempt ${beyond.attempt}, past maxReconsumeTimes + 1 = ${beyond.maxReconsumeTimes + 1} (${describeOp(beyond.read)})`,
      body,
      receptions: receptions.length,
    }));
  }
  for (const [body, all] of index.consumption.deliveries) {
    // Orderly retries stay in place (one copy, reconsumeTimes counting suspends): not judged here.
    const deliveries = all.filter((d) => !d.orderly);
    if (deliveries.length === 0) continue;
    const max = deliveries[0]!.maxReconsumeTimes;
    const beyond = deliveries.find((d) => d.reconsumeTimes > max);
    const copies = new Set(deliveries.map((d) => `${d.queue} ${d.offset}`));
    if (beyond === undefined && copies.size <= max + 1) continue;
    findings.add(() => ({
      description:
        beyond !== undefined
          ? `${quote(body)} was delivered with reconsumeTimes ${beyond.reconsumeTimes}, past maxReconsumeTimes ${max} (${describeOp(beyond.invoke)})`
          : `${quote(body)} was delivered from ${copies.size} stored copies, more than maxReconsumeTimes + 1 = ${max + 1}: ${[...copies].join(', ')}`,
      body,
      deliveries: deliveries.length,
      copies: copies.size,
    }));
  }
  return findings.result();
}

/**
 * `dlq-early`: a dead letter (final dlq read) whose body was not failed on every delivery
 * maxReconsumeTimes + 1 allows — some reconsumeTimes k in 0..max has no delivery that ended
 * RECONSUME_LATER — or whose recorded attempts are fewer than max + 1. A body simple consumers
 * received is judged by its attempts alone (an expired receive leaves no result to check).
 */
export function findDlqEarly(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [body, { letter, dlq }] of deadLetters(index.consumption)) {
    const received = index.consumption.receptions.get(body)?.[0];
    if (received !== undefined) {
      if (letter.attempts >= received.maxReconsumeTimes + 1) continue;
      findings.add(() => ({
        description: `${quote(body)} is in ${dlq.queue} at offset ${letter.offset} (${describeOp(dlq.read)}) with ${letter.attempts} attempt(s), but maxReconsumeTimes ${received.maxReconsumeTimes} allows ${received.maxReconsumeTimes + 1}`,
        body, attempts: letter.attempts, maxReconsumeTimes: received.maxReconsumeTimes, dlq: dlq.read,
      }));
      continue;
    }
    const max = maxReconsumeTimesFor(index.consumption, body);
    if (max === undefined || index.consumption.deliveries.get(body)?.some((d) => d.orderly)) continue;
    const failed = new Set((index.consumption.deliveries.get(body) ?? []).filter((d) => d.result === 'RECONSUME_LATER').map((d) => d.reconsumeTimes));
    let missing: number | undefined;
    for (let k = 0; k <= max && missing === undefined; k++) if (!failed.has(k)) missing = k;
    if (missing === undefined && letter.attempts >= max + 1) continue;
    findings.add(() => ({
      description: `${quote(body)} is in ${dlq.queue} at offset ${letter.offset} (${describeOp(dlq.read)}) with ${letter.attempts} attempt(s), but ${missing !== undefined ? `no delivery with reconsumeTimes ${missing} failed` : `maxReconsumeTimes ${max} allows ${max + 1}`}`,
      body,
      attempts: letter.attempts,
      maxReconsumeTimes: max,
      dlq: dlq.read,
    }));
  }
  return findings.result();
}

/** When a delayed send is due on the history clock: its invoke time plus its delay. */
function dueTime(send: SendRecord): number | undefined {
  return send.delay === undefined ? undefined : send.invoke.time + send.delay.delayMs;
}

/**
 * `early-delivery`: a delayed send (one that named delayMs and deliverAtMs) that some read or
 * delivery showed before it was due — the read completed (a delivery was invoked) more than
 * deliveryClockToleranceMs before invoke time + delayMs — or that a read shows stored
 * (storeTimestampMs) more than that before deliverAtMs.
 */
export function findEarlyDeliveries(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const send of index.sends.values()) {
    const due = dueTime(send);
    const first = index.consumption.firstReads.get(send.body);
    if (due === undefined || send.delay === undefined || first === undefined) continue;
    const seenEarlyMs = due - first.read.time;
    const storedEarlyMs = first.storeTimestampMs === undefined ? 0 : send.delay.deliverAtMs - first.storeTimestampMs;
    if (seenEarlyMs <= deliveryClockToleranceMs && storedEarlyMs <= deliveryClockToleranceMs) continue;
    findings.add(() => ({
      description: `delayed send ${quote(send.body)} (${describeOp(send.invoke)}, due after ${send.delay!.delayMs} ms) was ${seenEarlyMs > deliveryClockToleranceMs ? `read ${seenEarlyMs.toFixed(0)} ms before due (${describeOp(first.read)})` : `stored ${storedEarlyMs.toFixed(0)} ms before deliverAtMs`}`,
      body: send.body,
      read: first.read,
      earlyMs: Math.max(seenEarlyMs, storedEarlyMs),
    }));
  }
  return findings.result();
}

/**
 * Milliseconds of [from, to] (history clock) during which the leader samples saw no leader:
 * a sample's answer holds until the next sample; before the first sample nothing is known
 * (counted as leaderless). Without samples, no time is leaderless.
 */
function leaderlessMs(samples: readonly { time: number; hasLeader: boolean }[], from: number, to: number): number {
  if (samples.length === 0 || to <= from) return 0;
  let leaderless = 0;
  let state = { time: Number.NEGATIVE_INFINITY, hasLeader: false };
  for (const sample of [...samples, { time: Number.POSITIVE_INFINITY, hasLeader: true }]) {
    const start = Math.max(from, state.time);
    const end = Math.min(to, sample.time);
    if (!state.hasLeader && end > start) leaderless += end - start;
    state = sample;
  }
  return leaderless;
}

/**
 * `late-delivery`: a delayed send stored (the earliest storeTimestampMs a read gave for it)
 * more than lateDeliveryBoundMs after its deliverAtMs, beyond the time the leader samples
 * saw no leader between its due time and its store time.
 */
export function findLateDeliveries(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const send of index.sends.values()) {
    const due = dueTime(send);
    const stored = index.consumption.firstReads.get(send.body)?.storeTimestampMs;
    if (due === undefined || send.delay === undefined || stored === undefined) continue;
    const lateMs = stored - send.delay.deliverAtMs;
    const excusedMs = leaderlessMs(index.consumption.leaderSamples, due, due + lateMs);
    if (lateMs - excusedMs <= lateDeliveryBoundMs) continue;
    findings.add(() => ({
      description: `delayed send ${quote(send.body)} (${describeOp(send.invoke)}) was stored ${lateMs.toFixed(0)} ms after it was due, ${excusedMs.toFixed(0)} ms of that without a leader`,
      body: send.body,
      lateMs,
      leaderlessMs: excusedMs,
    }));
  }
  return findings.result();
}

/**
 * `orderly-overlap`: two orderly deliveries of one queue whose listener calls overlapped in
 * time (from invoke to completion; a killed consumer's call ends at its info) — two consumers,
 * or two workers, processing one queue at once — or an orderly delivery of offset o invoked
 * before any delivery of offset o − 1 of that queue had ended SUCCESS, when the history holds
 * one (a message processed before its predecessor succeeded).
 */
export function findOrderlyOverlaps(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [queue, deliveries] of index.consumption.orderlyByQueue) {
    // Deliveries come in completion order: any earlier one that ended after d began overlaps d.
    let busiest: Delivery | undefined; // the call, among those completed before d, that ended last
    const firstSuccessLine = new Map<number, number>();
    for (const d of deliveries) if (d.result === 'SUCCESS' && !firstSuccessLine.has(d.offset)) firstSuccessLine.set(d.offset, d.completion.line);
    const consumedOffsets = new Set(deliveries.map((d) => d.offset));
    for (const d of deliveries) {
      if (busiest !== undefined && busiest.completion.line > d.invoke.line) {
        const other = busiest;
        findings.add(() => ({
          description: `${queue}: orderly delivery of offset ${d.offset} (${describeOp(d.invoke)}) began while offset ${other.offset}'s call (${describeOp(other.invoke)}) had not ended (${describeOp(other.completion)})`,
          queue, offset: d.offset, overlapping: other.invoke, delivery: d.invoke,
        }));
      }
      if (consumedOffsets.has(d.offset - 1) && !(firstSuccessLine.get(d.offset - 1)! < d.invoke.line)) {
        findings.add(() => ({
          description: `${queue}: orderly delivery of offset ${d.offset} (${describeOp(d.invoke)}) began before offset ${d.offset - 1} had been consumed with SUCCESS`,
          queue, offset: d.offset, delivery: d.invoke,
        }));
      }
      if (busiest === undefined || d.completion.line > busiest.completion.line) busiest = d;
    }
  }
  return findings.result();
}

/**
 * `ack-lost`: a body that some receive handed out again (the receive invoked) after an ack of
 * it had been confirmed (the ack completed ok) — an acknowledged message redelivered, e.g.
 * because a leader change lost the ack.
 */
export function findAckLost(index: HistoryIndex): AnomalyResult {
  const findings = new Findings();
  for (const [body, acks] of index.consumption.acks) {
    const confirmed = acks.filter((a) => a.outcome === 'ok');
    if (confirmed.length === 0) continue;
    const firstConfirmedLine = Math.min(...confirmed.map((a) => a.completion.line));
    const again = index.consumption.receptions.get(body)?.find((r) => r.invoke.line > firstConfirmedLine);
    if (again === undefined) continue;
    const ack = confirmed.find((a) => a.completion.line === firstConfirmedLine)!;
    findings.add(() => ({
      description: `${quote(body)} was acked (${describeOp(ack.completion)}) and then received again from ${again.queue} at offset ${again.offset} with delivery attempt ${again.attempt} (${describeOp(again.read)})`,
      body, ack: ack.completion, receive: again.read,
    }));
  }
  return findings.result();
}
