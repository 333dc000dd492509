// The throughput scenario for one mode: a fresh cluster, warm-up, then a closed-loop produce
// load for the measured duration. Reports rate, latency percentiles, messages per produce
// request, the leader's fsyncs, and CPU and memory of the leader, the followers and this
// (client) process.
import { setTimeout as sleep } from 'node:timers/promises';
import { loadavg } from 'node:os';
import type { LocalCluster } from '../cluster/local-cluster.js';
import type { NodeStatus } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { disposeBenchCluster, startBenchCluster } from './bench-cluster.js';
import { ClosedLoopLoad } from './load.js';
import { monotonicUs, type MonotonicWindow } from './cpu-profile.js';
import { cpuSeconds, type LatencySummary, machineCpuTicks, type MachineCpuTicks, round3, rss, stealPercent, summarize } from './measure.js';
import type { BenchMode } from './modes.js';

export interface ThroughputOptions {
  readonly topic: string;
  readonly queues: number;
  readonly sizeBytes: number;
  readonly concurrency: number;
  /** Producers (each with its own client connection) the concurrency is spread over. */
  readonly producers: number;
  /** Sends combined into one request at most (1: one request per send). */
  readonly maxBatch: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly nodeArgs: readonly string[];
  /** Stop nodes with SIGTERM at the end (needed for --cpu-prof output). */
  readonly cleanStop: boolean;
}

export interface ModeResult extends Omit<LatencySummary, 'count'> {
  readonly mode: string;
  readonly msgsPerSec: number;
  readonly mbPerSec: number;
  readonly fsyncsPerSec: number;
  readonly msgsPerFsync: number;
  readonly acked: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly sizeBytes: number;
  readonly concurrency: number;
  readonly producers: number;
  readonly maxBatch: number;
  /** Messages per produce request the producers started in the window: how much sends were combined. */
  readonly msgsPerRequest: number;
  readonly measuredS: number;
  /** CPU used during the window, in percent of one core. */
  readonly clientCpuPct: number;
  readonly leaderCpuPct: number;
  readonly followerCpuPct: readonly number[];
  /** Leader CPU per acknowledged message: what a hot-path fix should lower, even on a busy machine. */
  readonly leaderCpuUsPerMsg: number;
  /** CPU of the three nodes together per acknowledged message, µs (CONTRACT.md). */
  readonly serverCpuUsPerMsg: number;
  /** Each node's id, process id and role at the start of the window (to find its --cpu-prof profile). */
  readonly nodes: readonly { readonly id: string; readonly pid: number; readonly role: 'leader' | 'follower' }[];
  /** The measured window on the monotonic clock the nodes' --cpu-prof profiles use. */
  readonly window: MonotonicWindow;
  readonly leaderRssMb: { readonly start: number; readonly max: number; readonly end: number };
  /** The leader's VmRSS once a second through the window. */
  readonly rssSamplesMb: readonly number[];
  /** The leader's RssAnon (heap, no lmdb map) at the same moments. */
  readonly rssAnonSamplesMb: readonly number[];
  readonly leaderChanged: boolean;
  readonly loadAvg1: number;
  /** Percent of the machine's CPU time its host stole over the window (/proc/stat): above ~2%, CPU figures run high. */
  readonly stealPct: number;
}

export type Progress = (line: string) => void;

/**
 * Warm-up lasts --warmup seconds and at least this many acks: V8 optimizes a function only
 * after thousands of calls, so at low concurrency a few seconds would measure the compiler
 * (at concurrency 1 the nodes' CPU per message fell 3x between the 3rd and the 30th second).
 */
const WARMUP_MIN_ACKS = 10_000;
/** ...but never longer than this: a mode too slow to reach WARMUP_MIN_ACKS is measured anyway. */
const WARMUP_MAX_MS = 60_000;
/** RSS samples and the progress line are taken this often. */
const SAMPLE_EVERY_MS = 1000;
const SEND_TIMEOUT_MS = 20_000;

export async function runThroughputMode(mode: BenchMode, options: ThroughputOptions, progress: Progress): Promise<ModeResult> {
  assert(options.durationS > 0, 'duration must be positive');
  const cluster = await startBenchCluster(mode, options);
  let load: ClosedLoopLoad | null = null;
  try {
    const clients = Array.from({ length: options.producers }, () => cluster.client(SEND_TIMEOUT_MS));
    load = new ClosedLoopLoad(clients, { topic: options.topic, sizeBytes: options.sizeBytes, concurrency: options.concurrency, sendTimeoutMs: SEND_TIMEOUT_MS, maxBatch: options.maxBatch });
    load.start();
    progress(`${mode.name}: warming up ${options.warmupS} s and ${WARMUP_MIN_ACKS} acks`);
    await warmUp(load, options.warmupS * 1000);
    const before = await snapshot(cluster);
    load.beginWindow();
    const fromUs = monotonicUs();
    const rssSamples = await sampleWhileRunning(mode, options, load, before.leader.pid, progress);
    const window = load.endWindow();
    const toUs = monotonicUs();
    const after = await snapshot(cluster);
    return toResult(mode, options, window, before, after, rssSamples, { fromUs, toUs });
  } finally {
    await load?.stop().catch(() => undefined);
    await disposeBenchCluster(cluster, options.cleanStop);
  }
}

async function warmUp(load: ClosedLoopLoad, warmupMs: number): Promise<void> {
  const startedMs = performance.now();
  await sleep(warmupMs);
  while (load.ackedSinceStart() < WARMUP_MIN_ACKS && performance.now() - startedMs < WARMUP_MAX_MS) await sleep(100);
}

interface Snapshot {
  readonly leader: NodeStatus;
  readonly atMs: number;
  readonly clientCpu: NodeJS.CpuUsage;
  readonly nodeCpuS: ReadonlyMap<string, number>;
  readonly nodePids: ReadonlyMap<string, number>;
  readonly machineCpu: MachineCpuTicks;
}

async function snapshot(cluster: LocalCluster): Promise<Snapshot> {
  const leader = await cluster.leader();
  const nodeCpuS = new Map<string, number>();
  const nodePids = new Map<string, number>();
  for (const node of cluster.config.nodes) {
    nodePids.set(node.id, cluster.pid(node.id));
    nodeCpuS.set(node.id, cpuSeconds(cluster.pid(node.id)) ?? 0);
  }
  return { leader, atMs: performance.now(), clientCpu: process.cpuUsage(), nodeCpuS, nodePids, machineCpu: machineCpuTicks() };
}

interface RssSamples {
  readonly totalMb: number[];
  readonly anonMb: number[];
}

async function sampleWhileRunning(mode: BenchMode, options: ThroughputOptions, load: ClosedLoopLoad, leaderPid: number, progress: Progress): Promise<RssSamples> {
  const samples: RssSamples = { totalMb: [], anonMb: [] };
  const take = () => {
    const sample = rss(leaderPid);
    if (sample === null) return;
    samples.totalMb.push(round3(sample.totalBytes / 2 ** 20));
    samples.anonMb.push(round3(sample.anonBytes / 2 ** 20));
  };
  const startedMs = performance.now();
  let lastAcked = 0;
  for (let elapsedMs = 0; elapsedMs < options.durationS * 1000; elapsedMs = performance.now() - startedMs) {
    take();
    await sleep(Math.min(SAMPLE_EVERY_MS, options.durationS * 1000 - elapsedMs));
    const acked = load.ackedSoFar();
    progress(`${mode.name}: ${Math.round((performance.now() - startedMs) / 1000)}/${options.durationS} s, ${acked - lastAcked} acks in the last second, leader RSS ${samples.totalMb.at(-1) ?? '?'} MB`);
    lastAcked = acked;
  }
  take();
  return samples;
}

function toResult(mode: BenchMode, options: ThroughputOptions, window: ReturnType<ClosedLoopLoad['endWindow']>, before: Snapshot, after: Snapshot, rssSamples: RssSamples, clockWindow: MonotonicWindow): ModeResult {
  const rssSamplesMb = rssSamples.totalMb;
  const seconds = (after.atMs - before.atMs) / 1000;
  const windowS = window.elapsedMs / 1000;
  assert(seconds > 0 && windowS > 0, 'the window must have a length');
  const fsyncs = after.leader.storage.fsyncs - before.leader.storage.fsyncs;
  const msgsPerSec = window.acked / windowS;
  const clientCpuS = (after.clientCpu.user + after.clientCpu.system - before.clientCpu.user - before.clientCpu.system) / 1e6;
  const nodeCpuPct = (id: string) => round1((100 * ((after.nodeCpuS.get(id) ?? 0) - (before.nodeCpuS.get(id) ?? 0))) / seconds);
  const latency = summarize(window.histogram);
  const leaderCpuPct = nodeCpuPct(before.leader.id);
  const followerCpuPct = [...before.nodeCpuS.keys()].filter((id) => id !== before.leader.id).map(nodeCpuPct);
  const serverCpuPct = leaderCpuPct + followerCpuPct.reduce((sum, pct) => sum + pct, 0);
  return {
    mode: mode.name,
    msgsPerSec: Math.round(msgsPerSec),
    mbPerSec: round3((msgsPerSec * options.sizeBytes) / 1e6),
    p50Ms: latency.p50Ms, p90Ms: latency.p90Ms, p99Ms: latency.p99Ms, p999Ms: latency.p999Ms, maxMs: latency.maxMs,
    fsyncsPerSec: round1(fsyncs / seconds),
    msgsPerFsync: fsyncs === 0 ? 0 : round1(window.acked / fsyncs),
    acked: window.acked,
    errors: window.errors,
    firstError: window.firstError,
    sizeBytes: options.sizeBytes,
    concurrency: options.concurrency,
    producers: options.producers,
    maxBatch: options.maxBatch,
    msgsPerRequest: window.requests === 0 ? 0 : round1(window.requestMessages / window.requests),
    measuredS: round3(windowS),
    clientCpuPct: round1((100 * clientCpuS) / seconds),
    leaderCpuPct,
    leaderCpuUsPerMsg: window.acked === 0 ? 0 : Math.round((leaderCpuPct * 1e4 * seconds) / window.acked),
    followerCpuPct,
    serverCpuUsPerMsg: msgsPerSec === 0 ? 0 : round1(((serverCpuPct / 100) * 1e6) / msgsPerSec),
    nodes: [...before.nodePids].map(([id, pid]) => ({ id, pid, role: id === before.leader.id ? ('leader' as const) : ('follower' as const) })),
    window: clockWindow,
    leaderRssMb: { start: rssSamplesMb[0] ?? 0, max: Math.max(0, ...rssSamplesMb), end: rssSamplesMb.at(-1) ?? 0 },
    rssSamplesMb,
    rssAnonSamplesMb: rssSamples.anonMb,
    leaderChanged: before.leader.id !== after.leader.id,
    loadAvg1: round1(loadavg()[0] ?? 0),
    stealPct: stealPercent(before.machineCpu, after.machineCpu),
  };
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
