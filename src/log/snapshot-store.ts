// Durable snapshot files under <dataDir>/snapshots (format: snapshot-format.ts), the payload
// opaque. Writes a snapshot from a stream of chunks, keeps the newest `keep`, finds the newest
// one that verifies, and reads one back in chunks (a restore, or a package sent to a peer). A
// package received from a peer is staged beside them (node/snapshot-package.ts) as a .tmp file.
//
// Durability: a `.snap` name appears only by a rename after its bytes were fdatasynced, and the
// directory is fsynced after the rename, so a crash at any point leaves every older snapshot
// whole, the new one either complete or absent, and at most a `.tmp` file that open() deletes.
// Older snapshots are deleted only after the new one is durable.
//
// The event loop: every file call moves at most IO_CHUNK_BYTES, through fs/promises, and hashing
// one chunk takes about 1 ms. Operations that touch files run one at a time, in call order.
import { type FileHandle, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import {
  CHECKSUM_BYTES,
  MAX_SNAPSHOT_BYTES,
  MAX_SNAPSHOT_METADATA_BYTES,
  MIN_SNAPSHOT_BYTES,
  SNAPSHOT_FOOTER_BYTES,
  SNAPSHOT_HEADER_BYTES,
  decodeFooterLength,
  decodeSnapshotHeader,
  encodeFooterLength,
  encodeSnapshotHeader,
  newChecksum,
  parseSnapshotFileName,
  snapshotBytes,
  snapshotFileName,
} from './snapshot-format.js';

export interface SnapshotStoreOptions {
  /** <dataDir>/snapshots; created when missing. */
  dir: string;
  /** Snapshots kept (1–MAX_KEEP, default 2); older ones are deleted once a newer one is durable. */
  keep?: number;
  /** Bound on one snapshot file, whole, in bytes; default and ceiling MAX_SNAPSHOT_BYTES. */
  maxSnapshotBytes?: number;
  /** A snapshot refused as corrupt is logged at warn, one line per file. */
  logger?: Logger;
}

/** What a snapshot file holds besides its payload, read from its header and footer. */
export interface SnapshotMeta {
  /** The Raft index and term the snapshot includes: its state is that of entries [1, index]. */
  readonly index: number;
  readonly term: number;
  /** The small record written with the snapshot (at most MAX_SNAPSHOT_METADATA_BYTES). */
  readonly metadata: Uint8Array;
  readonly payloadBytes: number;
  /** The whole file, the bytes a transfer to a peer sends. */
  readonly sizeBytes: number;
  /** SHA-256 of the file's first sizeBytes − 32 bytes (the file's last 32 bytes hold it). */
  readonly checksum: Uint8Array;
  readonly fileName: string;
}

/** Bytes per file read or write: bounds how long one call, and the hashing of its bytes, holds the event loop. */
export const IO_CHUNK_BYTES = 1024 * 1024;
/** Largest read() for one transfer chunk. */
export const MAX_SNAPSHOT_READ_BYTES = 16 * 1024 * 1024;
export const MAX_KEEP = 100;
const DEFAULT_KEEP = 2;
const TMP_SUFFIX = '.tmp';

interface CatalogueEntry {
  meta: SnapshotMeta;
  /** The whole digest was checked in this process (written, installed, or by newest()). */
  verified: boolean;
}

export class SnapshotStore {
  /** Snapshots not known to be corrupt, by file name. */
  private readonly catalogue = new Map<string, CatalogueEntry>();
  /** Files refused as corrupt, by name, with their index: left for inspection until pruned. */
  private readonly refused = new Map<string, number>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly keep: number;
  private readonly maxSnapshotBytes: number;

  private constructor(private readonly options: SnapshotStoreOptions) {
    this.keep = options.keep ?? DEFAULT_KEEP;
    this.maxSnapshotBytes = options.maxSnapshotBytes ?? MAX_SNAPSHOT_BYTES;
    assert(Number.isInteger(this.keep) && this.keep >= 1 && this.keep <= MAX_KEEP, () => `keep ${this.keep} outside [1, ${MAX_KEEP}]`);
    assert(
      this.maxSnapshotBytes >= MIN_SNAPSHOT_BYTES && this.maxSnapshotBytes <= MAX_SNAPSHOT_BYTES,
      () => `maxSnapshotBytes ${this.maxSnapshotBytes} outside [${MIN_SNAPSHOT_BYTES}, ${MAX_SNAPSHOT_BYTES}]`,
    );
  }

  /**
   * Opens (creating) the store: deletes leftover temp files, reads every snapshot's header and
   * footer (a file whose shape is wrong is refused now, with its warning); digests are checked
   * by newest().
   */
  static async open(options: SnapshotStoreOptions): Promise<SnapshotStore> {
    const store = new SnapshotStore(options);
    await mkdir(options.dir, { recursive: true });
    let removed = false;
    for (const name of (await readdir(options.dir)).sort()) {
      if (name.endsWith(TMP_SUFFIX)) {
        await rm(join(options.dir, name), { force: true });
        removed = true;
      } else {
        await store.catalogueFile(name);
      }
    }
    if (removed) await syncDir(options.dir);
    return store;
  }

  /** <dataDir>/snapshots: a follower stages an incoming package here (its .tmp files are deleted at open). */
  get dir(): string {
    return this.options.dir;
  }

  /** Every snapshot not known to be corrupt, oldest first (digests not necessarily checked yet). */
  list(): SnapshotMeta[] {
    return this.newestFirst()
      .map((entry) => entry.meta)
      .reverse();
  }

  /**
   * The newest snapshot with index <= maxIndex (any index when omitted) whose header, size and
   * digest verify; undefined when there is none. Each file refused on the way is logged once.
   * The file may be pruned by a later write before it is opened: openReader then says so.
   */
  newest(maxIndex = Number.MAX_SAFE_INTEGER): Promise<SnapshotMeta | undefined> {
    return this.exclusive(async () => {
      for (const entry of this.newestFirst()) {
        if (entry.meta.index > maxIndex) continue;
        if (!entry.verified) {
          const problem = await verifyFile(this.pathOf(entry.meta.fileName), entry.meta);
          if (problem !== null) {
            this.refuse(entry.meta.fileName, entry.meta.index, problem);
            continue;
          }
          entry.verified = true;
        }
        return entry.meta;
      }
      return undefined;
    });
  }

  /**
   * Writes a snapshot at (index, term) from the payload's chunks, of any sizes, each used only
   * until the next is asked for. Resolves once the file is durable under its name and snapshots
   * beyond the newest `keep` are deleted. Throws LmqError(LMQ_OVERLOADED) when the file would
   * pass maxSnapshotBytes; nothing is kept then.
   */
  write(
    snapshot: { index: number; term: number; metadata?: Uint8Array },
    payload: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<SnapshotMeta> {
    const metadata = snapshot.metadata ?? new Uint8Array(0);
    assert(metadata.byteLength <= MAX_SNAPSHOT_METADATA_BYTES, () => `snapshot metadata of ${metadata.byteLength} B exceeds ${MAX_SNAPSHOT_METADATA_BYTES} B`);
    const fileName = snapshotFileName(snapshot.index, snapshot.term);
    return this.exclusive(async () => {
      const tmpPath = this.pathOf(fileName + TMP_SUFFIX);
      let meta: SnapshotMeta;
      try {
        meta = await this.writeFile(tmpPath, { index: snapshot.index, term: snapshot.term, metadata, fileName }, payload);
      } catch (error) {
        await rm(tmpPath, { force: true });
        throw error;
      }
      await rename(tmpPath, this.pathOf(fileName));
      await syncDir(this.options.dir);
      this.admit(meta);
      await this.prune();
      return meta;
    });
  }

  /**
   * Opens the snapshot (index, term) for reading, e.g. to stream it to a peer; undefined when the
   * store has no such snapshot (never written, pruned, or refused). Only its shape is checked
   * here; the receiver checks the digest. An open reader keeps its file readable when it is
   * pruned meanwhile. Close it.
   */
  openReader(index: number, term: number): Promise<SnapshotReader | undefined> {
    const fileName = snapshotFileName(index, term);
    return this.exclusive(async () => {
      const entry = this.catalogue.get(fileName);
      if (entry === undefined) return undefined;
      return new SnapshotReader(entry.meta, await open(this.pathOf(fileName), 'r'));
    });
  }

  /** Waits for the operations under way. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      this.closed = true;
    });
  }

  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    assert(!this.closed, 'snapshot store used after close');
    const run = this.queue.then(operation);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private pathOf(fileName: string): string {
    return join(this.options.dir, fileName);
  }

  /** Catalogue entries, newest (highest index, then term) first. */
  private newestFirst(): CatalogueEntry[] {
    return [...this.catalogue.values()].sort((a, b) => b.meta.index - a.meta.index || b.meta.term - a.meta.term);
  }

  private async catalogueFile(fileName: string): Promise<void> {
    const named = parseSnapshotFileName(fileName);
    if (named === null) return;
    const shape = await readShape(this.pathOf(fileName), fileName, this.maxSnapshotBytes);
    if (typeof shape === 'string') this.refuse(fileName, named.index, shape);
    else this.catalogue.set(fileName, { meta: shape, verified: false });
  }

  private admit(meta: SnapshotMeta): void {
    this.refused.delete(meta.fileName);
    this.catalogue.set(meta.fileName, { meta, verified: true });
  }

  private refuse(fileName: string, index: number, reason: string): void {
    this.catalogue.delete(fileName);
    this.refused.set(fileName, index);
    this.options.logger?.warn({ file: this.pathOf(fileName), reason }, `snapshot ${fileName} refused (${reason}); an older valid snapshot is used if there is one`);
  }

  /** Deletes snapshots beyond the newest `keep`, and refused files older than the oldest kept one. */
  private async prune(): Promise<void> {
    const entries = this.newestFirst();
    const oldestKept = entries[Math.min(this.keep, entries.length) - 1];
    assert(oldestKept !== undefined, 'prune runs after a snapshot was admitted');
    const doomed = entries.slice(this.keep).map((entry) => entry.meta.fileName);
    for (const [fileName, index] of this.refused) if (index < oldestKept.meta.index) doomed.push(fileName);
    for (const fileName of doomed) {
      await rm(this.pathOf(fileName), { force: true });
      this.catalogue.delete(fileName);
      this.refused.delete(fileName);
    }
    if (doomed.length > 0) await syncDir(this.options.dir);
    assert(this.catalogue.size <= this.keep, () => `${this.catalogue.size} snapshots kept, bound ${this.keep}`);
  }

  private async writeFile(
    path: string,
    snapshot: { index: number; term: number; metadata: Uint8Array; fileName: string },
    payload: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<SnapshotMeta> {
    const handle = await open(path, 'w');
    try {
      const out = new ChecksummedWriter(handle);
      await out.write(encodeSnapshotHeader({ index: snapshot.index, term: snapshot.term, metadataBytes: snapshot.metadata.byteLength }));
      await out.write(snapshot.metadata);
      const payloadStart = out.positionBytes;
      const maxPayloadBytes = this.maxSnapshotBytes - snapshotBytes(snapshot.metadata.byteLength, 0);
      for await (const chunk of payload) {
        if (out.positionBytes - payloadStart + chunk.byteLength > maxPayloadBytes) {
          throw new LmqError('LMQ_OVERLOADED', `snapshot at index ${snapshot.index} passes the bound of ${this.maxSnapshotBytes} B per snapshot file; it was not written`);
        }
        await out.write(chunk);
      }
      const payloadBytes = out.positionBytes - payloadStart;
      await out.write(encodeFooterLength(payloadBytes));
      const checksum = await out.finish();
      await handle.datasync();
      const sizeBytes = snapshotBytes(snapshot.metadata.byteLength, payloadBytes);
      assert((await handle.stat()).size === sizeBytes, () => `snapshot file ${path} is not the ${sizeBytes} B written`);
      return Object.freeze({ index: snapshot.index, term: snapshot.term, metadata: Uint8Array.from(snapshot.metadata), payloadBytes, sizeBytes, checksum, fileName: snapshot.fileName });
    } finally {
      await handle.close();
    }
  }
}

/** Reads a snapshot file for a peer (raw bytes) or for a restore (the payload, digest checked). */
export class SnapshotReader {
  /** @internal Made by SnapshotStore.openReader. */
  constructor(
    readonly meta: SnapshotMeta,
    private readonly handle: FileHandle,
  ) {}

  /**
   * The file's bytes [offsetBytes, offsetBytes + maxBytes), fewer at its end, none at sizeBytes.
   * offsetBytes may come from a peer (where its staging stands): one past the file is
   * LmqError(LMQ_BAD_INPUT), not an assertion.
   */
  async read(offsetBytes: number, maxBytes: number): Promise<Buffer> {
    assert(Number.isInteger(maxBytes) && maxBytes >= 1 && maxBytes <= MAX_SNAPSHOT_READ_BYTES, () => `read of ${maxBytes} B outside [1, ${MAX_SNAPSHOT_READ_BYTES}]`);
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes > this.meta.sizeBytes) {
      throw new LmqError('LMQ_BAD_INPUT', `snapshot read at byte ${offsetBytes} outside the ${this.meta.sizeBytes} B file ${this.meta.fileName}`, { offsetBytes });
    }
    const buf = Buffer.alloc(Math.min(maxBytes, this.meta.sizeBytes - offsetBytes));
    await readFully(this.handle, buf, offsetBytes, this.meta.fileName);
    return buf;
  }

  /**
   * The payload, in chunks of at most IO_CHUNK_BYTES (each a buffer of its own). The digest is
   * checked again on the way: when the file changed since it was verified, the last step throws
   * LmqError(LMQ_CORRUPT_DATA) — a restore must not take effect before the iteration ends.
   */
  async *payload(): AsyncGenerator<Buffer> {
    const payloadStart = SNAPSHOT_HEADER_BYTES + this.meta.metadata.byteLength;
    const payloadEnd = payloadStart + this.meta.payloadBytes;
    const hash = newChecksum();
    for await (const { chunk, atBytes } of chunksOf(this.handle, this.meta.sizeBytes - CHECKSUM_BYTES, this.meta.fileName)) {
      hash.update(chunk);
      const from = Math.max(atBytes, payloadStart);
      const to = Math.min(atBytes + chunk.length, payloadEnd);
      if (from < to) yield chunk.subarray(from - atBytes, to - atBytes);
    }
    if (!Buffer.from(this.meta.checksum).equals(hash.digest())) {
      throw corruptSnapshotError(this.meta.fileName, 'checksum mismatch while reading the payload');
    }
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Hashes everything it writes, buffering small writes into IO_CHUNK_BYTES file writes. */
class ChecksummedWriter {
  private readonly hash = newChecksum();
  private readonly buffer = Buffer.alloc(IO_CHUNK_BYTES);
  private filledBytes = 0;
  /** Bytes accepted so far, buffered ones included. */
  positionBytes = 0;
  private writtenBytes = 0;

  constructor(private readonly handle: FileHandle) {}

  /**
   * Copies into the buffer even for large chunks: after the header the file offsets are never
   * aligned to the chunks, and a 1 MiB copy costs a tenth of hashing it.
   */
  async write(bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.byteLength; ) {
      const count = Math.min(IO_CHUNK_BYTES - this.filledBytes, bytes.byteLength - at);
      this.buffer.set(bytes.subarray(at, at + count), this.filledBytes);
      this.filledBytes += count;
      this.positionBytes += count;
      at += count;
      if (this.filledBytes === IO_CHUNK_BYTES) await this.flush();
    }
  }

  /** Writes what is buffered, then the digest of everything; returns the digest. */
  async finish(): Promise<Uint8Array> {
    await this.flush();
    assert(this.writtenBytes === this.positionBytes, () => `${this.writtenBytes} B written of ${this.positionBytes} B accepted`);
    const checksum = new Uint8Array(this.hash.digest());
    assert(checksum.byteLength === CHECKSUM_BYTES, 'SHA-256 digest is 32 B');
    await writeAll(this.handle, checksum, this.writtenBytes);
    this.writtenBytes += CHECKSUM_BYTES;
    return checksum;
  }

  private async flush(): Promise<void> {
    if (this.filledBytes === 0) return;
    const piece = this.buffer.subarray(0, this.filledBytes);
    this.hash.update(piece);
    await writeAll(this.handle, piece, this.writtenBytes);
    this.writtenBytes += piece.byteLength;
    this.filledBytes = 0;
  }
}

/**
 * Runs a check on a file, open for reading: a file that is gone or ends early is a reason, like
 * any other damage. Other errors (permissions, descriptors) are not the file's fault and throw.
 */
async function checkFile<T>(path: string, check: (handle: FileHandle) => Promise<T | string>): Promise<T | string> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'the file is gone';
    throw error;
  }
  try {
    return await check(handle);
  } catch (error) {
    if (error instanceof LmqError && error.code === 'LMQ_CORRUPT_DATA') return String(error.details['reason']);
    throw error;
  } finally {
    await handle.close();
  }
}

/** The header and footer of a snapshot file, checked against its name and size: its SnapshotMeta, or why it is not a snapshot this build reads. */
function readShape(path: string, fileName: string, maxSnapshotBytes: number): Promise<SnapshotMeta | string> {
  const named = parseSnapshotFileName(fileName);
  assert(named !== null, () => `${fileName} is a snapshot name`);
  return checkFile(path, async (handle) => {
    const sizeBytes = (await handle.stat()).size;
    if (sizeBytes < MIN_SNAPSHOT_BYTES) return `file is ${sizeBytes} B, shorter than a header and footer (${MIN_SNAPSHOT_BYTES} B)`;
    if (sizeBytes > maxSnapshotBytes) return `file is ${sizeBytes} B, more than the ${maxSnapshotBytes} B bound`;
    const headerBuf = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
    await readFully(handle, headerBuf, 0, fileName);
    const header = decodeSnapshotHeader(headerBuf);
    if (typeof header === 'string') return header;
    if (header.index !== named.index || header.term !== named.term) {
      return `named index ${named.index} term ${named.term}, but its header says index ${header.index} term ${header.term}`;
    }
    const footer = Buffer.alloc(SNAPSHOT_FOOTER_BYTES);
    await readFully(handle, footer, sizeBytes - SNAPSHOT_FOOTER_BYTES, fileName);
    const payloadBytes = decodeFooterLength(footer);
    if (payloadBytes < 0) return `file is ${sizeBytes} B and what should be its footer holds no length (truncated or damaged)`;
    const describedBytes = snapshotBytes(header.metadataBytes, payloadBytes);
    if (describedBytes !== sizeBytes) return `file is ${sizeBytes} B, but its header and footer describe ${describedBytes} B (truncated, extended or damaged)`;
    const metadata = Buffer.alloc(header.metadataBytes);
    await readFully(handle, metadata, SNAPSHOT_HEADER_BYTES, fileName);
    const checksum = new Uint8Array(footer.subarray(SNAPSHOT_FOOTER_BYTES - CHECKSUM_BYTES));
    return Object.freeze({ index: header.index, term: header.term, metadata: new Uint8Array(metadata), payloadBytes, sizeBytes, checksum, fileName });
  });
}

/** Why the file's digest does not verify against meta (or it changed size), or null when it does. */
function verifyFile(path: string, meta: SnapshotMeta): Promise<string | null> {
  return checkFile(path, async (handle) => {
    const sizeBytes = (await handle.stat()).size;
    if (sizeBytes !== meta.sizeBytes) return `file is now ${sizeBytes} B, it was ${meta.sizeBytes} B`;
    const hash = newChecksum();
    for await (const { chunk } of chunksOf(handle, meta.sizeBytes - CHECKSUM_BYTES, meta.fileName)) hash.update(chunk);
    return Buffer.from(meta.checksum).equals(hash.digest()) ? null : 'checksum mismatch';
  });
}

/** The file's bytes [0, endBytes) in chunks of at most IO_CHUNK_BYTES, each a buffer of its own. */
async function* chunksOf(handle: FileHandle, endBytes: number, fileName: string): AsyncGenerator<{ chunk: Buffer; atBytes: number }> {
  for (let atBytes = 0; atBytes < endBytes; atBytes += IO_CHUNK_BYTES) {
    const chunk = Buffer.alloc(Math.min(IO_CHUNK_BYTES, endBytes - atBytes));
    await readFully(handle, chunk, atBytes, fileName);
    yield { chunk, atBytes };
  }
}

async function readFully(handle: FileHandle, buf: Buffer, positionBytes: number, fileName: string): Promise<void> {
  for (let done = 0; done < buf.length; ) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, positionBytes + done);
    if (bytesRead === 0) throw corruptSnapshotError(fileName, `file ends at byte ${positionBytes + done}, before byte ${positionBytes + buf.length}`);
    done += bytesRead;
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, positionBytes: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, positionBytes + done);
    assert(bytesWritten > 0, () => `write returned ${bytesWritten} at byte ${positionBytes + done}`);
    done += bytesWritten;
  }
}

/** Makes a directory's entries (created, renamed, unlinked files) durable, off the event loop. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function corruptSnapshotError(fileName: string, reason: string): LmqError {
  return new LmqError('LMQ_CORRUPT_DATA', `snapshot ${fileName} is corrupt (${reason}); an older snapshot or a peer's must be used`, { file: fileName, reason });
}
