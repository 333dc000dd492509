// The leader's in-memory meeting point between check-backs and the producers that answer them.
// The client port is request/response only, so a check cannot be pushed to a producer (as
// RocketMQ's broker does over the producer's channel): a producer of a group holds a txChecks
// long poll instead, and the leader's check service (tx-checker.ts) offers each check it has
// counted to the group's polls. A producer is *live* while it holds a poll or held one within
// RECENT_POLL_MS. Nothing here is replicated: after a failover the next check round offers
// every due check again (the counts are replicated, so none is lost, at most asked twice).
import { assert } from '../util/assert.js';

/** A producer that held a poll this recently is live: its next poll is on its way. */
export const RECENT_POLL_MS = 5_000;
/** Checks waiting for a poll, per group at most; beyond, the oldest is dropped (the next round offers it again). */
const MAX_PENDING_PER_GROUP = 10_000;
/** Producers remembered per group; beyond, the one seen longest ago is forgotten. */
const MAX_PRODUCERS_PER_GROUP = 1024;
/** Groups tracked at once; beyond, a group with nobody polling is forgotten. */
const MAX_GROUPS = 10_000;

interface GroupBoard {
  /** txId → when it was offered (ms, monotonic); Map order is offer order. */
  readonly pending: Map<string, number>;
  readonly waiters: Set<() => void>;
  /** clientId → when its last poll ended (monotonic ms); held polls are counted in `holding`. */
  readonly lastPollEndMs: Map<string, number>;
  holding: number;
}

export class TxCheckBoard {
  private readonly groups = new Map<string, GroupBoard>();
  private closed = false;

  /** Whether a producer of the group holds a poll now or held one within RECENT_POLL_MS. */
  isLive(producerGroup: string, nowMs: number): boolean {
    const board = this.groups.get(producerGroup);
    if (board === undefined) return false;
    if (board.holding > 0) return true;
    for (const [clientId, endedMs] of board.lastPollEndMs) {
      if (nowMs - endedMs <= RECENT_POLL_MS) return true;
      board.lastPollEndMs.delete(clientId);
    }
    return false;
  }

  /** A counted check for the group's producers: the next poll of the group takes it. */
  offer(producerGroup: string, txId: string, nowMs: number): void {
    const board = this.board(producerGroup);
    board.pending.delete(txId);
    board.pending.set(txId, nowMs);
    if (board.pending.size > MAX_PENDING_PER_GROUP) board.pending.delete(board.pending.keys().next().value!);
    for (const wake of [...board.waiters]) wake();
  }

  /** Takes up to max checks offered at or after notBeforeMs (older ones are stale: dropped). */
  take(producerGroup: string, max: number, notBeforeMs: number): string[] {
    assert(max >= 1, 'a poll takes at least one check');
    const board = this.groups.get(producerGroup);
    if (board === undefined) return [];
    const taken: string[] = [];
    for (const [txId, offeredMs] of board.pending) {
      if (taken.length === max) break;
      board.pending.delete(txId);
      if (offeredMs >= notBeforeMs) taken.push(txId);
    }
    return taken;
  }

  /**
   * Runs a poll of clientId: live meanwhile; resolves when a check is offered to the group,
   * after waitMs, or at close().
   */
  async hold(producerGroup: string, clientId: string, waitMs: number, nowMs: () => number): Promise<void> {
    const board = this.board(producerGroup);
    board.holding++;
    try {
      if (this.closed || waitMs <= 0 || board.pending.size > 0) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          board.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, waitMs);
        board.waiters.add(wake);
      });
    } finally {
      board.holding--;
      assert(board.holding >= 0, 'held polls went negative');
      this.seen(board, clientId, nowMs());
    }
  }

  /** Ends every held poll now (shutdown); later polls answer at once. */
  close(): void {
    this.closed = true;
    for (const board of this.groups.values()) for (const wake of [...board.waiters]) wake();
  }

  private seen(board: GroupBoard, clientId: string, nowMs: number): void {
    board.lastPollEndMs.delete(clientId);
    board.lastPollEndMs.set(clientId, nowMs);
    if (board.lastPollEndMs.size > MAX_PRODUCERS_PER_GROUP) board.lastPollEndMs.delete(board.lastPollEndMs.keys().next().value!);
  }

  private board(producerGroup: string): GroupBoard {
    let board = this.groups.get(producerGroup);
    if (board !== undefined) return board;
    if (this.groups.size >= MAX_GROUPS) {
      for (const [group, other] of this.groups) {
        if (other.holding === 0 && other.waiters.size === 0) {
          this.groups.delete(group);
          break;
        }
      }
    }
    board = { pending: new Map(), waiters: new Set(), lastPollEndMs: new Map(), holding: 0 };
    this.groups.set(producerGroup, board);
    return board;
  }
}
