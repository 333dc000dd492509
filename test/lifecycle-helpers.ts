// Shared by the process tests of a replaced disk (lifecycle-process, snapshot-stream-process):
// after a rejoined node took over, it serves the queue ranges it was sent and every retained message.
import { expect } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { type ConsumedMessage, PullConsumer } from '../src/client/consumer.js';
import type { QueueOffsetRange } from '../src/protocol/index.js';

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
