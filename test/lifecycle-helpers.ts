// Shared by the process tests of a replaced disk (lifecycle-process, snapshot-stream-process):
// a cluster with small segments and byte retention led by n3; n3 rejoined as leader; and what a
// rejoined node serves — the queue ranges it was sent and every retained message.
import { expect } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { type ConsumedMessage, PullConsumer } from '../src/client/consumer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { NodeStatus, QueueOffsetRange } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';

/**
 * Starts a local cluster with segments of `segmentBytes`, retention.maxBytes `maxBytes`, a
 * snapshot every 200 entries and n3 as the preferred leader; once n3 leads, topic `t` (2 queues)
 * exists. `track` gets the cluster as soon as it exists, so a failed start is still disposed.
 */
export async function startRetentionCluster(segmentBytes: number, maxBytes: number, track: (c: LocalCluster) => void): Promise<{ c: LocalCluster; client: LedgerClient }> {
  const c = await LocalCluster.create({
    raft: { preferredLeader: 'n3' },
    log: { segmentBytes },
    snapshot: { everyEntries: 200 },
    retention: { maxBytes, checkIntervalMs: 200 },
  });
  track(c);
  c.startAll();
  await until('n3 leads', async () => (await c.status('n3'))?.role === 'leader', 30_000, 100);
  const client = c.client();
  await client.call({ op: 'createTopic', topic: 't', queues: 2 });
  return { c, client };
}

/** Waits until n3, whose data directory was deleted, was sent a snapshot and leads again. */
export function untilRejoinedAsLeader(c: LocalCluster, what: string, timeoutMs: number): Promise<NodeStatus> {
  return until(what, async () => {
    const s = await c.status('n3');
    return s !== null && s.role === 'leader' && s.snapshotIndex > 0 && s.firstIndex > 1 ? s : null;
  }, timeoutMs, 200);
}

/**
 * The topic's queue ranges match those seen before (minOffset may only move on) and group reads
 * every retained message from minOffset; returns what it read.
 */
export async function expectServesRetained(client: LedgerClient, topic: string, rangesBefore: readonly QueueOffsetRange[], group: string): Promise<ConsumedMessage[]> {
  const after = await client.call({ op: 'topics' });
  const rangesAfter = after.topics.find((t) => t.topic === topic)!.queueOffsets;
  for (const range of rangesAfter) {
    const before = rangesBefore.find((r) => r.queue === range.queue)!;
    expect(range.minOffset).toBeGreaterThanOrEqual(before.minOffset);
    expect(range.maxOffset).toBe(before.maxOffset);
  }
  const reader = new PullConsumer(client, { topic, group, from: 'first', pollWaitMs: 100, maxMessagesPerPull: 1000, maxBytesPerPull: 1 << 22 });
  await reader.start();
  const read: ConsumedMessage[] = [];
  for (;;) {
    const batch = await reader.poll(false);
    if (batch.length === 0) break;
    read.push(...batch);
  }
  await reader.close();
  const retained = rangesAfter.reduce((sum, r) => sum + (r.maxOffset - r.minOffset), 0);
  expect(read.length).toBe(retained);
  return read;
}
