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
// Packages are built and staged in memory, bounded by maxPackageBytes: enough for the
// snapshot and a retained log of that size. A larger retained log cannot be sent yet — the
// transfer reports the snapshot gone, logs why, and the follower stays behind (README, Known gaps).
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { SnapshotStore } from '../log/snapshot-store.js';
import type { LogReader } from '../raft/raft-log.js';
import type { Entry, SnapshotMeta } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import type { Failed } from './ports.js';
import { type DriverSnapshotStore, MemoryStaging, type SnapshotPackage, inMemoryPackage } from './snapshot-transfer.js';

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
  /** Called between applies: the state at appliedIndex(), read while applies go on. */
  beginSnapshot(): StateSnapshot;
  /** Replaces the state with the snapshot's, rebuilding what it derives from `log` [retainedFromIndex .. index]. */
  restoreSnapshot(index: number, payload: Uint8Array, log: { entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] }): Promise<void>;
}

/** The log store's side: reads, and replacing the whole log with a window. */
export interface SnapshotLogStore extends LogReader {
  installWindow(window: { firstIndex: number; prevTerm: number; lastIndex: number }, batches: AsyncIterable<readonly Entry[]>): Promise<void>;
}

/** What a snapshot file's metadata record holds. */
interface SnapshotRecord {
  readonly retainedFromIndex: number;
}

/** A package: the snapshot and the retained log up to it. */
interface PackageContent {
  readonly meta: SnapshotMeta;
  readonly retainedFromIndex: number;
  readonly prevTerm: number;
  readonly payload: Uint8Array;
  readonly entries: Entry[];
}

/**
 * A package (the broker snapshot and the retained log up to it) is built and staged in memory
 * up to this size: it bounds what InstallSnapshot can send (README, Known gaps).
 */
export const MAX_SNAPSHOT_PACKAGE_BYTES = 512 * 1024 * 1024;

/** Entries per batch handed to the log's install (bounds what one write holds). */
const INSTALL_BATCH_ENTRIES = 1024;

export interface ProcessSnapshotsOptions {
  readonly store: SnapshotStore;
  readonly log: SnapshotLogStore;
  readonly stateMachine: SnapshotStateMachine;
  /** Bound on a package built or staged in memory, bytes. */
  readonly maxPackageBytes: number;
  readonly logger: Logger;
}

interface Kept extends SnapshotMeta {
  readonly retainedFromIndex: number;
}

export class ProcessSnapshots implements DriverSnapshotStore {
  /** Snapshots on disk, oldest first (index, term and the log they need). */
  private kept: Kept[] = [];
  private readonly staging = new MemoryStaging();
  private taking = false;

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
    this.buildPackage(meta).then(opened, failed);
  }

  private async buildPackage(meta: SnapshotMeta): Promise<SnapshotPackage | null> {
    const kept = this.kept.find((k) => k.index === meta.index && k.term === meta.term);
    const log = this.options.log;
    if (kept === undefined || log.firstIndex() > kept.retainedFromIndex || log.lastIndex() < meta.index) return null;
    const reader = await this.options.store.openReader(meta.index, meta.term);
    if (reader === undefined) return null;
    const parts: Uint8Array[] = [];
    let bytes = 0;
    try {
      for await (const chunk of reader.payload()) {
        bytes += chunk.byteLength;
        if (bytes > this.options.maxPackageBytes) return this.tooLarge(meta, bytes);
        parts.push(chunk);
      }
    } finally {
      await reader.close();
    }
    const from = kept.retainedFromIndex;
    const entries = from <= meta.index ? log.entries(from, meta.index + 1, this.options.maxPackageBytes) : [];
    if (entries.length > 0 && entries[entries.length - 1]!.index !== meta.index) return this.tooLarge(meta, bytes + this.options.maxPackageBytes);
    const content: PackageContent = { meta, retainedFromIndex: from, prevTerm: log.term(from - 1), payload: Buffer.concat(parts), entries };
    const encoded: Uint8Array = pack(content);
    if (encoded.byteLength > this.options.maxPackageBytes) return this.tooLarge(meta, encoded.byteLength);
    return inMemoryPackage(meta, encoded);
  }

  private tooLarge(meta: SnapshotMeta, bytes: number): null {
    this.options.logger.error(
      { index: meta.index, bytes, maxPackageBytes: this.options.maxPackageBytes },
      'snapshot and retained log are too large to send to a follower; lower retention.maxBytes or retention.maxAgeMs',
    );
    return null;
  }

  staged(meta: SnapshotMeta, totalBytes: number, checksum: string): number {
    return this.staging.staged(meta, totalBytes, checksum);
  }

  stage(data: Uint8Array, done: () => void): void {
    // The transfer refuses announcements above maxPackageBytes (TransferTuning), so this is bounded.
    this.staging.append(data);
    done();
  }

  verifyStaged(verified: (ok: boolean) => void): void {
    const ok = this.staging.verify();
    if (!ok) this.options.logger.warn('a received snapshot failed its checksum; asking for it again');
    verified(ok);
  }

  install(meta: SnapshotMeta, done: () => void, failed: Failed): void {
    this.installPackage(unpack(this.staging.take(meta)) as PackageContent, meta).then(done, failed);
  }

  private async installPackage(content: PackageContent, meta: SnapshotMeta): Promise<void> {
    assert(content.meta.index === meta.index && content.meta.term === meta.term, 'the package holds the snapshot it was staged as');
    const { store, log, stateMachine, logger } = this.options;
    const metadata = pack({ retainedFromIndex: content.retainedFromIndex } satisfies SnapshotRecord);
    await store.write({ index: meta.index, term: meta.term, metadata }, [content.payload]);
    await log.installWindow({ firstIndex: content.retainedFromIndex, prevTerm: content.prevTerm, lastIndex: meta.index }, batchesOf(content.entries));
    await stateMachine.restoreSnapshot(meta.index, content.payload, log);
    await this.refreshKept();
    logger.info({ index: meta.index, term: meta.term, firstIndex: log.firstIndex(), lastIndex: log.lastIndex() }, 'installed a snapshot from the leader');
  }

  discardStaged(): void {
    this.staging.discard();
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
    const reader = await store.openReader(usable.index, usable.term);
    assert(reader !== undefined, 'a kept snapshot opens');
    const parts: Uint8Array[] = [];
    try {
      for await (const chunk of reader.payload()) parts.push(chunk);
    } finally {
      await reader.close();
    }
    logger.warn({ applied, firstIndex: log.firstIndex(), lastIndex: log.lastIndex(), snapshot: usable.index }, 'broker state does not follow the log; restoring the newest usable snapshot');
    await stateMachine.restoreSnapshot(usable.index, Buffer.concat(parts), log);
  }
}

async function* batchesOf(entries: readonly Entry[]): AsyncIterable<Entry[]> {
  for (let at = 0; at < entries.length; at += INSTALL_BATCH_ENTRIES) yield entries.slice(at, at + INSTALL_BATCH_ENTRIES);
}
