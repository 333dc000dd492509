// The log store's file I/O as a small port, so chaos runs can swap the page cache for one that
// a SIGKILL empties. Two implementations:
// - osFileIo: today's node:fs calls. Bytes written are in the OS page cache at once, so a
//   killed process loses nothing it wrote — only a power cut would.
// - LazyFileIo (storage mode `lazy`, the idea of Jepsen's LazyFS): written bytes stay in this
//   process's memory until an fdatasync of their file completes; reads see them. A SIGKILL then
//   loses exactly what a power cut loses: everything written since the last completed
//   fdatasync. For chaos runs only (`node start --unsafe-storage lazy`, set by the chaos runner's
//   power nemesis); it is never reachable from a config file.
//
// What lazy mode models: unsynced data of segment files (appends, the zeroing of a truncated
// suffix, segment headers). An fdatasync covers what was written before it started; its bytes
// reach the file when it completes (a kill during it loses them, as a power cut may), those
// written meanwhile wait for the next one. What it does not model: directory entries (create,
// rename, unlink are durable at once — the store fsyncs the directory after each anyway), torn
// or reordered sector writes within one fdatasync (recovery's torn-tail tests cover those), and
// preallocation and segment indexes: zero-filled files and `.idx` files are written with real
// fs calls and synced before they are renamed into place, and a crash's leftover `.tmp` files
// are deleted at open, so their unsynced bytes can never be read. An index is written only
// after its segment's fdatasync, so it never names a frame that lazy mode could still drop.
import * as fs from 'node:fs';
import { assert } from '../util/assert.js';

export type StorageMode = 'os' | 'lazy';
export const STORAGE_MODES: readonly StorageMode[] = ['os', 'lazy'];

/** The file calls the log store makes on segment files. Positions and lengths in bytes. */
export interface LogFileIo {
  readonly mode: StorageMode;
  openSync(path: string, flags: 'r' | 'r+'): number;
  closeSync(fd: number): void;
  /** Writes buf[offset, offset + length) at position; returns the bytes written (all of them or some). */
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  /** Reads into buf[offset, offset + length) from position; returns the bytes read (0 at the end of the file). */
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  fdatasyncSync(fd: number): void;
  /** Calls back once the bytes written before the call are durable, or with the error. */
  fdatasync(fd: number, callback: (error: Error | null) => void): void;
  readFileSync(path: string): Buffer;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
}

export const osFileIo: LogFileIo = Object.freeze({
  mode: 'os' as const,
  openSync: (path: string, flags: 'r' | 'r+') => fs.openSync(path, flags),
  closeSync: (fd: number) => fs.closeSync(fd),
  writeSync: (fd: number, buf: Uint8Array, offset: number, length: number, position: number) => fs.writeSync(fd, buf, offset, length, position),
  readSync: (fd: number, buf: Uint8Array, offset: number, length: number, position: number) => fs.readSync(fd, buf, offset, length, position),
  fdatasyncSync: (fd: number) => fs.fdatasyncSync(fd),
  fdatasync: (fd: number, callback: (error: Error | null) => void) => fs.fdatasync(fd, callback),
  readFileSync: (path: string) => fs.readFileSync(path),
  renameSync: (from: string, to: string) => fs.renameSync(from, to),
  unlinkSync: (path: string) => fs.unlinkSync(path),
});

export function fileIoFor(mode: StorageMode): LogFileIo {
  return mode === 'lazy' ? new LazyFileIo() : osFileIo;
}

/** One write not yet synced: its own copy of the bytes, numbered in write order. */
interface UnsyncedWrite {
  readonly seq: number;
  readonly position: number;
  readonly bytes: Buffer;
}

/** A file's unsynced writes, oldest first. Shared by every descriptor open on the file. */
class LazyFile {
  readonly writes: UnsyncedWrite[] = [];
}

/** Bound on unsynced bytes held per store: past it a write is refused (a flush is overdue). */
const MAX_UNSYNCED_BYTES = 1024 * 1024 * 1024;

export class LazyFileIo implements LogFileIo {
  readonly mode = 'lazy' as const;
  /** Files by their current path (a rename moves the entry, an unlink drops it). */
  private readonly files = new Map<string, LazyFile>();
  private readonly byFd = new Map<number, LazyFile>();
  private nextSeq = 1;
  private unsyncedBytes = 0;

  /** Bytes written but not yet synced, over all files. */
  heldBytes(): number {
    return this.unsyncedBytes;
  }

  openSync(path: string, flags: 'r' | 'r+'): number {
    const fd = fs.openSync(path, flags);
    let file = this.files.get(path);
    if (file === undefined) {
      file = new LazyFile();
      this.files.set(path, file);
    }
    this.byFd.set(fd, file);
    return fd;
  }

  /** Closing syncs nothing (as with a real file): unsynced writes stay with the file. */
  closeSync(fd: number): void {
    assert(this.byFd.delete(fd), () => `close of fd ${fd} not opened through this port`);
    fs.closeSync(fd);
  }

  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    assert(length > 0 && offset + length <= buf.byteLength, () => `write of ${length} B at ${offset} outside a ${buf.byteLength} B buffer`);
    assert(this.unsyncedBytes + length <= MAX_UNSYNCED_BYTES, () => `lazy storage holds ${this.unsyncedBytes} B unsynced; a flush is overdue`);
    // A copy: the store reuses its write buffer as soon as the call returns.
    const bytes = Buffer.from(buf.subarray(offset, offset + length));
    this.fileOf(fd).writes.push({ seq: this.nextSeq++, position, bytes });
    this.unsyncedBytes += length;
    return length;
  }

  /** The file's bytes as written: what is on disk, overlaid by the unsynced writes in order. */
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const file = this.fileOf(fd);
    let read = fs.readSync(fd, buf, offset, length, position);
    for (const write of file.writes) {
      const from = Math.max(position, write.position);
      const to = Math.min(position + length, write.position + write.bytes.length);
      if (from >= to) continue;
      // A write past the end of the file extends it; bytes between are a hole of zeros.
      if (from - position > read) buf.fill(0, offset + read, offset + from - position);
      write.bytes.copy(buf, offset + from - position, from - write.position, to - write.position);
      read = Math.max(read, to - position);
    }
    assert(read <= length, 'never reads past the request');
    return read;
  }

  fdatasyncSync(fd: number): void {
    const file = this.fileOf(fd);
    this.writeOut(fd, file, Number.MAX_SAFE_INTEGER);
    fs.fdatasyncSync(fd);
    assert(file.writes.length === 0, 'a synchronous fdatasync leaves nothing unsynced');
  }

  fdatasync(fd: number, callback: (error: Error | null) => void): void {
    const file = this.fileOf(fd);
    const coveredSeq = this.nextSeq - 1;
    fs.fdatasync(fd, (error) => {
      // A failed fdatasync makes nothing durable; the store refuses further work anyway.
      if (error === null) this.writeOut(fd, file, coveredSeq);
      callback(error);
    });
  }

  readFileSync(path: string): Buffer {
    const onDisk = fs.readFileSync(path);
    const file = this.files.get(path);
    if (file === undefined || file.writes.length === 0) return onDisk;
    const end = file.writes.reduce((max, w) => Math.max(max, w.position + w.bytes.length), onDisk.length);
    const buf = Buffer.alloc(end);
    onDisk.copy(buf);
    for (const write of file.writes) write.bytes.copy(buf, write.position);
    return buf;
  }

  renameSync(from: string, to: string): void {
    fs.renameSync(from, to);
    const file = this.files.get(from);
    this.files.delete(from);
    if (file !== undefined) this.files.set(to, file);
    else this.files.delete(to);
  }

  /** The file's unsynced writes die with it (descriptors still open keep writing into nothing durable). */
  unlinkSync(path: string): void {
    fs.unlinkSync(path);
    const file = this.files.get(path);
    this.files.delete(path);
    if (file !== undefined) this.forget(file, Number.MAX_SAFE_INTEGER);
  }

  private fileOf(fd: number): LazyFile {
    const file = this.byFd.get(fd);
    assert(file !== undefined, () => `fd ${fd} not opened through this port`);
    return file;
  }

  /** Hands the writes numbered <= maxSeq to the OS, oldest first: from now on a SIGKILL keeps them. */
  private writeOut(fd: number, file: LazyFile, maxSeq: number): void {
    for (const write of file.writes) {
      if (write.seq > maxSeq) break;
      for (let done = 0; done < write.bytes.length; ) {
        const written = fs.writeSync(fd, write.bytes, done, write.bytes.length - done, write.position + done);
        assert(written > 0, () => `write returned ${written} at byte ${write.position + done}`);
        done += written;
      }
    }
    this.forget(file, maxSeq);
  }

  private forget(file: LazyFile, maxSeq: number): void {
    let count = 0;
    while (count < file.writes.length && file.writes[count]!.seq <= maxSeq) {
      this.unsyncedBytes -= file.writes[count]!.bytes.length;
      count += 1;
    }
    file.writes.splice(0, count);
    assert(this.unsyncedBytes >= 0, 'unsynced bytes never negative');
  }
}
