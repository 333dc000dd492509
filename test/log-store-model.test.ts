// Model-based property: random appends, conflicts, truncations, flushes, commits, retention,
// reopens and crashes against a plain in-memory log. A crash copies the files as they are
// (page cache included) and damages the copy anywhere after the last durable byte; the
// reopened log must hold every entry up to the durable index at the crash and only a
// prefix of what the model holds — nothing lost, nothing reordered, nothing invented.
// An install replaces the whole log with a random window (longer, shorter, empty, from index
// 1 or past the end), fed in random batches while reads of the old log are checked between
// them; afterwards the store must serve the window and carry on with every other operation.
// A kill copies the files as they are, undamaged, and drops the process's memory: in storage
// mode lazy (file-io.ts) the reopened log must hold exactly the entries up to the durable
// index at the kill — what a power cut leaves — and in mode os (page cache kept) at least those.
// Every open must take each sealed segment from its index file (only the last one is scanned),
// unless the test damaged an index just before: then the reopened log must still match, and
// the damaged index is rebuilt. A reopen is also compared with a copy opened without indexes.
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../src/log/frame.js';
import { fileIoFor, type StorageMode } from '../src/log/file-io.js';
import { LogStore, type LogStoreOptions } from '../src/log/log-store.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { capturingLogger, options, plain, readAll, removeTempDirs, segmentFiles, tempDir } from './log-helpers.js';

afterAll(removeTempDirs);

type Op =
  | { kind: 'append'; sizes: number[]; newTerm: boolean }
  | { kind: 'conflict'; back: number; sizes: number[] }
  | { kind: 'truncate'; back: number }
  | { kind: 'flush'; wait: boolean }
  | { kind: 'commit'; fraction: number }
  | { kind: 'deleteBefore'; fraction: number }
  | { kind: 'read'; loFraction: number; count: number; maxBytes: number }
  | { kind: 'install'; startShift: number; sizes: number[]; termBump: number; splitFraction: number; batchSize: number }
  | { kind: 'reopen' }
  | { kind: 'kill' }
  | { kind: 'crash'; cutFraction: number; damage: 'truncate' | 'zero' | 'garbage'; garbage: Uint8Array }
  | { kind: 'damageIndex'; fileFraction: number; atFraction: number; damage: 'delete' | 'truncate' | 'flip' };

const sizes = fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 8 });
const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), sizes, newTerm: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('conflict' as const), back: fc.integer({ min: 1, max: 30 }), sizes }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), back: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flush' as const), wait: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('commit' as const), fraction }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteBefore' as const), fraction }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), loFraction: fraction, count: fc.integer({ min: 0, max: 20 }), maxBytes: fc.integer({ min: 1, max: 3000 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('install' as const),
      startShift: fc.integer({ min: -40, max: 40 }),
      sizes: fc.array(fc.integer({ min: 0, max: 600 }), { maxLength: 40 }),
      termBump: fc.integer({ min: 0, max: 2 }),
      splitFraction: fraction,
      batchSize: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'kill' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('crash' as const),
      cutFraction: fraction,
      damage: fc.constantFrom('truncate' as const, 'zero' as const, 'garbage' as const),
      garbage: fc.uint8Array({ minLength: 1, maxLength: 80 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('damageIndex' as const),
      fileFraction: fraction,
      atFraction: fraction,
      damage: fc.constantFrom('delete' as const, 'truncate' as const, 'flip' as const),
    }),
  },
);

/** The model: log[i - 1] is entry i; entries below firstIndex were deleted by retention. */
class ModelLog {
  log: Entry[] = [];
  firstIndex = 1;
  commit = 0;
  nextPayloadSeed = 1;

  lastIndex(): number {
    return this.log.length;
  }

  term(index: number): number {
    return index === 0 ? 0 : this.log[index - 1]!.term;
  }

  build(from: number, payloadSizes: number[], term: number): Entry[] {
    return payloadSizes.map((size, i) => {
      const data = new Uint8Array(size);
      const seed = this.nextPayloadSeed++;
      for (let b = 0; b < size; b++) data[b] = (seed * 13 + b * 7) & 0xff;
      return { index: from + i, term, type: size === 0 ? EntryType.Noop : EntryType.Normal, data };
    });
  }
}

/**
 * The model of an install: the window [first, first + sizes.length - 1], term(first - 1) =
 * prevTerm, its entries in two term runs. Indexes below the window hold placeholders whose only
 * use is the term of first - 1; the commit index becomes the window's end.
 */
function installInModel(model: ModelLog, op: Extract<Op, { kind: 'install' }>): { window: { firstIndex: number; prevTerm: number; lastIndex: number }; held: Entry[] } {
  const last = model.lastIndex();
  const firstIndex = Math.max(1, last + 1 + op.startShift, model.commit + 1 - op.sizes.length);
  const prevTerm = firstIndex === 1 ? 0 : model.term(last) + op.termBump;
  const split = Math.floor(op.splitFraction * op.sizes.length);
  const held = [...model.build(firstIndex, op.sizes.slice(0, split), prevTerm + 1), ...model.build(firstIndex + split, op.sizes.slice(split), prevTerm + 2)];
  const placeholders = Array.from({ length: firstIndex - 1 }, (_, i): Entry => ({ index: i + 1, term: prevTerm, type: EntryType.Noop, data: new Uint8Array(0) }));
  model.log = [...placeholders, ...held];
  model.firstIndex = firstIndex;
  model.commit = model.lastIndex();
  return { window: { firstIndex, prevTerm, lastIndex: model.lastIndex() }, held };
}

async function* batchesCheckingOldLog(held: readonly Entry[], batchSize: number, store: LogStore, oldLog: ReturnType<typeof plain>): AsyncGenerator<Entry[]> {
  for (let at = 0; at < held.length; at += batchSize) {
    expect(plain(readAll(store))).toEqual(oldLog);
    yield held.slice(at, at + batchSize);
  }
}

function expectSame(store: LogStore, model: ModelLog): void {
  expect(store.firstIndex()).toBe(model.firstIndex);
  expect(store.lastIndex()).toBe(model.lastIndex());
  for (let index = model.firstIndex - 1; index <= model.lastIndex(); index++) expect(store.term(index)).toBe(model.term(index));
  expect(plain(readAll(store))).toEqual(plain(model.log.slice(model.firstIndex - 1)));
}

function indexFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.idx'))
    .sort();
}

/** Copies the segment and index files as they are now (without indexes: what open must rebuild). */
function copyLog(dir: string, withIndexes: boolean): string {
  const copy = tempDir();
  for (const name of [...segmentFiles(dir), ...(withIndexes ? indexFiles(dir) : [])]) writeFileSync(join(copy, name), readFileSync(join(dir, name)));
  return copy;
}

/** Every segment but the last (the sealed ones) has its index beside it, and nothing else has one. */
function expectIndexFiles(dir: string): void {
  const sealed = segmentFiles(dir).slice(0, -1);
  expect(indexFiles(dir)).toEqual(sealed.map((name) => name.replace('.seg', '.idx')));
}

/** Deletes, cuts short or flips a byte of one index file (derived data: never fatal). */
function damageIndex(dir: string, op: Extract<Op, { kind: 'damageIndex' }>): void {
  const files = indexFiles(dir);
  if (files.length === 0) return;
  const path = join(dir, files[Math.min(files.length - 1, Math.floor(op.fileFraction * files.length))]!);
  const bytes = readFileSync(path);
  const at = Math.min(bytes.length - 1, Math.floor(op.atFraction * bytes.length));
  if (op.damage === 'delete') rmSync(path);
  else if (op.damage === 'truncate') writeFileSync(path, bytes.subarray(0, at));
  else {
    bytes[at] = bytes[at]! ^ 0x10;
    writeFileSync(path, bytes);
  }
}

/** Copies the segment files as they are now and damages the last one after its durable byte. */
function crashCopy(dir: string, durableIndex: number, model: ModelLog, op: Extract<Op, { kind: 'crash' }>): string {
  const copy = copyLog(dir, true);
  const files = segmentFiles(dir);
  const lastName = files[files.length - 1]!;
  const segmentFirst = Number(lastName.slice(0, 20));
  // Every segment but the last was synced when it rolled, so the durable index is in the last.
  expect(durableIndex).toBeGreaterThanOrEqual(segmentFirst - 1);
  let durableOffset = SEGMENT_HEADER_BYTES;
  for (let index = segmentFirst; index <= durableIndex; index++) durableOffset += FRAME_HEADER_BYTES + model.log[index - 1]!.data.byteLength;
  const bytes = readFileSync(join(copy, lastName));
  const cut = durableOffset + Math.floor(op.cutFraction * (bytes.length - durableOffset));
  if (op.damage === 'truncate') {
    writeFileSync(join(copy, lastName), bytes.subarray(0, cut));
    return copy;
  }
  bytes.fill(0, cut);
  if (op.damage === 'garbage') bytes.set(op.garbage.subarray(0, bytes.length - cut), cut);
  writeFileSync(join(copy, lastName), bytes);
  return copy;
}

/** The files as the disk holds them: what a killed process leaves behind. */
function killCopy(dir: string): string {
  return copyLog(dir, true);
}

async function runOps(opts: Omit<LogStoreOptions, 'dir' | 'io'>, ops: Op[], storage: StorageMode = 'os'): Promise<void> {
  let dir = tempDir();
  // A fresh port per open: a new process starts with nothing held in memory.
  let indexDamaged = false;
  const open = (): LogStore => {
    const { logger, lines } = capturingLogger();
    const opened = LogStore.open({ ...opts, dir, io: fileIoFor(storage), logger });
    const recovered = lines.find((line) => line.msg === 'log recovered');
    if (recovered !== undefined && !indexDamaged) expect(recovered.scannedSegments).toBe(1);
    indexDamaged = false;
    return opened;
  };
  let store = open();
  const model = new ModelLog();
  const pending: Array<Promise<number>> = [];
  const reopen = (): void => {
    store = open();
    if (model.commit > 0) store.setCommitIndex(model.commit);
  };
  for (const op of ops) {
    const last = model.lastIndex();
    switch (op.kind) {
      case 'append': {
        const term = model.term(last) + (op.newTerm || last === 0 ? 1 : 0);
        const batch = model.build(last + 1, op.sizes, term);
        store.append(batch);
        model.log.push(...batch);
        break;
      }
      case 'conflict': {
        const from = Math.max(model.commit + 1, model.firstIndex, last - op.back + 1);
        if (from > last) break;
        const batch = model.build(from, op.sizes, model.term(last) + 1);
        store.append(batch);
        model.log.length = from - 1;
        model.log.push(...batch);
        break;
      }
      case 'truncate': {
        const from = Math.max(model.commit + 1, model.firstIndex, last - op.back + 1);
        store.truncateSuffix(from);
        model.log.length = Math.min(last, from - 1);
        break;
      }
      case 'flush': {
        const fsyncsBefore = store.stats().fsyncs;
        const needsSync = store.durableIndex() < model.lastIndex();
        const flushed = store.flush();
        if (op.wait) {
          const durable = await flushed;
          // Durability is only real if an fdatasync ran: a flush that only claims it must fail here.
          if (opts.flushMode === 'sync' && needsSync) expect(store.stats().fsyncs).toBeGreaterThan(fsyncsBefore);
          expect(durable).toBeGreaterThanOrEqual(model.lastIndex());
          if (opts.flushMode === 'sync') expect(store.durableIndex()).toBeGreaterThanOrEqual(model.lastIndex());
        } else {
          pending.push(flushed);
        }
        break;
      }
      case 'commit': {
        const ceiling = Math.min(store.durableIndex(), last);
        const commit = model.commit + Math.floor(op.fraction * (ceiling - model.commit));
        if (commit < model.commit) break;
        store.setCommitIndex(commit);
        model.commit = commit;
        break;
      }
      case 'deleteBefore': {
        const index = model.firstIndex + Math.floor(op.fraction * (model.commit + 1 - model.firstIndex));
        if (index < model.firstIndex) break;
        store.deleteBefore(index);
        expect(store.firstIndex()).toBeLessThanOrEqual(Math.max(index, model.firstIndex));
        model.firstIndex = store.firstIndex();
        break;
      }
      case 'read': {
        const lo = model.firstIndex + Math.floor(op.loFraction * (last + 1 - model.firstIndex));
        const hi = Math.min(last + 1, lo + op.count);
        const got = store.entries(lo, hi, op.maxBytes);
        const want: Entry[] = [];
        let bytes = 0;
        for (let index = lo; index < hi; index++) {
          const e = model.log[index - 1]!;
          const size = e.data.byteLength + FRAME_HEADER_BYTES;
          if (want.length > 0 && bytes + size > op.maxBytes) break;
          want.push(e);
          bytes += size;
        }
        expect(plain(got)).toEqual(plain(want));
        break;
      }
      case 'install': {
        const oldLog = plain(readAll(store));
        const { window, held } = installInModel(model, op);
        await store.installWindow(window, batchesCheckingOldLog(held, op.batchSize, store, oldLog));
        expectSame(store, model);
        expect(store.durableIndex()).toBe(model.lastIndex());
        break;
      }
      case 'reopen': {
        await store.close();
        reopen();
        expectSame(store, model);
        const scanned = LogStore.open({ ...opts, dir: copyLog(dir, false) });
        expectSame(scanned, model);
        await scanned.close();
        break;
      }
      case 'damageIndex':
        await store.close();
        damageIndex(dir, op);
        indexDamaged = true;
        reopen();
        expectSame(store, model);
        break;
      case 'kill': {
        const durable = store.durableIndex();
        const copy = killCopy(dir);
        await store.close();
        dir = copy;
        store = open();
        const recovered = store.lastIndex();
        if (storage === 'lazy') expect(recovered).toBe(durable);
        else expect(recovered).toBeGreaterThanOrEqual(durable);
        expect(recovered).toBeLessThanOrEqual(model.lastIndex());
        model.log.length = recovered;
        expectSame(store, model);
        if (model.commit > 0) store.setCommitIndex(model.commit);
        break;
      }
      case 'crash': {
        const durable = store.durableIndex();
        const copy = crashCopy(dir, durable, model, op);
        await store.close();
        dir = copy;
        store = open();
        const recovered = store.lastIndex();
        expect(recovered).toBeGreaterThanOrEqual(durable);
        expect(recovered).toBeLessThanOrEqual(model.lastIndex());
        model.log.length = recovered;
        expectSame(store, model);
        if (model.commit > 0) store.setCommitIndex(model.commit);
        break;
      }
    }
    expect(store.lastIndex()).toBe(model.lastIndex());
    expectIndexFiles(dir);
  }
  await Promise.all(pending);
  await store.close();
  reopen();
  expectSame(store, model);
  await store.close();
}

describe('log store – model-based property (append/truncate/flush/reopen/crash)', () => {
  it('matches an in-memory log and keeps every durable entry across crashes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('sync' as const, 'async' as const), fc.array(opArbitrary, { minLength: 1, maxLength: 30 }), async (flushMode, ops) => {
        await runOps({ segmentBytes: 4096, flushMode, flushIntervalMs: 1 }, ops);
        removeTempDirs();
      }),
      { numRuns: 45 },
    );
  });

  it('in storage mode lazy, a kill recovers exactly the last fsynced state', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('sync' as const, 'async' as const), fc.array(opArbitrary, { minLength: 1, maxLength: 30 }), async (flushMode, ops) => {
        await runOps({ segmentBytes: 4096, flushMode, flushIntervalMs: 1 }, ops, 'lazy');
        removeTempDirs();
      }),
      { numRuns: 45 },
    );
  });

  it('in storage mode lazy, a kill loses the unsynced tail (appended, written, never flushed)', async () => {
    await runOps(options('unused', { segmentBytes: 4096 }), [
      { kind: 'append', sizes: [10, 20, 30], newTerm: true },
      { kind: 'flush', wait: true },
      { kind: 'append', sizes: [40, 5000, 50], newTerm: false },
      { kind: 'read', loFraction: 0, count: 20, maxBytes: 100_000 },
      { kind: 'kill' },
      { kind: 'flush', wait: true },
    ], 'lazy');
  });

  it('keeps entries larger than a segment in a segment of their own', async () => {
    await runOps(options('unused', { segmentBytes: 4096 }), [
      { kind: 'append', sizes: [5000], newTerm: true },
      { kind: 'append', sizes: [10, 9000, 20], newTerm: false },
      { kind: 'flush', wait: true },
      { kind: 'reopen' },
    ]);
  });
});
