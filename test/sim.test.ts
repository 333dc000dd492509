import { describe, expect, it } from 'vitest';
import { runSeed } from '../src/sim/simulator.js';

// 1,000 seeds per CI run, in four slices so a failure names its slice quickly. Each failing
// seed is printed with the command that replays it exactly.
const SEEDS_PER_SLICE = 250;

function failuresIn(first: number, count: number): string[] {
  const failures: string[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const outcome = runSeed(seed);
    if (!outcome.ok) failures.push(`seed ${seed}: ${outcome.failure!.message}\n  replay: ./bin/ledgermq sim --seeds 1 --seed ${seed} --trace`);
  }
  return failures;
}

describe('simulator – safety and liveness under faults', () => {
  for (let slice = 0; slice < 4; slice++) {
    const first = 1 + slice * SEEDS_PER_SLICE;
    it(`seeds ${first}..${first + SEEDS_PER_SLICE - 1} keep every invariant and converge after healing`, () => {
      expect(failuresIn(first, SEEDS_PER_SLICE)).toEqual([]);
    });
  }

  it('replays a seed exactly', () => {
    const a = runSeed(77);
    const b = runSeed(77);
    expect(a).toEqual(b);
    expect(a.stats.entriesCommitted).toBeGreaterThan(0);
  });

  it('explores faults: crashes, partitions, elections and transfers all happen across seeds', () => {
    const totals = { crashes: 0, partitions: 0, transfers: 0, leadersElected: 0, fiveNodeWorlds: 0 };
    for (let seed = 1; seed <= 60; seed++) {
      const { stats } = runSeed(seed);
      totals.crashes += stats.crashes;
      totals.partitions += stats.partitions;
      totals.transfers += stats.transfers;
      totals.leadersElected += stats.leadersElected;
      if (stats.nodes === 5) totals.fiveNodeWorlds++;
    }
    expect(totals.crashes).toBeGreaterThan(20);
    expect(totals.partitions).toBeGreaterThan(20);
    expect(totals.transfers).toBeGreaterThan(0);
    expect(totals.leadersElected).toBeGreaterThan(120);
    expect(totals.fiveNodeWorlds).toBeGreaterThan(0);
  });
});
