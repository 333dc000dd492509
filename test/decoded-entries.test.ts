import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ProduceMessage } from '../src/broker/commands.js';
import { DecodedEntries } from '../src/broker/reads.js';

// The read path's cache of decoded entries: bounded by entry bytes, keeps the most recently
// decoded, never keeps an entry larger than its bound.

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
