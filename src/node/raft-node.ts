// A Raft node in a real process: it drives the pure core with a tick timer, steps messages
// from peers into it, and carries out each Ready with real I/O in the contract's order —
// hard state synced, messages sent, entries written and flushed (fdatasync in sync mode),
// acknowledgements sent, committed entries applied, then advance(). It also answers
// proposals under the configured quorum mode and reports its status.
import type { Logger } from 'pino';
import type { ClusterConfig, QuorumMode } from '../config/config.js';
import { RaftCore, type Ready, type Role } from '../raft/core.js';
import { validateMessage } from '../raft/messages.js';
import type { LogReader } from '../raft/raft-log.js';
import type { Entry, HardState, NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { type Acknowledged, ProposalTracker } from './proposals.js';

/** The log store as the node uses it (src/log implements it). */
export interface NodeLogStore extends LogReader {
  append(entries: readonly Entry[]): void;
  /** Resolves with the highest index that counts as persisted under the flush mode. */
  flush(): Promise<number>;
  setCommitIndex(index: number): void;
  close(): Promise<void>;
  /** Counters since the store was opened. */
  stats(): { fsyncs: number; appendedEntries: number; appendedBytes: number };
}

export interface NodeHardStateStore {
  load(): HardState;
  /** Resolves once the hard state is durable. */
  save(hardState: HardState): Promise<void>;
}

/** What the node applies committed entries to (the broker implements it). */
export interface StateMachine<R> {
  appliedIndex(): number;
  /** One result per entry, in order; deterministic. */
  apply(entries: readonly Entry[]): R[];
}

export interface PeerSender {
  send(to: NodeId, message: unknown): void;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly pid: number;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly lastIndex: number;
  readonly persistedIndex: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** Leader only: each follower's match index and how far it lags behind the leader's last index. */
  readonly followers: readonly { id: NodeId; matchIndex: number; lag: number; state: string }[];
  /** The log store's counters since this process started (fsyncs, entries and bytes appended). */
  readonly storage: { fsyncs: number; appendedEntries: number; appendedBytes: number };
}

export interface RaftNodeOptions<R> {
  readonly config: ClusterConfig;
  readonly id: NodeId;
  readonly log: NodeLogStore;
  readonly hardState: NodeHardStateStore;
  readonly stateMachine: StateMachine<R>;
  readonly peers: PeerSender;
  readonly logger: Logger;
  /** Injected for tests; Math.random in production (the core itself has no randomness). */
  readonly randomInt?: (n: number) => number;
}

/** Committed entries handed to the state machine per Ready. */
const MAX_APPLY_BYTES = 4 * 1024 * 1024;
/** A proposal not acknowledged under its quorum mode within this is answered LMQ_TIMEOUT. */
const MAX_PROPOSAL_WAIT_MS = 10_000;

export class RaftNode<R> {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly proposals = new ProposalTracker<R>();
  private readonly options: RaftNodeOptions<R>;
  private readonly logger: Logger;
  private tickTimer: NodeJS.Timeout | null = null;
  private driving: Promise<void> | null = null;
  private driveAgain = false;
  private earlySendScheduled = false;
  private stopped = false;
  private lastRole: Role = 'follower';
  private lastLeader: NodeId | null = null;
  private readonly appliedListeners = new Set<() => void>();
  /** Waiting for this node to learn who leads (see waitForLeader). */
  private readonly leaderWaiters = new Set<() => void>();

  constructor(options: RaftNodeOptions<R>) {
    this.options = options;
    this.id = options.id;
    const raft = options.config.raft;
    this.core = new RaftCore({
      id: options.id,
      voters: options.config.nodes.map((n) => n.id),
      storage: options.log,
      hardState: options.hardState.load(),
      appliedIndex: options.stateMachine.appliedIndex(),
      electionTimeoutTicks: raft.electionTimeoutTicks,
      heartbeatIntervalTicks: raft.heartbeatIntervalTicks,
      maxInflightMsgs: raft.maxInflightMsgs,
      maxInflightBytes: raft.maxInflightBytes,
      maxAppendBytes: raft.maxAppendBytes,
      maxApplyBytes: MAX_APPLY_BYTES,
      maxUncommittedEntries: raft.maxUncommittedEntries,
      maxUncommittedBytes: raft.maxUncommittedBytes,
      preferredLeader: raft.preferredLeader,
      randomInt: options.randomInt ?? ((n) => Math.floor(Math.random() * n)),
    });
    this.logger = options.logger;
  }

  start(): void {
    assert(this.tickTimer === null, 'node started twice');
    this.tickTimer = setInterval(() => {
      this.core.tick();
      this.observeRoleChange();
      this.proposals.expire(Date.now());
      this.kick();
    }, this.options.config.raft.tickMs);
    this.kick();
  }

  /** Stops ticking, finishes the Ready in progress and closes the log (flushed). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    while (this.driving !== null) await this.driving;
    this.proposals.failAll('could not be acknowledged: the node is shutting down');
    this.releaseLeaderWaiters();
    await this.options.log.close();
  }

  /** A message from a peer, as decoded off the wire: checked before the core sees it. */
  receive(from: NodeId, message: unknown): void {
    if (this.stopped) return;
    const valid = validateMessage(message);
    if (valid === null || valid.from !== from || valid.to !== this.id) {
      this.logger.warn({ from }, 'dropping a malformed raft message');
      return;
    }
    this.core.step(valid);
    this.observeRoleChange();
    this.kick();
  }

  /** The transport saw the connection from `peer` close: if it led us, elect a successor soon. */
  peerDisconnected(peer: NodeId): void {
    if (this.stopped) return;
    this.core.peerDisconnected(peer);
    this.observeRoleChange();
  }

  /**
   * Appends one entry and answers once it is acknowledged under `mode`. Rejects with
   * LMQ_NOT_LEADER (with a leader hint), LMQ_OVERLOADED, or LMQ_LEADERSHIP_LOST (outcome unknown).
   */
  propose(data: Uint8Array, mode: QuorumMode): Promise<Acknowledged<R>> {
    if (this.stopped) return Promise.reject(new LmqError('LMQ_UNAVAILABLE', `node ${this.id} is shutting down`));
    if (this.proposals.size() >= this.options.config.raft.maxUncommittedEntries) {
      // Committed-but-unanswered proposals (e.g. `all` quorum waiting on a slow follower) count too.
      return Promise.reject(new LmqError('LMQ_OVERLOADED', `node ${this.id} has ${this.proposals.size()} writes waiting for acknowledgement; retry shortly`));
    }
    const result = this.core.propose([data]);
    if (!result.ok) {
      if (result.reason === 'overloaded') {
        const { maxUncommittedEntries, maxUncommittedBytes } = this.options.config.raft;
        return Promise.reject(new LmqError('LMQ_OVERLOADED', `node ${this.id} has as many writes waiting for commit as it holds (raft.maxUncommittedEntries ${maxUncommittedEntries}, raft.maxUncommittedBytes ${maxUncommittedBytes}); retry shortly`));
      }
      const leader = result.reason === 'notLeader' ? result.leader : null;
      return Promise.reject(new LmqError('LMQ_NOT_LEADER', `node ${this.id} is not the leader${leader ? `; the leader is ${leader}` : ''}`, { leader }));
    }
    const ack = this.proposals.add(result.firstIndex, result.term, mode, Date.now() + MAX_PROPOSAL_WAIT_MS);
    this.kick();
    return ack;
  }

  status(): NodeStatus {
    const s = this.core.status();
    return {
      id: s.id,
      pid: process.pid,
      role: s.role,
      term: s.term,
      leader: s.leader,
      lastIndex: s.lastIndex,
      persistedIndex: s.persistedIndex,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      followers: s.progress.filter((p) => p.id !== this.id).map((p) => ({ id: p.id, matchIndex: p.match, lag: s.lastIndex - p.match, state: p.state })),
      storage: this.options.log.stats(),
    };
  }

  /** Who this node is and whom it follows: cheap enough to check on every request. */
  leadership(): { id: NodeId; role: Role; leader: NodeId | null } {
    const { role, leader } = this.core.summary();
    return { id: this.id, role, leader };
  }

  /**
   * Resolves once this node knows a leader (itself or a peer), or after timeoutMs. A request
   * that reaches a node mid-election waits here and is answered as soon as the election ends,
   * instead of sending its client into a retry backoff that outlasts the election.
   */
  waitForLeader(timeoutMs: number): Promise<void> {
    if (this.core.summary().leader !== null || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.leaderWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.leaderWaiters.add(done);
    });
  }

  /** Ends every waitForLeader() now: a leader is known, or (shutdown) nobody should wait for one. */
  releaseLeaderWaiters(): void {
    for (const wake of [...this.leaderWaiters]) wake();
  }

  /** Term and role for every log line of this process (a pino mixin). */
  logContext(): { term: number; role: Role } {
    const { term, role } = this.core.summary();
    return { term, role };
  }

  /** Called after every batch of applied entries (long polling waits on it). */
  onApplied(listener: () => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }

  // ---------------------------------------------------------------- the Ready loop

  /** Runs the Ready loop soon; work that arrives meanwhile joins the next Ready (group commit). */
  private kick(): void {
    if (this.driving !== null) {
      this.driveAgain = true;
      this.scheduleEarlySend();
      return;
    }
    this.driving = new Promise((resolve) => setImmediate(resolve))
      .then(() => this.drive())
      .catch((error: unknown) => {
        // A failed fsync or write leaves the node unable to keep its promises: crash loudly.
        this.logger.fatal({ err: error }, 'the Ready loop failed; stopping the process');
        process.exit(70);
      });
  }

  /**
   * While a Ready waits on the disk, heartbeats and appends still go out (once per event-loop
   * turn, so proposals arriving together share an append): the leader's fsync and the
   * followers' fsyncs then overlap, and a slow disk does not starve followers of heartbeats.
   */
  private scheduleEarlySend(): void {
    if (this.earlySendScheduled) return;
    this.earlySendScheduled = true;
    setImmediate(() => {
      this.earlySendScheduled = false;
      if (this.stopped) return;
      for (const m of this.core.takeMessages()) this.options.peers.send(m.to, m);
    });
  }

  private async drive(): Promise<void> {
    try {
      do {
        this.driveAgain = false;
        while (this.core.hasReady()) await this.handleReady(this.core.ready());
        this.settleReplicatedEverywhere();
        this.observeRoleChange();
      } while (this.driveAgain && !this.stopped);
    } finally {
      this.driving = null;
    }
  }

  private async handleReady(ready: Ready): Promise<void> {
    if (ready.hardState !== null) await this.options.hardState.save(ready.hardState);
    for (const m of ready.messages) this.options.peers.send(m.to, m);
    if (ready.entries.length > 0) {
      this.options.log.append(ready.entries);
      const persisted = await this.options.log.flush();
      const last = ready.entries[ready.entries.length - 1]!;
      assert(persisted >= last.index, () => `flush reported ${persisted}, short of ${last.index}`);
    }
    for (const m of ready.persistedMessages) this.options.peers.send(m.to, m);
    this.apply(ready.committedEntries);
    this.core.advance(ready);
    this.afterAdvance();
  }

  private apply(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const results = this.options.stateMachine.apply(entries);
    assert(results.length === entries.length, 'one result per applied entry');
    const { allMatchIndex } = this.core.indexes();
    entries.forEach((entry, i) => this.proposals.applied(entry.index, entry.term, results[i]!, allMatchIndex));
    for (const listener of this.appliedListeners) listener();
  }

  private afterAdvance(): void {
    const { commitIndex, persistedIndex, allMatchIndex } = this.core.indexes();
    this.options.log.setCommitIndex(Math.min(commitIndex, persistedIndex));
    if (this.proposals.size() === 0) return;
    this.proposals.replicatedEverywhere(allMatchIndex);
    this.proposals.persistedLocally(persistedIndex, (index) => this.core.termAt(index));
  }

  /**
   * `all` quorum: the last follower's ack often arrives after the entry was applied and moves
   * nothing else, so it brings no Ready (and no afterAdvance) of its own; without this check
   * the write would wait for the next heartbeat or proposal.
   */
  private settleReplicatedEverywhere(): void {
    if (this.proposals.size() === 0) return;
    this.proposals.replicatedEverywhere(this.core.indexes().allMatchIndex);
  }

  /** Logs role and leader changes; a leader that steps down fails what it was waiting on. Cheap: runs per message. */
  private observeRoleChange(): void {
    const { role, term, leader } = this.core.summary();
    if (role === this.lastRole && leader === this.lastLeader) return;
    if (this.lastRole === 'leader' && role !== 'leader') {
      this.proposals.failAll(`lost its leader (node ${this.id} stepped down in term ${term})`);
    }
    this.lastRole = role;
    this.lastLeader = leader;
    if (leader !== null) this.releaseLeaderWaiters();
    const { lastIndex, commitIndex } = this.core.status();
    this.logger.info({ leader, lastIndex, commitIndex }, role === 'leader' ? 'became leader' : `now ${role}`);
  }
}
