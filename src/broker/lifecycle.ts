// How a broker node's storage lives for months: snapshots and retention (RocketMQ keeps 72 h of
// commit log and deletes older files; Kafka has retention.ms / retention.bytes).
//  - Snapshots of the broker state are taken every snapshot.everyEntries applied entries,
//    whenever retention waits only for one, and on clean shutdown (process-snapshots.ts writes
//    them in the background; applying pauses only to capture the state).
//  - Retention is a replicated decision: every retention.checkIntervalMs the leader looks at its
//    log segments and, when the oldest are older than retention.maxAgeMs or the log holds more
//    than retention.maxBytes, proposes truncateLog { firstIndex } through the log, so every
//    node moves its queues' minOffset to the same place.
//  - Each node then deletes whole segments below what the broker no longer serves
//    (retainedFromIndex) and what its kept snapshots still need — never past the commit index.
import type { Logger } from 'pino';
import type { RaftNode } from '../node/raft-node.js';
import type { ProcessSnapshots } from '../node/process-snapshots.js';
import { encodeCommand } from './commands.js';
import type { ApplyResult, BrokerStateMachine } from './state-machine.js';

export interface LogSegmentInfo {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly bytes: number;
  readonly lastModifiedMs: number;
}

/** What the policy needs of the log store. */
export interface RetainedLog {
  firstIndex(): number;
  lastIndex(): number;
  listSegments(): LogSegmentInfo[];
  /** The highest index the store knows is committed and durable: deleteBefore may not pass it. */
  commitIndexFloor(): number;
  deleteBefore(index: number): void;
}

export interface LifecycleSettings {
  readonly snapshotEveryEntries: number;
  readonly retentionMaxAgeMs: number;
  readonly retentionMaxBytes: number | null;
  readonly retentionCheckIntervalMs: number;
}

/** What the policy did since the process started (/metrics). */
export interface LifecycleCounters {
  snapshotsWritten: number;
  snapshotFailures: number;
  /** truncateLog commands this node proposed as leader and saw committed. */
  retentionTruncations: number;
  /** Times this node deleted log segments (below a snapshot, or truncated by retention). */
  segmentDeletions: number;
}

export class BrokerLifecycle {
  readonly counters: LifecycleCounters = { snapshotsWritten: 0, snapshotFailures: 0, retentionTruncations: 0, segmentDeletions: 0 };
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private lastSnapshotIndex: number;
  private closed = false;

  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly log: RetainedLog,
    private readonly snapshots: ProcessSnapshots,
    private readonly settings: LifecycleSettings,
    private readonly logger: Logger,
  ) {
    this.lastSnapshotIndex = snapshots.latest()?.index ?? 0;
  }

  start(): void {
    this.unsubscribe = this.node.onApplied(() => {
      if (this.state.appliedIndex() - this.lastSnapshotIndex >= this.settings.snapshotEveryEntries) this.snapshot('every entries');
    });
    this.timer = setInterval(() => this.check(), this.settings.retentionCheckIntervalMs);
  }

  /** Stops the policy and takes a last snapshot (clean shutdown: the next start replays less). */
  async stop(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    if (this.timer !== null) clearInterval(this.timer);
    if (this.state.appliedIndex() > this.lastSnapshotIndex && !this.node.installing()) await this.takeSnapshot('shutdown');
  }

  private snapshot(reason: string): void {
    if (this.closed || this.node.installing()) return;
    void this.takeSnapshot(reason);
  }

  private async takeSnapshot(reason: string): Promise<void> {
    try {
      const taken = await this.snapshots.take((index) => this.node.termAt(index));
      if (taken === null) return;
      this.lastSnapshotIndex = taken.index;
      this.counters.snapshotsWritten += 1;
      this.logger.debug({ index: taken.index, reason }, 'snapshot written');
      this.deleteSegments();
    } catch (error) {
      // A failed snapshot write costs only a longer replay; the log is kept until one succeeds.
      this.counters.snapshotFailures += 1;
      this.logger.error({ err: error, reason }, 'snapshot failed; the log is kept until one succeeds');
    }
  }

  /** One retention round: the leader may propose a truncation; every node deletes what it can. */
  check(): void {
    // While a leader's snapshot is installed the log and the state are being replaced.
    if (this.closed || this.node.installing()) return;
    if (this.node.leadership().role === 'leader') this.proposeTruncation();
    this.deleteSegments();
    // Retention is held back only by the snapshots: take one, so the next round can delete.
    if (this.state.retainedFromIndex() > this.snapshots.logNeededFrom() && this.deletableBelow(this.state.retainedFromIndex()) > 0) this.snapshot('retention');
  }

  /** The first index retention wants kept, from the leader's own segments (never the one being written). */
  private wantedFirstIndex(): number {
    const segments = this.log.listSegments();
    const sealed = segments.slice(0, -1);
    const now = Date.now();
    let first = this.log.firstIndex();
    let bytes = segments.reduce((sum, s) => sum + s.bytes, 0);
    for (const segment of sealed) {
      const tooOld = now - segment.lastModifiedMs > this.settings.retentionMaxAgeMs;
      const tooBig = this.settings.retentionMaxBytes !== null && bytes > this.settings.retentionMaxBytes;
      if (!tooOld && !tooBig) break;
      first = segment.lastIndex + 1;
      bytes -= segment.bytes;
    }
    return first;
  }

  private proposeTruncation(): void {
    const applied = this.state.appliedIndex();
    const firstIndex = Math.min(this.wantedFirstIndex(), applied + 1);
    if (firstIndex <= this.state.retainedFromIndex()) return;
    this.node.propose(encodeCommand({ kind: 'truncateLog', firstIndex }), 'majority').then(
      () => {
        this.counters.retentionTruncations += 1;
        this.logger.info({ firstIndex }, 'retention: log truncated');
      },
      (error: unknown) => this.logger.warn({ err: error, firstIndex }, 'retention: truncation not committed; retried next round'),
    );
  }

  /** How many segments lie wholly below `index` (deleteBefore would remove them). */
  private deletableBelow(index: number): number {
    return this.log.listSegments().slice(0, -1).filter((s) => s.lastIndex < index).length;
  }

  private deleteSegments(): void {
    if (this.node.installing()) return;
    // The store's own commit floor, not the core's commit index: the driver raises the floor only
    // once a Ready completed, so between the two the core can be ahead (and is, after a restart).
    // A snapshot package being sent to a follower reads segments from logPinnedFrom() on.
    const needed = Math.min(this.snapshots.logNeededFrom(), this.snapshots.logPinnedFrom());
    const bound = Math.min(this.state.retainedFromIndex(), needed, this.log.commitIndexFloor() + 1);
    // deleteBefore removes only whole segments below the bound: nothing when none lies there.
    if (bound <= this.log.firstIndex()) return;
    const before = this.log.firstIndex();
    this.log.deleteBefore(bound);
    if (this.log.firstIndex() > before) this.counters.segmentDeletions += 1;
  }
}
