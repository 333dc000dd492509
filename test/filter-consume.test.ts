import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { PullConsumer } from '../src/client/consumer.js';
import { OrderlyConsumer } from '../src/client/orderly-consumer.js';
import { Producer, type OutgoingMessage } from '../src/client/producer.js';
import { PushConsumer, type PushMessage } from '../src/client/push-consumer.js';
import type { SubscriptionFilter } from '../src/filter/index.js';
import { until } from '../src/util/until.js';
import { isLmqError } from '../src/util/errors.js';
import { runCli } from './process-helpers.js';

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
});
afterAll(async () => {
  await cluster.dispose();
});

async function createTopic(topic: string, queues: number): Promise<void> {
  await client.call({ op: 'createTopic', topic, queues });
}

async function send(topic: string, messages: OutgoingMessage[]): Promise<void> {
  const producer = new Producer(client, 20_000);
  for (let i = 0; i < messages.length; i += 256) await Promise.all(messages.slice(i, i + 256).map((m) => producer.send(topic, m)));
}

const message = (body: string, extra: Partial<OutgoingMessage> = {}): OutgoingMessage => ({ body: Buffer.from(body), ...extra });
const text = (m: { body: Uint8Array }) => Buffer.from(m.body).toString();

/** The group's summed lag over the topic's queues (its retry queues left out). */
async function lag(group: string, topic: string): Promise<number> {
  const { groups } = await client.call({ op: 'groups' });
  const rows = groups.find((g) => g.group === group)?.queues.filter((q) => q.topic === topic) ?? [];
  if (rows.length === 0) return Number.POSITIVE_INFINITY;
  return rows.reduce((sum, q) => sum + q.lag, 0);
}

const pull = (topic: string, offset: number, filter: SubscriptionFilter, waitMs: number) =>
  client.call({ op: 'pull', topic, queueId: 0, offset, maxMessages: 32, maxBytes: 1 << 20, waitMs, filter }, waitMs + 5000, waitMs + 5000);

describe('filter – pulls on the broker', () => {
  it('refuses a malformed expression at the broker, naming its position', async () => {
    await createTopic('f-bad', 1);
    const refused = await pull('f-bad', 0, { type: 'sql', expression: 'a > 5 AND' }, 0).catch((error: unknown) => error);
    expect(isLmqError(refused, 'LMQ_BAD_INPUT')).toBe(true);
    expect((refused as Error).message).toContain('at character 10');
    const badTag = await pull('f-bad', 0, { type: 'tag', expression: 'A || ' }, 0).catch((error: unknown) => error);
    expect(isLmqError(badTag, 'LMQ_BAD_INPUT')).toBe(true);
  });

  it('long-polls through non-matching messages and answers the first match at once', async () => {
    await createTopic('f-poll', 1);
    const started = performance.now();
    const waiting = pull('f-poll', 0, { type: 'tag', expression: 'hit' }, 20_000);
    await send('f-poll', [message('m0', { tag: 'miss' }), message('m1', { tag: 'miss' })]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await send('f-poll', [message('m2', { tag: 'hit' })]);
    const reply = await waiting;
    expect(reply.messages.map(text)).toEqual(['m2']);
    expect(reply.nextBeginOffset).toBe(3);
    expect(performance.now() - started).toBeLessThan(15_000); // answered by the match, not by the wait's end
  });

  it('answers a wait that saw only non-matching messages with none, and nextBeginOffset past them', async () => {
    await createTopic('f-none', 1);
    const waiting = pull('f-none', 0, { type: 'sql', expression: 'a > 5' }, 1500);
    await send('f-none', [message('m0', { properties: { a: '1' } }), message('m1')]);
    const reply = await waiting;
    expect(reply.messages).toEqual([]);
    expect(reply.startOffset).toBe(0);
    expect(reply.nextBeginOffset).toBe(2);
  });
});

/** 100 messages on 2 queues: every tenth tagged `hit` with property n >= 90 … and the rest not. */
function mixed(prefix: string): { messages: OutgoingMessage[]; hits: string[] } {
  const messages = Array.from({ length: 100 }, (_, i) => message(`${prefix}-${i}`, i % 10 === 3 ? { tag: 'hit', properties: { n: String(i) } } : { tag: 'miss', properties: { n: String(i) } }));
  return { messages, hits: messages.filter((m) => m.tag === 'hit').map(text) };
}

describe('filter – consumers receive only matches and their group reaches lag 0', () => {
  it('PullConsumer with a tag filter', async () => {
    await createTopic('f-pull', 2);
    const { messages, hits } = mixed('p');
    await send('f-pull', messages);
    expect(() => new PullConsumer(client, { topic: 'f-pull', group: 'g', from: 'first', pollWaitMs: 100, maxMessagesPerPull: 8, maxBytesPerPull: 1 << 20, filter: { type: 'tag', expression: '||' } })).toThrow(/bad tag filter at character 1/);
    const consumer = new PullConsumer(client, { topic: 'f-pull', group: 'g-pull', from: 'first', pollWaitMs: 100, maxMessagesPerPull: 8, maxBytesPerPull: 1 << 20, filter: { type: 'tag', expression: 'hit' } });
    await consumer.start();
    const received: string[] = [];
    await until('the filtered pull group to reach lag 0', async () => {
      const batch = await consumer.poll(true);
      received.push(...batch.map(text));
      await consumer.commit();
      return (await lag('g-pull', 'f-pull')) === 0;
    });
    expect(received.sort()).toEqual([...hits].sort());
  });

  it('PushConsumer with an SQL92 filter', async () => {
    await createTopic('f-push', 2);
    const { messages } = mixed('s');
    await send('f-push', messages);
    const received: PushMessage[] = [];
    const consumer = new PushConsumer(client, { topic: 'f-push', group: 'g-push', consumerId: 'c1', pollWaitMs: 200, commitIntervalMs: 100, filter: { type: 'sql', expression: 'n >= 90' } }, async (batch) => {
      received.push(...batch);
      return 'SUCCESS';
    });
    await consumer.start();
    try {
      await until('the filtered push group to reach lag 0', async () => (await lag('g-push', 'f-push')) === 0);
    } finally {
      await consumer.stop();
    }
    expect(received.map(text).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `s-${90 + i}`).sort());
  });

  it('OrderlyConsumer with a tag filter, in queue order', async () => {
    await createTopic('f-orderly', 2);
    const { messages, hits } = mixed('o');
    await send('f-orderly', messages);
    const received: { queueId: number; offset: number; body: string }[] = [];
    const consumer = new OrderlyConsumer(client, { topic: 'f-orderly', group: 'g-orderly', consumerId: 'o1', from: 'first', pollWaitMs: 200, maxMessagesPerPull: 4, filter: { type: 'tag', expression: 'hit' } }, async (batch) => {
      received.push(...batch.map((m) => ({ queueId: m.queueId, offset: m.offset, body: text(m) })));
      return 'SUCCESS';
    });
    await consumer.start();
    try {
      await until('the filtered orderly group to reach lag 0', async () => (await lag('g-orderly', 'f-orderly')) === 0);
    } finally {
      await consumer.stop();
    }
    expect(received.map((m) => m.body).sort()).toEqual([...hits].sort());
    for (const queueId of [0, 1]) {
      const offsets = received.filter((m) => m.queueId === queueId).map((m) => m.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
  });
});

describe('filter – consume on the command line', () => {
  it('reads only the 1% of 5,000 messages that match --filter-tag, and the group reaches lag 0', async () => {
    await createTopic('f-cli', 4);
    await send('f-cli', Array.from({ length: 5000 }, (_, i) => message(`c-${i}`, { tag: i % 100 === 42 ? 'hit' : `miss${i % 7}` })));
    const consumed = await runCli(cluster.configPath, ['consume', '--topic', 'f-cli', '--group', 'g-cli', '--filter-tag', 'hit', '--timeout', '2000', '--json']);
    expect(consumed.code).toBe(0);
    const bodies = consumed.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { body: string; tag: string }));
    expect(bodies.every((m) => m.tag === 'hit')).toBe(true);
    expect(bodies.map((m) => m.body).sort()).toEqual(Array.from({ length: 50 }, (_, k) => `c-${k * 100 + 42}`).sort());
    expect(await lag('g-cli', 'f-cli')).toBe(0);
  });

  it('runs --exec and --exec --orderly with --filter-sql, and refuses bad or clashing filters with exit 2', async () => {
    await createTopic('f-cli-exec', 2);
    await send('f-cli-exec', Array.from({ length: 40 }, (_, i) => message(`e-${i}`, { properties: { kind: i % 4 === 0 ? 'paid' : 'other' } })));
    for (const [group, extra] of [['g-exec', []], ['g-exec-orderly', ['--orderly']]] as const) {
      const ran = await runCli(cluster.configPath, ['consume', '--topic', 'f-cli-exec', '--group', group, ...extra, '--filter-sql', "kind IN ('paid')", '--exec', 'cat', '--timeout', '2000']);
      expect(ran.code).toBe(0);
      const bodies = ran.stderr.match(/e-\d+/g) ?? []; // each handler's output (its body) goes to stderr
      expect(bodies.sort()).toEqual(Array.from({ length: 10 }, (_, k) => `e-${k * 4}`).sort());
      expect(await lag(group, 'f-cli-exec')).toBe(0);
    }
    const bad = await runCli(cluster.configPath, ['consume', '--topic', 'f-cli-exec', '--group', 'g', '--filter-sql', 'kind IN (1)']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad SQL filter at character 10');
    const both = await runCli(cluster.configPath, ['consume', '--topic', 'f-cli-exec', '--group', 'g', '--filter-sql', 'a = 1', '--filter-tag', 'x']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('cannot be used with');
  });
});
