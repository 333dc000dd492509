// Natural batching in the producer, against a real three-node cluster: sends that wait while
// requests are out leave together in one request, each still acknowledged alone with its own
// queue and offset, in send order per queue; bad messages and missing topics fail alone. The
// leader batches likewise: requests that arrive while its last batch is out share one entry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { Producer, type SendResult } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { LIMITS } from '../src/protocol/index.js';
import { isLmqError } from '../src/util/errors.js';

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
});
afterAll(async () => {
  await cluster?.dispose();
});

async function createTopic(topic: string, queues: number): Promise<void> {
  await client.call({ op: 'createTopic', topic, queues });
}

interface ReadMessage {
  offset: number;
  msgId: string;
  body: Uint8Array;
}

/** Every message of one queue, from offset 0, through the read API. */
async function readQueue(topic: string, queueId: number): Promise<ReadMessage[]> {
  const messages: ReadMessage[] = [];
  for (;;) {
    const reply = await client.call({ op: 'pull', topic, queueId, offset: messages.length, maxMessages: 1024, maxBytes: 1 << 20, waitMs: 0 });
    if (reply.messages.length === 0) return messages;
    messages.push(...reply.messages);
  }
}

/** `total` sends of bodies "0", "1", … (in call order), `inFlight` at a time, through one producer. */
async function sendClosedLoop(producer: Producer, topic: string, total: number, inFlight: number): Promise<SendResult[]> {
  const results: SendResult[] = new Array(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const index = next++;
      results[index] = await producer.send(topic, { body: Buffer.from(String(index)) });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return results;
}

/** Reads back every queue: each send is stored once, where its result says, and each queue holds its sends in call order. */
async function expectStoredInSendOrder(topic: string, queues: number, results: readonly SendResult[]): Promise<void> {
  expect(new Set(results.map((r) => r.msgId)).size).toBe(results.length);
  let stored = 0;
  for (let queueId = 0; queueId < queues; queueId++) {
    const read = await readQueue(topic, queueId);
    stored += read.length;
    expect(read.map((m) => m.offset)).toEqual(read.map((_, i) => i)); // dense
    const sendIndexes = read.map((m) => Number(Buffer.from(m.body).toString()));
    expect(sendIndexes).toEqual([...sendIndexes].sort((a, b) => a - b)); // in call order
    for (const [i, m] of read.entries()) {
      expect(results[sendIndexes[i]!]).toMatchObject({ msgId: m.msgId, queueId, offset: m.offset, duplicate: false });
    }
  }
  expect(stored).toBe(results.length);
}

describe('producer batching – natural batching against a real cluster', () => {
  it('combines 2,000 sends with 256 in flight into far fewer requests, each send acknowledged once in order per queue', async () => {
    await createTopic('many', 4);
    const producer = new Producer(client, 20_000);
    const results = await sendClosedLoop(producer, 'many', 2000, 256);
    await expectStoredInSendOrder('many', 4, results);
    const stats = producer.stats();
    expect(stats.messages).toBe(2000);
    expect(stats.requests).toBeLessThan(500);
    expect(stats).toMatchObject({ queuedMessages: 0, sendsWaitingForRoom: 0 });
  });

  it('sends what the answers of one turn release as one request: with 256 sends in flight, requests carry 64 or more on average', async () => {
    // The answers of one broker round arrive together; dispatching at each answer sent the one
    // send it released alone, so 7 of 8 requests carried one message (32 on average).
    await createTopic('turns', 8);
    const producer = new Producer(client, 20_000);
    const results = await sendClosedLoop(producer, 'turns', 2560, 256);
    await expectStoredInSendOrder('turns', 8, results);
    expect(producer.stats().messages).toBe(2560);
    expect(producer.stats().requests).toBeLessThanOrEqual(40);
  });

  it('sends one request per message when one send is in flight at a time', async () => {
    await createTopic('single', 2);
    const producer = new Producer(client, 20_000);
    const results = await sendClosedLoop(producer, 'single', 40, 1);
    await expectStoredInSendOrder('single', 2, results);
    expect(producer.stats()).toMatchObject({ requests: 40, messages: 40 });
  });

  it('with maxBatchMessages 1 sends one request per message even with many in flight; the leader puts them in far fewer entries', async () => {
    await createTopic('unbatched', 2);
    const producer = new Producer(client, 20_000, { maxBatchMessages: 1, maxInflightRequests: 64 });
    const commitBefore = (await cluster.leader()).commitIndex;
    const results = await sendClosedLoop(producer, 'unbatched', 200, 64);
    const entries = (await cluster.leader()).commitIndex - commitBefore;
    await expectStoredInSendOrder('unbatched', 2, results);
    expect(producer.stats()).toMatchObject({ requests: 200, messages: 200 });
    // Requests that arrive while the leader's last batch of produces is out share one entry.
    expect(entries).toBeLessThan(100);
  });

  it('refuses a message with an over-long key alone while its neighbours are stored', async () => {
    await createTopic('keys', 1);
    const producer = new Producer(client, 20_000);
    const longKey = 'k'.repeat(LIMITS.maxKeyLength + 1);
    const sends = Array.from({ length: 21 }, (_, i) => producer.send('keys', { body: Buffer.from(String(i)), ...(i === 10 ? { key: longKey } : { key: `k${i}` }) }));
    const outcomes = await Promise.allSettled(sends);
    const refused = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [[i, o.reason]] : []));
    expect(refused).toHaveLength(1);
    expect(refused[0]![0]).toBe(10);
    expect(isLmqError(refused[0]![1], 'LMQ_BAD_INPUT')).toBe(true);
    expect(String((refused[0]![1] as Error).message)).toMatch(/keys\[0\] must be 1 to 128 characters/);
    const read = await readQueue('keys', 0);
    expect(read.map((m) => Buffer.from(m.body).toString())).toEqual(Array.from({ length: 21 }, (_, i) => String(i)).filter((i) => i !== '10'));
  });

  it('fails sends to a missing topic with LMQ_TOPIC_NOT_FOUND while interleaved sends to an existing topic are stored', async () => {
    await createTopic('present', 2);
    const producer = new Producer(client, 20_000);
    const sends = Array.from({ length: 60 }, (_, i) => producer.send(i % 3 === 1 ? 'absent' : 'present', { body: Buffer.from(String(i)) }));
    const outcomes = await Promise.allSettled(sends);
    const results: SendResult[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      if (i % 3 === 1) {
        expect(outcome.status).toBe('rejected');
        expect(isLmqError(outcome.status === 'rejected' ? outcome.reason : null, 'LMQ_TOPIC_NOT_FOUND')).toBe(true);
      } else {
        expect(outcome.status).toBe('fulfilled');
        if (outcome.status === 'fulfilled') results.push(outcome.value);
      }
    }
    expect(results).toHaveLength(40);
    const stored = (await Promise.all([0, 1].map((q) => readQueue('present', q)))).flat();
    expect(stored.map((m) => Number(Buffer.from(m.body).toString())).sort((a, b) => a - b)).toEqual(outcomes.flatMap((_, i) => (i % 3 === 1 ? [] : [i])));
    // The producer goes on in the same way afterwards.
    expect((await producer.send('present', { body: Buffer.from('after') })).duplicate).toBe(false);
  });

  it('holds sends beyond maxQueuedMessages back in call order and drops none', async () => {
    await createTopic('bounded', 3);
    const producer = new Producer(client, 20_000, { maxQueuedMessages: 8, maxBatchMessages: 4, maxInflightRequests: 1 });
    const sends = Array.from({ length: 200 }, (_, i) => producer.send('bounded', { body: Buffer.from(String(i)) }));
    const depth = producer.stats();
    expect(depth.queuedMessages).toBeLessThanOrEqual(8);
    expect(depth.sendsWaitingForRoom).toBe(200 - depth.queuedMessages - depth.messages);
    expect(depth.sendsWaitingForRoom).toBeGreaterThan(150);
    let maxQueued = 0;
    const watch = setInterval(() => (maxQueued = Math.max(maxQueued, producer.stats().queuedMessages)), 1);
    const results = await Promise.all(sends).finally(() => clearInterval(watch));
    expect(maxQueued).toBeLessThanOrEqual(8);
    await expectStoredInSendOrder('bounded', 3, results);
    expect(producer.stats()).toMatchObject({ messages: 200, queuedMessages: 0, sendsWaitingForRoom: 0 });
    expect(producer.stats().requests).toBeGreaterThanOrEqual(50);
  });

  it('refuses sends beyond maxWaitingSends with LMQ_OVERLOADED, storing the others in order', async () => {
    await createTopic('waiting', 2);
    const producer = new Producer(client, 20_000, { maxQueuedMessages: 2, maxWaitingSends: 3, maxBatchMessages: 2, maxInflightRequests: 1 });
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => producer.send('waiting', { body: Buffer.from(String(i)) })));
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'LMQ_OVERLOADED' });
    const acked = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
    expect(acked.length + refused.length).toBe(10);
    const read = [...(await readQueue('waiting', 0)), ...(await readQueue('waiting', 1))];
    const bodies = read.map((m) => Number(Buffer.from(m.body).toString()));
    expect([...bodies].sort((a, b) => a - b)).toEqual(acked); // exactly the acknowledged sends, once each
    for (const queueId of [0, 1]) {
      const inQueue = (await readQueue('waiting', queueId)).map((m) => Number(Buffer.from(m.body).toString()));
      expect(inQueue).toEqual([...inQueue].sort((a, b) => a - b)); // in call order
    }
  });

  it('keeps an explicit batch in one queue and one request of its own', async () => {
    await createTopic('explicit', 4);
    const producer = new Producer(client, 20_000);
    const singles = Array.from({ length: 10 }, (_, i) => producer.send('explicit', { body: Buffer.from(`s${i}`) }));
    const batch = producer.sendBatch('explicit', Array.from({ length: 5 }, (_, i) => ({ body: Buffer.from(`b${i}`) })));
    const [batchResults] = await Promise.all([batch, Promise.all(singles)]);
    expect(new Set(batchResults.map((r) => r.queueId)).size).toBe(1);
    const offsets = batchResults.map((r) => r.offset!);
    expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
    await expect(producer.sendBatch('explicit', [])).rejects.toThrow(/at least one message/);
    expect(producer.stats().messages).toBe(15);
  });

  it('refuses options out of bounds, naming them', () => {
    expect(() => new Producer(client, 1000, { maxBatchMessages: LIMITS.maxMessagesPerProduce + 1 })).toThrow(/maxBatchMessages must be a whole number from 1 to 1024/);
    expect(() => new Producer(client, 1000, { maxInflightRequests: 0 })).toThrow(/maxInflightRequests/);
    expect(() => new Producer(client, 1000, { lingerMs: 5 } as never)).toThrow(/unknown producer option "lingerMs"/);
  });
});
