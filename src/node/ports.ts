// The ports the NodeDriver talks to — hashicorp/raft's shape: each dependency is its own small
// interface, and each has a real implementation (src/log, src/transport, src/broker, Node's
// timers) and an in-memory twin (memory-ports.ts, src/sim) that the simulator and the tests
// run. Completions are callbacks, not promises (TigerBeetle style): the real ports call them
// from their I/O callbacks, the in-memory twins from the simulator's tick loop, so the same
// driver runs deterministically in a synchronous simulation. A port may also complete
// synchronously, inside the call; the driver allows for it.
import type { Role } from '../raft/core.js';
import type { Message } from '../raft/messages.js';
import type { LogReader } from '../raft/raft-log.js';
import type { Entry, HardState, NodeId } from '../raft/types.js';
import type { TransferMessage } from './snapshot-transfer.js';

/** What goes over a peer link: Raft's messages and the chunks of a snapshot transfer. */
export type PeerMessage = Message | TransferMessage;

/** Called once when an I/O request has completed; the error path is fatal for the node. */
export type Failed = (error: unknown) => void;

/** The node's log: read access for the core, writes and flushes for the driver. */
export interface DriverLogStore extends LogReader {
  /**
   * Writes entries; entries[0].index <= lastIndex() + 1, and a suffix from entries[0].index is
   * replaced (a Raft conflict). Not persisted until a flush that follows it completes.
   */
  append(entries: readonly Entry[]): void;
  /**
   * Calls persisted(index) once every entry appended before the call counts as persisted under
   * the flush mode (sync: fdatasync'd); index >= the last appended index. failed() instead on an
   * I/O error.
   */
  flush(persisted: (persistedIndex: number) => void, failed: Failed): void;
  /** Entries up to index are committed and persisted: the store may refuse to truncate them. */
  setCommitIndex(index: number): void;
}

export interface DriverHardStateStore {
  /** The state saved last; {term: 0, vote: null} for a new node. */
  load(): HardState;
  /** Calls saved() once hardState is durable; failed() on an I/O error. */
  save(hardState: HardState, saved: () => void, failed: Failed): void;
}

export interface PeerSender {
  /** Queues a message for a peer; delivery is best effort (Raft and the transfer retry). */
  send(to: NodeId, message: PeerMessage): void;
}

/** What the node applies committed entries to (the broker implements it). */
export interface StateMachine<R> {
  /** The last index applied before this process started (0 when the machine is volatile). */
  appliedIndex(): number;
  /** One result per entry, in order; deterministic. */
  apply(entries: readonly Entry[]): R[];
}

/** Time and deferred work: Node's clock and setImmediate in production, the tick loop in the simulator. */
export interface Scheduler {
  /** Milliseconds on a clock that never goes back (proposal deadlines). */
  nowMs(): number;
  /** Runs task later, after the work in progress (group commit: what arrives meanwhile joins it). */
  soon(task: () => void): void;
}

/** What the node reports as it goes; every member is optional. */
export interface DriverEvents {
  /** The role or the known leader changed. */
  roleChanged?(change: { role: Role; term: number; leader: NodeId | null; lastIndex: number; commitIndex: number }): void;
  /** A batch of committed entries was applied (long polls wait on it). */
  applied?(): void;
  /**
   * Messages from `from` were dropped: malformed, or impossible from a correct peer (`reasons`
   * has at most a few of the `count`). Production logs them, rate-limited; without a handler
   * (the simulator, where every peer is correct) a refusal is an InvariantViolation.
   */
  refusedMessage?(refusal: { from: NodeId; count: number; reasons: readonly string[] }): void;
  /**
   * The driver cannot keep its promises any more (a failed write or fsync, a broken invariant).
   * Production logs and exits; without a handler the error is thrown to the caller.
   */
  fatal?(error: unknown): void;
}
