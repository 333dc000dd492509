import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand } from '../src/broker/commands.js';
import { encodeCommand } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { hashKey, Producer } from '../src/client/producer.js';
import { PushConsumer } from '../src/client/push-consumer.js';
import { until } from '../src/util/until.js';
import { bytes, MemoryLog, payloadOf, tempDir } from './broker-helpers.js';
import { runCli } from './process-helpers.js';

describe('topic growth – the replicated command', () => {
  let temp: ReturnType<typeof tempDir>;
  let log: MemoryLog;
  let machine: BrokerStateMachine;
  let seq = 0;
  beforeEach(() => {
    temp = tempDir('lmq-growth-');
    log = new MemoryLog();
    seq = 0;
    machine = BrokerStateMachine.open({ dir: join(temp.dir, 'a'), log });
  });
  afterEach(async () => {
    await machine.close();
    temp.cleanup();
  });
  const apply = (command: BrokerCommand): ApplyResult => machine.apply([log.append(command)])[0]!;
  const grow = (queues: number, timestampMs = 1000, maxReorderWaitMs = 60_000) => apply({ kind: 'growTopic', topic: 'orders', queues, timestampMs, maxReorderWaitMs });
  const produce = (queueId: number, count: number) =>
    apply({ kind: 'produce', producerId: 'p', seq: ++seq, timestampMs: 1000, messages: Array.from({ length: count }, (_, i) => ({ msgId: `m${seq}-${i}`, topic: 'orders', queueId, body: bytes('x') })) });
  const commit = (group: string, queueId: number, offset: number) => apply({ kind: 'commitOffsets', group, offsets: [{ topic: 'orders', queueId, offset }] });

  it('adds the queues, starts every consuming group at 0 on them, and records each old queue\'s boundary', () => {
    apply({ kind: 'createTopic', topic: 'orders', queues: 2 });
    produce(0, 3);
    produce(1, 2);
    commit('billing', 0, 3); // billing is done with queue 0, not with queue 1
    const result = grow(4);
    expect(result).toEqual({ kind: 'growTopic', ok: true, fromQueues: 2, toQueues: 4, untilMs: 61_000, waiting: [{ queueId: 1, boundary: 2, groups: ['billing'] }] });
    expect(machine.topic('orders')).toEqual({ queues: 4 });
    expect(machine.queueRange('orders', 3)).toEqual({ minOffset: 0, nextOffset: 0 });
    expect(machine.committedOffset('billing', 'orders', 2)).toBe(0);
    expect(machine.committedOffset('billing', 'orders', 3)).toBe(0);
    expect(machine.topicGrowth('orders')?.waiting).toEqual([{ queueId: 1, boundary: 2, groups: ['billing'] }]);
    // Messages after the change do not move the boundary; a commit up to it ends the wait.
    produce(1, 5);
    commit('billing', 1, 2);
    expect(machine.topicGrowth('orders')).toBeUndefined();
  });

  it('refuses a produce routed over the queue count the topic had before it grew, storing nothing', () => {
    apply({ kind: 'createTopic', topic: 'orders', queues: 2 });
    const routed = (routedQueues: number) =>
      apply({ kind: 'produce', producerId: 'p', seq: ++seq, timestampMs: 1000, routedQueues, messages: [{ msgId: `m${seq}`, topic: 'orders', queueId: 1, body: bytes('x') }] });
    expect(routed(2)).toMatchObject({ kind: 'produce', placed: [{ queueId: 1, offset: 0 }] });
    expect(grow(4)).toMatchObject({ ok: true });
    expect(routed(2)).toMatchObject({ kind: 'produce', error: 'LMQ_ROUTE_CHANGED', message: expect.stringContaining('has 4 queues now, not the 2') });
    expect(machine.queueRange('orders', 1)).toEqual({ minOffset: 0, nextOffset: 1 });
    // The refusal is the seq's outcome: its retry gets the same answer, the next seq goes on.
    expect(routed(4)).toMatchObject({ kind: 'produce', placed: [{ queueId: 1, offset: 1 }] });
  });

  it('grows only, and not again while keys still wait', () => {
    expect(grow(4)).toMatchObject({ error: 'LMQ_TOPIC_NOT_FOUND' });
    apply({ kind: 'createTopic', topic: 'orders', queues: 2 });
    expect(grow(2)).toMatchObject({ error: 'LMQ_BAD_INPUT', message: expect.stringContaining('only grows') });
    produce(0, 1);
    commit('billing', 1, 0);
    expect(grow(3, 1000, 5000)).toMatchObject({ ok: true, waiting: [{ queueId: 0, boundary: 1, groups: ['billing'] }] });
    expect(grow(4, 2000)).toMatchObject({ error: 'LMQ_BAD_INPUT', message: expect.stringContaining('still growing') });
    // Past the wait (the command's own time), it may grow again; the old growth stays visible
    // while unfinished, so producers can tell that a held key's order may break.
    expect(machine.topicGrowth('orders')?.untilMs).toBe(6000);
    expect(grow(4, 6000)).toMatchObject({ ok: true, fromQueues: 3, toQueues: 4 });
    expect(() => encodeCommand({ kind: 'growTopic', topic: 'orders', queues: 5000, timestampMs: 1, maxReorderWaitMs: 1 })).toThrow(/queues/);
  });

  it('keeps the growth through a snapshot and its restore', async () => {
    apply({ kind: 'createTopic', topic: 'orders', queues: 2 });
    produce(1, 2);
    commit('billing', 0, 0);
    grow(4);
    const snapshot = machine.beginSnapshot(4096);
    const payload = await payloadOf(snapshot);
    const restored = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), log });
    try {
      await restored.restoreSnapshot(snapshot.index, payload, log);
      expect(restored.topicGrowth('orders')).toEqual(machine.topicGrowth('orders'));
      expect(restored.stateDigest()).toBe(machine.stateDigest());
    } finally {
      await restored.close();
    }
  });
});

describe('topic growth – keyed producers, consumers and the CLI', () => {
  let cluster: LocalCluster;
  afterEach(async () => {
    await cluster.dispose();
  });

  /** A key whose queue changes from 2 to 4 queues, and one whose queue stays. */
  function keys(): { moving: string; staying: string } {
    const all = Array.from({ length: 100 }, (_, i) => `order-${i}`);
    return { moving: all.find((k) => hashKey(k) % 2 !== hashKey(k) % 4)!, staying: all.find((k) => hashKey(k) % 2 === hashKey(k) % 4)! };
  }

  /** Starts the cluster with topic orders on 2 queues; its client. */
  async function ordersCluster(config?: Parameters<typeof LocalCluster.create>[0]): Promise<ReturnType<LocalCluster['client']>> {
    cluster = await LocalCluster.create(config);
    cluster.startAll();
    await cluster.leader();
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'orders', queues: 2 });
    return client;
  }

  /**
   * Runs a billing consumer until it has read `after` (once `sent` resolves), checks it read
   * `before` first, then runs `whileRunning` before stopping it.
   */
  async function consumeInOrder(client: ReturnType<LocalCluster['client']>, sent: () => Promise<void>, whileRunning: (consumer: PushConsumer) => void = () => undefined): Promise<void> {
    const seen: string[] = [];
    const consumer = new PushConsumer(client, { topic: 'orders', group: 'billing', consumerId: 'b1', pollWaitMs: 200, commitIntervalMs: 100, rebalanceIntervalMs: 200 }, async (messages) => {
      seen.push(...messages.map((m) => Buffer.from(m.body).toString()));
      return 'SUCCESS';
    });
    await consumer.start();
    try {
      await sent();
      await until('the consumer to read both', () => seen.includes('after'));
      expect(seen.indexOf('before')).toBeLessThan(seen.indexOf('after'));
      whileRunning(consumer);
    } finally {
      await consumer.stop();
    }
  }

  it('holds a moving key until the group consumed its old queue up to the change, and the consumers take the new queues', async () => {
    const client = await ordersCluster();
    const { moving } = keys();
    const producer = new Producer(client, 30_000);
    const old = await producer.send('orders', { body: bytes('before'), key: moving }, 'byKey');
    expect(old.queueId).toBe(hashKey(moving) % 2);
    // billing has consumed nothing of the old queue yet (it committed elsewhere only).
    await client.call({ op: 'commitOffsets', group: 'billing', offsets: [{ topic: 'orders', queueId: 1 - old.queueId, offset: 0 }] });

    const updated = await runCli(cluster.configPath, ['topic', 'update', 'orders', '--queues', '4']);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain('grew from 2 to 4 queues');
    expect(updated.stdout).toContain(`billing: queues ${old.queueId} (to offset 1)`);
    const shrink = await runCli(cluster.configPath, ['topic', 'update', 'orders', '--queues', '3']);
    expect(shrink.code).toBe(2);

    const fresh = new Producer(client, 30_000); // learns the growth from its first route
    let sentAfter: { queueId: number } | undefined;
    const pending = fresh.send('orders', { body: bytes('after'), key: moving }, 'byKey').then((r) => (sentAfter = r));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(sentAfter).toBeUndefined(); // held: billing has not read `before` yet

    await consumeInOrder(client, async () => {
      await pending;
      expect(sentAfter!.queueId).toBe(hashKey(moving) % 4);
    }, (consumer) => {
      // The consumer took the new queues as well (its next rebalance round).
      expect(consumer.stats().queues.filter((q) => q.topic === 'orders').map((q) => q.queueId).sort()).toEqual([0, 1, 2, 3]);
    });
  });

  it('a producer that routed before the growth is refused, routes again and holds the moved key: nothing lands in the old queue past the change', async () => {
    const client = await ordersCluster();
    const { moving } = keys();
    const oldQueue = hashKey(moving) % 2;
    const producer = new Producer(client, 30_000); // keeps its 2-queue route (refreshed only every 30 s)
    await producer.send('orders', { body: bytes('before'), key: moving }, 'byKey');
    await client.call({ op: 'commitOffsets', group: 'billing', offsets: [{ topic: 'orders', queueId: 1 - oldQueue, offset: 0 }] });
    await client.call({ op: 'growTopic', topic: 'orders', queues: 4 });

    let sentAfter: { queueId: number; offset: number | null } | undefined;
    const pending = producer.send('orders', { body: bytes('after'), key: moving }, 'byKey').then((r) => (sentAfter = r));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(sentAfter).toBeUndefined(); // refused over 2 queues, then held over 4
    expect((await client.call({ op: 'queryOffsets', group: 'billing', queues: [{ topic: 'orders', queueId: oldQueue }] })).offsets[0]?.nextOffset).toBe(1);

    await consumeInOrder(client, async () => {
      await pending;
      expect(sentAfter!.queueId).toBe(hashKey(moving) % 4);
    });
  });

  it('lets a held key move once topic.maxReorderWaitMs passed, and logs that its order may break', async () => {
    const client = await ordersCluster({ topic: { maxReorderWaitMs: 1500 } });
    const { moving, staying } = keys();
    const producer = new Producer(client, 30_000);
    await producer.send('orders', { body: bytes('before'), key: moving }, 'byKey');
    await client.call({ op: 'commitOffsets', group: 'slow', offsets: [{ topic: 'orders', queueId: 0, offset: 0 }] });
    const grown = await client.call({ op: 'growTopic', topic: 'orders', queues: 4 });
    expect(grown.waiting.map((q) => q.groups)).toEqual([['slow']]);

    const warnings: string[] = [];
    const fresh = new Producer(client, 30_000, {}, (message) => warnings.push(message));
    const stay = await fresh.send('orders', { body: bytes('stays'), key: staying }, 'byKey');
    expect(stay.queueId).toBe(hashKey(staying) % 4); // its queue did not change: never held
    const started = performance.now();
    const moved = await fresh.send('orders', { body: bytes('moves'), key: moving }, 'byKey');
    expect(moved.queueId).toBe(hashKey(moving) % 4);
    expect(performance.now() - started).toBeGreaterThan(500); // it waited for the rest of the 1.5 s
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('order may break');
  });
});
