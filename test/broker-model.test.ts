import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { applyRange, MemoryLog, tempDir } from './broker-helpers.js';
import { DEDUP_WINDOW, GROUPS, KEYS, MAX_PRODUCERS, op, opWithBatches, toCommands } from './broker-workload.js';

// A plain in-memory model of the broker's semantics, written from the rules (not from the
// implementation): the state machine must match it result by result and state by state.


interface ModelMessage {
  msgId: string;
  body: string;
  keys: string[];
  logIndex: number;
  storeTimestampMs: number;
}
type Result = Record<string, unknown>;

class Model {
  readonly topics = new Map<string, number>();
  readonly queues = new Map<string, ModelMessage[]>();
  readonly offsets = new Map<string, number>();
  readonly producers = new Map<string, { lastSeq: number; lastUsed: number; window: { seq: number; result: Result }[] }>();
  /** Every stored copy per msgId, in log order. */
  readonly copiesByMsgId = new Map<string, { topic: string; queueId: number; offset: number; logIndex: number }[]>();
  /** Retention: the first log index still kept, and per queue the first offset still stored. */
  retainedFromIndex = 1;
  readonly minOffsets = new Map<string, number>();
  lastStoreTimestampMs = 0;
  /** Each stored message's place in the order of placement: log order, then its entry's order. */
  readonly placementOrder = new Map<ModelMessage, number>();

  apply(index: number, command: BrokerCommand | null): Result {
    if (command === null) return { kind: 'noop' };
    switch (command.kind) {
      case 'createTopic':
        if (this.topics.has(command.topic)) return { kind: 'createTopic', ok: false, error: 'LMQ_TOPIC_EXISTS' };
        this.topics.set(command.topic, command.queues);
        for (let q = 0; q < command.queues; q++) this.queues.set(`${command.topic}/${q}`, []);
        return { kind: 'createTopic', ok: true };
      case 'produce':
        return this.produce(index, index, command, command.timestampMs);
      case 'produceBatch': {
        // Each produce as if it were its own entry at this index, used in the batch's order; the
        // entry stores its messages at its latest produce's time.
        const entryTimestampMs = Math.max(...command.produces.map((produce) => produce.timestampMs));
        return { kind: 'produceBatch', results: command.produces.map((produce, k) => this.produce(index, index + k / 100, produce, entryTimestampMs)) };
      }
      case 'truncateLog':
        return this.truncate(index, command.firstIndex);
      case 'lockQueues':
      case 'unlockQueues':
        throw new Error('queue locks have a model of their own (test/broker-queue-locks.test.ts)');
      case 'commitOffsets':
      case 'resetOffsets':
        return this.moveOffsets(command);
      default:
        throw new Error(`the model does not cover ${command.kind}`);
    }
  }

  minOffset(queue: string): number {
    return this.minOffsets.get(queue) ?? 0;
  }

  /** The oldest copy of msgId at or after retainedFromIndex. */
  firstRetained(msgId: string): { topic: string; queueId: number; offset: number } | undefined {
    const copy = this.copiesByMsgId.get(msgId)?.find((c) => c.logIndex >= this.retainedFromIndex);
    return copy === undefined ? undefined : { topic: copy.topic, queueId: copy.queueId, offset: copy.offset };
  }

  private truncate(index: number, firstIndex: number): Result {
    if (firstIndex > index) return { kind: 'truncateLog', error: 'LMQ_BAD_INPUT' };
    this.retainedFromIndex = Math.max(this.retainedFromIndex, firstIndex);
    for (const [queue, messages] of this.queues) {
      const first = messages.findIndex((m) => m.logIndex >= this.retainedFromIndex);
      this.minOffsets.set(queue, Math.max(this.minOffset(queue), first === -1 ? messages.length : first));
    }
    return { kind: 'truncateLog', ok: true, retainedFromIndex: this.retainedFromIndex };
  }

  private problem(topic: string, queueId: number): Result | undefined {
    const queues = this.topics.get(topic);
    if (queues === undefined) return { error: 'LMQ_TOPIC_NOT_FOUND' };
    return queueId < queues ? undefined : { error: 'LMQ_BAD_INPUT' };
  }

  /** `use`: when the producer was used, for least-recently-used eviction (its produce's index, and order within a batch). */
  private produce(index: number, use: number, command: Extract<BrokerCommand, { kind: 'produce' }>, entryTimestampMs: number): Result {
    const producer = this.producers.get(command.producerId);
    const lastSeq = producer?.lastSeq ?? 0;
    if (command.seq > lastSeq + 1) return { kind: 'produce', error: 'LMQ_OUT_OF_ORDER', expectedSeq: lastSeq + 1 };
    if (producer !== undefined && command.seq <= lastSeq) {
      producer.lastUsed = use;
      const original = producer.window.find((w) => w.seq === command.seq)?.result;
      if (original === undefined) return { kind: 'produce', placed: [], duplicate: true };
      return 'placed' in original ? { ...original, duplicate: true } : original;
    }
    const problem = command.messages.map((m) => this.problem(m.topic, m.queueId)).find((p) => p !== undefined);
    const result = problem !== undefined ? { kind: 'produce', ...problem } : { kind: 'produce', placed: this.place(index, command, entryTimestampMs), duplicate: false };
    const window = [...(producer?.window ?? []), { seq: command.seq, result }].slice(-DEDUP_WINDOW);
    this.producers.set(command.producerId, { lastSeq: command.seq, lastUsed: use, window });
    if (this.producers.size > MAX_PRODUCERS) {
      const [oldest] = [...this.producers].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      this.producers.delete(oldest![0]);
    }
    return result;
  }

  private place(index: number, command: Extract<BrokerCommand, { kind: 'produce' }>, entryTimestampMs: number): Result[] {
    this.lastStoreTimestampMs = Math.max(this.lastStoreTimestampMs, entryTimestampMs);
    return command.messages.map((m) => {
      const queue = this.queues.get(`${m.topic}/${m.queueId}`)!;
      const offset = queue.length;
      const stored = { msgId: m.msgId, body: Buffer.from(m.body).toString('hex'), keys: m.keys ?? [], logIndex: index, storeTimestampMs: this.lastStoreTimestampMs };
      queue.push(stored);
      this.placementOrder.set(stored, this.placementOrder.size);
      const copies = this.copiesByMsgId.get(m.msgId) ?? [];
      copies.push({ topic: m.topic, queueId: m.queueId, offset, logIndex: index });
      this.copiesByMsgId.set(m.msgId, copies);
      return { msgId: m.msgId, queueId: m.queueId, offset };
    });
  }

  private moveOffsets(command: Extract<BrokerCommand, { kind: 'commitOffsets' | 'resetOffsets' }>): Result {
    const problem = command.offsets.map((p) => this.problem(p.topic, p.queueId)).find((p) => p !== undefined);
    if (problem !== undefined) return { kind: command.kind, ...problem };
    for (const p of command.offsets) {
      const key = `${command.group}|${p.topic}|${p.queueId}`;
      const queue = `${p.topic}/${p.queueId}`;
      const clamped = Math.min(Math.max(p.offset, this.minOffset(queue)), this.queues.get(queue)!.length);
      const current = this.offsets.get(key);
      this.offsets.set(key, command.kind === 'commitOffsets' && current !== undefined ? Math.max(current, clamped) : clamped);
    }
    return { kind: command.kind, ok: true };
  }
}

function withoutMessages(result: ApplyResult): Result {
  if (result.kind === 'produceBatch') return { kind: 'produceBatch', results: result.results.map(withoutMessages) };
  const { message: _message, ...rest } = result as Result;
  return rest;
}

function expectMatchesModel(machine: BrokerStateMachine, model: Model): void {
  expect(machine.topics()).toEqual([...model.topics].sort().map(([topic, queues]) => ({ topic, queues })));
  expect(machine.retainedFromIndex()).toBe(model.retainedFromIndex);
  for (const [queueKey, all] of model.queues) {
    const [topic, queueId] = [queueKey.split('/')[0]!, Number(queueKey.split('/')[1])];
    const minOffset = model.minOffset(queueKey);
    const messages = all.slice(minOffset);
    expect(machine.queueRange(topic, queueId)).toEqual({ minOffset, nextOffset: all.length });
    // A read from below minOffset starts at minOffset.
    const stored = machine.readFrom(topic, queueId, 0, 4096, 1 << 20);
    expect(stored.startOffset).toBe(minOffset);
    expect(stored.messages.map((m) => ({ msgId: m.msgId, body: Buffer.from(m.body).toString('hex'), keys: m.keys ?? [], logIndex: m.logIndex, storeTimestampMs: m.storeTimestampMs }))).toEqual(messages);
    for (const t of [0, 50, 101]) {
      const expected = messages.findIndex((m) => m.storeTimestampMs >= t);
      expect(machine.offsetForTimestamp(topic, queueId, t)).toBe(expected === -1 ? all.length : minOffset + expected);
    }
  }
  for (const group of GROUPS) {
    for (const [topic] of model.topics) {
      for (let q = 0; q < model.topics.get(topic)!; q++) {
        const committed = model.offsets.get(`${group}|${topic}|${q}`);
        const expected = committed === undefined ? undefined : Math.max(committed, model.minOffset(`${topic}/${q}`));
        expect(machine.committedOffset(group, topic, q)).toBe(expected);
      }
    }
  }
  expect(machine.groups()).toEqual(GROUPS.filter((g) => [...model.offsets.keys()].some((k) => k.startsWith(`${g}|`))));
  for (const [topic] of model.topics) {
    for (const key of KEYS) {
      const expected = [...model.queues].filter(([k]) => k.startsWith(`${topic}/`)).flatMap(([k, ms]) => ms.map((m, offset) => ({ m, queueId: Number(k.split('/')[1]), offset })))
        .filter(({ m }) => m.keys.includes(key) && m.logIndex >= model.retainedFromIndex)
        .sort((a, b) => model.placementOrder.get(a.m)! - model.placementOrder.get(b.m)!)
        .map(({ queueId, offset }) => [queueId, offset]);
      expect(machine.lookupByKey(topic, key, 1024).map((m) => [m.queueId, m.offset])).toEqual(expected);
    }
  }
  for (const msgId of model.copiesByMsgId.keys()) {
    const expected = model.firstRetained(msgId);
    if (expected === undefined) expect(machine.lookupByMsgId(msgId)).toBeUndefined();
    else expect(machine.lookupByMsgId(msgId)).toMatchObject(expected);
  }
}

/** The state machine matches the model on every result and the whole state; two replicas agree. */
function modelProperty(ops: fc.Arbitrary<Parameters<typeof toCommands>[0]>) {
  return fc.asyncProperty(ops, fc.integer({ min: 1, max: 8 }), async (ops, batchEntries) => {
    const temp = tempDir('lmq-broker-model-');
    const log = new MemoryLog();
    const options = { log, maxProducers: MAX_PRODUCERS, dedupWindowPerProducer: DEDUP_WINDOW };
    // A deletes what retention forgets a little per apply, B at once: their digests agree.
    const replicaA = BrokerStateMachine.open({ dir: join(temp.dir, 'a'), ...options, minGarbagePerApply: 1 });
    const replicaB = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), ...options });
    try {
      const commands = toCommands(ops);
      const model = new Model();
      const expected = commands.map((command) => model.apply(log.append(command).index, command));
      const resultsA = applyRange(replicaA, log, 1, commands.length, batchEntries) as ApplyResult[];
      const resultsB = applyRange(replicaB, log, 1, commands.length, 1) as ApplyResult[];
      expect(resultsA.map(withoutMessages)).toEqual(expected);
      expect(resultsB).toEqual(resultsA);
      expectMatchesModel(replicaA, model);
      expect(replicaB.stateDigest()).toBe(replicaA.stateDigest());
    } finally {
      await Promise.all([replicaA.close(), replicaB.close()]);
      temp.cleanup();
    }
  });
}

describe('broker state machine – model', () => {
  it('matches an in-memory model, and two replicas fed the same log agree exactly', async () => {
    await fc.assert(modelProperty(fc.array(op, { minLength: 10, maxLength: 60 })), { numRuns: 30 });
  });

  it('… with produceBatch entries: each produce applied as its own entry would be, in the batch\'s order', async () => {
    await fc.assert(modelProperty(fc.array(opWithBatches, { minLength: 10, maxLength: 60 })), { numRuns: 30 });
  });
});
