// The leader's view of one follower: how much of the log it holds (match), what to send next,
// and a bounded window of appends in flight (etcd-io/raft tracker/progress.go, inflights.go).
//
//  probe:     we do not know where the follower's log diverges; send one append at a time
//             and wait for its answer (or a heartbeat response) before the next.
//  replicate: the follower accepted our last probe; stream appends optimistically, up to
//             maxInflightMsgs messages and maxInflightBytes payload bytes not yet acknowledged.
//  snapshot:  the follower needs entries the leader no longer holds; a snapshot at
//             pendingSnapshot is being sent (by the node layer) and nothing else is, until the
//             follower acknowledges it or the transfer is reported failed.
import { assert } from '../util/assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** Appends sent but not acknowledged, oldest first, bounded by count and bytes. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizesBytes: number[] = [];
  private totalBytes = 0;

  constructor(
    private readonly maxMsgs: number,
    private readonly maxBytes: number,
  ) {
    assert(maxMsgs >= 1, 'maxInflightMsgs must be at least 1');
    assert(maxBytes >= 1, 'maxInflightBytes must be at least 1');
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), 'inflight window overflow');
    const previous = this.lastIndexes[this.lastIndexes.length - 1];
    assert(previous === undefined || lastIndex > previous, () => `inflight index ${lastIndex} after ${previous}`);
    this.lastIndexes.push(lastIndex);
    this.sizesBytes.push(bytes);
    this.totalBytes += bytes;
  }

  /** Frees every append whose last entry is at or below `index` (it was acknowledged). */
  freeLE(index: number): void {
    let count = 0;
    while (count < this.lastIndexes.length && this.lastIndexes[count]! <= index) {
      this.totalBytes -= this.sizesBytes[count]!;
      count++;
    }
    this.lastIndexes.splice(0, count);
    this.sizesBytes.splice(0, count);
    assert(this.totalBytes >= 0, 'inflight bytes went negative');
  }

  freeFirstOne(): void {
    const first = this.lastIndexes[0];
    if (first !== undefined) this.freeLE(first);
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizesBytes.length = 0;
    this.totalBytes = 0;
  }

  full(): boolean {
    return this.lastIndexes.length >= this.maxMsgs || this.totalBytes >= this.maxBytes;
  }

  count(): number {
    return this.lastIndexes.length;
  }
}

export class Progress {
  /** Highest index known to be durable on the follower and equal to the leader's log. */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append is outstanding, wait for its answer or a heartbeat response. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflights: Inflights;
  /** The core's tick in which storageReadBytes were sent (see RaftCore's catch-up budget). */
  private storageReadTick = -1;
  /** Bytes of appends read from storage for this follower in storageReadTick. */
  private storageReadBytes = 0;

  constructor(next: number, maxInflightMsgs: number, maxInflightBytes: number) {
    assert(next >= 1, 'next index starts at 1');
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  becomeProbe(): void {
    // Resume from just after what the follower is known to hold — or, after a snapshot, from
    // just after the snapshot when the follower acknowledged it (match is at least that then).
    this.state = 'probe';
    this.probeSent = false;
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.probeSent = false;
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    assert(snapshotIndex > this.match, () => `snapshot ${snapshotIndex} for a follower that holds ${this.match}`);
    this.state = 'snapshot';
    this.probeSent = false;
    this.pendingSnapshot = snapshotIndex;
    this.inflights.reset();
  }

  isPaused(): boolean {
    if (this.state === 'snapshot') return true;
    return this.state === 'probe' ? this.probeSent : this.inflights.full();
  }

  /** Records that entries up to `lastIndex` were sent. */
  sentEntries(lastIndex: number, bytes: number, entryCount: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.inflights.add(lastIndex, bytes);
        this.next = lastIndex + 1;
      }
    } else {
      this.probeSent = true;
    }
    assert(this.match < this.next, () => `progress match ${this.match} must stay below next ${this.next}`);
  }

  /**
   * Bytes of appends read from storage this follower may still be sent in the core's tick
   * `tick`, out of `maxBytes` per tick. A new tick starts with the whole budget.
   */
  storageReadLeft(tick: number, maxBytes: number): number {
    assert(tick >= this.storageReadTick, () => `tick goes back from ${this.storageReadTick} to ${tick}`);
    if (tick !== this.storageReadTick) {
      this.storageReadTick = tick;
      this.storageReadBytes = 0;
    }
    return Math.max(0, maxBytes - this.storageReadBytes);
  }

  /** An append of `bytes` read from storage went to this follower in `tick`. */
  readFromStorage(tick: number, bytes: number): void {
    assert(tick === this.storageReadTick, 'storage reads are counted in the tick that asked for the budget');
    assert(bytes > 0, 'an append read from storage carries entries');
    this.storageReadBytes += bytes;
  }

  /** An acceptance for `index`: returns false when it is stale (already known). */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /** The follower lost entries it had acknowledged: it holds only up to `index` now. */
  forgetMatch(index: number): void {
    assert(index < this.match, () => `forgetting match ${this.match} for a higher ${index}`);
    this.match = index;
    this.becomeProbe();
  }

  /**
   * A rejection of the append at `rejected` with the follower's hint. Returns false when the
   * rejection is stale (it refers to an append we already moved past).
   */
  maybeDecrTo(rejected: number, resumeAt: number): boolean {
    if (this.state === 'snapshot') return false; // answers to appends sent before the snapshot
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, resumeAt + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
