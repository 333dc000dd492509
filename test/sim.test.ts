import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { replayCommand, runSeed } from '../src/sim/simulator.js';

// 1,000 seeds per CI run, in four slices so a failure names its slice quickly. Each failing
// seed is printed with the command that replays it exactly.
const SEEDS_PER_SLICE = 250;

function failuresIn(first: number, count: number): string[] {
  const failures: string[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const outcome = runSeed(seed);
    if (!outcome.ok) failures.push(`${outcome.world}\nseed ${seed} (${outcome.failure!.kind}): ${outcome.failure!.message}\n  replay: ${replayCommand(seed)}`);
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

  it('explores faults: crashes, disk wipes, snapshots, partitions, elections, transfers and every quorum mode happen across seeds', () => {
    const totals = { crashes: 0, partitions: 0, transfers: 0, leadersElected: 0, fiveNodeWorlds: 0, majority: 0, all: 0, leader: 0, wipes: 0, snapshotsTaken: 0, snapshotsInstalled: 0 };
    for (let seed = 1; seed <= 60; seed++) {
      const { stats } = runSeed(seed);
      totals.crashes += stats.crashes;
      totals.wipes += stats.wipes;
      totals.snapshotsTaken += stats.snapshotsTaken;
      totals.snapshotsInstalled += stats.snapshotsInstalled;
      totals.partitions += stats.partitions;
      totals.transfers += stats.transfers;
      totals.leadersElected += stats.leadersElected;
      if (stats.nodes === 5) totals.fiveNodeWorlds++;
      for (const mode of ['majority', 'all', 'leader'] as const) totals[mode] += stats.acksByMode[mode];
    }
    expect(totals.crashes).toBeGreaterThan(20);
    expect(totals.partitions).toBeGreaterThan(20);
    expect(totals.transfers).toBeGreaterThan(0);
    expect(totals.leadersElected).toBeGreaterThan(120);
    expect(totals.fiveNodeWorlds).toBeGreaterThan(0);
    // Logs are compacted, lagging and restarted nodes are sent snapshots, disks are lost.
    expect(totals.snapshotsTaken).toBeGreaterThan(100);
    expect(totals.snapshotsInstalled).toBeGreaterThan(10);
    expect(totals.wipes).toBeGreaterThan(5);
    // Every quorum mode's acknowledgements are exercised (and checked against durability).
    for (const mode of ['majority', 'all', 'leader'] as const) expect(totals[mode]).toBeGreaterThan(100);
  });

  it('labels a failure to converge after healing as liveness, not safety', () => {
    const outcome = runSeed(3, { livenessTicksMax: 1 });
    expect(outcome.ok).toBe(false);
    expect(outcome.failure).toMatchObject({ kind: 'liveness', message: expect.stringContaining('LivenessFailure') });
    expect(outcome.world).toMatch(/^seed 3: \{"nodeCount":/);
  });

  it('the sim command exits 4 on liveness failures, prints the drawn world first and a replay with every flag', () => {
    const result = spawnSync(process.execPath, ['bin/ledgermq', 'sim', '--seeds', '1', '--seed', '3', '--ticks', '300', '--liveness-ticks', '1'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(4);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^seed 3: \{"nodeCount":/);
    expect(lines[1]).toMatch(/^seed 3 FAILED \(liveness\) at tick \d+: LivenessFailure/);
    expect(lines.at(-1)).toBe('replay: ./bin/ledgermq sim --seeds 1 --seed 3 --ticks 300 --liveness-ticks 1 --trace');
  });
});
