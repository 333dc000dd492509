// Shared helpers for the log store tests: temp dirs that are always removed, entry builders,
// a pino logger whose lines the test can read, and byte offsets computed from the format.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { LazyFileIo, LogFileIo } from '../src/log/file-io.js';
import { FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../src/log/frame.js';
import { LogStore, type LogStoreOptions } from '../src/log/log-store.js';
import { type Entry, EntryType } from '../src/raft/types.js';

const made: string[] = [];

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-log-'));
  made.push(dir);
  return dir;
}

/** Call from afterEach/afterAll: removes every temp dir made so far, pass or fail. */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Entry whose payload is derived from (index, term) so any mix-up shows in a comparison. */
export function entry(index: number, term: number, payloadBytes = 16): Entry {
  const data = new Uint8Array(payloadBytes);
  for (let i = 0; i < payloadBytes; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type: payloadBytes === 0 ? EntryType.Noop : EntryType.Normal, data };
}

export function entries(from: number, toInclusive: number, term: number, payloadBytes = 16): Entry[] {
  const out: Entry[] = [];
  for (let index = from; index <= toInclusive; index++) out.push(entry(index, term, payloadBytes));
  return out;
}

export function options(dir: string, extra: Partial<LogStoreOptions> = {}): LogStoreOptions {
  return { dir, segmentBytes: 64 * 1024, flushMode: 'sync', flushIntervalMs: 5, ...extra };
}

/** A logger writing JSON lines into `lines`. */
export function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

export function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
}

/** Byte offset of the frame of `index` in a segment whose frames all have `payloadBytes`. */
export function frameOffset(segmentFirstIndex: number, index: number, payloadBytes = 16): number {
  return SEGMENT_HEADER_BYTES + (index - segmentFirstIndex) * (FRAME_HEADER_BYTES + payloadBytes);
}

/** Everything the store holds, read back in one call. */
export function readAll(store: LogStore): Entry[] {
  return store.entries(store.firstIndex(), store.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
}

export function plain(list: readonly Entry[]): Array<{ index: number; term: number; type: number; data: number[] }> {
  return list.map((e) => ({ index: e.index, term: e.term, type: e.type, data: [...e.data] }));
}

/** A leader's window [first, last] for install tests: terms climb from prevTerm + 1 every 7 entries. */
export function windowEntries(first: number, last: number, prevTerm: number, payloadBytes = 200): Entry[] {
  const out: Entry[] = [];
  for (let index = first; index <= last; index++) out.push(entry(index, prevTerm + 1 + Math.floor((index - first) / 7), payloadBytes));
  return out;
}

/** The entries of a list in batches of batchSize, as a stream of a snapshot transfer yields them. */
export async function* inBatches(list: readonly Entry[], batchSize: number): AsyncGenerator<Entry[]> {
  for (let at = 0; at < list.length; at += batchSize) yield list.slice(at, at + batchSize);
}

/** A port passing every call to `lazy` but those in `overrides` (the kill children hook writes, renames and unlinks). */
export function lazyIoWith(lazy: LazyFileIo, overrides: Partial<Omit<LogFileIo, 'mode'>>): LogFileIo {
  return {
    mode: lazy.mode,
    openSync: (path, flags) => lazy.openSync(path, flags),
    closeSync: (fd) => lazy.closeSync(fd),
    writeSync: (fd, buf, offset, length, position) => lazy.writeSync(fd, buf, offset, length, position),
    readSync: (fd, buf, offset, length, position) => lazy.readSync(fd, buf, offset, length, position),
    fdatasyncSync: (fd) => lazy.fdatasyncSync(fd),
    fdatasync: (fd, callback) => lazy.fdatasync(fd, callback),
    readFileSync: (path) => lazy.readFileSync(path),
    renameSync: (from, to) => lazy.renameSync(from, to),
    unlinkSync: (path) => lazy.unlinkSync(path),
    ...overrides,
  };
}
