import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, DeliveryRef } from '../src/broker/commands.js';
import type { RetrySettings } from '../src/broker/retry.js';
import { type Received, receiveCommand } from '../src/broker/simple-consumer.js';
import type { ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { LIMITS } from '../src/protocol/index.js';
import { bytes, dumpState, Machines, MemoryLog, payloadOf, tempDir } from './broker-helpers.js';

// The simple consumer's replicated state through the leader's command builder
// (receiveCommand) and the state machine's apply: round-robin over the topic's queues and the
// group's %RETRY% queue, expiry and redelivery with attempt + 1, the DLQ after
// maxReconsumeTimes + 1 deliveries, stale receipts, idempotent acks, changed durations, the
// committed offset at the lowest unacked offset, resets, the reply bound, snapshots.

const settings: RetrySettings = { delayLevelsMs: [100, 200, 300], maxReconsumeTimes: 1 };
const INVISIBLE_MS = 1000;

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machines: Machines;
let seq = 0;

function apply(state: BrokerStateMachine, command: BrokerCommand): ApplyResult {
  return state.apply([log.append(command)])[0]!;
}

function produce(state: BrokerStateMachine, topic: string, queueId: number, ...bodies: string[]): void {
  const messages = bodies.map((body) => ({ msgId: `${topic}-${queueId}-${body.slice(0, 8)}`, topic, queueId, body: bytes(body) }));
  expect(apply(state, { kind: 'produce', producerId: 'p', seq: ++seq, timestampMs: 100, messages })).toMatchObject({ duplicate: false });
}

/** A receive as the leader proposes it at nowMs; the messages it handed out. */
function receive(state: BrokerStateMachine, nowMs: number, max = 32, topic = 'orders', fifo = false): Received[] {
  const result = apply(state, receiveCommand(state, { group: 'g', topic, clientId: 'c1', max, invisibleDurationMs: INVISIBLE_MS, fifo }, settings, nowMs));
  if (result.kind !== 'receive' || !('received' in result)) throw new Error(`receive failed: ${JSON.stringify(result)}`);
  return result.received;
}

const bodiesOf = (received: readonly Received[]) => received.map((r) => Buffer.from(r.message.body).toString());

function ack(state: BrokerStateMachine, ...deliveries: DeliveryRef[]): ApplyResult {
  return apply(state, { kind: 'ack', group: 'g', receipts: deliveries });
}

function committed(state: BrokerStateMachine, topic: string, queueId: number): number | undefined {
  return state.committedOffset('g', topic, queueId);
}

beforeEach(() => {
  temp = tempDir('lmq-simple-state-');
  machines = new Machines(temp.dir);
  log = new MemoryLog();
  seq = 0;
});

afterEach(async () => {
  await machines.closeAll();
  temp.cleanup();
});

describe('simple consumer state – receive', () => {
  it('hands out new offsets round-robin over the queues, the group\'s %RETRY% queue included, at attempt 1', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 2 });
    produce(a, 'orders', 0, 'a0', 'a1');
    produce(a, 'orders', 1, 'b0', 'b1');
    const first = receive(a, 1000, 1);
    expect(bodiesOf(first)).toEqual(['a0']);
    expect(first[0]).toMatchObject({ attempt: 1, visibleAtMs: 1000 + INVISIBLE_MS, delivery: { topic: 'orders', queueId: 0, offset: 0, tag: log.all().length } });
    expect(bodiesOf(receive(a, 1000, 1))).toEqual(['b0']);
    expect(bodiesOf(receive(a, 1000, 1))).toEqual(['a1']);
    // A retry copy (here a sendBack's, due at once by the level's time) makes %RETRY%g a third queue of the rotation.
    const [stored] = a.read('orders', 1, 1, 1, 1 << 20);
    expect(apply(a, { kind: 'sendBack', timestampMs: 1000, group: 'g', from: { topic: 'orders', queueId: 1, offset: 1 }, target: 'retry', message: { msgId: stored!.msgId, topic: '%RETRY%g', queueId: 0, body: stored!.body, deliverAtMs: 1000, reconsumeTimes: 1, origin: { msgId: stored!.msgId, topic: 'orders', queueId: 1, offset: 1 }, firstFailureMs: 1000 } })).toMatchObject({ duplicate: false });
    produce(a, 'orders', 0, 'a2');
    expect(bodiesOf(receive(a, 1000, 1))).toEqual(['b1']);
    expect(receive(a, 1000, 1).map((r) => r.delivery.topic)).toEqual(['%RETRY%g']);
    expect(bodiesOf(receive(a, 1000, 5))).toEqual(['a2']);
    expect(receive(a, 1000, 5)).toEqual([]);
    expect(a.receivable('g', 'orders', 1000)).toBe(false);
    expect(a.receivable('g', 'orders', 1000 + INVISIBLE_MS)).toBe(true);
    expect(a.nextVisibleAtMs('g', 'orders')).toBe(1000 + INVISIBLE_MS);
  });

  it('keeps the committed offset at the lowest offset not yet acked; an ack of a message no longer in flight succeeds again', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'm0', 'm1', 'm2');
    const got = receive(a, 1000);
    expect(bodiesOf(got)).toEqual(['m0', 'm1', 'm2']);
    expect(committed(a, 'orders', 0)).toBe(0);
    expect(a.groupLag('g')).toEqual([{ topic: 'orders', queueId: 0, committedOffset: 0, nextOffset: 3, lag: 3 }]);
    expect(ack(a, got[1]!.delivery)).toEqual({ kind: 'ack', acked: 1, expired: [] });
    expect(committed(a, 'orders', 0)).toBe(0);
    expect(ack(a, got[0]!.delivery)).toEqual({ kind: 'ack', acked: 1, expired: [] });
    expect(committed(a, 'orders', 0)).toBe(2);
    expect(ack(a, got[2]!.delivery, got[0]!.delivery)).toEqual({ kind: 'ack', acked: 2, expired: [] });
    expect(committed(a, 'orders', 0)).toBe(3);
    // Nothing acked comes back, however late.
    expect(receive(a, 1_000_000)).toEqual([]);
  });

  it('redelivers an expired message with attempt + 1 and a new tag; the old receipt is refused, the new one acks', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'm0', 'm1');
    const [m0, m1] = receive(a, 1000);
    expect(ack(a, m1!.delivery)).toMatchObject({ acked: 1 });
    expect(receive(a, 1000 + INVISIBLE_MS - 1)).toEqual([]);
    const again = receive(a, 1000 + INVISIBLE_MS);
    expect(again.map((r) => [r.delivery.offset, r.attempt])).toEqual([[0, 2]]);
    expect(again[0]!.delivery.tag).toBeGreaterThan(m0!.delivery.tag);
    expect(again[0]!.message.msgId).toBe(m0!.message.msgId);
    expect(ack(a, m0!.delivery)).toEqual({ kind: 'ack', acked: 0, expired: [0] });
    expect(committed(a, 'orders', 0)).toBe(0);
    expect(ack(a, again[0]!.delivery)).toMatchObject({ acked: 1, expired: [] });
    expect(committed(a, 'orders', 0)).toBe(2);
  });

  it('sends a message not acked in maxReconsumeTimes + 1 deliveries to %DLQ%<group>, not handed out again', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'poison', 'ok');
    let nowMs = 1000;
    const first = receive(a, nowMs);
    expect(ack(a, first[1]!.delivery)).toMatchObject({ acked: 1 });
    nowMs += INVISIBLE_MS;
    expect(receive(a, nowMs).map((r) => r.attempt)).toEqual([2]);
    nowMs += INVISIBLE_MS;
    const command = receiveCommand(a, { group: 'g', topic: 'orders', clientId: 'c1', max: 32, invisibleDurationMs: INVISIBLE_MS }, settings, nowMs);
    expect(command.deadLetters).toHaveLength(1);
    expect(apply(a, command)).toEqual({ kind: 'receive', received: [], deadLettered: 1 });
    const [dead] = a.read('%DLQ%g', 0, 0, 10, 1 << 20);
    expect(dead).toMatchObject({ msgId: first[0]!.message.msgId, origin: { topic: 'orders', queueId: 0, offset: 0 }, deadLetter: { attempts: 2 } });
    expect(dead!.deadLetter!.reason).toContain('invisible duration');
    expect(committed(a, 'orders', 0)).toBe(2);
    expect(a.deadLetterCounts('g')).toEqual({ messages: 1, resent: 0 });
    // A second leader's proposal naming the same exhausted delivery places nothing more.
    expect(apply(a, command)).toEqual({ kind: 'receive', received: [], deadLettered: 0 });
    expect(a.queueRange('%DLQ%g', 0).nextOffset).toBe(1);
    expect(receive(a, nowMs + 10 * INVISIBLE_MS)).toEqual([]);
  });

  it('changeInvisibleDuration moves visibility under a new tag; a repeat answers the same; the old receipt is stale', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'm0');
    const [m0] = receive(a, 1000);
    const change = { kind: 'changeInvisibleDuration' as const, timestampMs: 1500, group: 'g', receipt: m0!.delivery, invisibleDurationMs: 5000 };
    const changed = apply(a, change);
    const tag = log.all().length;
    expect(changed).toEqual({ kind: 'changeInvisibleDuration', tag, visibleAtMs: 6500 });
    expect(apply(a, change)).toEqual(changed);
    expect(receive(a, 6499)).toEqual([]);
    expect(ack(a, m0!.delivery)).toEqual({ kind: 'ack', acked: 0, expired: [0] });
    expect(ack(a, { ...m0!.delivery, tag })).toMatchObject({ acked: 1, expired: [] });
    expect(apply(a, { ...change, receipt: { ...m0!.delivery, tag } })).toEqual({ kind: 'changeInvisibleDuration', error: 'LMQ_RECEIPT_EXPIRED', message: expect.stringContaining('no longer in flight') });
    expect(receive(a, 100_000)).toEqual([]);
  });

  it('bounds a receive by the reply bytes (the first always fits) and hands out the rest next time', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'big', queues: 1 });
    const body = 'x'.repeat(3 * 1024 * 1024);
    for (let i = 0; i < 3; i++) produce(a, 'big', 0, `${i}${body}`);
    const first = receive(a, 1000, 32, 'big');
    expect(first.map((r) => r.delivery.offset)).toEqual([0, 1]);
    expect(first.reduce((sum, r) => sum + r.message.body.byteLength, 0)).toBeLessThanOrEqual(LIMITS.maxReceiveReplyBytes);
    expect(receive(a, 1000, 32, 'big').map((r) => r.delivery.offset)).toEqual([2]);
  });

  it('a resetOffsets starts the queue over: cursor back, its in-flight messages dropped', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'm0', 'm1', 'm2');
    const got = receive(a, 1000);
    ack(a, got[0]!.delivery);
    apply(a, { kind: 'resetOffsets', group: 'g', offsets: [{ topic: 'orders', queueId: 0, offset: 0 }] });
    expect(committed(a, 'orders', 0)).toBe(0);
    expect(receive(a, 1000).map((r) => [r.delivery.offset, r.attempt])).toEqual([[0, 1], [1, 1], [2, 1]]);
    // The old deliveries are over: their receipts name tags the reset replaced.
    expect(ack(a, got[1]!.delivery)).toEqual({ kind: 'ack', acked: 0, expired: [0] });
  });
});

describe('simple consumer state – snapshots', () => {
  it('a restore keeps cursors, in-flight messages, their due order and the rotation; both replicas then apply alike', async () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 2 });
    produce(a, 'orders', 0, 'a0', 'a1');
    produce(a, 'orders', 1, 'b0');
    const got = receive(a, 1000, 2);
    ack(a, got[0]!.delivery);
    apply(a, { kind: 'changeInvisibleDuration', timestampMs: 1200, group: 'g', receipt: got[1]!.delivery, invisibleDurationMs: 3000 });
    const snapshot = a.beginSnapshot(128);
    const b = machines.open('b', log);
    await b.restoreSnapshot(snapshot.index, await payloadOf(snapshot), log);
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(b.nextVisibleAtMs('g', 'orders')).toBe(4200);
    for (const nowMs of [2000, 4200, 4200 + INVISIBLE_MS]) {
      const entry = log.append(receiveCommand(a, { group: 'g', topic: 'orders', clientId: 'c1', max: 32, invisibleDurationMs: INVISIBLE_MS }, settings, nowMs));
      const [ra] = a.apply([entry]);
      expect(b.apply([entry])).toEqual([ra]);
    }
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(dumpState(b)).toEqual(dumpState(a));
    // a1 (changed) and b0 (received at 2000) both expired twice: both are dead letters now.
    expect(b.deadLetterCounts('g')).toEqual({ messages: 2, resent: 0 });
    // A restore rebuilds the dead letters a receive placed from that receive's log entry.
    const later = a.beginSnapshot(128);
    const c = machines.open('c', log);
    await c.restoreSnapshot(later.index, await payloadOf(later), log);
    expect(c.stateDigest()).toBe(a.stateDigest());
    expect(dumpState(c)).toEqual(dumpState(a));
  });
});

describe('simple consumer state – FIFO receive', () => {
  it('holds a queue while one of its messages is invisible, and hands its expired ones back first, in offset order', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 2 });
    produce(a, 'orders', 0, 'a0', 'a1', 'a2');
    produce(a, 'orders', 1, 'b0');
    const fifo = (nowMs: number, max = 32) => receive(a, nowMs, max, 'orders', true);
    expect(bodiesOf(fifo(1000, 1))).toEqual(['a0']);
    // Queue 0 is held by a0 in flight: only queue 1 hands out, and nothing more until a0 is settled.
    expect(bodiesOf(fifo(1000))).toEqual(['b0']);
    expect(a.receivable('g', 'orders', 1000, true)).toBe(false);
    expect(fifo(1500)).toEqual([]);
    // A non-FIFO receive of the group is not held (it would hand out a1).
    expect(a.receivable('g', 'orders', 1000, false)).toBe(true);
    // a0's invisible duration ends: it comes back first (attempt 2), then the queue's next offsets.
    expect(a.receivable('g', 'orders', 1000 + INVISIBLE_MS, true)).toBe(true);
    const again = fifo(1000 + INVISIBLE_MS, 2);
    expect(bodiesOf(again)).toEqual(['a0', 'a1']);
    expect(again.map((r) => r.attempt)).toEqual([2, 1]);
    ack(a, ...again.map((r) => r.delivery));
    // b0's duration ended too: it comes back beside a2.
    expect(bodiesOf(fifo(1000 + INVISIBLE_MS)).sort()).toEqual(['a2', 'b0']);
  });

  it('keeps a queue held behind a message with no attempt left until that one is dead-lettered', () => {
    const a = machines.open('a', log);
    apply(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    produce(a, 'orders', 0, 'x0', 'x1');
    const fifo = (nowMs: number) => receive(a, nowMs, 1, 'orders', true);
    // maxReconsumeTimes 1: two deliveries, then the DLQ.
    expect(bodiesOf(fifo(1000))).toEqual(['x0']);
    expect(bodiesOf(fifo(1000 + INVISIBLE_MS))).toEqual(['x0']);
    // The receive that finds x0 exhausted dead-letters it and goes on with x1.
    const after = fifo(1000 + 2 * INVISIBLE_MS);
    expect(bodiesOf(after)).toEqual(['x1']);
    expect(after[0]!.attempt).toBe(1);
  });
});

