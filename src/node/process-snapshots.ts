// Snapshots in a real process: the NodeDriver's snapshot port (DriverSnapshotStore) over the
// snapshot files on disk (src/log/snapshot-store.ts), the log store and the state machine. It
// takes snapshots when the node asks, builds the package a follower is sent (the state
// machine's snapshot and the retained log [retainedFromIndex .. snapshot index]), and installs
// a received one in the order that survives a crash at any point:
//   1. the snapshot file is written (durable, atomic);
//   2. the log is replaced with the package's window (one atomic rename);
//   3. the state machine restores the snapshot and rebuilds what it derives from the log.
// A crash after 1 leaves the old log and state, which still agree; after 2, the state is behind
// the log's first index and the next start restores the snapshot from 1 (restoreOnStart).
//
// A package is streamed, never held whole (snapshot-package.ts): the leader reads it from the
// snapshot file and the retained log's segment files — retention does not delete the segments a
// package being sent reads (logPinnedFrom) — and the follower stages it in a temporary file under
// <dataDir>/snapshots, checks its SHA-256 and only then installs it, reading the log back in
// bounded batches. A follower whose disk lacks room for the package twice (staged, then
// installed) refuses it with a log line; the leader retries.
import { statfsSync } from 'node:fs';
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { SnapshotStore } from '../log/snapshot-store.js';
import type { LogReader } from '../raft/raft-log.js';
import type { Entry, SnapshotMeta } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError } from '../util/errors.js';
import type { Failed } from './ports.js';
import { type FileRange, PACKAGE_HEADER_BYTES, PackageStaging, StreamedPackage } from './snapshot-package.js';
import type { DriverSnapshotStore, SnapshotPackage } from './snapshot-transfer.js';

/** A snapshot the state machine hands out: its index, the first log index it needs, its payload. */
export interface StateSnapshot {
  readonly index: number;
  readonly retainedFromIndex: number;
  chunks(): AsyncIterable<Uint8Array>;
  abort(): void;
}

/** The state machine's side of snapshots (the broker implements it). */
export interface SnapshotStateMachine {
  appliedIndex(): number;
  /** The first log index the state still serves (and so needs the log from). */
  retainedFromIndex(): number;
  /** Why a received snapshot payload could not be restored at `index`, or null: checked before an install begins. */
  snapshotProblem(index: number, payload: Uint8Array): Promise<string | null>;
  /** Called between applies: the state at appliedIndex(), read while applies go on. */
  beginSnapshot(): StateSnapshot;
  /** Replaces the state with the snapshot's, rebuilding what it derives from `log` [retainedFromIndex .. index]. */
  restoreSnapshot(index: number, payload: Uint8Array, log: { entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] }): Promise<void>;
}

/** The log store's side: reads, where entries lie on disk, and replacing the whole log with a window. */
export interface SnapshotLogStore extends LogReader {
  /** The files and byte ranges of the frames of entries [lo, hi] (LogStore.frameRanges). */
  frameRanges(lo: number, hi: number): FileRange[];
  installWindow(window: { firstIndex: number; prevTerm: number; lastIndex: number }, batches: AsyncIterable<readonly Entry[]>): Promise<void>;
}

/** What a snapshot file's metadata record holds. */
interface SnapshotRecord {
  readonly retainedFromIndex: number;
}

/**
 * The largest package a peer may announce (1 PiB, retention.maxBytes' ceiling): a sanity bound
 * on what comes off the wire. What a follower accepts is bounded by its free disk (staged()).
 */
export const MAX_SNAPSHOT_PACKAGE_BYTES = 2 ** 50;

/** Free disk a follower needs to receive a package, in package sizes: staged, then installed. */
const FREE_DISK_PACKAGES = 2;

/** Package digests remembered (a retried or second transfer of a snapshot is not hashed again). */
const MAX_REMEMBERED_DIGESTS = 2;

export interface ProcessSnapshotsOptions {
  readonly store: SnapshotStore;
  readonly log: SnapshotLogStore;
  readonly stateMachine: SnapshotStateMachine;
  readonly logger: Logger;
}

interface Kept extends SnapshotMeta {
  readonly retainedFromIndex: number;
}

export class ProcessSnapshots implements DriverSnapshotStore {
  /** Snapshots on disk, oldest first (index, term and the log they need). */
  private kept: Kept[] = [];
  private taking = false;
  /** The first log index each package being sent reads from: retention keeps it. */
  private readonly pins = new Set<{ readonly fromIndex: number }>();
  /** SHA-256 of packages opened lately, by `index@term` (a kept snapshot's package never changes). */
  private readonly digests = new Map<string, string>();
  /** The incoming package, and the file work on stagings in call order. */
  private staging: PackageStaging | null = null;
  private stagingWork: Promise<unknown> = Promise.resolve();
  /** The package last refused for want of disk (logged once). */
  private refusedChecksum: string | null = null;

  private constructor(private readonly options: ProcessSnapshotsOptions) {}

  /** Lists the snapshots on disk (only those whose files verify are used). */
  static async open(options: ProcessSnapshotsOptions): Promise<ProcessSnapshots> {
    const snapshots = new ProcessSnapshots(options);
    await snapshots.refreshKept();
    return snapshots;
  }

  private async refreshKept(): Promise<void> {
    const newest = await this.options.store.newest();
    this.kept = this.options.store
      .list()
      .filter((meta) => newest !== undefined && meta.index <= newest.index)
      .map((meta) => ({ index: meta.index, term: meta.term, retainedFromIndex: (unpack(meta.metadata) as SnapshotRecord).retainedFromIndex }));
  }

  latest(): SnapshotMeta | null {
    const newest = this.kept[this.kept.length - 1];
    return newest === undefined ? null : { index: newest.index, term: newest.term };
  }

  /**
   * The lowest log index some kept snapshot needs (its retainedFromIndex): the log may be
   * deleted below it and no further. 0 when there is no snapshot (nothing may go).
   */
  logNeededFrom(): number {
    const oldest = this.kept[0];
    return oldest === undefined ? 0 : oldest.retainedFromIndex;
  }

  /** The lowest log index a package being sent reads; Infinity when none is sent. */
  logPinnedFrom(): number {
    let from = Number.POSITIVE_INFINITY;
    for (const pin of this.pins) from = Math.min(from, pin.fromIndex);
    return from;
  }

  /**
   * Takes a snapshot of the state machine now (call between applies) and writes it; resolves
   * with it once durable, or null when one is already being taken.
   */
  async take(termAt: (index: number) => number | undefined): Promise<SnapshotMeta | null> {
    if (this.taking) return null;
    const snapshot = this.options.stateMachine.beginSnapshot();
    const term = termAt(snapshot.index);
    const newest = this.latest();
    if (term === undefined || (newest !== null && newest.index >= snapshot.index)) {
      snapshot.abort();
      return null;
    }
    this.taking = true;
    try {
      const metadata = pack({ retainedFromIndex: snapshot.retainedFromIndex } satisfies SnapshotRecord);
      await this.options.store.write({ index: snapshot.index, term, metadata }, snapshot.chunks());
      await this.refreshKept();
      this.options.logger.info({ index: snapshot.index, term, retainedFromIndex: snapshot.retainedFromIndex }, 'snapshot taken');
      return { index: snapshot.index, term };
    } finally {
      this.taking = false;
    }
  }

  openPackage(meta: SnapshotMeta, opened: (pkg: SnapshotPackage | null) => void, failed: Failed): void {
    this.openStreamed(meta).then(opened, failed);
  }

  /** The package of a kept snapshot, streamed from its files; null when the snapshot or its log is gone. */
  private async openStreamed(meta: SnapshotMeta): Promise<SnapshotPackage | null> {
    const kept = this.kept.find((k) => k.index === meta.index && k.term === meta.term);
    const { log, store, logger } = this.options;
    if (kept === undefined || log.lastIndex() < meta.index) return null;
    const reader = await store.openReader(meta.index, meta.term);
    // Checked after the open: retention may have moved on meanwhile.
    if (reader === undefined || log.firstIndex() > kept.retainedFromIndex) {
      await reader?.close();
      return null;
    }
    const from = kept.retainedFromIndex;
    const pin = { fromIndex: from };
    this.pins.add(pin);
    const ranges = from <= meta.index ? log.frameRanges(from, meta.index) : [];
    const logBytes = ranges.reduce((sum, r) => sum + r.endBytes - r.startBytes, 0);
    const header = { index: meta.index, term: meta.term, retainedFromIndex: from, prevTerm: log.term(from - 1), payloadBytes: reader.meta.payloadBytes, logBytes };
    const pkg = new StreamedPackage(header, reader, ranges);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.pins.delete(pin);
      pkg.close().catch((error: unknown) => logger.warn({ err: error }, 'could not close a snapshot package'));
    };
    const key = `${meta.index}@${meta.term}`;
    let checksum = this.digests.get(key);
    const hashStartMs = performance.now();
    if (checksum === undefined) {
      try {
        checksum = await pkg.digest();
      } catch (error) {
        close();
        throw error;
      }
      this.digests.set(key, checksum);
      for (const old of this.digests.keys()) if (this.digests.size > MAX_REMEMBERED_DIGESTS) this.digests.delete(old);
    }
    const hashMs = Math.round(performance.now() - hashStartMs);
    logger.info({ index: meta.index, term: meta.term, retainedFromIndex: from, totalBytes: pkg.totalBytes, logBytes, hashMs }, 'sending a snapshot package to a follower');
    return {
      meta,
      totalBytes: pkg.totalBytes,
      checksum,
      // A read that fails after close (a file released under it) is no longer anyone's concern.
      read: (offsetBytes, maxBytes, done, readFailed) => void pkg.read(offsetBytes, maxBytes).then(done, (error: unknown) => (closed ? undefined : readFailed(error))),
      close,
    };
  }

  /**
   * Bytes staged of package (meta, totalBytes, checksum), 0 for a new one (any other staging is
   * discarded); null when the disk lacks room for it — it is refused, with a log line.
   */
  staged(meta: SnapshotMeta, totalBytes: number, checksum: string): number | null {
    if (this.staging?.is(meta, totalBytes, checksum) === true) return this.staging.stagedBytes;
    this.discardStaged();
    const dir = this.options.store.dir;
    const stats = statfsSync(dir);
    const freeBytes = stats.bavail * stats.bsize;
    if (freeBytes < FREE_DISK_PACKAGES * totalBytes || totalBytes < PACKAGE_HEADER_BYTES) {
      if (this.refusedChecksum !== checksum) {
        this.refusedChecksum = checksum;
        this.options.logger.error(
          { index: meta.index, term: meta.term, totalBytes, freeBytes, dir },
          `cannot receive the leader's snapshot: it needs ${FREE_DISK_PACKAGES} × ${totalBytes} B free (staged, then installed) and ${dir} has ${freeBytes} B; free disk space (the leader retries)`,
        );
      }
      return null;
    }
    this.staging = new PackageStaging(dir, meta, totalBytes, checksum);
    return 0;
  }

  stage(data: Uint8Array, done: () => void, failed: Failed): void {
    const staging = this.staging;
    assert(staging !== null, 'a chunk is staged into a staging');
    this.queueStaging(() => staging.append(data)).then(done, failed);
  }

  verifyStaged(verified: (ok: boolean) => void, failed: Failed): void {
    const staging = this.staging;
    assert(staging !== null, 'a complete staging is verified');
    this.queueStaging(async () => {
      // The whole package is checked before the core is told it is good: once it is, the node
      // restores to it, and a package that failed later (a bad header or frame) would crash the
      // install with its snapshot file already written.
      const problem = (await staging.verify()) ? await packageProblem(staging, this.options.stateMachine) : 'its SHA-256 differs from the announced one';
      if (problem === null) return true;
      this.options.logger.warn({ index: staging.meta.index, totalBytes: staging.totalBytes, problem }, 'a received snapshot package is refused; asking for it again');
      if (this.staging === staging) this.staging = null;
      await staging.remove();
      return false;
    }).then(verified, failed);
  }

  install(meta: SnapshotMeta, done: () => void, failed: Failed): void {
    const staging = this.staging;
    assert(staging !== null && staging.meta.index === meta.index && staging.meta.term === meta.term, () => `install of ${meta.index}@${meta.term} without its verified staging`);
    this.staging = null;
    this.queueStaging(() => this.installStaged(staging)).then(done, failed);
  }

  /** Steps 1–3 of the header, reading the staged file; the file is deleted after. */
  private async installStaged(staging: PackageStaging): Promise<void> {
    const { store, log, stateMachine, logger } = this.options;
    const { meta } = staging;
    try {
      const header = await staging.header();
      const metadata = pack({ retainedFromIndex: header.retainedFromIndex } satisfies SnapshotRecord);
      await store.write({ index: meta.index, term: meta.term, metadata }, staging.payload(header));
      await log.installWindow({ firstIndex: header.retainedFromIndex, prevTerm: header.prevTerm, lastIndex: meta.index }, staging.entries(header));
      await stateMachine.restoreSnapshot(meta.index, await this.readPayload(meta), log);
      await this.refreshKept();
    } finally {
      await staging.remove();
    }
    logger.info({ index: meta.index, term: meta.term, firstIndex: log.firstIndex(), lastIndex: log.lastIndex() }, 'installed a snapshot from the leader');
  }

  discardStaged(): void {
    const staging = this.staging;
    if (staging === null) return;
    this.staging = null;
    this.queueStaging(() => staging.remove()).catch((error: unknown) => this.options.logger.warn({ err: error }, 'could not delete a discarded snapshot staging; the next start deletes it'));
  }

  private queueStaging<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.stagingWork.then(operation);
    this.stagingWork = run.catch(() => undefined);
    return run;
  }

  /** A kept snapshot's payload, its digest checked on the way (the state machine restores from memory). */
  private async readPayload(meta: SnapshotMeta): Promise<Buffer> {
    const reader = await this.options.store.openReader(meta.index, meta.term);
    assert(reader !== undefined, () => `kept snapshot ${meta.index}@${meta.term} opens`);
    const parts: Uint8Array[] = [];
    try {
      for await (const chunk of reader.payload()) parts.push(chunk);
    } finally {
      await reader.close();
    }
    return Buffer.concat(parts);
  }

  /**
   * At start: a state machine behind the log's first index (a crash between replacing the log
   * and restoring the state, or a state deleted to be rebuilt) or ahead of its end restores the
   * newest snapshot the log can follow — never an assertion later.
   */
  async restoreOnStart(): Promise<void> {
    const { log, stateMachine, store, logger } = this.options;
    const applied = stateMachine.appliedIndex();
    // It also needs the log from the first index it serves (a swap may have deleted those).
    const follows = applied >= log.firstIndex() - 1 && applied <= log.lastIndex() && stateMachine.retainedFromIndex() >= log.firstIndex();
    if (follows) return;
    const usable = [...this.kept].reverse().find((k) => k.index <= log.lastIndex() && k.retainedFromIndex >= log.firstIndex() && k.index >= log.firstIndex() - 1);
    if (usable === undefined) {
      throw new LmqError(
        'LMQ_CORRUPT_DATA',
        `the broker state (applied ${applied}) does not follow the log [${log.firstIndex()}, ${log.lastIndex()}] and no snapshot can bridge them; delete the node's data directory to rejoin from the leader`,
      );
    }
    assert(log.term(usable.index) === usable.term, () => `snapshot ${usable.index}@${usable.term} disagrees with the log's term ${log.term(usable.index)} there`);
    const payload = await this.readPayload(usable);
    logger.warn({ applied, firstIndex: log.firstIndex(), lastIndex: log.lastIndex(), snapshot: usable.index }, 'broker state does not follow the log; restoring the newest usable snapshot');
    await stateMachine.restoreSnapshot(usable.index, payload, log);
  }
}

/** Why a staged package with the right digest cannot be installed (header, frames, its end, the state's payload), or null. */
async function packageProblem(staging: PackageStaging, stateMachine: SnapshotStateMachine): Promise<string | null> {
  try {
    const header = await staging.header();
    for await (const batch of staging.entries(header)) assert(batch.length > 0, 'a staged batch holds entries');
    const parts: Buffer[] = [];
    for await (const part of staging.payload(header)) parts.push(part);
    return await stateMachine.snapshotProblem(header.index, Buffer.concat(parts));
  } catch (error) {
    if (isLmqError(error, 'LMQ_CORRUPT_DATA')) return error.message;
    throw error;
  }
}
