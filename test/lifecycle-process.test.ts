// The engine lifecycle end to end, as a user runs it: real node processes with small segments
// and a byte retention, so the log is truncated (a replicated decision), snapshots are taken
// and segments deleted on every node; then a node's data directory is deleted and it rejoins
// through InstallSnapshot, leads again (it is the preferred leader) and serves every retained
// message and the group offsets, a group below the first offset resuming there.
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { NodeStatus } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';
import { expectServesRetained, startRetentionCluster, untilRejoinedAsLeader } from './lifecycle-helpers.js';

let cluster: LocalCluster | null = null;
afterEach(async () => {
  await cluster?.dispose();
  cluster = null;
});

const SEGMENT_BYTES = 64 * 1024;
const MAX_BYTES = 4 * SEGMENT_BYTES;

describe('engine lifecycle – retention, snapshots and a replaced disk, real processes', () => {
  it('keeps every log bounded, moves minOffset, and rejoins a node whose data directory was deleted', async () => {
    const { c, client } = await startRetentionCluster(SEGMENT_BYTES, MAX_BYTES, (created) => (cluster = created));
    // A group that reads a little now and then stays behind while retention moves past it.
    const early = new PullConsumer(client, { topic: 't', group: 'early', from: 'first', pollWaitMs: 100, maxMessagesPerPull: 10, maxBytesPerPull: 1 << 20 });
    const producer = new Producer(client, 20_000, { maxBatchMessages: 1 });
    const body = Buffer.alloc(256, 'x');
    await producer.send('t', { body }, 'roundRobin');
    await early.start();
    expect((await early.poll(false)).length).toBeGreaterThan(0);
    await early.commit();
    await early.close();
    for (let i = 0; i < 3000; i++) await producer.send('t', { body: Buffer.from(`${i}-${body.toString()}`) });

    // Retention catches up on every node: bounded log, truncated start, a snapshot.
    const ids = c.config.nodes.map((n) => n.id);
    const bounded = async (): Promise<NodeStatus[] | null> => {
      const all = await Promise.all(ids.map((id) => c.status(id)));
      if (all.some((s) => s === null || s.logBytes > MAX_BYTES + 2 * SEGMENT_BYTES || s.firstIndex === 1 || s.snapshotIndex === 0)) return null;
      return all as NodeStatus[];
    };
    const statuses = await until('every log bounded by retention', bounded, 30_000, 200);
    for (const s of statuses) expect(s.firstIndex).toBeGreaterThan(1);
    const { topics } = await client.call({ op: 'topics' });
    const ranges = topics.find((t) => t.topic === 't')!.queueOffsets;
    expect(ranges.some((r) => r.minOffset > 0)).toBe(true);

    // n3 (the leader) loses its disk: stopped, data directory deleted, started again.
    const n3 = c.config.nodes.find((n) => n.id === 'n3')!;
    await c.stop('n3');
    await c.leader(['n3']);
    rmSync(n3.dataDir, { recursive: true, force: true });
    c.start('n3');
    const rejoined = await untilRejoinedAsLeader(c, 'n3 rejoined through a snapshot and leads again', 40_000);
    expect(rejoined.lastIndex).toBeGreaterThanOrEqual(statuses[0]!.commitIndex);

    // Served by n3 as leader: the same queue ranges, every retained message, the group resumes at minOffset.
    await expectServesRetained(client, 't', ranges, 'early');
  }, 120_000);
});
