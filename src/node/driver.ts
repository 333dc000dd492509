// The NodeDriver carries out the Raft core's Ready contract — the one copy of it that
// production, the simulator and the tests all run. For each Ready, in order: the hard state is
// saved (durable) before anything is sent; messages go out; entries are appended and flushed;
// the acknowledgements that claim durability (persistedMessages) go out only after the flush;
// committed entries are applied; then advance(). It also answers proposals under their quorum
// mode (ProposalTracker) and fails them when leadership ends.
//
// It talks only to ports (ports.ts): no timers, sockets or files of its own. Completions are
// callbacks, so a port may finish synchronously (tests), from the simulator's tick loop, or
// from real I/O; one Ready is in progress at a time, and work that arrives meanwhile joins the
// next one (group commit). While a Ready waits on the disk, messages that need no durability
// (heartbeats, appends) still go out, so the leader's fsync and the followers' overlap.
//
// Snapshots: when the core asks to send one, the driver streams it (snapshot-transfer.ts);
// a follower's fully staged and verified snapshot is handed to its core between Readies, and
// the Ready that follows installs it before anything else is persisted.
import type { QuorumMode } from '../config/config.js';
import { RaftCore, type RaftOptions, type RaftStatus, type Ready, type Role } from '../raft/core.js';
import type { Message } from '../raft/messages.js';
import { validateMessage } from '../raft/messages.js';
import type { Entry, NodeId } from '../raft/types.js';
import { InvariantViolation, assert } from '../util/assert.js';
import { LmqError, NOT_SENT } from '../util/errors.js';
import type { DriverEvents, DriverHardStateStore, DriverLogStore, PeerSender, Scheduler, StateMachine } from './ports.js';
import { type ProposalReply, ProposalTracker } from './proposals.js';
import {
  type DriverSnapshotStore,
  SnapshotReceiver,
  SnapshotSender,
  type StagedSnapshot,
  type TransferMessage,
  type TransferTuning,
  isTransferMessage,
  validateTransferMessage,
} from './snapshot-transfer.js';

export type { Acknowledged, ProposalReply } from './proposals.js';

/** The core's tuning; the driver supplies the ports (storage, hard state, applied index). */
export type RaftTuning = Omit<RaftOptions, 'id' | 'voters' | 'storage' | 'snapshots' | 'hardState' | 'appliedIndex' | 'randomInt'>;

export interface NodeDriverOptions {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly raft: RaftTuning;
  /** A proposal not acknowledged under its quorum mode within this is answered LMQ_TIMEOUT. */
  readonly maxProposalWaitMs: number;
  /** How snapshots are streamed to followers (with ports.snapshots). */
  readonly transfer?: TransferTuning;
}

export interface NodeDriverPorts<R> {
  readonly log: DriverLogStore;
  readonly hardState: DriverHardStateStore;
  readonly peers: PeerSender;
  readonly stateMachine: StateMachine<R>;
  /** Without it the node never compacts its log, so no follower ever needs a snapshot. */
  readonly snapshots?: DriverSnapshotStore;
  readonly scheduler: Scheduler;
  /** The core's only source of randomness (election timeouts): Math.random or a seeded stream. */
  readonly randomInt: (n: number) => number;
  readonly events?: DriverEvents;
}

/** Where the Ready in progress is: each stage starts with the I/O of the previous one complete. */
type Stage = 'saveHardState' | 'send' | 'install' | 'write' | 'applyAndAdvance';

export class NodeDriver<R> {
  readonly id: NodeId;
  /** For inspection and the core's own scenario tests; everything else goes through the driver. */
  readonly core: RaftCore;
  private readonly proposals = new ProposalTracker<R>();
  private readonly ports: NodeDriverPorts<R>;
  private readonly events: DriverEvents;
  /** The Ready being carried out, and how far. */
  private ready: Ready | null = null;
  private stage: Stage = 'saveHardState';
  /** A port call of the Ready in progress has not completed yet. */
  private waitingOnIo = false;
  /** pump() is on the stack (a synchronous completion must not re-enter it). */
  private pumping = false;
  private pumpScheduled = false;
  private earlySendScheduled = false;
  private stopped = false;
  private failed = false;
  private stopRequested = false;
  /** stop() has completed: no port is touched again (the log may be closed by now). */
  private finished = false;
  private onStopped: (() => void) | null = null;
  private lastRole: Role = 'follower';
  private lastLeader: NodeId | null = null;
  private readonly snapshotSender: SnapshotSender | null = null;
  private readonly snapshotReceiver: SnapshotReceiver | null = null;
  /** A verified staged snapshot, handed to the core once no Ready is in progress. */
  private stagedSnapshot: StagedSnapshot | null = null;

  constructor(
    private readonly options: NodeDriverOptions,
    ports: NodeDriverPorts<R>,
  ) {
    assert(options.maxProposalWaitMs > 0, 'proposals have a positive deadline');
    this.id = options.id;
    this.ports = ports;
    this.events = ports.events ?? {};
    const snapshots = ports.snapshots;
    this.core = new RaftCore({
      ...options.raft,
      id: options.id,
      voters: options.voters,
      storage: ports.log,
      snapshots: snapshots === undefined ? undefined : { latest: () => snapshots.latest() },
      hardState: ports.hardState.load(),
      appliedIndex: ports.stateMachine.appliedIndex(),
      randomInt: ports.randomInt,
    });
    // A restarted node's commit index starts at its applied index: the log store learns it now,
    // not at the first Ready (which may be long in coming on an isolated node).
    this.syncCommitFloor();
    if (snapshots !== undefined) {
      assert(options.transfer !== undefined, 'a node with snapshots has transfer tuning');
      const hooks = {
        id: options.id,
        send: (to: NodeId, message: TransferMessage) => this.ports.peers.send(to, message),
        failed: (peer: NodeId) => {
          if (this.stopped) return;
          this.core.snapshotFailed(peer);
          this.kick();
        },
        fatal: (error: unknown) => this.fail(error),
      };
      this.snapshotSender = new SnapshotSender(snapshots, options.transfer, hooks);
      this.snapshotReceiver = new SnapshotReceiver(snapshots, hooks, () => this.core.summary().term, (staged) => {
        if (this.stopped) return;
        this.stagedSnapshot = staged;
        this.kick();
      });
    }
  }

  /** One Raft tick: elections, heartbeats, proposal deadlines. */
  tick(): void {
    if (this.stopped) return;
    this.core.tick();
    this.observeRoleChange();
    this.proposals.expire(this.ports.scheduler.nowMs());
    if (this.snapshotSender !== null) {
      const term = this.core.summary().term;
      this.snapshotSender.retain((peer, meta, sessionTerm) => sessionTerm === term && this.core.snapshotPendingFor(peer) === meta.index);
      this.snapshotSender.tick();
    }
    this.kick();
  }

  /**
   * A message from a peer, as decoded off the wire: checked before the core sees it. A
   * malformed or impossible one is dropped and reported (events.refusedMessage), never
   * asserted on: the node's invariants are its own, a peer's bug or malice must not crash it.
   */
  receive(from: NodeId, message: unknown): void {
    if (this.stopped) return;
    if (isTransferMessage(message)) return this.receiveTransfer(from, message);
    const valid = validateMessage(message);
    if (!valid.ok) return this.refused(from, 1, [valid.reason]);
    if (valid.message.from !== from || valid.message.to !== this.id) return this.refused(from, 1, [`${valid.message.type} names from ${valid.message.from} to ${valid.message.to}`]);
    // The core's InstallSnapshot travels as chunks; the driver steps it once the package is staged.
    if (valid.message.type === 'snapshot') return this.refused(from, 1, ['a bare snapshot message (snapshots arrive as chunks)']);
    this.core.step(valid.message);
    const refusals = this.core.takeRefusals();
    if (refusals.count > 0) this.refused(from, refusals.count, refusals.reasons);
    this.observeRoleChange();
    this.kick();
  }

  private receiveTransfer(from: NodeId, message: unknown): void {
    if (this.snapshotSender === null || this.snapshotReceiver === null) return this.refused(from, 1, ['a snapshot transfer message, but this node has no snapshot store']);
    const valid = validateTransferMessage(message, this.options.transfer!);
    if (valid === null || valid.from !== from || valid.to !== this.id) return this.refused(from, 1, ['a malformed snapshot transfer message']);
    if (valid.type === 'snapshotChunk') this.snapshotReceiver.receive(valid);
    else this.snapshotSender.acknowledged(valid);
  }

  private refused(from: NodeId, count: number, reasons: readonly string[]): void {
    if (this.events.refusedMessage === undefined) throw new InvariantViolation(`refused ${count} message(s) from ${from}: ${reasons.join('; ')}`);
    this.events.refusedMessage({ from, count, reasons });
  }

  /** The transport saw the connection from `peer` close: if it led us, elect a successor soon. */
  peerDisconnected(peer: NodeId): void {
    if (this.stopped) return;
    this.core.peerDisconnected(peer);
    this.observeRoleChange();
    this.kick();
  }

  /**
   * Appends one entry and answers `reply` once it is acknowledged under `mode`, or rejects with
   * LMQ_NOT_LEADER (with a leader hint), LMQ_OVERLOADED, LMQ_UNAVAILABLE (nothing was appended)
   * or LMQ_LEADERSHIP_LOST / LMQ_TIMEOUT (outcome unknown).
   */
  propose(data: Uint8Array, mode: QuorumMode, reply: ProposalReply<R>): void {
    const refusal = this.refuseProposal();
    if (refusal !== null) return reply.reject(refusal);
    const result = this.core.propose([data]);
    if (!result.ok) {
      if (result.reason === 'overloaded') {
        const { maxUncommittedEntries, maxUncommittedBytes } = this.options.raft;
        return reply.reject(new LmqError('LMQ_OVERLOADED', `node ${this.id} has as many writes waiting for commit as it holds (raft.maxUncommittedEntries ${maxUncommittedEntries}, raft.maxUncommittedBytes ${maxUncommittedBytes}); retry shortly`));
      }
      const leader = result.reason === 'notLeader' ? result.leader : null;
      return reply.reject(new LmqError('LMQ_NOT_LEADER', `node ${this.id} is not the leader${leader ? `; the leader is ${leader}` : ''}`, { leader }));
    }
    const deadlineMs = this.ports.scheduler.nowMs() + this.options.maxProposalWaitMs;
    this.proposals.add(result.firstIndex, result.term, mode, deadlineMs, reply);
    this.kick();
  }

  private refuseProposal(): LmqError | null {
    if (this.stopped) return new LmqError('LMQ_UNAVAILABLE', `node ${this.id} is shutting down`, NOT_SENT);
    if (this.proposals.size() < this.options.raft.maxUncommittedEntries) return null;
    // Committed-but-unanswered proposals (e.g. `all` quorum waiting on a slow follower) count too.
    return new LmqError('LMQ_OVERLOADED', `node ${this.id} has ${this.proposals.size()} writes waiting for acknowledgement; retry shortly`);
  }

  /** Hands leadership to `target` once it is caught up (false when this node cannot). */
  transferLeadership(target: NodeId): boolean {
    if (this.stopped) return false;
    const started = this.core.transferLeadership(target);
    this.kick();
    return started;
  }

  /**
   * Stops taking work and calls onStopped once the Readies the core already holds have
   * completed — after that the driver touches no port again. Proposals they acknowledge are
   * answered; only those still waiting then fail (outcome unknown).
   */
  stop(onStopped: () => void): void {
    assert(!this.stopRequested, 'driver stopped twice');
    this.stopRequested = true;
    this.stopped = true;
    this.onStopped = onStopped;
    this.snapshotSender?.closeAll();
    if (this.failed) return this.finishStop();
    // Drain now rather than at the scheduled turn, which may come after the caller closed the log.
    if (!this.pumping) this.pump();
  }

  status(): RaftStatus {
    return this.core.status();
  }

  /** See RaftCore.leaderHasAppliedOwnTerm: whether a leader's state answers for every earlier commit. */
  leaderHasAppliedOwnTerm(): boolean {
    return this.core.leaderHasAppliedOwnTerm();
  }

  summary(): { role: Role; term: number; leader: NodeId | null } {
    return this.core.summary();
  }

  /** Commit and persisted indexes, and (leader only, else 0) the index every voter holds. */
  indexes(): { commitIndex: number; persistedIndex: number; allMatchIndex: number } {
    return this.core.indexes();
  }

  termAt(index: number): number | undefined {
    return this.core.termAt(index);
  }

  /** No Ready in progress and none pending (tests and the simulator wait for quiet). */
  isIdle(): boolean {
    return this.ready === null && !this.core.hasReady();
  }

  // ---------------------------------------------------------------- the Ready loop

  /**
   * Runs the Ready loop soon; work that arrives meanwhile joins the next Ready (group commit).
   * Every entry point calls it; call it after acting on the core directly (tests).
   */
  kick(): void {
    if (this.ready !== null) return this.scheduleEarlySend();
    if (this.pumping || this.pumpScheduled) return; // the loop looks for the next Ready itself
    this.pumpScheduled = true;
    this.ports.scheduler.soon(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Once per scheduler turn while a Ready waits: send what needs no durability. */
  private scheduleEarlySend(): void {
    if (this.earlySendScheduled) return;
    this.earlySendScheduled = true;
    this.ports.scheduler.soon(() => {
      this.earlySendScheduled = false;
      if (this.stopped) return;
      this.send(this.core.takeMessages());
    });
  }

  /** Carries out Readies until one waits on I/O or none is left. Never re-entered. */
  private pump(): void {
    if (this.pumping || this.failed || this.finished) return;
    this.pumping = true;
    try {
      // afterReadies() may answer proposals and report a role change, whose handlers may bring
      // new work: look for it again before leaving.
      do {
        while (!this.waitingOnIo) {
          if (this.ready === null) {
            if (this.stagedSnapshot !== null) this.stepStagedSnapshot(this.stagedSnapshot);
            // After stop() the Readies already in the core still run (they answer proposals);
            // nothing new arrives, since every entry point ignores work once stopped.
            if (!this.core.hasReady()) break;
            this.ready = this.core.ready();
            this.stage = 'saveHardState';
          }
          this.continueReady(this.ready);
        }
        if (this.ready !== null) break;
        this.afterReadies();
      } while (this.core.hasReady());
    } catch (error) {
      this.fail(error);
    } finally {
      this.pumping = false;
    }
    if (this.stopped && this.ready === null && this.onStopped !== null) this.finishStop();
  }

  /** The core decides whether the staged snapshot is needed; if it is, the next Ready installs it. */
  private stepStagedSnapshot(staged: StagedSnapshot): void {
    this.stagedSnapshot = null;
    if (this.stopped) return;
    const { meta } = staged;
    this.core.step({ type: 'snapshot', from: staged.from, to: this.id, term: staged.term, index: meta.index, snapshotTerm: meta.term });
    const refusals = this.core.takeRefusals();
    if (refusals.count > 0) this.refused(staged.from, refusals.count, refusals.reasons);
    const pending = this.core.installPending();
    if (pending === null || pending.index !== meta.index) {
      this.ports.snapshots!.discardStaged();
      this.snapshotReceiver?.release();
    }
    this.observeRoleChange();
  }

  /** Runs the current stage of `ready`; returns when it waits on I/O or the Ready is done. */
  private continueReady(ready: Ready): void {
    if (this.stage === 'saveHardState') {
      this.stage = 'send';
      const hardState = ready.hardState;
      if (hardState !== null) return this.waitFor((done, failed) => this.ports.hardState.save(hardState, done, failed));
    }
    if (this.stage === 'send') {
      this.stage = 'install';
      this.send(ready.messages);
    }
    if (this.stage === 'install') {
      this.stage = 'write';
      const snapshot = ready.snapshot;
      if (snapshot !== null) {
        return this.waitFor((done, failed) => this.ports.snapshots!.install(snapshot, () => {
          this.snapshotReceiver?.release(); // it may stage again
          done();
        }, failed));
      }
    }
    if (this.stage === 'write') {
      this.stage = 'applyAndAdvance';
      const last = ready.entries[ready.entries.length - 1];
      if (last !== undefined) {
        this.ports.log.append(ready.entries);
        return this.waitFor((done, failed) => this.ports.log.flush((persisted) => {
          if (persisted < last.index) return failed(new InvariantViolation(`flush reported ${persisted}, short of ${last.index}`));
          done();
        }, failed));
      }
    }
    assert(this.stage === 'applyAndAdvance', () => `unknown Ready stage ${this.stage}`);
    this.send(ready.persistedMessages);
    this.apply(ready.committedEntries);
    this.core.advance(ready);
    this.ready = null;
    this.afterAdvance();
  }

  /** Starts one port call of the Ready in progress; its completion resumes the loop. */
  private waitFor(start: (done: () => void, failed: (error: unknown) => void) => void): void {
    assert(!this.waitingOnIo, 'one port call at a time per Ready');
    this.waitingOnIo = true;
    const ready = this.ready;
    let completed = false;
    const complete = () => {
      // Completions run outside pump()'s try (in an I/O callback): a broken rule here is fatal too.
      try {
        assert(!completed, 'a port completed one call twice');
        assert(this.ready === ready, 'a completion arrived for a Ready that is not in progress');
      } catch (error) {
        return this.fail(error);
      }
      completed = true;
      this.waitingOnIo = false;
      this.pump();
    };
    start(complete, (error) => this.fail(error));
  }

  private send(messages: readonly Message[]): void {
    for (const m of messages) {
      // The core names the snapshot; the sender streams its data in chunks instead.
      if (m.type === 'snapshot') this.snapshotSender!.start(m.to, m.term, { index: m.index, term: m.snapshotTerm });
      else this.ports.peers.send(m.to, m);
    }
  }

  private apply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const results = this.ports.stateMachine.apply(entries);
    assert(results.length === entries.length, 'one result per applied entry');
    const { allMatchIndex } = this.core.indexes();
    entries.forEach((entry, i) => this.proposals.applied(entry.index, entry.term, results[i]!, allMatchIndex));
    this.events.applied?.();
  }

  private syncCommitFloor(): void {
    const { commitIndex, persistedIndex } = this.core.indexes();
    this.ports.log.setCommitIndex(Math.min(commitIndex, persistedIndex));
  }

  private afterAdvance(): void {
    this.syncCommitFloor();
    const { persistedIndex, allMatchIndex } = this.core.indexes();
    if (this.proposals.size() === 0) return;
    this.proposals.replicatedEverywhere(allMatchIndex);
    this.proposals.persistedLocally(persistedIndex, (index) => this.core.termAt(index));
  }

  /**
   * When the loop goes quiet. `all` quorum: the last follower's ack often arrives after the
   * entry was applied and moves nothing else, so it brings no Ready (and no afterAdvance) of its
   * own; without this check the write would wait for the next heartbeat or proposal.
   */
  private afterReadies(): void {
    if (this.proposals.size() > 0) this.proposals.replicatedEverywhere(this.core.indexes().allMatchIndex);
    this.observeRoleChange();
  }

  /** A leader that steps down fails what it was waiting on; role and leader changes are reported. */
  private observeRoleChange(): void {
    const { role, term, leader } = this.core.summary();
    if (role === this.lastRole && leader === this.lastLeader) return;
    if (this.lastRole === 'leader' && role !== 'leader') {
      this.proposals.failAll(`lost its leader (node ${this.id} stepped down in term ${term})`);
    }
    this.lastRole = role;
    this.lastLeader = leader;
    if (this.events.roleChanged !== undefined) {
      const { lastIndex, commitIndex } = this.core.status();
      this.events.roleChanged({ role, term, leader, lastIndex, commitIndex });
    }
  }

  private finishStop(): void {
    assert(this.ready === null || this.failed, 'stopped with a Ready in progress');
    this.finished = true;
    this.proposals.failAll('could not be acknowledged: the node is shutting down');
    const onStopped = this.onStopped;
    this.onStopped = null;
    onStopped?.();
  }

  /**
   * A failed write or fsync, or a broken invariant: the node cannot keep its promises. Nothing
   * more is done; waiting proposals and a pending stop() are answered (outcome unknown).
   */
  private fail(error: unknown): void {
    if (this.failed) return; // the first failure is the one reported
    this.failed = true;
    this.stopped = true;
    this.proposals.failAll(`could not be acknowledged: node ${this.id} failed (${error instanceof Error ? error.message : String(error)})`);
    if (this.onStopped !== null) this.finishStop();
    if (this.events.fatal === undefined) throw error;
    this.events.fatal(error);
  }
}
