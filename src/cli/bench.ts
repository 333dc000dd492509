// `ledgermq bench`: measures a fresh local three-node cluster per mode from this process over
// real TCP — throughput and latency (default), failover times, or produce→consume latency at a
// fixed rate — and writes JSON and a chart to --out. Clusters are disposed of on SIGINT too.
import { type Command, Option } from 'commander';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { disposeAllBenchClusters } from '../bench/bench-cluster.js';
import { formatRows, profileOfPid, summarizeProfile } from '../bench/cpu-profile.js';
import { measureDiskSync } from '../bench/disk.js';
import { parseModes } from '../bench/modes.js';
import { runCatchUp } from '../bench/catch-up.js';
import { runFailover } from '../bench/failover.js';
import { runEndToEnd } from '../bench/e2e.js';
import { throughputTable, writeChart, writeJson } from '../bench/report.js';
import { type ModeResult, runThroughputMode } from '../bench/throughput.js';
import { LIMITS } from '../protocol/index.js';
import { LmqError } from '../util/errors.js';
import { parseIntOption } from './options.js';

export interface BenchOptions {
  modes: string;
  duration: number;
  warmup: number;
  size: number;
  concurrency: number;
  producers: number;
  maxBatch: number;
  queues: number;
  scenario: 'throughput' | 'failover' | 'e2e' | 'catch-up';
  kills: number;
  count: number;
  rate: number;
  cpuProf?: boolean;
  acl?: boolean;
  tls?: boolean;
  json?: boolean;
  out: string;
}

const BENCH_TOPIC = 'bench';
/** Samples of the disk's own append+fdatasync latency taken before the runs. */
const DISK_SAMPLES = 500;
const DISK_SAMPLE_MAX_MS = 5000;

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('benchmark a fresh local 3-node cluster per mode; prints a table, writes JSON and a chart to --out')
    .option('--modes <list>', 'comma-separated flush:quorum modes', 'sync:majority,async:majority,sync:all,sync:leader')
    .option('--duration <s>', 'measured seconds per mode (failover: ignored; e2e: seconds of offered load)', parseIntOption('--duration', 1, 3600), 10)
    .option('--warmup <s>', 'seconds of load before measuring (throughput: and at least 10,000 acks, so the JIT has warmed up)', parseIntOption('--warmup', 0, 600), 2)
    .option('--size <bytes>', 'message body size', parseIntOption('--size', 1, LIMITS.maxProduceBodyBytes), 128)
    .option('--concurrency <n>', 'produces in flight at once', parseIntOption('--concurrency', 1, 65_536), 256)
    .option('--producers <n>', 'producers (each its own TCP connection) the in-flight produces are spread over', parseIntOption('--producers', 1, 256), 1)
    .option('--max-batch <n>', 'sends one producer combines into one request at most; 1: one request per send', parseIntOption('--max-batch', 1, LIMITS.maxMessagesPerProduce), 256)
    .option('--queues <n>', 'queues of the benchmark topic', parseIntOption('--queues', 1, LIMITS.maxQueuesPerTopic), 8)
    .addOption(new Option('--scenario <name>', 'what to measure').choices(['throughput', 'failover', 'e2e', 'catch-up']).default('throughput'))
    .option('--kills <n>', 'failover: leader kills', parseIntOption('--kills', 1, 1000), 20)
    .option('--count <n>', 'catch-up: messages produced while the follower is down', parseIntOption('--count', 1, 100_000_000), 300_000)
    .option('--rate <msgs>', 'e2e: offered messages per second', parseIntOption('--rate', 1, 1_000_000), 1000)
    .option('--cpu-prof', 'run nodes with --cpu-prof; profiles land in OUT/profiles')
    .option('--acl', 'run the clusters with an ACL file: every request signed and checked (its cost)')
    .option('--tls', 'run the clusters with security.tls: peer and client connections over TLS (its cost)')
    .option('--json', 'print the JSON result on stdout')
    .option('--out <dir>', 'directory for the JSON and the chart', 'bench/out')
    .action((options: BenchOptions) => withCleanup(() => runBench(options)));
}

async function withCleanup(run: () => Promise<void>): Promise<void> {
  const onSignal = () => {
    disposeAllBenchClusters().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await run();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await disposeAllBenchClusters();
  }
}

/** The broker answers LMQ_OVERLOADED beyond this many requests in flight on one connection (RpcServer). */
const MAX_IN_FLIGHT_PER_CONNECTION = 256;

async function runBench(options: BenchOptions): Promise<void> {
  const modes = parseModes(options.modes);
  if (options.concurrency > MAX_IN_FLIGHT_PER_CONNECTION * options.producers) {
    throw new LmqError('LMQ_BAD_INPUT', `--concurrency ${options.concurrency} over ${options.producers} producer(s) exceeds the broker's ${MAX_IN_FLIGHT_PER_CONNECTION} requests in flight per connection; add --producers ${Math.ceil(options.concurrency / MAX_IN_FLIGHT_PER_CONNECTION)}`);
  }
  if (options.producers > options.concurrency && options.scenario !== 'e2e') {
    throw new LmqError('LMQ_BAD_INPUT', `--producers ${options.producers} is more than --concurrency ${options.concurrency}: every producer needs a send in flight`);
  }
  const outDir = resolve(options.out);
  const progress = progressLine();
  const disk = measureDiskSync({ parentDir: tmpdir(), appendBytes: options.size + 64, maxSamples: DISK_SAMPLES, maxDurationMs: DISK_SAMPLE_MAX_MS });
  progress.show(`disk append+fdatasync p50 ${disk.p50Ms} ms, p99 ${disk.p99Ms} ms`);
  const common = { topic: BENCH_TOPIC, queues: options.queues, nodeArgs: options.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${join(outDir, 'profiles')}`] : [], cleanStop: options.cpuProf === true, acl: options.acl === true, tls: options.tls === true };
  if (options.scenario === 'failover') {
    const result = await runFailover(modes[0]!, { ...common, sizeBytes: options.size, concurrency: options.concurrency, producers: options.producers, maxBatch: options.maxBatch, kills: options.kills }, progress.show);
    progress.done();
    return emit(options, outDir, 'failover.json', { fsyncP50Ms: disk.p50Ms, fsyncP99Ms: disk.p99Ms, ...result.document }, result.text);
  }
  if (options.scenario === 'catch-up') {
    const result = await runCatchUp(modes[0]!, { ...common, sizeBytes: options.size, concurrency: options.concurrency, maxBatch: options.maxBatch, count: options.count }, progress.show);
    progress.done();
    return emit(options, outDir, 'catch-up.json', { fsyncP50Ms: disk.p50Ms, fsyncP99Ms: disk.p99Ms, ...result.document }, result.text);
  }
  if (options.scenario === 'e2e') {
    const result = await runEndToEnd(modes, { ...common, sizeBytes: options.size, ratePerSec: options.rate, durationS: options.duration, warmupS: options.warmup, producers: options.producers }, progress.show);
    progress.done();
    return emit(options, outDir, 'e2e.json', { fsyncP50Ms: disk.p50Ms, fsyncP99Ms: disk.p99Ms, ...result.document }, result.text);
  }
  const results: ModeResult[] = [];
  for (const mode of modes) {
    results.push(await runThroughputMode(mode, { ...common, sizeBytes: options.size, concurrency: options.concurrency, producers: options.producers, maxBatch: options.maxBatch, durationS: options.duration, warmupS: options.warmup }, progress.show));
  }
  progress.done();
  const batching = options.maxBatch === 1 ? 'one request per send' : `up to ${options.maxBatch} sends per request`;
  const subtitle = `${options.size} B messages, ${options.concurrency} in flight over ${options.producers} producer(s), ${batching}, ${options.duration} s per mode; disk fdatasync p50 ${disk.p50Ms} ms / p99 ${disk.p99Ms} ms`;
  writeChart(outDir, 'bench.svg', results, subtitle);
  const profiles = options.cpuProf === true ? `\n${profileTops(join(outDir, 'profiles'), results)}` : '';
  return emit(options, outDir, 'bench.json', { fsyncP50Ms: disk.p50Ms, fsyncP99Ms: disk.p99Ms, diskSamples: disk.samples, results }, throughputTable(results, disk) + profiles);
}

/** Functions shown per node after a --cpu-prof run. */
const PROFILE_TOP_FUNCTIONS = 20;

/** Each node's top self-time functions per mode within the measured window, from the profile its process wrote. */
function profileTops(dir: string, results: readonly ModeResult[]): string {
  const sections: string[] = [];
  for (const result of results) {
    for (const node of result.nodes) {
      const path = profileOfPid(dir, node.pid);
      if (path === null) {
        sections.push(`${result.mode} ${node.id} (${node.role}, pid ${node.pid}): no profile in ${dir}`);
        continue;
      }
      const summary = summarizeProfile(path, result.window);
      sections.push(
        `${result.mode} ${node.id} (${node.role}): top ${PROFILE_TOP_FUNCTIONS} functions by self time in the measured ${(summary.totalUs / 1e6).toFixed(1)} s (${path}; the window on its clock: ${result.window.fromUs}–${result.window.toUs} µs)`,
        ...formatRows(summary.selfByFunction, summary.totalUs, PROFILE_TOP_FUNCTIONS),
      );
    }
  }
  return `${sections.join('\n')}\nfull summaries: node dist/bench/cpuprofile-top.js FILE`;
}

function emit(options: BenchOptions, outDir: string, name: string, document: unknown, text: string): void {
  const path = writeJson(outDir, name, document);
  if (options.json) process.stdout.write(`${JSON.stringify(document)}\n`);
  else process.stdout.write(`${text}\nwritten to ${path}\n`);
}

/** One rewritten status line on a terminal; silent when stderr is not a TTY. */
function progressLine(): { show: (line: string) => void; done: () => void } {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  return {
    show: (line) => {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${line}`);
      shown = true;
    },
    done: () => {
      if (tty && shown) process.stderr.write('\r\x1b[K');
    },
  };
}
