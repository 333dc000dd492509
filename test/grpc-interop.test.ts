import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilterExpression, Producer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';

// The official RocketMQ 5 Node.js client (rocketmq-client-nodejs 1.0.8, unchanged) against a
// real three-node cluster through its gRPC endpoints (src/grpc): routes and settings, sends with
// tags, keys and properties, simple consumption with acks and redelivery, FIFO, delayed and
// transactional messages. The client's own startup waits without a timeout, so every startup,
// receive and shutdown here is bounded by CLIENT_STEP_MS and fails the test past it.

const CLIENT_STEP_MS = 20_000;
const TX = { checkAfterMs: 1_000, checkIntervalMs: 1_000, maxChecks: 6 };

/** The client logs to ~/logs/rocketmq unless given a logger: keep only its errors, on stderr. */
const quietLogger = { info: () => undefined, warn: () => undefined, debug: () => undefined, error: (...args: unknown[]) => process.env['LMQ_GRPC_TEST_LOG'] === '1' && console.error(...args) };

async function bounded<T>(what: string, work: Promise<T>, ms = CLIENT_STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let cluster: LocalCluster;
let admin: LedgerClient;
let endpoints: string;
const started: { shutdown(): Promise<void> }[] = [];

beforeAll(async () => {
  cluster = await LocalCluster.create({ transaction: TX }, { grpc: true });
  cluster.startAll();
  const leader = await cluster.leader();
  admin = cluster.client();
  for (const topic of ['normal', 'fifo', 'redeliver', 'delayed', 'tx', 'filtered']) await admin.call({ op: 'createTopic', topic, queues: 4 });
  // A follower's endpoint: everything it does goes through the leader.
  const follower = cluster.config.nodes.find((n) => n.id !== leader.id)!;
  endpoints = `${follower.host}:${follower.grpcPort}`;
}, 60_000);

afterAll(async () => {
  for (const client of started) await bounded('shutdown', client.shutdown()).catch(() => undefined);
  admin?.close();
  await cluster?.dispose();
});

async function producer(topics: string[], checker?: { check(message: MessageView): Promise<number> }): Promise<Producer> {
  const p = new Producer({ endpoints, namespace: '', topics, logger: quietLogger, ...(checker === undefined ? {} : { checker: checker as never }) });
  await bounded('producer startup', p.startup());
  started.push(p);
  return p;
}

async function simpleConsumer(group: string, topic: string, filter: FilterExpression | string = '*', awaitDuration = 2_000): Promise<SimpleConsumer> {
  const c = new SimpleConsumer({ endpoints, namespace: '', consumerGroup: group, subscriptions: new Map([[topic, filter]]), awaitDuration, logger: quietLogger });
  await bounded('simple consumer startup', c.startup());
  started.push(c);
  return c;
}

async function shutdown(client: { shutdown(): Promise<void> }): Promise<void> {
  await bounded('shutdown', client.shutdown());
  started.splice(started.indexOf(client), 1);
}

/** Receives until `count` messages arrived or `ms` passed, acking each; returns them in arrival order. */
async function receiveAll(consumer: SimpleConsumer, count: number, ms: number, invisibleMs = 10_000): Promise<MessageView[]> {
  const got: MessageView[] = [];
  const deadline = Date.now() + ms;
  while (got.length < count && Date.now() < deadline) {
    const batch = await bounded('receive', consumer.receive(16, invisibleMs));
    for (const message of batch) {
      got.push(message);
      await bounded('ack', consumer.ack(message));
    }
  }
  return got;
}

describe('grpc – the official RocketMQ client', () => {
  it('sends 50 messages with tags, keys and properties, and a simple consumer receives each exactly once', async () => {
    const p = await producer(['normal']);
    const sent = new Map<string, { body: string; tag: string; key: string }>();
    for (let i = 0; i < 50; i++) {
      const body = `normal-${i}`;
      const receipt = await bounded('send', p.send({ topic: 'normal', body: Buffer.from(body), tag: `t${i % 3}`, keys: [`k${i}`], properties: new Map([['n', String(i)]]) }));
      expect(receipt.messageId).toMatch(/^[0-9A-F]{34}$/);
      sent.set(receipt.messageId, { body, tag: `t${i % 3}`, key: `k${i}` });
    }
    const c = await simpleConsumer('g-normal', 'normal');
    const got = await receiveAll(c, 50, 15_000);
    expect(got.map((m) => m.messageId).sort()).toEqual([...sent.keys()].sort());
    for (const m of got) {
      const expected = sent.get(m.messageId)!;
      expect(m.body.toString()).toBe(expected.body);
      expect(m.tag).toBe(expected.tag);
      expect(m.keys).toEqual([expected.key]);
      expect(m.properties.get('n')).toBe(expected.body.slice('normal-'.length));
      expect([...m.properties.keys()]).toEqual(['n']);
      expect(m.deliveryAttempt).toBe(1);
      expect(m.corrupted).toBeFalsy();
      expect(m.bornTimestamp).toBeInstanceOf(Date);
      expect(m.bornHost).not.toBe('');
    }
    // Everything was acked: nothing comes back.
    expect(await bounded('receive', c.receive(16, 10_000))).toEqual([]);
    await shutdown(c);
    await shutdown(p);
  }, 60_000);
});
