import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BrokerStore, type CacheBounds, compareKeys, type Key, msgIdRunName, msgIdRunPrefix, seqNameOf } from '../src/broker/store.js';

const dirs: string[] = [];
const stores: BrokerStore[] = [];

function openStore(maxBufferedRecords: number, cacheBounds?: CacheBounds): BrokerStore {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-broker-store-'));
  dirs.push(dir);
  const store = BrokerStore.open(dir, 'unsynced', maxBufferedRecords, cacheBounds);
  stores.push(store);
  return store;
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// Names mix ASCII, accented, CJK and astral characters: UTF-8 byte order differs from JS string order for them.
const name = fc.constantFrom('a', 'b', 'ab', 'é', 'z', '中', '😀', 'ｚ', 'A');
// 'queue' and 'cq' are kinds the store caches (in two caches); 'k' and 'm' are not cached. The
// cached kinds have few keys, so records are often rewritten and removed while cached.
const cachedName = fc.constantFrom('a', 'é', '😀');
const key = fc.oneof(
  fc.tuple(cachedName, fc.integer({ min: 0, max: 1 })).map(([n, i]): Key => ['cq', n, i]),
  fc.tuple(name, fc.integer({ min: 0, max: 5 })).map(([n, i]): Key => ['k', n, i]),
  fc.integer({ min: 0, max: 20 }).map((i): Key => ['m', i]),
  fc.tuple(cachedName, fc.integer({ min: 0, max: 1 })).map(([n, i]): Key => ['queue', n, i]),
);
/** Every key of the cached kinds `key` can produce: each step reads them all, present or not. */
const CACHED_KEYS: Key[] = ['cq', 'queue'].flatMap((kind) => ['a', 'é', '😀'].flatMap((n) => [0, 1].map((i): Key => [kind, n, i])));
const write = fc.oneof(
  fc.record({ op: fc.constant('put' as const), key, value: fc.integer() }),
  fc.record({ op: fc.constant('insert' as const), key, value: fc.integer() }),
  fc.record({ op: fc.constant('remove' as const), key }),
);
const step = fc.oneof(
  fc.record({ op: fc.constant('transaction' as const), writes: fc.array(write, { maxLength: 8 }), abort: fc.boolean() }),
  fc.record({ op: fc.constant('flush' as const) }),
  fc.record({ op: fc.constant('range' as const), kind: fc.constantFrom('k', 'm', 'queue', 'cq'), limit: fc.integer({ min: 0, max: 30 }) }),
);

const id = (k: Key): string => JSON.stringify(k);
/** U+10FFFF: its UTF-8 bytes sort after every other string's, so [kind, TOP] ends the kind's range. */
const TOP = '\u{10FFFF}';

describe('broker store – buffered writes', () => {
  it('reads, ranges and aborts behave like an in-memory map, whatever is buffered, cached (a full cache evicting) or in lmdb', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), fc.constantFrom(0, 3, 1000), fc.constantFrom(1, 2, 100_000), (steps, maxBufferedRecords, maxCached) => {
        const store = openStore(maxBufferedRecords, { maxCachedRecords: maxCached, maxCachedConsumeQueueRecords: maxCached });
        const model = new Map<string, { key: Key; value: number }>();
        for (const s of steps) {
          if (s.op === 'flush') store.flush();
          if (s.op === 'transaction') {
            const staged = new Map(model);
            try {
              store.transaction(() => {
                for (const w of s.writes) {
                  // remove() of a missing record and insert() of an existing one are invariant violations.
                  if (w.op === 'remove' && !staged.has(id(w.key))) continue;
                  if (w.op === 'insert' && staged.has(id(w.key))) continue;
                  if (w.op === 'remove') {
                    staged.delete(id(w.key));
                    store.remove(w.key);
                  } else {
                    staged.set(id(w.key), { key: w.key, value: w.value });
                    if (w.op === 'put') store.put(w.key, w.value);
                    else store.insert(w.key, w.value);
                  }
                  expect(store.get(w.key)).toEqual(staged.get(id(w.key))?.value);
                }
                if (s.abort) throw new Error('abort');
              });
            } catch (error) {
              expect((error as Error).message).toBe('abort');
            }
            if (!s.abort) {
              model.clear();
              for (const [k, v] of staged) model.set(k, v);
            }
          }
          if (s.op === 'range') {
            const expected = [...model.values()]
              .filter((r) => r.key[0] === s.kind)
              .sort((a, b) => compareKeys(a.key, b.key))
              .slice(0, s.limit)
              .map((r) => ({ key: r.key, value: r.value }));
            expect(store.range([s.kind], [s.kind, TOP], s.limit)).toEqual(expected);
          }
          for (const r of model.values()) expect(store.get(r.key)).toBe(r.value);
          for (const k of CACHED_KEYS) expect(store.get(k)).toBe(model.get(id(k))?.value);
        }
      }),
      { numRuns: 150 },
    );
  });

  /** Records 0, 1 and 2 of `kind`, valued 0, 1 and 2, each flushed at once into read caches of two records (1 and 2 stay cached). */
  function overfullCache(kind: string): { store: BrokerStore; keys: Key[] } {
    const store = openStore(0, { maxCachedRecords: 2, maxCachedConsumeQueueRecords: 2 });
    const keys: Key[] = [0, 1, 2].map((i) => [kind, 't', i]);
    keys.forEach((k, i) => store.transaction(() => store.put(k, i)));
    return { store, keys };
  }

  it('a full read cache makes room for what is read next and never answers with a rewritten record\'s old value', () => {
    for (const kind of ['queue', 'cq']) {
      const { store, keys } = overfullCache(kind);
      // Three records through a cache of two: each read is answered right, twice over.
      for (let round = 0; round < 2; round++) keys.forEach((k, i) => expect(store.get(k)).toBe(i));
      // Rewritten (flushed at once: maxBufferedRecords 0), the last read first: it is cached.
      for (let i = keys.length - 1; i >= 0; i--) store.transaction(() => store.put(keys[i]!, i + 10));
      for (let round = 0; round < 2; round++) for (let i = keys.length - 1; i >= 0; i--) expect(store.get(keys[i]!)).toBe(i + 10);
      store.transaction(() => store.remove(keys[2]!));
      expect(store.get(keys[2]!)).toBeUndefined();
    }
  });

  it('a full read cache keeps caching what is read next, within its bound', () => {
    for (const kind of ['queue', 'cq']) {
      const { store, keys } = overfullCache(kind);
      const lmdbGet = vi.spyOn((store as unknown as { db: { get: (k: Key) => unknown } }).db, 'get');
      for (let i = 0; i < 10; i++) expect(store.get(keys[0]!)).toBe(0);
      expect(lmdbGet).toHaveBeenCalledTimes(1); // read once, then cached in the full cache
      const caches = store as unknown as { cache: { records: Map<string, unknown> }; consumeQueueCache: { records: Map<string, unknown> } };
      expect(caches.cache.records.size).toBeLessThanOrEqual(2);
      expect(caches.consumeQueueCache.records.size).toBeLessThanOrEqual(2);
    }
  });

  it('orders keys exactly as lmdb does', () => {
    fc.assert(
      fc.property(fc.uniqueArray(key, { selector: id, maxLength: 30 }), (keys) => {
        const store = openStore(0);
        store.transaction(() => keys.forEach((k, i) => store.put(k, i)));
        for (const kind of ['k', 'm', 'queue', 'cq']) {
          const fromLmdb = store.range([kind], [kind, TOP], 100).map((r) => r.key);
          const sorted = keys.filter((k) => k[0] === kind).sort(compareKeys);
          expect(fromLmdb).toEqual(sorted);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('writes nothing to lmdb until the buffer is full or flushed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-broker-store-'));
    dirs.push(dir);
    let store = BrokerStore.open(dir, 'unsynced', 10);
    store.transaction(() => store.put(['m', 1], 'one'));
    expect(store.get(['m', 1])).toBe('one');
    // A second handle on the same lmdb sees only what was committed to it.
    const committed = async (k: Key): Promise<unknown> => {
      const peek = BrokerStore.open(dir, 'unsynced', 10);
      const value = peek.get(k);
      await peek.close();
      return value;
    };
    expect(await committed(['m', 1])).toBeUndefined();
    store.transaction(() => {
      for (let i = 2; i <= 11; i++) store.put(['m', i], i);
    });
    expect(await committed(['m', 1])).toBe('one'); // 11 records > 10: written through
    store.transaction(() => store.put(['m', 12], 12));
    await store.close(); // close flushes
    store = BrokerStore.open(dir, 'unsynced', 10);
    stores.push(store);
    expect(store.get(['m', 12])).toBe(12);
  });
});

describe('broker store – msgId runs', () => {
  it('finds a copy in a run stored flat (one topic, all placed) and in the nested form of earlier builds and of runs with unplaced copies', () => {
    const store = openStore(0);
    const at = (topic: string, queueId: number, offset: number) => ({ topic, queueId, offset });
    store.transaction(() => {
      store.putMsgIdRun('flat', 5, [at('t', 0, 7), at('t', 3, 9)]);
      store.putMsgIdRun('holes', 6, [at('t', 1, 1), null, at('u', 2, 4)]);
      store.insert(['msgrun', 'old', 7], [['t', 0, 8], ['t', 1, 2]]); // as builds before the flat form wrote it
      store.putMsgIdSeqRun('seq', 10, 8, [at('t', 2, 5), at('t', 2, 6), at('t', 3, 1)]);
      store.insert(['msgseq', 'oldseq', 3, 9], [['t', 0, 9], ['t', 0, 10]]);
    });
    expect(store.get(['msgrun', 'flat', 5])).toEqual(['t', 0, 7, 3, 9]);
    expect(store.get(['msgseq', 'seq', 10, 8])).toEqual(['t', 2, 5, 2, 6, 3, 1]);
    expect(store.get(['msgrun', 'holes', 6])).toEqual([['t', 1, 1], null, ['u', 2, 4]]);
    expect(store.firstMsgId('flat.1', 1)).toEqual(at('t', 3, 9));
    expect(store.firstMsgId('flat.2', 1)).toBeUndefined();
    expect(store.firstMsgId('holes.1', 1)).toBeUndefined();
    expect(store.firstMsgId('holes.2', 1)).toEqual(at('u', 2, 4));
    expect(store.firstMsgId('old.1', 1)).toEqual(at('t', 1, 2));
    expect(store.firstMsgId('seq-12', 1)).toEqual(at('t', 3, 1));
    expect(store.firstMsgId('seq-9', 1)).toBeUndefined();
    expect(store.firstMsgId('seq-13', 1)).toBeUndefined();
    expect(store.firstMsgId('oldseq-4', 1)).toEqual(at('t', 0, 10));
    expect(store.firstMsgId('seq-10', 9)).toBeUndefined(); // stored at log index 8, before the lookup's start
  });
});

describe('broker store – timers', () => {
  it("keeps a waiting message's body as a copy of its own, not a view pinning the entry or frame it came in", () => {
    const store = openStore(1024);
    const frame = new Uint8Array(1 << 20).fill(7);
    const message = { msgId: 'm', topic: 't', queueId: 0, body: frame.subarray(100, 103), deliverAtMs: 5_000 };
    const timer = { deliverAtMs: 5_000, logIndex: 9, position: 0 };
    store.transaction(() => store.putTimer(timer, message));
    frame.fill(0);
    const kept = store.getTimer(timer)!;
    expect([...kept.body]).toEqual([7, 7, 7]);
    expect(kept.body.buffer.byteLength).toBe(3);
  });
});

describe('broker store – msgId names', () => {
  /** What the name rules say, written plainly: `name` SEPARATOR N, N as String(N) writes a safe integer. */
  function reference(msgId: string, separator: string): { name: string; n: number } | undefined {
    const at = msgId.lastIndexOf(separator);
    if (at <= 0 || at === msgId.length - 1) return undefined;
    const digits = msgId.slice(at + 1);
    const n = Number(digits);
    if (!Number.isSafeInteger(n) || String(n) !== digits) return undefined;
    return { name: msgId.slice(0, at), n };
  }

  const piece = fc.oneof(
    fc.constantFrom('-', '.', '0', '00', '1', '9', '01', '-0', '-1', '-01', '-9007199254740991', '-9007199254740992', '+1', '1e3', ' 1', 'x', '٣'),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }).map(String),
    fc.constantFrom('9007199254740991', '9007199254740992', '9007199254740993', '99999999999999999', '10000000000000000'),
    fc.string({ maxLength: 3 }),
  );
  const msgId = fc.array(piece, { minLength: 1, maxLength: 5 }).map((parts) => parts.join(''));

  it('splits name-N and prefix.N exactly as the rule says', () => {
    fc.assert(
      fc.property(msgId, (id) => {
        expect(seqNameOf(id)).toEqual(reference(id, '-'));
        expect(msgIdRunName(id)).toEqual(reference(id, '.')?.name);
      }),
      { numRuns: 5000 },
    );
  });

  it('finds a run prefix only when every msgId is prefix.N at its position', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(msgId, fc.constantFrom('p.0', 'p.1', 'p.2', 'p.10', 'p.01', 'q.1', 'p.1.1')), { maxLength: 4 }), (ids) => {
        // At the positions of a produce that starts at 3 in its entry.
        const items = ids.map((id, i) => ({ message: { msgId: id }, batchPos: 3 + i }));
        const prefix = reference(ids[0] ?? '', '.')?.name;
        const expected = ids.length >= 2 && prefix !== undefined && ids.every((id, i) => id === `${prefix}.${i}`) ? prefix : undefined;
        expect(msgIdRunPrefix(items, 3)).toBe(expected);
      }),
      { numRuns: 5000 },
    );
    expect(msgIdRunPrefix([{ message: { msgId: 'p.0' }, batchPos: 0 }, { message: { msgId: 'p.1' }, batchPos: 1 }, { message: { msgId: 'p.2' }, batchPos: 2 }], 0)).toBe('p');
  });
});
