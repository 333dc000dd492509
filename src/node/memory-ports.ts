// In-memory twins of the driver's ports, for the simulator and the tests: a log and a
// hard-state store whose writes become durable only when a simulated disk completes them (and
// whose crash loses what was not), a scheduler whose deferred work runs when the caller says.
// They keep the real stores' rules (term never back, vote fixed within a term, no truncation
// of committed entries), so a driver bug that breaks them fails here as it would on disk.
import { pack, unpack } from 'msgpackr';
import { MemoryLog } from '../raft/memory-log.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';
import { assert } from '../util/assert.js';
import type { DriverHardStateStore, DriverLogStore, Failed, Scheduler } from './ports.js';
import { type DriverSnapshotStore, MemoryStaging, type SnapshotPackage, inMemoryPackage } from './snapshot-transfer.js';

/** Where I/O completes: at once, or when a simulated disk gets to it. */
export interface Disk {
  /** Runs `complete` once the I/O is done; never, if the disk crashes first. */
  submit(complete: () => void): void;
}

/** Completes every request synchronously, inside the call (an infinitely fast disk). */
export const IMMEDIATE_DISK: Disk = Object.freeze({ submit: (complete: () => void) => complete() });

/**
 * A disk whose requests complete after a drawn number of ticks, in submission order per
 * completion tick. The owner calls runDue() from its tick loop; crash() drops what is pending.
 */
export class SimDisk implements Disk {
  private pending: { dueTick: number; complete: () => void }[] = [];

  constructor(
    private readonly nowTick: () => number,
    private readonly drawDelayTicks: () => number,
  ) {}

  submit(complete: () => void): void {
    const delay = this.drawDelayTicks();
    assert(Number.isSafeInteger(delay) && delay >= 0, () => `disk delay ${delay} is not a tick count`);
    this.pending.push({ dueTick: this.nowTick() + delay, complete });
  }

  /** Completes every request due by now; returns how many completed. */
  runDue(): number {
    const now = this.nowTick();
    const due = this.pending.filter((r) => r.dueTick <= now);
    if (due.length === 0) return 0;
    this.pending = this.pending.filter((r) => r.dueTick > now);
    for (const request of due) request.complete();
    return due.length;
  }

  /** A power loss: requests in flight never complete (their data is lost by the stores). */
  crash(): void {
    this.pending = [];
  }
}

/** A log whose appends are volatile until a flush completes on the disk. */
export class MemoryLogStore implements DriverLogStore {
  readonly log: MemoryLog;
  /** Entries up to here are committed and durable: never truncated. */
  private commitFloor = 0;

  constructor(
    private readonly disk: Disk,
    initial: readonly Entry[] = [],
  ) {
    this.log = new MemoryLog(initial);
  }

  firstIndex(): number {
    return this.log.firstIndex();
  }

  lastIndex(): number {
    return this.log.lastIndex();
  }

  term(index: number): number {
    return this.log.term(index);
  }

  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    return this.log.entries(lo, hiExclusive, maxBytes);
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.commitFloor, () => `append at ${first.index} would truncate committed entries up to ${this.commitFloor}`);
    this.log.write(entries);
  }

  flush(persisted: (persistedIndex: number) => void, _failed: Failed): void {
    const target = this.log.lastIndex();
    this.disk.submit(() => {
      // The driver writes nothing while its flush is pending: one Ready at a time.
      assert(this.log.lastIndex() === target, () => `log changed from ${target} to ${this.log.lastIndex()} during a flush`);
      this.log.sync();
      persisted(target);
    });
  }

  setCommitIndex(index: number): void {
    assert(index >= this.commitFloor, () => `commit floor moves back from ${this.commitFloor} to ${index}`);
    assert(index <= this.log.durableLastIndex(), () => `commit floor ${index} is past the durable log ${this.log.durableLastIndex()}`);
    this.commitFloor = index;
  }

  /** Entries up to here are committed and durable (the most compaction may delete). */
  commitIndexFloor(): number {
    return this.commitFloor;
  }

  /** Deletes the entries below firstIndex; a snapshot must cover them (the caller's rule). */
  compact(firstIndex: number): void {
    assert(firstIndex - 1 <= this.commitFloor, () => `compacting up to ${firstIndex - 1} past the commit floor ${this.commitFloor}`);
    this.log.compact(firstIndex);
  }

  /** Replaces the log with a leader's retained window (a snapshot install), durably. */
  install(firstIndex: number, prevTerm: number, entries: readonly Entry[]): void {
    this.log.install(firstIndex, prevTerm, entries);
    this.commitFloor = firstIndex - 1 + entries.length;
  }

  /** Loses what was not flushed, but for a prefix of it in [0, 1] (see MemoryLog.crash). */
  crash(keepUnsynced: number): void {
    this.log.crash(keepUnsynced);
    this.commitFloor = 0;
  }

  /** A replaced disk: the log is empty. */
  wipe(): void {
    this.log.wipe();
    this.commitFloor = 0;
  }
}

/** A state machine's snapshot as the memory store keeps it: opaque bytes at an index. */
export interface MemorySnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** What a package carries: the snapshot and the retained log up to it. */
interface PackageContent {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
  readonly firstIndex: number;
  readonly prevTerm: number;
  readonly entries: Entry[];
}

/**
 * Snapshots kept in memory, durable once the disk completes their write; the newest two are
 * kept (the log is compacted only up to one of them). A package is the snapshot plus the
 * log's retained entries up to it, encoded once, so chunks are real byte ranges. Staging is
 * volatile (a crash loses it and the transfer starts over). `restore` puts the state machine
 * in the snapshot's state when an install completes.
 */
export class MemorySnapshotStore implements DriverSnapshotStore {
  private durable: MemorySnapshot[] = [];
  private readonly staging = new MemoryStaging();

  constructor(
    private readonly disk: Disk,
    private readonly log: MemoryLogStore,
    private readonly restore: (snapshot: MemorySnapshot) => void,
    private readonly keep = 2,
  ) {
    assert(keep >= 1, 'at least one snapshot is kept');
  }

  /** Writes a snapshot of the state machine; saved() once it is durable. */
  save(snapshot: MemorySnapshot, saved: () => void): void {
    this.disk.submit(() => {
      if (this.durable.some((s) => s.meta.index >= snapshot.meta.index)) return saved();
      this.durable.push(snapshot);
      if (this.durable.length > this.keep) this.durable.splice(0, this.durable.length - this.keep);
      saved();
    });
  }

  latest(): SnapshotMeta | null {
    return this.durable[this.durable.length - 1]?.meta ?? null;
  }

  /** The newest durable snapshot with its data (what a restart restores). */
  latestSnapshot(): MemorySnapshot | null {
    return this.durable[this.durable.length - 1] ?? null;
  }

  /** The oldest snapshot kept: compaction stops at it, so a bad newest one could be skipped. */
  oldestKept(): SnapshotMeta | null {
    return this.durable[0]?.meta ?? null;
  }

  openPackage(meta: SnapshotMeta, opened: (pkg: SnapshotPackage | null) => void, _failed: Failed): void {
    const snapshot = this.durable.find((s) => s.meta.index === meta.index && s.meta.term === meta.term);
    const firstIndex = this.log.firstIndex();
    // Gone, or the log was compacted past it since the core named it: the core asks anew.
    if (snapshot === undefined || firstIndex > meta.index + 1) return opened(null);
    assert(this.log.lastIndex() >= meta.index, () => `log [${firstIndex}, ${this.log.lastIndex()}] does not reach snapshot ${meta.index}`);
    const content: PackageContent = {
      meta, data: snapshot.data, firstIndex, prevTerm: this.log.term(firstIndex - 1),
      entries: meta.index >= firstIndex ? this.log.entries(firstIndex, meta.index + 1, Number.MAX_SAFE_INTEGER) : [],
    };
    opened(inMemoryPackage(meta, pack(content)));
  }

  staged(meta: SnapshotMeta, totalBytes: number, checksum: string): number {
    return this.staging.staged(meta, totalBytes, checksum);
  }

  stage(data: Uint8Array, done: () => void, _failed: Failed): void {
    this.staging.append(data);
    done();
  }

  verifyStaged(verified: (ok: boolean) => void, _failed: Failed): void {
    verified(this.staging.verify());
  }

  install(meta: SnapshotMeta, done: () => void, _failed: Failed): void {
    const content = unpack(this.staging.take(meta)) as PackageContent;
    assert(content.meta.index === meta.index && content.meta.term === meta.term, 'the package holds the snapshot it was staged as');
    const snapshot: MemorySnapshot = { meta, data: content.data };
    // One atomic write on the disk (the real store renames a staged directory into place).
    this.disk.submit(() => {
      this.log.install(content.firstIndex, content.prevTerm, content.entries);
      this.durable = [snapshot];
      this.restore(snapshot);
      done();
    });
  }

  discardStaged(): void {
    this.staging.discard();
  }

  /** The process died: staging is lost; durable snapshots stay. */
  crash(): void {
    this.staging.discard();
  }

  /** A replaced disk: no snapshot survives. */
  wipe(): void {
    this.durable = [];
    this.staging.discard();
  }
}

const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: null });

/** Term and vote, durable once a save completes on the disk. */
export class MemoryHardStateStore implements DriverHardStateStore {
  private durableState: HardState;
  /** The last state handed to save(): saves move forward from it (HardStateStore's rules). */
  private latest: HardState;

  constructor(
    private readonly disk: Disk,
    initial: HardState = EMPTY_HARD_STATE,
  ) {
    this.durableState = initial;
    this.latest = initial;
  }

  load(): HardState {
    return this.durableState;
  }

  /** What survives a crash now. */
  durable(): HardState {
    return this.durableState;
  }

  save(hardState: HardState, saved: () => void, _failed: Failed): void {
    const previous = this.latest;
    assert(hardState.term >= previous.term, () => `term moves back from ${previous.term} to ${hardState.term}`);
    assert(
      hardState.term > previous.term || previous.vote === null || hardState.vote === previous.vote,
      () => `vote in term ${hardState.term} changes from ${String(previous.vote)} to ${String(hardState.vote)}`,
    );
    const state = Object.freeze({ term: hardState.term, vote: hardState.vote });
    this.latest = state;
    this.disk.submit(() => {
      this.durableState = state;
      saved();
    });
  }

  /** Saves in flight are lost; the durable state stays. */
  crash(): void {
    this.latest = this.durableState;
  }

  /** A replaced disk: the node starts as new (term 0, no vote). */
  wipe(): void {
    this.durableState = EMPTY_HARD_STATE;
    this.latest = EMPTY_HARD_STATE;
  }
}

/**
 * Deferred work that runs when the owner calls runQueued(). `postpone` (the simulator's
 * draw) may hold a task back to the next call: work the real event loop runs later.
 */
export class QueueScheduler implements Scheduler {
  private queue: (() => void)[] = [];
  private later: (() => void)[] = [];

  constructor(
    private readonly clockMs: () => number,
    private readonly postpone: () => boolean = () => false,
  ) {}

  nowMs(): number {
    return this.clockMs();
  }

  soon(task: () => void): void {
    (this.postpone() ? this.later : this.queue).push(task);
  }

  /** Runs what is queued (and what those tasks queue), up to maxTasks; returns how many ran. */
  runQueued(maxTasks: number): number {
    let ran = 0;
    while (this.queue.length > 0 && ran < maxTasks) {
      const task = this.queue.shift()!;
      task();
      ran++;
    }
    return ran;
  }

  /** Moves postponed tasks into the queue (call once per simulated event-loop turn). */
  releasePostponed(): void {
    this.queue.push(...this.later);
    this.later = [];
  }

  /** The process died: deferred work never runs. */
  crash(): void {
    this.queue = [];
    this.later = [];
  }
}
