// The checker's self-test under real faults (`npm run bench:planted-bugs`): one
// `ledgermq chaos --plant KIND` run per planted bug (src/chaos/plants.ts). Each run must come
// out invalid with the plant's own anomaly; a plant the checker misses fails the script and
// keeps its output directory. Prints a table, writes bench/out/planted-bugs.json. A planted
// orderly overlap keeps its group busy until the quiesce bound (60 s): runs take up to minutes.
//
//   node dist/bench/planted-bugs.js [--duration 10] [--seed 1] [--plants lost-retry,…]
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PLANT_KINDS, PLANTS, type PlantKind } from '../src/chaos/plants.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    plants: { type: 'string', default: PLANT_KINDS.join(',') },
  },
});
const durationS = Number(values.duration);
const seed = Number(values.seed);
const plants = values.plants.split(',') as PlantKind[];
for (const plant of plants) if (!PLANT_KINDS.includes(plant)) throw new Error(`unknown plant ${plant}; choose from ${PLANT_KINDS.join(', ')}`);

const BIN = resolve(import.meta.dirname, '../../bin/ledgermq');
const OUT_DIR = resolve(import.meta.dirname, '../../bench/out');
const runsDir = join(tmpdir(), `lmq-planted-bugs-${process.pid}`);

interface PlantResult {
  readonly plant: PlantKind;
  readonly workload: string;
  readonly caught: boolean;
  readonly found: number;
  readonly otherAnomalies: Record<string, number>;
  readonly acked: number;
  readonly faults: number;
  readonly wallS: number;
  readonly loadAverage: number;
  readonly outDir: string;
}

function runPlant(plant: PlantKind): PlantResult {
  const outDir = join(runsDir, plant);
  const started = Date.now();
  const args = [BIN, 'chaos', '--plant', plant, '--duration', String(durationS), '--seed', String(seed), '--out', outDir, '--json'];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: (durationS + 420) * 1000, maxBuffer: 64 * 1024 * 1024 });
  const line = child.stdout.trim().split('\n').pop() ?? '';
  if ((child.status !== 0 && child.status !== 1) || !line.startsWith('{')) {
    throw new Error(`chaos ${args.slice(1).join(' ')} exited ${child.status ?? child.signal} without a verdict: ${child.stderr.slice(-2000)}`);
  }
  const summary = JSON.parse(line) as { verdict: string; acked: number; faults: number; anomalies: Record<string, number> };
  const { anomaly, workload } = PLANTS[plant];
  const found = summary.anomalies[anomaly] ?? 0;
  const caught = summary.verdict === 'invalid' && found > 0;
  const otherAnomalies = Object.fromEntries(Object.entries(summary.anomalies).filter(([k, n]) => k !== anomaly && n > 0));
  if (caught) rmSync(outDir, { recursive: true, force: true });
  return { plant, workload, caught, found, otherAnomalies, acked: summary.acked, faults: summary.faults, wallS: (Date.now() - started) / 1000, loadAverage: loadavg()[0]!, outDir };
}

mkdirSync(runsDir, { recursive: true });
mkdirSync(OUT_DIR, { recursive: true });
const results: PlantResult[] = [];
for (const plant of plants) {
  const r = runPlant(plant);
  results.push(r);
  const others = Object.entries(r.otherAnomalies).map(([k, n]) => `${k} ${n}`);
  process.stdout.write(
    `${plant.padEnd(16)} ${r.workload.padEnd(8)} ${r.caught ? 'CAUGHT ' : 'MISSED '} ${PLANTS[plant].anomaly} ${String(r.found).padStart(5)}  acked ${String(r.acked).padStart(6)}  faults ${String(r.faults).padStart(2)}  ${r.wallS.toFixed(0)} s  load ${r.loadAverage.toFixed(1)}${others.length > 0 ? `  also ${others.join(', ')}` : ''}\n`,
  );
}
const missed = results.filter((r) => !r.caught);
writeFileSync(join(OUT_DIR, 'planted-bugs.json'), `${JSON.stringify({ durationS, seed, results }, null, 2)}\n`);
process.stdout.write(`${results.length - missed.length}/${results.length} planted bugs caught${missed.length > 0 ? `; kept: ${missed.map((r) => r.outDir).join(' ')}` : ''}\n`);
process.exitCode = missed.length > 0 ? 1 : 0;
