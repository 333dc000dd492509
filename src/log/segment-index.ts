// The offset index of a sealed segment: `<first index, 20 digits>.idx` beside the segment,
// holding what recovery would otherwise learn by reading every frame — the last index, the
// byte end, the term runs and the byte offset of every frame. Written once, when the store
// rolls past the segment (the segment is fdatasynced first, so the index never claims frames a
// power cut could take away); deleted before anything changes the segment again. It is derived
// data: a missing, stale or damaged index is logged and rebuilt by scanning, never fatal.
//
// File layout (little endian):
//   0 u32 crc32 of bytes [4, HEADER_BYTES + 16 × runCount)   4 u32 INDEX_MAGIC
//   8 u32 INDEX_FORMAT_VERSION   12 u32 runCount
//   16 u64 first index   24 u64 term of (first index - 1)   32 u64 last index
//   40 u32 end bytes (just past the last frame)   44 u32 offset of the last frame
//   48 u32 crc32 of the offsets section           52 u32 zero
//   56 runCount × (u64 first index of the run, u64 term)
//   then (last index - first index + 1) × u32 frame offsets
// The header and runs carry their own checksum apart from the offsets, so open reads only the
// small head of each index; the offsets (4 B per entry) are read on the segment's first read.
//
// Index files are written with real fs calls in every storage mode and fdatasynced before the
// rename, like the zero-filled segment files (file-io.ts): lazy mode has nothing to hold back.
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert } from '../util/assert.js';
import { SEGMENT_HEADER_BYTES, readU64, writeU64 } from './frame.js';
import type { Logger } from 'pino';
import { type Segment, fsyncDir } from './segment.js';
import type { TermRun, TermRuns } from './term-runs.js';

export const INDEX_NAME_PATTERN = /^(\d{20})\.idx$/;
/** "LQMX" read as a little-endian u32. */
const INDEX_MAGIC = 0x584d514c;
const INDEX_FORMAT_VERSION = 1;
const HEADER_BYTES = 56;
const RUN_BYTES = 16;
const OFFSET_BYTES = 4;
/** More runs than this in one segment is damage: a leader change per few entries for 64 MiB. */
const MAX_RUNS = 1 << 20;

/** What an index says about its segment, without the offsets. */
export interface SegmentIndexHead {
  readonly firstIndex: number;
  readonly prevTerm: number;
  readonly lastIndex: number;
  readonly endBytes: number;
  readonly lastFrameOffset: number;
  /** In index order; runs[0].start = firstIndex. */
  readonly runs: readonly TermRun[];
  readonly offsetsCrc: number;
}

export function indexFileName(firstIndex: number): string {
  assert(Number.isSafeInteger(firstIndex) && firstIndex >= 1, () => `bad index first index ${firstIndex}`);
  return `${String(firstIndex).padStart(20, '0')}.idx`;
}

/** The whole index file for a sealed segment. `offsets` holds exactly one offset per entry. */
export function encodeSegmentIndex(head: Omit<SegmentIndexHead, 'offsetsCrc' | 'lastFrameOffset'>, offsets: Uint32Array): Buffer {
  const entryCount = head.lastIndex - head.firstIndex + 1;
  assert(entryCount >= 1, () => `index of a segment with ${entryCount} entries`);
  assert(offsets.length === entryCount, () => `index of ${entryCount} entries given ${offsets.length} offsets`);
  assert(head.runs[0]?.start === head.firstIndex, 'the first run starts at the first index');
  const runsEnd = HEADER_BYTES + head.runs.length * RUN_BYTES;
  const buf = Buffer.alloc(runsEnd + entryCount * OFFSET_BYTES);
  Buffer.from(offsets.buffer, offsets.byteOffset, offsets.byteLength).copy(buf, runsEnd);
  buf.writeUInt32LE(INDEX_MAGIC, 4);
  buf.writeUInt32LE(INDEX_FORMAT_VERSION, 8);
  buf.writeUInt32LE(head.runs.length, 12);
  writeU64(buf, 16, head.firstIndex);
  writeU64(buf, 24, head.prevTerm);
  writeU64(buf, 32, head.lastIndex);
  buf.writeUInt32LE(head.endBytes, 40);
  buf.writeUInt32LE(offsets[entryCount - 1]!, 44);
  buf.writeUInt32LE(crc32(buf.subarray(runsEnd)), 48);
  head.runs.forEach((run, i) => {
    writeU64(buf, HEADER_BYTES + i * RUN_BYTES, run.start);
    writeU64(buf, HEADER_BYTES + i * RUN_BYTES + 8, run.term);
  });
  buf.writeUInt32LE(crc32(buf.subarray(4, runsEnd)), 0);
  return buf;
}

/** Writes the index atomically: temp file, fdatasync, rename, directory fsync. */
export function writeSegmentIndex(dir: string, content: Buffer, firstIndex: number): void {
  const path = join(dir, indexFileName(firstIndex));
  const tmpPath = `${path}.tmp`;
  const fd = openSync(tmpPath, 'w');
  try {
    for (let done = 0; done < content.length; ) done += writeSync(fd, content, done, content.length - done, done);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmpPath, path);
  fsyncDir(dir);
}

/**
 * Writes the index of a sealed segment (already fdatasynced) from its offsets and the log's
 * term runs. A failure (a full disk) is logged, not thrown: the segment is scanned at the
 * next open instead. Returns whether the index was written.
 */
export function sealSegmentIndex(segment: Segment, termRuns: TermRuns, logger: Logger | undefined): boolean {
  const head = { firstIndex: segment.firstIndex, prevTerm: segment.prevTerm, lastIndex: segment.lastIndex, endBytes: segment.endBytes };
  const content = encodeSegmentIndex({ ...head, runs: termRuns.runsIn(segment.firstIndex, segment.lastIndex) }, segment.frameOffsets());
  try {
    writeSegmentIndex(segment.dir, content, segment.firstIndex);
    return true;
  } catch (error) {
    rmSync(join(segment.dir, `${indexFileName(segment.firstIndex)}.tmp`), { force: true });
    logger?.warn({ err: error, fileName: segment.fileName }, 'could not write the segment index; the segment will be scanned at the next open');
    return false;
  }
}

/** Removes the index of the segment starting at firstIndex, if any; the caller fsyncs the directory. */
export function removeSegmentIndex(dir: string, firstIndex: number): void {
  rmSync(join(dir, indexFileName(firstIndex)), { force: true });
}

function readExactly(fd: number, length: number, position: number): Buffer | null {
  const buf = Buffer.allocUnsafe(length);
  for (let done = 0; done < length; ) {
    const read = readSync(fd, buf, done, length - done, position + done);
    if (read === 0) return null;
    done += read;
  }
  return buf;
}

/**
 * Reads and checks the head (header and term runs) of the index of the segment starting at
 * firstIndex: the head, or why it cannot be used ('missing' when there is no file).
 */
export function readSegmentIndexHead(dir: string, firstIndex: number): SegmentIndexHead | string {
  let fd: number;
  try {
    fd = openSync(join(dir, indexFileName(firstIndex)), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  try {
    const fileBytes = fstatSync(fd).size;
    const header = fileBytes >= HEADER_BYTES ? readExactly(fd, HEADER_BYTES, 0) : null;
    if (header === null) return `index file is ${fileBytes} B, shorter than its header`;
    if (header.readUInt32LE(4) !== INDEX_MAGIC) return 'bad index magic';
    if (header.readUInt32LE(8) !== INDEX_FORMAT_VERSION) return `unsupported index format version ${header.readUInt32LE(8)}`;
    const runCount = header.readUInt32LE(12);
    const lastIndex = readU64(header, 32);
    const entryCount = lastIndex - firstIndex + 1;
    if (runCount < 1 || runCount > MAX_RUNS || entryCount < 1) return `index claims ${runCount} term runs and ${entryCount} entries`;
    const runsEnd = HEADER_BYTES + runCount * RUN_BYTES;
    if (fileBytes !== runsEnd + entryCount * OFFSET_BYTES) return `index file is ${fileBytes} B, its header implies ${runsEnd + entryCount * OFFSET_BYTES} B`;
    const runsBuf = readExactly(fd, runsEnd - HEADER_BYTES, HEADER_BYTES);
    if (runsBuf === null) return 'index file ends inside its term runs';
    if (crc32(runsBuf, crc32(header.subarray(4))) !== header.readUInt32LE(0)) return 'bad index header checksum';
    return decodeHead(header, runsBuf, firstIndex, lastIndex);
  } finally {
    closeSync(fd);
  }
}

function decodeHead(header: Buffer, runsBuf: Buffer, firstIndex: number, lastIndex: number): SegmentIndexHead | string {
  if (readU64(header, 16) !== firstIndex) return `index says first index ${readU64(header, 16)}, its file name ${firstIndex}`;
  const prevTerm = readU64(header, 24);
  const endBytes = header.readUInt32LE(40);
  const lastFrameOffset = header.readUInt32LE(44);
  if (prevTerm < 0 || lastFrameOffset < SEGMENT_HEADER_BYTES || endBytes <= lastFrameOffset) return 'index header fields out of range';
  const runs: TermRun[] = [];
  for (let at = 0; at < runsBuf.length; at += RUN_BYTES) {
    const start = readU64(runsBuf, at);
    const term = readU64(runsBuf, at + 8);
    const previous = runs[runs.length - 1];
    const startOk = previous === undefined ? start === firstIndex : start > previous.start && start <= lastIndex;
    if (!startOk || term < (previous?.term ?? prevTerm) || term === previous?.term) return `index term run ${runs.length} (start ${start}, term ${term}) out of order`;
    runs.push({ start, term });
  }
  return { firstIndex, prevTerm, lastIndex, endBytes, lastFrameOffset, runs, offsetsCrc: header.readUInt32LE(48) };
}

/**
 * Reads the frame offsets of an index whose head was accepted, checking their checksum and
 * that they climb from the segment header to the last frame. Returns why not on a mismatch.
 */
export function readSegmentIndexOffsets(dir: string, head: SegmentIndexHead): Uint32Array | string {
  const entryCount = head.lastIndex - head.firstIndex + 1;
  let fd: number;
  try {
    fd = openSync(join(dir, indexFileName(head.firstIndex)), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  let buf: Buffer | null;
  try {
    buf = readExactly(fd, entryCount * OFFSET_BYTES, HEADER_BYTES + head.runs.length * RUN_BYTES);
  } finally {
    closeSync(fd);
  }
  if (buf === null) return 'index file ends inside its offsets';
  if (crc32(buf) !== head.offsetsCrc) return 'bad index offsets checksum';
  const offsets = new Uint32Array(entryCount);
  for (let i = 0; i < entryCount; i++) offsets[i] = buf.readUInt32LE(i * OFFSET_BYTES);
  if (offsets[0] !== SEGMENT_HEADER_BYTES || offsets[entryCount - 1] !== head.lastFrameOffset) return 'index offsets do not span the segment';
  for (let i = 1; i < entryCount; i++) if (offsets[i]! <= offsets[i - 1]!) return `index offset ${i} does not climb`;
  return offsets;
}
