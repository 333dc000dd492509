// Replacing the whole log with a leader's retained window (InstallSnapshot), crash-safely.
// The new log is written into a staging directory beside the log directory and swapped in by
// renames in the parent, so no crash can leave a mix of old and new segments:
//
//   1. <dir>.install/ created fresh (parent fsynced); segments written into it, each sealed one
//      fdatasynced and given its .idx (segment-index.ts), the last one zero-filled to
//      segmentBytes and fdatasynced, the staging directory fsynced. Staging is now complete.
//   2. rename <dir> -> <dir>.old, fsync the parent.
//   3. rename <dir>.install -> <dir>, fsync the parent. THE DECISION: from here the new log is
//      the log.
//   4. unlink every file of <dir>.old, remove it, fsync the parent.
//
// settleInterruptedInstall (at open) reads which step a crash stopped in from which of the
// three directories exist: no <dir> but <dir>.old (between 2 and 3) puts the old log back;
// then any <dir>.install is an unfinished or undecided staging and any <dir>.old a replaced
// log: both are deleted. Every state therefore opens as the complete old or the complete new
// log. A staging directory is only ever renamed once complete (step 3 needs step 2, which
// runs only after step 1's syncs), which is why the rollback at open never needs to check it.
//
// Memory: one encoded batch at a time, plus the frame offsets (4 B per entry) every held
// segment carries anyway (segment.ts).
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Entry } from '../raft/types.js';
import { assert } from '../util/assert.js';
import type { LogFileIo } from './file-io.js';
import { SEGMENT_HEADER_BYTES, encodeFrame, encodeSegmentHeader, frameBytes } from './frame.js';
import { Segment, fsyncDir, writeFully, zeros } from './segment.js';
import { encodeSegmentIndex, writeSegmentIndex } from './segment-index.js';
import { TermRuns } from './term-runs.js';

/** The window an install puts in place: entries [firstIndex, lastIndex], term(firstIndex - 1) = prevTerm. */
export interface LogWindow {
  readonly firstIndex: number;
  readonly prevTerm: number;
  /** firstIndex - 1 for an empty window (the log then starts at firstIndex). */
  readonly lastIndex: number;
}

export function stagingDirOf(dir: string): string {
  return `${dir}.install`;
}

export function asideDirOf(dir: string): string {
  return `${dir}.old`;
}

/** Brings a log directory left by a crash in an install to the old or the new log (see the header). */
export function settleInterruptedInstall(io: LogFileIo, dir: string, logger: Logger | undefined): void {
  const parent = dirname(dir);
  const staging = stagingDirOf(dir);
  const aside = asideDirOf(dir);
  if (!existsSync(dir) && existsSync(aside)) {
    io.renameSync(aside, dir);
    fsyncDir(parent);
    logger?.info({ dir }, 'log install interrupted before its swap: the old log is kept');
  }
  let removed = false;
  if (existsSync(staging)) {
    rmSync(staging, { recursive: true, force: true });
    removed = true;
    logger?.info({ dir: staging }, 'removed an unfinished log install');
  }
  if (existsSync(aside)) {
    rmSync(aside, { recursive: true, force: true });
    removed = true;
    logger?.info({ dir: aside }, 'removed the log an install replaced');
  }
  if (removed) fsyncDir(parent);
  assert(!existsSync(staging) && !existsSync(aside), 'no install leftovers after settling');
}

/** Unlinks each file of a directory through the port (so lazy mode forgets them), then the directory. */
export function removeDirThroughIo(io: LogFileIo, dir: string): void {
  for (const name of readdirSync(dir)) io.unlinkSync(join(dir, name));
  rmdirSync(dir);
}

function fdatasyncAsync(io: LogFileIo, fd: number): Promise<void> {
  return new Promise((resolve, reject) => io.fdatasync(fd, (error) => (error === null ? resolve() : reject(error))));
}

/** Writes zeros over [fromBytes, toBytes) of an existing file without blocking the event loop (the caller syncs). */
async function zeroFillAsync(path: string, fromBytes: number, toBytes: number): Promise<void> {
  const handle = await openFile(path, 'r+');
  try {
    const chunk = zeros();
    for (let at = fromBytes; at < toBytes; ) {
      const { bytesWritten } = await handle.write(chunk, 0, Math.min(chunk.length, toBytes - at), at);
      assert(bytesWritten > 0, () => `zero-fill wrote ${bytesWritten} B at byte ${at}`);
      at += bytesWritten;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Writes a window into the staging directory (step 1 of the header). Segments are named and
 * kept in memory with the final directory, so once the staging is renamed into place they are
 * exactly the store's segments; the files are written at the same names under the staging path.
 */
export class WindowWriter {
  readonly segments: Segment[] = [];
  readonly termRuns: TermRuns;
  fsyncs = 0;
  private fd: number | null = null;
  private readonly createdPaths: string[] = [];

  private constructor(
    private readonly io: LogFileIo,
    private readonly finalDir: string,
    private readonly segmentBytes: number,
    private readonly window: LogWindow,
  ) {
    this.termRuns = new TermRuns(window.firstIndex - 1, window.prevTerm);
  }

  get stagingDir(): string {
    return stagingDirOf(this.finalDir);
  }

  /** Creates a fresh staging directory (durably) holding the first, empty segment. */
  static start(io: LogFileIo, finalDir: string, segmentBytes: number, window: LogWindow): WindowWriter {
    const writer = new WindowWriter(io, finalDir, segmentBytes, window);
    rmSync(writer.stagingDir, { recursive: true, force: true });
    mkdirSync(writer.stagingDir);
    fsyncDir(dirname(finalDir));
    writer.startSegment(window.firstIndex, window.prevTerm);
    return writer;
  }

  private active(): Segment {
    const active = this.segments[this.segments.length - 1];
    assert(active !== undefined, 'a staged log always has a segment');
    return active;
  }

  private stagingPath(segment: Segment): string {
    return join(this.stagingDir, segment.fileName);
  }

  private startSegment(firstIndex: number, prevTerm: number): void {
    assert(this.fd === null, 'the previous staged segment is closed before the next starts');
    const segment = new Segment(this.finalDir, firstIndex, prevTerm);
    const path = this.stagingPath(segment);
    // Created empty with a real call (the port opens existing files only); frames go through the port.
    closeSync(openSync(path, 'wx'));
    this.createdPaths.push(path);
    this.fd = this.io.openSync(path, 'r+');
    const header = encodeSegmentHeader({ firstIndex, prevTerm });
    writeFully(this.io, this.fd, header, header.length, 0);
    this.segments.push(segment);
  }

  /** Appends a batch that continues the staged window, rolling to new segments as the store does. */
  async write(batch: readonly Entry[]): Promise<void> {
    const bytes = this.checkBatch(batch);
    const buf = Buffer.allocUnsafe(bytes);
    let encoded = 0;
    for (const entry of batch) encoded += encodeFrame(buf, encoded, entry);
    assert(encoded === bytes, 'encoded exactly the bytes counted');
    let start = 0;
    let startBytes = 0;
    while (start < batch.length) {
      const active = this.active();
      let end = start;
      let pieceBytes = 0;
      while (end < batch.length) {
        const entryBytes = frameBytes(batch[end]!.data.byteLength);
        // An entry larger than a segment gets an empty segment of its own, as append() does.
        if ((active.entryCount() > 0 || end > start) && active.endBytes + pieceBytes + entryBytes > this.segmentBytes) break;
        pieceBytes += entryBytes;
        end += 1;
      }
      if (end === start) {
        await this.roll();
        continue;
      }
      writeFully(this.io, this.fd!, buf.subarray(startBytes), pieceBytes, active.endBytes);
      for (let i = start; i < end; i++) {
        active.pushFrame(active.endBytes, frameBytes(batch[i]!.data.byteLength));
        this.termRuns.push(batch[i]!.index, batch[i]!.term);
      }
      start = end;
      startBytes += pieceBytes;
    }
    assert(startBytes === bytes, 'every encoded byte was written');
  }

  /** Asserts the batch continues the staged window within its last index; returns its encoded size. */
  private checkBatch(batch: readonly Entry[]): number {
    let previousIndex = this.termRuns.lastIndex();
    let previousTerm = this.termRuns.lastTerm();
    let bytes = 0;
    for (const entry of batch) {
      assert(entry.index === previousIndex + 1, () => `installed index ${entry.index} does not follow ${previousIndex}`);
      assert(entry.term >= previousTerm, () => `installed term ${entry.term} at index ${entry.index} is below ${previousTerm}`);
      assert(entry.index <= this.window.lastIndex, () => `installed index ${entry.index} past the window's last index ${this.window.lastIndex}`);
      previousIndex = entry.index;
      previousTerm = entry.term;
      bytes += frameBytes(entry.data.byteLength);
    }
    return bytes;
  }

  /** Seals the full staged segment (fdatasync, then its index) and starts the next. */
  private async roll(): Promise<void> {
    const full = this.active();
    assert(full.entryCount() > 0, 'never roll away from an empty staged segment');
    await fdatasyncAsync(this.io, this.fd!);
    this.fsyncs += 1;
    this.io.closeSync(this.fd!);
    this.fd = null;
    const content = encodeSegmentIndex(
      { firstIndex: full.firstIndex, prevTerm: full.prevTerm, lastIndex: full.lastIndex, endBytes: full.endBytes, runs: this.termRuns.runsIn(full.firstIndex, full.lastIndex) },
      full.frameOffsets(),
    );
    writeSegmentIndex(this.stagingDir, content, full.firstIndex);
    this.startSegment(full.lastIndex + 1, this.termRuns.lastTerm());
  }

  /**
   * Completes the staging: the window must have ended at its last index; the last segment is
   * zero-filled to segmentBytes (preallocated, as every active segment is) and everything is
   * durable once this resolves.
   */
  async finish(): Promise<void> {
    assert(this.termRuns.lastIndex() === this.window.lastIndex, () => `the window's entries end at ${this.termRuns.lastIndex()}, not at ${this.window.lastIndex}`);
    const active = this.active();
    if (active.endBytes < this.segmentBytes) await zeroFillAsync(this.stagingPath(active), active.endBytes, this.segmentBytes);
    await fdatasyncAsync(this.io, this.fd!);
    this.fsyncs += 1;
    this.io.closeSync(this.fd!);
    this.fd = null;
    fsyncDir(this.stagingDir);
    this.fsyncs += 1;
    assert(active.dirtyEndBytes === active.endBytes, 'the staged active segment is clean past its end');
    assert(active.endBytes >= SEGMENT_HEADER_BYTES, 'the staged active segment holds its header');
  }

  /** Removes the staging after a failure; unsynced staged bytes are dropped through the port. */
  abort(): void {
    if (this.fd !== null) this.io.closeSync(this.fd);
    this.fd = null;
    for (const path of this.createdPaths.splice(0)) if (existsSync(path)) this.io.unlinkSync(path);
    rmSync(this.stagingDir, { recursive: true, force: true });
  }
}
