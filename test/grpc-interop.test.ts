import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { ConsumeResult, FilterExpression, Producer, PushConsumer, SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { telemetryErrors } from './rocketmq-telemetry-guard.js';
import { messagingServiceDefinition } from '../src/grpc/proto.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';

// The official RocketMQ 5 Node.js client (rocketmq-client-nodejs 1.0.8, unchanged) against a
// real three-node cluster through its gRPC endpoints (src/grpc): routes and settings, sends with
// tags, keys and properties, simple consumption with acks and redelivery, FIFO, delayed and
// transactional messages. The client's own startup waits without a timeout, so every startup,
// receive and shutdown here is bounded by CLIENT_STEP_MS and fails the test past it.

const CLIENT_STEP_MS = 20_000;
/** apache.rocketmq.v2.FilterType.SQL (the client package does not re-export its protobuf enums). */
const SQL_FILTER = 2;
const TX = { checkAfterMs: 1_000, checkIntervalMs: 1_000, maxChecks: 6 };

/** The client logs to ~/logs/rocketmq unless given a logger: keep only its errors, on stderr. */
const verbose = process.env['LMQ_GRPC_TEST_LOG'] === '1';
const print = (...args: unknown[]) => void (verbose && console.error(...args));
const quietLogger = { info: print, warn: print, debug: print, error: print };

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
  cluster = await LocalCluster.create({ transaction: TX, grpc: { fifoGroups: ['g-fifo'] } }, { grpc: true });
  cluster.startAll();
  const leader = await cluster.leader();
  admin = cluster.client();
  for (const topic of ['normal', 'fifo', 'redeliver', 'delayed', 'tx', 'filtered', 'raw', 'push', 'failover']) await admin.call({ op: 'createTopic', topic, queues: 4 });
  // A follower's endpoint: everything it does goes through the leader.
  const follower = cluster.config.nodes.find((n) => n.id !== leader.id)!;
  endpoints = `${follower.host}:${follower.grpcPort}`;
}, 60_000);

afterAll(async () => {
  for (const client of started) await bounded('shutdown', client.shutdown()).catch(() => undefined);
  admin?.close();
  await cluster?.dispose();
  expect(telemetryErrors().map(String)).toEqual([]);
});

async function producer(topics: string[], checker?: { check(message: MessageView): Promise<number> }, at = endpoints): Promise<Producer> {
  const p = new Producer({ endpoints: at, namespace: '', topics, logger: quietLogger, ...(checker === undefined ? {} : { checker: checker as never }) });
  await bounded('producer startup', p.startup());
  started.push(p);
  return p;
}

async function simpleConsumer(group: string, topic: string, filter: FilterExpression | string = '*', awaitDuration = 2_000, at = endpoints): Promise<SimpleConsumer> {
  const c = new SimpleConsumer({ endpoints: at, namespace: '', consumerGroup: group, subscriptions: new Map([[topic, filter]]), awaitDuration, logger: quietLogger });
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

  it('redelivers a message not acked within its invisible duration, with delivery attempt 2', async () => {
    const p = await producer(['redeliver']);
    const { messageId } = await bounded('send', p.send({ topic: 'redeliver', body: Buffer.from('again') }));
    const c = await simpleConsumer('g-redeliver', 'redeliver');
    const [first] = await bounded('receive', c.receive(1, 1_000));
    expect(first?.messageId).toBe(messageId);
    expect(first?.deliveryAttempt).toBe(1);
    const [second] = await bounded('receive', c.receive(1, 10_000));
    expect(second?.messageId).toBe(messageId);
    expect(second?.deliveryAttempt).toBe(2);
    expect(second?.receiptHandle).not.toBe(first?.receiptHandle);
    // The first delivery's receipt is stale now: acking it is refused, never a silent success.
    await expect(c.ack(first!)).rejects.toMatchObject({ code: 40013 });
    await bounded('ack', c.ack(second!));
    expect(await bounded('receive', c.receive(1, 1_000))).toEqual([]);
    await shutdown(c);
    await shutdown(p);
  }, 60_000);

  it('keeps each FIFO message group in order over 3 groups, holding a group while one of its messages is in flight', async () => {
    const p = await producer(['fifo']);
    const groups = ['ga', 'gb', 'gc'];
    for (let i = 0; i < 10; i++) for (const group of groups) await bounded('send', p.send({ topic: 'fifo', body: Buffer.from(`${group}-${i}`), messageGroup: group }));
    const c = await simpleConsumer('g-fifo', 'fifo');
    // g-fifo is in grpc.fifoGroups: while `first` is in flight, its queue (its group) hands out nothing.
    const [first] = await bounded('receive', c.receive(1, 6_000));
    expect(first?.body.toString()).toMatch(/^g[abc]-0$/);
    const held = first!.messageGroup!;
    // (Ends before first's 6 s: the other two groups' 20 messages, or 2.5 s and one long poll.)
    const during = await receiveAll(c, 20, 2_500);
    expect(during.filter((m) => m.messageGroup === held)).toEqual([]);
    const after = await receiveAll(c, 30 - during.length, 15_000);
    const again = after.find((m) => m.messageGroup === held);
    expect(again?.messageId).toBe(first!.messageId);
    expect(again?.deliveryAttempt).toBe(2);
    const got = [...during, ...after];
    expect(got).toHaveLength(30);
    for (const group of groups) {
      const mine = got.filter((m) => m.messageGroup === group).map((m) => m.body.toString());
      expect(mine).toEqual(Array.from({ length: 10 }, (_, i) => `${group}-${i}`));
    }
    await shutdown(c);
    await shutdown(p);
  }, 60_000);

  it('holds a delayed message until its delivery timestamp', async () => {
    const p = await producer(['delayed']);
    const dueAt = Date.now() + 3_000;
    await bounded('send', p.send({ topic: 'delayed', body: Buffer.from('later'), deliveryTimestamp: new Date(dueAt) }));
    const c = await simpleConsumer('g-delayed', 'delayed');
    expect(await bounded('receive', c.receive(1, 10_000))).toEqual([]);
    const [message] = await receiveAll(c, 1, 10_000);
    expect(Date.now()).toBeGreaterThanOrEqual(dueAt);
    expect(message?.body.toString()).toBe('later');
    expect(message?.deliveryTimestamp?.getTime()).toBe(dueAt);
    await shutdown(c);
    await shutdown(p);
  }, 60_000);

  it('delivers a committed transaction and never a rolled-back one; a check-back ends an open one', async () => {
    const checked: string[] = [];
    // Check-backs come over the producer's Telemetry stream: commit what is asked about.
    const p = await producer(['tx'], { check: async (m) => (checked.push(m.body.toString()), 1) });
    const commit = p.beginTransaction();
    await bounded('send', p.send({ topic: 'tx', body: Buffer.from('committed') }, commit));
    await bounded('commit', commit.commit());
    const rollback = p.beginTransaction();
    await bounded('send', p.send({ topic: 'tx', body: Buffer.from('rolled-back') }, rollback));
    await bounded('rollback', rollback.rollback());
    const open = p.beginTransaction();
    await bounded('send', p.send({ topic: 'tx', body: Buffer.from('checked') }, open));
    const c = await simpleConsumer('g-tx', 'tx');
    const got = await receiveAll(c, 2, 15_000);
    expect(got.map((m) => m.body.toString()).sort()).toEqual(['checked', 'committed']);
    expect(checked).toContain('checked');
    expect(await bounded('receive', c.receive(16, 10_000))).toEqual([]);
    await shutdown(c);
    await shutdown(p);
  }, 60_000);

  it('filters by tag and by SQL on the broker side', async () => {
    const p = await producer(['filtered']);
    for (let i = 0; i < 12; i++) await bounded('send', p.send({ topic: 'filtered', body: Buffer.from(`f${i}`), tag: ['a', 'b', 'c'][i % 3], properties: new Map([['n', String(i)]]) }));
    const byTag = await simpleConsumer('g-tag', 'filtered', new FilterExpression('a||c'));
    const tagged = await receiveAll(byTag, 8, 10_000);
    expect(tagged.map((m) => m.body.toString()).sort()).toEqual(['f0', 'f2', 'f3', 'f5', 'f6', 'f8', 'f9', 'f11'].sort());
    const bySql = await simpleConsumer('g-sql', 'filtered', new FilterExpression('n >= 9', SQL_FILTER));
    const selected = await receiveAll(bySql, 3, 10_000);
    expect(selected.map((m) => m.body.toString()).sort()).toEqual(['f10', 'f11', 'f9']);
    expect(await bounded('receive', bySql.receive(16, 10_000))).toEqual([]);
    await shutdown(byTag);
    await shutdown(bySql);
    await shutdown(p);
  }, 60_000);

  it('redelivers to a push consumer whose listener failed once', async () => {
    const p = await producer(['push']);
    const { messageId } = await bounded('send', p.send({ topic: 'push', body: Buffer.from('pushed') }));
    const attempts: number[] = [];
    const done = new Promise<void>((resolve) => {
      const listener = {
        consume: (m: MessageView) => {
          if (m.messageId !== messageId) return ConsumeResult.SUCCESS;
          attempts.push(m.deliveryAttempt ?? 0);
          if (attempts.length === 1) return ConsumeResult.FAILURE;
          resolve();
          return ConsumeResult.SUCCESS;
        },
      };
      const c = new PushConsumer({ endpoints, namespace: '', consumerGroup: 'g-push', subscriptions: new Map([['push', '*']]), messageListener: listener, logger: quietLogger });
      started.push(c);
      void bounded('push consumer startup', c.startup());
    });
    await bounded('push redelivery', done);
    expect(attempts).toEqual([1, 2]);
    await shutdown(started.at(-1)!);
    await shutdown(p);
  }, 60_000);
});

// The protocol below the official client: what it never sends on its own (a repeated message
// id, a bad receipt, a namespace) still gets the right status.
describe('grpc – statuses and deduplication', () => {
  const Client = grpc.makeGenericClientConstructor(messagingServiceDefinition(), 'MessagingService');
  let raw: grpc.Client & Record<string, (request: unknown, metadata: grpc.Metadata, callback: (error: Error | null, response: { status: { code: string } } & Record<string, unknown>) => void) => void>;
  beforeAll(() => {
    raw = new Client(endpoints, grpc.credentials.createInsecure()) as typeof raw;
  });
  afterAll(() => raw.close());

  const unary = (rpc: string, request: unknown, headers: Record<string, string> = {}) =>
    bounded(rpc, new Promise<{ status: { code: string; message: string } } & Record<string, unknown>>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-mq-client-id', 'raw@1@1@test');
      for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
      raw[rpc]!(request, metadata, (error, response) => (error === null ? resolve(response as never) : reject(error)));
    }));
  const message = (id: string, body: string) => ({ topic: { name: 'raw' }, body: Buffer.from(body), systemProperties: { messageId: id, messageType: 'NORMAL', bodyEncoding: 'IDENTITY', bornHost: 'h', bornTimestamp: { seconds: 1, nanos: 0 } } });

  it('stores a message sent twice with one message id once', async () => {
    const first = await unary('SendMessage', { messages: [message('01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA01', 'once')] });
    const again = await unary('SendMessage', { messages: [message('01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA01', 'once')] });
    expect(first.status.code).toBe('OK');
    expect(again.status.code).toBe('OK');
    expect((again['entries'] as { offset: number }[])[0]!.offset).toBe((first['entries'] as { offset: number }[])[0]!.offset);
    const { messages } = await admin.call({ op: 'lookupByMsgId', msgId: '01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA01' });
    expect(messages).toHaveLength(1);
  });

  it('answers failures with RocketMQ codes, never OK or 0', async () => {
    expect((await unary('QueryRoute', { topic: { name: 'no-such-topic' } })).status.code).toBe('TOPIC_NOT_FOUND');
    expect((await unary('SendMessage', { messages: [{ ...message('01BB', 'x'), topic: { name: 'no-such-topic' } }] })).status.code).toBe('TOPIC_NOT_FOUND');
    expect((await unary('AckMessage', { group: { name: 'g' }, topic: { name: 'raw' }, entries: [{ messageId: 'x', receiptHandle: 'not-a-receipt' }] })).status.code).toBe('INVALID_RECEIPT_HANDLE');
    expect((await unary('ChangeInvisibleDuration', { group: { name: 'g' }, topic: { name: 'raw' }, receiptHandle: 'r1:raw:0:0:1', invisibleDuration: { seconds: 5 }, messageId: 'x' })).status.code).toBe('INVALID_RECEIPT_HANDLE');
    expect((await unary('QueryRoute', { topic: { name: 'raw' } }, { 'x-mq-namespace': 'ns' })).status.code).toBe('UNSUPPORTED');
    expect((await unary('SendMessage', { messages: [{ ...message('01CC', 'x'), userProperties: { 'rmq:bornMs': '1' } }] })).status.code).toBe('ILLEGAL_MESSAGE_PROPERTY_KEY');
    expect((await unary('EndTransaction', { topic: { name: 'raw' }, messageId: 'x', transactionId: 'no-such-tx', resolution: 'COMMIT', source: 'SOURCE_CLIENT' })).status.code).not.toBe('OK');
    const route = await unary('QueryRoute', { topic: { name: 'raw' } });
    expect(route.status.code).toBe('OK');
    const queues = route['messageQueues'] as { id: number; broker: { endpoints: { addresses: unknown[] } } }[];
    expect(queues).toHaveLength(3);
    for (const queue of queues) {
      expect(queue.id).toBe(0);
      expect(queue.broker.endpoints.addresses).toHaveLength(1);
    }
  });
});

// Last: it kills the leader (and restarts it). Receipts are replicated state, so an ack of a
// message received from the old leader, sent after the failover, acks it on the new one.
describe('grpc – leader failover', () => {
  it('loses no acknowledged send, and a receipt from the old leader acks on the new one', async () => {
    const victim = (await cluster.leader()).id;
    const survivor = cluster.config.nodes.find((n) => n.id !== victim)!;
    const at = `${survivor.host}:${survivor.grpcPort}`;
    const p = await producer(['failover'], undefined, at);
    const acked = new Set<string>();
    const send = async (i: number) => {
      try {
        await bounded('send', p.send({ topic: 'failover', body: Buffer.from(`fo-${i}`) }));
        acked.add(`fo-${i}`);
      } catch {
        // Unknown outcome (the client gave up across the failover): it may or may not be stored.
      }
    };
    for (let i = 0; i < 20; i++) await send(i);
    const c = await simpleConsumer('g-failover', 'failover', '*', 2_000, at);
    // The client acks at the node it received from: keep messages received through a surviving
    // node (those through the victim are left unacked, to be redelivered).
    const victimNode = cluster.config.nodes.find((n) => n.id === victim)!;
    const early: MessageView[] = [];
    while (early.length === 0) early.push(...(await receiveFrom(c, 5)).filter((m) => m.endpoints.facade !== `${victimNode.host}:${victimNode.grpcPort}`));
    await cluster.kill(victim);
    for (let i = 20; i < 40; i++) await send(i);
    // Acked after the failover with receipts the old leader handed out: accepted, not redelivered.
    for (const message of early) await retried('ack', () => c.ack(message));
    const rest = await receiveUntil(c, acked, early, 30_000);
    const bodies = new Set([...early, ...rest].map((m) => m.body.toString()));
    for (const body of acked) expect(bodies.has(body), `acked send ${body} received`).toBe(true);
    const earlyIds = new Set(early.map((m) => m.messageId));
    expect(rest.filter((m) => earlyIds.has(m.messageId))).toEqual([]);
    expect(acked.size).toBeGreaterThanOrEqual(35);
    // The client's shutdown() tells every broker it knows, and fails while one is down.
    cluster.start(victim);
    await cluster.leader();
    // (gRPC's reconnect back-off to the restarted node can take several seconds.)
    await retried('shutdown', () => c.shutdown(), 40);
    await retried('shutdown', () => p.shutdown(), 40);
    started.length = 0;
  }, 90_000);
});

/** Up to `max` messages from one receive that answers some (receives on a node being killed may fail: they are retried). */
async function receiveFrom(c: SimpleConsumer, max: number): Promise<MessageView[]> {
  for (;;) {
    const batch = await retried('receive', () => c.receive(max, 8_000));
    if (batch.length > 0) return batch;
  }
}

/** Receives (and acks) until every body of `wanted` arrived or `ms` passed; messages in `early` are not expected again. */
async function receiveUntil(c: SimpleConsumer, wanted: ReadonlySet<string>, early: readonly MessageView[], ms: number): Promise<MessageView[]> {
  const got: MessageView[] = [];
  const seen = new Set(early.map((m) => m.body.toString()));
  const deadline = Date.now() + ms;
  while ([...wanted].some((b) => !seen.has(b)) && Date.now() < deadline) {
    const batch = await retried('receive', () => c.receive(16, 10_000)).catch(() => [] as MessageView[]);
    for (const m of batch) {
      got.push(m);
      seen.add(m.body.toString());
      await retried('ack', () => c.ack(m)).catch(() => undefined);
    }
  }
  return got;
}

/** A client call retried while the node it went to is down (the client routes to another only on its own schedule). */
async function retried<T>(what: string, call: () => Promise<T>, attempts = 10): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await bounded(what, call());
    } catch (error) {
      if (i >= attempts) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

