// The catch-up scenario: does bringing back a follower that missed a lot stall the leader?
// On a fresh cluster: measure a one-message produce on the idle cluster, SIGKILL one follower,
// produce `count` messages with the normal batching producer, restart the follower, and while
// it catches up poll the leader's status every 100 ms (latency, missed answers, term, its
// event-loop delay), time a one-message produce every 500 ms, and time the catch-up until the
// leader sees the follower's lag at 0.
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LedgerClient } from '../client/client.js';
import { Producer } from '../client/producer.js';
import type { LocalCluster } from '../cluster/local-cluster.js';
import type { NodeStatus } from '../node/raft-node.js';
import { assert } from '../util/assert.js';
import { until } from '../util/until.js';
import { disposeBenchCluster, startBenchCluster } from './bench-cluster.js';
import { type FailoverOptions, percentiles } from './failover.js';
import { ClosedLoopLoad } from './load.js';
import { round3 } from './measure.js';
import type { BenchMode } from './modes.js';
import { formatTable } from './report.js';
import type { Progress } from './throughput.js';

export interface CatchUpOptions extends Omit<FailoverOptions, 'producers' | 'kills'> {
  /** Messages produced while the follower is down. */
  readonly count: number;
}

const STATUS_POLL_MS = 100;
/** A status answer slower than this counts as missed (the CLI's own per-node timeout). */
const STATUS_TIMEOUT_MS = 1000;
const PROBE_PRODUCE_EVERY_MS = 500;
const PROBE_PRODUCE_TIMEOUT_MS = 20_000;
const IDLE_PROBES = 10;
const SEND_TIMEOUT_MS = 30_000;
const MAX_CATCH_UP_MS = 180_000;
/**
 * Quiet time between the end of the load and the restart: longer than the status' event-loop
 * window (10 s), so the delays reported afterwards are the catch-up's, not the load's.
 */
const SETTLE_MS = 11_000;

interface StatusSample {
  readonly atMs: number;
  /** null: no answer within STATUS_TIMEOUT_MS. */
  readonly latencyMs: number | null;
  readonly status: NodeStatus | null;
}

interface Watch {
  stopped: boolean;
  readonly samples: StatusSample[];
  readonly produceMs: (number | null)[];
}

export async function runCatchUp(mode: BenchMode, options: CatchUpOptions, progress: Progress): Promise<{ document: Record<string, unknown>; text: string }> {
  const cluster = await startBenchCluster(mode, options);
  const watch: Watch = { stopped: false, samples: [], produceMs: [] };
  const pollers: Promise<void>[] = [];
  try {
    const leader = await cluster.leader();
    const follower = leader.followers[0]!.id;
    const probeClient = cluster.client(PROBE_PRODUCE_TIMEOUT_MS);
    const idle: (number | null)[] = [];
    for (let i = 0; i < IDLE_PROBES; i++) {
      idle.push(await probeProduce(probeClient, options.topic));
      await sleep(PROBE_PRODUCE_EVERY_MS);
    }
    await cluster.kill(follower);
    progress(`${follower} killed; producing ${options.count} messages`);
    const produced = await produce(cluster, options, progress);
    progress(`produced ${produced}; letting the leader settle before the restart`);
    await sleep(SETTLE_MS);
    const before = await cluster.leader();
    const behind = before.followers.find((f) => f.id === follower)!;
    const startedMs = performance.now();
    cluster.start(follower);
    pollers.push(pollStatus(cluster, leader.id, watch), probeEvery(probeClient, options.topic, watch));
    const caughtUpMs = await waitCaughtUp(cluster, watch, follower, startedMs, progress);
    // A little more under watch after the catch-up, so its tail is in the figures too.
    await sleep(1000);
    watch.stopped = true;
    await Promise.all(pollers);
    const target = { entries: before.lastIndex - behind.matchIndex, produced };
    return report(mode, options, { leader: leader.id, follower, idle, watch, caughtUpMs, target, bytes: catchUpBytes(before, target.entries), settled: before });
  } finally {
    watch.stopped = true;
    await Promise.all(pollers);
    await disposeBenchCluster(cluster, options.cleanStop);
  }
}

async function probeProduce(client: LedgerClient, topic: string): Promise<number | null> {
  const producer = new Producer(client, PROBE_PRODUCE_TIMEOUT_MS, { maxBatchMessages: 1 });
  const startedMs = performance.now();
  try {
    await producer.send(topic, { body: Buffer.from('probe') });
    return round3(performance.now() - startedMs);
  } catch {
    return null;
  }
}

async function produce(cluster: LocalCluster, options: CatchUpOptions, progress: Progress): Promise<number> {
  const client = cluster.client(SEND_TIMEOUT_MS);
  const load = new ClosedLoopLoad([client], { topic: options.topic, sizeBytes: options.sizeBytes, concurrency: options.concurrency, sendTimeoutMs: SEND_TIMEOUT_MS, maxBatch: options.maxBatch });
  load.start();
  try {
    await until(`${options.count} acknowledged messages`, () => {
      progress(`produced ${load.ackedSinceStart()}/${options.count}`);
      return load.ackedSinceStart() >= options.count;
    }, 30 * 60_000, 100);
  } finally {
    await load.stop();
    client.close();
  }
  return load.ackedSinceStart();
}

/** Polls the leader every STATUS_POLL_MS whether or not earlier polls have answered. */
async function pollStatus(cluster: LocalCluster, leaderId: string, watch: Watch): Promise<void> {
  const client = cluster.client(STATUS_TIMEOUT_MS);
  const inFlight: Promise<void>[] = [];
  try {
    while (!watch.stopped) {
      const atMs = performance.now();
      inFlight.push(client.callNode(leaderId, { op: 'status' }, STATUS_TIMEOUT_MS).then(
        (status) => void watch.samples.push({ atMs, latencyMs: round3(performance.now() - atMs), status: status as NodeStatus }),
        () => void watch.samples.push({ atMs, latencyMs: null, status: null }),
      ));
      await sleep(STATUS_POLL_MS);
    }
    await Promise.all(inFlight);
  } finally {
    client.close();
  }
}

async function probeEvery(client: LedgerClient, topic: string, watch: Watch): Promise<void> {
  while (!watch.stopped) {
    const startedMs = performance.now();
    watch.produceMs.push(await probeProduce(client, topic));
    await sleep(Math.max(0, PROBE_PRODUCE_EVERY_MS - (performance.now() - startedMs)));
  }
}

/**
 * Ms from the restart until a status answer of the leader shows the follower with lag 0 (null:
 * never). The polled node's answers are used while it leads; after a leader change, whoever
 * leads now is asked.
 */
async function waitCaughtUp(cluster: LocalCluster, watch: Watch, follower: string, startedMs: number, progress: Progress): Promise<number | null> {
  const deadlineMs = startedMs + MAX_CATCH_UP_MS;
  let seen = 0;
  while (performance.now() < deadlineMs) {
    let deposed = false;
    for (; seen < watch.samples.length; seen++) {
      const status = watch.samples[seen]!.status;
      if (status !== null && status.role !== 'leader') deposed = true;
      const lag = status?.followers.find((f) => f.id === follower)?.lag;
      if (lag !== undefined) progress(`${follower} lags ${lag} entries`);
      if (lag === 0 && status!.role === 'leader') return round3(watch.samples[seen]!.atMs - startedMs);
    }
    if (deposed) {
      const atMs = performance.now();
      const leader = await cluster.leader([], MAX_CATCH_UP_MS).catch(() => null);
      if (leader?.followers.find((f) => f.id === follower)?.lag === 0) return round3(atMs - startedMs);
    }
    await sleep(STATUS_POLL_MS);
  }
  return null;
}

/**
 * Log bytes the follower had to fetch, estimated from the leader's bytes per entry (nearly all
 * entries are the load's batches, so the average is close).
 */
function catchUpBytes(leaderBefore: NodeStatus, entriesBehind: number): number {
  return Math.round((leaderBefore.logBytes / Math.max(1, leaderBefore.lastIndex)) * entriesBehind);
}

interface Outcome {
  readonly leader: string;
  readonly follower: string;
  readonly idle: readonly (number | null)[];
  readonly watch: Watch;
  readonly caughtUpMs: number | null;
  readonly target: { entries: number; produced: number };
  readonly bytes: number | null;
  /** The leader's status just before the restart. */
  readonly settled: NodeStatus;
}

function report(mode: BenchMode, options: CatchUpOptions, outcome: Outcome): { document: Record<string, unknown>; text: string } {
  const { watch } = outcome;
  assert(watch.samples.length > 0, 'the leader was polled at least once');
  const answered = watch.samples.filter((s) => s.status !== null);
  const terms = [...new Set(answered.map((s) => s.status!.term))];
  const notLeader = answered.filter((s) => s.status!.role !== 'leader').length;
  const statusLatency = percentiles(watch.samples.map((s) => s.latencyMs));
  const delayP99 = answered.map((s) => s.status!.eventLoopDelayP99Ms ?? null);
  const delayMax = answered.map((s) => s.status!.eventLoopDelayMaxMs ?? null);
  const idle = percentiles(outcome.idle);
  const during = percentiles(watch.produceMs);
  const seconds = outcome.caughtUpMs === null ? null : outcome.caughtUpMs / 1000;
  const rate = {
    entriesPerSec: seconds === null ? null : Math.round(outcome.target.entries / seconds),
    mbPerSec: seconds === null || outcome.bytes === null ? null : round3(outcome.bytes / 1e6 / seconds),
  };
  const load = loadavg()[0]!;
  const document = {
    scenario: 'catch-up', mode: mode.name, count: options.count, produced: outcome.target.produced, sizeBytes: options.sizeBytes, concurrency: options.concurrency,
    leader: outcome.leader, follower: outcome.follower, entriesBehind: outcome.target.entries, bytesBehind: outcome.bytes,
    catchUpMs: outcome.caughtUpMs, ...rate,
    statusPolls: watch.samples.length, statusMissed: watch.samples.length - answered.length, statusLatency,
    terms, leaderChanges: terms.length - 1 + (notLeader > 0 ? 1 : 0),
    leaderEventLoopDelayP99Ms: percentiles(delayP99).maxMs, leaderEventLoopDelayMaxMs: percentiles(delayMax).maxMs,
    leaderEventLoopDelayBeforeRestart: { p99Ms: outcome.settled.eventLoopDelayP99Ms, maxMs: outcome.settled.eventLoopDelayMaxMs },
    produceIdle: idle, produceDuring: during, produceExtraMaxMs: idle.p50Ms === null || during.maxMs === null ? null : round3(during.maxMs - idle.p50Ms),
    loadAverage1m: round3(load),
  };
  const rows: (string | number)[][] = [
    ['catch-up time', outcome.caughtUpMs === null ? 'not within 180 s' : `${round3(outcome.caughtUpMs / 1000)} s`],
    ['entries / bytes behind', `${outcome.target.entries} / ${outcome.bytes === null ? '-' : `${round3(outcome.bytes / 1e6)} MB`}`],
    ['catch-up rate', `${rate.entriesPerSec ?? '-'} entries/s, ${rate.mbPerSec ?? '-'} MB/s`],
    ['leader status polls (missed)', `${watch.samples.length} (${document.statusMissed})`],
    ['status latency p50/p99/max', `${statusLatency.p50Ms ?? '-'} / ${statusLatency.p99Ms ?? '-'} / ${statusLatency.maxMs ?? '-'} ms`],
    ['terms seen (leader changes)', `${terms.join(',')} (${document.leaderChanges})`],
    ['leader loop delay p99 / max (10 s windows)', `${document.leaderEventLoopDelayP99Ms ?? '-'} / ${document.leaderEventLoopDelayMaxMs ?? '-'} ms`],
    ['  the same just before the restart', `${outcome.settled.eventLoopDelayP99Ms} / ${outcome.settled.eventLoopDelayMaxMs} ms`],
    ['1-message produce idle p50/max', `${idle.p50Ms ?? '-'} / ${idle.maxMs ?? '-'} ms`],
    ['1-message produce during p50/max (failed)', `${during.p50Ms ?? '-'} / ${during.maxMs ?? '-'} ms (${watch.produceMs.length - during.count})`],
  ];
  const text = `${formatTable(['catch-up', mode.name], rows)}\n(${outcome.target.produced} messages of ${options.sizeBytes} B at ${options.concurrency} in flight while ${outcome.follower} was down; load average ${load.toFixed(1)})`;
  return { document, text };
}
