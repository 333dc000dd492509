// LogStore.installWindow on real files: the same store serves the installed window at once
// (reads, terms, appends, flush, commit floor, retention) and a reopen gives the same log;
// installs over longer, shorter and empty logs and of an empty window; reads of the old log
// while the window streams in; a failed install leaves the old log usable; open settles the
// directories an interrupted install leaves (old log back, or new log kept, leftovers gone);
// listSegments, which a retention policy reads.
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fileIoFor } from '../src/log/file-io.js';
import { LogStore, type LogStoreOptions, type LogWindow } from '../src/log/log-store.js';
import type { Entry } from '../src/raft/types.js';
import { InvariantViolation } from '../src/util/assert.js';
import { entries, entry, inBatches, options, plain, readAll, removeTempDirs, segmentFiles, tempDir, windowEntries } from './log-helpers.js';
import { expectInstallSettled } from './log-install-helpers.js';

afterEach(removeTempDirs);

const SEGMENT_BYTES = 4096;

function logDir(): string {
  return join(tempDir(), 'log');
}

function opts(dir: string, extra: Partial<LogStoreOptions> = {}): LogStoreOptions {
  return options(dir, { segmentBytes: SEGMENT_BYTES, ...extra });
}

/** A log 1..count in term 1, appended in batches of 5 so that it spans segments (a larger batch stays in one). */
async function oldLog(dir: string, count: number): Promise<LogStore> {
  const store = LogStore.open(opts(dir));
  for (let index = 1; index <= count; index += 5) store.append(entries(index, Math.min(count, index + 4), 1, 300));
  await store.flush();
  return store;
}

function expectWindow(store: LogStore, window: LogWindow, held: readonly Entry[]): void {
  expect(store.firstIndex()).toBe(window.firstIndex);
  expect(store.lastIndex()).toBe(window.lastIndex);
  expect(store.durableIndex()).toBe(window.lastIndex);
  expect(store.term(window.firstIndex - 1)).toBe(window.prevTerm);
  expect(() => store.term(window.firstIndex - 2)).toThrow(RangeError);
  expect(plain(readAll(store))).toEqual(plain(held));
}


describe('log store – installWindow round trips', () => {
  const cases: Array<{ name: string; oldCount: number; window: LogWindow }> = [
    { name: 'over a longer log', oldCount: 120, window: { firstIndex: 40, prevTerm: 3, lastIndex: 70 } },
    { name: 'over a shorter log', oldCount: 5, window: { firstIndex: 300, prevTerm: 2, lastIndex: 400 } },
    { name: 'over an empty log', oldCount: 0, window: { firstIndex: 11, prevTerm: 1, lastIndex: 60 } },
    { name: 'from index 1', oldCount: 30, window: { firstIndex: 1, prevTerm: 0, lastIndex: 45 } },
    { name: 'of an empty window', oldCount: 50, window: { firstIndex: 81, prevTerm: 4, lastIndex: 80 } },
  ];
  for (const { name, oldCount, window } of cases) {
    it(`${name}: the same store serves the window, appends continue, a reopen gives the same log`, async () => {
      const dir = logDir();
      const store = await oldLog(dir, oldCount);
      const held = windowEntries(window.firstIndex, window.lastIndex, window.prevTerm);
      await store.installWindow(window, inBatches(held, 9));
      expectWindow(store, window, held);
      expectInstallSettled(dir);
      if (held.length > 20) expect(segmentFiles(dir).length).toBeGreaterThan(1);
      // The commit floor is the window's end: nothing installed can be truncated.
      expect(() => store.truncateSuffix(window.lastIndex)).toThrow(InvariantViolation);
      const lastTerm = store.term(window.lastIndex);
      const more = entries(window.lastIndex + 1, window.lastIndex + 20, lastTerm + 1, 150);
      store.append(more);
      expect(await store.flush()).toBe(window.lastIndex + 20);
      store.setCommitIndex(window.lastIndex + 5);
      await store.close();
      const reopened = LogStore.open(opts(dir));
      expect(reopened.firstIndex()).toBe(window.firstIndex);
      expect(reopened.term(window.firstIndex - 1)).toBe(window.prevTerm);
      expect(plain(readAll(reopened))).toEqual(plain([...held, ...more]));
      await reopened.close();
      expectInstallSettled(dir);
    });
  }

  it('an empty window holds one empty segment whose header carries the previous term', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 200);
    const window = { firstIndex: 501, prevTerm: 9, lastIndex: 500 };
    await store.installWindow(window, inBatches([], 1));
    expectWindow(store, window, []);
    expect(segmentFiles(dir)).toEqual(['00000000000000000501.seg']);
    await store.close();
    const reopened = LogStore.open(opts(dir));
    expectWindow(reopened, window, []);
    reopened.append([entry(501, 9)]);
    await reopened.flush();
    await reopened.close();
  });

  it('installs twice in a row, and retention deletes installed segments by index', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 10);
    const first = { firstIndex: 20, prevTerm: 1, lastIndex: 90 };
    await store.installWindow(first, inBatches(windowEntries(20, 90, 1), 50));
    const second = { firstIndex: 60, prevTerm: 2, lastIndex: 260 };
    const held = windowEntries(60, 260, 2);
    await store.installWindow(second, inBatches(held, 1000));
    expectWindow(store, second, held);
    const segments = store.listSegments();
    expect(segments.length).toBeGreaterThan(3);
    expect(segments[0]!.firstIndex).toBe(60);
    expect(segments[segments.length - 1]!.lastIndex).toBe(260);
    const cut = segments[2]!.firstIndex;
    store.deleteBefore(cut);
    expect(store.firstIndex()).toBe(cut);
    expect(store.term(cut - 1)).toBe(held[cut - 1 - 60]!.term);
    expect(plain(readAll(store))).toEqual(plain(held.slice(cut - 60)));
    await store.close();
    const reopened = LogStore.open(opts(dir));
    expect(reopened.firstIndex()).toBe(cut);
    expect(plain(readAll(reopened))).toEqual(plain(held.slice(cut - 60)));
    await reopened.close();
  });

  it('keeps an entry larger than a segment in a segment of its own', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 3);
    const held = [entry(10, 2, 100), entry(11, 2, 9000), entry(12, 3, 100)];
    await store.installWindow({ firstIndex: 10, prevTerm: 2, lastIndex: 12 }, inBatches(held, 3));
    expect(segmentFiles(dir)).toEqual(['00000000000000000010.seg', '00000000000000000011.seg', '00000000000000000012.seg']);
    expect(plain(readAll(store))).toEqual(plain(held));
    await store.close();
    const reopened = LogStore.open(opts(dir));
    expect(plain(readAll(reopened))).toEqual(plain(held));
    await reopened.close();
  });

  it('in storage mode lazy and async flush mode too', async () => {
    const dir = logDir();
    const store = LogStore.open(opts(dir, { io: fileIoFor('lazy'), flushMode: 'async', flushIntervalMs: 60_000 }));
    store.append(entries(1, 40, 1, 300));
    // Not flushed: the install must sync and drop the old log without leaking its unsynced writes.
    const held = windowEntries(1, 100, 0);
    await store.installWindow({ firstIndex: 1, prevTerm: 0, lastIndex: 100 }, inBatches(held, 13));
    expect(plain(readAll(store))).toEqual(plain(held));
    store.append(entries(101, 110, store.term(100), 20));
    await store.flush();
    await store.close();
    const reopened = LogStore.open(opts(dir, { io: fileIoFor('lazy') }));
    expect(plain(readAll(reopened))).toEqual(plain([...held, ...entries(101, 110, held[99]!.term, 20)]));
    await reopened.close();
  });
});

describe('log store – during and after a failed install', () => {
  it('serves reads of the old log while the window streams in, and refuses writes', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 60);
    const before = plain(readAll(store));
    const held = windowEntries(100, 220, 5);
    async function* checkingBatches(): AsyncGenerator<Entry[]> {
      for await (const batch of inBatches(held, 10)) {
        expect(plain(readAll(store))).toEqual(before);
        expect(store.listSegments().map((s) => s.firstIndex)[0]).toBe(1);
        expect(() => store.append(entries(61, 61, 1))).toThrow(InvariantViolation);
        expect(() => store.flush()).toThrow(InvariantViolation);
        expect(() => store.deleteBefore(1)).toThrow(InvariantViolation);
        yield batch;
      }
    }
    await store.installWindow({ firstIndex: 100, prevTerm: 5, lastIndex: 220 }, checkingBatches());
    expect(plain(readAll(store))).toEqual(plain(held));
    await store.close();
  });

  it('a source that throws or ends short leaves the old log in place and usable', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 60);
    const before = plain(readAll(store));
    async function* failing(): AsyncGenerator<Entry[]> {
      yield windowEntries(100, 150, 5);
      throw new Error('peer went away');
    }
    await expect(store.installWindow({ firstIndex: 100, prevTerm: 5, lastIndex: 220 }, failing())).rejects.toThrow('peer went away');
    await expect(store.installWindow({ firstIndex: 100, prevTerm: 5, lastIndex: 220 }, inBatches(windowEntries(100, 219, 5), 7))).rejects.toThrow(
      InvariantViolation,
    );
    expect(existsSync(`${dir}.install`)).toBe(false);
    expect(plain(readAll(store))).toEqual(before);
    store.append(entries(61, 70, 1, 300));
    await store.flush();
    await store.close();
    const reopened = LogStore.open(opts(dir));
    expect(reopened.lastIndex()).toBe(70);
    await reopened.close();
  });

  it('close() during an install gives it up and keeps the old log', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 30);
    let closing: Promise<void> | null = null;
    async function* slow(): AsyncGenerator<Entry[]> {
      yield windowEntries(100, 110, 5);
      closing = store.close();
      yield windowEntries(111, 120, 5);
    }
    await expect(store.installWindow({ firstIndex: 100, prevTerm: 5, lastIndex: 120 }, slow())).rejects.toThrow('closed during an install');
    await closing;
    const reopened = LogStore.open(opts(dir));
    expect(reopened.lastIndex()).toBe(30);
    expect(reopened.firstIndex()).toBe(1);
    await reopened.close();
  });

  it('asserts a window below the commit index and a term(0) that is not 0', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 30);
    store.setCommitIndex(20);
    await expect(store.installWindow({ firstIndex: 5, prevTerm: 1, lastIndex: 19 }, inBatches([], 1))).rejects.toThrow(InvariantViolation);
    await expect(store.installWindow({ firstIndex: 1, prevTerm: 2, lastIndex: 30 }, inBatches([], 1))).rejects.toThrow(InvariantViolation);
    await store.close();
  });
});

describe('log store – open settles an interrupted install', () => {
  async function stagedWindow(parent: string): Promise<{ staging: string; held: Entry[] }> {
    // A complete staging, made by a real install elsewhere and moved into place.
    const other = join(parent, 'other');
    const store = await oldLog(other, 1);
    const held = windowEntries(50, 90, 2);
    await store.installWindow({ firstIndex: 50, prevTerm: 2, lastIndex: 90 }, inBatches(held, 20));
    await store.close();
    return { staging: other, held };
  }

  it('old log aside and staging complete, no log: the old log comes back', async () => {
    const dir = logDir();
    await (await oldLog(dir, 25)).close();
    const { staging } = await stagedWindow(join(dir, '..'));
    renameSync(dir, `${dir}.old`);
    renameSync(staging, `${dir}.install`);
    const store = LogStore.open(opts(dir));
    expect(store.firstIndex()).toBe(1);
    expect(store.lastIndex()).toBe(25);
    expectInstallSettled(dir);
    await store.close();
  });

  it('new log in place and the old one aside: the new log stays, the old one goes', async () => {
    const dir = logDir();
    const { staging, held } = await stagedWindow(join(dir, '..'));
    renameSync(staging, dir);
    mkdirSync(`${dir}.old`);
    writeFileSync(join(`${dir}.old`, '00000000000000000001.seg'), 'stale');
    const store = LogStore.open(opts(dir));
    expect(plain(readAll(store))).toEqual(plain(held));
    expectInstallSettled(dir);
    await store.close();
  });

  it('an unfinished staging beside the log is removed', async () => {
    const dir = logDir();
    await (await oldLog(dir, 25)).close();
    mkdirSync(`${dir}.install`);
    writeFileSync(join(`${dir}.install`, '00000000000000000050.seg'), 'half');
    const store = LogStore.open(opts(dir));
    expect(store.lastIndex()).toBe(25);
    expectInstallSettled(dir);
    await store.close();
  });
});

describe('log store – listSegments', () => {
  it('lists every segment in order with its range, bytes and file mtime; a sealed one keeps its mtime', async () => {
    const dir = logDir();
    const store = await oldLog(dir, 60);
    const segments = store.listSegments();
    expect(segments.length).toBeGreaterThan(3);
    expect(segments[0]!.firstIndex).toBe(1);
    for (let i = 1; i < segments.length; i++) {
      expect(segments[i]!.firstIndex).toBe(segments[i - 1]!.lastIndex + 1);
      expect(segments[i]!.lastModifiedMs).toBeGreaterThanOrEqual(segments[i - 1]!.lastModifiedMs);
    }
    expect(segments[segments.length - 1]!.lastIndex).toBe(60);
    expect(segments.reduce((sum, s) => sum + s.bytes, 0)).toBe(store.logBytes());
    const names = segmentFiles(dir);
    segments.forEach((s, i) => expect(s.lastModifiedMs).toBe(statSync(join(dir, names[i]!)).mtimeMs));
    store.append(entries(61, 62, 1, 300));
    await store.flush();
    const later = store.listSegments();
    expect(later[0]).toEqual(segments[0]);
    expect(later[later.length - 1]!.lastIndex).toBe(62);
    await store.close();
  });

  it('an empty log is one empty segment', async () => {
    const dir = logDir();
    const store = LogStore.open(opts(dir));
    expect(store.listSegments()).toEqual([{ firstIndex: 1, lastIndex: 0, bytes: store.logBytes(), lastModifiedMs: expect.any(Number) as number }]);
    await store.close();
  });
});
