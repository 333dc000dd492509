// The terms of the log held in memory as runs: (first index of each run of equal terms, term).
// A log holds few terms (one per leadership change), so term(index) is a binary search over
// a short list instead of a per-entry array — memory stays O(terms), not O(entries).
import { assert } from '../util/assert.js';

/** A run of equal terms starting at `start`; it lasts until the next run starts. */
export interface TermRun {
  readonly start: number;
  readonly term: number;
}

export class TermRuns {
  /** runStarts[i] is the first index of run i; runTerms[i] its term. Both strictly increase. */
  private readonly runStarts: number[] = [];
  private readonly runTerms: number[] = [];
  /** Index just before the first entry held, and its term (known from the segment header). */
  private baseIndex: number;
  private baseTerm: number;
  private lastIndexHeld: number;

  constructor(baseIndex: number, baseTerm: number) {
    assert(baseIndex >= 0, () => `base index ${baseIndex} < 0`);
    assert(baseTerm >= 0, () => `base term ${baseTerm} < 0`);
    this.baseIndex = baseIndex;
    this.baseTerm = baseTerm;
    this.lastIndexHeld = baseIndex;
  }

  lastIndex(): number {
    return this.lastIndexHeld;
  }

  lastTerm(): number {
    return this.runTerms.length === 0 ? this.baseTerm : this.runTerms[this.runTerms.length - 1]!;
  }

  /** Records the next entry; the caller has checked the term does not decrease. */
  push(index: number, term: number): void {
    assert(index === this.lastIndexHeld + 1, () => `term run push of index ${index} after ${this.lastIndexHeld}`);
    assert(term >= this.lastTerm(), () => `term ${term} at index ${index} decreases from ${this.lastTerm()}`);
    if (this.runTerms.length === 0 || term !== this.lastTerm()) {
      this.runStarts.push(index);
      this.runTerms.push(term);
    }
    this.lastIndexHeld = index;
  }

  /**
   * Records a sealed segment's entries at once, from its index file: runs[0] starts just after
   * the last index held, each later run after the one before, and the last one ends at lastIndex.
   */
  pushRuns(runs: readonly TermRun[], lastIndex: number): void {
    assert(runs[0]?.start === this.lastIndexHeld + 1, () => `term runs pushed from ${runs[0]?.start} after ${this.lastIndexHeld}`);
    assert(lastIndex >= runs[runs.length - 1]!.start, () => `term runs end at ${lastIndex}, before their last start`);
    for (const run of runs) {
      assert(run.start > this.lastIndexHeld, () => `term run at ${run.start} does not follow ${this.lastIndexHeld}`);
      this.lastIndexHeld = run.start - 1;
      this.push(run.start, run.term);
    }
    this.lastIndexHeld = lastIndex;
  }

  /** The runs covering [from, to], the first one clipped to start at from (for a segment's index). */
  runsIn(from: number, to: number): TermRun[] {
    assert(from > this.baseIndex, () => `runs from ${from} at or below the base ${this.baseIndex}`);
    assert(from <= to, () => `runs of the empty range [${from}, ${to}]`);
    assert(to <= this.lastIndexHeld, () => `runs to ${to} past the end ${this.lastIndexHeld}`);
    const runs: TermRun[] = [{ start: from, term: this.term(from) }];
    for (let i = 0; i < this.runStarts.length; i++) {
      const start = this.runStarts[i]!;
      if (start > from && start <= to) runs.push({ start, term: this.runTerms[i]! });
    }
    return runs;
  }

  /** Term at index, for baseIndex <= index <= lastIndex; throws RangeError outside. */
  term(index: number): number {
    if (!Number.isInteger(index) || index < this.baseIndex || index > this.lastIndexHeld) {
      throw new RangeError(`log index ${index} outside the known range [${this.baseIndex}, ${this.lastIndexHeld}]`);
    }
    if (index === this.baseIndex) return this.baseTerm;
    let lo = 0;
    let hi = this.runStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.runStarts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    assert(this.runStarts[lo]! <= index, 'binary search lands on a run starting at or before index');
    return this.runTerms[lo]!;
  }

  /** Forgets entries >= fromIndex (a suffix truncation). */
  truncateFrom(fromIndex: number): void {
    assert(fromIndex > this.baseIndex, () => `truncating from ${fromIndex} at or below base ${this.baseIndex}`);
    assert(fromIndex <= this.lastIndexHeld + 1, () => `truncating from ${fromIndex} past the end ${this.lastIndexHeld}`);
    while (this.runStarts.length > 0 && this.runStarts[this.runStarts.length - 1]! >= fromIndex) {
      this.runStarts.pop();
      this.runTerms.pop();
    }
    this.lastIndexHeld = fromIndex - 1;
  }

  /** Forgets entries < newBaseIndex + 1 (retention); their last term becomes the base term. */
  rebase(newBaseIndex: number): void {
    assert(newBaseIndex >= this.baseIndex, () => `rebase back from ${this.baseIndex} to ${newBaseIndex}`);
    assert(newBaseIndex <= this.lastIndexHeld, () => `rebase to ${newBaseIndex} past the end ${this.lastIndexHeld}`);
    this.baseTerm = this.term(newBaseIndex);
    this.baseIndex = newBaseIndex;
    // Drop runs that end at or before the base: a run ends where the next one starts.
    let dropped = 0;
    while (dropped < this.runStarts.length && this.runEnd(dropped) <= newBaseIndex) dropped++;
    this.runStarts.splice(0, dropped);
    this.runTerms.splice(0, dropped);
  }

  /** Last index of run i: the index before the next run starts, or the last index held. */
  private runEnd(i: number): number {
    return i + 1 < this.runStarts.length ? this.runStarts[i + 1]! - 1 : this.lastIndexHeld;
  }

  runCount(): number {
    return this.runStarts.length;
  }
}
