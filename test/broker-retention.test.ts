import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import { unitAt, unitCount } from '../src/broker/consume-queue-codec.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import type { Key } from '../src/broker/store.js';
import { bytes, MemoryLog, tempDir } from './broker-helpers.js';

// Retention boundaries of truncateLog, by hand: where each queue's minOffset lands, what reads,
// lookups and group offsets answer afterwards, and that forgotten records really go.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function setup(minGarbagePerApply?: number) {
  const temp = tempDir('lmq-broker-retention-');
  const log = new MemoryLog();
  const machine = BrokerStateMachine.open({ dir: temp.dir, log, ...(minGarbagePerApply === undefined ? {} : { minGarbagePerApply }) });
  cleanups.push(async () => {
    await machine.close();
    temp.cleanup();
  });
  const seqs = new Map<string, number>();
  /** Appends and applies one command; returns its result. */
  const run = (command: BrokerCommand | null) => machine.apply([log.append(command)])[0]!;
  const produce = (messages: Omit<ProduceMessage, 'body'>[], timestampMs = 100, producerId = 'p') => {
    const seq = (seqs.get(producerId) ?? 0) + 1;
    seqs.set(producerId, seq);
    const result = run({ kind: 'produce', producerId, seq, timestampMs, messages: messages.map((m) => ({ ...m, body: bytes(m.msgId) })) });
    expect(result).toMatchObject({ kind: 'produce', duplicate: false });
    return result;
  };
  return { log, machine, run, produce };
}

/** Records of one kind still in lmdb (garbage included): what the store really holds. */
function storedKeys(machine: BrokerStateMachine, kind: string): Key[] {
  const store = machine['store'];
  store.flush();
  return store.range([kind], [kind, '\uffff'], 1_000_000).map(({ key }) => key);
}

/** Messages the consume queue records still hold (units that are not null). */
function storedUnits(machine: BrokerStateMachine): number {
  const store = machine['store'];
  store.flush();
  const present = (record: Uint8Array) => Array.from({ length: unitCount(record) }, (_, i) => unitAt(record, i)).filter((unit) => unit !== null).length;
  return store.range(['cq'], ['cq', '\uffff'], 1_000_000).reduce((sum, { value }) => sum + present(value as Uint8Array), 0);
}

describe('broker retention – truncateLog boundaries', () => {
  it('moves each queue to its first message at or after firstIndex: at a batch boundary and inside a queue', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 2 }); // 1
    produce([{ msgId: 'a', topic: 't', queueId: 0 }, { msgId: 'b', topic: 't', queueId: 0 }]); // 2: q0 0,1
    produce([{ msgId: 'c', topic: 't', queueId: 1 }]); // 3: q1 0
    produce([{ msgId: 'd', topic: 't', queueId: 0 }, { msgId: 'e', topic: 't', queueId: 1 }]); // 4: q0 2, q1 1
    expect(run({ kind: 'truncateLog', firstIndex: 3 })).toEqual({ kind: 'truncateLog', ok: true, retainedFromIndex: 3 });
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 2, nextOffset: 3 });
    expect(machine.queueRange('t', 1)).toEqual({ minOffset: 0, nextOffset: 2 });
    expect(run({ kind: 'truncateLog', firstIndex: 4 })).toMatchObject({ ok: true, retainedFromIndex: 4 });
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 2, nextOffset: 3 });
    expect(machine.queueRange('t', 1)).toEqual({ minOffset: 1, nextOffset: 2 });
    // Reads from below minOffset start at it and say so.
    const read = machine.readFrom('t', 0, 0, 10, 1 << 20);
    expect(read.startOffset).toBe(2);
    expect(read.messages.map((m) => m.msgId)).toEqual(['d']);
    expect(machine.read('t', 1, 0, 10, 1 << 20).map((m) => m.offset)).toEqual([1]);
  });

  it('past every message of a queue: the queue is empty at its end; a firstIndex at or below the current one changes nothing', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    produce([{ msgId: 'a', topic: 't', queueId: 0 }]);
    run(null);
    expect(run({ kind: 'truncateLog', firstIndex: 4 })).toMatchObject({ ok: true, retainedFromIndex: 4 }); // its own index
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 1, nextOffset: 1 });
    expect(machine.readFrom('t', 0, 0, 10, 1 << 20)).toEqual({ startOffset: 1, messages: [] });
    expect(machine.offsetForTimestamp('t', 0, 0)).toBe(1);
    const digest = machine.stateDigest();
    for (const firstIndex of [4, 2, 1]) expect(run({ kind: 'truncateLog', firstIndex })).toEqual({ kind: 'truncateLog', ok: true, retainedFromIndex: 4 });
    run({ kind: 'truncateLog', firstIndex: 4 });
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 1, nextOffset: 1 });
    expect(machine.retainedFromIndex()).toBe(4);
    expect(digest).not.toBe(machine.stateDigest()); // appliedIndex moved, nothing else: checked by the model test
    // New messages after the truncate are stored and read from minOffset on.
    produce([{ msgId: 'b', topic: 't', queueId: 0 }]);
    expect(machine.read('t', 0, 0, 10, 1 << 20).map((m) => [m.offset, m.msgId])).toEqual([[1, 'b']]);
  });

  it('refuses a firstIndex past its own entry, changing nothing', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    produce([{ msgId: 'a', topic: 't', queueId: 0 }]);
    const result = run({ kind: 'truncateLog', firstIndex: 4 });
    expect(result).toMatchObject({ kind: 'truncateLog', error: 'LMQ_BAD_INPUT' });
    expect((result as { message: string }).message).toMatch(/at log index 3 asks to keep the log from index 4/);
    expect(machine.retainedFromIndex()).toBe(1);
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 0, nextOffset: 1 });
  });

  it('a committed offset below minOffset counts as minOffset: lag, resume and commits', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    for (const id of ['a', 'b', 'c']) produce([{ msgId: id, topic: 't', queueId: 0 }]); // 2, 3, 4
    run({ kind: 'commitOffsets', group: 'g', offsets: [{ topic: 't', queueId: 0, offset: 1 }] });
    run({ kind: 'truncateLog', firstIndex: 4 });
    expect(machine.committedOffset('g', 't', 0)).toBe(2);
    expect(machine.groupLag('g')).toEqual([{ topic: 't', queueId: 0, committedOffset: 2, nextOffset: 3, lag: 1 }]);
    run({ kind: 'commitOffsets', group: 'h', offsets: [{ topic: 't', queueId: 0, offset: 0 }] });
    expect(machine.committedOffset('h', 't', 0)).toBe(2);
  });

  it('msgId lookups answer the oldest retained copy; key lookups forget deleted messages', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 2 });
    produce([{ msgId: 'm', topic: 't', queueId: 0, keys: ['k', 'k'] }]); // 2
    produce([{ msgId: 'x', topic: 't', queueId: 1, keys: ['k'] }]); // 3
    // The same msgId stored again by a new producer session (its first send lost its ack).
    produce([{ msgId: 'm', topic: 't', queueId: 1, keys: ['k'] }], 100, 'p-new'); // 4
    expect(machine.lookupByMsgId('m')).toMatchObject({ queueId: 0, offset: 0, logIndex: 2 });
    expect(machine.lookupByKey('t', 'k', 10).map((m) => m.logIndex)).toEqual([2, 3, 4]);
    run({ kind: 'truncateLog', firstIndex: 3 });
    expect(machine.lookupByMsgId('m')).toMatchObject({ queueId: 1, offset: 1, logIndex: 4 });
    expect(machine.lookupByKey('t', 'k', 1).map((m) => m.logIndex)).toEqual([3]);
    run({ kind: 'truncateLog', firstIndex: 6 });
    expect(machine.lookupByMsgId('m')).toBeUndefined();
    expect(machine.lookupByMsgId('x')).toBeUndefined();
    expect(machine.lookupByKey('t', 'k', 10)).toEqual([]);
  });

  it('answers a msgId from its own record or its batch\'s run record, whichever copy is oldest retained', () => {
    const { machine, run, produce } = setup();
    run({ kind: 'createTopic', topic: 't', queues: 2 }); // 1
    produce([{ msgId: 's-1.1', topic: 't', queueId: 1 }]); // 2: one message, its own record
    produce([{ msgId: 's-1.0', topic: 't', queueId: 0 }, { msgId: 's-1.1', topic: 't', queueId: 0 }], 100, 'p2'); // 3: a run (s-1.0, s-1.1)
    produce([{ msgId: 's-1.0', topic: 't', queueId: 1 }, { msgId: 's-1.5', topic: 't', queueId: 1 }], 100, 'p3'); // 4: not a run (s-1.5 at position 1)
    expect(storedKeys(machine, 'msgrun')).toEqual([['msgrun', 's-1', 3]]);
    expect(storedKeys(machine, 'msgid').map((key) => key.slice(1))).toEqual([['s-1.0', 4, 0], ['s-1.1', 2, 0], ['s-1.5', 4, 1]]);
    expect(machine.lookupByMsgId('s-1.1')).toMatchObject({ queueId: 1, offset: 0, logIndex: 2 });
    expect(machine.lookupByMsgId('s-1.0')).toMatchObject({ queueId: 0, offset: 0, logIndex: 3 });
    expect(machine.lookupByMsgId('s-1.5')).toMatchObject({ queueId: 1, offset: 2, logIndex: 4 });
    expect(machine.lookupByMsgId('s-1.2')).toBeUndefined();
    run({ kind: 'truncateLog', firstIndex: 3 });
    expect(machine.lookupByMsgId('s-1.1')).toMatchObject({ queueId: 0, offset: 1, logIndex: 3 });
    run({ kind: 'truncateLog', firstIndex: 4 });
    expect(machine.lookupByMsgId('s-1.1')).toBeUndefined();
    expect(machine.lookupByMsgId('s-1.0')).toMatchObject({ queueId: 1, offset: 1, logIndex: 4 });
    while (machine.collectGarbage(1));
    expect(storedKeys(machine, 'msgrun')).toEqual([]);
    expect(storedKeys(machine, 'msgid').map((key) => key.slice(1))).toEqual([['s-1.0', 4, 0], ['s-1.5', 4, 1]]);
  });

  it('deletes the forgotten records a bounded amount per apply, without changing the digest', () => {
    const { machine, run, produce } = setup(1);
    run({ kind: 'createTopic', topic: 't', queues: 1 });
    for (let i = 0; i < 10; i++) produce([{ msgId: `m${i}`, topic: 't', queueId: 0, keys: [`k${i}`] }]);
    run({ kind: 'produce', producerId: 'p', seq: 99, timestampMs: 1, messages: [{ msgId: 'gap', topic: 't', queueId: 0, body: bytes('x') }] }); // 12: unplaced
    expect(storedKeys(machine, 'unplaced')).toEqual([['unplaced', 12]]);
    run({ kind: 'truncateLog', firstIndex: 13 }); // 13: forgets all ten messages and the mark
    const digest = machine.stateDigest();
    // This apply deleted 1 (its budget) of the 11 garbage records: the mark; the ten messages remain.
    expect(storedUnits(machine) + storedKeys(machine, 'unplaced').length).toBe(10);
    expect(storedKeys(machine, 'msgid').length).toBe(10);
    expect(machine.collectGarbage(4)).toBe(true);
    expect(machine.stateDigest()).toBe(digest);
    while (machine.collectGarbage(3));
    expect(machine.stateDigest()).toBe(digest);
    for (const kind of ['cq', 'key', 'msgid', 'unplaced', 'gc']) expect(storedKeys(machine, kind)).toEqual([]);
    expect(machine.collectGarbage(3)).toBe(false);
    expect(machine.queueRange('t', 0)).toEqual({ minOffset: 10, nextOffset: 10 });
  });
});
