// The failover scenario: under steady produce and consume load, SIGKILL the leader again and
// again; per kill, measure from the SIGKILL to the next acknowledged write and to the next
// consumed message (both served by another node), then restart the killed node and wait until
// it has caught up before the next kill.
import { setTimeout as sleep } from 'node:timers/promises';
import { loadavg } from 'node:os';
import type { LedgerClient } from '../client/client.js';
import type { LocalCluster } from '../cluster/local-cluster.js';
import { assert } from '../util/assert.js';
import { until } from '../util/until.js';
import { disposeBenchCluster, startBenchCluster } from './bench-cluster.js';
import { ClosedLoopLoad } from './load.js';
import { round3 } from './measure.js';
import type { BenchMode } from './modes.js';
import { formatTable } from './report.js';
import type { Progress } from './throughput.js';

export interface FailoverOptions {
  readonly topic: string;
  readonly queues: number;
  readonly nodeArgs: readonly string[];
  readonly cleanStop: boolean;
  readonly sizeBytes: number;
  readonly concurrency: number;
  readonly producers: number;
  /** Sends combined into one request at most (1: one request per send). */
  readonly maxBatch: number;
  readonly kills: number;
}

export interface FailoverTrial {
  readonly killed: string;
  /** SIGKILL → next acknowledged write; null when none came within TRIAL_TIMEOUT_MS. */
  readonly ackMs: number | null;
  /** SIGKILL → next consumed message; null when none came within TRIAL_TIMEOUT_MS. */
  readonly consumeMs: number | null;
}

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

const TRIAL_TIMEOUT_MS = 20_000;
const CALL_TIMEOUT_MS = 20_000;
const RECOVERY_TIMEOUT_MS = 60_000;
/**
 * A restarted follower counts as caught up within this many entries of the leader, and every
 * node's applied index within this many of the leader's commit. Small, because an entry holds
 * a whole producer batch (~32 messages): a node still working through thousands of messages
 * is slow to notice anything, and a kill then measures a cluster that had not recovered.
 */
const CAUGHT_UP_LAG_ENTRIES = 50;
/** Before a kill, acks and consumed messages must have flowed this recently. */
const STEADY_WITHIN_MS = 300;
const PULL_WAIT_MS = 500;

interface Watch {
  killed: string;
  afterMs: number;
  ackAtMs: number | null;
  consumeAtMs: number | null;
}

interface Flow {
  lastAckMs: number;
  lastConsumeMs: number;
  watch: Watch | null;
  stopped: boolean;
}

export async function runFailover(mode: BenchMode, options: FailoverOptions, progress: Progress): Promise<{ document: Record<string, unknown>; text: string }> {
  const cluster = await startBenchCluster(mode, options);
  const flow: Flow = { lastAckMs: 0, lastConsumeMs: 0, watch: null, stopped: false };
  let load: ClosedLoopLoad | null = null;
  let consumers: Promise<void>[] = [];
  try {
    const clients = Array.from({ length: options.producers }, () => cluster.client(CALL_TIMEOUT_MS));
    load = new ClosedLoopLoad(clients, { topic: options.topic, sizeBytes: options.sizeBytes, concurrency: options.concurrency, sendTimeoutMs: CALL_TIMEOUT_MS, maxBatch: options.maxBatch });
    load.onAck((atMs, clientIndex) => noteAck(flow, atMs, clients[clientIndex]!));
    load.start();
    const consumerClient = cluster.client(CALL_TIMEOUT_MS);
    consumers = Array.from({ length: options.queues }, (_, queueId) => consumeQueue(consumerClient, options.topic, queueId, flow));
    const trials: FailoverTrial[] = [];
    for (let kill = 1; kill <= options.kills; kill++) {
      trials.push(await killLeaderOnce(cluster, flow));
      const last = trials.at(-1)!;
      progress(`${mode.name}: kill ${kill}/${options.kills} of ${last.killed}: next ack after ${last.ackMs ?? 'none'} ms, next consumed after ${last.consumeMs ?? 'none'} ms`);
    }
    return report(mode, options, trials);
  } finally {
    flow.stopped = true;
    await load?.stop().catch(() => undefined);
    await disposeBenchCluster(cluster, options.cleanStop);
    await Promise.all(consumers);
  }
}

function noteAck(flow: Flow, atMs: number, client: LedgerClient): void {
  flow.lastAckMs = atMs;
  const watch = flow.watch;
  // The leader hint is the node that answered; an answer the dead leader sent just before
  // dying may still be read after its exit, and must not count as the new leader's.
  if (watch !== null && watch.ackAtMs === null && atMs > watch.afterMs && client.leader() !== watch.killed) watch.ackAtMs = atMs;
}

function noteConsumed(flow: Flow, atMs: number, client: LedgerClient): void {
  flow.lastConsumeMs = atMs;
  const watch = flow.watch;
  if (watch !== null && watch.consumeAtMs === null && atMs > watch.afterMs && client.leader() !== watch.killed) watch.consumeAtMs = atMs;
}

async function killLeaderOnce(cluster: LocalCluster, flow: Flow): Promise<FailoverTrial> {
  await waitSteady(cluster, flow);
  const leader = await cluster.leader();
  const watch: Watch = { killed: leader.id, afterMs: Number.POSITIVE_INFINITY, ackAtMs: null, consumeAtMs: null };
  flow.watch = watch;
  const killedAtMs = performance.now();
  await cluster.kill(leader.id);
  watch.afterMs = performance.now();
  await until('the next ack and consumed message', () => watch.ackAtMs !== null && watch.consumeAtMs !== null, TRIAL_TIMEOUT_MS, 5).catch(() => undefined);
  flow.watch = null;
  cluster.start(leader.id);
  const since = (atMs: number | null) => (atMs === null ? null : round3(atMs - killedAtMs));
  return { killed: leader.id, ackMs: since(watch.ackAtMs), consumeMs: since(watch.consumeAtMs) };
}

/** Every node is back and caught up, and both acks and consumed messages are flowing. */
async function waitSteady(cluster: LocalCluster, flow: Flow): Promise<void> {
  await until('a steady cluster under load', async () => {
    const leader = await cluster.leader([], RECOVERY_TIMEOUT_MS);
    const caughtUp = leader.followers.length === cluster.config.nodes.length - 1 && leader.followers.every((f) => f.state === 'replicate' && f.lag <= CAUGHT_UP_LAG_ENTRIES);
    if (!caughtUp) return false;
    const statuses = await Promise.all(cluster.config.nodes.map((n) => cluster.status(n.id)));
    const applied = statuses.every((s) => s !== null && s.appliedIndex >= leader.commitIndex - CAUGHT_UP_LAG_ENTRIES);
    const nowMs = performance.now();
    return applied && nowMs - flow.lastAckMs < STEADY_WITHIN_MS && nowMs - flow.lastConsumeMs < STEADY_WITHIN_MS;
  }, RECOVERY_TIMEOUT_MS, 50);
}

/** Follows one queue from offset 0; failed pulls (during failover) are simply tried again. */
async function consumeQueue(client: LedgerClient, topic: string, queueId: number, flow: Flow): Promise<void> {
  let offset = 0;
  while (!flow.stopped) {
    try {
      const reply = await client.call({ op: 'pull', topic, queueId, offset, maxMessages: 1024, maxBytes: 4 * 1024 * 1024, waitMs: PULL_WAIT_MS }, CALL_TIMEOUT_MS);
      if (reply.messages.length === 0) continue;
      assert(reply.messages[0]!.offset === offset, () => `queue ${queueId} skipped from offset ${offset} to ${reply.messages[0]!.offset}`);
      noteConsumed(flow, performance.now(), client);
      offset += reply.messages.length;
    } catch {
      if (!flow.stopped) await sleep(10);
    }
  }
}

export function percentiles(values: readonly (number | null)[]): Percentiles {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const rank = (p: number) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
  return { count: sorted.length, p50Ms: rank(50), p99Ms: rank(99), maxMs: sorted.at(-1) ?? null };
}

function report(mode: BenchMode, options: FailoverOptions, trials: readonly FailoverTrial[]): { document: Record<string, unknown>; text: string } {
  const ack = percentiles(trials.map((t) => t.ackMs));
  const consume = percentiles(trials.map((t) => t.consumeMs));
  const headers = ['mode', 'kills', 'measure', 'n', 'p50 ms', 'p99 ms', 'max ms'];
  const rows = [
    [mode.name, trials.length, 'SIGKILL → next ack', ack.count, ack.p50Ms ?? '-', ack.p99Ms ?? '-', ack.maxMs ?? '-'],
    [mode.name, trials.length, 'SIGKILL → next consumed', consume.count, consume.p50Ms ?? '-', consume.p99Ms ?? '-', consume.maxMs ?? '-'],
  ];
  const text = `${formatTable(headers, rows)}\n(${options.concurrency} produces in flight, ${options.sizeBytes} B; nearest-rank percentiles over the kills; load average ${loadavg()[0]?.toFixed(1)})`;
  return { document: { scenario: 'failover', mode: mode.name, kills: trials.length, concurrency: options.concurrency, maxBatch: options.maxBatch, ack, consume, trials }, text };
}
