// The terms of the log held in memory as runs: (first index of each run of equal terms, term).
// A log holds few terms (one per leadership change), so term(index) is a binary search over
// a short list instead of a per-entry array — memory stays O(terms), not O(entries).
import { assert } from '../util/assert.js';

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
