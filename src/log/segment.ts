// One log segment in memory (its index range, the byte offset of every frame) and the small
// synchronous file helpers the store uses on segment files. The offsets cost 4 B per entry
// held, which is what lets reads go straight to a frame without scanning. A sealed segment
// opened from its index file (segment-index.ts) loads them on its first read instead, so
// neither start time nor memory grows with segments nobody reads.
import { closeSync, fdatasyncSync, fsyncSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { type LogFileIo, osFileIo } from './file-io.js';
import { SEGMENT_HEADER_BYTES } from './frame.js';

export const SEGMENT_NAME_PATTERN = /^(\d{20})\.seg$/;
const INITIAL_OFFSET_CAPACITY = 1024;
const MAX_SEGMENT_FILE_BYTES = 2 ** 32 - 1;

export function segmentFileName(firstIndex: number): string {
  assert(Number.isSafeInteger(firstIndex) && firstIndex >= 1, () => `bad segment first index ${firstIndex}`);
  return `${String(firstIndex).padStart(20, '0')}.seg`;
}

export class Segment {
  /** Index of the last frame held; firstIndex - 1 when the segment is empty. */
  lastIndex: number;
  /** Byte offset just past the last frame. */
  endBytes = SEGMENT_HEADER_BYTES;
  /**
   * Every byte at or past this offset is zero (never written, or zeroed by a truncation or a
   * recovery). Only bytes in [endBytes, dirtyEndBytes) can be stale and must be zeroed before
   * they could be mistaken for frames.
   */
  dirtyEndBytes = SEGMENT_HEADER_BYTES;
  /** offsets[i] is the byte offset of frame firstIndex + i; null until loadOffsets supplies them. */
  private offsets: Uint32Array | null = new Uint32Array(INITIAL_OFFSET_CAPACITY);
  private loadOffsets: ((segment: Segment) => Uint32Array) | null = null;

  constructor(
    readonly dir: string,
    readonly firstIndex: number,
    /** Term of entry firstIndex - 1 (0 for index 0), from the segment header. */
    readonly prevTerm: number,
  ) {
    this.lastIndex = firstIndex - 1;
  }

  /**
   * A sealed segment known from its index: frames [firstIndex, lastIndex] ending at endBytes,
   * clean past it. `loadOffsets` returns one offset per entry when a frame is first looked up.
   */
  static sealed(dir: string, firstIndex: number, prevTerm: number, lastIndex: number, endBytes: number, loadOffsets: (segment: Segment) => Uint32Array): Segment {
    assert(lastIndex >= firstIndex, () => `sealed segment ${firstIndex} holds no entry (last ${lastIndex})`);
    assert(endBytes > SEGMENT_HEADER_BYTES, () => `sealed segment ${firstIndex} ends at byte ${endBytes}, inside its header`);
    assert(endBytes <= MAX_SEGMENT_FILE_BYTES, () => `sealed segment ${firstIndex} ends at byte ${endBytes}`);
    const segment = new Segment(dir, firstIndex, prevTerm);
    segment.lastIndex = lastIndex;
    segment.endBytes = endBytes;
    segment.dirtyEndBytes = endBytes;
    segment.offsets = null;
    segment.loadOffsets = loadOffsets;
    return segment;
  }

  get fileName(): string {
    return segmentFileName(this.firstIndex);
  }

  get path(): string {
    return join(this.dir, this.fileName);
  }

  entryCount(): number {
    return this.lastIndex - this.firstIndex + 1;
  }

  /** Records the next frame, written (or found) at `offset` with `bytes` bytes. */
  pushFrame(offset: number, bytes: number): void {
    assert(offset === this.endBytes, () => `frame at ${offset} does not follow the end ${this.endBytes} of ${this.fileName}`);
    assert(offset + bytes <= MAX_SEGMENT_FILE_BYTES, () => `segment ${this.fileName} would pass ${MAX_SEGMENT_FILE_BYTES} B`);
    let offsets = this.frameOffsetsHeld();
    const slot = this.entryCount();
    if (slot === offsets.length) {
      const grown = new Uint32Array(Math.max(INITIAL_OFFSET_CAPACITY, offsets.length * 2));
      grown.set(offsets);
      this.offsets = offsets = grown;
    }
    offsets[slot] = offset;
    this.lastIndex += 1;
    this.endBytes = offset + bytes;
    this.dirtyEndBytes = Math.max(this.dirtyEndBytes, this.endBytes);
  }

  /** Byte offset of the frame of `index`, or of the end when index = lastIndex + 1. */
  offsetOf(index: number): number {
    assert(index >= this.firstIndex, () => `index ${index} before segment ${this.fileName}`);
    assert(index <= this.lastIndex + 1, () => `index ${index} past segment ${this.fileName} (last ${this.lastIndex})`);
    return index === this.lastIndex + 1 ? this.endBytes : this.frameOffsetsHeld()[index - this.firstIndex]!;
  }

  /** The offset of every frame held, in index order (what the segment's index file stores). */
  frameOffsets(): Uint32Array {
    return this.frameOffsetsHeld().subarray(0, this.entryCount());
  }

  /** Whether the frame offsets are in memory (always, unless opened from an index and not yet read). */
  offsetsLoaded(): boolean {
    return this.offsets !== null;
  }

  private frameOffsetsHeld(): Uint32Array {
    if (this.offsets === null) {
      const loaded = this.loadOffsets!(this);
      assert(loaded.length === this.entryCount(), () => `${this.fileName}: ${loaded.length} offsets loaded for ${this.entryCount()} entries`);
      assert(loaded[0] === SEGMENT_HEADER_BYTES, () => `${this.fileName}: first loaded offset ${loaded[0]}`);
      assert(loaded[loaded.length - 1]! < this.endBytes, () => `${this.fileName}: last loaded offset past the end ${this.endBytes}`);
      this.offsets = loaded;
      this.loadOffsets = null;
    }
    return this.offsets;
  }

  /** Forgets frames >= fromIndex; the caller zeroes their bytes on disk. */
  truncateFrom(fromIndex: number): void {
    assert(this.offsets !== null, () => `truncating ${this.fileName} before its offsets are loaded`);
    const newEnd = this.offsetOf(fromIndex);
    this.lastIndex = fromIndex - 1;
    this.endBytes = newEnd;
    assert(this.entryCount() >= 0, 'segment entry count never negative');
  }
}

/** Writes all of buf[0, length) at `position`; a short write is retried, never ignored. */
export function writeFully(io: LogFileIo, fd: number, buf: Uint8Array, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const written = io.writeSync(fd, buf, done, length - done, position + done);
    assert(written > 0, () => `write returned ${written} at byte ${position + done}`);
    done += written;
  }
}

const ZERO_CHUNK_BYTES = 1024 * 1024;
let zeroChunk: Buffer | null = null;

export function zeros(): Buffer {
  zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
  return zeroChunk;
}

/** Overwrites [fromBytes, toBytes) with zeros (page cache; the caller syncs). */
export function writeZeros(io: LogFileIo, fd: number, fromBytes: number, toBytes: number): void {
  assert(fromBytes <= toBytes, () => `zeroing backwards ${fromBytes} > ${toBytes}`);
  const chunk = zeros();
  for (let at = fromBytes; at < toBytes; at += chunk.length) {
    writeFully(io, fd, chunk, Math.min(chunk.length, toBytes - at), at);
  }
}

/**
 * Creates (or replaces) a file of `bytes` zeros that are on disk, not a sparse hole. Real fs
 * calls in every storage mode: the file is synced before anyone can read it (file-io.ts).
 * A full disk (or quota) is LMQ_DISK_FULL naming the directory and the bytes needed, and the
 * partial file is removed so it holds no space.
 */
export function createZeroFileSync(path: string, bytes: number): void {
  try {
    const fd = openSync(path, 'w');
    try {
      writeZeros(osFileIo, fd, 0, bytes);
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (!isDiskFull(error)) throw error;
    rmSync(path, { force: true });
    throw diskFullError(dirname(path), bytes, error);
  }
}

/** ENOSPC (no space left) or EDQUOT (quota exceeded): the filesystem refused to allocate. */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function diskFullError(dir: string, neededBytes: number, cause: unknown): LmqError {
  return new LmqError(
    'LMQ_DISK_FULL',
    `no space left on the disk of ${dir}: a new log segment needs ${neededBytes} bytes; free space on that disk (or lower log.segmentBytes or retention.maxBytes) and start the node again`,
    { dir, neededBytes },
    { cause },
  );
}

/** Makes a directory's entries (created, renamed, unlinked files) durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The error a user gets for damaged log data: which file, which byte, what to do. */
export function corruptSegmentError(fileName: string, offsetBytes: number, reason: string): LmqError {
  return new LmqError(
    'LMQ_CORRUPT_DATA',
    `log segment ${fileName} is corrupt at byte ${offsetBytes} (${reason}); this node's log cannot be trusted: stop it and restore its data directory from a healthy replica`,
    { file: fileName, offsetBytes, reason },
  );
}
