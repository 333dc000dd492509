// A Raft node in a real process: the NodeDriver (driver.ts) wired to real ports — the log
// store and hard-state store on disk, the peer transport, the broker's state machine, Node's
// clock and setImmediate — plus what only a process has: the tick timer, status with its pid,
// waiting for a leader, and log lines for role changes. The Ready contract itself lives in
// the driver, which the simulator and the tests run too.
import type { Logger } from 'pino';
import type { ClusterConfig, QuorumMode } from '../config/config.js';
import type { NodeStatus } from '../protocol/index.js';
import type { RaftStatus, Role } from '../raft/core.js';
import type { Message } from '../raft/messages.js';
import type { LogReader } from '../raft/raft-log.js';
import type { Entry, HardState, NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import { isLmqError } from '../util/errors.js';
import { type Acknowledged, NodeDriver } from './driver.js';
import { EventLoopDelayMonitor } from './event-loop-delay.js';
import { NodeObserver } from './node-observer.js';
import type { DriverHardStateStore, DriverLogStore, PeerMessage, Scheduler, StateMachine } from './ports.js';
import { MAX_SNAPSHOT_PACKAGE_BYTES } from './process-snapshots.js';
import type { DriverSnapshotStore, TransferTuning } from './snapshot-transfer.js';

export type { NodeStatus } from '../protocol/index.js';
export type { StateMachine } from './ports.js';

/** The log store as a process uses it (src/log/log-store.ts): promises, adapted to the driver's port. */
export interface NodeLogStore extends LogReader {
  append(entries: readonly Entry[]): void;
  /** Resolves with the highest index that counts as persisted under the flush mode. */
  flush(): Promise<number>;
  setCommitIndex(index: number): void;
  close(): Promise<void>;
  /** Counters since the store was opened. */
  stats(): { fsyncs: number; appendedEntries: number; appendedBytes: number };
  /** Bytes the log's segments hold (headers and frames). */
  logBytes(): number;
}

export interface NodeHardStateStore {
  load(): HardState;
  /** Resolves once the hard state is durable. */
  save(hardState: HardState): Promise<void>;
}

/** The peer transport: encodes and queues messages for a peer. */
export interface NodeTransport {
  send(to: NodeId, message: PeerMessage): void;
}

export interface RaftNodeOptions<R> {
  readonly config: ClusterConfig;
  readonly id: NodeId;
  readonly log: NodeLogStore;
  readonly hardState: NodeHardStateStore;
  readonly stateMachine: StateMachine<R>;
  readonly peers: NodeTransport;
  /** Without it the node never compacts its log and never installs a snapshot. */
  readonly snapshots?: DriverSnapshotStore;
  readonly logger: Logger;
  /** Injected for tests; Math.random in production (the core itself has no randomness). */
  readonly randomInt?: (n: number) => number;
}

/** Committed entries handed to the state machine per Ready. */
const MAX_APPLY_BYTES = 4 * 1024 * 1024;
/** A proposal not acknowledged under its quorum mode within this is answered LMQ_TIMEOUT. */
const MAX_PROPOSAL_WAIT_MS = 10_000;
/**
 * Snapshot transfers: chunks well under a peer frame, a few in flight (the follower stages them
 * to a file), resent after a second without answer, given up after 30 s without progress.
 */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const SNAPSHOT_INFLIGHT_CHUNKS = 4;
const SNAPSHOT_RESEND_AFTER_MS = 1_000;
const SNAPSHOT_ABANDON_AFTER_MS = 30_000;

function transferTuning(tickMs: number): TransferTuning {
  return {
    maxChunkBytes: SNAPSHOT_CHUNK_BYTES,
    maxInflightBytes: SNAPSHOT_INFLIGHT_CHUNKS * SNAPSHOT_CHUNK_BYTES,
    maxPackageBytes: MAX_SNAPSHOT_PACKAGE_BYTES,
    resendAfterTicks: Math.max(1, Math.ceil(SNAPSHOT_RESEND_AFTER_MS / tickMs)),
    abandonAfterTicks: Math.max(2, Math.ceil(SNAPSHOT_ABANDON_AFTER_MS / tickMs)),
  };
}

/** The log store's promises as the driver's completion callbacks; each flush is timed for the observer. */
function logPort(store: NodeLogStore, observer: NodeObserver): DriverLogStore {
  return {
    firstIndex: () => store.firstIndex(),
    lastIndex: () => store.lastIndex(),
    term: (index) => store.term(index),
    entries: (lo, hiExclusive, maxBytes) => store.entries(lo, hiExclusive, maxBytes),
    append: (entries) => store.append(entries),
    flush: (persisted, failed) => {
      const startedMs = performance.now();
      void store.flush().then((index) => {
        observer.flushed(performance.now() - startedMs);
        persisted(index);
      }, failed);
    },
    setCommitIndex: (index) => store.setCommitIndex(index),
  };
}

function hardStatePort(store: NodeHardStateStore): DriverHardStateStore {
  return {
    load: () => store.load(),
    save: (hardState, saved, failed) => void store.save(hardState).then(saved, failed),
  };
}

/** Wall time never drives correctness here, only proposal deadlines: a monotonic clock. */
/** At most one refused-message line per peer this often; the suppressed ones are counted. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

const PROCESS_SCHEDULER: Scheduler = {
  nowMs: () => performance.now(),
  soon: (task) => void setImmediate(task),
};

export class RaftNode<R> {
  readonly id: NodeId;
  private readonly driver: NodeDriver<R>;
  private readonly options: RaftNodeOptions<R>;
  private readonly logger: Logger;
  private tickTimer: NodeJS.Timeout | null = null;
  private readonly eventLoopDelay = new EventLoopDelayMonitor();
  /** Elections, leader changes and flush durations since the process started (the console, /metrics). */
  readonly observer = new NodeObserver();
  private stopped = false;
  private readonly appliedListeners = new Set<() => void>();
  /** Refused peer messages, one reason per peer (node ids are the config's fixed set). */
  private readonly refusalLog: RateLimitedLog;
  /** Waiting for this node to learn who leads (see waitForLeader). */
  private readonly leaderWaiters = new Set<() => void>();

  constructor(options: RaftNodeOptions<R>) {
    this.options = options;
    this.id = options.id;
    this.logger = options.logger;
    this.refusalLog = new RateLimitedLog(options.logger, REFUSAL_LOG_INTERVAL_MS);
    const raft = options.config.raft;
    this.driver = new NodeDriver<R>(
      {
        id: options.id,
        voters: options.config.nodes.map((n) => n.id),
        raft: {
          electionTimeoutTicks: raft.electionTimeoutTicks,
          heartbeatIntervalTicks: raft.heartbeatIntervalTicks,
          maxInflightMsgs: raft.maxInflightMsgs,
          maxInflightBytes: raft.maxInflightBytes,
          maxAppendBytes: raft.maxAppendBytes,
          maxCatchUpBytesPerTick: Math.max(1, Math.floor((raft.maxCatchUpBytesPerSec * raft.tickMs) / 1000)),
          maxApplyBytes: MAX_APPLY_BYTES,
          maxUncommittedEntries: raft.maxUncommittedEntries,
          maxUncommittedBytes: raft.maxUncommittedBytes,
          // No preferredLeader: the core's is fixed at construction, and the preferred leader can
          // change at run time (`leader preferred`); the broker hands leadership to it
          // (src/broker/leadership.ts), raft.preferredLeader being its default.
        },
        maxProposalWaitMs: MAX_PROPOSAL_WAIT_MS,
        ...(options.snapshots === undefined ? {} : { transfer: transferTuning(raft.tickMs) }),
      },
      {
        log: logPort(options.log, this.observer),
        hardState: hardStatePort(options.hardState),
        peers: options.peers,
        ...(options.snapshots === undefined ? {} : { snapshots: options.snapshots }),
        stateMachine: options.stateMachine,
        scheduler: PROCESS_SCHEDULER,
        randomInt: options.randomInt ?? ((n) => Math.floor(Math.random() * n)),
        events: {
          roleChanged: ({ role, term, leader, lastIndex, commitIndex }) => {
            this.observer.roleChanged(role, term, leader);
            if (leader !== null) this.releaseLeaderWaiters();
            this.logger.info({ leader, lastIndex, commitIndex }, role === 'leader' ? 'became leader' : `now ${role}`);
          },
          applied: () => {
            for (const listener of this.appliedListeners) listener();
          },
          refusedMessage: ({ from, count, reasons }) => this.logRefusal(from, count, reasons),
          fatal: (error) => {
            // A failed fsync or write, or a broken invariant: the node cannot keep its promises.
            if (isLmqError(error)) {
              // An operator's problem (a full disk, corrupt data): one line that says what to do, no stack.
              this.logger.fatal({ code: error.code, ...error.details }, error.message);
              this.logger.flush();
              process.stderr.write(`ledgermq: ${error.message}\n`);
              process.exit(error.exitCode);
            }
            this.logger.fatal({ err: error }, 'the Ready loop failed; stopping the process');
            process.exit(70);
          },
        },
      },
    );
  }

  /** A peer sent messages no correct peer sends (a bug, or a forged frame): warn, rate-limited. */
  private logRefusal(from: NodeId, count: number, reasons: readonly string[]): void {
    this.refusalLog.warn(`refused from ${from}`, { from, count, reasons }, 'dropped raft messages no correct peer sends');
  }

  start(): void {
    assert(this.tickTimer === null, 'node started twice');
    this.tickTimer = setInterval(() => this.driver.tick(), this.options.config.raft.tickMs);
    this.eventLoopDelay.start();
  }

  /** Stops ticking, finishes the Ready in progress and closes the log (flushed). */
  async stop(): Promise<void> {
    assert(!this.stopped, 'node stopped twice');
    this.stopped = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    this.eventLoopDelay.stop();
    await new Promise<void>((resolve) => this.driver.stop(resolve));
    this.releaseLeaderWaiters();
    await this.options.log.close();
  }

  /** A message from a peer, as decoded off the wire: checked before the core sees it. */
  receive(from: NodeId, message: unknown): void {
    if (this.stopped) return;
    this.driver.receive(from, message);
  }

  /** The transport saw the connection from `peer` close: if it led us, elect a successor soon. */
  peerDisconnected(peer: NodeId): void {
    this.driver.peerDisconnected(peer);
  }

  /**
   * Appends one entry and answers once it is acknowledged under `mode`. Rejects with
   * LMQ_NOT_LEADER (with a leader hint), LMQ_OVERLOADED, or LMQ_LEADERSHIP_LOST (outcome unknown).
   */
  propose(data: Uint8Array, mode: QuorumMode): Promise<Acknowledged<R>> {
    return new Promise((resolve, reject) => this.driver.propose(data, mode, { resolve, reject }));
  }

  /**
   * Hands leadership to `target`: the core catches it up, then tells it to campaign at once
   * (RaftCore.transferLeadership). False when this node does not lead or has stopped; a
   * transfer to itself cancels a pending one (true when there was one).
   */
  transferLeadership(target: NodeId): boolean {
    return this.driver.transferLeadership(target);
  }

  /** The core's own view: role, term, leader, lastIndex, the pending transferee and (leader) each voter's progress. */
  raftStatus(): RaftStatus {
    return this.driver.status();
  }

  status(): NodeStatus {
    const s = this.driver.status();
    const delay = this.eventLoopDelay.read();
    return {
      id: s.id,
      pid: process.pid,
      role: s.role,
      term: s.term,
      leader: s.leader,
      firstIndex: this.options.log.firstIndex(),
      snapshotIndex: this.options.snapshots?.latest()?.index ?? 0,
      lastIndex: s.lastIndex,
      persistedIndex: s.persistedIndex,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      followers: s.progress.filter((p) => p.id !== this.id).map((p) => ({ id: p.id, matchIndex: p.match, lag: s.lastIndex - p.match, state: p.state })),
      storage: this.options.log.stats(),
      logBytes: this.options.log.logBytes(),
      eventLoopDelayP99Ms: delay.p99Ms,
      eventLoopDelayMaxMs: delay.maxMs,
    };
  }

  /** Term of the entry at index in this node's log (undefined when compacted away or past the end). */
  termAt(index: number): number | undefined {
    return this.driver.termAt(index);
  }

  /** A snapshot from the leader is being installed: the state machine is about to be replaced. */
  installing(): boolean {
    return this.driver.core.installPending() !== null;
  }

  /** Commit and persisted indexes (the most retention may ever delete up to). */
  indexes(): { commitIndex: number; persistedIndex: number } {
    return this.driver.indexes();
  }

  /** Who this node is and whom it follows: cheap enough to check on every request. */
  leadership(): { id: NodeId; role: Role; leader: NodeId | null } {
    const { role, leader } = this.driver.summary();
    return { id: this.id, role, leader };
  }

  /**
   * Resolves once this node knows a leader (itself or a peer), or after timeoutMs. A request
   * that reaches a node mid-election waits here and is answered as soon as the election ends,
   * instead of sending its client into a retry backoff that outlasts the election.
   */
  waitForLeader(timeoutMs: number): Promise<void> {
    if (this.driver.summary().leader !== null || this.stopped) return Promise.resolve();
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

  /** Whether this node leads with a state that reflects every earlier commit (cheap: every request asks). */
  leaderCaughtUp(): boolean {
    return this.driver.leaderHasAppliedOwnTerm();
  }

  /**
   * Resolves once this node leads with a state that reflects every earlier commit (it applied an
   * entry of its own term), or after timeoutMs; returns whether it does.
   */
  async waitUntilLeaderCaughtUp(timeoutMs: number): Promise<boolean> {
    if (this.leaderCaughtUp()) return true;
    const deadline = performance.now() + timeoutMs;
    while (!this.stopped && this.driver.summary().role === 'leader' && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, Math.max(1, deadline - performance.now()));
        const unsubscribe = this.onApplied(finish);
        function finish(): void {
          clearTimeout(timer);
          unsubscribe();
          resolve();
        }
      });
      if (this.driver.leaderHasAppliedOwnTerm()) return true;
    }
    return this.driver.leaderHasAppliedOwnTerm();
  }

  /** Ends every waitForLeader() now: a leader is known, or (shutdown) nobody should wait for one. */
  releaseLeaderWaiters(): void {
    for (const wake of [...this.leaderWaiters]) wake();
  }

  /** Term and role for every log line of this process (a pino mixin). */
  logContext(): { term: number; role: Role } {
    const { term, role } = this.driver.summary();
    return { term, role };
  }

  /** Called after every batch of applied entries (long polling waits on it). */
  onApplied(listener: () => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }
}
