// CLI start-time benchmark (`npm run bench:cli-start`, issue 18): how long a user waits for
// `ledgermq --help`, `ledgermq status` and a one-message `ledgermq produce`, against bare
// `node -e 0` on the same machine. Goals: --help and status within 2× node, produce within 3×.
// Starts a local three-node cluster (real processes), then runs the four commands round-robin
// RUNS times each (interleaved, so a change of load on a shared machine hits all four alike)
// from spawn to exit, and reports each one's median and its ratio to node's. Every run must exit
// 0. Writes bench/results/cli-start.json with the load average before and after.
// `--runs N` (default 30); `--bin PATH` times another build's bin/ledgermq (e.g. a checkout of
// an earlier commit, built) against this one's cluster. hyperfine gives the same figures by hand, e.g.
// `hyperfine -N 'node -e 0' 'node bin/ledgermq --help'`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { median } from './script.js';

const ROOT = resolve(import.meta.dirname, import.meta.dirname.includes('dist') ? '../..' : '..');
const DEFAULT_RUNS = 30;
const MAX_RUN_MS = 30_000;
const TOPIC = 'start';

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  /** The goal: at most this many times node's median. */
  readonly maxRatio: number | null;
}

/** One run from spawn to exit, in ms; a failed run ends the benchmark (it would time nothing). */
function timeRun(c: Case): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, c.args, { encoding: 'utf8', timeout: MAX_RUN_MS, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - started;
  if (result.status !== 0) throw new Error(`${c.name} exited ${result.status ?? result.signal}: ${result.stderr.slice(0, 500)}`);
  return ms;
}

async function main(): Promise<void> {
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg === -1 ? DEFAULT_RUNS : Number(process.argv[runsArg + 1]);
  if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number, not ${process.argv[runsArg + 1]}`);
  const binArg = process.argv.indexOf('--bin');
  const bin = binArg === -1 ? join(ROOT, 'bin', 'ledgermq') : resolve(process.argv[binArg + 1] ?? '');
  const cluster = await LocalCluster.create();
  try {
    cluster.startAll();
    await cluster.leader();
    await cluster.client().call({ op: 'createTopic', topic: TOPIC, queues: 1 });
    const config = ['--config', cluster.configPath];
    const cases: Case[] = [
      { name: 'node -e 0', args: ['-e', '0'], maxRatio: null },
      { name: 'ledgermq --help', args: [bin, '--help'], maxRatio: 2 },
      { name: 'ledgermq status', args: [bin, 'status', ...config], maxRatio: 2 },
      { name: 'ledgermq produce (1 message)', args: [bin, 'produce', '--topic', TOPIC, '--body', 'hello', ...config], maxRatio: 3 },
    ];
    for (const c of cases) timeRun(c); // warm the page cache and the cluster's connections
    const loadBefore = loadavg();
    const samples = cases.map(() => [] as number[]);
    for (let run = 0; run < runs; run++) cases.forEach((c, i) => samples[i]!.push(timeRun(c)));
    const loadAfter = loadavg();
    const nodeMs = median(samples[0]!);
    const results = cases.map((c, i) => {
      const medianMs = median(samples[i]!);
      return { name: c.name, medianMs: round(medianMs), ratio: round(medianMs / nodeMs), maxRatio: c.maxRatio, met: c.maxRatio === null ? null : medianMs / nodeMs <= c.maxRatio };
    });
    for (const r of results) {
      const goal = r.maxRatio === null ? '' : `  (goal ≤ ${r.maxRatio}×: ${r.met ? 'met' : 'NOT met'})`;
      process.stdout.write(`${r.name.padEnd(30)} median ${r.medianMs.toFixed(1).padStart(7)} ms  ${r.ratio.toFixed(2)}× node${goal}\n`);
    }
    const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
    process.stdout.write(`${runs} runs each, interleaved; load average before ${load(loadBefore)}, after ${load(loadAfter)} (node ${process.version})\n`);
    const out = join(ROOT, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, binArg === -1 ? 'cli-start.json' : 'cli-start-other-bin.json'), `${JSON.stringify({ bin, runs, node: process.version, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter, results }, null, 2)}\n`);
  } finally {
    await cluster.dispose();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

await main();
