// /metrics: this node's figures in Prometheus text format (prom-client), read in-process when
// scraped. RocketMQ 5's names where one exists (rocketmq_messages_in_total, …, labels topic,
// consumer_group, node_id) and ledgermq_raft_* for the engine. The leader alone exports what
// is the cluster's (messages stored per topic, every group's lag): its state reflects every
// commit, so a scrape of all nodes counts each message once. Counters restart at zero with the
// process, as Prometheus counters may; rocketmq_messages_in_total does not (it is the topic's
// replicated message count).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BrokerNode } from '../broker/server.js';
import { DLQ_TOPIC_PREFIX } from '../broker/commands.js';
import type { NodeRole } from '../protocol/index.js';

/** RocketMQ 5's buckets for rocketmq_send_cost_time, milliseconds. */
const SEND_COST_BUCKETS_MS = [1, 5, 10, 20, 50, 200, 500];
/** A flush (fdatasync under flush.mode sync) from 0.1 ms to 2 s. */
const FSYNC_BUCKETS_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2];
const ROLES: readonly NodeRole[] = ['follower', 'preCandidate', 'candidate', 'leader'];

export interface NodeMetrics {
  readonly registry: Registry;
  /** Stops listening to the node (its flushes and produce requests). */
  close(): void;
}

export function nodeMetrics(broker: BrokerNode): NodeMetrics {
  const registry = new Registry();
  const nodeId = broker.node.id;
  registry.setDefaultLabels({ node_id: nodeId });
  const status = () => broker.node.status();
  raftMetrics(registry, broker, status);
  lifecycleMetrics(registry, broker);
  const unsubscribe = [...clusterMetrics(registry, broker)];
  return { registry, close: () => unsubscribe.forEach((stop) => stop()) };
}

/** A gauge whose value is read when scraped. */
function readGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
}

/** A counter whose value someone else keeps: set to it when scraped. */
function readCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
}

function raftMetrics(registry: Registry, broker: BrokerNode, status: () => ReturnType<BrokerNode['node']['status']>): void {
  readGauge(registry, 'ledgermq_raft_term', 'Current Raft term of this node', () => status().term);
  new Gauge({
    name: 'ledgermq_raft_role', help: 'Raft role of this node: 1 for the role it has, 0 for the others', labelNames: ['role'], registers: [registry],
    collect() {
      const role = status().role;
      for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  readGauge(registry, 'ledgermq_raft_last_index', 'Index of the last entry in this node\'s log', () => status().lastIndex);
  readGauge(registry, 'ledgermq_raft_commit_index', 'Highest index this node knows is committed', () => status().commitIndex);
  readGauge(registry, 'ledgermq_raft_applied_index', 'Highest index applied to this node\'s broker state', () => status().appliedIndex);
  readGauge(registry, 'ledgermq_raft_snapshot_index', 'Index of the newest snapshot on this node\'s disk (0: none)', () => status().snapshotIndex);
  readGauge(registry, 'ledgermq_log_first_index', 'First index this node\'s log still holds', () => status().firstIndex);
  readGauge(registry, 'ledgermq_log_bytes', 'Bytes this node\'s log segments hold on disk', () => status().logBytes);
  readGauge(registry, 'ledgermq_event_loop_delay_p99_seconds', 'p99 of how late this process\'s event loop ran, over about the last 10 s', () => status().eventLoopDelayP99Ms / 1000);
  new Gauge({
    name: 'ledgermq_raft_follower_match_lag', help: 'Leader only: entries each follower\'s match index is behind the leader\'s last index', labelNames: ['follower'], registers: [registry],
    collect() {
      this.reset();
      for (const f of status().followers) this.set({ follower: f.id }, f.lag);
    },
  });
  readCounter(registry, 'ledgermq_raft_elections_total', 'Elections this node started (became a candidate) since its process started', () => broker.node.observer.elections());
  readCounter(registry, 'ledgermq_log_fsyncs_total', 'fdatasync calls of this node\'s log store since its process started', () => status().storage.fsyncs);
  readCounter(registry, 'ledgermq_log_appended_bytes_total', 'Bytes appended to this node\'s log since its process started', () => status().storage.appendedBytes);
}

function lifecycleMetrics(registry: Registry, broker: BrokerNode): void {
  const counters = broker.lifecycle.counters;
  readCounter(registry, 'ledgermq_snapshots_total', 'Snapshots of the broker state this node wrote', () => counters.snapshotsWritten);
  readCounter(registry, 'ledgermq_snapshot_failures_total', 'Snapshots this node failed to write (the log is kept until one succeeds)', () => counters.snapshotFailures);
  readCounter(registry, 'ledgermq_retention_truncations_total', 'Retention truncations (truncateLog) this node proposed as leader and saw committed', () => counters.retentionTruncations);
  readCounter(registry, 'ledgermq_retention_segment_deletions_total', 'Times this node deleted log segments (below a snapshot and retention)', () => counters.segmentDeletions);
}

/** Whether this node's state holds every commit: only then are its cluster-wide figures exported. */
function leadsCaughtUp(broker: BrokerNode): boolean {
  return broker.node.leadership().role === 'leader' && broker.node.leaderCaughtUp();
}

function clusterMetrics(registry: Registry, broker: BrokerNode): (() => void)[] {
  const { state, service } = broker;
  new Counter({
    name: 'rocketmq_messages_in_total', help: 'Leader only: messages stored per topic (retry and dead-letter copies in their own topics), from the replicated state', labelNames: ['topic'], registers: [registry],
    collect() {
      this.reset();
      if (!leadsCaughtUp(broker)) return;
      for (const { topic, queues } of state.topics()) {
        let stored = 0;
        for (let queueId = 0; queueId < queues; queueId++) stored += state.queueRange(topic, queueId).nextOffset;
        this.inc({ topic }, stored);
      }
    },
  });
  new Counter({
    name: 'rocketmq_messages_out_total', help: 'Messages this node answered to pulls and receives, per topic, since its process started', labelNames: ['topic'], registers: [registry],
    collect() {
      this.reset();
      for (const [topic, n] of Object.entries(service.stats.reply().messagesOut)) this.inc({ topic }, n);
    },
  });
  new Counter({
    name: 'rocketmq_throughput_in_total', help: 'Body bytes of produce requests this node acknowledged, per topic, since its process started', labelNames: ['topic'], registers: [registry],
    collect() {
      this.reset();
      for (const [topic, n] of Object.entries(service.stats.reply().bytesIn)) this.inc({ topic }, n);
    },
  });
  consumerLagMetrics(registry, broker);
  const sendCost = new Histogram({
    name: 'rocketmq_send_cost_time', help: 'Produce requests this node answered, from receipt to answer, milliseconds', labelNames: ['topic'], buckets: SEND_COST_BUCKETS_MS, registers: [registry],
  });
  const fsync = new Histogram({
    name: 'ledgermq_raft_fsync_duration_seconds', help: 'Flushes of this node\'s log (fdatasync under flush.mode sync, with the writes that joined it)', buckets: FSYNC_BUCKETS_SECONDS, registers: [registry],
  });
  return [
    service.stats.onProduced((topics, costMs) => topics.forEach((topic) => sendCost.observe({ topic }, costMs))),
    broker.node.observer.onFlush((durationMs) => fsync.observe(durationMs / 1000)),
  ];
}

function consumerLagMetrics(registry: Registry, broker: BrokerNode): void {
  const { state, service } = broker;
  /** Per group and topic (dead-letter queues left out, as `group list` does): lag and the oldest unconsumed message's store time. */
  const lags = () => {
    const rows: { group: string; topic: string; lag: number; oldestMs: number | null }[] = [];
    if (!leadsCaughtUp(broker)) return rows;
    for (const group of state.groups()) {
      const byTopic = new Map<string, { lag: number; oldestMs: number | null }>();
      for (const q of state.groupLag(group)) {
        if (q.topic.startsWith(DLQ_TOPIC_PREFIX)) continue;
        const sum = byTopic.get(q.topic) ?? { lag: 0, oldestMs: null };
        sum.lag += q.lag;
        const oldestMs = service.oldestUnconsumedMs(q);
        if (oldestMs !== null) sum.oldestMs = Math.min(sum.oldestMs ?? Infinity, oldestMs);
        byTopic.set(q.topic, sum);
      }
      for (const [topic, sum] of byTopic) rows.push({ group, topic, lag: sum.lag, oldestMs: sum.oldestMs });
    }
    return rows;
  };
  new Gauge({
    name: 'rocketmq_consumer_lag_messages', help: 'Leader only: messages stored but not yet consumed, per group and topic (retry topics included)', labelNames: ['topic', 'consumer_group'], registers: [registry],
    collect() {
      this.reset();
      for (const row of lags()) this.set({ topic: row.topic, consumer_group: row.group }, row.lag);
    },
  });
  new Gauge({
    name: 'rocketmq_consumer_lag_latency', help: 'Leader only: age of the oldest unconsumed message per group and topic, milliseconds (0 without lag; left out when its store time is ahead of the clock)', labelNames: ['topic', 'consumer_group'], registers: [registry],
    collect() {
      this.reset();
      const nowMs = Date.now();
      for (const row of lags()) {
        const ageMs = row.oldestMs === null ? 0 : nowMs - row.oldestMs;
        if (ageMs >= 0) this.set({ topic: row.topic, consumer_group: row.group }, ageMs);
      }
    },
  });
}
