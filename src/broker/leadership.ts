// Moving leadership at an operator's request, on the leader. `leader transfer --to ID`
// (transferLeader) hands leadership to a node now and answers only once that node leads, or
// fails saying why: an unknown id, a node down or cut off, one that did not catch up within an
// election timeout, another node winning, or the wait running out — and then cancels the
// transfer, so the leader takes writes again at once. `leader preferred ID|none`
// (setPreferredLeader) is replicated through the log, so every node, and every later leader,
// agrees on it; raft.preferredLeader is its default until one is set. The leader checks every
// heartbeat interval and hands leadership to the preferred node once that node is alive and
// has all of the leader's log (DLedger's preferred leader) — after it restarts too.
import { setTimeout as sleep } from 'node:timers/promises';
import type { RaftNode } from '../node/raft-node.js';
import type { ResponseOf } from '../protocol/index.js';
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import type { ApplyResult, BrokerStateMachine } from './state-machine.js';

/** How often a transfer in progress is looked at: an election takes a few ticks. */
const TRANSFER_POLL_MS = 10;

export interface LeadershipOptions {
  /** raft.preferredLeader: in force until `leader preferred` sets one (or none). */
  readonly configPreferredLeader: NodeId | undefined;
  /** How often the leader looks at the preferred leader's progress: a heartbeat interval. */
  readonly checkIntervalMs: number;
  /** raft.electionTimeoutTicks × raft.tickMs: the core gives a transfer this long to finish. */
  readonly electionTimeoutMs: number;
}

export class Leadership {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly node: RaftNode<ApplyResult>,
    private readonly state: BrokerStateMachine,
    private readonly options: LeadershipOptions,
  ) {
    assert(options.checkIntervalMs >= 1, 'the preferred-leader check runs at least every millisecond');
    assert(options.electionTimeoutMs >= 1, 'an election timeout is positive');
  }

  start(): void {
    assert(this.timer === null, 'leadership checks started twice');
    this.timer = setInterval(() => this.returnToPreferred(), this.options.checkIntervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** The preferred leader in force: the one set at run time (null: none), else the config's. */
  preferredLeader(): NodeId | null {
    const set = this.state.preferredLeader();
    return set === undefined ? (this.options.configPreferredLeader ?? null) : set;
  }

  /** Checked on the leader before a setPreferredLeader is proposed: a voter's id, or null. */
  checkPreferredLeader(node: NodeId | null): void {
    if (node !== null) this.voterOrThrow(node);
  }

  /** Leader only: hands leadership to `to` and resolves once `to` leads (see the header). */
  async transfer(to: NodeId, waitMs: number): Promise<ResponseOf<'transferLeader'>> {
    const raft = this.node.raftStatus();
    this.voterOrThrow(to);
    if (to === this.node.id) return { leader: to, term: raft.term, moved: false };
    const preferred = this.preferredLeader();
    if (preferred !== null && preferred !== to) {
      throw this.failed(`node ${preferred} is the preferred leader, so leadership would return to it; run \`ledgermq leader preferred ${to}\` (or \`none\`) instead`);
    }
    // The core forgets who answered at each check-quorum round; a live peer answers within a
    // heartbeat, so one that stays silent for an election timeout is down or cut off.
    if (!(await this.heardFrom(to, Math.min(waitMs, this.options.electionTimeoutMs)))) throw this.downError(to);
    if (!this.node.transferLeadership(to)) throw this.failed(`node ${this.node.id} no longer leads; retry`);
    return this.awaitTransfer(to, waitMs);
  }

  /** Whether this leader hears from `peer` (recently active) within waitMs. */
  private async heardFrom(peer: NodeId, waitMs: number): Promise<boolean> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const raft = this.node.raftStatus();
      if (raft.role !== 'leader') throw this.failed(`node ${this.node.id} no longer leads; retry`);
      const progress = raft.progress.find((p) => p.id === peer);
      assert(progress !== undefined, "a leader has every voter's progress");
      if (progress.recentActive) return true;
      if (performance.now() >= deadline) return false;
      await sleep(TRANSFER_POLL_MS);
    }
  }

  /** Polls until `to` leads (answered), or the core gave the transfer up, or waitMs passed. */
  private async awaitTransfer(to: NodeId, waitMs: number): Promise<ResponseOf<'transferLeader'>> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      await sleep(TRANSFER_POLL_MS);
      const raft = this.node.raftStatus();
      if (raft.leader === to && raft.role !== 'leader') return { leader: to, term: raft.term, moved: true };
      if (raft.role === 'leader' && raft.transferee === null) {
        // The core gives up at a check-quorum round, which forgets who answered: a peer that
        // does not answer again within an election timeout went down (perhaps just now, while
        // the leader still counted it as heard from when the transfer began).
        if (!(await this.heardFrom(to, this.options.electionTimeoutMs))) throw this.downError(to);
        const peer = raft.progress.find((p) => p.id === to);
        const lag = peer === undefined ? '' : ` (it has index ${peer.match} of ${raft.lastIndex})`;
        throw this.failed(`node ${to} did not catch up with the leader's log within an election timeout${lag}; retry once \`ledgermq status\` shows its follower lag near 0`);
      }
      if (raft.role !== 'leader' && raft.leader !== null && raft.leader !== to) {
        throw this.failed(`node ${raft.leader} won an election meanwhile and leads now (term ${raft.term}); retry the transfer`);
      }
      if (performance.now() >= deadline) {
        this.node.transferLeadership(this.node.id); // cancel: take writes again now
        throw this.failed(`leadership did not move to node ${to} within ${waitMs} ms; \`ledgermq status\` shows who leads`);
      }
    }
  }

  /** Every heartbeat interval on the leader: hand leadership to the preferred node once it has caught up. */
  private returnToPreferred(): void {
    const preferred = this.preferredLeader();
    if (preferred === null || preferred === this.node.id) return;
    const raft = this.node.raftStatus();
    if (raft.role !== 'leader' || raft.transferee !== null || !this.node.leaderCaughtUp()) return;
    const peer = raft.progress.find((p) => p.id === preferred);
    // A preferred id not in the voters is refused when set; the config's is checked at load.
    if (peer !== undefined && peer.recentActive && peer.match === raft.lastIndex) this.node.transferLeadership(preferred);
  }

  private voterOrThrow(id: NodeId): void {
    const voters = this.node.raftStatus().progress.map((p) => p.id);
    if (!voters.includes(id)) throw new LmqError('LMQ_BAD_INPUT', `no node "${id}" in the cluster (its nodes: ${voters.join(', ')})`);
  }

  private downError(to: NodeId): LmqError {
    return this.failed(`node ${to} is down or cut off: leader ${this.node.id} has not heard from it within an election timeout; start it (or heal the network) and retry`);
  }

  private failed(message: string): LmqError {
    return new LmqError('LMQ_TRANSFER_FAILED', message, { leader: this.node.raftStatus().leader });
  }
}
