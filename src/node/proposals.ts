// Proposals a leader accepted and has not yet answered. Each waits for the acknowledgement its
// quorum mode asks for (CONTRACT.md):
//   majority — the entry is committed (and applied, so its result is known);
//   all      — committed and applied, and every voter's match index covers it;
//   leader   — the leader's own store made it durable (replication goes on in the background).
// An entry that is replaced, or whose leader steps down first, has an unknown outcome: it is
// answered with LMQ_LEADERSHIP_LOST (indeterminate), never with a plain failure.
import type { QuorumMode } from '../config/config.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';

export interface Acknowledged<R> {
  readonly index: number;
  readonly term: number;
  /** The state machine's answer; absent when acknowledged before it was applied (`leader` quorum). */
  readonly result?: R;
}

/** How a proposal is answered: exactly one of the two is called, once. */
export interface ProposalReply<R> {
  resolve(ack: Acknowledged<R>): void;
  reject(error: LmqError): void;
}

interface Pending<R> {
  readonly term: number;
  readonly mode: QuorumMode;
  /** Past this (scheduler ms) the proposal is answered LMQ_TIMEOUT: outcome unknown. */
  readonly deadlineMs: number;
  readonly reply: ProposalReply<R>;
  applied: boolean;
  result?: R;
}

export class ProposalTracker<R> {
  /** Insertion order is index order (one leader appends in order), which the scans rely on. */
  private readonly pending = new Map<number, Pending<R>>();
  private lastAddedIndex = 0;
  private term = 0;
  /**
   * A reply is being called. Replies must not propose again synchronously: the scans below
   * walk the map while they answer (RaftNode's replies settle promises, which run later).
   */
  private replying = false;

  add(index: number, term: number, mode: QuorumMode, deadlineMs: number, reply: ProposalReply<R>): void {
    assert(!this.replying, 'a proposal reply proposed again synchronously');
    // Proposals of an earlier term were lost with that leadership, even if this node leads
    // again now (its old tail may have been overwritten in between).
    if (term !== this.term) this.failAll(`was not acknowledged before the leader's term ended (now term ${term})`);
    this.term = term;
    assert(!this.pending.has(index), () => `two proposals wait on index ${index}`);
    assert(this.pending.size === 0 || index > this.lastAddedIndex, () => `proposal ${index} added after ${this.lastAddedIndex}`);
    this.lastAddedIndex = index;
    this.pending.set(index, { term, mode, deadlineMs, reply, applied: false });
  }

  /** Answers every proposal past its deadline with LMQ_TIMEOUT (e.g. `all` with a follower down). */
  expire(nowMs: number): void {
    for (const [index, p] of this.pending) {
      if (p.deadlineMs > nowMs) break; // deadlines follow insertion order
      this.pending.delete(index);
      this.answer(() => p.reply.reject(new LmqError('LMQ_TIMEOUT', `the write at log index ${index} was not acknowledged under ${p.mode} quorum in time; it may or may not have been committed — retry it (retries are deduplicated)`, { index })));
    }
  }

  size(): number {
    return this.pending.size;
  }

  /** An entry was applied; `term` is the term of the entry actually at that index. */
  applied(index: number, term: number, result: R, allMatchIndex: number): void {
    const p = this.pending.get(index);
    if (p === undefined) return;
    if (p.term !== term) return this.lose(index, p, 'was replaced by another leader');
    p.applied = true;
    p.result = result;
    if (p.mode === 'majority' || (p.mode === 'all' && allMatchIndex >= index)) this.settle(index, p);
  }

  /** `all` quorum: every voter now holds entries up to allMatchIndex. */
  replicatedEverywhere(allMatchIndex: number): void {
    for (const [index, p] of this.pending) {
      if (index > allMatchIndex) break;
      if (p.mode === 'all' && p.applied) this.settle(index, p);
    }
  }

  /** `leader` quorum: this node's log is durable up to persistedIndex with these terms. */
  persistedLocally(persistedIndex: number, termAt: (index: number) => number | undefined): void {
    for (const [index, p] of this.pending) {
      if (index > persistedIndex) break;
      if (p.mode !== 'leader') continue;
      if (termAt(index) === p.term) this.settle(index, p);
      else this.lose(index, p, 'was replaced by another leader');
    }
  }

  /** Leadership ended: no proposal of this node can be answered any more. */
  failAll(reason: string): void {
    for (const [index, p] of this.pending) this.lose(index, p, reason);
  }

  private settle(index: number, p: Pending<R>): void {
    this.pending.delete(index);
    this.answer(() => p.reply.resolve(p.result === undefined ? { index, term: p.term } : { index, term: p.term, result: p.result }));
  }

  private lose(index: number, p: Pending<R>, reason: string): void {
    this.pending.delete(index);
    this.answer(() => p.reply.reject(new LmqError('LMQ_LEADERSHIP_LOST', `the write at log index ${index} ${reason}; it may or may not have been committed — retry it (retries are deduplicated)`, { index })));
  }

  private answer(call: () => void): void {
    this.replying = true;
    try {
      call();
    } finally {
      this.replying = false;
    }
  }
}
