// An in-memory LogReader with the durability semantics of a real disk, for tests and the
// simulator: writes land in a volatile view; sync() makes them durable; crash() keeps the
// durable log plus, at the disk's whim, some prefix of what was written but not yet synced.
import { assert } from '../util/assert.js';
import type { LogReader } from './raft-log.js';
import { type Entry, entryBytes } from './types.js';

export class MemoryLog implements LogReader {
  private written: Entry[] = [];
  private durable: Entry[] = [];
  /** Lowest array position written since the last sync (durable matches written below it). */
  private dirtyFrom = Number.POSITIVE_INFINITY;

  constructor(initial: readonly Entry[] = []) {
    this.written = [...initial];
    this.durable = [...initial];
  }

  firstIndex(): number {
    return 1;
  }

  lastIndex(): number {
    return this.written.length;
  }

  term(index: number): number {
    if (index === 0) return 0;
    const entry = this.written[index - 1];
    if (entry === undefined) throw new RangeError(`index ${index} outside [0, ${this.lastIndex()}]`);
    return entry.term;
  }

  entries(lo: number, hiExclusive: number, maxBytes: number): Entry[] {
    assert(lo >= 1, 'memory log starts at index 1');
    assert(hiExclusive <= this.lastIndex() + 1, () => `read past last index: ${hiExclusive - 1} > ${this.lastIndex()}`);
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hiExclusive; index++) {
      const entry = this.written[index - 1]!;
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
    assert(first.index <= this.lastIndex() + 1, 'write leaves a gap');
    this.written.length = first.index - 1;
    this.dirtyFrom = Math.min(this.dirtyFrom, first.index - 1);
    for (const entry of entries) {
      assert(entry.index === this.written.length + 1, 'written entries are contiguous');
      this.written.push(entry);
    }
  }

  /** Makes everything written durable; costs what changed since the last sync, not the log's length. */
  sync(): void {
    if (this.dirtyFrom === Number.POSITIVE_INFINITY) return;
    for (let i = this.dirtyFrom; i < this.written.length; i++) this.durable[i] = this.written[i]!;
    this.durable.length = this.written.length;
    this.dirtyFrom = Number.POSITIVE_INFINITY;
  }

  /**
   * Loses what was not synced. `keepUnsynced` in [0, 1] picks how much of the unsynced tail the
   * disk happened to write back before the crash (a prefix of it, never a hole).
   */
  crash(keepUnsynced: number): void {
    let common = 0;
    while (common < this.durable.length && common < this.written.length && this.durable[common] === this.written[common]) common++;
    const unsynced = this.written.slice(common);
    const kept = unsynced.slice(0, Math.floor(unsynced.length * keepUnsynced));
    this.written = kept.length > 0 ? [...this.written.slice(0, common), ...kept] : [...this.durable];
    this.durable = [...this.written];
    this.dirtyFrom = Number.POSITIVE_INFINITY;
  }

  /** The durable log, for invariant checks (a live view: read it, do not keep it). */
  durableEntries(): readonly Entry[] {
    return this.durable;
  }
}
