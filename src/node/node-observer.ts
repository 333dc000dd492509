// What a process's Raft node has seen happen, for the console and /metrics (src/http): elections
// it started, the leaders it has known (a timeline), and how long each flush of the log took.
// The core's status says where a node is now; this keeps what it went through since it started.
import type { Role } from '../raft/core.js';
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';

/** One change of the leader this node knows (null: it knows none, mid-election). */
export interface LeaderChange {
  /** Epoch ms on this node's clock. */
  readonly atMs: number;
  readonly term: number;
  readonly leader: NodeId | null;
}

/** Leader changes kept: the console shows the recent ones. */
const MAX_LEADER_CHANGES = 100;

export class NodeObserver {
  private electionsStarted = 0;
  private readonly changes: LeaderChange[] = [];
  private readonly flushListeners = new Set<(durationMs: number) => void>();

  /** A role change from the driver: counts elections and records a change of leader. */
  roleChanged(role: Role, term: number, leader: NodeId | null): void {
    if (role === 'candidate') this.electionsStarted += 1;
    const last = this.changes.at(-1);
    if (last !== undefined && last.leader === leader && last.term === term) return;
    // A node that knows no leader between two terms records it only when it knew one before.
    if (leader === null && (last === undefined || last.leader === null)) return;
    this.changes.push({ atMs: Date.now(), term, leader });
    if (this.changes.length > MAX_LEADER_CHANGES) this.changes.shift();
  }

  flushed(durationMs: number): void {
    assert(durationMs >= 0, 'a flush takes no negative time');
    for (const listener of this.flushListeners) listener(durationMs);
  }

  /** Elections this node started (it became a candidate: its pre-vote, if any, won) since the process started. */
  elections(): number {
    return this.electionsStarted;
  }

  /** Oldest first, at most MAX_LEADER_CHANGES. */
  leaderChanges(): readonly LeaderChange[] {
    return [...this.changes];
  }

  /** Called with the duration of every log flush from now on (fdatasync under flush.mode sync). */
  onFlush(listener: (durationMs: number) => void): () => void {
    this.flushListeners.add(listener);
    return () => this.flushListeners.delete(listener);
  }
}
