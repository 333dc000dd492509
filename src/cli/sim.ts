// `ledgermq sim`: runs the deterministic simulator over many seeds (CONTRACT.md).
import type { Command } from 'commander';
import { type SimFailureKind, replayCommand, runSeed } from '../sim/simulator.js';
import { parseIntOption } from './options.js';

interface SimCommandOptions {
  seeds: number;
  seed?: number;
  json?: boolean;
  trace?: boolean;
  ticks?: number;
  livenessTicks?: number;
}

export function registerSim(program: Command): void {
  program
    .command('sim')
    .description('run the deterministic Raft simulator over many seeds (drops, delays, partitions, crashes)')
    .option('--seeds <n>', 'number of seeds to run', parseIntOption('--seeds', 1, 10_000_000), 1000)
    .option('--seed <s>', 'first seed (with --seeds 1: replay exactly this seed)', parseIntOption('--seed', 0, 2 ** 31 - 1))
    .option('--ticks <n>', 'ticks with faults on per seed', parseIntOption('--ticks', 10, 1_000_000))
    .option('--liveness-ticks <n>', 'ticks the healed cluster has to converge', parseIntOption('--liveness-ticks', 1, 1_000_000))
    .option('--trace', 'print the whole trace of a failing seed, not just its end')
    .option('--json', 'print {"seeds":N,"passed":N,"failed":[S…]}')
    .action((options: SimCommandOptions) => runSimCommand(options));
}

/** Exit codes (CONTRACT.md): 1 a safety violation; else 5 the simulator crashed; else 4 liveness failures only. */
function exitCode(kinds: ReadonlySet<SimFailureKind>): number {
  if (kinds.has('safety')) return 1;
  return kinds.has('crash') ? 5 : 4;
}

function runSimCommand(options: SimCommandOptions): void {
  const first = options.seed ?? 1;
  const simOptions = {
    fullTrace: options.trace === true,
    ...(options.ticks === undefined ? {} : { safetyTicks: options.ticks }),
    ...(options.livenessTicks === undefined ? {} : { livenessTicksMax: options.livenessTicks }),
  };
  const failed: number[] = [];
  const kinds = new Set<SimFailureKind>();
  const started = performance.now();
  for (let seed = first; seed < first + options.seeds; seed++) {
    const outcome = runSeed(seed, simOptions);
    if (outcome.ok) continue;
    failed.push(seed);
    const failure = outcome.failure!;
    kinds.add(failure.kind);
    process.stderr.write(`\n${outcome.world}\n`);
    process.stderr.write(`seed ${seed} FAILED (${failure.kind}) at tick ${failure.tick}: ${failure.message}\n`);
    process.stderr.write(`${failure.trace.join('\n')}\n`);
    process.stderr.write(`replay: ${replayCommand(seed, simOptions)}\n`);
  }
  const seconds = (performance.now() - started) / 1000;
  const passed = options.seeds - failed.length;
  if (options.json) process.stdout.write(`${JSON.stringify({ seeds: options.seeds, passed, failed, seconds: Number(seconds.toFixed(1)) })}\n`);
  else process.stdout.write(`${passed} of ${options.seeds} seeds passed in ${seconds.toFixed(1)} s${failed.length ? `; failed: ${failed.join(' ')}` : ''}\n`);
  if (failed.length > 0) process.exitCode = exitCode(kinds);
}
