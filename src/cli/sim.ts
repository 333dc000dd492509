// `ledgermq sim`: runs the deterministic simulator over many seeds (CONTRACT.md).
import type { Command } from 'commander';
import { runSeed } from '../sim/simulator.js';
import { parseIntOption } from './options.js';

interface SimCommandOptions {
  seeds: number;
  seed?: number;
  json?: boolean;
  trace?: boolean;
  ticks?: number;
}

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('run the deterministic Raft simulator over many seeds (drops, delays, partitions, crashes)')
    .option('--seeds <n>', 'number of seeds to run', parseIntOption('--seeds', 1, 10_000_000), 1000)
    .option('--seed <s>', 'first seed (with --seeds 1: replay exactly this seed)', parseIntOption('--seed', 0, 2 ** 31 - 1))
    .option('--ticks <n>', 'ticks with faults on per seed', parseIntOption('--ticks', 10, 1_000_000))
    .option('--trace', 'print the whole trace of a failing seed, not just its end')
    .option('--json', 'print {"seeds":N,"passed":N,"failed":[S…]}')
    .action((options: SimCommandOptions) => runSimCommand(options));
}

function runSimCommand(options: SimCommandOptions): void {
  const first = options.seed ?? 1;
  const failed: number[] = [];
  const started = performance.now();
  for (let seed = first; seed < first + options.seeds; seed++) {
    const outcome = runSeed(seed, { fullTrace: options.trace === true, ...(options.ticks === undefined ? {} : { safetyTicks: options.ticks }) });
    if (outcome.ok) continue;
    failed.push(seed);
    const failure = outcome.failure!;
    process.stderr.write(`\nseed ${seed} FAILED at tick ${failure.tick}: ${failure.message}\n`);
    process.stderr.write(`${failure.trace.join('\n')}\n`);
    process.stderr.write(`replay: ./bin/ledgermq sim --seeds 1 --seed ${seed} --trace\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  const passed = options.seeds - failed.length;
  if (options.json) process.stdout.write(`${JSON.stringify({ seeds: options.seeds, passed, failed, seconds: Number(seconds.toFixed(1)) })}\n`);
  else process.stdout.write(`${passed} of ${options.seeds} seeds passed in ${seconds.toFixed(1)} s${failed.length ? `; failed: ${failed.join(' ')}` : ''}\n`);
  if (failed.length > 0) process.exitCode = 1;
}
