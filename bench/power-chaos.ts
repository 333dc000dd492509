// Power-loss chaos across modes (`npm run bench:power`): `ledgermq chaos --nemesis power` for
// many seeds per flush:quorum mode, one CLI process per run, and per seed the acknowledged
// writes lost and the loss window. sync:majority and sync:all must stay valid on every seed;
// async:majority must show a loss on every seed (a cut of all nodes takes the last flush
// interval); sync:leader shows what it shows. The disk's append+fdatasync latency and the load
// average are measured beside the runs. Prints a table, writes bench/out/power-chaos.json.
// Not part of npm test: the defaults take about 25 minutes on 2 cores.
//
//   node dist/bench/power-chaos.js [--sync-seeds 10] [--sync-duration 30] [--loss-seeds 10] [--loss-duration 20]
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { measureDiskSync } from '../src/bench/disk.js';
import type { LossWindow } from '../src/chaos/power-loss.js';

interface ModePlan {
  readonly flush: 'sync' | 'async';
  readonly quorum: 'majority' | 'all' | 'leader';
  readonly seeds: number;
  readonly durationS: number;
  /** What every seed must show: a valid history, or a loss; null: just report. */
  readonly expect: 'valid' | 'loss' | null;
}

interface SeedResult {
  readonly seed: number;
  readonly verdict: string;
  readonly acked: number;
  readonly faults: number;
  readonly allNodeCuts: number;
  readonly anomalies: Record<string, number>;
  readonly crashedNodes: string[];
  readonly powerLoss: LossWindow;
  readonly lossExplained: string | null;
  readonly wallS: number;
}

const { values } = parseArgs({
  options: {
    'sync-seeds': { type: 'string', default: '10' },
    'sync-duration': { type: 'string', default: '30' },
    'loss-seeds': { type: 'string', default: '10' },
    'loss-duration': { type: 'string', default: '20' },
    /** Only these modes, e.g. async:majority,sync:leader (default: all four). */
    modes: { type: 'string' },
  },
});
const syncSeeds = Number(values['sync-seeds']);
const syncDurationS = Number(values['sync-duration']);
const lossSeeds = Number(values['loss-seeds']);
const lossDurationS = Number(values['loss-duration']);

const allPlans: ModePlan[] = [
  { flush: 'sync', quorum: 'majority', seeds: syncSeeds, durationS: syncDurationS, expect: 'valid' },
  { flush: 'sync', quorum: 'all', seeds: Math.max(1, Math.ceil(syncSeeds / 2)), durationS: syncDurationS, expect: 'valid' },
  { flush: 'async', quorum: 'majority', seeds: lossSeeds, durationS: lossDurationS, expect: 'loss' },
  { flush: 'sync', quorum: 'leader', seeds: lossSeeds, durationS: lossDurationS, expect: null },
];
const wanted = values.modes?.split(',');
const plans = allPlans.filter((p) => wanted === undefined || wanted.includes(`${p.flush}:${p.quorum}`));

const BIN = resolve(import.meta.dirname, import.meta.dirname.includes('/dist/') ? '../../bin/ledgermq' : '../bin/ledgermq');
const OUT_DIR = resolve(import.meta.dirname, import.meta.dirname.includes('/dist/') ? '../../bench/out' : 'out');
const runsDir = join(tmpdir(), `lmq-power-chaos-${process.pid}`);

function runSeed(plan: ModePlan, seed: number): SeedResult {
  const outDir = join(runsDir, `${plan.flush}-${plan.quorum}-seed${seed}`);
  const started = Date.now();
  const args = [BIN, 'chaos', '--duration', String(plan.durationS), '--nemesis', 'power', '--seed', String(seed), '--flush', plan.flush, '--quorum', plan.quorum, '--out', outDir, '--json'];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: (plan.durationS + 180) * 1000, maxBuffer: 64 * 1024 * 1024 });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  // A run that could not judge (exit 2/3, a crash, a timeout) is reported and stops the script.
  if ((child.status !== 0 && child.status !== 1) || !line.startsWith('{')) {
    throw new Error(`chaos ${args.slice(2).join(' ')} exited ${child.status ?? child.signal} without a verdict: ${child.stderr.slice(-2000)}`);
  }
  const summary = JSON.parse(line) as Omit<SeedResult, 'wallS' | 'allNodeCuts'>;
  const allNodeCuts = summary.powerLoss.cuts.filter((c) => c.allNodes).length;
  // Keep the output of a run that broke its mode's promise; the rest is only figures.
  if (!broke(plan, summary.verdict, summary.powerLoss.lost)) rmSync(outDir, { recursive: true, force: true });
  return { ...summary, allNodeCuts, wallS: (Date.now() - started) / 1000 };
}

function broke(plan: ModePlan, verdict: string, lost: number): boolean {
  return (plan.expect === 'valid' && verdict !== 'valid') || (plan.expect === 'loss' && lost === 0);
}

function windowText(result: SeedResult): string {
  const cuts = result.powerLoss.cuts.filter((c) => c.lost > 0);
  if (cuts.length === 0) return '-';
  const before = cuts.flatMap((c) => [c.ackedBeforeCutMinMs!, c.ackedBeforeCutMaxMs!]);
  return `acked ${Math.round(Math.min(...before))}–${Math.round(Math.max(...before))} ms before a cut (${cuts.length} cut(s))`;
}

function others(result: SeedResult): string {
  const found = Object.entries(result.anomalies).filter(([kind, n]) => kind !== 'lost' && n > 0).map(([kind, n]) => `${kind} ${n}`);
  return found.length === 0 ? '' : `  [${found.join(', ')}]`;
}

mkdirSync(runsDir, { recursive: true });
mkdirSync(OUT_DIR, { recursive: true });
const disk = measureDiskSync({ parentDir: tmpdir(), appendBytes: 160, maxSamples: 2000, maxDurationMs: 3000 });
const loadBefore = loadavg();
console.log(`disk append+fdatasync: p50 ${disk.p50Ms.toFixed(3)} ms, p99 ${disk.p99Ms.toFixed(3)} ms (${disk.samples} samples); load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
const summaries = [];
let failures = 0;
for (const plan of plans) {
  const mode = `${plan.flush}:${plan.quorum}`;
  console.log(`\n${mode}: ${plan.seeds} seeds × ${plan.durationS} s${plan.expect === null ? '' : `, every seed must be ${plan.expect === 'valid' ? 'valid' : 'lossy'}`}`);
  const results: SeedResult[] = [];
  for (let seed = 1; seed <= plan.seeds; seed++) {
    const result = runSeed(plan, seed);
    results.push(result);
    const bad = broke(plan, result.verdict, result.powerLoss.lost);
    if (bad) failures += 1;
    console.log(
      `  seed ${String(seed).padStart(2)}: ${result.verdict.padEnd(7)} acked ${String(result.acked).padStart(5)}, cuts ${result.faults} (${result.allNodeCuts} of all nodes), lost ${String(result.powerLoss.lost).padStart(3)}, ${windowText(result)}${others(result)}${result.crashedNodes.length > 0 ? `  crashed: ${result.crashedNodes.join(',')}` : ''}${bad ? `  BROKE ${mode} (output kept in ${runsDir})` : ''}`,
    );
  }
  const lostCuts = results.flatMap((r) => r.powerLoss.cuts.filter((c) => c.lost > 0));
  const before = lostCuts.flatMap((c) => [c.ackedBeforeCutMinMs!, c.ackedBeforeCutMaxMs!]);
  const summary = {
    mode, seeds: plan.seeds, durationS: plan.durationS,
    valid: results.filter((r) => r.verdict === 'valid').length,
    acked: results.reduce((sum, r) => sum + r.acked, 0),
    cuts: results.reduce((sum, r) => sum + r.faults, 0),
    allNodeCuts: results.reduce((sum, r) => sum + r.allNodeCuts, 0),
    lost: results.reduce((sum, r) => sum + r.powerLoss.lost, 0),
    seedsWithLoss: results.filter((r) => r.powerLoss.lost > 0).length,
    cutsWithLoss: lostCuts.length,
    ackedBeforeCutMinMs: before.length === 0 ? null : Math.min(...before),
    ackedBeforeCutMaxMs: before.length === 0 ? null : Math.max(...before),
    lostPerLossyCutMax: lostCuts.length === 0 ? 0 : Math.max(...lostCuts.map((c) => c.lost)),
    results,
  };
  summaries.push(summary);
  const window = summary.ackedBeforeCutMinMs === null ? 'no loss' : `lost writes acked ${Math.round(summary.ackedBeforeCutMinMs)}–${Math.round(summary.ackedBeforeCutMaxMs!)} ms before a cut`;
  console.log(`  ${mode}: ${summary.valid}/${summary.seeds} valid, ${summary.acked} acked, ${summary.cuts} cuts (${summary.allNodeCuts} of all nodes), ${summary.lost} lost in ${summary.seedsWithLoss} seeds / ${summary.cutsWithLoss} cuts; ${window}`);
}
const loadAfter = loadavg();
console.log(`\nload after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
writeFileSync(join(OUT_DIR, 'power-chaos.json'), `${JSON.stringify({ disk, loadBefore, loadAfter, summaries }, null, 2)}\n`);
console.log(`wrote ${join(OUT_DIR, 'power-chaos.json')}`);
if (failures === 0) rmSync(runsDir, { recursive: true, force: true });
process.exitCode = failures === 0 ? 0 : 1;
