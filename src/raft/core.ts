// The Raft core: a pure, deterministic state machine (etcd-io/raft style). It takes messages,
// ticks and proposals and returns a Ready — what to persist, what to send, what to apply. It
// performs no I/O, keeps no timers and has no randomness of its own: time is counted in ticks
// and the randomized election timeout comes from the injected randomInt.
//
// The Ready contract the node must follow, in this order:
//   1. persist ready.hardState (durably, fsync) if present;
//   2. send ready.messages (they may go before ready.entries are durable: they never claim them);
//   3. install ready.snapshot if present (the leader's snapshot, staged by the node: it replaces
//      the log and the state machine, durably); then persist ready.entries (truncating the
//      store's suffix from entries[0].index), durably under the flush mode;
//   4. send ready.persistedMessages (acknowledgements that claim those entries are durable);
//   5. apply ready.committedEntries in order;
//   6. call advance(ready). Only then is the next Ready produced.
//
// Two-phase replication as DLedger does it: the leader appends *uncommitted*, pushes to
// followers with a bounded pipeline, commits once a majority (itself included, counting only
// what it made durable) holds an entry of its own term, and pushes the commit index on.
//
// Log compaction is the node's: it deletes a log prefix that its newest snapshot covers, and
// the core notices through storage.firstIndex(). A follower that needs a deleted entry gets
// an InstallSnapshot (the node streams the data; the core only says which snapshot and when).
import { assert, unreachable } from '../util/assert.js';
import type { AppendRequest, AppendResponse, InstallSnapshot, Message, StateProbe, StateProbeResponse, VoteRequest, VoteResponse } from './messages.js';
import { Progress } from './progress.js';
import { type LogReader, RaftLog } from './raft-log.js';
import { type Entry, EntryType, type HardState, type NodeId, type SnapshotMeta, entryBytes } from './types.js';

/**
 * After the leader's connection closes, followers campaign one after another, this many ticks
 * apart in voter order, so they do not split the vote: the first usually wins before the next
 * starts, and if its log is behind (its campaign fails) the next one tries.
 */
const QUICK_ELECTION_STAGGER_TICKS = 2;
/** Refusal log lines a node keeps between takeRefusals calls; the count covers the rest. */
const MAX_REFUSALS_KEPT = 16;

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** The node's snapshots, as the core may read them (a pure read of durable metadata). */
export interface SnapshotReader {
  /** The newest durable snapshot, or null. It covers at least storage.firstIndex() - 1. */
  latest(): SnapshotMeta | null;
}

export interface RaftOptions {
  readonly id: NodeId;
  /** Every voting member, this node included. */
  readonly voters: readonly NodeId[];
  readonly storage: LogReader;
  /** Needed once the node compacts its log (a follower behind the first index gets the newest). */
  readonly snapshots?: SnapshotReader | undefined;
  readonly hardState: HardState;
  /** Index the state machine has applied (and kept) before this start; the core resumes after it. */
  readonly appliedIndex: number;
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
  /** Payload bytes in one append message (at least one entry is always sent). */
  readonly maxAppendBytes: number;
  /**
   * Bound on the bytes of appends read from storage (a follower being caught up) that one
   * follower is sent per tick. Reading and encoding them runs on the node's event loop, and a
   * burst of answers (e.g. to heartbeats queued while the follower was away) would otherwise
   * each send another append in the same turn; bounding them per tick keeps heartbeats and the
   * other followers' appends from waiting behind a catch-up. Default: maxAppendBytes.
   */
  readonly maxCatchUpBytesPerTick?: number | undefined;
  /** Committed entries handed out for applying in one Ready. */
  readonly maxApplyBytes: number;
  /** Proposals are refused while this many entries wait for commit (back-pressure). */
  readonly maxUncommittedEntries: number;
  /**
   * Proposals are refused while the leader's proposals not yet applied hold this many payload
   * bytes (one is accepted when none is pending, however large).
   */
  readonly maxUncommittedBytes: number;
  readonly preferredLeader?: NodeId | undefined;
  /** Uniform integer in [0, n): the only source of randomness. */
  readonly randomInt: (n: number) => number;
}

export interface Ready {
  /** Term and vote changed: persist durably before sending anything. */
  readonly hardState: HardState | null;
  /** A snapshot from the leader to install (staged by the node) before `entries` are persisted. */
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly persistedMessages: readonly Message[];
  readonly committedEntries: readonly Entry[];
}

export type ProposeResult =
  | { readonly ok: true; readonly firstIndex: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'notLeader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'transferring'; readonly leader: NodeId }
  | { readonly ok: false; readonly reason: 'overloaded'; readonly leader: NodeId };

/**
 * A node whose hard state is blank (term 0: it never saved one) is either new in a new cluster
 * or lost its disk (a replaced disk). In the second case it has forgotten whom it voted for and
 * which terms it took part in, and its log may have held committed entries that now survive on
 * fewer nodes. Acting as new could elect two leaders in one term, help a deposed leader commit,
 * or elect a leader without a committed entry. So it first asks every voter for its term and
 * whether its log is empty (probe), and takes no part in anything until every one has
 * answered; the highest term heard is then at least every term it took part in before (a peer
 * it voted for or acknowledged is at that term or later, and nothing a peer sent before this
 * incarnation started reaches it: connections are reset). From then on it follows at that
 * term, but it neither votes nor campaigns until a leader has caught it up — its log then
 * durably equals the leader's up to the leader's last index: every committed entry, and every
 * entry an acknowledgement from its lost disk (still in flight, it may arrive and count later)
 * could be counted for — or every log is empty (nothing was ever committed).
 * Then it saves its term with its vote in it marked spent, and is an ordinary node.
 *
 * Until then it never saves its hard state: a restart finds it blank again and starts over,
 * so the restriction survives crashes.
 */
interface ForgottenVote {
  /** Per peer heard from: a lower bound of its term, and whether its log is empty. */
  readonly heard: Map<NodeId, { term: number; emptyLog: boolean }>;
  /** Ticks since the last round of probes to the peers not heard from. */
  probeElapsed: number;
  /** A leader's commit index our log accepted up to; caught up once that is durable here. */
  catchUpTarget: number;
  caughtUp: boolean;
}

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly lastIndex: number;
  readonly persistedIndex: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly transferee: NodeId | null;
  /** Leader only: every voter's progress, this node's match being what it made durable. */
  readonly progress: readonly PeerStatus[];
}

export class RaftCore {
  readonly id: NodeId;
  private readonly voters: readonly NodeId[];
  private readonly options: RaftOptions;
  private readonly log: RaftLog;

  private role: Role = 'follower';
  private term: number;
  private vote: NodeId | null;
  private leader: NodeId | null = null;
  private hardStateDirty = false;

  /** Ticks since the last election timeout reset (followers/candidates) or check-quorum round (leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  private readonly votes = new Map<NodeId, boolean>();
  private readonly progress = new Map<NodeId, Progress>();
  private transferee: NodeId | null = null;
  /** Leader: the commit index advanced, or proposals were appended: push to followers at the next Ready. */
  private broadcastPending = false;
  /** Our leader's connection closed and no leader is known since (see peerDisconnected). */
  private leaderDisconnected = false;
  /**
   * Leader: payload bytes proposed in this term and not yet handed out for applying (etcd's
   * uncommittedSize). Entries of earlier terms applied meanwhile may take it below the truth;
   * it never goes under zero.
   */
  private uncommittedBytes = 0;

  /** Set while this node started with no state and does not yet know it may vote (ForgottenVote). */
  private forgottenVote: ForgottenVote | null;

  /** Ticks since start: the period of the catch-up budget (maxCatchUpBytesPerTick). */
  private tickSeq = 0;
  private readonly maxCatchUpBytesPerTick: number;

  private messages: Message[] = [];
  private persistedMessages: Message[] = [];
  private readyInProgress: Ready | null = null;
  private readonly refusals: string[] = [];
  private refusalCount = 0;
  /** A restored snapshot not yet handed out in a Ready. */
  private snapshotToInstall: SnapshotMeta | null = null;

  constructor(options: RaftOptions) {
    assert(options.voters.includes(options.id), () => `node ${options.id} is not among the voters ${options.voters.join(',')}`);
    assert(new Set(options.voters).size === options.voters.length, 'voter ids are unique');
    assert(options.electionTimeoutTicks > options.heartbeatIntervalTicks, 'election timeout exceeds the heartbeat interval');
    assert(options.hardState.term >= 0, 'term is never negative');
    assert(options.preferredLeader === undefined || options.voters.includes(options.preferredLeader), 'the preferred leader is a voter');
    this.maxCatchUpBytesPerTick = options.maxCatchUpBytesPerTick ?? options.maxAppendBytes;
    assert(this.maxCatchUpBytesPerTick >= 1, 'the catch-up budget is positive');
    this.id = options.id;
    this.voters = [...options.voters];
    this.options = options;
    this.log = new RaftLog(options.storage, options.appliedIndex, options.maxApplyBytes);
    this.term = options.hardState.term;
    this.vote = options.hardState.vote;
    // probeElapsed starts full: the first tick probes.
    this.forgottenVote = this.term === 0 ? { heard: new Map(), probeElapsed: options.electionTimeoutTicks, catchUpTarget: 0, caughtUp: false } : null;
    this.becomeFollower(this.term, null);
    this.maybeRecallVote(); // a single node has no peer to hear from
  }

  /** Whether this node, started with no state, still may not vote or campaign (ForgottenVote). */
  votingSuspended(): boolean {
    return this.forgottenVote !== null;
  }

  /** Learns what m says about its sender's term and log (only while the vote is forgotten). */
  private learnFromPeer(forgotten: ForgottenVote, m: Message): void {
    let term: number;
    let emptyLog: boolean;
    switch (m.type) {
      case 'probe':
      case 'probeResp':
        term = m.term;
        emptyLog = m.lastIndex === 0;
        break;
      case 'preVote':
      case 'vote':
        // A pre-vote names the term the sender would campaign in; a vote request, the term it
        // just moved to: its term before was at least one less.
        term = m.term - 1;
        emptyLog = m.lastIndex === 0;
        break;
      case 'append':
      case 'heartbeat':
      case 'timeoutNow':
      case 'snapshot':
        term = m.term;
        emptyLog = false; // a leader's log holds at least its no-op
        break;
      default:
        return; // nothing that bounds the sender's term and log together
    }
    const known = forgotten.heard.get(m.from);
    forgotten.heard.set(m.from, { term: Math.max(term, known?.term ?? 0), emptyLog: emptyLog && (known?.emptyLog ?? true) });
  }

  private heardFromEveryVoter(forgotten: ForgottenVote): boolean {
    return forgotten.heard.size === this.voters.length - 1;
  }

  /** The highest term any peer was heard at (once every voter was heard). */
  private highestHeardTerm(forgotten: ForgottenVote): number {
    let highest = 0;
    for (const peer of forgotten.heard.values()) highest = Math.max(highest, peer.term);
    return highest;
  }

  /** Probes the peers not yet heard from, once per election timeout. */
  private tickForgottenVote(forgotten: ForgottenVote): void {
    forgotten.probeElapsed++;
    if (forgotten.probeElapsed < this.options.electionTimeoutTicks) return;
    forgotten.probeElapsed = 0;
    for (const to of this.voters) {
      if (to !== this.id && !forgotten.heard.has(to)) this.send({ type: 'probe', from: this.id, to, term: this.term, lastIndex: this.log.lastIndex() });
    }
  }

  /** Ends the forgotten-vote restriction once this node knows it may vote (see ForgottenVote). */
  private maybeRecallVote(): void {
    const forgotten = this.forgottenVote;
    if (forgotten === null || !this.heardFromEveryVoter(forgotten)) return;
    const nothingCommitted = this.log.lastIndex() === 0 && [...forgotten.heard.values()].every((peer) => peer.emptyLog);
    if (!nothingCommitted && !forgotten.caughtUp) return;
    this.forgottenVote = null;
    if (this.term === 0) return; // a new cluster: nobody ever voted, nothing to save
    // Our vote in this term is spent: we may have cast it before the disk was lost.
    if (this.vote === null) this.vote = this.leader ?? this.id;
    this.hardStateDirty = true;
  }

  // ---------------------------------------------------------------- role transitions

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader never becomes a pre-candidate');
    // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
    this.votes.clear();
    this.role = 'preCandidate';
    this.leader = null;
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader never becomes a candidate');
    this.reset(this.term + 1);
    this.setVote(this.id);
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `only a candidate becomes leader, not a ${this.role}`);
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    this.uncommittedBytes = 0;
    for (const id of this.voters) {
      const progress = new Progress(this.log.lastIndex() + 1, this.options.maxInflightMsgs, this.options.maxInflightBytes);
      if (id === this.id) {
        progress.becomeReplicate();
        progress.recentActive = true;
      }
      this.progress.set(id, progress);
    }
    // A leader may only count replicas of its own term's entries toward commit (§5.4.2); the
    // no-op gives it one at once, which commits every older entry before it.
    this.appendEntries([{ type: EntryType.Noop, data: new Uint8Array(0) }]);
  }

  private reset(term: number): void {
    assert(term >= this.term, () => `term goes back from ${this.term} to ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
      // A node that forgot its vote saves nothing until it recalls it (see ForgottenVote).
      if (this.forgottenVote === null) this.hardStateDirty = true;
    }
    this.leader = null;
    this.leaderDisconnected = false;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.options.electionTimeoutTicks + this.options.randomInt(this.options.electionTimeoutTicks);
    this.votes.clear();
    this.progress.clear();
    this.transferee = null;
    this.broadcastPending = false;
  }

  private setVote(candidate: NodeId): void {
    assert(this.forgottenVote === null, 'a node that forgot its vote never votes');
    assert(this.vote === null || this.vote === candidate, () => `vote changes within term ${this.term}: ${this.vote} -> ${candidate}`);
    if (this.vote !== candidate) {
      this.vote = candidate;
      this.hardStateDirty = true;
    }
  }

  /**
   * The node layer saw its connection from `peer` close (e.g. the process died). If `peer`
   * leads us, its lease ends now and our election timer is cut to a short wait, so a dead
   * leader is replaced in a few ticks instead of a whole election timeout. Raft's safety does
   * not depend on it: an election still needs a majority of pre-votes, and a follower that
   * still hears the leader keeps its lease and refuses them. If the leader was alive after all
   * (every follower's connection from it dropped at once), a successor may be elected while
   * it still believes it leads — until its next heartbeat meets the new term and it steps
   * down: the same window as any partition, a heartbeat long instead of an election timeout.
   * Followers go in voter order (see QUICK_ELECTION_STAGGER_TICKS); the election timer still
   * fires as before if this one fails.
   */
  peerDisconnected(peer: NodeId): void {
    if (this.role !== 'follower' || this.leader !== peer) return;
    this.leader = null;
    this.leaderDisconnected = true;
    const rank = this.voters.filter((id) => id !== peer).indexOf(this.id);
    assert(rank >= 0, 'a follower is a voter');
    const waitTicks = 1 + QUICK_ELECTION_STAGGER_TICKS * rank;
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - waitTicks);
  }

  // ---------------------------------------------------------------- ticks

  tick(): void {
    this.tickSeq++;
    const forgotten = this.forgottenVote;
    if (forgotten !== null && !this.heardFromEveryVoter(forgotten)) return this.tickForgottenVote(forgotten);
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    // After the leader's connection closed, a pre-vote that peers still in their lease ignored
    // is asked again every few ticks rather than after a whole election timeout: their lease
    // ends as soon as they notice the closed connection too (a busy node notices late).
    const askAgain = this.leaderDisconnected && this.role === 'preCandidate' && this.electionElapsed >= QUICK_ELECTION_STAGGER_TICKS;
    if (this.electionElapsed >= this.randomizedElectionTimeout || askAgain) {
      this.electionElapsed = 0;
      this.campaign('preElection');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.options.electionTimeoutTicks) {
      this.electionElapsed = 0;
      // Check quorum: a leader that has not heard from a majority for a whole election timeout
      // steps down, so a partitioned leader stops accepting writes it can never commit.
      if (!this.quorumActive()) {
        this.becomeFollower(this.term, null);
        return;
      }
      for (const [id, progress] of this.progress) {
        // A follower silent for a whole election timeout is probably down: stop streaming to it
        // (probe again) instead of filling the transport with appends nobody acknowledges.
        // A snapshot transfer to it is given up too (the node layer retries it when it answers).
        if (id !== this.id && !progress.recentActive && progress.state !== 'probe') progress.becomeProbe();
        progress.recentActive = id === this.id;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.transferee = null;
    }
    if (this.heartbeatElapsed >= this.options.heartbeatIntervalTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
      this.maybeReturnToPreferredLeader();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const progress of this.progress.values()) if (progress.recentActive) active++;
    return active >= this.quorumSize();
  }

  private quorumSize(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  /** DLedger's preferred leader: hand leadership back once that node is alive and caught up. */
  private maybeReturnToPreferredLeader(): void {
    const preferred = this.options.preferredLeader;
    if (preferred === undefined || preferred === this.id || this.transferee !== null) return;
    const progress = this.progress.get(preferred);
    assert(progress !== undefined, 'the preferred leader has progress');
    if (progress.recentActive && progress.match === this.log.lastIndex()) this.transferLeadership(preferred);
  }

  // ---------------------------------------------------------------- elections

  private campaign(kind: 'preElection' | 'election' | 'transfer'): void {
    if (kind === 'preElection') this.becomePreCandidate();
    else this.becomeCandidate();
    const type = kind === 'preElection' ? 'preVote' : 'vote';
    const term = kind === 'preElection' ? this.term + 1 : this.term;
    this.votes.set(this.id, true);
    if (this.tallyVotes() === 'won') return this.winElection(kind);
    for (const to of this.voters) {
      if (to === this.id) continue;
      this.send({
        type, from: this.id, to, term, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(), transfer: kind === 'transfer',
      });
    }
  }

  private winElection(kind: 'preElection' | 'election' | 'transfer'): void {
    if (kind !== 'preElection') return this.becomeLeader();
    // A node that forgot its vote learns from pre-votes but never campaigns (ForgottenVote).
    if (this.forgottenVote !== null) return this.becomeFollower(this.term, null);
    this.campaign('election');
  }

  private tallyVotes(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const vote of this.votes.values()) {
      if (vote) granted++;
      else rejected++;
    }
    if (granted >= this.quorumSize()) return 'won';
    if (rejected > this.voters.length - this.quorumSize()) return 'lost';
    return 'pending';
  }

  private handleVoteRequest(m: VoteRequest): void {
    const responseType = m.type === 'preVote' ? 'preVoteResp' : 'voteResp';
    // We may vote for m.from if we already did this term, or if we have no vote and no leader
    // this term; a pre-vote for a future term can always be granted (it changes nothing here).
    const canVote =
      this.vote === m.from || (this.vote === null && this.leader === null) || (m.type === 'preVote' && m.term > this.term);
    const suspended = m.type === 'vote' && this.forgottenVote !== null;
    if (canVote && !suspended && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      // The response carries the candidate's term so it is counted; for a pre-vote our own term
      // stays as it is.
      this.send({ type: responseType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.setVote(m.from);
      }
    } else {
      this.send({ type: responseType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expected = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    if (m.type !== expected) return;
    this.votes.set(m.from, !m.reject);
    const outcome = this.tallyVotes();
    if (outcome === 'won') this.winElection(this.role === 'preCandidate' ? 'preElection' : 'election');
    else if (outcome === 'lost') this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------- message dispatch

  step(m: Message): void {
    assert(m.to === this.id, () => `message for ${m.to} delivered to ${this.id}`);
    if (!this.voters.includes(m.from) || m.from === this.id) return;
    if (m.type === 'probe') {
      // Answered whatever our state: it moves nothing.
      this.send({ type: 'probeResp', from: this.id, to: m.from, term: this.term, lastIndex: this.log.lastIndex() });
    }
    const forgotten = this.forgottenVote;
    if (forgotten !== null) {
      this.learnFromPeer(forgotten, m);
      if (!this.heardFromEveryVoter(forgotten)) return; // no part in anything yet
      const highest = this.highestHeardTerm(forgotten);
      if (highest > this.term) this.becomeFollower(highest, null);
    }
    if (m.type !== 'probe' && m.type !== 'probeResp') this.stepVoter(m);
    this.maybeRecallVote();
  }

  private stepVoter(m: Exclude<Message, StateProbe | StateProbeResponse>): void {
    if (m.term > this.term && !this.stepHigherTerm(m)) return;
    if (m.term < this.term) return this.stepLowerTerm(m);

    switch (m.type) {
      case 'preVote':
      case 'vote':
        return this.handleVoteRequest(m);
      case 'preVoteResp':
      case 'voteResp':
        if (this.role === 'preCandidate' || this.role === 'candidate') this.handleVoteResponse(m);
        return;
      case 'append':
      case 'heartbeat':
      case 'timeoutNow':
      case 'snapshot':
        // Only this node leads its term: a correct peer never sends this (Raft's election safety).
        if (this.role === 'leader') return this.refuse(m, `a second leader in term ${this.term}`);
        if (this.role !== 'follower') this.becomeFollower(this.term, m.from);
        return this.stepFollower(m);
      case 'appendResp':
      case 'heartbeatResp':
        if (this.role === 'leader') this.stepLeader(m);
        return;
      default:
        return unreachable(m, 'message type');
    }
  }

  /** Returns false when the message must be ignored. */
  private stepHigherTerm(m: Message): boolean {
    if (m.type === 'preVote' || m.type === 'vote') {
      // Leader lease (with check-quorum): while we hear from a live leader, a node that was
      // partitioned away cannot start a new term — unless the leader itself handed over.
      const inLease = this.leader !== null && this.electionElapsed < this.options.electionTimeoutTicks;
      if (inLease && !m.transfer) return false;
    }
    // A pre-vote, or a granted pre-vote response, does not move our term.
    if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) return true;
    const leader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'timeoutNow' || m.type === 'snapshot' ? m.from : null;
    this.becomeFollower(m.term, leader);
    return true;
  }

  private stepLowerTerm(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
      // A stale leader (e.g. back from a partition while pre-vote kept our term from reaching
      // it) learns the newer term from this and steps down.
      this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: 0, reject: true, rejectHint: 0, hintTerm: 0 });
    } else if (m.type === 'preVote') {
      this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderDisconnected = false;
        return this.handleAppend(m);
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderDisconnected = false;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.noteCaughtUp(m.leaderLastIndex);
        if (m.commit > this.log.lastIndex()) {
          // The leader counts us as holding entries we no longer have (a replaced disk, or async
          // writes a power cut took): on an idle cluster it would send nothing, so say where we
          // stand — as a rejection above its match, which makes it start over from our hint.
          this.send({
            type: 'appendResp', from: this.id, to: m.from, term: this.term, index: m.leaderLastIndex, reject: true,
            rejectHint: this.log.lastIndex(), hintTerm: this.log.lastTerm(),
          });
        }
        this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term });
        return;
      case 'timeoutNow':
        // Leadership transfer: campaign now, skipping pre-vote; voters skip the lease check.
        if (this.forgottenVote === null) this.campaign('transfer');
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leader = m.from;
        this.leaderDisconnected = false;
        return this.handleSnapshot(m);
      default:
        return;
    }
  }

  /**
   * The leader's snapshot, staged by the node and verified. Installed only when it brings
   * something new: a snapshot at or below our commit index, or one whose last entry our log
   * already holds, changes nothing but the commit index. Otherwise our whole log is replaced
   * (what it holds past our commit either conflicts or the snapshot covers). The acceptance
   * claims the snapshot is installed, so it leaves only after the Ready's install.
   */
  private handleSnapshot(m: InstallSnapshot): void {
    assert(this.readyInProgress === null, 'the node steps a snapshot only between Readies');
    if (m.index <= this.log.committed) {
      this.sendPersisted(this.appendAccept(m.from, this.log.committed));
      return;
    }
    if (this.log.matchTerm(m.index, m.snapshotTerm)) {
      this.log.commitTo(m.index);
      this.sendPersisted(this.appendAccept(m.from, m.index));
      return;
    }
    this.log.restore(m.index, m.snapshotTerm);
    this.snapshotToInstall = { index: m.index, term: m.snapshotTerm };
    this.sendPersisted(this.appendAccept(m.from, m.index));
  }

  private handleAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index is settled; tell the leader where we are.
      this.noteCaughtUp(m.leaderLastIndex);
      this.sendPersisted(this.appendAccept(m.from, this.log.committed));
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const lastNew = m.prevIndex + m.entries.length;
      const conflict = this.findConflict(m.entries);
      if (conflict !== null) {
        // Entries start past prevIndex, which is at or above our commit index (checked above).
        assert(conflict > this.log.committed, () => `entry ${conflict} conflicts with the committed log (commit ${this.log.committed})`);
        this.log.append(m.entries.slice(conflict - m.entries[0]!.index));
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      this.noteCaughtUp(m.leaderLastIndex);
      // The acceptance claims entries up to lastNew are durable: it leaves only after persisting.
      this.sendPersisted(this.appendAccept(m.from, lastNew));
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.send({
      type: 'appendResp', from: this.id, to: m.from, term: this.term, index: m.prevIndex, reject: true,
      rejectHint: hint, hintTerm: this.log.term(hint) ?? 0,
    });
  }

  /**
   * Our leader's log ended at `leaderLastIndex` when it wrote to us. Its last entry is of its
   * own term, so if ours there is too, our log equals the leader's up to it (log matching):
   * every committed entry, and every entry our lost disk may have acknowledged to this leader
   * (an acknowledgement sent before the loss can still arrive, and count, after it), is ours.
   */
  private noteCaughtUp(leaderLastIndex: number): void {
    const forgotten = this.forgottenVote;
    if (forgotten === null || leaderLastIndex === 0 || this.log.term(leaderLastIndex) !== this.term) return;
    forgotten.catchUpTarget = Math.max(forgotten.catchUpTarget, leaderLastIndex);
  }

  private appendAccept(to: NodeId, index: number): AppendResponse {
    return { type: 'appendResp', from: this.id, to, term: this.term, index, reject: false, rejectHint: 0, hintTerm: 0 };
  }

  /** Index of the first entry that is new or differs from our log, or null if we hold them all. */
  private findConflict(entries: readonly Entry[]): number | null {
    for (const entry of entries) {
      if (!this.log.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return null;
  }

  private stepLeader(m: Message): void {
    const progress = this.progress.get(m.from);
    assert(progress !== undefined, () => `leader has no progress for ${m.from}`);
    progress.recentActive = true;
    if (m.type === 'heartbeatResp') {
      progress.probeSent = false;
      if (progress.state === 'replicate' && progress.inflights.full()) progress.inflights.freeFirstOne();
      if (progress.match < this.log.lastIndex()) this.sendAppendsTo(m.from, progress, true);
      return;
    }
    if (m.type !== 'appendResp') return;
    if (m.reject) return this.handleAppendReject(m, progress);
    if (m.index > this.log.lastIndex()) return this.refuse(m, `accepts index ${m.index}, past this leader's last index ${this.log.lastIndex()}`);
    // As etcd-io/raft: an ack equal to what we know also moves a probing follower to replicate —
    // an idle follower that caught up would otherwise stay in probe, one append at a time.
    if (!progress.maybeUpdate(m.index) && !(progress.state === 'probe' && progress.match === m.index)) return;
    if (progress.state === 'snapshot') {
      // Installed (or the follower had it all along): probe from there — with a newer snapshot
      // if the log was compacted past it meanwhile.
      if (progress.match < progress.pendingSnapshot) return;
      progress.becomeProbe();
    } else if (progress.state === 'probe') progress.becomeReplicate();
    else progress.inflights.freeLE(m.index);
    this.maybeCommit();
    this.sendAppendsTo(m.from, progress, false);
    if (m.from === this.transferee && progress.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleAppendReject(m: AppendResponse, progress: Progress): void {
    if (m.index >= progress.match && m.rejectHint < progress.match) {
      // A follower that still held `match` would hint at or above it: this one no longer holds
      // what it acknowledged — a replaced disk, or writes an async flush counted and a power
      // cut took. (A reordered old rejection looks the same and costs one more probe.) Start
      // over from what it says it has.
      progress.forgetMatch(m.rejectHint);
      this.sendAppendsTo(m.from, progress, true);
      return;
    }
    // Fast backtrack: skip every index whose term shows it cannot match.
    const resumeAfter = m.hintTerm > 0 ? this.log.findConflictByTerm(m.rejectHint, m.hintTerm) : m.rejectHint;
    if (!progress.maybeDecrTo(m.index, resumeAfter)) return;
    if (progress.state === 'replicate') progress.becomeProbe();
    this.sendAppendsTo(m.from, progress, true);
  }

  // ---------------------------------------------------------------- replication (leader)

  propose(payloads: readonly Uint8Array[]): ProposeResult {
    assert(payloads.length > 0, 'a proposal carries at least one entry');
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leader: this.leader };
    if (this.transferee !== null) return { ok: false, reason: 'transferring', leader: this.id };
    if (this.log.lastIndex() - this.log.committed + payloads.length > this.options.maxUncommittedEntries) {
      return { ok: false, reason: 'overloaded', leader: this.id };
    }
    const bytes = payloads.reduce((sum, data) => sum + data.byteLength, 0);
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.options.maxUncommittedBytes) {
      return { ok: false, reason: 'overloaded', leader: this.id };
    }
    this.uncommittedBytes += bytes;
    const firstIndex = this.log.lastIndex() + 1;
    this.appendEntries(payloads.map((data) => ({ type: EntryType.Normal, data })));
    return { ok: true, firstIndex, term: this.term };
  }

  private appendEntries(items: readonly { type: EntryType; data: Uint8Array }[]): void {
    const first = this.log.lastIndex() + 1;
    this.log.append(items.map((item, i) => ({ index: first + i, term: this.term, type: item.type, data: item.data })));
    // A single-node cluster commits as soon as its own copy is durable (see advance()).
    this.broadcastPending = true;
  }

  /** Highest index a majority holds durably; committed only if it is of this term (§5.4.2). */
  private maybeCommit(): boolean {
    const matches = [...this.progress.values()].map((p) => p.match).sort((a, b) => b - a);
    const quorumIndex = matches[this.quorumSize() - 1]!;
    if (quorumIndex <= this.log.committed || this.log.term(quorumIndex) !== this.term) return false;
    this.log.commitTo(quorumIndex);
    this.broadcastPending = true;
    return true;
  }

  /**
   * Sends appends to one follower while its window allows and, for entries read from storage,
   * while this tick's catch-up budget lasts. Returns whether anything was sent. When the budget
   * stops it, the response to the next heartbeat resumes the catch-up (it calls this again).
   */
  private sendAppendsTo(to: NodeId, progress: Progress, sendIfEmpty: boolean): boolean {
    let sent = false;
    while (!progress.isPaused()) {
      const prevIndex = progress.next - 1;
      const prevTerm = this.log.term(prevIndex);
      if (prevTerm === undefined) return this.sendSnapshot(to, progress) || sent;
      const fromStorage = progress.next <= this.log.lastIndex() && !this.log.inMemory(progress.next);
      const budgetBytes = fromStorage ? progress.storageReadLeft(this.tickSeq, this.maxCatchUpBytesPerTick) : Number.POSITIVE_INFINITY;
      const maxBytes = Math.min(this.options.maxAppendBytes, budgetBytes);
      if (maxBytes === 0) return sent;
      const entries = this.log.entries(progress.next, this.log.lastIndex() + 1, maxBytes);
      if (entries.length === 0 && (sent || !sendIfEmpty)) return sent;
      const lastIndex = prevIndex + entries.length;
      const bytes = entries.reduce((sum, e) => sum + entryBytes(e), 0);
      this.send({ type: 'append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed, leaderLastIndex: this.log.lastIndex() });
      progress.sentEntries(lastIndex, bytes, entries.length);
      if (fromStorage) progress.readFromStorage(this.tickSeq, bytes);
      sent = true;
      if (entries.length === 0 || progress.state === 'probe') return sent;
    }
    return sent;
  }

  /** The follower needs entries we compacted away: it gets our newest snapshot. */
  private sendSnapshot(to: NodeId, progress: Progress): boolean {
    const snapshot = this.options.snapshots?.latest() ?? null;
    const firstIndex = this.log.firstIndex();
    assert(snapshot !== null && snapshot.index >= firstIndex - 1, () => `log compacted to ${firstIndex} without a snapshot covering it (newest ${snapshot?.index})`);
    const ownTerm = this.log.term(snapshot.index);
    assert(ownTerm === undefined || ownTerm === snapshot.term, () => `snapshot ${snapshot.index}@${snapshot.term} disagrees with the log's term ${ownTerm} there`);
    progress.becomeSnapshot(snapshot.index);
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, index: snapshot.index, snapshotTerm: snapshot.term });
    return true;
  }

  /**
   * The node could not deliver the snapshot to `peer` (the transfer broke off or timed out, or
   * the snapshot is gone): probe again, which sends a fresh snapshot if one is still needed.
   */
  snapshotFailed(peer: NodeId): void {
    const progress = this.progress.get(peer);
    if (this.role !== 'leader' || progress === undefined || progress.state !== 'snapshot') return;
    progress.becomeProbe();
  }

  /** Follower: the leader's snapshot the core restored and the node has yet to install, or null. */
  installPending(): SnapshotMeta | null {
    return this.log.pendingInstall();
  }

  /** Leader: the index of the snapshot being sent to `peer`, 0 when none is. */
  snapshotPendingFor(peer: NodeId): number {
    const progress = this.progress.get(peer);
    return this.role === 'leader' && progress?.state === 'snapshot' ? progress.pendingSnapshot : 0;
  }

  /**
   * New entries to every follower that has room for them. A commit index alone sends nothing
   * (etcd-io/raft would send an empty append): it rides the next append, and the next heartbeat
   * carries it at the latest (within heartbeatIntervalTicks). Under load the next append comes
   * within a round, so a follower hears the commit a round later instead of in a message, an
   * answer and a Ready of its own. Followers serve no reads: what trails is only their own
   * apply, and so their snapshots and retention floor, by at most a heartbeat interval.
   */
  private broadcastAppends(): void {
    for (const [id, progress] of this.progress) {
      if (id !== this.id) this.sendAppendsTo(id, progress, false);
    }
  }

  private broadcastHeartbeat(): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue;
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit: Math.min(progress.match, this.log.committed), leaderLastIndex: this.log.lastIndex() });
    }
  }

  /**
   * Moves leadership to `target`: catch it up, then tell it to campaign at once (TimeoutNow).
   * A transfer to the leader itself cancels a pending transfer (as etcd-io/raft), so writes are
   * taken again at once instead of refused until the transfer's election timeout ends; it
   * returns whether there was one to cancel.
   */
  transferLeadership(target: NodeId): boolean {
    if (this.role === 'leader' && target === this.id) {
      const pending = this.transferee !== null;
      this.transferee = null;
      return pending;
    }
    if (this.role !== 'leader' || !this.voters.includes(target)) return false;
    if (this.transferee === target) return true;
    this.transferee = target;
    this.electionElapsed = 0; // the transfer gets one election timeout to finish
    const progress = this.progress.get(target)!;
    if (progress.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.sendAppendsTo(target, progress, true);
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  // ---------------------------------------------------------------- Ready / advance

  private send(m: Message): void {
    this.messages.push(m);
  }

  private sendPersisted(m: Message): void {
    this.persistedMessages.push(m);
  }

  /**
   * Messages that may be sent now, before the next Ready: heartbeats, appends, rejections —
   * nothing that claims durability (those wait in persistedMessages). Empty while a term or
   * vote change is pending or being synced, since every message must follow that sync. Lets
   * a leader keep heartbeating and streaming to followers while its own fsync runs.
   */
  takeMessages(): Message[] {
    if (this.hardStateDirty || (this.readyInProgress !== null && this.readyInProgress.hardState !== null)) return [];
    if (this.broadcastPending && this.role === 'leader') {
      this.broadcastAppends();
      this.broadcastPending = false;
    }
    const messages = this.messages;
    this.messages = [];
    return messages;
  }

  hasReady(): boolean {
    if (this.readyInProgress !== null) return false;
    return (
      this.hardStateDirty ||
      this.snapshotToInstall !== null ||
      this.broadcastPending ||
      this.messages.length > 0 ||
      this.persistedMessages.length > 0 ||
      this.log.hasEntriesToPersist() ||
      this.log.hasEntriesToApply()
    );
  }

  ready(): Ready {
    assert(this.readyInProgress === null, 'ready() called again before advance()');
    if (this.broadcastPending && this.role === 'leader') this.broadcastAppends();
    this.broadcastPending = false;
    const ready: Ready = {
      hardState: this.hardStateDirty ? { term: this.term, vote: this.vote } : null,
      snapshot: this.snapshotToInstall,
      entries: this.log.takeEntriesToPersist(),
      messages: this.messages,
      persistedMessages: this.persistedMessages,
      committedEntries: this.log.entriesToApply(this.options.maxApplyBytes),
    };
    this.hardStateDirty = false;
    this.snapshotToInstall = null;
    this.messages = [];
    this.persistedMessages = [];
    this.readyInProgress = ready;
    return ready;
  }

  /** The node followed the Ready contract for `ready`: its entries are durable, its committed entries applied. */
  advance(ready: Ready): void {
    assert(this.readyInProgress === ready, 'advance() for a Ready that is not in progress');
    this.readyInProgress = null;
    if (ready.snapshot !== null) this.log.installed(ready.snapshot.index);
    const last = ready.entries[ready.entries.length - 1];
    if (last !== undefined) this.log.stableTo(last.index, last.term);
    const forgotten = this.forgottenVote;
    if (forgotten !== null && forgotten.catchUpTarget > 0 && this.log.persistedIndex() >= forgotten.catchUpTarget) {
      // What the leader had committed is now durable in our log: we hold every committed entry.
      forgotten.caughtUp = true;
      this.maybeRecallVote();
    }
    const applied = ready.committedEntries[ready.committedEntries.length - 1];
    if (applied !== undefined) this.log.appliedTo(applied.index);
    if (this.role === 'leader') {
      const appliedBytes = ready.committedEntries.reduce((sum, entry) => sum + entry.data.byteLength, 0);
      this.uncommittedBytes = Math.max(0, this.uncommittedBytes - appliedBytes);
      // The leader's own copy counts toward commit only once durable.
      const self = this.progress.get(this.id)!;
      if (self.maybeUpdate(this.log.persistedIndex())) this.maybeCommit();
    }
  }

  // ---------------------------------------------------------------- observation

  status(): RaftStatus {
    const progress: PeerStatus[] = [];
    if (this.role === 'leader') {
      for (const [id, p] of this.progress) progress.push({ id, match: p.match, next: p.next, state: p.state, recentActive: p.recentActive });
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      lastIndex: this.log.lastIndex(),
      persistedIndex: this.log.persistedIndex(),
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      transferee: this.transferee,
      progress,
    };
  }

  /**
   * What the node needs after every Ready, without building the full status: the commit and
   * persisted indexes, and (leader only, else 0) the highest index every voter holds durably.
   */
  indexes(): { commitIndex: number; persistedIndex: number; allMatchIndex: number } {
    let allMatchIndex = this.role === 'leader' ? Number.MAX_SAFE_INTEGER : 0;
    if (this.role === 'leader') for (const progress of this.progress.values()) allMatchIndex = Math.min(allMatchIndex, progress.match);
    return { commitIndex: this.log.committed, persistedIndex: this.log.persistedIndex(), allMatchIndex };
  }

  /**
   * Messages refused since the last call, as log lines (at most MAX_REFUSALS_KEPT; `count` has
   * them all): well-formed messages no correct peer sends, dropped rather than asserted on,
   * since the node's invariants are its own and a peer's bug or malice must not crash it.
   */
  takeRefusals(): { count: number; reasons: string[] } {
    const taken = { count: this.refusalCount, reasons: this.refusals.splice(0) };
    this.refusalCount = 0;
    return taken;
  }

  private refuse(m: Message, reason: string): void {
    this.refusalCount += 1;
    if (this.refusals.length < MAX_REFUSALS_KEPT) this.refusals.push(`${m.type} from ${m.from} in term ${m.term}: ${reason}`);
  }

  /** Role, term and leader without building the full status (for log lines). */
  summary(): { role: Role; term: number; leader: NodeId | null } {
    return { role: this.role, term: this.term, leader: this.leader };
  }

  /**
   * A leader whose applied state reflects every entry committed before its term: it has applied
   * an entry of its own term (its term's first entry follows all earlier ones). Until then its
   * state may lag what earlier leaders committed (a new leader learns the commit index only by
   * committing in its term), so answers read from that state could be stale.
   */
  leaderHasAppliedOwnTerm(): boolean {
    return this.role === 'leader' && this.log.term(this.log.applied) === this.term;
  }

  /** Term of the entry at index in this node's log (undefined past the end), for the node's proposal tracking. */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }
}
