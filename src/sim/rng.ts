// Seeded pseudo-random numbers for the simulator: one seed fixes every decision of a run.
// SplitMix32-style mixing over a 32-bit state; fast, and good enough to explore schedules.
import { assert } from '../util/assert.js';

export class Rng {
  private state: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), 'seed is an integer');
    this.state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 2 ** 32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    assert(n >= 1, 'int(n) needs n >= 1');
    return Math.floor(this.next() * n);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** A child generator, so one component's draws do not shift another's. */
  fork(): Rng {
    return new Rng(this.int(2 ** 31));
  }
}
