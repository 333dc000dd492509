import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, ProduceMessage } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine, type BrokerStateMachineOptions } from '../src/broker/state-machine.js';
import { BrokerStore, MAX_KEY_PART } from '../src/broker/store.js';
import { LmqError } from '../src/util/errors.js';
import { bytes, MemoryLog, tempDir } from './broker-helpers.js';

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machine: BrokerStateMachine;

function openMachine(options: Partial<BrokerStateMachineOptions> = {}): BrokerStateMachine {
  return BrokerStateMachine.open({ dir: temp.dir, log, ...options });
}

/** Appends commands to the log and applies them, as the node does once they commit. */
function run(...commands: (BrokerCommand | null)[]): ApplyResult[] {
  const entries = commands.map((command) => log.append(command));
  return machine.apply(entries);
}

function one(command: BrokerCommand | null): ApplyResult {
  const [result] = run(command);
  if (result === undefined) throw new Error('no result');
  return result;
}

function message(topic: string, queueId: number, text: string, extra: Partial<ProduceMessage> = {}): ProduceMessage {
  return { msgId: `id-${text}`, topic, queueId, body: bytes(text), ...extra };
}

let seqs = new Map<string, number>();
function produce(producerId: string, messages: ProduceMessage[], timestampMs = 1000): BrokerCommand {
  const seq = (seqs.get(producerId) ?? 0) + 1;
  seqs.set(producerId, seq);
  return { kind: 'produce', producerId, seq, timestampMs, messages };
}

function lmqError(action: () => unknown): LmqError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    return error as LmqError;
  }
  throw new Error('no error thrown');
}

beforeEach(() => {
  temp = tempDir('lmq-broker-');
  log = new MemoryLog();
  seqs = new Map();
  machine = openMachine();
});

afterEach(async () => {
  await machine.close();
  temp.cleanup();
});

describe('broker state machine – topics and produce', () => {
  it('creates a topic once; the second create is refused with LMQ_TOPIC_EXISTS', () => {
    expect(run({ kind: 'createTopic', topic: 'orders', queues: 4 }, null)).toEqual([{ kind: 'createTopic', ok: true }, { kind: 'noop' }]);
    const again = one({ kind: 'createTopic', topic: 'orders', queues: 8 });
    expect(again).toMatchObject({ kind: 'createTopic', ok: false, error: 'LMQ_TOPIC_EXISTS' });
    expect(machine.topics()).toEqual([{ topic: 'orders', queues: 4 }]);
    expect(machine.topic('orders')).toEqual({ queues: 4 });
    expect(machine.topic('missing')).toBeUndefined();
    expect(machine.appliedIndex()).toBe(3);
  });

  it('round-trips binary bodies, tags, keys and properties with dense offsets per queue', () => {
    one({ kind: 'createTopic', topic: 'orders', queues: 2 });
    const binary = Uint8Array.from([0, 255, 1, 254, 0]);
    const first = one(
      produce('p1', [
        message('orders', 0, 'a', { body: binary, tag: 'TagA', keys: ['order-1', 'customer-9'], properties: { a: '1', b: 'x y' } }),
        message('orders', 1, 'b'),
        message('orders', 0, 'c', { tag: 'TagB' }),
      ], 5000),
    );
    expect(first).toEqual({
      kind: 'produce',
      duplicate: false,
      placed: [
        { msgId: 'id-a', queueId: 0, offset: 0 },
        { msgId: 'id-b', queueId: 1, offset: 0 },
        { msgId: 'id-c', queueId: 0, offset: 1 },
      ],
    });
    expect(one(produce('p2', [message('orders', 0, 'd')], 6000))).toMatchObject({ placed: [{ queueId: 0, offset: 2 }] });

    const queue0 = machine.read('orders', 0, 0, 10, 1 << 20);
    expect(queue0.map((m) => m.msgId)).toEqual(['id-a', 'id-c', 'id-d']);
    expect(queue0.map((m) => m.offset)).toEqual([0, 1, 2]);
    expect(queue0[0]).toEqual({
      msgId: 'id-a', topic: 'orders', queueId: 0, offset: 0, logIndex: 2, storeTimestampMs: 5000,
      body: binary, tag: 'TagA', keys: ['order-1', 'customer-9'], properties: { a: '1', b: 'x y' },
    });
    expect(queue0[2]).toMatchObject({ logIndex: 3, storeTimestampMs: 6000 });
    expect(machine.queueRange('orders', 0)).toEqual({ minOffset: 0, nextOffset: 3 });
    expect(machine.queueRange('orders', 1)).toEqual({ minOffset: 0, nextOffset: 1 });
    expect(machine.read('orders', 0, 1, 1, 1 << 20).map((m) => m.msgId)).toEqual(['id-c']);
    expect(machine.read('orders', 0, 3, 10, 1 << 20)).toEqual([]);
  });

  it('bounds a read by bytes but always returns the first message', () => {
    one({ kind: 'createTopic', topic: 't', queues: 1 });
    run(produce('p', [message('t', 0, 'x'.repeat(100))]), produce('p', [message('t', 0, 'y'.repeat(100))]));
    expect(machine.read('t', 0, 0, 10, 150)).toHaveLength(1);
    expect(machine.read('t', 0, 0, 10, 10)).toHaveLength(1);
    expect(machine.read('t', 0, 0, 10, 200)).toHaveLength(2);
    expect(lmqError(() => machine.read('t', 0, 0, 0, 10)).message).toMatch(/maxMessages must be a whole number from 1/);
    expect(lmqError(() => machine.read('t', 0, -1, 1, 10)).code).toBe('LMQ_BAD_INPUT');
  });

  it('refuses an unknown topic or queue for the whole batch, and says how to fix it', () => {
    one({ kind: 'createTopic', topic: 'orders', queues: 2 });
    const unknown = one(produce('p', [message('orders', 0, 'a'), message('payments', 0, 'b')]));
    expect(unknown).toMatchObject({ kind: 'produce', error: 'LMQ_TOPIC_NOT_FOUND' });
    expect((unknown as { message: string }).message).toBe('topic "payments" does not exist; create it with `ledgermq topic create payments --queues N`');
    const badQueue = one(produce('p', [message('orders', 0, 'c'), message('orders', 2, 'd')]));
    expect(badQueue).toEqual({ kind: 'produce', error: 'LMQ_BAD_INPUT', message: 'queue 2 does not exist: topic "orders" has 2 queues (0 to 1)' });
    expect(machine.queueRange('orders', 0).nextOffset).toBe(0);
    expect(machine.lookupByMsgId('id-a')).toBeUndefined();
    expect(lmqError(() => machine.read('payments', 0, 0, 1, 1)).code).toBe('LMQ_TOPIC_NOT_FOUND');
    expect(lmqError(() => machine.queueRange('orders', 2)).code).toBe('LMQ_BAD_INPUT');
  });

  it('indexes keys per topic in log order and msgIds to their first stored copy', () => {
    one({ kind: 'createTopic', topic: 'orders', queues: 2 });
    one({ kind: 'createTopic', topic: 'audit', queues: 1 });
    run(
      produce('p', [message('orders', 1, 'a', { keys: ['k1'] }), message('audit', 0, 'b', { keys: ['k1'] })]),
      produce('p', [message('orders', 0, 'c', { keys: ['k1', 'k2'] })]),
      produce('q', [message('orders', 0, 'a', { keys: ['k1'] })]), // the same msgId stored again (new session)
    );
    expect(machine.lookupByKey('orders', 'k1', 10).map((m) => [m.msgId, m.queueId, m.offset])).toEqual([
      ['id-a', 1, 0], ['id-c', 0, 0], ['id-a', 0, 1],
    ]);
    expect(machine.lookupByKey('orders', 'k1', 2)).toHaveLength(2);
    expect(machine.lookupByKey('audit', 'k1', 10).map((m) => m.msgId)).toEqual(['id-b']);
    expect(machine.lookupByKey('orders', 'k', 10)).toEqual([]);
    expect(machine.lookupByMsgId('id-a')).toMatchObject({ topic: 'orders', queueId: 1, offset: 0 });
    expect(machine.lookupByMsgId('id-c')).toMatchObject({ queueId: 0, offset: 0, keys: ['k1', 'k2'] });
    expect(lmqError(() => machine.lookupByKey('nope', 'k1', 1)).code).toBe('LMQ_TOPIC_NOT_FOUND');
  });

  it("indexes an entry's one-message produces named name-N counting up in one msgseq record, and finds the oldest copy of each", async () => {
    one({ kind: 'createTopic', topic: 'orders', queues: 2 });
    const single = (producerId: string, msgId: string, queueId = 0) => produce(producerId, [{ msgId, topic: 'orders', queueId, body: bytes(msgId) }]) as Extract<BrokerCommand, { kind: 'produce' }>;
    run(
      // s-1, s-2, s-3: one run (entry 2). In entry 3, t-5 then t-7 do not count up, and u-1 is
      // also named by a two-message produce: those are indexed one record each.
      { kind: 'produceBatch', produces: [single('s', 's-1'), single('s', 's-2', 1), single('s', 's-3')] },
      { kind: 'produceBatch', produces: [single('t', 't-5'), single('t', 't-7'), single('u', 'u-1'), produce('u', [message('orders', 0, 'x', { msgId: 'u-1' }), message('orders', 1, 'y', { msgId: 'u-2' })]) as Extract<BrokerCommand, { kind: 'produce' }>] },
      // s-2 stored again by another session (entry 4), in a run of its own.
      { kind: 'produceBatch', produces: [single('r', 's-2', 1), single('r', 's-3')] },
    );
    expect(machine.lookupByMsgId('s-1')).toMatchObject({ queueId: 0, offset: 0, logIndex: 2 });
    expect(machine.lookupByMsgId('s-2')).toMatchObject({ queueId: 1, offset: 0, logIndex: 2 });
    expect(machine.lookupByMsgId('s-3')).toMatchObject({ queueId: 0, offset: 1, logIndex: 2 });
    expect(machine.lookupByMsgId('t-7')).toMatchObject({ queueId: 0, offset: 3, logIndex: 3 });
    expect(machine.lookupByMsgId('u-1')).toMatchObject({ queueId: 0, offset: 4, logIndex: 3 });
    expect(machine.lookupByMsgId('s-4')).toBeUndefined();
    // Retention past entry 2: the later copies answer, entry 2's run is gone.
    one({ kind: 'truncateLog', firstIndex: 3 });
    expect(machine.lookupByMsgId('s-1')).toBeUndefined();
    expect(machine.lookupByMsgId('s-2')).toMatchObject({ queueId: 1, offset: 2, logIndex: 4 });
    await machine.close();
    const store = BrokerStore.open(temp.dir, 'unsynced');
    try {
      expect(store.range(['msgseq'], ['msgseq', MAX_KEY_PART], 10).map(({ key, value }) => [key, value])).toEqual([
        [['msgseq', 's', 2, 4], ['orders', 1, 2, 0, 6]], // flat: both copies in one topic
      ]);
      expect(store.range(['msgid'], ['msgid', MAX_KEY_PART], 10).map(({ key }) => key[1])).toEqual(['t-5', 't-7', 'u-1', 'u-1', 'u-2']);
    } finally {
      await store.close();
    }
    machine = openMachine();
  });

  it('finds the first offset stored at or after a time, with store time never going backwards', () => {
    one({ kind: 'createTopic', topic: 't', queues: 1 });
    // The third leader's clock is behind: its store time is clamped up to 300.
    run(...[100, 200, 300, 250, 400].map((ts) => produce('p', [message('t', 0, `m${ts}`)], ts)));
    expect(machine.read('t', 0, 0, 10, 1 << 20).map((m) => m.storeTimestampMs)).toEqual([100, 200, 300, 300, 400]);
    expect(machine.offsetForTimestamp('t', 0, 0)).toBe(0);
    expect(machine.offsetForTimestamp('t', 0, 100)).toBe(0);
    expect(machine.offsetForTimestamp('t', 0, 101)).toBe(1);
    expect(machine.offsetForTimestamp('t', 0, 300)).toBe(2);
    expect(machine.offsetForTimestamp('t', 0, 301)).toBe(4);
    expect(machine.offsetForTimestamp('t', 0, 401)).toBe(5);
  });
});

describe('broker state machine – idempotent producer', () => {
  beforeEach(() => {
    one({ kind: 'createTopic', topic: 't', queues: 2 });
  });

  it('answers a retried seq with the original placement and stores nothing', () => {
    const original = produce('p', [message('t', 0, 'a'), message('t', 1, 'b')]);
    const first = one(original);
    one(produce('p', [message('t', 0, 'c')]));
    const retry = one(original);
    expect(retry).toEqual({ ...first, duplicate: true });
    expect(machine.queueRange('t', 0).nextOffset).toBe(2);
    expect(machine.queueRange('t', 1).nextOffset).toBe(1);
  });

  it('stores a one-way send (seq 0) without remembering it: no dedup, no order check, no producer state', () => {
    const oneWay: BrokerCommand = { kind: 'produce', producerId: 'ow', seq: 0, timestampMs: 1, messages: [message('t', 0, 'x')] };
    expect(one(oneWay)).toEqual({ kind: 'produce', placed: [{ msgId: 'id-x', queueId: 0, offset: 0 }], duplicate: false });
    expect(one(oneWay)).toEqual({ kind: 'produce', placed: [{ msgId: 'id-x', queueId: 0, offset: 1 }], duplicate: false });
    // The producer id used for one-way sends still starts its sequenced sends at 1.
    expect(one({ kind: 'produce', producerId: 'ow', seq: 1, timestampMs: 1, messages: [message('t', 0, 'y')] })).toMatchObject({ placed: [{ offset: 2 }] });
    expect(one({ ...oneWay, messages: [message('missing', 0, 'z')] })).toMatchObject({ error: 'LMQ_TOPIC_NOT_FOUND' });
  });

  it('refuses a gap with LMQ_OUT_OF_ORDER and the expected seq, then accepts the resend in order', () => {
    one(produce('p', [message('t', 0, 'a')]));
    const gap = one({ kind: 'produce', producerId: 'p', seq: 3, timestampMs: 1, messages: [message('t', 0, 'c')] });
    expect(gap).toMatchObject({ kind: 'produce', error: 'LMQ_OUT_OF_ORDER', expectedSeq: 2 });
    expect((gap as { message: string }).message).toMatch(/producer "p" sent seq 3 but the broker expects seq 2/);
    expect(machine.queueRange('t', 0).nextOffset).toBe(1);
    const resend = run(
      { kind: 'produce', producerId: 'p', seq: 2, timestampMs: 1, messages: [message('t', 0, 'b')] },
      { kind: 'produce', producerId: 'p', seq: 3, timestampMs: 1, messages: [message('t', 0, 'c')] },
    );
    expect(resend.map((r) => (r as { placed: { offset: number }[] }).placed[0]?.offset)).toEqual([1, 2]);
    expect(machine.read('t', 0, 0, 10, 1 << 20).map((m) => m.msgId)).toEqual(['id-a', 'id-b', 'id-c']);
  });

  it('requires a new producer to start at seq 1', () => {
    const first = one({ kind: 'produce', producerId: 'new', seq: 2, timestampMs: 1, messages: [message('t', 0, 'x')] });
    expect(first).toMatchObject({ error: 'LMQ_OUT_OF_ORDER', expectedSeq: 1 });
    expect((first as { message: string }).message).toMatch(/does not know this producer/);
  });

  it('keeps a refused seq used up and answers its retry with the same refusal', () => {
    const bad = produce('p', [message('missing', 0, 'a')]);
    const refusal = one(bad);
    expect(refusal).toMatchObject({ error: 'LMQ_TOPIC_NOT_FOUND' });
    expect(one(bad)).toEqual(refusal);
    expect(one(produce('p', [message('t', 0, 'b')]))).toMatchObject({ placed: [{ offset: 0 }], duplicate: false });
  });

  /** A new, empty state and log with other producer settings, and topic t again. */
  async function restartEmpty(options: Partial<BrokerStateMachineOptions>): Promise<void> {
    await machine.close();
    temp.cleanup();
    temp = tempDir('lmq-broker-');
    log = new MemoryLog();
    machine = openMachine(options);
    one({ kind: 'createTopic', topic: 't', queues: 2 });
  }

  it('answers a duplicate older than the window with an empty placement', async () => {
    await restartEmpty({ dedupWindowPerProducer: 2 });
    const oldest = produce('p', [message('t', 0, 'a')]);
    run(oldest, produce('p', [message('t', 0, 'b')]), produce('p', [message('t', 0, 'c')]));
    expect(one(oldest)).toEqual({ kind: 'produce', placed: [], duplicate: true });
    expect(machine.queueRange('t', 0).nextOffset).toBe(3);
  });

  it('tracks at most maxProducers, evicting the least recently used by log index', async () => {
    await restartEmpty({ maxProducers: 2 });
    const a1 = produce('a', [message('t', 0, 'a1')]);
    run(a1, produce('b', [message('t', 0, 'b1')]));
    expect(one(a1)).toMatchObject({ duplicate: true }); // a is now more recent than b
    one(produce('c', [message('t', 0, 'c1')])); // evicts b
    const b2 = one({ kind: 'produce', producerId: 'b', seq: 2, timestampMs: 1, messages: [message('t', 0, 'b2')] });
    expect(b2).toMatchObject({ error: 'LMQ_OUT_OF_ORDER', expectedSeq: 1 });
    expect(one({ kind: 'produce', producerId: 'a', seq: 2, timestampMs: 1, messages: [message('t', 0, 'a2')] })).toMatchObject({ duplicate: false });
  });

  it('keeps the settings that change results fixed for the life of the state', async () => {
    await machine.close();
    const error = lmqError(() => openMachine({ maxProducers: 5 }));
    expect(error.code).toBe('LMQ_BAD_CONFIG');
    expect(error.message).toMatch(/was built with maxProducers 10000, not 5; delete .* to rebuild it from the log/);
    expect(lmqError(() => openMachine({ dedupWindowPerProducer: 0 })).message).toMatch(/dedupWindowPerProducer must be a whole number from 1/);
    machine = openMachine();
  });
});

describe('broker state machine – group offsets', () => {
  beforeEach(() => {
    one({ kind: 'createTopic', topic: 't', queues: 2 });
    run(produce('p', [message('t', 0, 'a'), message('t', 0, 'b'), message('t', 0, 'c'), message('t', 1, 'd')]));
  });

  it('commits forward only, clamped to the end of the queue, and reports lag', () => {
    const commit = (queueId: number, offset: number): ApplyResult => one({ kind: 'commitOffsets', group: 'g', offsets: [{ topic: 't', queueId, offset }] });
    expect(commit(0, 2)).toEqual({ kind: 'commitOffsets', ok: true });
    expect(machine.committedOffset('g', 't', 0)).toBe(2);
    commit(0, 1);
    expect(machine.committedOffset('g', 't', 0)).toBe(2);
    commit(0, 99);
    expect(machine.committedOffset('g', 't', 0)).toBe(3);
    commit(1, 0);
    expect(machine.committedOffset('g', 't', 1)).toBe(0);
    expect(machine.committedOffset('other', 't', 0)).toBeUndefined();
    expect(machine.groups()).toEqual(['g']);
    expect(machine.groupLag('g')).toEqual([
      { topic: 't', queueId: 0, committedOffset: 3, nextOffset: 3, lag: 0 },
      { topic: 't', queueId: 1, committedOffset: 0, nextOffset: 1, lag: 1 },
    ]);
  });

  it('moves offsets backwards only through an explicit reset', () => {
    one({ kind: 'commitOffsets', group: 'g', offsets: [{ topic: 't', queueId: 0, offset: 3 }] });
    expect(one({ kind: 'resetOffsets', group: 'g', offsets: [{ topic: 't', queueId: 0, offset: 1 }] })).toEqual({ kind: 'resetOffsets', ok: true });
    expect(machine.committedOffset('g', 't', 0)).toBe(1);
  });

  it('refuses a whole commit that names a missing topic or queue', () => {
    const result = one({ kind: 'commitOffsets', group: 'g', offsets: [{ topic: 't', queueId: 0, offset: 1 }, { topic: 't', queueId: 5, offset: 1 }] });
    expect(result).toMatchObject({ kind: 'commitOffsets', error: 'LMQ_BAD_INPUT' });
    expect(one({ kind: 'resetOffsets', group: 'g', offsets: [{ topic: 'x', queueId: 0, offset: 0 }] })).toMatchObject({ error: 'LMQ_TOPIC_NOT_FOUND' });
    expect(machine.committedOffset('g', 't', 0)).toBeUndefined();
    expect(machine.groups()).toEqual([]);
  });
});

describe('broker state machine – apply contract', () => {
  it('reads bodies from the log (consume queues hold no copy)', () => {
    one({ kind: 'createTopic', topic: 't', queues: 1 });
    one(produce('p', [message('t', 0, 'a')]));
    const before = log.reads;
    expect(machine.read('t', 0, 0, 1, 100)[0]?.body).toEqual(bytes('a'));
    expect(log.reads).toBe(before + 1);
  });

  it('asserts that entries continue from appliedIndex', () => {
    one(null);
    const skipped = { index: 5, term: 1, type: 0 as const, data: new Uint8Array(0) };
    expect(() => machine.apply([skipped])).toThrow(/apply of entry 5 after applied index 1/);
    expect(machine.appliedIndex()).toBe(1);
  });

  it('applies nothing of a batch holding a corrupt entry and names its index', () => {
    const good = log.append({ kind: 'createTopic', topic: 't', queues: 1 });
    const corrupt = { index: 2, term: 1, type: 1 as const, data: Uint8Array.from([1, 0xc0]) };
    const error = lmqError(() => machine.apply([good, corrupt]));
    expect(error.code).toBe('LMQ_CORRUPT_DATA');
    expect(error.message).toMatch(/log index 2/);
    expect(machine.appliedIndex()).toBe(0);
    expect(machine.topics()).toEqual([]);
  });
});
