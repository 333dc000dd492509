// `ledgermq chaos` end to end: a fresh three-node cluster of real processes whose peer links
// run through fault-injecting proxies; keyed producers and per-queue consumers recording a
// Jepsen-style history; seeded faults for the run's duration; then heal, drain every queue,
// check the history, and write history.jsonl, report.json, report.txt, timeline.svg and the
// nodes' logs. Everything it starts is stopped in `finally`, also when interrupted.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { anomalyKinds, type AnomalyKind, type CheckReport, checkHistory, formatReport } from '../checker/index.js';
import { DEFAULT_CLIENT_OPTIONS, LedgerClient } from '../client/client.js';
import { LocalCluster } from '../cluster/local-cluster.js';
import type { FlushMode, QuorumMode } from '../config/config.js';
import { Rng } from '../sim/rng.js';
import { tcpConnector } from '../client/tcp-connector.js';
import { assert } from '../util/assert.js';
import { isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
import { LeaderWatch } from './leader-watch.js';
import { LinkNetwork } from './link-proxy.js';
import { formatLossWindow, type LossWindow, lossWindow } from './power-loss.js';
import { Nemesis, type NemesisKind, type NemesisTiming } from './nemesis.js';
import { HistoryRecorder } from './recorder.js';
import { renderTimeline } from './timeline.js';
import type { ConsumerChurn } from './consumer-churn.js';
import { CHAOS_CLIENTS, type ChaosClientKind, RMQ_WORKLOADS, type RmqSetup, rmqReceiver, rmqTopicQueues, runRmqProducer } from './rmq-workload.js';
import { DEFAULT_SIMPLE_SETTINGS, nativeReceiver, SimpleConsumers } from './simple-workload.js';
import { DEFAULT_TX_SETTINGS, TxWorkload, txCheckConfig } from './tx-workload.js';
import { DEFAULT_ORDERLY_SETTINGS, orderlyConsumers, orderlySendPauseMs } from './orderly-workload.js';
import { DEFAULT_RETRY_SETTINGS, readDeadLetters, retryConsumers, retryDelayLevels } from './retry-workload.js';
import { PLANTS, type PlantKind, plantedDeliverySkewMs } from './plants.js';
import { describeError, drainQueue, runConsumer, runProducer, type WorkloadContext, type WorkloadSettings } from './workload.js';

export const chaosDurationMaxS = 3600;
/** Workload events (invokes and completions) after which the workers stop issuing operations. */
export const workloadEventsMax = 1_000_000;

export const DEFAULT_WORKLOAD: WorkloadSettings = Object.freeze({
  topic: 'chaos',
  queues: 3,
  keys: 8,
  opTimeoutMs: 5_000,
  sendPauseMs: 2,
  pollWaitMs: 500,
  pollPauseMs: 0,
  pullMessagesMax: 256,
  drainAttemptsMax: 5,
  messageBytes: 0,
  delayMaxMs: 0,
  plantedDeliverySkewMs: 0,
  tags: [],
  filterTags: [],
  filterSql: '',
  plantedUnfilteredPulls: false,
  growToQueues: 0,
  plantedIgnoreGrowth: false,
});

/**
 * What the clients do (`chaos --workload`): `queue` keyed sends and per-queue consumers;
 * `delay` the same with every send delayed (0..delayWorkloadMaxMs), checked for early and late
 * delivery against leader samples in the history; `retry` keyed sends and push consumers that
 * fail a share of deliveries and are killed mid-listener (retry-workload.ts), checked for lost
 * retries, retries past the limit and early dead letters; `orderly` keyed sends and orderly
 * consumers that suspend a share of deliveries and are killed mid-listener (orderly-workload.ts),
 * checked for two consumers on one queue at once; `simple` keyed sends and simple consumers
 * (receive, ack) that leave a share unacked and are killed mid-batch (simple-workload.ts),
 * checked for acked messages received again, lost ones and attempts past the limit; `tx`
 * keyed sends, per-queue consumers and transactional producers that commit, roll back or die
 * before ending, with a check-back responder (tx-workload.ts), checked for lost commits,
 * visible rollbacks, partial and early transactions; `filter` sends tagged a, b or c and
 * consumers that subscribe to `a || b`, checked for skipped matching messages and for
 * messages the filter excludes; `grow` keyed sends whose queue the producer picks while the
 * topic grows from 3 to 5 queues mid-run (its consumers take the new queues), checked for a
 * key's later message read before its earlier one in another queue (key-reorder).
 */
export const CHAOS_WORKLOADS = ['queue', 'delay', 'retry', 'orderly', 'simple', 'tx', 'filter', 'grow'] as const;
export type ChaosWorkloadKind = (typeof CHAOS_WORKLOADS)[number];
/** The tx workload's plain sends are paced, so the transactions get their share of the leader. */
const txPlainSendPauseMs = 20;
/** The delay workload's longest delay: a few nemesis rounds long, so faults hit messages waiting. */
export const delayWorkloadMaxMs = 5_000;
/** After the faults, the drains wait until every delayed send is due plus this long (it is placed within 1 s). */
const delayedDrainMarginMs = 2_000;
/** What each workload changes in the default workload settings. */
const KIND_SETTINGS: Readonly<Record<ChaosWorkloadKind, Partial<WorkloadSettings>>> = {
  queue: {},
  delay: { delayMaxMs: delayWorkloadMaxMs },
  retry: {},
  orderly: { sendPauseMs: orderlySendPauseMs },
  simple: {},
  tx: { sendPauseMs: txPlainSendPauseMs },
  filter: { tags: ['a', 'b', 'c'], filterTags: ['a', 'b'], filterSql: 'level BETWEEN 1 AND 2' },
  grow: { growToQueues: 5, pollPauseMs: 1_000, keys: 16 },
};
/** The grow workload's growth happens at a drawn point within this share of the faults' time. */
const growAtShare = { min: 0.25, max: 0.5 };
/**
 * The grow workload's topic.maxReorderWaitMs: the config's bound, so a moved key is held for as
 * long as its old queue's consumer needs (a wait that ran out would let its order break, and
 * key-reorder would then be the broker keeping its documented word, not a bug).
 */
const growMaxReorderWaitMs = 3_600_000;
/** Bodies up to this size: bigger ones only make histories huge. */
export const chaosMessageBytesMax = 64 * 1024;

export const DEFAULT_NEMESIS_TIMING: NemesisTiming = Object.freeze({
  quietMinMs: 1_000,
  quietMaxMs: 3_000,
  holdMinMs: 1_500,
  holdMaxMs: 4_000,
  leaderTargetChance: 0.7,
  laggingKillChance: 0.5,
  laggingKillMinMs: 100,
  laggingKillMaxMs: 400,
  powerAllChance: 0.5,
  powerBootSpreadMaxMs: 1_000,
  powerWritingMinMs: 500,
  powerWritingMaxMs: 2_000,
});

export interface ChaosOptions {
  readonly durationS: number;
  readonly nemeses: readonly NemesisKind[];
  readonly seed: number;
  readonly flush: FlushMode;
  readonly quorum: QuorumMode;
  readonly outDir: string;
  /**
   * Bounds every node's log to this many bytes (retention.maxBytes, in segments of a quarter
   * of it, checked every retentionCheckIntervalMs), so retention deletes messages during the
   * run and a node that was down long enough is caught up by InstallSnapshot. Default: the
   * config's defaults (72 h, no byte bound: nothing is deleted in a run).
   */
  readonly retentionMaxBytes?: number;
  /** Default `queue`. */
  readonly workloadKind?: ChaosWorkloadKind;
  /** A planted bug (plants.ts) of the workload's own clients; the run must then be invalid with its anomaly. */
  readonly plant?: PlantKind;
  /**
   * Default `native`. `rocketmq`: the producers and consumers speak RocketMQ 5's gRPC to the
   * nodes' endpoints (rmq-workload.ts), on a one-queue topic; only the workloads in
   * RMQ_WORKLOADS. The leader watch, the drains and the dead-letter read stay native.
   */
  readonly client?: ChaosClientKind;
  /** Concurrent producers, each sending one message at a time. */
  readonly producers?: number;
  readonly workload?: Partial<WorkloadSettings>;
  readonly timing?: Partial<NemesisTiming>;
  /** Progress lines (faults, phases); default: none. */
  readonly log?: (line: string) => void;
  /** Aborting stops the run early; it still cleans up, then rejects. */
  readonly signal?: AbortSignal;
}

export interface ChaosResult {
  readonly seed: number;
  /** The history checked valid AND no node died on its own. */
  readonly valid: boolean;
  readonly verdict: CheckReport['verdict'];
  readonly acked: number;
  readonly faults: number;
  readonly anomalies: Record<AnomalyKind, number>;
  readonly outDir: string;
  readonly historyPath: string;
  readonly reportPath: string;
  readonly timelinePath: string;
  readonly report: CheckReport;
  /** Nodes found dead at the end although every kill had been undone: they crashed by themselves (a bug). */
  readonly crashedNodes: readonly string[];
  /** Every node process the run started (all stopped by the time runChaos returns). */
  readonly nodePids: readonly number[];
  /** Runs with the power nemesis: the acknowledged writes lost, when, and to which cut. */
  readonly powerLoss: LossWindow | null;
  /**
   * Set when the anomalies are what the mode allows under power cuts (async flush or leader
   * quorum acknowledges writes a power cut can take): one line saying so. The verdict stays.
   */
  readonly lossExplained: string | null;
}

/** A workload's consumers of one group: started before the faults, quiesced and stopped after. */
type ConsumerGroup = Pick<ConsumerChurn, 'start' | 'quiesce' | 'stop'>;

/** How long the healed cluster gets to elect a leader before the drains are tried anyway. */
const healedLeaderWaitMs = 30_000;
/** How long freshly started nodes get to answer status. */
const startupWaitMs = 20_000;
const nodeIds = ['n1', 'n2', 'n3'];
const leaderSampleEveryMs = 300;
const adminTimeoutMs = 30_000;

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  assert(options.durationS > 0 && options.durationS <= chaosDurationMaxS, 'duration within bounds');
  const kind = options.workloadKind ?? 'queue';
  assert(options.plant === undefined || PLANTS[options.plant].workload === kind, 'a plant runs under its own workload');
  const clientKind = options.client ?? 'native';
  assert(CHAOS_CLIENTS.includes(clientKind) && (clientKind === 'native' || RMQ_WORKLOADS.includes(kind)), 'the rocketmq client runs only the workloads it supports');
  const settings: WorkloadSettings = {
    ...DEFAULT_WORKLOAD, ...KIND_SETTINGS[kind], ...options.workload, ...(clientKind === 'rocketmq' ? { queues: rmqTopicQueues } : {}),
    plantedDeliverySkewMs: plantedDeliverySkewMs(options.plant), plantedUnfilteredPulls: options.plant === 'filter-mismatch', plantedIgnoreGrowth: options.plant === 'key-reorder',
  };
  const log = options.log ?? (() => undefined);
  const rng = new Rng(options.seed);
  const recorder = new HistoryRecorder(workloadEventsMax);
  mkdirSync(options.outDir, { recursive: true });
  const network = await LinkNetwork.start(nodeIds);
  // Power cuts need nodes that lose what they did not fsync when killed (src/log/file-io.ts).
  const storage = options.nemeses.includes('power') ? 'lazy' : 'os';
  let cluster: LocalCluster;
  try {
    const delay = kind === 'retry' ? { delay: { levels: retryDelayLevels } } : {};
    const consumer = kind === 'simple' ? { consumer: { maxReconsumeTimes: DEFAULT_SIMPLE_SETTINGS.maxReconsumeTimes } } : {};
    const transaction = kind === 'tx' ? { transaction: txCheckConfig } : {};
    const topic = settings.growToQueues > 0 ? { topic: { maxReorderWaitMs: growMaxReorderWaitMs } } : {};
    cluster = await LocalCluster.create(
      { flush: { mode: options.flush, intervalMs: 100 }, quorum: options.quorum, ...retentionConfig(options.retentionMaxBytes), ...delay, ...consumer, ...transaction, ...topic },
      { storage, grpc: clientKind === 'rocketmq' },
    );
  } catch (error) {
    await network.close();
    throw error;
  }
  const clients: LedgerClient[] = [];
  const newClient = (timeoutMs = settings.opTimeoutMs): LedgerClient => {
    const client = new LedgerClient(
      { ...DEFAULT_CLIENT_OPTIONS, nodes: cluster.config.nodes, timeoutMs, requestTimeoutMs: 1_500, connectTimeoutMs: 500, retryBackoffMaxMs: 250 },
      tcpConnector,
    );
    clients.push(client);
    return client;
  };
  let watch: LeaderWatch | null = null;
  try {
    assert(cluster.config.nodes.every((n, i) => n.id === nodeIds[i]), 'LocalCluster names its nodes n1..n3');
    network.setTargets(cluster.config.nodes);
    for (const node of cluster.config.nodes) cluster.routePeers(node.id, network.peerPorts(node.id));
    cluster.startAll();
    await everyNodeUp(cluster);
    await createTopic(newClient(adminTimeoutMs), settings);
    log(`cluster up in ${cluster.dir}; topic ${settings.topic} with ${settings.queues} queues${storage === 'lazy' ? '; storage mode lazy: a killed node loses what it had not fsynced' : ''}`);
    watch = new LeaderWatch(newClient(), cluster.config.nodes.map((n) => n.id), recorder, leaderSampleEveryMs, settings.delayMaxMs > 0);
    watch.start();
    const liveWatch = watch;
    const nemesis = new Nemesis(cluster, network, recorder, rng.fork(), options.nemeses, { ...DEFAULT_NEMESIS_TIMING, ...options.timing }, () => liveWatch.leader, log);
    let stopping = false;
    const context: WorkloadContext = { settings, recorder, newClient, stopped: () => stopping || options.signal?.aborted === true };
    const rmq: RmqSetup | null = clientKind === 'rocketmq' ? rmqSetup(cluster, options.quorum) : null;
    const churn: ConsumerGroup | null =
      kind === 'retry'
        ? retryConsumers(context, DEFAULT_RETRY_SETTINGS, rng.fork(), log, options.plant)
        : kind === 'orderly'
          ? orderlyConsumers(context, DEFAULT_ORDERLY_SETTINGS, rng.fork(), log, options.plant)
          : kind === 'simple'
            ? simpleConsumers(context, rmq, rng.fork(), log, options.plant)
            : null;
    await churn?.start();
    const transactions = kind === 'tx' ? new TxWorkload(context, DEFAULT_TX_SETTINGS, rng.fork(), log, options.plant) : null;
    transactions?.start();
    const topicQueues = { count: settings.queues };
    const produce: Producing = rmq === null ? runProducer : (c, worker, r) => runRmqProducer(c, rmq, worker, r);
    await runWorkloadUnderFaults(options, context, nemesis, rng, produce, churn === null, topicQueues, log, () => (stopping = true));
    throwIfAborted(options.signal);
    const crashedNodes = await healEverything(cluster, network, liveWatch, log, options.signal);
    if (transactions !== null) {
      await transactions.settle();
      await transactions.stop();
    }
    if (settings.delayMaxMs > 0) await untilDelayedSendsDue(recorder, settings, log, options.signal);
    if (churn !== null) {
      await churn.quiesce();
      await churn.stop();
    }
    await drainAll(settings, topicQueues.count, recorder, newClient, log, options.signal);
    const dlqGroup = kind === 'retry' ? DEFAULT_RETRY_SETTINGS.group : kind === 'simple' ? DEFAULT_SIMPLE_SETTINGS.group : null;
    if (dlqGroup !== null && !(await readDeadLetters(context, dlqGroup, settings.drainAttemptsMax))) log('the dead-letter queue could not be read');
    return { ...finish(options, recorder, settings, crashedNodes), nodePids: cluster.startedPids };
  } finally {
    watch?.stop();
    for (const client of clients) client.close();
    await network.close();
    keepNodeLogs(cluster, options.outDir);
    await cluster.dispose();
  }
}

/** The simple workload's consumers: ledgermq's SimpleConsumer, or RocketMQ clients of the endpoints. */
function simpleConsumers(context: WorkloadContext, rmq: RmqSetup | null, rng: Rng, log: (line: string) => void, plant: PlantKind | undefined): ConsumerGroup {
  const settings = DEFAULT_SIMPLE_SETTINGS;
  if (rmq === null) return new SimpleConsumers(context, settings, rng, log, nativeReceiver(context, settings), plant);
  return new SimpleConsumers(context, settings, rng, log, rmqReceiver(context, settings, rmq, rng.fork()), plant);
}

/** Every node's gRPC endpoint (LocalCluster gave each a grpcPort). */
function rmqSetup(cluster: LocalCluster, quorum: QuorumMode): RmqSetup {
  const endpoints = cluster.config.nodes.map((n) => {
    assert(n.grpcPort !== undefined, 'a rocketmq chaos cluster has gRPC ports');
    return `${n.host}:${n.grpcPort}`;
  });
  return { endpoints, offsetKnown: quorum !== 'leader' };
}

/** The smallest segment the config allows; retention keeps at least two. */
const segmentBytesMin = 64 * 1024;
export const chaosRetentionMaxBytesMin = 2 * segmentBytesMin;
const retentionCheckIntervalMs = 500;
/** Snapshots often enough that retention is never held back for long by the last one. */
const retentionSnapshotEveryEntries = 1_000;

function retentionConfig(maxBytes: number | undefined): Record<string, unknown> {
  if (maxBytes === undefined) return {};
  assert(maxBytes >= chaosRetentionMaxBytesMin, 'retention bound holds two segments');
  return {
    log: { segmentBytes: Math.max(segmentBytesMin, Math.floor(maxBytes / 4)) },
    retention: { maxBytes, checkIntervalMs: retentionCheckIntervalMs },
    snapshot: { everyEntries: retentionSnapshotEveryEntries },
  };
}

/** Fails fast (naming the node) when a node exits at startup, e.g. its port was taken meanwhile. */
async function everyNodeUp(cluster: LocalCluster): Promise<void> {
  const deadline = performance.now() + startupWaitMs;
  for (const node of cluster.config.nodes) {
    for (;;) {
      if (!cluster.isRunning(node.id)) {
        throw new LmqError('LMQ_UNAVAILABLE', `node ${node.id} exited at startup (see nodes/${node.id}.log in the output dir, e.g. a port taken by another process); run chaos again`, NOT_SENT);
      }
      if ((await cluster.status(node.id)) !== null) break;
      if (performance.now() > deadline) throw new LmqError('LMQ_UNAVAILABLE', `node ${node.id} did not answer within ${startupWaitMs} ms of starting`, NOT_SENT);
      await sleep(100);
    }
  }
}

async function createTopic(client: LedgerClient, settings: WorkloadSettings): Promise<void> {
  try {
    await client.call({ op: 'createTopic', topic: settings.topic, queues: settings.queues }, adminTimeoutMs);
  } catch (error) {
    // A retry after an attempt that timed out yet committed finds the topic there: fine.
    // (After an attempt that timed out, the client reports the refusal indeterminate, with it as the cause.)
    const refusal = isLmqError(error, 'LMQ_UNAVAILABLE') && error.cause !== undefined ? error.cause : error;
    if (!isLmqError(refusal, 'LMQ_TOPIC_EXISTS')) throw error;
  }
}

/** One producer worker's loop (workload.ts runProducer, or rmq-workload.ts runRmqProducer). */
type Producing = (context: WorkloadContext, worker: number, rng: Rng) => Promise<void>;

/**
 * Producers (and, with `pollingConsumers`, one polling consumer per queue) until the faults
 * end; then `stop`. The grow workload grows the topic meanwhile (topicQueues counts its queues).
 */
async function runWorkloadUnderFaults(
  options: ChaosOptions,
  context: WorkloadContext,
  nemesis: Nemesis,
  rng: Rng,
  produce: Producing,
  pollingConsumers: boolean,
  topicQueues: { count: number },
  log: (line: string) => void,
  stop: () => void,
): Promise<void> {
  const aborted = () => options.signal?.aborted === true;
  const workers: Promise<void>[] = [];
  for (let p = 0; p < (options.producers ?? 4); p++) workers.push(produce(context, p, rng.fork()));
  if (pollingConsumers) for (let q = 0; q < context.settings.queues; q++) workers.push(runConsumer(context, 'chaos-consumers', q));
  if (context.settings.growToQueues > 0) {
    const share = growAtShare.min + ((growAtShare.max - growAtShare.min) * rng.int(1001)) / 1000;
    workers.push(growMidRun(context, context.recorder.now() + share * options.durationS * 1000, topicQueues, log));
  }
  try {
    await nemesis.run(context.recorder.now() + options.durationS * 1000, aborted);
  } finally {
    stop();
    // Every operation is bounded by opTimeoutMs, so the workers end soon after.
    await Promise.all(workers);
  }
}

/**
 * The grow workload's `topic update`: at atMs (history clock) grows the topic to growToQueues,
 * asking again until the route shows it grown (an attempt whose outcome was unknown may have
 * done it), then runs a polling consumer on each new queue.
 */
async function growMidRun(context: WorkloadContext, atMs: number, topicQueues: { count: number }, log: (line: string) => void): Promise<void> {
  const { settings, recorder } = context;
  while (recorder.now() < atMs && !context.stopped()) await sleep(50);
  const client = context.newClient();
  while (!context.stopped()) {
    const grown = await client.call({ op: 'growTopic', topic: settings.topic, queues: settings.growToQueues }, settings.opTimeoutMs).then(
      (reply) => `waiting for ${reply.waiting.map((q) => `queue ${q.queueId} to offset ${q.boundary}`).join(', ') || 'nothing'}`,
      async (error: unknown) => {
        const route = await client.call({ op: 'route', topic: settings.topic }, settings.opTimeoutMs).catch(() => undefined);
        return route?.queues === settings.growToQueues ? `after an attempt that failed (${describeError(error)})` : undefined;
      },
    );
    if (grown === undefined) {
      await sleep(200);
      continue;
    }
    topicQueues.count = settings.growToQueues;
    log(`${(recorder.now() / 1000).toFixed(1)} s: topic ${settings.topic} grew from ${settings.queues} to ${settings.growToQueues} queues, ${grown}`);
    const consumers: Promise<void>[] = [];
    for (let q = settings.queues; q < settings.growToQueues; q++) consumers.push(runConsumer(context, 'chaos-consumers', q));
    await Promise.all(consumers);
    return;
  }
}

/**
 * SIGCONT, restart and reconnect every node, then wait until a leader answers. The nemesis
 * has undone its last kill already, so a node found dead here crashed by itself: returned.
 */
async function healEverything(cluster: LocalCluster, network: LinkNetwork, watch: LeaderWatch, log: (line: string) => void, signal: AbortSignal | undefined): Promise<string[]> {
  network.healAll();
  const crashed: string[] = [];
  for (const node of cluster.config.nodes) {
    if (cluster.isRunning(node.id)) {
      cluster.signal(node.id, 'SIGCONT');
      continue;
    }
    crashed.push(node.id);
    log(`${node.id} had died by itself (see nodes/${node.id}.log); restarting it`);
    cluster.start(node.id);
  }
  const deadline = performance.now() + healedLeaderWaitMs;
  for (;;) {
    throwIfAborted(signal);
    await watch.sample();
    if (watch.leader !== null) break;
    if (performance.now() > deadline) {
      log(`no leader ${healedLeaderWaitMs} ms after healing; the drains will likely fail (verdict unknown)`);
      return crashed;
    }
    await sleep(leaderSampleEveryMs);
  }
  log(`healed; leader ${watch.leader}`);
  return crashed;
}

/** Waits (wall clock, as deliverAtMs is) until every delayed send is due, plus a margin to be placed. */
async function untilDelayedSendsDue(recorder: HistoryRecorder, settings: WorkloadSettings, log: (line: string) => void, signal: AbortSignal | undefined): Promise<void> {
  let lastDueMs = 0;
  for (const event of recorder.events) {
    if (event.type === 'invoke' && event.f === 'send' && event.value.deliverAtMs !== undefined) lastDueMs = Math.max(lastDueMs, event.value.deliverAtMs);
  }
  // A planted late due time (plants.ts) is waited out too, so the drains still find every send.
  const skewMs = Math.max(0, settings.plantedDeliverySkewMs);
  const waitMs = Math.min(lastDueMs + skewMs + delayedDrainMarginMs - Date.now(), settings.delayMaxMs + skewMs + delayedDrainMarginMs);
  if (waitMs <= 0) return;
  log(`waiting ${Math.ceil(waitMs)} ms for the last delayed sends to be due before draining`);
  await sleep(waitMs);
  throwIfAborted(signal);
}

/**
 * A majority write first, so the leader that serves the drains has applied everything
 * committed before it (a new leader learns the commit index only by committing in its term).
 */
async function drainAll(
  settings: WorkloadSettings,
  queues: number,
  recorder: HistoryRecorder,
  newClient: (timeoutMs?: number) => LedgerClient,
  log: (line: string) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const admin = newClient(adminTimeoutMs);
  await admin.call({ op: 'commitOffsets', group: 'chaos-barrier', offsets: [{ topic: settings.topic, queueId: 0, offset: 0 }] }, adminTimeoutMs).catch((error: unknown) => {
    log(`barrier write failed (${error instanceof Error ? error.message : String(error)}); draining anyway`);
  });
  for (let q = 0; q < queues; q++) {
    throwIfAborted(signal);
    const drained = await drainQueue({ settings, recorder, newClient }, q);
    if (!drained) log(`queue ${q} could not be drained`);
  }
}

function finish(options: ChaosOptions, recorder: HistoryRecorder, settings: WorkloadSettings, crashedNodes: string[]): Omit<ChaosResult, 'nodePids'> {
  const historyPath = join(options.outDir, 'history.jsonl');
  const reportPath = join(options.outDir, 'report.json');
  const timelinePath = join(options.outDir, 'timeline.svg');
  recorder.save(historyPath);
  const report = checkHistory(recorder.events, historyPath);
  const anomalies = Object.fromEntries(anomalyKinds.map((k) => [k, report.counts[k]])) as Record<AnomalyKind, number>;
  const run = {
    seed: options.seed, workload: options.workloadKind ?? 'queue', client: options.client ?? 'native', nemeses: options.nemeses, flush: options.flush, quorum: options.quorum, durationS: options.durationS,
    producers: options.producers ?? 4, queues: settings.queues, keys: settings.keys,
  };
  const powerLoss = options.nemeses.includes('power') ? lossWindow(report.lostAckTimesMs, recorder.faults, nodeIds.length) : null;
  const lossExplained = powerLoss === null ? null : explainLoss(options, report, powerLoss, crashedNodes);
  writeFileSync(reportPath, `${JSON.stringify({ run, ...report, crashedNodes, powerLoss, lossExplained, faults: recorder.faults, leaders: recorder.leaders }, null, 2)}\n`);
  const header = [
    `chaos seed ${options.seed}: ${options.client === 'rocketmq' ? 'RocketMQ 5 clients over gRPC, ' : ''}nemesis ${options.nemeses.join(',')}, flush ${options.flush}, quorum ${options.quorum}, ${options.durationS} s`,
    `faults (${recorder.faults.length}):`,
    ...recorder.faults.map((f) => `  ${(f.start / 1000).toFixed(1)}–${f.end === null ? '?' : (f.end / 1000).toFixed(1)} s  ${f.detail}`),
    `leaders: ${recorder.leaders.map((l) => `${(l.time / 1000).toFixed(1)}s ${l.leader ?? 'none'}`).join(', ')}`,
    ...(crashedNodes.length > 0 ? [`NODES THAT CRASHED BY THEMSELVES: ${crashedNodes.join(', ')} (see nodes/<id>.log)`] : []),
    ...(powerLoss === null ? [] : formatLossWindow(powerLoss)),
    ...(lossExplained === null ? [] : [lossExplained]),
    '',
  ].join('\n');
  writeFileSync(join(options.outDir, 'report.txt'), header + formatReport(report));
  const title = `ledgermq chaos seed ${options.seed} — ${options.nemeses.join(',')} — ${options.flush}/${options.quorum} — ${report.verdict.toUpperCase()}, ${report.stats.acked} acked`;
  writeFileSync(timelinePath, renderTimeline(recorder, title));
  return {
    seed: options.seed, valid: report.valid && crashedNodes.length === 0, verdict: report.verdict, crashedNodes, acked: report.stats.acked, faults: recorder.faults.length, anomalies,
    outDir: options.outDir, historyPath, reportPath, timelinePath, report, powerLoss, lossExplained,
  };
}

/**
 * Anomalies that a lost tail of acknowledged writes leaves behind once later writes take the
 * same offsets again: reads and acks that placed a lost write at an offset now disagree with
 * the drain (inconsistent-offsets, offset-mismatch), a lost write's acked offset sits after a
 * later write's (reorder), and offsets a poll had seen are gone or moved (poll-skip,
 * nonmonotonic-poll). Invented, duplicated or failed-yet-present messages are not among them.
 */
const traceOfLossKinds: readonly AnomalyKind[] = ['inconsistent-offsets', 'offset-mismatch', 'reorder', 'poll-skip', 'nonmonotonic-poll'];

/**
 * Under async flush or leader quorum an acknowledgement does not mean "durable on a majority",
 * so power cuts may lose acknowledged writes (README "What an acknowledgement means"). Says so
 * when every lost write was acknowledged before a cut, and names which other anomalies are the
 * kind such a loss leaves behind and which are not. The verdict and the counts stay as they are;
 * with sync flush and majority or all quorum nothing is explained away.
 */
function explainLoss(options: ChaosOptions, report: CheckReport, window: LossWindow, crashedNodes: readonly string[]): string | null {
  const canLose = options.flush === 'async' || options.quorum === 'leader';
  if (!canLose || window.lost === 0 || window.afterLastCut > 0) return null;
  const why = options.flush === 'async' ? 'async flush acknowledges writes before they are fsynced' : 'leader quorum acknowledges writes before a majority holds them';
  const present = anomalyKinds.filter((k) => k !== 'lost' && report.counts[k] > 0);
  const traces = present.filter((k) => traceOfLossKinds.includes(k)).map((k) => `${k} ${report.counts[k]}`);
  const unexplained = present.filter((k) => !traceOfLossKinds.includes(k)).map((k) => `${k} ${report.counts[k]}`);
  const parts = [`expected under power cuts: ${why}; ${window.lost} such write(s) lost`];
  if (traces.length > 0) parts.push(`${traces.join(', ')}: what that loss leaves behind once later writes take the lost offsets again`);
  if (unexplained.length > 0) parts.push(`NOT explained by the loss: ${unexplained.join(', ')}`);
  if (crashedNodes.length > 0) parts.push(`NOT explained by the loss: nodes ${crashedNodes.join(', ')} crashed by themselves`);
  return parts.join('; ');
}

function keepNodeLogs(cluster: LocalCluster, outDir: string): void {
  const logs = join(outDir, 'nodes');
  mkdirSync(logs, { recursive: true });
  for (const node of cluster.config.nodes) {
    const path = join(cluster.dir, `${node.id}.log`);
    if (existsSync(path)) copyFileSync(path, join(logs, `${node.id}.log`));
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new LmqError('LMQ_UNAVAILABLE', 'the chaos run was interrupted; its cluster was stopped and its temp dir removed', NOT_SENT);
}
