// Orderly consumption against a real three-node cluster (node processes): SUSPEND retries the
// same message while later ones wait; a consumer group's consumers never process one queue at
// once across rebalances (one joins, one leaves) and a leader SIGKILL, whose successor refuses
// a lock an old lease may still cover; a released queue moves to its new owner at once.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { OrderlyConsumer, type OrderlyConsumerOptions, type OrderlyListener } from '../src/client/orderly-consumer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { RequestOf } from '../src/protocol/index.js';
import { isLmqError } from '../src/util/errors.js';
import { until } from '../src/util/until.js';
import { committed, type Delivery, expectNoOverlap, expectOrder, produceTo, recording } from './orderly-support.js';

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
}, 60_000);
afterAll(async () => {
  await cluster.dispose();
});

const running: OrderlyConsumer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

function consumer(options: Partial<OrderlyConsumerOptions> & { consumerId: string; topic: string; group: string }, listener: OrderlyListener, errors: string[] = []): OrderlyConsumer {
  const c = new OrderlyConsumer(cluster.client(), { from: 'first', onError: (error, what) => errors.push(`${what}: ${(error as Error).message}`), ...options }, listener);
  running.push(c);
  return c;
}

async function stopped(c: OrderlyConsumer): Promise<void> {
  running.splice(running.indexOf(c), 1);
  await c.stop();
}

const bodies = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

describe('orderly consumer – suspend', () => {
  it('retries the same message after suspendMs with reconsumeTimes + 1 while later messages of the queue wait', async () => {
    await client.call({ op: 'createTopic', topic: 'sus', queues: 1 });
    await produceTo(client, 'sus', 0, bodies('m', 5));
    const deliveries: Delivery[] = [];
    const listener = recording('a', deliveries, 5, (d) => (d.body === 'm-1' && d.reconsumeTimes < 2 ? 'SUSPEND' : d.body === 'm-3' && d.reconsumeTimes === 0 ? 'throw' : 'SUCCESS'));
    const errors: string[] = [];
    const c = consumer({ consumerId: 'a', topic: 'sus', group: 'gs', suspendMs: 300 }, listener, errors);
    await c.start();
    await until('every message succeeded', () => c.stats().finishedMessages === 5, 20_000);
    expect(deliveries.map((d) => `${d.body}/${d.reconsumeTimes}`)).toEqual(['m-0/0', 'm-1/0', 'm-1/1', 'm-1/2', 'm-2/0', 'm-3/0', 'm-3/1', 'm-4/0']);
    // Each retry waited the pause after the failed delivery ended.
    for (let i = 1; i < deliveries.length; i++) {
      if (deliveries[i - 1]!.status !== 'SUCCESS') expect(deliveries[i]!.startMs - deliveries[i - 1]!.endMs).toBeGreaterThanOrEqual(295);
    }
    expect(errors.some((e) => e.includes('scripted failure of m-3'))).toBe(true);
    expectOrder(deliveries);
    await until('offset committed past the last message', async () => (await committed(client, 'gs', 'sus', [0]))[0] === 5, 5000);
  }, 60_000);

  it('past maxReconsumeTimes dead-letters the message through sendBack, or keeps it unfinished while the broker refuses that', async () => {
    await client.call({ op: 'createTopic', topic: 'exhaust', queues: 1 });
    await produceTo(client, 'exhaust', 0, ['poison', 'after']);
    const deliveries: Delivery[] = [];
    const errors: string[] = [];
    const c = consumer({ consumerId: 'a', topic: 'exhaust', group: 'gx', suspendMs: 100, maxReconsumeTimes: 2 }, recording('a', deliveries, 1, (d) => (d.body === 'poison' ? 'SUSPEND' : 'SUCCESS')), errors);
    await c.start();
    // maxReconsumeTimes 2: three deliveries, then the third failure asks for the DLQ.
    await until('the dead letter was asked for', () => errors.some((e) => e.startsWith('dead-lettering')) || deliveries.some((d) => d.body === 'after'), 20_000);
    expect(deliveries.slice(0, 3).map((d) => `${d.body}/${d.reconsumeTimes}`)).toEqual(['poison/0', 'poison/1', 'poison/2']);
    const sendBackRefused = errors.some((e) => e.startsWith('dead-lettering'));
    if (sendBackRefused) {
      // This broker has no sendBack yet: the message stays unfinished, is delivered again, and
      // the next one waits — never skipped.
      expect(errors.find((e) => e.startsWith('dead-lettering'))).toMatch(/sendBack is not available/);
      await until('delivered again after the refused dead letter', () => deliveries.length >= 5, 10_000);
      expect(deliveries.every((d) => d.body === 'poison')).toBe(true);
      expect(deliveries[3]!.reconsumeTimes).toBe(3);
      expect((await committed(client, 'gx', 'exhaust', [0]))[0]).toBe(null);
    } else {
      await until('the next message succeeded', () => c.stats().finishedMessages === 2, 10_000);
      expect(deliveries.map((d) => d.body)).toEqual(['poison', 'poison', 'poison', 'after']);
      const { deadLetters } = await client.call({ op: 'dlqList', group: 'gx', fromOffset: 0, max: 10 });
      expect(deadLetters.map((d) => [d.topic, d.queue, d.offset])).toEqual([['exhaust', 0, 0]]);
    }
  }, 60_000);
});

describe('orderly consumer – one consumer per queue at a time', () => {
  it('never lets two consumers process one queue at once while a third joins and one leaves; nothing is processed twice', async () => {
    await client.call({ op: 'createTopic', topic: 'rb', queues: 4 });
    const perQueue = 100;
    for (let q = 0; q < 4; q++) await produceTo(client, 'rb', q, bodies(`q${q}`, perQueue));
    const deliveries: Delivery[] = [];
    const options = { topic: 'rb', group: 'grb', lockLeaseMs: 10_000 };
    const [a, b, c] = ['a', 'b', 'c'].map((id) => consumer({ ...options, consumerId: id }, recording(id, deliveries, 10)));
    await a!.start();
    await b!.start();
    await until('40 processed', () => deliveries.length >= 40, 20_000);
    await c!.start();
    await until('a third consumer took queues', () => deliveries.some((d) => d.consumer === 'c'), 20_000);
    await until('200 processed', () => deliveries.length >= 200, 30_000);
    await stopped(a!);
    const afterLeave = deliveries.length;
    await until('every message processed', () => new Set(deliveries.map((d) => d.body)).size === 4 * perQueue, 30_000);
    expect(deliveries.slice(afterLeave).some((d) => d.consumer === 'a')).toBe(false);
    expectNoOverlap(deliveries);
    expectOrder(deliveries);
    // Clean handoffs: the old owner committed before it released, the new one read after its grant.
    expect(deliveries).toHaveLength(4 * perQueue);
    for (let q = 0; q < 4; q++) expect(deliveries.filter((d) => d.queueId === q).map((d) => d.offset)).toEqual(Array.from({ length: perQueue }, (_, i) => i));
    // Queues really moved: every consumer processed something, some queue had two owners.
    expect(new Set(deliveries.map((d) => d.consumer))).toEqual(new Set(['a', 'b', 'c']));
    expect([0, 1, 2, 3].some((q) => new Set(deliveries.filter((d) => d.queueId === q).map((d) => d.consumer)).size > 1)).toBe(true);
    await until('offsets committed', async () => (await committed(client, 'grb', 'rb', [0, 1, 2, 3])).every((o) => o === perQueue), 5000);
  }, 120_000);

  it('hands a queue a rebalance moved to its new owner within about a second of the release, not at lease expiry', async () => {
    await client.call({ op: 'createTopic', topic: 'hand', queues: 2 });
    for (let q = 0; q < 2; q++) await produceTo(client, 'hand', q, bodies(`h${q}`, 60));
    const deliveries: Delivery[] = [];
    // The default lease (60 s): only an unlock at once can make the handoff quick.
    const a = consumer({ consumerId: 'a', topic: 'hand', group: 'gh' }, recording('a', deliveries, 25));
    const b = consumer({ consumerId: 'b', topic: 'hand', group: 'gh' }, recording('b', deliveries, 25));
    await a.start();
    await until('a works on both queues', () => new Set(deliveries.map((d) => d.queueId)).size === 2, 20_000);
    await b.start();
    await until('b took a queue', () => deliveries.some((d) => d.consumer === 'b'), 20_000);
    const moved = deliveries.find((d) => d.consumer === 'b')!.queueId;
    const lastOfA = deliveries.filter((d) => d.consumer === 'a' && d.queueId === moved).at(-1)!;
    const firstOfB = deliveries.find((d) => d.consumer === 'b')!;
    expect(firstOfB.offset).toBe(lastOfA.offset + 1);
    expect(firstOfB.startMs - lastOfA.endMs).toBeLessThan(3000);
    expectNoOverlap(deliveries);
  }, 60_000);
});

describe('orderly consumer – failures: a leader SIGKILL, the cluster unreachable', () => {
  it('the new leader refuses another client a lock the old leader granted until that lease ran out', async () => {
    await client.call({ op: 'createTopic', topic: 'lk', queues: 1 });
    const leaseMs = 5000;
    const sentAtMs = Date.now();
    const first = await client.call({ op: 'lockQueues', group: 'glk', clientId: 'old-owner', queues: [{ topic: 'lk', queueId: 0 }], leaseMs });
    expect(first.locked).toHaveLength(1);
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    await cluster.leader([leader.id]);
    let refusals = 0;
    let grantedAtMs: number | null = null;
    while (grantedAtMs === null) {
      const reply = await client.call({ op: 'lockQueues', group: 'glk', clientId: 'new-owner', queues: [{ topic: 'lk', queueId: 0 }], leaseMs }).catch((error: unknown) => {
        if (isLmqError(error, 'LMQ_UNAVAILABLE')) return null;
        throw error;
      });
      if (reply !== null && reply.locked.length === 1) grantedAtMs = Date.now();
      else if (reply !== null) refusals++;
      await sleep(100);
    }
    // One machine, one wall clock: the old grant was made after sentAtMs, so it covered at least until sentAtMs + leaseMs.
    expect(refusals).toBeGreaterThan(0);
    expect(grantedAtMs).toBeGreaterThanOrEqual(sentAtMs + leaseMs);
    cluster.start(leader.id);
  }, 60_000);

  it('two consumers never process one queue at once across a leader SIGKILL', async () => {
    await client.call({ op: 'createTopic', topic: 'fo', queues: 2 });
    for (let q = 0; q < 2; q++) await produceTo(client, 'fo', q, bodies(`f${q}`, 40));
    const deliveries: Delivery[] = [];
    const options = { topic: 'fo', group: 'gfo', lockLeaseMs: 6000 };
    const a = consumer({ ...options, consumerId: 'a' }, recording('a', deliveries, 40));
    const b = consumer({ ...options, consumerId: 'b' }, recording('b', deliveries, 40));
    await a.start();
    await b.start();
    await until('both consumers at work', () => new Set(deliveries.map((d) => d.consumer)).size === 2, 20_000);
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    // The new leader rebuilds membership from heartbeats: the first to arrive is given every
    // queue for a moment, and only the replicated locks keep it off the other's queue.
    await until('every message processed', () => new Set(deliveries.filter((d) => d.status === 'SUCCESS').map((d) => d.body)).size === 80, 60_000);
    cluster.start(leader.id);
    expectNoOverlap(deliveries);
    expectOrder(deliveries);
  }, 120_000);

  it('aborts the listener\'s signal when its lease runs out while the cluster is unreachable, before the broker would free the queue', async () => {
    await client.call({ op: 'createTopic', topic: 'stall', queues: 1 });
    await produceTo(client, 'stall', 0, ['slow']);
    let started = false;
    let abortedWhilePaused: boolean | null = null;
    let paused = false;
    const c = consumer({ consumerId: 'a', topic: 'stall', group: 'gst', lockLeaseMs: 3000 }, async (_messages, context) => {
      started = true;
      await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve(), { once: true }));
      abortedWhilePaused = paused;
      return 'SUSPEND';
    });
    await c.start();
    await until('the listener runs', () => started, 20_000);
    const ids = cluster.config.nodes.map((n) => n.id);
    paused = true;
    for (const id of ids) cluster.signal(id, 'SIGSTOP');
    try {
      await until('the listener was aborted', () => abortedWhilePaused !== null, 10_000);
    } finally {
      paused = false;
      for (const id of ids) cluster.signal(id, 'SIGCONT');
    }
    // Its view ended while no node could have granted the queue to anyone else.
    expect(abortedWhilePaused).toBe(true);
  }, 60_000);
});

describe('orderly consumer – queue locks under an ACL', () => {
  it('scopes a lock holder to its user: another user naming the same clientId neither renews nor releases it', async () => {
    const admin = { accessKey: 'admin', secretKey: 'admin-secret' };
    const users = ['user1', 'user2'].map((name) => ({ accessKey: name, secretKey: `${name}-secret`, topicPerms: { acl: 'SUB' }, groupPerms: { gacl: 'SUB' } }));
    const secured = await LocalCluster.create({}, { acl: { users: [{ ...admin, admin: true }, ...users] }, credentials: admin });
    try {
      secured.startAll();
      await secured.leader([], 60_000);
      await secured.client().call({ op: 'createTopic', topic: 'acl', queues: 1 });
      const [u1, u2] = users.map((u) => secured.client(10_000, { accessKey: u.accessKey, secretKey: u.secretKey }));
      const lock: RequestOf<'lockQueues'> = { op: 'lockQueues', group: 'gacl', clientId: 'same', queues: [{ topic: 'acl', queueId: 0 }], leaseMs: 60_000 };
      expect((await u1!.call(lock)).locked).toHaveLength(1);
      expect((await u2!.call(lock)).locked).toHaveLength(0);
      await u2!.call({ op: 'unlockQueues', group: 'gacl', clientId: 'same', queues: [{ topic: 'acl', queueId: 0 }] });
      expect((await u2!.call(lock)).locked).toHaveLength(0);
      // Its holder renews and releases it.
      expect((await u1!.call(lock)).locked).toHaveLength(1);
      await u1!.call({ op: 'unlockQueues', group: 'gacl', clientId: 'same', queues: [{ topic: 'acl', queueId: 0 }] });
      expect((await u2!.call(lock)).locked).toHaveLength(1);
    } finally {
      await secured.dispose();
    }
  }, 120_000);
});
