// An in-memory LogReader with the durability semantics of a real disk, for tests and the
// simulator: writes land in a volatile view; sync() makes them durable; crash() keeps the
// durable log plus, at the disk's whim, some prefix of what was written but not yet synced.
// Like the log store it may start past index 1: compact() drops a prefix that a snapshot
// covers, and install() replaces the whole log with a leader's retained window.
import { assert } from '../util/assert.js';
import type { LogReader } from './raft-log.js';
import { type Entry, entryBytes } from './types.js';

/** One view of the log: entries from `first`, and the term of the entry before them. */
interface LogView {
  first: number;
  prevTerm: number;
  entries: Entry[];
}

function copyView(view: LogView): LogView {
  return { first: view.first, prevTerm: view.prevTerm, entries: [...view.entries] };
}

export class MemoryLog implements LogReader {
  private written: LogView;
  private durable: LogView;
  /** Lowest array position written since the last sync (durable matches written below it). */
  private dirtyFrom = Number.POSITIVE_INFINITY;

  constructor(initial: readonly Entry[] = []) {
    assert(initial.every((e, i) => e.index === i + 1), 'an initial log starts at index 1 and is dense');
    this.written = { first: 1, prevTerm: 0, entries: [...initial] };
    this.durable = copyView(this.written);
  }

  firstIndex(): number {
    return this.written.first;
  }

  lastIndex(): number {
    return this.written.first + this.written.entries.length - 1;
  }

  term(index: number): number {
    if (index === this.written.first - 1) return this.written.prevTerm;
    const entry = this.written.entries[index - this.written.first];
    if (entry === undefined) throw new RangeError(`index ${index} outside [${this.written.first - 1}, ${this.lastIndex()}]`);
    return entry.term;
  }

  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    assert(lo >= this.written.first, () => `read from ${lo} before the first index ${this.written.first}`);
    assert(hiExclusive <= this.lastIndex() + 1, () => `read past last index: ${hiExclusive - 1} > ${this.lastIndex()}`);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hiExclusive; index++) {
      const entry = this.written.entries[index - this.written.first]!;
      if (result.length > 0 && bytes + entryBytes(entry) > maxBytes) break;
      result.push(entry);
      bytes += entryBytes(entry);
    }
    return result;
  }

  /** Writes entries, truncating any suffix from entries[0].index first (a Raft conflict). */
  write(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    assert(first.index >= this.written.first, () => `write at ${first.index} before the first index ${this.written.first}`);
    assert(first.index <= this.lastIndex() + 1, 'write leaves a gap');
    const at = first.index - this.written.first;
    this.written.entries.length = at;
    this.dirtyFrom = Math.min(this.dirtyFrom, at);
    for (const entry of entries) {
      assert(entry.index === this.lastIndex() + 1, 'written entries are contiguous');
      this.written.entries.push(entry);
    }
  }

  /** Makes everything written durable; costs what changed since the last sync, not the log's length. */
  sync(): void {
    if (this.dirtyFrom === Number.POSITIVE_INFINITY) return;
    assert(this.durable.first === this.written.first, 'the views start at the same index between installs');
    for (let i = this.dirtyFrom; i < this.written.entries.length; i++) this.durable.entries[i] = this.written.entries[i]!;
    this.durable.entries.length = this.written.entries.length;
    this.dirtyFrom = Number.POSITIVE_INFINITY;
  }

  /**
   * Drops the entries below `firstIndex` (durable ones only: a snapshot covers them), keeping
   * the term of the one before. Deleting files is durable at once here.
   */
  compact(firstIndex: number): void {
    const drop = firstIndex - this.written.first;
    if (drop <= 0) return;
    assert(firstIndex <= this.durable.first + this.durable.entries.length, () => `compacting to ${firstIndex} past the durable log's end ${this.durableLastIndex()}`);
    assert(drop <= this.dirtyFrom, 'compaction drops only synced entries');
    for (const view of [this.written, this.durable]) {
      view.prevTerm = view.entries[drop - 1]!.term;
      view.entries.splice(0, drop);
      view.first = firstIndex;
    }
    if (this.dirtyFrom !== Number.POSITIVE_INFINITY) this.dirtyFrom -= drop;
  }

  /**
   * Replaces the whole log, durably and at once (the caller makes it atomic on its disk): the
   * log becomes `entries`, which start at `firstIndex` after an entry of term `prevTerm`.
   */
  install(firstIndex: number, prevTerm: number, entries: readonly Entry[]): void {
    assert(firstIndex >= 1, 'a log starts at index 1 or later');
    assert(entries.every((e, i) => e.index === firstIndex + i), 'installed entries are dense from the first index');
    this.written = { first: firstIndex, prevTerm, entries: [...entries] };
    this.durable = copyView(this.written);
    this.dirtyFrom = Number.POSITIVE_INFINITY;
  }

  /**
   * Loses what was not synced. `keepUnsynced` in [0, 1] picks how much of the unsynced tail the
   * disk happened to write back before the crash (a prefix of it, never a hole).
   */
  crash(keepUnsynced: number): void {
    const durableEntries = this.durable.entries;
    const writtenEntries = this.written.entries;
    let common = 0;
    while (common < durableEntries.length && common < writtenEntries.length && durableEntries[common] === writtenEntries[common]) common++;
    const unsynced = writtenEntries.slice(common);
    const kept = unsynced.slice(0, Math.floor(unsynced.length * keepUnsynced));
    const entries = kept.length > 0 ? [...writtenEntries.slice(0, common), ...kept] : [...durableEntries];
    this.written = { first: this.durable.first, prevTerm: this.durable.prevTerm, entries };
    this.durable = copyView(this.written);
    this.dirtyFrom = Number.POSITIVE_INFINITY;
  }

  /** A replaced disk: nothing survives. */
  wipe(): void {
    this.install(1, 0, []);
  }

  /** The durable entry at index (undefined outside the durable log), for invariant checks. */
  durableEntry(index: number): Entry | undefined {
    return this.durable.entries[index - this.durable.first];
  }

  durableFirstIndex(): number {
    return this.durable.first;
  }

  durableLastIndex(): number {
    return this.durable.first + this.durable.entries.length - 1;
  }

  /** The durable entries from durableFirstIndex() (a live view: read it, do not keep it). */
  durableEntries(): readonly Entry[] {
    return this.durable.entries;
  }
}
