// Recovery of segment files at open: validates every frame, rebuilds the in-memory index and
// term runs, and decides where the log ends — cutting a torn tail, refusing corruption. A
// sealed segment with a usable index file (segment-index.ts) is not scanned: its frames were
// checked when written and are checked again by every read (log-store.ts readFrames), so a
// flipped bit in a sealed segment is refused when it is read rather than at open.
//
// Why the rules below are sound: every byte past the logical end of the log is kept zero on
// disk (segments are preallocated with zeros; a truncation zeroes the removed frames and
// fdatasyncs before returning; recovery zeroes a cut tail). A segment is fdatasynced before
// the next one is created, so only the last segment can hold unsynced writes. A crash can
// therefore leave, after the last good frame of the last segment: zeros, a partly written
// frame, or (if the disk persisted pages out of order) a later frame behind a hole of zeros.
// Stale frames of a truncated suffix cannot survive durably — but if they did (a crash while
// zeroing), they do not continue the log and are cut, never resurrected.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../util/assert.js';
import type { LogFileIo } from './file-io.js';
import {
  FRAME_HEADER_BYTES,
  FRAME_MAGIC_BYTES,
  type FrameProblem,
  SEGMENT_HEADER_BYTES,
  type SegmentHeader,
  decodeFrame,
  decodeSegmentHeader,
  frameBytes,
  newFrameHeader,
} from './frame.js';
import { type SegmentIndexHead, readSegmentIndexHead, readSegmentIndexOffsets, removeSegmentIndex, sealSegmentIndex } from './segment-index.js';
import { SEGMENT_NAME_PATTERN, Segment, corruptSegmentError, zeros } from './segment.js';
import { TermRuns } from './term-runs.js';

/** How the frames of a segment end. `torn`: bytes from offsetBytes on are not log data and are cut. */
export type ScanOutcome = { kind: 'clean' } | { kind: 'torn'; offsetBytes: number; reason: string };

/** Sector size of the disks we run on: the unit a write can be torn at. */
const SECTOR_BYTES = 512;

/**
 * Reads the frames of one segment file (buf holds the whole file) into `segment` and
 * `termRuns`. A frame is accepted when its checksum holds and it continues the log: index =
 * previous + 1 and term >= previous term. Scanning stops at the first position that is not an
 * accepted frame, call it X. Then, with "a later frame" meaning a checksummed frame after X
 * whose index is past the last accepted one and whose term is not below it:
 *   - nothing but zeros from X to the end of the file: clean end;
 *   - no later frame: a torn tail (a short frame, a bad checksum on the last frame, garbage or
 *     a stale frame after the last good one) — cut at X if this is the last segment;
 *   - a later frame, and an aligned all-zero sector lies between X and it: a hole left by a
 *     write that never reached the disk — a torn tail too, cut at X, last segment only;
 *   - a later frame without such a hole: corruption (a damaged frame in the middle of data);
 *   - anything but a clean end in a segment that is not the last: corruption, since that
 *     segment was synced before the next one was created.
 * Corruption throws LmqError(LMQ_CORRUPT_DATA) naming the file and byte offset of X.
 */
export function scanSegmentFrames(buf: Buffer, segment: Segment, termRuns: TermRuns, isLastSegment: boolean): ScanOutcome {
  assert(termRuns.lastIndex() === segment.firstIndex - 1, 'term runs end just before the segment');
  assert(segment.entryCount() === 0, 'scan starts on an empty segment');
  const header = newFrameHeader();
  let offset = segment.endBytes;
  for (;;) {
    const problem = decodeFrame(buf, offset, buf.length, header);
    if (problem === null && header.index === segment.lastIndex + 1 && header.term >= termRuns.lastTerm()) {
      const bytes = frameBytes(header.payloadBytes);
      segment.pushFrame(offset, bytes);
      termRuns.push(header.index, header.term);
      offset += bytes;
      continue;
    }
    const reason =
      problem ?? `stale frame of index ${header.index} term ${header.term} after index ${segment.lastIndex} term ${termRuns.lastTerm()}`;
    return classifyStop(buf, offset, problem, reason, segment, termRuns.lastTerm(), isLastSegment);
  }
}

function classifyStop(
  buf: Buffer,
  offset: number,
  problem: FrameProblem | null,
  reason: string,
  segment: Segment,
  lastTerm: number,
  isLastSegment: boolean,
): ScanOutcome {
  if (problem === 'eof') return { kind: 'clean' };
  const later = findLaterFrame(buf, offset + 1, segment.lastIndex, lastTerm);
  if (later === -1) {
    if (problem === 'zero' && nonZeroEndBytes(buf, offset) === offset) return { kind: 'clean' };
    if (!isLastSegment) throw corruptSegmentError(segment.fileName, offset, `${reason} in a segment that is not the last`);
    return { kind: 'torn', offsetBytes: offset, reason };
  }
  if (isLastSegment && hasZeroSector(buf, offset, later)) {
    return { kind: 'torn', offsetBytes: offset, reason: `${reason}; unwritten sectors before a later frame at byte ${later}` };
  }
  throw corruptSegmentError(segment.fileName, offset, `${reason}, followed by a valid frame at byte ${later}`);
}

/** Offset of the first checksummed frame at or after `from` that could continue the log, or -1. */
function findLaterFrame(buf: Buffer, from: number, lastIndex: number, lastTerm: number): number {
  const header = newFrameHeader();
  const magicOffset = 4;
  let at = buf.indexOf(FRAME_MAGIC_BYTES, from + magicOffset);
  while (at !== -1) {
    const start = at - magicOffset;
    if (decodeFrame(buf, start, buf.length, header) === null && header.index > lastIndex && header.term >= lastTerm) return start;
    at = buf.indexOf(FRAME_MAGIC_BYTES, at + 1);
  }
  return -1;
}

function isZeroRange(buf: Buffer, from: number, to: number): boolean {
  const chunk = zeros();
  for (let at = from; at < to; at += chunk.length) {
    const end = Math.min(to, at + chunk.length);
    if (buf.compare(chunk, 0, end - at, at, end) !== 0) return false;
  }
  return true;
}

function hasZeroSector(buf: Buffer, from: number, to: number): boolean {
  for (let sector = Math.ceil(from / SECTOR_BYTES) * SECTOR_BYTES; sector + SECTOR_BYTES <= to; sector += SECTOR_BYTES) {
    if (isZeroRange(buf, sector, sector + SECTOR_BYTES)) return true;
  }
  return false;
}

/** End of the last non-zero byte at or after `from` (= from when all zero), rounded up to 4 KiB. */
export function nonZeroEndBytes(buf: Buffer, from: number): number {
  const blockBytes = 4096;
  let end = from;
  for (let at = from; at < buf.length; at += blockBytes) {
    const blockEnd = Math.min(buf.length, at + blockBytes);
    if (!isZeroRange(buf, at, blockEnd)) end = blockEnd;
  }
  return end;
}

/** What recovery found: the segments in order, their term runs, and any tail it cut. */
export interface RecoveredLog {
  segments: Segment[];
  termRuns: TermRuns;
  /** Set when the last segment ended in a torn tail (already left out of `segments`). */
  tornTail: { fileName: string; offsetBytes: number; reason: string } | null;
  /** Sealed segments opened from their index file, their frames left unread. */
  indexedSegments: number;
  /** Segments whose frames were read: the last one, and sealed ones whose index was unusable. */
  scannedSegments: number;
}

/**
 * Opens every segment file named in `fileNames` (sorted by first index), checking each header
 * and the continuity of index and term across files. A sealed segment (any but the last)
 * with a usable index (see checkIndexAgainstSegment) is taken from it; the others are
 * scanned frame by frame, and a sealed one scanned gets its index rewritten. Only the last
 * segment may end in a torn tail; its stale bytes are reported through dirtyEndBytes for the
 * store to zero. Throws LmqError(LMQ_CORRUPT_DATA) on corruption.
 */
export function recoverSegments(io: LogFileIo, dir: string, fileNames: readonly string[], logger?: Logger): RecoveredLog {
  assert(fileNames.length > 0, 'recovery needs at least one segment');
  const segments: Segment[] = [];
  let termRuns: TermRuns | null = null;
  let tornTail: RecoveredLog['tornTail'] = null;
  let indexedSegments = 0;
  for (const [position, fileName] of fileNames.entries()) {
    const isLast = position === fileNames.length - 1;
    const firstIndex = segmentFirstIndex(fileName);
    let indexProblem: string | null = null;
    if (!isLast) {
      const head = readSegmentIndexHead(dir, firstIndex);
      indexProblem = typeof head === 'string' ? head : checkIndexAgainstSegment(io, dir, fileName, head, termRuns);
      if (typeof head !== 'string' && indexProblem === null) {
        termRuns ??= new TermRuns(head.firstIndex - 1, head.prevTerm);
        termRuns.pushRuns(head.runs, head.lastIndex);
        segments.push(Segment.sealed(dir, firstIndex, head.prevTerm, head.lastIndex, head.endBytes, (segment) => loadOffsets(io, segment, head, logger)));
        indexedSegments += 1;
        continue;
      }
    }
    const buf = io.readFileSync(join(dir, fileName));
    const header = checkSegmentHeader(buf, fileName, termRuns);
    termRuns ??= new TermRuns(header.firstIndex - 1, header.prevTerm);
    const segment = new Segment(dir, header.firstIndex, header.prevTerm);
    const outcome = scanSegmentFrames(buf, segment, termRuns, isLast);
    if (isLast) {
      segment.dirtyEndBytes = Math.max(segment.endBytes, nonZeroEndBytes(buf, segment.endBytes));
      if (outcome.kind === 'torn') tornTail = { fileName, offsetBytes: outcome.offsetBytes, reason: outcome.reason };
      // An index of the last segment (left by a crash in a truncation) would go stale with its next append.
      removeSegmentIndex(dir, firstIndex);
    } else {
      // Logged once here and rebuilt: the next open finds it.
      const level = indexProblem === 'missing' ? 'info' : 'warn';
      logger?.[level]({ fileName, reason: indexProblem }, 'segment index unusable; scanned the segment and rebuilt its index');
      sealSegmentIndex(segment, termRuns, logger);
    }
    segments.push(segment);
  }
  assert(termRuns !== null, 'term runs built from the first segment');
  return { segments, termRuns, tornTail, indexedSegments, scannedSegments: fileNames.length - indexedSegments };
}

function segmentFirstIndex(fileName: string): number {
  const nameMatch = SEGMENT_NAME_PATTERN.exec(fileName);
  assert(nameMatch !== null, () => `recovery given a non-segment file ${fileName}`);
  return Number(nameMatch[1]);
}

/**
 * Whether a sealed segment's index describes the segment as it is, reading only two small
 * ranges of it: the segment header must be valid, continue the log and match the index's
 * first index and previous term; the frame at the index's last offset must be valid, hold its
 * last index and term, and end at its end, followed by zeros. A segment is written only at its
 * end and its index only once it is sealed, so this is what a stale index (a crash between a
 * truncation and the removal of its index) would fail. Returns null when usable, else why not.
 * A damaged segment header throws LMQ_CORRUPT_DATA, as a scan would.
 */
function checkIndexAgainstSegment(io: LogFileIo, dir: string, fileName: string, head: SegmentIndexHead, previous: TermRuns | null): string | null {
  const lastFrameBytes = head.endBytes - head.lastFrameOffset;
  const headerBuf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  const frameBuf = Buffer.alloc(lastFrameBytes + FRAME_HEADER_BYTES);
  const fd = io.openSync(join(dir, fileName), 'r');
  let frameRead: number;
  try {
    readUpTo(io, fd, headerBuf, 0);
    frameRead = readUpTo(io, fd, frameBuf, head.lastFrameOffset);
  } finally {
    io.closeSync(fd);
  }
  const header = checkSegmentHeader(headerBuf, fileName, previous);
  if (header.prevTerm !== head.prevTerm) return `index says previous term ${head.prevTerm}, the segment header ${header.prevTerm}`;
  if (frameRead < lastFrameBytes) return `segment file ends before the last frame the index names`;
  const frame = newFrameHeader();
  const problem = decodeFrame(frameBuf, 0, lastFrameBytes, frame);
  const lastTerm = head.runs[head.runs.length - 1]!.term;
  if (problem !== null) return `${problem} at the last frame the index names (byte ${head.lastFrameOffset})`;
  if (frame.index !== head.lastIndex || frame.term !== lastTerm || frameBytes(frame.payloadBytes) !== lastFrameBytes) {
    return `the last frame holds index ${frame.index} term ${frame.term}, the index says index ${head.lastIndex} term ${lastTerm}`;
  }
  if (!isZeroRange(frameBuf, lastFrameBytes, frameRead)) return 'bytes follow the last frame the index names';
  return null;
}

/** Reads into all of buf from position, or up to the end of the file; returns the bytes read. */
function readUpTo(io: LogFileIo, fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const read = io.readSync(fd, buf, done, buf.length - done, position + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}

/**
 * The frame offsets of a segment opened from its index, read on its first lookup. When the
 * index has gone bad since open, the segment is scanned instead (its index rewritten); a
 * segment that no longer holds what its index said is corruption.
 */
function loadOffsets(io: LogFileIo, segment: Segment, head: SegmentIndexHead, logger: Logger | undefined): Uint32Array {
  const offsets = readSegmentIndexOffsets(segment.dir, head);
  if (typeof offsets !== 'string') return offsets;
  logger?.warn({ fileName: segment.fileName, reason: offsets }, 'segment index offsets unusable; scanning the segment');
  const scanned = new Segment(segment.dir, segment.firstIndex, segment.prevTerm);
  const termRuns = new TermRuns(segment.firstIndex - 1, segment.prevTerm);
  scanSegmentFrames(io.readFileSync(segment.path), scanned, termRuns, false);
  if (scanned.lastIndex !== segment.lastIndex || scanned.endBytes !== segment.endBytes) {
    throw corruptSegmentError(segment.fileName, scanned.endBytes, `the segment holds entries to ${scanned.lastIndex}, its index said ${segment.lastIndex}`);
  }
  sealSegmentIndex(scanned, termRuns, logger);
  return scanned.frameOffsets();
}
function checkSegmentHeader(buf: Buffer, fileName: string, previous: TermRuns | null): SegmentHeader {
  const header = decodeSegmentHeader(buf);
  if (typeof header === 'string') throw corruptSegmentError(fileName, 0, header);
  const nameIndex = segmentFirstIndex(fileName);
  if (header.firstIndex !== nameIndex) {
    throw corruptSegmentError(fileName, 0, `header says first index ${header.firstIndex}, the file name says ${nameIndex}`);
  }
  if (previous !== null && header.firstIndex !== previous.lastIndex() + 1) {
    throw corruptSegmentError(fileName, 0, `segment starts at index ${header.firstIndex} but the previous segment ends at ${previous.lastIndex()}`);
  }
  if (previous !== null && header.prevTerm !== previous.lastTerm()) {
    throw corruptSegmentError(fileName, 0, `header says the previous term is ${header.prevTerm} but the previous segment ends in term ${previous.lastTerm()}`);
  }
  return header;
}
