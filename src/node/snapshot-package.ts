// A snapshot package as a process streams it: the broker's snapshot and the retained log up to
// it, read from their files on the leader and staged in a file on the follower — never whole in
// memory, whatever the retained log's size (process-snapshots.ts wires both to the transfer).
//
//   [header, PACKAGE_HEADER_BYTES][snapshot payload, payloadBytes][log frames, logBytes]
// Header, little endian: 0 u32 PACKAGE_MAGIC  4 u32 PACKAGE_FORMAT_VERSION  8 u64 index
//   16 u64 term  24 u64 retainedFromIndex  32 u64 prevTerm (of retainedFromIndex − 1)
//   40 u64 payloadBytes  48 u64 logBytes  56 u64 zero
// The snapshot payload is the bytes of the leader's .snap file between its metadata and footer;
// the log frames are the leader's segment frames of [retainedFromIndex, index] as on its disk
// (frame.ts: a CRC each), so both are copied, not re-encoded.
//
// The whole package is named by its SHA-256, which the leader computes once by reading it
// through (PACKAGE_READ_BYTES at a time) before the first chunk goes out, and the follower
// computes while it stages; the follower installs nothing before the two agree. Memory: the
// leader holds one read at a time (a chunk, or PACKAGE_READ_BYTES while hashing) plus what the
// transfer keeps in flight; the follower one chunk while staging and one INSTALL_READ_BYTES
// block (or one frame, when larger) while installing.
import { createHash } from 'node:crypto';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FRAME_HEADER_BYTES, decodeFrame, newFrameHeader, readU64, writeU64 } from '../log/frame.js';
import { SNAPSHOT_HEADER_BYTES } from '../log/snapshot-format.js';
import type { SnapshotReader } from '../log/snapshot-store.js';
import type { Entry, SnapshotMeta } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export const PACKAGE_HEADER_BYTES = 64;
/** "LQPK" read as a little-endian u32. */
const PACKAGE_MAGIC = 0x4b50514c;
const PACKAGE_FORMAT_VERSION = 1;
/** Bytes per read while the leader hashes a package: its memory bound besides the transfer's window. */
export const PACKAGE_READ_BYTES = 1024 * 1024;
/** Bytes of staged log read per installed batch (a larger frame is read whole). */
const INSTALL_READ_BYTES = 4 * 1024 * 1024;

export interface PackageHeader {
  readonly index: number;
  readonly term: number;
  readonly retainedFromIndex: number;
  readonly prevTerm: number;
  readonly payloadBytes: number;
  readonly logBytes: number;
}

export function encodePackageHeader(h: PackageHeader): Buffer {
  assert(h.index >= 1 && h.term >= 1, () => `package of snapshot ${h.index}@${h.term}`);
  assert(h.retainedFromIndex >= 1 && h.retainedFromIndex <= h.index + 1, () => `package log from ${h.retainedFromIndex} for snapshot ${h.index}`);
  const buf = Buffer.alloc(PACKAGE_HEADER_BYTES);
  buf.writeUInt32LE(PACKAGE_MAGIC, 0);
  buf.writeUInt32LE(PACKAGE_FORMAT_VERSION, 4);
  writeU64(buf, 8, h.index);
  writeU64(buf, 16, h.term);
  writeU64(buf, 24, h.retainedFromIndex);
  writeU64(buf, 32, h.prevTerm);
  writeU64(buf, 40, h.payloadBytes);
  writeU64(buf, 48, h.logBytes);
  return buf;
}

/** The header of a staged package (its digest already checked), or why it is not one. */
export function decodePackageHeader(buf: Buffer, totalBytes: number): PackageHeader | string {
  if (buf.length < PACKAGE_HEADER_BYTES) return `package of ${buf.length} B has no header`;
  if (buf.readUInt32LE(0) !== PACKAGE_MAGIC) return 'bad magic: not a snapshot package';
  const version = buf.readUInt32LE(4);
  if (version !== PACKAGE_FORMAT_VERSION) return `package format version ${version}; this build reads version ${PACKAGE_FORMAT_VERSION}`;
  const [index, term, retainedFromIndex, prevTerm, payloadBytes, logBytes] = [8, 16, 24, 32, 40, 48].map((at) => readU64(buf, at)) as [number, number, number, number, number, number];
  if (index < 1 || term < 1 || retainedFromIndex < 1 || retainedFromIndex > index + 1 || prevTerm < 0 || prevTerm > term) return `package header fields out of range (snapshot ${index}@${term}, log from ${retainedFromIndex})`;
  if (payloadBytes < 0 || logBytes < 0 || PACKAGE_HEADER_BYTES + payloadBytes + logBytes !== totalBytes) return `package header describes ${payloadBytes} + ${logBytes} B, the package is ${totalBytes} B`;
  if ((retainedFromIndex <= index) !== (logBytes > 0)) return `package log from ${retainedFromIndex} to ${index} holds ${logBytes} B`;
  return { index, term, retainedFromIndex, prevTerm, payloadBytes, logBytes };
}

/** A byte range of a file the package copies. */
export interface FileRange {
  readonly path: string;
  readonly startBytes: number;
  readonly endBytes: number;
}

/**
 * Leader side: a package read from the snapshot file and the segment files. The caller keeps
 * the segments from being deleted while it is open (retention is held back, process-snapshots.ts);
 * the snapshot file stays readable through its open reader even when a newer one prunes it.
 */
export class StreamedPackage {
  readonly totalBytes: number;
  private readonly header: Buffer;
  private readonly logStartBytes: number;
  /** Where each log range starts in the package. */
  private readonly rangeStarts: number[] = [];
  /** The segment file read last (reads go forward, one at a time). */
  private open: { path: string; handle: FileHandle } | null = null;
  private work: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    header: PackageHeader,
    private readonly snapshot: SnapshotReader,
    private readonly ranges: readonly FileRange[],
  ) {
    assert(snapshot.meta.payloadBytes === header.payloadBytes, 'the header states the snapshot payload read');
    this.header = encodePackageHeader(header);
    this.logStartBytes = PACKAGE_HEADER_BYTES + header.payloadBytes;
    let at = this.logStartBytes;
    for (const range of ranges) {
      this.rangeStarts.push(at);
      at += range.endBytes - range.startBytes;
    }
    assert(at - this.logStartBytes === header.logBytes, () => `log ranges hold ${at - this.logStartBytes} B, the header says ${header.logBytes} B`);
    this.totalBytes = at;
  }

  /** SHA-256 (hex) of the whole package, read through PACKAGE_READ_BYTES at a time. */
  async digest(): Promise<string> {
    const hash = createHash('sha256');
    // One buffer for the whole pass: a fresh one per read would leave the package's size in
    // garbage outside the JS heap until a collection gets to it.
    const buf = Buffer.allocUnsafe(Math.min(PACKAGE_READ_BYTES, this.totalBytes));
    for (let at = 0; at < this.totalBytes; at += buf.length) {
      const piece = buf.subarray(0, Math.min(buf.length, this.totalBytes - at));
      await this.queued(() => this.readInto(at, piece));
      hash.update(piece);
    }
    return hash.digest('hex');
  }

  /** Bytes [offsetBytes, offsetBytes + maxBytes) clipped to the end; reads run one at a time. */
  read(offsetBytes: number, maxBytes: number): Promise<Buffer> {
    assert(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0 && offsetBytes <= this.totalBytes, () => `package read at ${offsetBytes} of ${this.totalBytes} B`);
    assert(maxBytes >= 1, 'a read asks for bytes');
    const out = Buffer.allocUnsafe(Math.min(maxBytes, this.totalBytes - offsetBytes));
    return this.queued(async () => {
      await this.readInto(offsetBytes, out);
      return out;
    });
  }

  private queued<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.work.then(operation);
    this.work = run.catch(() => undefined);
    return run;
  }

  /** Releases the files once the read under way (if any) ends. */
  close(): Promise<void> {
    this.closed = true;
    return this.queued(async () => {
      await this.open?.handle.close();
      this.open = null;
      await this.snapshot.close();
    });
  }

  /** Fills `out` with the package's bytes from offsetBytes. */
  private async readInto(offsetBytes: number, out: Buffer): Promise<void> {
    assert(!this.closed, 'a package is read only while open');
    assert(offsetBytes + out.length <= this.totalBytes, 'a read stays inside the package');
    const length = out.length;
    let done = 0;
    while (done < length) {
      const at = offsetBytes + done;
      if (at < PACKAGE_HEADER_BYTES) {
        done += this.header.copy(out, done, at, Math.min(PACKAGE_HEADER_BYTES, at + length - done));
      } else if (at < this.logStartBytes) {
        const count = Math.min(length - done, this.logStartBytes - at);
        const bytes = await this.snapshot.read(SNAPSHOT_HEADER_BYTES + this.snapshot.meta.metadata.byteLength + at - PACKAGE_HEADER_BYTES, count);
        done += bytes.copy(out, done);
      } else {
        done += await this.readLog(at, out, done, length - done);
      }
    }
  }

  /** Copies log bytes at package offset `at` into out[outAt, outAt + maxBytes); returns how many (≥ 1). */
  private async readLog(at: number, out: Buffer, outAt: number, maxBytes: number): Promise<number> {
    let position = this.rangeStarts.length - 1;
    while (this.rangeStarts[position]! > at) position -= 1;
    const range = this.ranges[position]!;
    const fileAt = range.startBytes + at - this.rangeStarts[position]!;
    const count = Math.min(maxBytes, range.endBytes - fileAt);
    if (this.open?.path !== range.path) {
      await this.open?.handle.close();
      this.open = null;
      this.open = { path: range.path, handle: await open(range.path, 'r') };
    }
    const { bytesRead } = await this.open.handle.read(out, outAt, count, fileAt);
    if (bytesRead === 0) throw new LmqError('LMQ_CORRUPT_DATA', `segment ${range.path} ends at byte ${fileAt}, before the frames a snapshot package sends`, { file: range.path });
    return bytesRead;
  }
}

/**
 * Follower side: one incoming package in `<dir>/incoming-<index>-<term>-<digest prefix>.tmp`,
 * written in order and hashed as it comes; a crash leaves the file, which the snapshot store
 * deletes at the next start (its .tmp files), so a restarted transfer begins at byte 0.
 */
export class PackageStaging {
  stagedBytes = 0;
  private readonly hash = createHash('sha256');
  private readonly path: string;
  private handle: FileHandle | null = null;

  constructor(
    dir: string,
    readonly meta: SnapshotMeta,
    readonly totalBytes: number,
    readonly checksum: string,
  ) {
    this.path = join(dir, `incoming-${meta.index}-${meta.term}-${checksum.slice(0, 16)}.tmp`);
  }

  is(meta: SnapshotMeta, totalBytes: number, checksum: string): boolean {
    return this.meta.index === meta.index && this.meta.term === meta.term && this.totalBytes === totalBytes && this.checksum === checksum;
  }

  /** Appends a chunk at stagedBytes. */
  async append(data: Uint8Array): Promise<void> {
    assert(this.stagedBytes + data.byteLength <= this.totalBytes, () => `chunk of ${data.byteLength} B past the package's ${this.totalBytes} B`);
    const at = this.stagedBytes;
    this.stagedBytes += data.byteLength;
    this.hash.update(data);
    this.handle ??= await open(this.path, 'w+');
    for (let done = 0; done < data.byteLength; ) {
      const { bytesWritten } = await this.handle.write(data, done, data.byteLength - done, at + done);
      done += bytesWritten;
    }
  }

  /** Syncs the complete staging and compares its digest with the announced one. */
  async verify(): Promise<boolean> {
    assert(this.stagedBytes === this.totalBytes, 'only a complete staging is verified');
    assert(this.handle !== null, 'a package (at least its header) was staged');
    await this.handle.datasync();
    return this.hash.digest('hex') === this.checksum;
  }

  async header(): Promise<PackageHeader> {
    const header = decodePackageHeader(await this.readAt(0, Math.min(PACKAGE_HEADER_BYTES, this.totalBytes)), this.totalBytes);
    if (typeof header === 'string') throw new LmqError('LMQ_CORRUPT_DATA', `snapshot package from the leader refused: ${header}`, { reason: header });
    if (header.index !== this.meta.index || header.term !== this.meta.term) {
      throw new LmqError('LMQ_CORRUPT_DATA', `snapshot package holds snapshot ${header.index}@${header.term}, announced as ${this.meta.index}@${this.meta.term}`);
    }
    return header;
  }

  /** The snapshot payload, PACKAGE_READ_BYTES at a time. */
  async *payload(header: PackageHeader): AsyncGenerator<Buffer> {
    for (let at = 0; at < header.payloadBytes; at += PACKAGE_READ_BYTES) {
      yield await this.readAt(PACKAGE_HEADER_BYTES + at, Math.min(PACKAGE_READ_BYTES, header.payloadBytes - at));
    }
  }

  /**
   * The staged log's entries [retainedFromIndex, index], one batch per INSTALL_READ_BYTES read,
   * every frame's CRC, index and term checked (a package the leader built wrong is refused).
   */
  async *entries(header: PackageHeader): AsyncGenerator<Entry[]> {
    const endBytes = PACKAGE_HEADER_BYTES + header.payloadBytes + header.logBytes;
    const frame = newFrameHeader();
    let at = PACKAGE_HEADER_BYTES + header.payloadBytes;
    let next = header.retainedFromIndex;
    let lastTerm = header.prevTerm;
    let carry: Buffer = Buffer.alloc(0);
    while (at < endBytes) {
      const block = await this.readAt(at, Math.min(INSTALL_READ_BYTES, endBytes - at));
      at += block.length;
      const buf = carry.length === 0 ? block : Buffer.concat([carry, block]);
      const batch: Entry[] = [];
      let offset = 0;
      for (;;) {
        const problem = decodeFrame(buf, offset, buf.length, frame);
        if (problem === 'eof' || ((problem === 'short-header' || problem === 'short-payload') && at < endBytes)) break;
        if (problem !== null || frame.index !== next || frame.term < lastTerm || frame.term > header.term) {
          throw new LmqError('LMQ_CORRUPT_DATA', `snapshot package's log refused at index ${next}: ${problem ?? `frame holds ${frame.index}@${frame.term} after term ${lastTerm}`}`);
        }
        const dataStart = offset + FRAME_HEADER_BYTES;
        offset = dataStart + frame.payloadBytes;
        batch.push({ index: next, term: frame.term, type: frame.type, data: buf.subarray(dataStart, offset) });
        next += 1;
        lastTerm = frame.term;
      }
      carry = buf.subarray(offset);
      if (batch.length > 0) yield batch;
    }
    if (next !== header.index + 1 || lastTerm !== header.term || carry.length > 0) {
      throw new LmqError('LMQ_CORRUPT_DATA', `snapshot package's log ends at ${next - 1}@${lastTerm}, not at the snapshot ${header.index}@${header.term}`);
    }
  }

  /** Closes and deletes the file. */
  async remove(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
    await rm(this.path, { force: true });
  }

  private async readAt(positionBytes: number, length: number): Promise<Buffer> {
    assert(this.handle !== null, 'a staged package is read once staged');
    const buf = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, positionBytes + done);
      if (bytesRead === 0) throw new LmqError('LMQ_CORRUPT_DATA', `staged package ${this.path} ends at byte ${positionBytes + done}`);
      done += bytesRead;
    }
    return buf;
  }
}
