import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { type ConsumedMessage, PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import { until } from '../src/util/until.js';

let cluster: LocalCluster | null = null;
afterEach(async () => {
  await cluster?.dispose();
  cluster = null;
});

async function startCluster(queues: number): Promise<LocalCluster> {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
  await cluster.client().call({ op: 'createTopic', topic: 'orders', queues });
  return cluster;
}

function groupConsumer(client: LedgerClient, group: string, consumerId?: string): PullConsumer {
  return new PullConsumer(client, {
    topic: 'orders', group, from: 'first', pollWaitMs: 200, maxMessagesPerPull: 100, maxBytesPerPull: 1 << 20,
    ...(consumerId ? { rebalance: { consumerId, heartbeatIntervalMs: 200 } } : {}),
  });
}

/** Runs a consumer until stopped: poll, record, commit — what an application does. */
function runConsumer(consumer: PullConsumer) {
  const received: ConsumedMessage[] = [];
  let stopped = false;
  const done = (async () => {
    await consumer.start();
    while (!stopped) {
      const batch = await consumer.poll(true);
      received.push(...batch);
      if (batch.length > 0) await consumer.commit();
    }
    await consumer.close();
  })();
  return { consumer, received, stop: async () => { stopped = true; await done; } };
}

const text = (m: ConsumedMessage) => Buffer.from(m.body).toString();

/** Sends seqs [from, to) for each key, one sender per key, in order: body "<key>:<seq>". */
async function produceKeyed(client: LedgerClient, keys: string[], from: number, to: number): Promise<string[]> {
  const producer = new Producer(client, 20_000);
  const sent: string[] = [];
  await Promise.all(keys.map(async (key) => {
    for (let seq = from; seq < to; seq++) {
      await producer.send('orders', { body: Buffer.from(`${key}:${seq}`), key }, 'byKey');
      sent.push(`${key}:${seq}`);
    }
  }));
  return sent;
}

/** Within what one consumer received, every key's messages come in send order. */
function expectKeyOrderPerConsumer(received: ConsumedMessage[]): void {
  const lastSeq = new Map<string, number>();
  for (const m of received) {
    const [key, seq] = text(m).split(':') as [string, string];
    const previous = lastSeq.get(key) ?? -1;
    expect(Number(seq), `key ${key} went from ${previous} to ${seq}`).toBeGreaterThan(previous);
    lastSeq.set(key, Number(seq));
  }
}

describe('messaging – topics, keyed order, consumer groups, long polling', () => {
  it('keeps every key in send order across 4 queues while consumers join and leave the group', async () => {
    const c = await startCluster(4);
    const keys = Array.from({ length: 8 }, (_, i) => `order-${i}`);
    const unique = () => new Set([...a.received, ...b.received].map(text)).size;
    const a = runConsumer(groupConsumer(c.client(), 'billing', 'consumer-a'));
    const sent = await produceKeyed(c.client(), keys, 0, 20); // a alone owns all four queues
    await until('a reads phase 1', () => a.received.length >= sent.length, 20_000);
    const b = runConsumer(groupConsumer(c.client(), 'billing', 'consumer-b')); // b joins: the queues are split
    await until('b owns queues', () => b.consumer.ownedQueues().length === 2 && a.consumer.ownedQueues().length === 2);
    sent.push(...(await produceKeyed(c.client(), keys, 20, 40)));
    await until('phase 2 consumed', () => unique() === sent.length, 20_000);
    expect(b.received.length).toBeGreaterThan(0);
    await a.stop(); // a leaves: b takes every queue
    sent.push(...(await produceKeyed(c.client(), keys, 40, 60)));
    await until('phase 3 consumed', () => unique() === sent.length, 20_000);
    await b.stop();
    expectKeyOrderPerConsumer(a.received);
    expectKeyOrderPerConsumer(b.received);
    const all = [...a.received, ...b.received];
    expect(new Set(all.map(text))).toEqual(new Set(sent));
    console.log(`rebalance test: ${sent.length} sent, ${all.length} received, ${all.length - unique()} redelivered after rebalancing`);
  });

  it('splits queues among live members and leaves extra consumers idle', async () => {
    const c = await startCluster(2);
    const consumers = ['a', 'b', 'c'].map((id) => groupConsumer(c.client(), 'g', id));
    for (const consumer of consumers) await consumer.start();
    // Each consumer learns the final split at its next heartbeat.
    const owned = await until('one owner per queue', async () => {
      for (const consumer of consumers) await consumer.poll(false);
      const now = consumers.map((consumer) => consumer.ownedQueues());
      return now.flat().length === 2 ? now : null;
    });
    expect(owned.flat().sort()).toEqual([0, 1]);
    expect(owned.filter((queues) => queues.length === 0)).toHaveLength(1);
  });

  it('delivers every message to each of two groups', async () => {
    const c = await startCluster(4);
    const sent = await produceKeyed(c.client(), ['a', 'b', 'c'], 0, 20);
    for (const group of ['billing', 'shipping']) {
      const consumer = runConsumer(groupConsumer(c.client(), group, `${group}-1`));
      await until(`${group} reads everything`, () => consumer.received.length >= sent.length, 20_000);
      await consumer.stop();
      expect(consumer.received.map(text).sort()).toEqual([...sent].sort());
    }
  });

  it('answers a commit of offsets on a missing topic or queue with the error, and stores nothing', async () => {
    const client = (await startCluster(2)).client();
    await expect(client.call({ op: 'commitOffsets', group: 'ghost', offsets: [{ topic: 'missing', queueId: 0, offset: 3 }] })).rejects.toMatchObject({ code: 'LMQ_TOPIC_NOT_FOUND', indeterminate: false });
    const twoQueues = [{ topic: 'orders', queueId: 0, offset: 0 }, { topic: 'orders', queueId: 2, offset: 0 }];
    await expect(client.call({ op: 'commitOffsets', group: 'ghost', offsets: twoQueues })).rejects.toMatchObject({ code: 'LMQ_BAD_INPUT', message: expect.stringMatching(/queue 2 does not exist/) });
    await expect(client.call({ op: 'resetOffsets', group: 'ghost', offsets: [{ topic: 'missing', queueId: 0, offset: 0 }] })).rejects.toMatchObject({ code: 'LMQ_TOPIC_NOT_FOUND' });
    expect(await client.call({ op: 'commitOffsets', group: 'real', offsets: [{ topic: 'orders', queueId: 1, offset: 0 }] })).toEqual({ ok: true });
    const { groups } = await client.call({ op: 'groups' });
    expect(groups.map((g) => g.group)).toEqual(['real']); // the refused commits stored nothing, not even queue 0 of the second
  });

  it('long polling answers as soon as a message commits, and an empty pull waits its bound', async () => {
    const c = await startCluster(1);
    const client = c.client();
    const emptyStartedAt = Date.now();
    const empty = await client.call({ op: 'pull', topic: 'orders', queueId: 0, offset: 0, maxMessages: 10, maxBytes: 1 << 20, waitMs: 300 });
    const waitedMs = Date.now() - emptyStartedAt;
    expect(empty.messages).toEqual([]);
    expect(waitedMs).toBeGreaterThanOrEqual(290);
    expect(waitedMs).toBeLessThan(5_000);

    const pulled = client.call({ op: 'pull', topic: 'orders', queueId: 0, offset: 0, maxMessages: 10, maxBytes: 1 << 20, waitMs: 10_000 }).then(() => Date.now());
    await new Promise((resolve) => setTimeout(resolve, 200));
    await new Producer(c.client(), 10_000).send('orders', { body: Buffer.from('wake up') });
    const ackedAt = Date.now();
    expect(await pulled).toBeLessThanOrEqual(ackedAt + 100);
  });

  it('consumers continue on the new leader from their committed offsets when the leader is killed', async () => {
    const c = await startCluster(4);
    const consumer = runConsumer(groupConsumer(c.client(), 'g', 'only'));
    const producer = new Producer(c.client(), 20_000);
    const acked: string[] = [];
    const producing = (async () => {
      for (let i = 0; i < 300; i++) {
        await producer.send('orders', { body: Buffer.from(`k${i % 5}:${Math.floor(i / 5)}`), key: `k${i % 5}` }, 'byKey');
        acked.push(`k${i % 5}:${Math.floor(i / 5)}`);
      }
    })();
    await until('halfway', () => acked.length >= 100 && consumer.received.length >= 50);
    const leader = await c.leader();
    await c.kill(leader.id);
    await producing;
    await until('all acked consumed', () => acked.every((body) => consumer.received.some((m) => text(m) === body)), 30_000);
    await consumer.stop();
    expectKeyOrderPerConsumer(consumer.received);
    // Per queue, what the consumer saw is in offset (commit) order; redeliveries restart at the committed offset.
    const lastOffset = new Map<number, number>();
    let redelivered = 0;
    for (const m of consumer.received) {
      const previous = lastOffset.get(m.queueId) ?? -1;
      if (m.offset <= previous) redelivered++;
      else expect(m.offset).toBe(previous + 1); // no gaps
      lastOffset.set(m.queueId, m.offset);
    }
    console.log(`leader kill during consume: ${acked.length} acked, ${consumer.received.length} received, ${redelivered} redelivered`);
  });
});
