// Raft messages exchanged between nodes. Plain data: the transport encodes them as they are.
import type { Entry, NodeId } from './types.js';

// Widest msgpack encodings (the peer transport sends a message as it is), for bounding an
// append message's frame from what the core counts (entryBytes). Node ids are at most 32
// characters (config.ts); every number is encoded as 9 bytes at worst.
/**
 * An append message without its entries: a map of 9 keys whose values are "append", two ids
 * (str8 + 32), five u64 numbers and an array32 header.
 */
export const APPEND_ENVELOPE_WIRE_BYTES = 194;
/** One entry besides its data: a map of 4 keys, index and term as u64, type, a bin32 header. */
export const APPEND_ENTRY_WIRE_BYTES = 46;

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /** Sender's term; for a preVote, the term the sender would campaign in. */
  readonly term: number;
}

export interface VoteRequest extends Envelope {
  readonly type: 'preVote' | 'vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set when the leader handed over leadership (TimeoutNow): voters skip the leader-lease check. */
  readonly transfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: 'preVoteResp' | 'voteResp';
  readonly reject: boolean;
}

/**
 * A node that started with no state asks each peer for its term and whether its log is empty
 * (see RaftCore's ForgottenVote). Neither message moves anyone's term.
 */
export interface StateProbe extends Envelope {
  readonly type: 'probe';
  /** The sender's last index (`term` is its term): the receiver learns from the probe too. */
  readonly lastIndex: number;
}

export interface StateProbeResponse extends Envelope {
  readonly type: 'probeResp';
  /** The responder's last index (`term` is its term). */
  readonly lastIndex: number;
}

export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  /** The leader's last index when it sent this (a follower rebuilding a lost disk learns it is caught up). */
  readonly leaderLastIndex: number;
}

export interface AppendResponse extends Envelope {
  readonly type: 'appendResp';
  /** Accepted: the follower's log matches the leader's up to `index`. Rejected: the prevIndex refused. */
  readonly index: number;
  readonly reject: boolean;
  /** On reject, the leader may resume at rejectHint + 1 once it checked its own term there (fast backtrack). */
  readonly rejectHint: number;
  /** Term of the follower's entry at rejectHint. */
  readonly hintTerm: number;
}

export interface Heartbeat extends Envelope {
  readonly type: 'heartbeat';
  /** min(follower's match, leader's commit): never more than the follower is known to hold. */
  readonly commit: number;
  /** The leader's last index (a follower rebuilding a lost disk learns it is caught up). */
  readonly leaderLastIndex: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResp';
}

/** Leadership transfer: the target campaigns at once, skipping pre-vote. */
export interface TimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
}

/**
 * InstallSnapshot: the follower needs entries the leader no longer holds, so it gets the
 * leader's snapshot at `index` (the entry there has term `snapshotTerm`) with the retained log
 * up to it. The core deals in this metadata only: the node layer streams the data in chunks
 * (src/node/snapshot-transfer.ts) and hands the follower's core this message once the whole
 * snapshot is staged and verified. Answered with an appendResp for `index` once installed.
 */
export interface InstallSnapshot extends Envelope {
  readonly type: 'snapshot';
  readonly index: number;
  readonly snapshotTerm: number;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | TimeoutNow
  | InstallSnapshot
  | StateProbe
  | StateProbeResponse;
export type MessageType = Message['type'];


const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function isEntry(v: unknown): v is Entry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return isIndex(e.index) && isIndex(e.term) && (e.type === 0 || e.type === 1) && e.data instanceof Uint8Array;
}

/**
 * Checks a message decoded off the wire field by field, so a malformed one is dropped at the
 * edge instead of tripping the core's invariant assertions. Returns the message or null.
 */
export function validateMessage(value: unknown): Message | null {
  if (typeof value !== 'object' || value === null) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.from !== 'string' || typeof m.to !== 'string' || !isIndex(m.term)) return null;
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return isIndex(m.lastIndex) && isIndex(m.lastTerm) && isBool(m.transfer) ? (value as Message) : null;
    case 'preVoteResp':
    case 'voteResp':
      return isBool(m.reject) ? (value as Message) : null;
    case 'append': {
      if (!isIndex(m.prevIndex) || !isIndex(m.prevTerm) || !isIndex(m.commit) || !isIndex(m.leaderLastIndex) || !Array.isArray(m.entries)) return null;
      const entries = m.entries as unknown[];
      const contiguous = entries.every((e, i) => isEntry(e) && e.index === (m.prevIndex as number) + 1 + i);
      return contiguous ? (value as Message) : null;
    }
    case 'appendResp':
      return isIndex(m.index) && isBool(m.reject) && isIndex(m.rejectHint) && isIndex(m.hintTerm) ? (value as Message) : null;
    case 'heartbeat':
      return isIndex(m.commit) && isIndex(m.leaderLastIndex) ? (value as Message) : null;
    case 'heartbeatResp':
    case 'timeoutNow':
      return value as Message;
    case 'probe':
    case 'probeResp':
      return isIndex(m.lastIndex) ? (value as Message) : null;
    case 'snapshot':
      return isIndex(m.index) && m.index >= 1 && isIndex(m.snapshotTerm) && m.snapshotTerm >= 1 ? (value as Message) : null;
    default:
      return null;
  }
}
