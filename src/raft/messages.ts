// Raft messages exchanged between nodes. Plain data: the transport encodes them as they are.
import type { Entry, NodeId } from './types.js';

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

export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
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
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResp';
}

/** Leadership transfer: the target campaigns at once, skipping pre-vote. */
export interface TimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
}

export type Message = VoteRequest | VoteResponse | AppendRequest | AppendResponse | Heartbeat | HeartbeatResponse | TimeoutNow;
export type MessageType = Message['type'];

export const MESSAGE_TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  'preVote', 'vote', 'preVoteResp', 'voteResp', 'append', 'appendResp', 'heartbeat', 'heartbeatResp', 'timeoutNow',
]);
