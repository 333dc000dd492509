import { closeSync, existsSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../src/log/frame.js';
import { LogStore } from '../src/log/log-store.js';
import { segmentFileName } from '../src/log/segment.js';
import { InvariantViolation } from '../src/util/assert.js';
import { LmqError } from '../src/util/errors.js';
import { capturingLogger, entries, entry, frameOffset, options, plain, readAll, removeTempDirs, segmentFiles, tempDir } from './log-helpers.js';

afterEach(removeTempDirs);

const FIRST_SEGMENT = segmentFileName(1);

function corruptionOf(open: () => unknown): LmqError {
  try {
    open();
  } catch (error) {
    expect(error).toBeInstanceOf(LmqError);
    expect((error as LmqError).code).toBe('LMQ_CORRUPT_DATA');
    return error as LmqError;
  }
  throw new Error('expected LMQ_CORRUPT_DATA, but the log opened');
}

function flipByte(path: string, offset: number): void {
  const bytes = readFileSync(path);
  bytes[offset] = bytes[offset]! ^ 0x5a;
  writeFileSync(path, bytes);
}

/** Writes 1..count (term 1) to a fresh log, flushes and closes it; returns the dir. */
async function writtenLog(count: number): Promise<string> {
  const dir = tempDir();
  const store = LogStore.open(options(dir));
  store.append(entries(1, count, 1));
  await store.flush();
  await store.close();
  return dir;
}

describe('log store – append, read, reopen', () => {
  it('starts empty with term(0) = 0 and RangeError outside the known range', async () => {
    const store = LogStore.open(options(tempDir()));
    expect(store.firstIndex()).toBe(1);
    expect(store.lastIndex()).toBe(0);
    expect(store.term(0)).toBe(0);
    expect(() => store.term(1)).toThrow(RangeError);
    expect(() => store.term(-1)).toThrow(RangeError);
    await store.close();
  });

  it('reads back what it appended, and keeps everything flushed across a reopen', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir));
    const written = [...entries(1, 3, 1), ...entries(4, 6, 2, 0), ...entries(7, 9, 5, 300)];
    store.append(written.slice(0, 4));
    store.append(written.slice(4));
    expect(await store.flush()).toBe(9);
    expect(store.durableIndex()).toBe(9);
    expect(plain(readAll(store))).toEqual(plain(written));
    await store.close();

    const reopened = LogStore.open(options(dir));
    expect(reopened.lastIndex()).toBe(9);
    expect(plain(readAll(reopened))).toEqual(plain(written));
    expect([0, 1, 3, 4, 6, 7, 9].map((i) => reopened.term(i))).toEqual([0, 1, 1, 2, 2, 5, 5]);
    expect(() => reopened.term(10)).toThrow(RangeError);
    await reopened.close();
  });

  it('stops a read at maxBytes but always returns at least one entry', async () => {
    const store = LogStore.open(options(tempDir()));
    store.append(entries(1, 10, 1, 100));
    const frame = FRAME_HEADER_BYTES + 100;
    expect(store.entries(1, 11, 3 * frame).map((e) => e.index)).toEqual([1, 2, 3]);
    expect(store.entries(4, 11, 1).map((e) => e.index)).toEqual([4]);
    expect(store.entries(5, 5, 1000)).toEqual([]);
    await store.close();
  });

  it('truncates the conflicting suffix when an append overlaps the log', async () => {
    const store = LogStore.open(options(tempDir()));
    store.append(entries(1, 10, 1));
    store.append(entries(6, 7, 2));
    expect(store.lastIndex()).toBe(7);
    expect(plain(readAll(store))).toEqual(plain([...entries(1, 5, 1), ...entries(6, 7, 2)]));
    await store.close();
  });

  it('asserts continuity of appended entries', async () => {
    const store = LogStore.open(options(tempDir()));
    store.append(entries(1, 3, 2));
    expect(() => store.append([entry(5, 2)])).toThrow(InvariantViolation);
    expect(() => store.append([entry(4, 1)])).toThrow(InvariantViolation);
    expect(() => store.append([entry(4, 2), entry(6, 2)])).toThrow(InvariantViolation);
    expect(store.lastIndex()).toBe(3);
    await store.close();
  });
});

describe('log store – commit floor', () => {
  it('asserts when truncating at or below the commit index, and when the commit index moves back', async () => {
    const store = LogStore.open(options(tempDir()));
    store.append(entries(1, 10, 1));
    store.setCommitIndex(6);
    expect(() => store.truncateSuffix(6)).toThrow(InvariantViolation);
    expect(() => store.append([entry(5, 2)])).toThrow(InvariantViolation);
    expect(() => store.setCommitIndex(5)).toThrow(InvariantViolation);
    store.truncateSuffix(7);
    expect(store.lastIndex()).toBe(6);
    await store.close();
  });
});

describe('log store – segments and retention', () => {
  it('rolls to new segments named by first index and reads across them', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir, { segmentBytes: 4096 }));
    // 100 frames of 232 B: 17 per 4 KiB segment.
    for (let i = 1; i <= 100; i += 5) store.append(entries(i, i + 4, 1 + Math.floor(i / 30), 200));
    await store.flush();
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(4);
    expect(files[0]).toBe(FIRST_SEGMENT);
    expect(files[1]).toBe(segmentFileName(16));
    const all = readAll(store);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await store.close();
    const reopened = LogStore.open(options(dir, { segmentBytes: 4096 }));
    expect(plain(readAll(reopened))).toEqual(plain(all));
    await reopened.close();
  });

  it('deletes whole segments before an index, keeps term(firstIndex - 1), survives reopen', async () => {
    const dir = tempDir();
    const opts = options(dir, { segmentBytes: 4096 });
    const store = LogStore.open(opts);
    for (let i = 1; i <= 60; i += 5) store.append(entries(i, i + 4, Math.ceil(i / 10), 200));
    store.setCommitIndex(60);
    store.deleteBefore(40);
    // Segments start at 1, 16, 31, 46: the first two hold only entries < 40.
    expect(store.firstIndex()).toBe(31);
    expect(segmentFiles(dir)[0]).toBe(segmentFileName(31));
    expect(store.term(30)).toBe(3);
    expect(() => store.term(29)).toThrow(RangeError);
    expect(store.entries(31, 32, 1)[0]!.index).toBe(31);
    await store.close();
    const reopened = LogStore.open(opts);
    expect([reopened.firstIndex(), reopened.lastIndex(), reopened.term(30)]).toEqual([31, 60, 3]);
    await reopened.close();
  });

  it('deleteBefore on an empty tail leaves firstIndex = lastIndex + 1 with a known base term', async () => {
    const dir = tempDir();
    const opts = options(dir, { segmentBytes: 4096 });
    const store = LogStore.open(opts);
    store.append(entries(1, 17, 4, 200));
    store.append(entries(18, 18, 4, 200)); // does not fit: rolls, segment 18 is active
    store.truncateSuffix(18); // the active segment is now empty
    store.setCommitIndex(17);
    store.deleteBefore(18);
    expect([store.firstIndex(), store.lastIndex(), store.term(17)]).toEqual([18, 17, 4]);
    await store.close();
    const reopened = LogStore.open(opts);
    expect([reopened.firstIndex(), reopened.lastIndex(), reopened.term(17)]).toEqual([18, 17, 4]);
    reopened.append([entry(18, 5)]);
    expect(reopened.term(18)).toBe(5);
    await reopened.close();
  });

  it('removes the segment files past a truncation point', async () => {
    const dir = tempDir();
    const opts = options(dir, { segmentBytes: 4096 });
    const store = LogStore.open(opts);
    for (let i = 1; i <= 60; i += 5) store.append(entries(i, i + 4, 1, 200));
    expect(segmentFiles(dir).length).toBe(4);
    store.append(entries(10, 12, 2, 200));
    expect(segmentFiles(dir)).toEqual([FIRST_SEGMENT]);
    await store.close();
    const reopened = LogStore.open(opts);
    expect(reopened.lastIndex()).toBe(12);
    expect(reopened.term(12)).toBe(2);
    await reopened.close();
  });
});

describe('log store – recovery of a torn tail', () => {
  it('cuts a short last frame and logs it', async () => {
    const dir = await writtenLog(10);
    const path = join(dir, FIRST_SEGMENT);
    truncateSync(path, frameOffset(1, 10) + 20);
    const { logger, lines } = capturingLogger();
    const store = LogStore.open(options(dir, { logger }));
    expect(store.lastIndex()).toBe(9);
    expect(lines.some((line) => line.msg === 'log recovery cut a torn tail' && line.offsetBytes === frameOffset(1, 10))).toBe(true);
    await store.close();
  });

  it('cuts a last frame with a bad checksum', async () => {
    const dir = await writtenLog(10);
    flipByte(join(dir, FIRST_SEGMENT), frameOffset(1, 10) + FRAME_HEADER_BYTES + 3);
    const store = LogStore.open(options(dir));
    expect(store.lastIndex()).toBe(9);
    await store.close();
  });

  it('cuts garbage after the last good frame, zeroes it, and appends over it', async () => {
    const dir = await writtenLog(10);
    const path = join(dir, FIRST_SEGMENT);
    const end = frameOffset(1, 11);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('this is not a frame, only garbage left by a torn write'), 0, 54, end);
    closeSync(fd);
    const store = LogStore.open(options(dir));
    expect(store.lastIndex()).toBe(10);
    expect(readFileSync(path).subarray(end, end + 64).every((byte) => byte === 0)).toBe(true);
    store.append(entries(11, 12, 1));
    await store.close();
    const reopened = LogStore.open(options(dir));
    expect(plain(readAll(reopened))).toEqual(plain(entries(1, 12, 1)));
    await reopened.close();
  });

  it('recovers from a file cut short at every byte of the last frame', async () => {
    const dir = await writtenLog(4);
    const path = join(dir, FIRST_SEGMENT);
    const original = readFileSync(path);
    for (let cut = frameOffset(1, 4) - 1; cut <= frameOffset(1, 5); cut++) {
      writeFileSync(path, original.subarray(0, cut));
      const store = LogStore.open(options(dir));
      const expectedLast = cut >= frameOffset(1, 5) ? 4 : cut >= frameOffset(1, 4) ? 3 : 2;
      expect(store.lastIndex()).toBe(expectedLast);
      await store.close();
    }
  });
});

describe('log store – corruption', () => {
  it('refuses a bad checksum followed by valid frames, naming file and offset', async () => {
    const dir = await writtenLog(10);
    flipByte(join(dir, FIRST_SEGMENT), frameOffset(1, 5) + FRAME_HEADER_BYTES + 1);
    const error = corruptionOf(() => LogStore.open(options(dir)));
    expect(error.message).toMatch(/corrupt/);
    expect(error.message).toContain(FIRST_SEGMENT);
    expect(error.message).toContain(`at byte ${frameOffset(1, 5)}`);
  });

  it('refuses a damaged length field in the middle', async () => {
    const dir = await writtenLog(10);
    flipByte(join(dir, FIRST_SEGMENT), frameOffset(1, 3) + 8);
    expect(corruptionOf(() => LogStore.open(options(dir))).message).toContain(`at byte ${frameOffset(1, 3)}`);
  });

  it('refuses damage to the last frame of a segment that is not the last', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir, { segmentBytes: 4096 }));
    for (let i = 1; i <= 30; i += 5) store.append(entries(i, i + 4, 1, 200));
    await store.close();
    // The first segment holds 1..15 (232 B frames).
    flipByte(join(dir, FIRST_SEGMENT), frameOffset(1, 15, 200) + 40);
    const error = corruptionOf(() => LogStore.open(options(dir, { segmentBytes: 4096 })));
    expect(error.message).toContain(FIRST_SEGMENT);
  });

  it('refuses a damaged segment header', async () => {
    const dir = await writtenLog(3);
    flipByte(join(dir, FIRST_SEGMENT), 20);
    expect(corruptionOf(() => LogStore.open(options(dir))).message).toContain('at byte 0');
  });

  it('detects damage on read and never returns the damaged entry', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir));
    store.append(entries(1, 10, 1));
    await store.flush();
    flipByte(join(dir, FIRST_SEGMENT), frameOffset(1, 6) + FRAME_HEADER_BYTES);
    expect(store.entries(1, 6, 1 << 20).length).toBe(5);
    corruptionOf(() => store.entries(1, 11, 1 << 20));
    await store.close();
  });
});

describe('log store – truncation never resurrects stale frames', () => {
  it('keeps a shorter rewritten tail after reopen (1..5 t1, 6..7 t2 over 6..10 t1)', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir));
    store.append(entries(1, 10, 1));
    await store.flush();
    store.append(entries(6, 7, 2));
    await store.flush();
    await store.close();
    const reopened = LogStore.open(options(dir));
    expect(plain(readAll(reopened))).toEqual(plain([...entries(1, 5, 1), ...entries(6, 7, 2)]));
    await reopened.close();
  });

  it('does not resurrect a stale frame that would continue the log (higher old term)', async () => {
    // 1..5 t1, 6..10 t3 on disk; the new leader's log has 6 t2: after the rewrite a stale
    // 7 t3 right behind 6 t2 would chain by index and term if its bytes were still there.
    const dir = tempDir();
    const store = LogStore.open(options(dir));
    store.append([...entries(1, 5, 1), ...entries(6, 10, 3)]);
    await store.flush();
    store.append([entry(6, 2)]);
    await store.flush();
    await store.close();
    const reopened = LogStore.open(options(dir));
    expect(reopened.lastIndex()).toBe(6);
    expect(reopened.term(6)).toBe(2);
    await reopened.close();
  });

  it('cuts stale frames that survived a crash during the zeroing (they do not continue the log)', async () => {
    const dir = tempDir();
    const path = join(dir, FIRST_SEGMENT);
    const store = LogStore.open(options(dir));
    store.append(entries(1, 10, 1));
    await store.flush();
    const before = readFileSync(path);
    store.append(entries(6, 7, 2));
    await store.close();
    // Put the old frames 8..10 (term 1) back behind 7 t2, as if the zeroing never hit the disk.
    const fd = openSync(path, 'r+');
    writeSync(fd, before, frameOffset(1, 8), frameOffset(1, 11) - frameOffset(1, 8), frameOffset(1, 8));
    closeSync(fd);
    const reopened = LogStore.open(options(dir));
    expect(reopened.lastIndex()).toBe(7);
    expect(reopened.term(7)).toBe(2);
    await reopened.close();
  });
});

describe('log store – flush and durability', () => {
  it('group commit: concurrent flushes share fdatasyncs and each covers its own append', async () => {
    const store = LogStore.open(options(tempDir()));
    const before = store.stats().fsyncs;
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        store.append([entry(i + 1, 1)]);
        return { index: i + 1, durable: await store.flush() };
      }),
    );
    for (const { index, durable } of results) expect(durable).toBeGreaterThanOrEqual(index);
    expect(store.durableIndex()).toBe(50);
    expect(store.stats().fsyncs - before).toBeLessThanOrEqual(3);
    expect(store.stats().appendedEntries).toBe(50);
    await store.close();
  });

  it('appends made during an fdatasync wait for the next one', async () => {
    const store = LogStore.open(options(tempDir()));
    store.append([entry(1, 1)]);
    const first = store.flush();
    store.append([entry(2, 1)]);
    const second = store.flush();
    expect(await first).toBeGreaterThanOrEqual(1);
    expect(await second).toBe(2);
    await store.close();
  });

  it('async mode: flush returns lastIndex at once, the timer makes it durable', async () => {
    const store = LogStore.open(options(tempDir(), { flushMode: 'async', flushIntervalMs: 2 }));
    store.append(entries(1, 5, 1));
    expect(await store.flush()).toBe(5);
    while (store.durableIndex() < 5) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(store.stats().fsyncs).toBeGreaterThan(0);
    await store.close();
  });

  it('async mode: flush resolves only once the entries are written to the file', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir, { flushMode: 'async', flushIntervalMs: 60_000 }));
    const written = entries(1, 3, 1);
    store.append(written.slice(0, 1));
    store.append(written.slice(1));
    const flushed = store.flush();
    expect(await flushed).toBe(3);
    const bytes = readFileSync(join(dir, FIRST_SEGMENT));
    const lastFrame = bytes.subarray(frameOffset(1, 3) + FRAME_HEADER_BYTES, frameOffset(1, 4));
    expect([...lastFrame]).toEqual([...written[2]!.data]);
    await store.close();
  });

  it('close syncs and leaves no temporary files', async () => {
    const dir = tempDir();
    const store = LogStore.open(options(dir, { flushMode: 'async', flushIntervalMs: 60_000 }));
    store.append(entries(1, 5, 1));
    await store.close();
    expect(store.durableIndex()).toBe(5);
    expect(existsSync(join(dir, 'next-segment.tmp'))).toBe(false);
    expect(statSync(join(dir, FIRST_SEGMENT)).size).toBe(64 * 1024);
    expect(SEGMENT_HEADER_BYTES).toBe(32);
  });
});
