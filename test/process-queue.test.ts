import { describe, expect, it } from 'vitest';
import { ProcessQueue } from '../src/client/process-queue.js';
import type { StoredMessage } from '../src/protocol/index.js';

const stored = (offset: number, bodyBytes = 10): StoredMessage => ({
  msgId: `m${offset}`, topic: 't', queueId: 0, offset, logIndex: offset + 1, storeTimestampMs: 0, body: new Uint8Array(bodyBytes),
});
const pulled = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => stored(from + i));

describe('process queue – the commit point is the lowest unfinished offset', () => {
  it('stays at a message in hand while later ones finish, and moves to the next pull once all are done', () => {
    const queue = new ProcessQueue('t', 0, 5);
    expect(queue.commitPoint()).toBe(5);
    queue.add(5, pulled(5, 10), 10);
    const batch = queue.take(5);
    expect(batch.map((m) => m.offset)).toEqual([5, 6, 7, 8, 9]);
    for (const m of [batch[1]!, batch[3]!, batch[4]!]) queue.finish(m);
    expect(queue.commitPoint()).toBe(5);
    queue.finish(batch[0]!);
    expect(queue.commitPoint()).toBe(7);
    queue.finish(batch[2]!);
    expect(queue.commitPoint()).toBe(10);
    expect([queue.heldMessages, queue.heldBytes]).toEqual([0, 0]);
  });

  it('moves past offsets retention deleted, and keeps what a close left unhanded as unfinished', () => {
    const queue = new ProcessQueue('t', 0, 0);
    queue.add(4, pulled(4, 8), 8); // 0..3 were deleted
    expect(queue.commitPoint()).toBe(4);
    queue.finish(queue.take(1)[0]!);
    queue.close();
    expect(queue.readyMessages).toBe(0);
    expect(queue.commitPoint()).toBe(5);
    expect(() => queue.take(1)).toThrow(/closed queue/);
  });

  it('is full at its bound of messages or of bytes', () => {
    const queue = new ProcessQueue('t', 0, 0);
    queue.add(0, pulled(0, 3), 3);
    expect(queue.isFull(3, 1000)).toBe(true);
    expect(queue.isFull(4, 30)).toBe(true);
    expect(queue.isFull(4, 31)).toBe(false);
  });

  it('hands messages out in order under a steady inflow, without keeping those handed out', () => {
    const queue = new ProcessQueue('t', 0, 0);
    const seen: number[] = [];
    for (let offset = 0; offset < 10_000; offset += 10) {
      queue.add(offset, pulled(offset, offset + 10), offset + 10);
      for (const m of queue.take(9)) {
        seen.push(m.offset);
        queue.finish(m);
      }
    }
    expect(queue.readyMessages).toBe(1000);
    // The list behind it holds little more than what is still to hand out.
    expect((queue as unknown as { ready: unknown[] }).ready.length).toBeLessThanOrEqual(2 * 1000 + 10);
    expect(seen).toEqual(Array.from({ length: 9000 }, (_, i) => i));
    expect(queue.heldMessages).toBe(1000);
  });
});
