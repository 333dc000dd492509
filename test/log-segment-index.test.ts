// The offset index of sealed segments (src/log/segment-index.ts): open takes sealed segments
// from their index and must then hold exactly what a full scan finds; a damaged, cut, missing
// or stale index is derived data — logged, scanned instead, rebuilt, never fatal; truncation
// and retention keep the index files beside exactly the sealed segments.
import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogStore } from '../src/log/log-store.js';
import type { Entry } from '../src/raft/types.js';
import { capturingLogger, entries, options, plain, readAll, removeTempDirs, segmentFiles, tempDir } from './log-helpers.js';

afterEach(removeTempDirs);

const SEGMENT_BYTES = 4096;
const PAYLOAD_BYTES = 300;

/** 60 entries of 332 B in 4 KiB segments (12 a segment), a new term every 25 entries. */
function written(): Entry[] {
  const out: Entry[] = [];
  for (let index = 1; index <= 60; index++) out.push(...entries(index, index, 1 + Math.floor(index / 25), PAYLOAD_BYTES));
  return out;
}

async function writeLog(dir: string, log: Entry[]): Promise<void> {
  const store = LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES }));
  for (let i = 0; i < log.length; i += 4) store.append(log.slice(i, i + 4));
  await store.close();
}

function indexFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.idx'))
    .sort();
}

function expectIndexBesideSealedSegments(dir: string): void {
  expect(indexFiles(dir)).toEqual(segmentFiles(dir).slice(0, -1).map((name) => name.replace('.seg', '.idx')));
}

/** Opens with a capturing logger; returns the store, its 'log recovered' line and its log lines. */
function openLogged(dir: string): { store: LogStore; recovered: Record<string, unknown>; lines: Array<Record<string, unknown>> } {
  const { logger, lines } = capturingLogger();
  const store = LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES, logger }));
  const recovered = lines.find((line) => line.msg === 'log recovered');
  expect(recovered).toBeDefined();
  return { store, recovered: recovered!, lines };
}

function warnings(lines: Array<Record<string, unknown>>): string[] {
  return lines.filter((line) => line.level === 40).map((line) => String(line.msg));
}

function expectHolds(store: LogStore, log: Entry[]): void {
  const first = log[0]!.index;
  expect(store.firstIndex()).toBe(first);
  expect(store.lastIndex()).toBe(log[log.length - 1]!.index);
  for (const e of log) expect(store.term(e.index)).toBe(e.term);
  expect(plain(readAll(store))).toEqual(plain(log));
}

/** A copy of the segment files alone: opening it scans every segment, as before indexes. */
function scannedCopy(dir: string): string {
  const copy = tempDir();
  for (const name of segmentFiles(dir)) writeFileSync(join(copy, name), readFileSync(join(dir, name)));
  return copy;
}

describe('log store – segment offset index', () => {
  it('reopen takes every sealed segment from its index and holds what a full scan holds', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const segments = segmentFiles(dir).length;
    expect(segments).toBeGreaterThanOrEqual(5);
    expectIndexBesideSealedSegments(dir);
    const { store, recovered, lines } = openLogged(dir);
    expect(recovered.indexedSegments).toBe(segments - 1);
    expect(recovered.scannedSegments).toBe(1);
    expectHolds(store, log);
    expect(warnings(lines)).toEqual([]);
    const scan = openLogged(scannedCopy(dir));
    expect(scan.recovered.scannedSegments).toBe(segments);
    expect(scan.store.logBytes()).toBe(store.logBytes());
    expectHolds(scan.store, log);
    await scan.store.close();
    await store.close();
  });

  const damages: Array<{ name: string; damage: (path: string) => void; warning: string }> = [
    { name: 'a flipped header byte', damage: (path) => flipByte(path, 20), warning: 'segment index unusable; scanned the segment and rebuilt its index' },
    { name: 'a cut file', damage: (path) => writeFileSync(path, readFileSync(path).subarray(0, 70)), warning: 'segment index unusable; scanned the segment and rebuilt its index' },
    { name: 'a flipped offsets byte', damage: (path) => flipByte(path, readFileSync(path).length - 3), warning: 'segment index offsets unusable; scanning the segment' },
    { name: 'a missing file', damage: (path) => rmSync(path), warning: '' },
  ];
  for (const { name, damage, warning } of damages) {
    it(`an index with ${name} falls back to a scan, logged once, and is rebuilt`, async () => {
      const dir = tempDir();
      const log = written();
      await writeLog(dir, log);
      const victim = join(dir, indexFiles(dir)[1]!);
      damage(victim);
      const first = openLogged(dir);
      expectHolds(first.store, log);
      expect(warnings(first.lines)).toEqual(warning === '' ? [] : [warning]);
      if (warning === '') {
        const notice = first.lines.filter((line) => line.msg === 'segment index unusable; scanned the segment and rebuilt its index');
        expect(notice.map((line) => line.reason)).toEqual(['missing']);
      }
      await first.store.close();
      expectIndexBesideSealedSegments(dir);
      const second = openLogged(dir);
      expect(second.recovered.scannedSegments).toBe(1);
      expectHolds(second.store, log);
      expect(warnings(second.lines)).toEqual([]);
      await second.store.close();
    });
  }

  it('loads a sealed segment\'s offsets on its first read, not at open', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const { store, lines } = openLogged(dir);
    // Gone after open: only a store that has not read the offsets yet needs to scan instead.
    rmSync(join(dir, indexFiles(dir)[0]!));
    expectHolds(store, log);
    expect(lines.filter((line) => line.msg === 'segment index offsets unusable; scanning the segment').map((line) => line.reason)).toEqual(['missing']);
    await store.close();
  });

  it('does not use a stale index: one left from before a truncation and a new seal', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const staleName = indexFiles(dir)[2]!;
    const stale = readFileSync(join(dir, staleName));
    const sealedFirst = Number(staleName.slice(0, 20));
    const store = LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES }));
    store.truncateSuffix(sealedFirst + 3);
    const rewritten = [...log.slice(0, sealedFirst + 2), ...entries(sealedFirst + 3, sealedFirst + 30, 9, 100)];
    store.append(rewritten.slice(sealedFirst + 2));
    await store.close();
    writeFileSync(join(dir, staleName), stale);
    const { store: reopened, lines } = openLogged(dir);
    expect(warnings(lines)).toEqual(['segment index unusable; scanned the segment and rebuilt its index']);
    expect(lines.find((line) => line.level === 40)!.reason).toMatch(/last frame/);
    expectHolds(reopened, rewritten);
    await reopened.close();
  });

  it('truncateSuffix into a sealed segment removes its index and later ones before it changes', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const store = LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES }));
    const second = Number(segmentFiles(dir)[1]!.slice(0, 20));
    store.truncateSuffix(second + 2);
    expect(segmentFiles(dir)).toHaveLength(2);
    expectIndexBesideSealedSegments(dir);
    const kept = [...log.slice(0, second + 1), ...entries(second + 2, second + 40, 7, PAYLOAD_BYTES)];
    store.append(kept.slice(second + 1));
    expectIndexBesideSealedSegments(dir);
    await store.close();
    const { store: reopened, recovered } = openLogged(dir);
    expect(recovered.scannedSegments).toBe(1);
    expectHolds(reopened, kept);
    await reopened.close();
  });

  it('deleteBefore removes the indexes with their segments; reopen agrees', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const store = LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES }));
    store.setCommitIndex(40);
    store.deleteBefore(30);
    const first = store.firstIndex();
    expect(first).toBeGreaterThan(1);
    expectIndexBesideSealedSegments(dir);
    await store.close();
    const { store: reopened, recovered } = openLogged(dir);
    expect(recovered.scannedSegments).toBe(1);
    expectHolds(reopened, log.slice(first - 1));
    await reopened.close();
  });

  it('removes an orphan index, the last segment\'s index and a half-written one at open', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const names = segmentFiles(dir);
    // A crash between the unlinks of retention, one inside a truncation, and one inside a seal.
    writeFileSync(join(dir, '00000000000000099999.idx'), readFileSync(join(dir, indexFiles(dir)[0]!)));
    writeFileSync(join(dir, names[names.length - 1]!.replace('.seg', '.idx')), readFileSync(join(dir, indexFiles(dir)[0]!)));
    writeFileSync(join(dir, `${names[0]!.replace('.seg', '.idx')}.tmp`), Buffer.alloc(10));
    const { store, lines } = openLogged(dir);
    expect(warnings(lines)).toEqual([]);
    expectIndexBesideSealedSegments(dir);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp') && name.includes('.idx'))).toEqual([]);
    expectHolds(store, log);
    await store.close();
  });

  it('a sealed segment that no longer holds what its index says is scanned; the gap it leaves is corruption', async () => {
    const dir = tempDir();
    const log = written();
    await writeLog(dir, log);
    const { store } = openLogged(dir);
    await store.close();
    // Replace a sealed segment by a shorter one with the same name: its index no longer fits.
    const other = tempDir();
    await writeLog(other, log.slice(0, 5));
    const name = segmentFiles(dir)[0]!;
    renameSync(join(other, name), join(dir, name));
    expect(() => LogStore.open(options(dir, { segmentBytes: SEGMENT_BYTES }))).toThrow(/corrupt/);
  });
});

function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] = bytes[at]! ^ 0x40;
  writeFileSync(path, bytes);
}
