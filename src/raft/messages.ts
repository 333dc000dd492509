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


/**
 * The largest term and index a peer may name: 2^48 elections or entries is beyond any real
 * cluster's life, and far enough below 2^53 that a node's own arithmetic on them stays exact.
 * A message naming more is refused at the edge, so no frame can push a node's term past it.
 * (A peer that holds the cluster secret can still name the bound itself, after which no node
 * can campaign: Raft trusts its authenticated peers; README, Security.)
 */
export const MAX_WIRE_TERM = 2 ** 48;
export const MAX_WIRE_INDEX = 2 ** 48;
/** Node ids are at most 32 characters (config.ts). */
const MAX_NODE_ID_LENGTH = 32;

/** A log index a peer may name (0 to MAX_WIRE_INDEX). */
export const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_WIRE_INDEX;
/** A term a peer may name (0 to MAX_WIRE_TERM). */
export const isTerm = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_WIRE_TERM;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isNodeId = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= MAX_NODE_ID_LENGTH;

function isEntry(v: unknown): v is Entry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return isIndex(e.index) && isTerm(e.term) && (e.type === 0 || e.type === 1) && e.data instanceof Uint8Array;
}

/** Why an append's fields cannot come from a correct leader, or null when they can. */
function appendProblem(m: Record<string, unknown>, term: number): string | null {
  if (!isIndex(m.prevIndex) || !isTerm(m.prevTerm) || !isIndex(m.commit) || !isIndex(m.leaderLastIndex) || !Array.isArray(m.entries)) return 'a field is missing or out of range';
  if (m.prevTerm > term) return `prevTerm ${m.prevTerm} is above the message's term ${term}`;
  const entries = m.entries as unknown[];
  let previousTerm = m.prevTerm;
  for (const [i, e] of entries.entries()) {
    if (!isEntry(e)) return `entry ${i} is malformed`;
    if (e.index !== m.prevIndex + 1 + i) return `entry ${i} has index ${e.index}, not ${m.prevIndex + 1 + i}`;
    if (e.term < previousTerm || e.term > term) return `entry ${e.index} has term ${e.term}, outside [${previousTerm}, ${term}]`;
    previousTerm = e.term;
  }
  if (m.prevIndex + entries.length > m.leaderLastIndex) return `entries end past the leader's last index ${m.leaderLastIndex}`;
  if (m.commit > m.leaderLastIndex) return `commit ${m.commit} is past the leader's last index ${m.leaderLastIndex}`;
  return null;
}

/** Why a message's type-specific fields are impossible, or null when they are fine. */
function fieldsProblem(m: Record<string, unknown>, term: number): string | null {
  switch (m.type) {
    case 'preVote':
    case 'vote':
      if (!isIndex(m.lastIndex) || !isTerm(m.lastTerm) || !isBool(m.transfer)) return 'a field is missing or out of range';
      return m.lastTerm > term ? `lastTerm ${m.lastTerm} is above the campaign's term ${term}` : null;
    case 'preVoteResp':
    case 'voteResp':
      return isBool(m.reject) ? null : 'reject is not a boolean';
    case 'append':
      return appendProblem(m, term);
    case 'appendResp':
      if (!isIndex(m.index) || !isBool(m.reject) || !isIndex(m.rejectHint) || !isTerm(m.hintTerm)) return 'a field is missing or out of range';
      if (m.hintTerm > term) return `hintTerm ${m.hintTerm} is above the message's term ${term}`;
      return m.reject && m.rejectHint > m.index ? `rejectHint ${m.rejectHint} is past the rejected index ${m.index}` : null;
    case 'heartbeat':
      if (!isIndex(m.commit) || !isIndex(m.leaderLastIndex)) return 'a field is missing or out of range';
      return m.commit > m.leaderLastIndex ? `commit ${m.commit} is past the leader's last index ${m.leaderLastIndex}` : null;
    case 'heartbeatResp':
    case 'timeoutNow':
      return null;
    case 'probe':
    case 'probeResp':
      return isIndex(m.lastIndex) ? null : 'lastIndex is missing or out of range';
    case 'snapshot':
      if (!isIndex(m.index) || m.index < 1 || !isTerm(m.snapshotTerm) || m.snapshotTerm < 1) return 'a field is missing or out of range';
      return m.snapshotTerm > term ? `snapshotTerm ${m.snapshotTerm} is above the message's term ${term}` : null;
    default:
      return `unknown message type ${JSON.stringify(m.type)?.slice(0, 32)}`;
  }
}

export type ValidatedMessage = { readonly ok: true; readonly message: Message } | { readonly ok: false; readonly reason: string };

/**
 * Checks a message decoded off the wire field by field — ranges, and the relations a correct
 * sender always keeps (entry terms non-decreasing and never above the message's term, commit
 * within the leader's log) — so a malformed or impossible one is dropped at the edge instead
 * of tripping the core's invariant assertions. The reason is for a log line.
 */
export function validateMessage(value: unknown): ValidatedMessage {
  if (typeof value !== 'object' || value === null) return { ok: false, reason: 'not an object' };
  const m = value as Record<string, unknown>;
  if (!isNodeId(m.from) || !isNodeId(m.to)) return { ok: false, reason: 'from or to is not a node id' };
  if (!isTerm(m.term)) return { ok: false, reason: `term is not a whole number from 0 to ${MAX_WIRE_TERM}` };
  const problem = fieldsProblem(m, m.term);
  return problem === null ? { ok: true, message: value as Message } : { ok: false, reason: `${String(m.type)}: ${problem}` };
}
