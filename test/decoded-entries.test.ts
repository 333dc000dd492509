import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type ProduceMessage } from '../src/broker/commands.js';
import { DecodedEntries, fetchMessages } from '../src/broker/reads.js';
import { type Entry, EntryType } from '../src/raft/types.js';

// The read path's cache of decoded entries: bounded by entry bytes, keeps the most recently
// decoded, never keeps an entry larger than its bound. And what a read builds from an entry.

const messages = (index: number): ProduceMessage[] => [{ msgId: `m${index}`, topic: 't', queueId: 0, body: new Uint8Array(1) }];

describe('decoded entries – the read cache', () => {
  it('keeps the most recent entries within maxBytes and drops the oldest first', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 100 }), fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 60 }), (maxBytes, sizes) => {
      const cache = new DecodedEntries(maxBytes);
      sizes.forEach((bytes, index) => cache.set(index, messages(index), bytes));
      // The model: the longest run of the newest entries (those larger than the bound never
      // kept) whose total fits the bound.
      const kept = new Set<number>();
      let total = 0;
      for (let index = sizes.length - 1; index >= 0; index--) {
        if (sizes[index]! > maxBytes) continue;
        if (total + sizes[index]! > maxBytes) break;
        total += sizes[index]!;
        kept.add(index);
      }
      sizes.forEach((_, index) => {
        if (kept.has(index)) expect(cache.get(index)?.[0]?.msgId).toBe(`m${index}`);
        else expect(cache.get(index)).toBeUndefined();
      });
    }));
  });

  it('keeps the first decoding of an index and forgets everything on clear', () => {
    const cache = new DecodedEntries(10);
    cache.set(1, messages(1), 4);
    cache.set(1, messages(9), 4);
    expect(cache.get(1)?.[0]?.msgId).toBe('m1');
    cache.clear();
    expect(cache.get(1)).toBeUndefined();
  });
});

describe('reads – a stored message from its log entry', () => {
  it('carries every field the entry holds, plus its queue position, and nothing else', () => {
    // A deliverDue entry may carry every field a message can have (the broker's own copies).
    const message: ProduceMessage = {
      msgId: 'm1', topic: 't', queueId: 2, body: new Uint8Array([1, 2, 3]), tag: 'x', keys: ['k'], properties: { p: 'v' },
      deliverAtMs: 5, reconsumeTimes: 1, origin: { msgId: 'm0', topic: 't', queueId: 1, offset: 7 }, firstFailureMs: 3,
      deadLetter: { reason: 'r', attempts: 1, firstFailureMs: 3, lastFailureMs: 4 },
    };
    const entry: Entry = { index: 9, term: 1, type: EntryType.Normal, data: encodeCommand({ kind: 'deliverDue', timestampMs: 10, messages: [{ timer: { deliverAtMs: 5, logIndex: 8, position: 0 }, message }] }) };
    const log = { entries: (lo: number) => (lo === 9 ? [entry] : []) };
    const at = { logIndex: 9, batchPos: 0, storeTimestampMs: 11, bodyBytes: 3, msgId: 'm1', keys: ['k'], tagHash: null, msgIdInRun: false };
    const [stored] = fetchMessages(log, [{ topic: 't', queueId: 2, offset: 4, at }], new DecodedEntries(1 << 20));
    expect(stored).toEqual({ ...message, offset: 4, logIndex: 9, storeTimestampMs: 11 });
    expect(Object.keys(stored!).sort()).toEqual([...Object.keys(message), 'offset', 'logIndex', 'storeTimestampMs'].sort());
  });
});
