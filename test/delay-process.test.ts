import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import type { StoredMessage } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';
import { readWholeQueue, runCli } from './process-helpers.js';

// Delayed messages on a real three-node cluster: stored at once (offset null), placed in their
// queue by the leader's scheduler when due, and exactly once across a SIGKILL of the leader.

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create({ delay: { levels: '1s 2s 3s' } });
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
  await client.call({ op: 'createTopic', topic: 'refunds', queues: 1 });
});
afterAll(async () => {
  await cluster.dispose();
});

const cli = (args: string[]) => runCli(cluster.configPath, args);
const readQueue = () => readWholeQueue(client, 'refunds');

async function waitFor(msgIds: readonly string[], timeoutMs: number): Promise<StoredMessage[]> {
  return until('the delayed messages', async () => {
    const stored = await readQueue();
    return msgIds.every((id) => stored.some((m) => m.msgId === id)) ? stored : null;
  }, timeoutMs, 20);
}

describe('delayed messages – a real cluster', () => {
  it('produce --delay-ms --json prints offset null and deliverAtMs; one delay flag only, at most 40 days ahead', async () => {
    const before = Date.now();
    const sent = await cli(['produce', '--topic', 'refunds', '--body', 'cli-delayed', '--delay-ms', '300', '--json']);
    expect(sent.code).toBe(0);
    const ack = JSON.parse(sent.stdout) as Record<string, unknown>;
    expect(ack).toMatchObject({ queue: 0, offset: null });
    expect(ack['deliverAtMs']).toBeGreaterThanOrEqual(before + 300);
    const level = JSON.parse((await cli(['produce', '--topic', 'refunds', '--body', 'cli-level', '--delay-level', '1', '--json'])).stdout) as Record<string, unknown>;
    expect(level['offset']).toBeNull();
    expect(level['deliverAtMs']).toBeGreaterThanOrEqual(before + 1000);
    const both = await cli(['produce', '--topic', 'refunds', '--body', 'x', '--delay-ms', '5', '--delay-level', '1']);
    expect(both.code).toBe(2);
    expect(both.stderr.trim().split('\n')).toEqual([expect.stringMatching(/use one of --delay-level, --delay-ms and --deliver-at/)]);
    const far = await cli(['produce', '--topic', 'refunds', '--body', 'x', '--deliver-at', String(Date.now() + 41 * 24 * 3600 * 1000)]);
    expect(far.code).toBe(2);
    expect(far.stderr).toMatch(/more than 40 days ahead/);
    const noLevel = await cli(['produce', '--topic', 'refunds', '--body', 'x', '--delay-level', '4']);
    expect(noLevel.code).toBe(2);
    expect(noLevel.stderr).toMatch(/delay level 4 does not exist: the cluster has 3/);
    await waitFor([String(ack['msgId']), String(level['msgId'])], 10_000);
  });

  it('a message due in 1 s is placed not before it is due and within 1 s after', async () => {
    const producer = new Producer(client, 10_000);
    const deliverAtMs = Date.now() + 1000;
    const sent = await producer.send('refunds', { body: Buffer.from('due-in-1s'), deliverAtMs });
    expect(sent).toMatchObject({ offset: null, deliverAtMs });
    expect((await readQueue()).some((m) => m.msgId === sent.msgId)).toBe(false);
    const stored = (await waitFor([sent.msgId], 10_000)).filter((m) => m.msgId === sent.msgId);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.deliverAtMs).toBe(deliverAtMs);
    expect(stored[0]!.storeTimestampMs).toBeGreaterThanOrEqual(deliverAtMs);
    expect(stored[0]!.storeTimestampMs - deliverAtMs).toBeLessThan(1000);
  });

  it('delivers each delayed message exactly once when the leader is killed before they are due', async () => {
    const producer = new Producer(client, 10_000);
    const deliverAtMs = Date.now() + 2500;
    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => producer.send('refunds', { body: Buffer.from(`kill-${i}`), deliverAtMs: deliverAtMs + (i % 5) * 100 })));
    expect(sent.every((s) => s.offset === null)).toBe(true);
    const leader = await cluster.leader();
    await cluster.kill(leader.id);
    await cluster.leader([leader.id]);
    const ids = sent.map((s) => s.msgId);
    await waitFor(ids, 15_000);
    // Time for a duplicate to show, had a second proposal been placed.
    await new Promise((done) => setTimeout(done, 1000));
    const stored = await readQueue();
    for (const id of ids) expect(stored.filter((m) => m.msgId === id)).toHaveLength(1);
    for (const m of stored.filter((s) => ids.includes(s.msgId))) expect(m.storeTimestampMs).toBeGreaterThanOrEqual(m.deliverAtMs!);
    // The killed node comes back and agrees.
    cluster.start(leader.id);
    await until('the restarted node caught up', async () => {
      const [back, current] = [await cluster.status(leader.id), await cluster.leader()];
      return back !== null && back.appliedIndex >= current.commitIndex ? back : null;
    }, 20_000, 100);
  });
});
