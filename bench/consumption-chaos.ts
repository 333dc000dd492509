// The consumption workloads under chaos across seeds (`npm run bench:consumption-chaos`):
// `ledgermq chaos --workload retry|orderly|delay|simple|tx|filter|grow` under kill, pause and partition, sync flush,
// majority quorum, one CLI process per run. Every seed must be valid; a run that is not keeps
// its output directory and is named at the end. Prints a table, writes
// bench/out/consumption-chaos.json. Not part of npm test: the defaults (10 seeds × 30 s per
// workload) take about 55 minutes on 2 cores.
//
//   node dist/bench/consumption-chaos.js [--seeds 10] [--duration 30] [--workloads retry,orderly,delay,simple,tx,filter,grow] [--first-seed 1]
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '10' },
    duration: { type: 'string', default: '30' },
    workloads: { type: 'string', default: 'retry,orderly,delay,simple,tx,filter,grow' },
    'first-seed': { type: 'string', default: '1' },
  },
});
const seeds = Number(values.seeds);
const durationS = Number(values.duration);
const firstSeed = Number(values['first-seed']);
const workloads = values.workloads.split(',');

const BIN = resolve(import.meta.dirname, import.meta.dirname.includes('/dist/') ? '../../bin/ledgermq' : '../bin/ledgermq');
const OUT_DIR = resolve(import.meta.dirname, import.meta.dirname.includes('/dist/') ? '../../bench/out' : 'out');
const runsDir = join(tmpdir(), `lmq-consumption-chaos-${process.pid}`);

interface SeedResult {
  readonly workload: string;
  readonly seed: number;
  readonly verdict: string;
  readonly acked: number;
  readonly faults: number;
  readonly anomalies: Record<string, number>;
  readonly crashedNodes: string[];
  readonly wallS: number;
  readonly loadAverage: number;
  readonly outDir: string;
}

function runSeed(workload: string, seed: number): SeedResult {
  const outDir = join(runsDir, `${workload}-seed${seed}`);
  const started = Date.now();
  const args = [BIN, 'chaos', '--workload', workload, '--duration', String(durationS), '--seed', String(seed), '--out', outDir, '--json'];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: (durationS + 240) * 1000, maxBuffer: 64 * 1024 * 1024 });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if ((child.status !== 0 && child.status !== 1) || !line.startsWith('{')) {
    throw new Error(`chaos ${args.slice(1).join(' ')} exited ${child.status ?? child.signal} without a verdict: ${child.stderr.slice(-2000)}`);
  }
  const summary = JSON.parse(line) as { verdict: string; acked: number; faults: number; anomalies: Record<string, number>; crashedNodes: string[] };
  if (summary.verdict === 'valid' && summary.crashedNodes.length === 0) rmSync(outDir, { recursive: true, force: true });
  return { workload, seed, ...summary, wallS: (Date.now() - started) / 1000, loadAverage: loadavg()[0]!, outDir };
}

mkdirSync(runsDir, { recursive: true });
mkdirSync(OUT_DIR, { recursive: true });
const results: SeedResult[] = [];
for (const workload of workloads) {
  for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
    const result = runSeed(workload, seed);
    results.push(result);
    const found = Object.entries(result.anomalies).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
    process.stdout.write(`${workload.padEnd(8)} seed ${String(seed).padStart(3)}  ${result.verdict.padEnd(8)} acked ${String(result.acked).padStart(6)}  faults ${String(result.faults).padStart(2)}  ${result.wallS.toFixed(0)} s  load ${result.loadAverage.toFixed(1)}${found.length > 0 ? `  ${found.join(', ')}` : ''}${result.crashedNodes.length > 0 ? `  crashed ${result.crashedNodes.join(',')}` : ''}\n`);
  }
}
const bad = results.filter((r) => r.verdict !== 'valid' || r.crashedNodes.length > 0);
writeFileSync(join(OUT_DIR, 'consumption-chaos.json'), `${JSON.stringify({ durationS, seeds, workloads, results }, null, 2)}\n`);
process.stdout.write(`${results.length - bad.length}/${results.length} runs valid${bad.length > 0 ? `; kept: ${bad.map((r) => r.outDir).join(' ')}` : ''}\n`);
process.exitCode = bad.length > 0 ? 1 : 0;
