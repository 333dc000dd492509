import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand } from '../src/broker/commands.js';
import { dlqResendCommand, type RetrySettings, retryLevel, sendBackCommand } from '../src/broker/retry.js';
import type { ApplyResult, BrokerStateMachine, CommittedLogReader, StoredMessage } from '../src/broker/state-machine.js';
import { BrokerStore } from '../src/broker/store.js';
import { bytes, dumpState, Machines, MemoryLog, payloadOf, tempDir } from './broker-helpers.js';

// Retry and dead letters through the leader's rules (retry.ts builds the commands from the
// stored message) and the state machine's apply: the delay sequence, the DLQ after
// maxReconsumeTimes, dedup of sendBack, resend once, and snapshots of all of it.

const LEVELS_MS = [100, 200, 300, 400, 500];
const settings: RetrySettings = { delayLevelsMs: LEVELS_MS, maxReconsumeTimes: 3 };
const RETRY = '%RETRY%g';
const DLQ = '%DLQ%g';

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machines: Machines;

function machine(name: string, reader: CommittedLogReader = log): BrokerStateMachine {
  return machines.open(name, reader);
}

function apply(state: BrokerStateMachine, command: BrokerCommand): ApplyResult {
  return state.apply([log.append(command)])[0]!;
}

function storedAt(state: BrokerStateMachine, topic: string, offset: number): StoredMessage {
  const [stored] = state.read(topic, 0, offset, 1, 1 << 20);
  expect(stored?.offset).toBe(offset);
  return stored!;
}

/** A failed delivery of the message at topic/0 offset, sent back at nowMs as the leader would. */
function sendBack(state: BrokerStateMachine, topic: string, offset: number, nowMs: number, extra: { reason?: string; maxReconsumeTimes?: number; orderlyAttempts?: number } = {}): ApplyResult {
  return apply(state, sendBackCommand(storedAt(state, topic, offset), { group: 'g', ...extra }, settings, nowMs));
}

/** The scheduler's proposal at nowMs, applied (nothing when nothing is due). */
function deliver(state: BrokerStateMachine, nowMs: number): number {
  const messages = state.dueTimers(nowMs, 1024, 4 << 20);
  if (messages.length === 0) return 0;
  const result = apply(state, { kind: 'deliverDue', timestampMs: nowMs, messages });
  return result.kind === 'deliverDue' ? result.delivered : -1;
}

function setUp(state: BrokerStateMachine): void {
  apply(state, { kind: 'createTopic', topic: 'orders', queues: 1 });
  apply(state, { kind: 'produce', producerId: 'p', seq: 1, timestampMs: 500, messages: [{ msgId: 'm1', topic: 'orders', queueId: 0, body: bytes('refund 7'), tag: 'T', keys: ['order-7'], properties: { a: '1' } }] });
}

beforeEach(() => {
  temp = tempDir('lmq-broker-retry-');
  machines = new Machines(temp.dir);
  log = new MemoryLog();
});

afterEach(async () => {
  await machines.closeAll();
  temp.cleanup();
});

describe('broker retry – the delay sequence and the DLQ', () => {
  it('retry n waits level n + 2 (the last level past the end), keeps msgId and origin, and the failure after maxReconsumeTimes is a dead letter', () => {
    const a = machine('a');
    setUp(a);
    expect(retryLevel(1, 5)).toBe(3);
    expect(retryLevel(4, 5)).toBe(5);
    const origin = { msgId: 'm1', topic: 'orders', queueId: 0, offset: 0 };
    let from = { topic: 'orders', offset: 0 };
    let nowMs = 1000;
    for (let n = 1; n <= settings.maxReconsumeTimes; n++) {
      const dueMs = nowMs + LEVELS_MS[Math.min(n + 2, LEVELS_MS.length) - 1]!;
      expect(sendBack(a, from.topic, from.offset, nowMs)).toEqual({ kind: 'sendBack', target: 'retry', reconsumeTimes: n, deliverAtMs: dueMs, duplicate: false });
      expect(deliver(a, dueMs - 1)).toBe(0);
      expect(a.queueRange(RETRY, 0).nextOffset).toBe(n - 1);
      expect(deliver(a, dueMs)).toBe(1);
      const copy = storedAt(a, RETRY, n - 1);
      expect(copy).toMatchObject({ msgId: 'm1', topic: RETRY, reconsumeTimes: n, origin, firstFailureMs: 1000, deliverAtMs: dueMs, tag: 'T', keys: ['order-7'], properties: { a: '1' } });
      expect(Buffer.from(copy.body).toString()).toBe('refund 7');
      expect(copy.storeTimestampMs).toBeGreaterThanOrEqual(dueMs);
      from = { topic: RETRY, offset: n - 1 };
      nowMs = dueMs + 50;
    }
    const attempts = settings.maxReconsumeTimes + 1;
    expect(sendBack(a, from.topic, from.offset, nowMs, { reason: 'db down' })).toEqual({ kind: 'sendBack', target: 'dlq', reconsumeTimes: attempts, deliverAtMs: null, duplicate: false });
    expect(a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20)).toEqual([]);
    expect(storedAt(a, DLQ, 0)).toMatchObject({ msgId: 'm1', origin, deadLetter: { reason: 'db down', attempts, firstFailureMs: 1000, lastFailureMs: nowMs } });
    expect(a.deadLetters('g', 0, 10)).toEqual({
      deadLetters: [{ msgId: 'm1', topic: 'orders', queue: 0, offset: 0, reason: 'db down', attempts, firstFailureMs: 1000, lastFailureMs: nowMs, dlqOffset: 0, resent: false }],
      nextOffset: 1,
    });
    expect(a.deadLetterCounts('g')).toEqual({ messages: 1, resent: 0 });
    expect(a.groups()).toEqual(['g']);
  });

  it('a request may lower maxReconsumeTimes: 0 sends the first failure to the DLQ with attempts 1', () => {
    const a = machine('a');
    setUp(a);
    expect(sendBack(a, 'orders', 0, 1000, { maxReconsumeTimes: 0 })).toMatchObject({ target: 'dlq', reconsumeTimes: 1 });
    expect(a.deadLetters('g', 0, 10).deadLetters[0]).toMatchObject({ attempts: 1, reason: 'consumer returned RECONSUME_LATER' });
  });

  it('an orderly consumer\'s dead letter goes to the DLQ at once with the attempts it counted (its retries stayed in place)', () => {
    const a = machine('a');
    setUp(a);
    expect(sendBack(a, 'orders', 0, 1000, { orderlyAttempts: 7, reason: 'orderly consumption suspended 7 times' })).toMatchObject({ target: 'dlq' });
    expect(a.deadLetters('g', 0, 10).deadLetters[0]).toMatchObject({ attempts: 7, reason: 'orderly consumption suspended 7 times', offset: 0 });
  });

  it('a duplicate sendBack stores nothing; a commit past the offset finishes the message and drops its record', () => {
    const a = machine('a');
    setUp(a);
    const command = sendBackCommand(storedAt(a, 'orders', 0), { group: 'g' }, settings, 1000);
    const first = apply(a, command);
    const state = () => ({ timers: a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20), dump: { ...(dumpState(a) as object), appliedIndex: 0 } });
    const after = state();
    expect(after.timers).toHaveLength(1);
    // The client's retry of the same request, at another time: the same answer, nothing stored.
    expect(sendBack(a, 'orders', 0, 5000)).toEqual({ ...first, duplicate: true });
    expect(apply(a, command)).toEqual({ ...first, duplicate: true });
    expect(state()).toEqual(after);
    apply(a, { kind: 'commitOffsets', group: 'g', offsets: [{ topic: 'orders', queueId: 0, offset: 1 }] });
    // Its record is gone with the commit, and the committed offset still makes it a duplicate.
    expect(sendBack(a, 'orders', 0, 6000)).toMatchObject({ target: 'retry', reconsumeTimes: 1, deliverAtMs: 6000 + 300, duplicate: true });
    expect(a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20)).toHaveLength(1);
    // A reset back to the message starts the queue over: a new failure is sent back again.
    apply(a, { kind: 'resetOffsets', group: 'g', offsets: [{ topic: 'orders', queueId: 0, offset: 0 }] });
    expect(sendBack(a, 'orders', 0, 7000)).toMatchObject({ target: 'retry', duplicate: false });
    expect(a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20)).toHaveLength(2);
  });

  it('dlq resend re-delivers each dead letter once, through %RETRY% at once, with reconsumeTimes 0', async () => {
    const a = machine('a');
    setUp(a);
    sendBack(a, 'orders', 0, 1000, { maxReconsumeTimes: 0, reason: 'bad' });
    const pending = a.pendingDeadLetters('g', undefined, 1024, 4 << 20);
    expect(pending.map((m) => m.offset)).toEqual([0]);
    const command = dlqResendCommand('g', pending, 2000);
    expect(apply(a, command)).toEqual({ kind: 'dlqResend', resent: 1 });
    const copy = storedAt(a, RETRY, 0);
    expect(copy).toMatchObject({ msgId: 'm1', origin: { msgId: 'm1', topic: 'orders', queueId: 0, offset: 0 }, storeTimestampMs: 2000 });
    expect(copy.reconsumeTimes).toBeUndefined();
    expect(copy.deadLetter).toBeUndefined();
    // Once only: nothing is pending, and a replayed command resends nothing.
    expect(a.pendingDeadLetters('g', undefined, 1024, 4 << 20)).toEqual([]);
    expect(apply(a, command)).toEqual({ kind: 'dlqResend', resent: 0 });
    expect(a.queueRange(RETRY, 0).nextOffset).toBe(1);
    expect(a.deadLetters('g', 0, 10).deadLetters[0]!.resent).toBe(true);
    expect(a.deadLetterCounts('g')).toEqual({ messages: 1, resent: 1 });
    expect(a.pendingDeadLetters('g', 'other', 1024, 4 << 20)).toEqual([]);
    // Retention forgets the dead letter, and its resent mark with it.
    const next = log.all().length + 1;
    expect(apply(a, { kind: 'truncateLog', firstIndex: next })).toMatchObject({ ok: true });
    expect(a.deadLetterCounts('g')).toEqual({ messages: 0, resent: 0 });
    expect(a.deadLetters('g', 0, 10)).toEqual({ deadLetters: [], nextOffset: 1 });
    await a.close();
    const store = BrokerStore.open(join(temp.dir, 'a'), 'unsynced');
    expect(store.isDlqResent('g', 0)).toBe(false);
    await store.close();
  });
});

describe('broker retry – snapshots', () => {
  it('a restore keeps sentBack and dlqResent records and pending retry timers', async () => {
    const a = machine('a');
    setUp(a);
    apply(a, { kind: 'produce', producerId: 'p', seq: 2, timestampMs: 600, messages: [{ msgId: 'm2', topic: 'orders', queueId: 0, body: bytes('two') }] });
    sendBack(a, 'orders', 0, 1000, { maxReconsumeTimes: 0 });
    apply(a, dlqResendCommand('g', a.pendingDeadLetters('g', undefined, 1024, 4 << 20), 1100));
    sendBack(a, 'orders', 1, 1200); // a pending retry timer, due at 1500
    const snapshot = a.beginSnapshot(128);
    const b = machine('b');
    await b.restoreSnapshot(snapshot.index, await payloadOf(snapshot), log);
    expect(b.stateDigest()).toBe(a.stateDigest());
    const again = log.append(sendBackCommand(storedAt(a, 'orders', 1), { group: 'g' }, settings, 1300));
    for (const state of [a, b]) {
      expect(state.apply([again])).toEqual([expect.objectContaining({ duplicate: true, deliverAtMs: 1500 })]);
      expect(state.pendingDeadLetters('g', undefined, 1024, 4 << 20)).toEqual([]);
    }
    const due = a.dueTimers(1500, 10, 1 << 20);
    expect(due.map((d) => d.message.msgId)).toEqual(['m2']);
    expect(b.dueTimers(1500, 10, 1 << 20)).toEqual(due);
    const entry = log.append({ kind: 'deliverDue', timestampMs: 1500, messages: due });
    expect(b.apply([entry])).toEqual(a.apply([entry]));
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(dumpState(b)).toEqual(dumpState(a));
  });
});
