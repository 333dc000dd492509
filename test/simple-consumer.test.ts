import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { SimpleConsumer } from '../src/client/simple-consumer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { isLmqError } from '../src/util/errors.js';
import { readWholeQueue, runCli } from './process-helpers.js';

// The simple consumer on a real three-node cluster (node processes), through the client and
// the CLI: receive / ack / changeInvisibleDuration, redelivery with deliveryAttempt + 1 once
// the invisible duration ran out, the DLQ after consumer.maxReconsumeTimes + 1 deliveries, a
// leader SIGKILL between receive and ack (the ack goes through the new leader; nothing acked
// comes back), and `consume --simple`.

const INVISIBLE_MS = 1_000;

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create({ consumer: { maxReconsumeTimes: 1 } });
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
}, 60_000);
afterAll(async () => {
  await cluster.dispose();
});

async function produce(topic: string, bodies: readonly string[]): Promise<void> {
  const producer = new Producer(client, 10_000);
  for (const body of bodies) await producer.send(topic, { body: Buffer.from(body) }, 'roundRobin');
}

function consumer(group: string, topic: string): SimpleConsumer {
  return new SimpleConsumer(cluster.client(), { group, clientId: `${group}-c`, awaitDurationMs: 3_000 }).subscribe(topic);
}

const text = (body: Uint8Array) => Buffer.from(body).toString();

async function committedRow(group: string, topic: string): Promise<{ committed: number; lag: number }> {
  const { groups } = await client.call({ op: 'groups' });
  const rows = groups.find((g) => g.group === group)?.queues.filter((q) => q.topic === topic) ?? [];
  return { committed: rows.reduce((sum, r) => sum + r.committedOffset, 0), lag: rows.reduce((sum, r) => sum + r.lag, 0) };
}

describe('simple consumer – a real cluster', () => {
  it('receives, acks, redelivers what was not acked with deliveryAttempt + 1, and dead-letters it after maxReconsumeTimes + 1 deliveries', async () => {
    await client.call({ op: 'createTopic', topic: 'coupons', queues: 2 });
    await produce('coupons', ['c0', 'c1', 'c2', 'c3']);
    const c = consumer('gs', 'coupons');
    const first = await c.receive(32, INVISIBLE_MS);
    expect(first.map((m) => text(m.body)).sort()).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(first.every((m) => m.deliveryAttempt === 1 && m.receipt.length > 0)).toBe(true);
    const poison = first.find((m) => text(m.body) === 'c1')!;
    const slow = first.find((m) => text(m.body) === 'c2')!;
    for (const m of first.filter((m) => m !== poison && m !== slow)) await c.ack(m);
    const extended = await c.changeInvisibleDuration(slow, 20_000);
    expect(extended).not.toBe(slow.receipt);
    await expect(c.ack(slow)).rejects.toMatchObject({ code: 'LMQ_RECEIPT_EXPIRED', indeterminate: false });
    // Round-robin placed c0, c2 in queue 0 and c1, c3 in queue 1: each queue's committed offset
    // is its lowest unacked one (c2 at 1, c1 at 0).
    expect(await committedRow('gs', 'coupons')).toEqual({ committed: 1, lag: 3 });
    // Long polling: nothing is visible until the poison's duration ends, then it comes again.
    const again = await c.receive(32, INVISIBLE_MS, { waitMs: 5_000 });
    expect(again.map((m) => [text(m.body), m.deliveryAttempt])).toEqual([['c1', 2]]);
    await expect(c.ack(poison)).rejects.toMatchObject({ code: 'LMQ_RECEIPT_EXPIRED' });
    await sleep(INVISIBLE_MS + 100);
    // The third delivery would exceed maxReconsumeTimes + 1 = 2: a dead letter, not handed out.
    expect(await c.receive(32, INVISIBLE_MS, { waitMs: 0 })).toEqual([]);
    const [dead] = await readWholeQueue(client, '%DLQ%gs');
    expect(dead).toMatchObject({ msgId: poison.msgId, deadLetter: { attempts: 2 } });
    await c.ack(extended);
    await c.ack(extended); // acked before: success again
    expect(await committedRow('gs', 'coupons')).toEqual({ committed: 4, lag: 0 });
    expect(await c.receive(32, INVISIBLE_MS, { waitMs: 500 })).toEqual([]);
  }, 60_000);

  it('a leader SIGKILL between receive and ack: the ack goes through the new leader; acked messages never come back, unacked ones do', async () => {
    await client.call({ op: 'createTopic', topic: 'failover', queues: 1 });
    await produce('failover', ['f0', 'f1', 'f2', 'f3']);
    const c = consumer('gf', 'failover');
    const received = await c.receive(32, 3_000);
    expect(received.map((m) => text(m.body))).toEqual(['f0', 'f1', 'f2', 'f3']);
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    for (const m of received.slice(0, 3)) await c.ack(m);
    expect((await cluster.leader([leader.id])).id).not.toBe(leader.id);
    cluster.start(leader.id);
    // Only f3 comes again, after its 3 s ran out, and only once whatever the wait.
    const deadlineMs = performance.now() + 10_000;
    const later: string[] = [];
    while (performance.now() < deadlineMs) {
      for (const m of await c.receive(32, 5_000, { waitMs: 1_000 })) {
        later.push(`${text(m.body)}/${m.deliveryAttempt}`);
        await c.ack(m);
      }
      if (later.length > 0) break;
    }
    expect(later).toEqual(['f3/2']);
    expect(await c.receive(32, 1_000, { waitMs: 1_500 })).toEqual([]);
    expect(await committedRow('gf', 'failover')).toEqual({ committed: 4, lag: 0 });
  }, 90_000);

  it('refuses a receipt that is not one and a duration out of range, doing nothing', async () => {
    const refused = await client.call({ op: 'ack', group: 'gs', receipts: ['nonsense'] }).then(() => null, (e: unknown) => e);
    expect(isLmqError(refused, 'LMQ_BAD_INPUT') && refused.message).toContain('receipts.0');
    await expect(consumer('gs', 'coupons').receive(1, 10)).rejects.toMatchObject({ code: 'LMQ_BAD_INPUT' });
  });
});

describe('consume --simple – the CLI', () => {
  it('prints each message with its receipt and delivery attempt and acks it; --exec acks on exit 0 and leaves a failure invisible until it runs out', async () => {
    const cli = (args: string[]) => runCli(cluster.configPath, ['consume', '--topic', 'cli', '--simple', ...args]);
    await client.call({ op: 'createTopic', topic: 'cli', queues: 2 });
    await produce('cli', ['a', 'b', 'c']);
    const printed = await cli(['--group', 'gc', '--json', '--timeout', '1500']);
    expect(printed.code, printed.stderr).toBe(0);
    const lines = printed.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => l['body']).sort()).toEqual(['a', 'b', 'c']);
    expect(lines.every((l) => l['deliveryAttempt'] === 1 && typeof l['receipt'] === 'string' && l['topic'] === 'cli')).toBe(true);
    expect(Object.keys(lines[0]!)).toEqual(['queue', 'offset', 'msgId', 'key', 'tag', 'body', 'topic', 'receipt', 'deliveryAttempt']);
    expect((await cli(['--group', 'gc', '--json', '--timeout', '1000'])).stdout).toBe('');
    // --exec: "b" fails once (its duration runs out, it comes again with LMQ_RECONSUME_TIMES 1), the others succeed.
    const handled = await cli(['--group', 'ge', '--invisible-ms', '1000', '--timeout', '3000', '--exec', 'body=$(cat); echo "$body/$LMQ_RECONSUME_TIMES"; [ "$body" != b ] || [ "$LMQ_RECONSUME_TIMES" = 1 ]']);
    expect(handled.code, handled.stderr).toBe(0);
    expect(handled.stdout).toBe('');
    const runs = handled.stderr.split('\n').filter((line) => /^[abc]\/\d$/.test(line));
    expect(runs.sort()).toEqual(['a/0', 'b/0', 'b/1', 'c/0']);
    expect(handled.stderr).toContain('left invisible until');
    expect(await committedRow('ge', 'cli')).toEqual({ committed: 3, lag: 0 });
    const bad = await cli(['--group', 'gx', '--orderly', '--exec', 'true']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--orderly does not apply to --simple');
  }, 60_000);
});
