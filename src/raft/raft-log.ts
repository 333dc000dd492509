// The Raft core's view of its log: entries the node has made durable (read through the
// injected LogReader) followed by an in-memory unstable tail that the node has not yet
// persisted. The core never writes storage itself; it hands the unstable tail out in a Ready
// and the node reports back with advance() once it is durable.
import { assert } from '../util/assert.js';
import { type Entry, entryBytes } from './types.js';

/** Read access to the node's durable log. The log store and the simulator's memory log implement it. */
export interface LogReader {
  /** First index held; lastIndex() + 1 when the log is empty. */
  firstIndex(): number;
  /** Last index held; firstIndex() - 1 when empty (0 for a new log). */
  lastIndex(): number;
  /** Term of the entry at index, for firstIndex() - 1 <= index <= lastIndex() (0 for index 0). Throws RangeError outside. */
  term(index: number): number;
  /** Entries [lo, hiExclusive), stopping once maxBytes is reached but always at least one when lo < hiExclusive. */
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[];
}

export class RaftLog {
  /** Entries not yet durable; unstable[0] has index unstableOffset. */
  private unstable: Entry[] = [];
  private unstableOffset: number;
  /** Last index handed to the node for persisting and not yet reported durable. */
  private handedOutIndex: number;
  /** Highest index known committed. Invariant: applied <= committed <= lastIndex(). */
  committed: number;
  applied: number;

  constructor(
    private readonly storage: LogReader,
    appliedIndex: number,
  ) {
    this.unstableOffset = storage.lastIndex() + 1;
    this.handedOutIndex = storage.lastIndex();
    assert(appliedIndex >= 0, 'applied index is never negative');
    assert(appliedIndex <= storage.lastIndex(), () => `applied index ${appliedIndex} is past the log's last index ${storage.lastIndex()}`);
    this.committed = appliedIndex;
    this.applied = appliedIndex;
  }

  lastIndex(): number {
    return this.unstableOffset + this.unstable.length - 1;
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the last entry always has a term');
    return term;
  }

  /** Highest index that is durable on this node. */
  persistedIndex(): number {
    return this.unstableOffset - 1;
  }

  /** Term at index, or undefined when the index is past the end or compacted away. */
  term(index: number): number | undefined {
    if (index >= this.unstableOffset) return this.unstable[index - this.unstableOffset]?.term;
    if (index < this.storage.firstIndex() - 1) return undefined;
    return this.storage.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft's election restriction (§5.4.1): is a candidate's log at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourLastTerm = this.lastTerm();
    return lastTerm > ourLastTerm || (lastTerm === ourLastTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hiExclusive) up to maxBytes (at least one), from storage and the unstable tail. */
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    assert(lo >= this.storage.firstIndex(), () => `entries from ${lo} are compacted (first index ${this.storage.firstIndex()})`);
    const hi = Math.min(hiExclusive, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const result: Entry[] = [];
    let bytes = 0;
    if (lo < this.unstableOffset) {
      for (const entry of this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes)) {
        result.push(entry);
        bytes += entryBytes(entry);
      }
      if (result.length < Math.min(hi, this.unstableOffset) - lo) return result; // storage stopped at maxBytes
    }
    for (let index = Math.max(lo, this.unstableOffset); index < hi; index++) {
      const entry = this.unstable[index - this.unstableOffset]!;
      if (result.length > 0 && bytes + entryBytes(entry) > maxBytes) break;
      result.push(entry);
      bytes += entryBytes(entry);
    }
    assert(result[0]?.index === lo, 'entries start at lo');
    return result;
  }

  /**
   * Appends entries, truncating a conflicting uncommitted suffix first. Entries must be
   * contiguous and follow an index the log holds.
   */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index > this.committed, () => `truncating committed entry ${first.index} (commit ${this.committed})`);
    assert(first.index <= this.lastIndex() + 1, () => `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    if (first.index <= this.unstableOffset) {
      // The conflict reaches into durable storage: the next Ready rewrites from here and the
      // store truncates its suffix before writing.
      this.unstableOffset = first.index;
      this.unstable = [];
    } else {
      this.unstable.length = first.index - this.unstableOffset;
    }
    this.handedOutIndex = Math.min(this.handedOutIndex, first.index - 1);
    for (const entry of entries) {
      assert(entry.index === this.lastIndex() + 1, 'appended entries are contiguous');
      assert(entry.term >= this.lastTerm(), 'terms never decrease along the log');
      this.unstable.push(entry);
    }
  }

  /** Unstable entries not yet handed to the node; marks them handed out. */
  takeEntriesToPersist(): Entry[] {
    const from = this.handedOutIndex + 1;
    const taken = this.unstable.slice(from - this.unstableOffset);
    this.handedOutIndex = this.lastIndex();
    return taken;
  }

  hasEntriesToPersist(): boolean {
    return this.handedOutIndex < this.lastIndex();
  }

  /** The node made everything up to (index, term) durable; ignored if that entry was since replaced. */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset || this.term(index) !== term) return;
    this.unstable.splice(0, index - this.unstableOffset + 1);
    this.unstableOffset = index + 1;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    assert(index <= this.lastIndex(), () => `commit ${index} past last index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Committed entries that are durable here and not yet applied, up to maxBytes (at least one). */
  entriesToApply(maxBytes: number): Entry[] {
    const hi = Math.min(this.committed, this.persistedIndex());
    if (hi <= this.applied) return [];
    return this.entries(this.applied + 1, hi + 1, maxBytes);
  }

  hasEntriesToApply(): boolean {
    return Math.min(this.committed, this.persistedIndex()) > this.applied;
  }

  appliedTo(index: number): void {
    assert(index >= this.applied, () => `applied index goes back from ${this.applied} to ${index}`);
    assert(index <= this.committed, () => `applied ${index} past commit ${this.committed}`);
    this.applied = index;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term` — everything after
   * it cannot match a log whose entry at `index` has `term`.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined || t <= term) return i;
      i--;
    }
  }
}
