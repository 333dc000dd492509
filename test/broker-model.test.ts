import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { applyRange, MemoryLog, tempDir } from './broker-helpers.js';

// A plain in-memory model of the broker's semantics, written from the rules (not from the
// implementation): the state machine must match it result by result and state by state.

const TOPICS = ['t0', 't1', 't2', 't3']; // t3 is never created
const PRODUCERS = ['p0', 'p1', 'p2', 'p3'];
const GROUPS = ['g0', 'g1'];
const KEYS = ['k0', 'k1', 'k2'];
const MAX_PRODUCERS = 2;
const DEDUP_WINDOW = 3;

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
  readonly firstByMsgId = new Map<string, { topic: string; queueId: number; offset: number }>();
  lastStoreTimestampMs = 0;

  apply(index: number, command: BrokerCommand | null): Result {
    if (command === null) return { kind: 'noop' };
    switch (command.kind) {
      case 'createTopic':
        if (this.topics.has(command.topic)) return { kind: 'createTopic', ok: false, error: 'LMQ_TOPIC_EXISTS' };
        this.topics.set(command.topic, command.queues);
        for (let q = 0; q < command.queues; q++) this.queues.set(`${command.topic}/${q}`, []);
        return { kind: 'createTopic', ok: true };
      case 'produce':
        return this.produce(index, command);
      default:
        return this.moveOffsets(command);
    }
  }

  private problem(topic: string, queueId: number): Result | undefined {
    const queues = this.topics.get(topic);
    if (queues === undefined) return { error: 'LMQ_TOPIC_NOT_FOUND' };
    return queueId < queues ? undefined : { error: 'LMQ_BAD_INPUT' };
  }

  private produce(index: number, command: Extract<BrokerCommand, { kind: 'produce' }>): Result {
    const producer = this.producers.get(command.producerId);
    const lastSeq = producer?.lastSeq ?? 0;
    if (command.seq > lastSeq + 1) return { kind: 'produce', error: 'LMQ_OUT_OF_ORDER', expectedSeq: lastSeq + 1 };
    if (producer !== undefined && command.seq <= lastSeq) {
      producer.lastUsed = index;
      const original = producer.window.find((w) => w.seq === command.seq)?.result;
      if (original === undefined) return { kind: 'produce', placed: [], duplicate: true };
      return 'placed' in original ? { ...original, duplicate: true } : original;
    }
    const problem = command.messages.map((m) => this.problem(m.topic, m.queueId)).find((p) => p !== undefined);
    const result = problem !== undefined ? { kind: 'produce', ...problem } : { kind: 'produce', placed: this.place(index, command), duplicate: false };
    const window = [...(producer?.window ?? []), { seq: command.seq, result }].slice(-DEDUP_WINDOW);
    this.producers.set(command.producerId, { lastSeq: command.seq, lastUsed: index, window });
    if (this.producers.size > MAX_PRODUCERS) {
      const [oldest] = [...this.producers].sort((a, b) => a[1].lastUsed - b[1].lastUsed);
      this.producers.delete(oldest![0]);
    }
    return result;
  }

  private place(index: number, command: Extract<BrokerCommand, { kind: 'produce' }>): Result[] {
    this.lastStoreTimestampMs = Math.max(this.lastStoreTimestampMs, command.timestampMs);
    return command.messages.map((m) => {
      const queue = this.queues.get(`${m.topic}/${m.queueId}`)!;
      const offset = queue.length;
      queue.push({ msgId: m.msgId, body: Buffer.from(m.body).toString('hex'), keys: m.keys ?? [], logIndex: index, storeTimestampMs: this.lastStoreTimestampMs });
      if (!this.firstByMsgId.has(m.msgId)) this.firstByMsgId.set(m.msgId, { topic: m.topic, queueId: m.queueId, offset });
      return { msgId: m.msgId, queueId: m.queueId, offset };
    });
  }

  private moveOffsets(command: Extract<BrokerCommand, { kind: 'commitOffsets' | 'resetOffsets' }>): Result {
    const problem = command.offsets.map((p) => this.problem(p.topic, p.queueId)).find((p) => p !== undefined);
    if (problem !== undefined) return { kind: command.kind, ...problem };
    for (const p of command.offsets) {
      const key = `${command.group}|${p.topic}|${p.queueId}`;
      const clamped = Math.min(p.offset, this.queues.get(`${p.topic}/${p.queueId}`)!.length);
      const current = this.offsets.get(key);
      this.offsets.set(key, command.kind === 'commitOffsets' && current !== undefined ? Math.max(current, clamped) : clamped);
    }
    return { kind: command.kind, ok: true };
  }
}

// --- random command sequences -------------------------------------------------------------

// Mostly valid queues of the two topics every sequence starts with; sometimes t2 (created only
// by chance), t3 (never created) or a queue beyond the topic's count.
const topicIndex = fc.oneof({ weight: 12, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) });
const queueIndex = fc.oneof({ weight: 15, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) });
const messageOp = fc.record({ topic: topicIndex, queueId: queueIndex, key: fc.option(fc.nat(2)), size: fc.nat(6) });
const op = fc.oneof(
  { weight: 1, arbitrary: fc.record({ t: fc.constant('create' as const), topic: fc.nat(2), queues: fc.integer({ min: 1, max: 3 }) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('produce' as const),
      // Mostly two producers (both fit in maxProducers, so their windows fill), sometimes two
      // more that force evictions.
      producer: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) }),
      mode: fc.constantFrom('next', 'next', 'next', 'retry', 'retry', 'gap', 'one'),
      pick: fc.nat(),
      timestampMs: fc.nat(100),
      messages: fc.array(messageOp, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('offsets' as const),
      reset: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 3, arbitrary: fc.constant(false) }),
      group: fc.nat(1),
      topic: topicIndex,
      // Mostly queue 0 and small offsets, so commits meet earlier commits of the same queue.
      queueId: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: queueIndex }),
      offset: fc.nat(6),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'noop' as const }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** Turns ops into commands like clients would send them: in-order seqs, retries of old sends, gaps. */
function toCommands(ops: Op[]): (BrokerCommand | null)[] {
  const sentMax = new Map<string, number>();
  const sent = new Map<string, BrokerCommand>();
  const start: BrokerCommand[] = [
    { kind: 'createTopic', topic: 't0', queues: 2 },
    { kind: 'createTopic', topic: 't1', queues: 3 },
  ];
  return [...start, ...ops.map((o, i): BrokerCommand | null => {
    if (o.t === 'noop') return null;
    if (o.t === 'create') return { kind: 'createTopic', topic: TOPICS[o.topic]!, queues: o.queues };
    if (o.t === 'offsets') {
      return { kind: o.reset ? 'resetOffsets' : 'commitOffsets', group: GROUPS[o.group]!, offsets: [{ topic: TOPICS[o.topic]!, queueId: o.queueId, offset: o.offset }] };
    }
    const producerId = PRODUCERS[o.producer]!;
    const max = sentMax.get(producerId) ?? 0;
    const seq = o.mode === 'next' ? max + 1 : o.mode === 'gap' ? max + 2 : o.mode === 'one' ? 1 : 1 + (o.pick % Math.max(1, max));
    const previous = sent.get(`${producerId}#${seq}`);
    if (o.mode === 'retry' && previous !== undefined) return previous;
    if (o.mode === 'next') sentMax.set(producerId, seq);
    const messages = o.messages.map((m, j): ProduceMessage => {
      const message: ProduceMessage = { msgId: `m${i}-${j}`, topic: TOPICS[m.topic]!, queueId: m.queueId, body: Uint8Array.from({ length: m.size }, (_, b) => (i + b) % 256) };
      if (m.key !== null) message.keys = [KEYS[m.key]!];
      return message;
    });
    const command: BrokerCommand = { kind: 'produce', producerId, seq, timestampMs: o.timestampMs, messages };
    sent.set(`${producerId}#${seq}`, command);
    return command;
  })];
}

function withoutMessages(result: ApplyResult): Result {
  const { message: _message, ...rest } = result as Result;
  return rest;
}

function expectMatchesModel(machine: BrokerStateMachine, model: Model): void {
  expect(machine.topics()).toEqual([...model.topics].sort().map(([topic, queues]) => ({ topic, queues })));
  for (const [queueKey, messages] of model.queues) {
    const [topic, queueId] = [queueKey.split('/')[0]!, Number(queueKey.split('/')[1])];
    expect(machine.queueRange(topic, queueId)).toEqual({ minOffset: 0, nextOffset: messages.length });
    const stored = machine.read(topic, queueId, 0, 4096, 1 << 20);
    expect(stored.map((m) => ({ msgId: m.msgId, body: Buffer.from(m.body).toString('hex'), keys: m.keys ?? [], logIndex: m.logIndex, storeTimestampMs: m.storeTimestampMs }))).toEqual(messages);
    for (const t of [0, 50, 101]) {
      const expected = messages.findIndex((m) => m.storeTimestampMs >= t);
      expect(machine.offsetForTimestamp(topic, queueId, t)).toBe(expected === -1 ? messages.length : expected);
    }
  }
  for (const group of GROUPS) {
    for (const [topic] of model.topics) {
      for (let q = 0; q < model.topics.get(topic)!; q++) expect(machine.committedOffset(group, topic, q)).toBe(model.offsets.get(`${group}|${topic}|${q}`));
    }
  }
  expect(machine.groups()).toEqual(GROUPS.filter((g) => [...model.offsets.keys()].some((k) => k.startsWith(`${g}|`))));
  for (const [topic] of model.topics) {
    for (const key of KEYS) {
      const expected = [...model.queues].filter(([k]) => k.startsWith(`${topic}/`)).flatMap(([k, ms]) => ms.map((m, offset) => ({ m, queueId: Number(k.split('/')[1]), offset })))
        .filter(({ m }) => m.keys.includes(key)).sort((a, b) => a.m.logIndex - b.m.logIndex || a.m.msgId.localeCompare(b.m.msgId, 'en', { numeric: true }))
        .map(({ queueId, offset }) => [queueId, offset]);
      expect(machine.lookupByKey(topic, key, 1024).map((m) => [m.queueId, m.offset])).toEqual(expected);
    }
  }
  for (const [msgId, position] of model.firstByMsgId) expect(machine.lookupByMsgId(msgId)).toMatchObject(position);
}

describe('broker state machine – model', () => {
  it('matches an in-memory model, and two replicas fed the same log agree exactly', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 60 }), fc.integer({ min: 1, max: 8 }), async (ops, batchEntries) => {
        const temp = tempDir('lmq-broker-model-');
        const log = new MemoryLog();
        const options = { log, maxProducers: MAX_PRODUCERS, dedupWindowPerProducer: DEDUP_WINDOW };
        const replicaA = BrokerStateMachine.open({ dir: join(temp.dir, 'a'), ...options });
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
      }),
      { numRuns: 30 },
    );
  });
});
