// The Raft core's view of its log: entries the node has made durable (read through the
// injected LogReader) followed by an in-memory unstable tail that the node has not yet
// persisted. The core never writes storage itself; it hands the unstable tail out in a Ready
// and the node reports back with advance() once it is durable.
//
// Durable entries stay in memory until they are applied (at most maxRetainedBytes of them):
// with one entry per Ready, reading each back from the store to apply it (a read syscall, a
// buffer, a checksum) was a fixed cost per entry on every node. Storage is read only for what
// memory no longer holds (e.g. after a restart, or past the bound).
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
  /**
   * Entries held in memory; mem[0] has index memOffset. Those below unstableOffset are durable
   * and kept only until applied; from unstableOffset on they are not yet durable.
   * Invariant: applied < memOffset or mem is empty below unstableOffset; memOffset <= unstableOffset.
   */
  private mem: Entry[] = [];
  private memOffset: number;
  private unstableOffset: number;
  /** entryBytes of the durable entries in mem [memOffset, unstableOffset). */
  private retainedBytes = 0;
  /** Last index handed to the node for persisting and not yet reported durable. */
  private handedOutIndex: number;
  /** Highest index known committed. Invariant: applied <= committed <= lastIndex(). */
  committed: number;
  applied: number;
  /**
   * A snapshot from the leader replaces the log (restore()) until the node reports it
   * installed: meanwhile storage still holds the old log, so nothing at or below the snapshot
   * is read from it — the entry at the snapshot's index has its term, the ones before it none.
   */
  private installing: { readonly index: number; readonly term: number } | null = null;

  constructor(
    private readonly storage: LogReader,
    appliedIndex: number,
    /** Durable, unapplied entries kept in memory at most (entryBytes); older ones are read from storage. */
    private readonly maxRetainedBytes: number,
  ) {
    this.unstableOffset = storage.lastIndex() + 1;
    this.memOffset = this.unstableOffset;
    this.handedOutIndex = storage.lastIndex();
    assert(appliedIndex >= 0, 'applied index is never negative');
    assert(appliedIndex <= storage.lastIndex(), () => `applied index ${appliedIndex} is past the log's last index ${storage.lastIndex()}`);
    assert(appliedIndex >= storage.firstIndex() - 1, () => `applied index ${appliedIndex} is below the log's first index ${storage.firstIndex()}: entries in between are missing`);
    assert(maxRetainedBytes >= 0, 'the retained bytes bound is never negative');
    this.committed = appliedIndex;
    this.applied = appliedIndex;
  }

  lastIndex(): number {
    return this.memOffset + this.mem.length - 1;
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

  /** Whether the entry at index is held in memory (not read from storage when sent or applied). */
  inMemory(index: number): boolean {
    return index >= this.memOffset;
  }

  /** Term at index, or undefined when the index is past the end or compacted away. */
  term(index: number): number | undefined {
    if (index >= this.memOffset) return this.mem[index - this.memOffset]?.term;
    if (this.installing !== null) return index === this.installing.index ? this.installing.term : undefined;
    if (index < this.storage.firstIndex() - 1) return undefined;
    return this.storage.term(index);
  }

  /** First index the log can send entries from (the storage's; after a pending install, the one after the snapshot). */
  firstIndex(): number {
    return this.installing !== null ? this.installing.index + 1 : this.storage.firstIndex();
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft's election restriction (§5.4.1): is a candidate's log at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourLastTerm = this.lastTerm();
    return lastTerm > ourLastTerm || (lastTerm === ourLastTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hiExclusive) up to maxBytes (at least one), from storage and memory. */
  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    assert(lo >= this.firstIndex(), () => `entries from ${lo} are compacted (first index ${this.firstIndex()})`);
    const hi = Math.min(hiExclusive, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const result: Entry[] = [];
    let bytes = 0;
    if (lo < this.memOffset) {
      for (const entry of this.storage.entries(lo, Math.min(hi, this.memOffset), maxBytes)) {
        result.push(entry);
        bytes += entryBytes(entry);
      }
      if (result.length < Math.min(hi, this.memOffset) - lo) return result; // storage stopped at maxBytes
    }
    for (let index = Math.max(lo, this.memOffset); index < hi; index++) {
      const entry = this.mem[index - this.memOffset]!;
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
      // store truncates its suffix before writing. Retained copies from there on go too.
      this.dropMemFrom(first.index);
      this.unstableOffset = first.index;
    } else {
      this.mem.length = first.index - this.memOffset;
    }
    this.handedOutIndex = Math.min(this.handedOutIndex, first.index - 1);
    for (const entry of entries) {
      assert(entry.index === this.lastIndex() + 1, 'appended entries are contiguous');
      assert(entry.term >= this.lastTerm(), 'terms never decrease along the log');
      this.mem.push(entry);
    }
  }

  /** Forgets the in-memory entries from index on (index <= unstableOffset). */
  private dropMemFrom(index: number): void {
    assert(index <= this.unstableOffset, 'only a durable suffix is dropped this way');
    if (index <= this.memOffset) {
      this.mem = [];
      this.memOffset = index;
      this.retainedBytes = 0;
      return;
    }
    for (let i = index; i < this.unstableOffset; i++) this.retainedBytes -= entryBytes(this.mem[i - this.memOffset]!);
    this.mem.length = index - this.memOffset;
    assert(this.retainedBytes >= 0, 'retained bytes never go negative');
  }

  /** Unstable entries not yet handed to the node; marks them handed out. */
  takeEntriesToPersist(): Entry[] {
    const from = this.handedOutIndex + 1;
    const taken = this.mem.slice(from - this.memOffset);
    this.handedOutIndex = this.lastIndex();
    return taken;
  }

  hasEntriesToPersist(): boolean {
    return this.handedOutIndex < this.lastIndex();
  }

  /** The node made everything up to (index, term) durable; ignored if that entry was since replaced. */
  stableTo(index: number, term: number): void {
    if (index < this.unstableOffset || this.term(index) !== term) return;
    for (let i = this.unstableOffset; i <= index; i++) this.retainedBytes += entryBytes(this.mem[i - this.memOffset]!);
    this.unstableOffset = index + 1;
    this.releaseRetained();
  }

  /** Drops durable entries from memory once applied, and the oldest ones past maxRetainedBytes. */
  private releaseRetained(): void {
    let drop = 0;
    while (this.memOffset + drop < this.unstableOffset && (this.memOffset + drop <= this.applied || this.retainedBytes > this.maxRetainedBytes)) {
      this.retainedBytes -= entryBytes(this.mem[drop]!);
      drop++;
    }
    if (drop === 0) return;
    this.mem.splice(0, drop);
    this.memOffset += drop;
    assert(this.retainedBytes >= 0 && this.retainedBytes <= this.maxRetainedBytes, () => `retained ${this.retainedBytes} bytes outside [0, ${this.maxRetainedBytes}]`);
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
    this.releaseRetained();
  }

  /**
   * The leader's snapshot at (index, term) replaces this log: everything held is dropped (it
   * conflicts with the snapshot or is covered by it) and the log is committed and applied up to
   * index. Storage is replaced by the node (Ready.snapshot) before installed() is called.
   */
  restore(index: number, term: number): void {
    assert(index > this.committed, () => `restoring snapshot ${index} at or below the commit index ${this.committed}`);
    assert(this.installing === null, 'one snapshot install at a time');
    this.installing = { index, term };
    this.mem = [];
    this.memOffset = index + 1;
    this.unstableOffset = index + 1;
    this.handedOutIndex = index;
    this.retainedBytes = 0;
    this.committed = index;
    this.applied = index;
  }

  /** The snapshot being installed, if restore() was called and installed() not yet. */
  pendingInstall(): { readonly index: number; readonly term: number } | null {
    return this.installing;
  }

  /** The node replaced storage with the snapshot's log (it ends at the snapshot's index, or holds just its term). */
  installed(index: number): void {
    assert(this.installing !== null && this.installing.index === index, () => `installed ${index}, but the pending install is ${this.installing?.index}`);
    const term = this.installing.term;
    this.installing = null;
    assert(this.storage.firstIndex() <= index + 1 && this.storage.lastIndex() >= index, () => `installed log [${this.storage.firstIndex()}, ${this.storage.lastIndex()}] does not reach snapshot ${index}`);
    assert(this.storage.term(index) === term, () => `installed log has term ${this.storage.term(index)} at snapshot ${index}, not ${term}`);
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
