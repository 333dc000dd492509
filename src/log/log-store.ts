// The durable Raft log: entries in preallocated segment files under <dataDir>/log, with
// group-commit fdatasync, suffix truncation for Raft conflicts, retention by whole segments,
// and crash recovery (recovery.ts). Memory held: the term runs, 4 B per entry of frame
// offsets (for sealed segments only once they are read: segment-index.ts), and one buffer of
// frames not yet written — never the entries themselves.
//
// installWindow (log-install.ts) replaces the whole log with a leader's window for
// InstallSnapshot: staged beside the log directory, swapped in by renames, crash-safe.
//
// Appends made in the same tick of the event loop are written with one write syscall at its
// end (a microtask), or at once when they fill pendingWriteBytes: with many concurrent
// writers that saves a syscall per entry. Anything that looks at the file (flush, reads,
// truncation, roll, close) writes the pending frames first, and async-mode flush() resolves
// only once they are written, so "persisted under the flush mode" always means at least
// "handed to the OS".
//
// Why preallocate: overwriting blocks that are already allocated and written lets
// fdatasync skip the file-size and extent metadata update; on our disks that is about twice
// as many syncs per second as appending to a growing file. The price is that old bytes lie
// past the logical end, so the store keeps that space zeroed (see recovery.ts).
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Entry } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { type LogFileIo, osFileIo } from './file-io.js';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES, decodeFrame, encodeFrame, encodeSegmentHeader, frameBytes, newFrameHeader } from './frame.js';
import { type LogWindow, WindowWriter, asideDirOf, removeDirThroughIo, settleInterruptedInstall, stagingDirOf } from './log-install.js';
import { type RecoveredLog, recoverSegments } from './recovery.js';
import {
  SEGMENT_NAME_PATTERN,
  Segment,
  corruptSegmentError,
  createZeroFileSync,
  fsyncDir,
  isDiskFull,
  segmentFileName,
  writeFully,
  writeZeros,
  zeros,
} from './segment.js';
import { INDEX_NAME_PATTERN, removeSegmentIndex, sealSegmentIndex } from './segment-index.js';
import { TermRuns } from './term-runs.js';

export interface LogStoreOptions {
  /** <dataDir>/log; segment files are named <first index, 20 digits>.seg. */
  dir: string;
  /** Roll to a new segment when the next append would pass this size; also the preallocated size. */
  segmentBytes: number;
  /** sync: flush() waits for fdatasync. async: flush() returns at once; a timer fdatasyncs. */
  flushMode: 'sync' | 'async';
  /** async mode: period of the background fdatasync. */
  flushIntervalMs: number;
  /** Recovery and truncation are logged at info. */
  logger?: Logger;
  /** File calls on segment files; default osFileIo. LazyFileIo only for power-loss chaos runs. */
  io?: LogFileIo;
}

export interface LogStoreStats {
  fsyncs: number;
  appendedEntries: number;
  appendedBytes: number;
}

/** One segment as a retention policy sees it. */
export interface SegmentInfo {
  firstIndex: number;
  /** firstIndex - 1 for an empty (active) segment. */
  lastIndex: number;
  /** Header and frames held (not the preallocated zeros after them), as logBytes() counts. */
  bytes: number;
  /** The file's mtime: when its last entry was written (a sealed segment is never written again). */
  lastModifiedMs: number;
}

export type { LogWindow } from './log-install.js';

export const MIN_SEGMENT_BYTES = 4096;
export const MAX_SEGMENT_BYTES = 2 ** 31 - 1;
const MAX_FLUSH_INTERVAL_MS = 60_000;
/** Pending frames are written out once they reach this size, without waiting for the tick to end. */
const PENDING_WRITE_BYTES = 256 * 1024;
/** A batch larger than this is encoded into a buffer of its own and written at once. */
const MAX_PENDING_BUFFER_BYTES = 4 * 1024 * 1024;
/** The background zero-fill of the next segment syncs every this many bytes, so its writeback comes in small bursts. */
const SPARE_SYNC_EVERY_BYTES = 8 * 1024 * 1024;
/** Next segment file, zero-filled in the background so a roll need not wait for it. */
const SPARE_FILE = 'next-segment.tmp';
/** Zero-filled on the spot when a roll finds no spare ready. */
const ROLL_FILE = 'roll-segment.tmp';

interface SyncBatch {
  promise: Promise<number>;
  resolve: (durableIndex: number) => void;
  reject: (error: Error) => void;
}

function newSyncBatch(): SyncBatch {
  let resolve!: (durableIndex: number) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<number>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function validateOptions(options: LogStoreOptions): void {
  const { segmentBytes, flushIntervalMs } = options;
  assert(Number.isInteger(segmentBytes), () => `segmentBytes ${segmentBytes} is not an integer`);
  assert(segmentBytes >= MIN_SEGMENT_BYTES && segmentBytes <= MAX_SEGMENT_BYTES, () => `segmentBytes ${segmentBytes} outside [${MIN_SEGMENT_BYTES}, ${MAX_SEGMENT_BYTES}]`);
  assert(options.flushMode === 'sync' || options.flushMode === 'async', () => `flushMode ${String(options.flushMode)}`);
  assert(Number.isInteger(flushIntervalMs), () => `flushIntervalMs ${flushIntervalMs} is not an integer`);
  assert(flushIntervalMs >= 1 && flushIntervalMs <= MAX_FLUSH_INTERVAL_MS, () => `flushIntervalMs ${flushIntervalMs} outside [1, ${MAX_FLUSH_INTERVAL_MS}]`);
}

export class LogStore {
  private readonly segments: Segment[];
  /** Replaced whole by an install. */
  private termRuns: TermRuns;
  /** File descriptor of the last segment, the only one written. */
  private activeFd: number;
  /** Entries at or below this are committed and may never be truncated. */
  private commitFloorIndex = 0;
  /** Highest index covered by a completed fdatasync. Invariant: durable <= lastIndex. */
  private durable: number;
  private syncInFlight = false;
  private syncScheduled = false;
  private inFlightTarget = 0;
  private inFlightEpoch = 0;
  private inFlightBatch: SyncBatch | null = null;
  /** Callers waiting for the next fdatasync; it starts when the one in flight completes. */
  private nextBatch: SyncBatch | null = null;
  /** Bumped by every truncation so an fdatasync that started before it credits nothing. */
  private truncationEpoch = 0;
  private readonly fdsToCloseAfterSync: number[] = [];
  private readonly idleWaiters: Array<() => void> = [];
  private failure: Error | null = null;
  private closed = false;
  /** close() was called: an install in progress gives up at its next step. */
  private closing = false;
  /** The install in progress: only reads are allowed meanwhile. */
  private install: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout | null;
  /** Frames appended but not yet written: they belong at [activeWrittenEndBytes, active.endBytes). */
  private pending: Buffer = Buffer.allocUnsafe(PENDING_WRITE_BYTES);
  private pendingBytes = 0;
  private activeWrittenEndBytes: number;
  private writeScheduled = false;
  /** async mode: flush() callers waiting for the pending frames to be written. */
  private writeWaiters: SyncBatch | null = null;
  private spareState: 'none' | 'preparing' | 'ready' = 'none';
  private sparePromise: Promise<void> = Promise.resolve();
  private readonly counters: LogStoreStats = { fsyncs: 0, appendedEntries: 0, appendedBytes: 0 };
  private readonly io: LogFileIo;

  private constructor(
    private readonly options: LogStoreOptions,
    recovered: RecoveredLog | null,
  ) {
    this.io = options.io ?? osFileIo;
    if (recovered === null) {
      this.segments = [];
      this.termRuns = new TermRuns(0, 0);
      this.activeFd = this.createSegment(1, 0);
    } else {
      this.segments = recovered.segments;
      this.termRuns = recovered.termRuns;
      this.activeFd = this.io.openSync(this.activeSegment().path, 'r+');
      this.finishRecovery(recovered);
    }
    this.durable = this.lastIndex();
    this.activeWrittenEndBytes = this.activeSegment().endBytes;
    this.timer = options.flushMode === 'async' ? setInterval(() => this.backgroundSync(), options.flushIntervalMs) : null;
    this.timer?.unref();
    this.prepareSpare();
  }

  /** Opens the log in options.dir, creating it when absent; recovers synchronously. Throws LmqError(LMQ_CORRUPT_DATA). */
  static open(options: LogStoreOptions): LogStore {
    validateOptions(options);
    settleInterruptedInstall(options.io ?? osFileIo, options.dir, options.logger);
    mkdirSync(options.dir, { recursive: true });
    for (const name of readdirSync(options.dir)) {
      if (name.endsWith('.tmp')) rmSync(join(options.dir, name), { force: true });
    }
    const names = readdirSync(options.dir);
    const fileNames = names.filter((name) => SEGMENT_NAME_PATTERN.test(name)).sort();
    // An index whose segment is gone (a crash between the two unlinks) must not outlive it.
    for (const name of names) {
      const match = INDEX_NAME_PATTERN.exec(name);
      if (match !== null && !fileNames.includes(segmentFileName(Number(match[1])))) rmSync(join(options.dir, name), { force: true });
    }
    return new LogStore(options, fileNames.length === 0 ? null : recoverSegments(options.io ?? osFileIo, options.dir, fileNames, options.logger));
  }

  /** Zeroes what recovery cut or found stale past the end, then syncs, so that all of it is durable. */
  private finishRecovery(recovered: RecoveredLog): void {
    const active = this.activeSegment();
    if (active.dirtyEndBytes > active.endBytes) {
      writeZeros(this.io, this.activeFd, active.endBytes, active.dirtyEndBytes);
      active.dirtyEndBytes = active.endBytes;
    }
    this.io.fdatasyncSync(this.activeFd);
    fsyncDir(this.options.dir);
    this.counters.fsyncs += 1;
    if (recovered.tornTail !== null) {
      this.options.logger?.info({ ...recovered.tornTail, lastIndex: this.lastIndex() }, 'log recovery cut a torn tail');
    }
    this.options.logger?.info(
      {
        dir: this.options.dir,
        segments: this.segments.length,
        indexedSegments: recovered.indexedSegments,
        scannedSegments: recovered.scannedSegments,
        firstIndex: this.firstIndex(), lastIndex: this.lastIndex(), terms: this.termRuns.runCount(),
      },
      'log recovered',
    );
  }

  /** First index held; lastIndex() + 1 when empty. */
  firstIndex(): number {
    return this.segments[0]!.firstIndex;
  }

  /** Last index held; firstIndex() - 1 when empty (0 for a new log). */
  lastIndex(): number {
    const last = this.termRuns.lastIndex();
    assert(last === this.activeSegment().lastIndex, 'term runs and segments agree on the last index');
    return last;
  }

  /** Term of the entry at index for firstIndex()-1 <= index <= lastIndex() (0 for index 0); RangeError outside. */
  term(index: number): number {
    return this.termRuns.term(index);
  }

  durableIndex(): number {
    return this.durable;
  }

  stats(): LogStoreStats {
    return { ...this.counters };
  }

  /** Bytes the segments hold (headers and frames written; not the preallocated zeros after them). */
  logBytes(): number {
    let bytes = 0;
    for (const segment of this.segments) bytes += segment.endBytes;
    assert(bytes >= this.segments.length * SEGMENT_HEADER_BYTES, 'every segment holds at least its header');
    return bytes;
  }

  private activeSegment(): Segment {
    const active = this.segments[this.segments.length - 1];
    assert(active !== undefined, 'the log always has an active segment');
    return active;
  }

  private assertUsable(): void {
    assert(!this.closed, 'log store used after close');
    if (this.failure !== null) throw this.failure;
  }

  /** Everything but reads waits for an install to finish (the driver does not write meanwhile). */
  private assertWritable(): void {
    this.assertUsable();
    assert(this.install === null, 'log store written while an install runs');
  }

  /**
   * Appends contiguous entries with non-decreasing terms, written to the OS at once in one
   * write. entries[0].index <= lastIndex() + 1; when it is <= lastIndex() the suffix from
   * entries[0].index is truncated first (a Raft conflict). Durable only after flush().
   */
  append(entries: readonly Entry[]): void {
    this.assertWritable();
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index <= this.lastIndex() + 1, () => `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    if (first.index <= this.lastIndex()) this.truncateSuffix(first.index);
    const batchBytes = this.checkBatch(entries);
    if (this.activeSegment().entryCount() > 0 && this.activeSegment().endBytes + batchBytes > this.options.segmentBytes) this.roll();
    const active = this.activeSegment();
    const frameStart = active.endBytes;
    this.encodeBatch(entries, batchBytes);
    let offset = frameStart;
    for (const entry of entries) {
      const bytes = frameBytes(entry.data.byteLength);
      active.pushFrame(offset, bytes);
      this.termRuns.push(entry.index, entry.term);
      offset += bytes;
    }
    this.counters.appendedEntries += entries.length;
    this.counters.appendedBytes += batchBytes;
    if (this.pendingBytes >= PENDING_WRITE_BYTES) this.writePending();
    else if (this.pendingBytes > 0) this.scheduleWrite();
  }

  /** Encodes the batch behind the pending frames, or writes it at once when it is too large to buffer. */
  private encodeBatch(entries: readonly Entry[], batchBytes: number): void {
    if (this.pendingBytes + batchBytes > this.pending.length) this.writePending();
    if (batchBytes > MAX_PENDING_BUFFER_BYTES) {
      const own = Buffer.allocUnsafe(batchBytes);
      let offset = 0;
      for (const entry of entries) offset += encodeFrame(own, offset, entry);
      assert(offset === batchBytes, 'encoded exactly the bytes counted');
      writeFully(this.io, this.activeFd, own, batchBytes, this.activeWrittenEndBytes);
      this.activeWrittenEndBytes += batchBytes;
      return;
    }
    if (batchBytes > this.pending.length) this.pending = Buffer.allocUnsafe(Math.min(MAX_PENDING_BUFFER_BYTES, Math.max(batchBytes, this.pending.length * 2)));
    let offset = this.pendingBytes;
    for (const entry of entries) offset += encodeFrame(this.pending, offset, entry);
    assert(offset === this.pendingBytes + batchBytes, 'encoded exactly the bytes counted');
    this.pendingBytes = offset;
  }

  private scheduleWrite(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    queueMicrotask(this.writeAtTickEnd);
  }

  private readonly writeAtTickEnd = (): void => {
    this.writeScheduled = false;
    if (this.closed || this.failure !== null) return;
    try {
      this.writePending();
    } catch (error) {
      this.fail(error as Error);
    }
  };

  /** Hands the pending frames to the OS in one write. */
  private writePending(): void {
    if (this.pendingBytes === 0) return;
    const active = this.activeSegment();
    assert(this.activeWrittenEndBytes + this.pendingBytes === active.endBytes, 'pending frames end at the segment end');
    writeFully(this.io, this.activeFd, this.pending, this.pendingBytes, this.activeWrittenEndBytes);
    this.activeWrittenEndBytes = active.endBytes;
    this.pendingBytes = 0;
    const waiters = this.writeWaiters;
    this.writeWaiters = null;
    waiters?.resolve(this.lastIndex());
  }

  /** An I/O failure leaves the file in an unknown state: the store refuses all further work. */
  private fail(error: Error): void {
    this.failure = error;
    this.writeWaiters?.reject(error);
    this.writeWaiters = null;
    this.nextBatch?.reject(error);
    this.nextBatch = null;
  }

  /** Asserts the batch continues the log; returns its encoded size. */
  private checkBatch(entries: readonly Entry[]): number {
    let previousIndex = this.lastIndex();
    let previousTerm = this.termRuns.lastTerm();
    let bytes = 0;
    for (const entry of entries) {
      assert(entry.index === previousIndex + 1, () => `appended index ${entry.index} does not follow ${previousIndex}`);
      assert(entry.term >= previousTerm, () => `appended term ${entry.term} at index ${entry.index} is below ${previousTerm}`);
      previousIndex = entry.index;
      previousTerm = entry.term;
      bytes += frameBytes(entry.data.byteLength);
    }
    return bytes;
  }

  /**
   * Syncs the full active segment, starts the next one at lastIndex() + 1, then writes the
   * sealed segment's index — only now, so that it never names a frame that is not durable, and
   * a crash before it leaves a sealed segment without an index (scanned at open), never an
   * index beside the last segment.
   */
  private roll(): void {
    const full = this.activeSegment();
    assert(full.entryCount() > 0, 'never roll away from an empty segment');
    this.writePending();
    assert(full.dirtyEndBytes === full.endBytes, 'a segment is clean past its end when it rolls');
    // Synced before the next segment exists, so recovery may treat damage in any segment but
    // the last as corruption rather than a torn write.
    this.io.fdatasyncSync(this.activeFd);
    this.counters.fsyncs += 1;
    // Earlier segments were synced when they rolled, truncations sync before returning.
    this.durable = this.lastIndex();
    this.closeFdWhenIdle(this.activeFd);
    this.activeFd = this.createSegment(this.lastIndex() + 1, this.termRuns.lastTerm());
    sealSegmentIndex(full, this.termRuns, this.options.logger);
    this.options.logger?.debug({ fileName: this.activeSegment().fileName }, 'log rolled to a new segment');
  }

  /**
   * Creates the segment starting at firstIndex from a zero-filled file: header written and
   * synced before the rename, directory synced after, so a crash leaves either no segment
   * or a valid empty one. Returns its open file descriptor.
   */
  private createSegment(firstIndex: number, prevTerm: number): number {
    const useSpare = this.spareState === 'ready';
    const tmpPath = join(this.options.dir, useSpare ? SPARE_FILE : ROLL_FILE);
    if (useSpare) this.spareState = 'none';
    else createZeroFileSync(tmpPath, this.options.segmentBytes);
    const segment = new Segment(this.options.dir, firstIndex, prevTerm);
    const fd = this.io.openSync(tmpPath, 'r+');
    const header = encodeSegmentHeader({ firstIndex, prevTerm });
    writeFully(this.io, fd, header, header.length, 0);
    this.io.fdatasyncSync(fd);
    this.io.renameSync(tmpPath, segment.path);
    fsyncDir(this.options.dir);
    this.counters.fsyncs += 2;
    this.segments.push(segment);
    this.activeWrittenEndBytes = SEGMENT_HEADER_BYTES;
    // Started as early as possible: a roll that finds no spare ready zero-fills on the event loop.
    this.prepareSpare();
    return fd;
  }

  /** Zero-fills the next segment's file in the background, off the append path. */
  private prepareSpare(): void {
    if (this.spareState !== 'none' || this.closed || this.segments.length === 0) return;
    this.spareState = 'preparing';
    const path = join(this.options.dir, SPARE_FILE);
    this.sparePromise = writeZeroFile(path, this.options.segmentBytes).then(
      () => {
        if (this.spareState === 'preparing') this.spareState = 'ready';
      },
      (error: unknown) => {
        this.spareState = 'none';
        // A full disk is the operator's to fix, not a bug: its message, without a stack.
        this.options.logger?.warn({ err: isDiskFull(error) ? (error as Error).message : error, path }, 'could not preallocate the next log segment; a roll will do it inline');
      },
    );
  }

  /**
   * Entries [lo, hiExclusive), read from disk and verified (checksum, index, term), stopping
   * before maxBytes (counted as entryBytes) is passed but always returning at least one
   * entry when lo < hiExclusive. Requires firstIndex() <= lo and hiExclusive <= lastIndex() + 1.
   * Throws LmqError(LMQ_CORRUPT_DATA) when the disk returns damaged data.
   */
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    this.assertUsable();
    assert(lo >= this.firstIndex(), () => `read from ${lo} before the first index ${this.firstIndex()}`);
    assert(hiExclusive <= this.lastIndex() + 1, () => `read to ${hiExclusive - 1} past the last index ${this.lastIndex()}`);
    this.writePending();
    const result: Entry[] = [];
    let budgetBytes = maxBytes;
    let next = lo;
    let position = this.segmentPosition(lo);
    while (next < hiExclusive) {
      const segment = this.segments[position]!;
      const segmentHi = Math.min(hiExclusive, segment.lastIndex + 1);
      let end = next;
      while (end < segmentHi) {
        const bytes = segment.offsetOf(end + 1) - segment.offsetOf(end);
        if (bytes > budgetBytes && (result.length > 0 || end > next)) break;
        budgetBytes -= bytes;
        end += 1;
      }
      if (end === next) break;
      this.readFrames(segment, next, end, result);
      if (end < segmentHi) break;
      next = end;
      position += 1;
    }
    assert(lo >= hiExclusive || result.length > 0, 'a non-empty read returns at least one entry');
    return result;
  }

  /**
   * Where entries [lo, hi] lie on disk: per segment its file and the byte range of their frames,
   * oldest first, for a reader that streams them without this store (a snapshot package). The
   * frames are written to the files first. Requires firstIndex() <= lo <= hi <= lastIndex(); the
   * caller keeps the range from being deleted or truncated while it reads (committed entries,
   * retention held back).
   */
  frameRanges(lo: number, hi: number): Array<{ path: string; startBytes: number; endBytes: number }> {
    this.assertUsable();
    assert(lo >= this.firstIndex() && lo <= hi, () => `frame ranges [${lo}, ${hi}] from the first index ${this.firstIndex()}`);
    assert(hi <= this.lastIndex(), () => `frame ranges to ${hi} past the last index ${this.lastIndex()}`);
    this.writePending();
    const ranges: Array<{ path: string; startBytes: number; endBytes: number }> = [];
    for (let position = this.segmentPosition(lo); position < this.segments.length; position++) {
      const segment = this.segments[position]!;
      if (segment.firstIndex > hi) break;
      const from = Math.max(lo, segment.firstIndex);
      const to = Math.min(hi, segment.lastIndex);
      ranges.push({ path: segment.path, startBytes: segment.offsetOf(from), endBytes: segment.offsetOf(to + 1) });
    }
    assert(ranges.length > 0 && ranges.every((r) => r.endBytes > r.startBytes), 'every range holds frames');
    return ranges;
  }

  /** Position in this.segments of the segment holding index (binary search). */
  private segmentPosition(index: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.segments[mid]!.firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Reads frames [from, toExclusive) of one segment with one read, verifying each. */
  private readFrames(segment: Segment, from: number, toExclusive: number, out: Entry[]): void {
    const startBytes = segment.offsetOf(from);
    const length = segment.offsetOf(toExclusive) - startBytes;
    const buf = Buffer.allocUnsafe(length);
    const isActive = segment === this.activeSegment();
    const fd = isActive ? this.activeFd : this.io.openSync(segment.path, 'r');
    try {
      for (let done = 0; done < length; ) {
        const read = this.io.readSync(fd, buf, done, length - done, startBytes + done);
        if (read === 0) throw corruptSegmentError(segment.fileName, startBytes + done, 'file ends before the frames it held');
        done += read;
      }
    } finally {
      if (!isActive) this.io.closeSync(fd);
    }
    const header = newFrameHeader();
    let offset = 0;
    for (let index = from; index < toExclusive; index++) {
      const problem = decodeFrame(buf, offset, length, header);
      if (problem !== null) throw corruptSegmentError(segment.fileName, startBytes + offset, `${problem} reading index ${index}`);
      if (header.index !== index || header.term !== this.termRuns.term(index)) {
        throw corruptSegmentError(segment.fileName, startBytes + offset, `frame holds index ${header.index} term ${header.term}, expected index ${index} term ${this.termRuns.term(index)}`);
      }
      const dataStart = offset + FRAME_HEADER_BYTES;
      offset = dataStart + header.payloadBytes;
      out.push({ index, term: header.term, type: header.type, data: buf.subarray(dataStart, offset) });
    }
    assert(offset === length, 'read frames fill exactly the bytes read');
  }

  /**
   * Removes [fromIndex, lastIndex()] — whole later segments, then the frames in the last one,
   * zeroed and fdatasynced before returning so no removed frame can come back after a crash.
   * Asserts fromIndex > the commit floor.
   */
  truncateSuffix(fromIndex: number): void {
    this.assertWritable();
    assert(fromIndex > this.commitFloorIndex, () => `truncating from ${fromIndex} at or below the commit index ${this.commitFloorIndex}`);
    assert(fromIndex >= this.firstIndex(), () => `truncating from ${fromIndex} before the first index ${this.firstIndex()}`);
    assert(fromIndex <= this.lastIndex() + 1, () => `truncating from ${fromIndex} past the end ${this.lastIndex()}`);
    const removedEntries = this.lastIndex() - fromIndex + 1;
    if (removedEntries === 0) return;
    this.writePending();
    const target = this.segments[this.segmentPosition(fromIndex)]!;
    if (target !== this.activeSegment()) {
      // The sealed segment becomes the active one again: its index goes first (synced), so no
      // crash can leave an index naming frames that are being zeroed.
      target.frameOffsets();
      removeSegmentIndex(this.options.dir, target.firstIndex);
      fsyncDir(this.options.dir);
    }
    // Newest first, each unlink synced, so a crash midway leaves a prefix of the old log.
    while (this.activeSegment() !== target) {
      const dropped = this.segments.pop()!;
      this.closeFdWhenIdle(this.activeFd);
      this.removeSegmentFiles(dropped);
      this.activeFd = this.io.openSync(this.activeSegment().path, 'r+');
    }
    const active = this.activeSegment();
    active.truncateFrom(fromIndex);
    writeZeros(this.io, this.activeFd, active.endBytes, active.dirtyEndBytes);
    this.io.fdatasyncSync(this.activeFd);
    this.counters.fsyncs += 1;
    active.dirtyEndBytes = active.endBytes;
    this.activeWrittenEndBytes = active.endBytes;
    this.termRuns.truncateFrom(fromIndex);
    this.truncationEpoch += 1;
    this.durable = this.lastIndex();
    this.options.logger?.info({ fromIndex, removedEntries, lastIndex: this.lastIndex() }, 'log truncated a conflicting suffix');
  }

  /** The highest index known committed and durable (setCommitIndex): retention deletes nothing past it. */
  commitIndexFloor(): number {
    return this.commitFloorIndex;
  }

  /** Raises the floor below which truncation is forbidden; never lowers it. */
  setCommitIndex(index: number): void {
    assert(this.install === null, 'commit index set while an install runs');
    assert(index >= this.commitFloorIndex, () => `commit index moves back from ${this.commitFloorIndex} to ${index}`);
    assert(index <= this.lastIndex(), () => `commit index ${index} past the last index ${this.lastIndex()}`);
    this.commitFloorIndex = index;
  }

  /**
   * Resolves with the highest index that counts as persisted under the flush mode. sync:
   * after an fdatasync covering every entry appended before the call; concurrent callers
   * share one fdatasync (group commit), appends made during it wait for the next. async:
   * at once with lastIndex() (written to the OS; a timer fdatasyncs every flushIntervalMs).
   */
  flush(): Promise<number> {
    this.assertWritable();
    const lastIndex = this.lastIndex();
    if (this.options.flushMode === 'async') {
      if (this.pendingBytes === 0) return Promise.resolve(lastIndex);
      this.writeWaiters ??= newSyncBatch();
      return this.writeWaiters.promise;
    }
    if (!this.syncInFlight && this.durable >= lastIndex) return Promise.resolve(this.durable);
    if (this.syncInFlight && this.inFlightBatch !== null && this.inFlightEpoch === this.truncationEpoch && this.inFlightTarget >= lastIndex) {
      return this.inFlightBatch.promise;
    }
    this.nextBatch ??= newSyncBatch();
    this.scheduleSync();
    return this.nextBatch.promise;
  }

  /**
   * Starts the next fdatasync at the end of this tick rather than at once, so every writer
   * that flushes in the same tick shares it: starting on the first caller would sync one
   * entry and leave all the others to the next fdatasync, round after round.
   */
  private scheduleSync(): void {
    if (this.syncInFlight || this.syncScheduled) return;
    this.syncScheduled = true;
    queueMicrotask(this.startScheduledSync);
  }

  private readonly startScheduledSync = (): void => {
    this.syncScheduled = false;
    if (!this.syncInFlight && this.nextBatch !== null && this.failure === null && !this.closed) this.startSync();
  };

  private backgroundSync(): void {
    if (!this.syncInFlight && this.failure === null && this.durable < this.lastIndex()) this.startSync();
  }

  private startSync(): void {
    assert(!this.syncInFlight, 'one fdatasync in flight at a time');
    this.writePending();
    const batch = this.nextBatch;
    this.nextBatch = null;
    const target = this.lastIndex();
    const epoch = this.truncationEpoch;
    this.syncInFlight = true;
    this.inFlightTarget = target;
    this.inFlightEpoch = epoch;
    this.inFlightBatch = batch;
    this.io.fdatasync(this.activeFd, (error) => this.onSyncDone(error, target, epoch, batch));
  }

  private onSyncDone(error: Error | null, target: number, epoch: number, batch: SyncBatch | null): void {
    assert(this.syncInFlight, 'a sync completes only while in flight');
    this.syncInFlight = false;
    this.inFlightBatch = null;
    this.counters.fsyncs += 1;
    for (const fd of this.fdsToCloseAfterSync.splice(0)) this.io.closeSync(fd);
    if (error !== null) {
      // A failed fdatasync may have dropped dirty pages: nothing written since the last good
      // one can be trusted.
      batch?.reject(error);
      this.fail(error);
    } else {
      // A truncation since the start synced by itself; this sync must not credit the new tail.
      if (epoch === this.truncationEpoch) this.durable = Math.max(this.durable, target);
      assert(this.durable <= this.lastIndex(), () => `durable ${this.durable} past the last index ${this.lastIndex()}`);
      batch?.resolve(this.durable);
      if (this.nextBatch !== null) this.scheduleSync();
    }
    if (!this.syncInFlight) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private whenSyncIdle(): Promise<void> {
    if (!this.syncInFlight) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * InstallSnapshot: replaces the whole log with the window [firstIndex, lastIndex], whose
   * entries `batches` yields in order (dense from firstIndex; none for an empty window), with
   * term(firstIndex - 1) = prevTerm. The window is staged beside the log directory and swapped
   * in by renames (log-install.ts): a crash at any point opens as the complete old or the
   * complete new log. Once it resolves this store serves the new log — firstIndex(),
   * term(firstIndex - 1) = prevTerm, everything durable, the commit floor at lastIndex,
   * appends at lastIndex + 1. Holds one batch in memory at a time.
   *
   * While it runs only reads are allowed (entries, term, first/last/durable index, logBytes,
   * listSegments): they see the old log until the swap, which runs synchronously at the end,
   * just before the promise settles. append, flush, truncateSuffix, deleteBefore and
   * setCommitIndex assert. A failure before the swap (the batches throw or end short of
   * lastIndex, a write fails, close() is called) rejects with the old log in place and usable;
   * an I/O failure in the swap itself makes the store refuse further work (reopen settles it).
   * close() makes it give up at its next batch, so whoever feeds `batches` ends them before
   * waiting for close() (a source that never yields again would hold close() too).
   */
  async installWindow(window: LogWindow, batches: AsyncIterable<readonly Entry[]>): Promise<void> {
    this.assertWritable();
    const { firstIndex, prevTerm, lastIndex } = window;
    assert(Number.isSafeInteger(firstIndex) && firstIndex >= 1, () => `installed first index ${firstIndex}`);
    assert(Number.isSafeInteger(prevTerm) && prevTerm >= 0, () => `installed previous term ${prevTerm}`);
    assert(firstIndex > 1 || prevTerm === 0, () => `installed term(0) = ${prevTerm}, not 0`);
    assert(Number.isSafeInteger(lastIndex) && lastIndex >= firstIndex - 1, () => `installed window [${firstIndex}, ${lastIndex}]`);
    // Raft installs only a snapshot past its commit index: committed entries are never replaced.
    assert(lastIndex >= this.commitFloorIndex, () => `installed window ends at ${lastIndex}, below the commit index ${this.commitFloorIndex}`);
    this.install = this.stageAndSwap(window, batches);
    try {
      await this.install;
    } finally {
      this.install = null;
    }
  }

  private async stageAndSwap(window: LogWindow, batches: AsyncIterable<readonly Entry[]>): Promise<void> {
    const writer = WindowWriter.start(this.io, this.options.dir, this.options.segmentBytes, window);
    try {
      for await (const batch of batches) {
        this.assertInstallGoesOn();
        await writer.write(batch);
      }
      this.assertInstallGoesOn();
      await writer.finish();
      // The old log goes quiet: no background work of it may run while its directory moves.
      await this.sparePromise;
      while (this.syncInFlight || this.syncScheduled) await this.whenSyncIdle();
      this.assertInstallGoesOn();
    } catch (error) {
      writer.abort();
      throw error;
    }
    this.swapIn(writer, window);
  }

  private assertInstallGoesOn(): void {
    if (this.closing) throw new Error('log store closed during an install; the old log is kept');
    if (this.failure !== null) throw this.failure;
  }

  /** Steps 2–4 of log-install.ts, and the store switched to the staged segments, all in one synchronous run. */
  private swapIn(writer: WindowWriter, window: LogWindow): void {
    assert(!this.syncInFlight && !this.syncScheduled, 'no fdatasync of the old log in flight at the swap');
    assert(this.fdsToCloseAfterSync.length === 0, 'no descriptor waits for a sync at the swap');
    const dir = this.options.dir;
    const parent = dirname(dir);
    let newActiveFd: number;
    try {
      // Synced first so that lazy mode holds no write under a path the new log may reuse.
      this.writePending();
      this.io.fdatasyncSync(this.activeFd);
      this.io.renameSync(dir, asideDirOf(dir));
      fsyncDir(parent);
      this.io.renameSync(stagingDirOf(dir), dir);
      fsyncDir(parent);
      // Opened before the old one is closed, so a failure leaves activeFd a descriptor close() can close.
      newActiveFd = this.io.openSync(writer.segments[writer.segments.length - 1]!.path, 'r+');
    } catch (error) {
      this.fail(error as Error);
      throw error;
    }
    this.io.closeSync(this.activeFd);
    this.segments.splice(0, this.segments.length, ...writer.segments);
    this.termRuns = writer.termRuns;
    this.activeFd = newActiveFd;
    this.activeWrittenEndBytes = this.activeSegment().endBytes;
    this.commitFloorIndex = window.lastIndex;
    this.durable = window.lastIndex;
    this.truncationEpoch += 1;
    this.counters.fsyncs += writer.fsyncs + 3;
    // The spare was zero-filled in the old directory.
    this.spareState = 'none';
    try {
      removeDirThroughIo(this.io, asideDirOf(dir));
      fsyncDir(parent);
    } catch (error) {
      this.options.logger?.warn({ err: error, dir: asideDirOf(dir) }, 'could not remove the replaced log; the next open removes it');
    }
    this.prepareSpare();
    assert(this.firstIndex() === window.firstIndex, () => `installed log starts at ${this.firstIndex()}, not ${window.firstIndex}`);
    assert(this.lastIndex() === window.lastIndex, () => `installed log ends at ${this.lastIndex()}, not ${window.lastIndex}`);
    assert(this.term(window.firstIndex - 1) === window.prevTerm, 'installed log keeps the previous term');
    this.options.logger?.info({ ...window, segments: this.segments.length, logBytes: this.logBytes() }, 'log installed a window');
  }

  /** Every segment, oldest first, for a retention policy: one stat call per segment. */
  listSegments(): SegmentInfo[] {
    this.assertUsable();
    return this.segments.map((segment) => ({
      firstIndex: segment.firstIndex,
      lastIndex: segment.lastIndex,
      bytes: segment.endBytes,
      lastModifiedMs: statSync(segment.path).mtimeMs,
    }));
  }

  /**
   * Retention: deletes whole segments all of whose entries are < index (never the active
   * one). Only committed entries may go: asserts index - 1 <= the commit floor.
   */
  deleteBefore(index: number): void {
    this.assertWritable();
    assert(index - 1 <= this.commitFloorIndex, () => `deleting up to ${index - 1} past the commit index ${this.commitFloorIndex}`);
    let deleted = 0;
    while (this.segments.length > 1 && this.segments[1]!.firstIndex <= index) {
      this.removeSegmentFiles(this.segments.shift()!);
      this.termRuns.rebase(this.firstIndex() - 1);
      assert(this.termRuns.term(this.firstIndex() - 1) === this.segments[0]!.prevTerm, 'segment header prev term matches the log');
      deleted += 1;
    }
    if (deleted > 0) this.options.logger?.info({ before: index, deletedSegments: deleted, firstIndex: this.firstIndex() }, 'log retention deleted segments');
  }

  /** Waits for an install to give up and any fdatasync in flight, syncs everything, closes files and stops timers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    // It gives up at its next step, leaving the old log (or, past its swap, the new one).
    if (this.install !== null) await this.install.catch(() => undefined);
    if (this.closed) return;
    if (this.timer !== null) clearInterval(this.timer);
    // A scheduled sync starts in a microtask: awaiting lets it start, then waits for it.
    while (this.syncInFlight || this.syncScheduled) await this.whenSyncIdle();
    assert(this.nextBatch === null, 'every flush waiter was taken by a sync');
    this.closed = true;
    if (this.failure === null) {
      this.writePending();
      this.io.fdatasyncSync(this.activeFd);
      this.counters.fsyncs += 1;
      this.durable = this.lastIndex();
    }
    this.io.closeSync(this.activeFd);
    await this.sparePromise;
    rmSync(join(this.options.dir, SPARE_FILE), { force: true });
  }

  /** Unlinks a segment, then its index (a crash between leaves an orphan index, removed at open). */
  private removeSegmentFiles(segment: Segment): void {
    this.io.unlinkSync(segment.path);
    removeSegmentIndex(this.options.dir, segment.firstIndex);
    fsyncDir(this.options.dir);
  }

  private closeFdWhenIdle(fd: number): void {
    if (this.syncInFlight) this.fdsToCloseAfterSync.push(fd);
    else this.io.closeSync(fd);
  }
}

/** Writes `bytes` zeros to a new file at path and syncs it, without blocking the event loop. */
async function writeZeroFile(path: string, bytes: number): Promise<void> {
  const handle = await openFile(path, 'w');
  try {
    const chunk = zeros();
    for (let at = 0; at < bytes; at += chunk.length) {
      const length = Math.min(chunk.length, bytes - at);
      const { bytesWritten } = await handle.write(chunk, 0, length, at);
      assert(bytesWritten === length, () => `short zero-fill write ${bytesWritten} < ${length}`);
      if ((at + length) % SPARE_SYNC_EVERY_BYTES === 0) await handle.datasync();
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
