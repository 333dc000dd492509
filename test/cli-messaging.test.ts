import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import { until } from '../src/util/until.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../bin/ledgermq');

let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
});
afterAll(async () => {
  await cluster.dispose();
});

/** Runs the CLI as a user would; resolves with stdout, stderr and the exit code. */
async function cli(args: string[], input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = run(process.execPath, [BIN, ...args, '--config', cluster.configPath], { timeout: 60_000 });
  if (input !== undefined) {
    child.child.stdin!.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const lines = (text: string) => text.trim().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('cli – topic, produce, consume, group', () => {
  it('produces in batches and two broadcast consumers each read everything', async () => {
    expect((await cli(['topic', 'create', 'news', '--queues', '3'])).code).toBe(0);
    const produced = await cli(['produce', '--topic', 'news', '--count', '10', '--size', '16', '--batch', '4', '--json']);
    expect(produced.code).toBe(0);
    const acks = lines(produced.stdout);
    expect(acks).toHaveLength(10);
    expect(new Set(acks.map((a) => a.msgId)).size).toBe(10);
    for (const id of ['reader-1', 'reader-2']) {
      const consumed = await cli(['consume', '--topic', 'news', '--group', 'feed', '--broadcast', '--consumer-id', id, '--timeout', '1500', '--json']);
      expect(consumed.code).toBe(0);
      expect(lines(consumed.stdout).map((m) => m.msgId).sort()).toEqual(acks.map((a) => a.msgId).sort());
    }
    // Each broadcast consumer resumes from its own committed position: nothing new.
    const again = await cli(['consume', '--topic', 'news', '--group', 'feed', '--broadcast', '--consumer-id', 'reader-1', '--timeout', '1000', '--json']);
    expect(lines(again.stdout)).toEqual([]);
  });

  it('topic list shows each queue\'s minOffset and maxOffset, in JSON and in text', async () => {
    expect((await cli(['topic', 'create', 'ranges', '--queues', '2'])).code).toBe(0);
    expect((await cli(['produce', '--topic', 'ranges', '--count', '5', '--size', '8'])).code).toBe(0);
    const listed = JSON.parse((await cli(['topic', 'list', '--json'])).stdout) as { topics: { topic: string; queues: number; queueOffsets: { queue: number; minOffset: number; maxOffset: number }[] }[] };
    const ranges = listed.topics.find((t) => t.topic === 'ranges');
    expect(ranges?.queues).toBe(2);
    expect(ranges?.queueOffsets.map((q) => [q.queue, q.minOffset])).toEqual([[0, 0], [1, 0]]);
    expect(ranges!.queueOffsets.reduce((sum, q) => sum + q.maxOffset, 0)).toBe(5);
    const text = (await cli(['topic', 'list'])).stdout.split('\n').find((line) => line.startsWith('ranges\t'));
    expect(text).toBe(`ranges\t2 queues\t${ranges!.queueOffsets.map((q) => `${q.queue}:0-${q.maxOffset}`).join(' ')}`);
  });

  it('produces --count with --concurrency sends in flight, each acknowledged once with dense offsets per queue', async () => {
    expect((await cli(['topic', 'create', 'bulk', '--queues', '2'])).code).toBe(0);
    const produced = await cli(['produce', '--topic', 'bulk', '--count', '300', '--size', '16', '--concurrency', '64', '--json']);
    expect(produced.stderr).toBe('');
    expect(produced.code).toBe(0);
    const acks = lines(produced.stdout);
    expect(new Set(acks.map((a) => a.msgId)).size).toBe(300);
    for (const queue of [0, 1]) {
      const offsets = acks.filter((a) => a.queue === queue).map((a) => a.offset as number).sort((a, b) => a - b);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
  });

  it('shows the backlog per group and queue, and resets a group to replay', async () => {
    await cli(['topic', 'create', 'audit', '--queues', '1']);
    await cli(['produce', '--topic', 'audit', '--body', 'one']);
    await cli(['produce', '--topic', 'audit', '--body', 'two']);
    expect(lines((await cli(['consume', '--topic', 'audit', '--group', 'a', '--max', '1', '--json'])).stdout).map((m) => m.body)).toEqual(['one']);
    const backlog = JSON.parse((await cli(['group', 'list', '--json'])).stdout) as { groups: { group: string; queues: { lag: number; committedOffset: number }[] }[] };
    expect(backlog.groups.find((g) => g.group === 'a')?.queues).toEqual([expect.objectContaining({ committedOffset: 1, nextOffset: 2, lag: 1 })]);
    expect((await cli(['group', 'reset', '--group', 'a', '--topic', 'audit', '--to', 'first'])).code).toBe(0);
    expect(lines((await cli(['consume', '--topic', 'audit', '--group', 'a', '--timeout', '1000', '--json'])).stdout).map((m) => m.body)).toEqual(['one', 'two']);
  });

  it('starts a new group at a point in time', async () => {
    await cli(['topic', 'create', 'timed', '--queues', '1']);
    await cli(['produce', '--topic', 'timed', '--body', 'before']);
    await new Promise((r) => setTimeout(r, 50));
    const cut = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    await cli(['produce', '--topic', 'timed', '--body', 'after']);
    const consumed = await cli(['consume', '--topic', 'timed', '--group', 'late', '--from-time', cut, '--timeout', '1000', '--json']);
    expect(lines(consumed.stdout).map((m) => m.body)).toEqual(['after']);
  });

  it('looks messages up by key and by message id, and exits 1 when none is stored', async () => {
    expect((await cli(['topic', 'create', 'orders-lookup', '--queues', '3'])).code).toBe(0);
    const sent = await cli(['produce', '--topic', 'orders-lookup', '--key', 'order-42', '--json'], 'created\npaid\nshipped\n');
    expect(sent.code).toBe(0);
    const acks = lines(sent.stdout);
    await cli(['produce', '--topic', 'orders-lookup', '--key', 'order-7', '--body', 'other']);
    const byKey = await cli(['message', '--topic', 'orders-lookup', '--key', 'order-42', '--json']);
    expect(byKey.code).toBe(0);
    const found = lines(byKey.stdout);
    expect(found.map((m) => m.body)).toEqual(['created', 'paid', 'shipped']); // that key only, oldest first
    expect(found.map((m) => m.msgId)).toEqual(acks.map((a) => a.msgId));
    expect(found.every((m) => m.key === 'order-42' && m.topic === 'orders-lookup' && typeof m.storeTime === 'string')).toBe(true);
    const byId = await cli(['message', '--msg-id', String(acks[1]!.msgId), '--json']);
    expect(lines(byId.stdout)).toEqual([expect.objectContaining({ msgId: acks[1]!.msgId, queue: acks[1]!.queue, offset: acks[1]!.offset, body: 'paid' })]);
    const missing = await cli(['message', '--topic', 'orders-lookup', '--key', 'order-404']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('ledgermq: no stored message with key "order-404" in topic "orders-lookup"');
    const unknownTopic = await cli(['message', '--topic', 'nope', '--key', 'k']);
    expect(unknownTopic.code).toBe(2);
    expect(unknownTopic.stderr).toContain('topic "nope" does not exist');
    expect((await cli(['message', '--key', 'k'])).code).toBe(2);
  });

  it('names an unknown topic and a bad time in one line with exit 2', async () => {
    const unknown = await cli(['produce', '--topic', 'missing', '--body', 'x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toEqual(['ledgermq: topic "missing" does not exist; create it with: ledgermq topic create missing --queues N']);
    const badTime = await cli(['consume', '--topic', 'timed', '--group', 'g', '--from-time', 'yesterday']);
    expect(badTime.code).toBe(2);
    expect(badTime.stderr).toMatch(/--from-time must be an ISO date/);
  });

  it('status shows every node with its log bounds, log bytes and event-loop delay', async () => {
    await cli(['topic', 'create', 'sized', '--queues', '1']);
    expect((await cli(['produce', '--topic', 'sized', '--count', '20', '--size', '1000'])).code).toBe(0);
    const status = await cli(['status', '--json']);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as { leader: string; nodes: Record<string, number | string>[] };
    const nodes = parsed.nodes as Record<string, number>[];
    expect(nodes).toHaveLength(3);
    // The 20 bodies of 1,000 B are in the leader's log (a follower may not have them yet).
    expect(nodes.find((n) => n.id === (parsed.leader as unknown))!.logBytes).toBeGreaterThan(20_000);
    for (const node of nodes) {
      expect(node.firstIndex).toBe(1);
      expect(node.lastIndex).toBeGreaterThan(1);
      expect(node.logBytes).toBeGreaterThan(0);
      expect(node.eventLoopDelayP99Ms).toBeGreaterThanOrEqual(0);
      expect(node.eventLoopDelayMaxMs).toBeGreaterThanOrEqual(node.eventLoopDelayP99Ms!);
    }
    const text = await cli(['status']);
    expect(text.stdout.split('\n')[0]).toContain('loop p99 ms');
  });

  it('exits 3 when no node answers within the timeout', async () => {
    const configPath = cluster.configPath;
    const down = await run(process.execPath, [BIN, 'status', '--config', configPath.replace('cluster.config.json', 'missing.json')]).catch((e: { code: number; stderr: string }) => e);
    expect((down as { code: number }).code).toBe(2); // an unreadable config is a usage error
    const lone = await LocalCluster.create();
    try {
      const result = await run(process.execPath, [BIN, 'produce', '--topic', 't', '--body', 'x', '--timeout', '500', '--config', lone.configPath]).catch((e: { code: number; stderr: string }) => e);
      expect((result as { code: number }).code).toBe(3);
      expect((result as { stderr: string }).stderr).toMatch(/no leader answered within 500 ms/);
      expect((result as { stderr: string }).stderr).not.toMatch(/outcome unknown/); // nothing could connect: nothing was stored
    } finally {
      await lone.dispose();
    }
  });

  it('says the outcome is unknown when a write may have reached a node that stopped answering', async () => {
    const frozen = await LocalCluster.create();
    try {
      frozen.startAll();
      await frozen.leader();
      for (const node of frozen.config.nodes) frozen.signal(node.id, 'SIGSTOP');
      const result = await run(process.execPath, [BIN, 'topic', 'create', 'held', '--queues', '1', '--timeout', '1500', '--config', frozen.configPath]).catch((e: { code: number; stderr: string }) => e);
      expect((result as { code: number }).code).toBe(3);
      expect((result as { stderr: string }).stderr).toMatch(/no leader answered within 1500 ms.*\(outcome unknown: see LMQ_UNAVAILABLE in docs\/errors\.md\)/);
    } finally {
      await frozen.dispose();
    }
  });
});

describe('producer – one-way sends', () => {
  it('delivers a one-way message without waiting for an acknowledgement', async () => {
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'metrics', queues: 2 });
    const producer = new Producer(client, 10_000);
    producer.sendOneWay('metrics', 1, { body: Buffer.from('cpu=0.7') });
    const consumer = new PullConsumer(client, { topic: 'metrics', group: 'm', from: 'first', pollWaitMs: 500, maxMessagesPerPull: 10, maxBytesPerPull: 1 << 20 });
    await consumer.start();
    const received = await until('the one-way message', async () => {
      const batch = await consumer.poll(true);
      return batch.length > 0 ? batch : null;
    });
    expect(received.map((m) => [m.queueId, Buffer.from(m.body).toString()])).toEqual([[1, 'cpu=0.7']]);
  });
});
