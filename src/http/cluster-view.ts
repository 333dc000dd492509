// The console's picture of the cluster, gathered through the client (src/client) as the CLI's
// status, topic list and group list do: every node's status (each asked directly), the topics
// and groups (from the leader, wherever this node forwards them), and the leader's produce
// seconds for the chart. Rates (fsyncs/s, messages/s) come from two gathers in a row; the
// chart's points are kept here, so they outlive a leader change (a new leader starts counting
// from zero). One gather runs at a time; callers within MAX_REUSE_MS share the last one.
import type { LedgerClient } from '../client/client.js';
import type { BrokerStatsReply, GroupMember, GroupQueueLag, NodeStatus, QueueOffsetRange, TopicInfo } from '../protocol/index.js';
import type { LeaderChange } from '../node/node-observer.js';
import { assert } from '../util/assert.js';

/** A gather this recent is answered again rather than repeated (several pages polling at once). */
const MAX_REUSE_MS = 250;
/** One node's status: a node that does not answer this fast is shown as down. */
const STATUS_TIMEOUT_MS = 800;
/** Topics, groups and stats: through the leader, across one election at most. */
const CLUSTER_CALL_TIMEOUT_MS = 2_500;
/** Chart points kept: five minutes of seconds. */
const MAX_CHART_POINTS = 300;
/**
 * How often the leader's produce seconds are fetched without a page asking: so a console whose
 * page moves to it after a leader kill still has the minutes the dead leader counted.
 */
const STATS_SAMPLE_INTERVAL_MS = 5_000;

export interface NodeRow {
  readonly id: string;
  readonly role: NodeStatus['role'] | 'down';
  readonly status: NodeStatus | null;
  /** Flushes per second since the previous gather; null on the first one or while down. */
  readonly fsyncsPerSec: number | null;
  readonly error?: string;
}

export interface TopicRow extends TopicInfo {
  readonly queueOffsets: readonly QueueOffsetRange[];
  /** Messages stored per second since the previous gather (every queue's maxOffset); null on the first. */
  readonly messagesPerSec: number | null;
}

export interface GroupRow {
  readonly group: string;
  readonly queues: readonly GroupQueueLag[];
  readonly dlq: { readonly messages: number; readonly resent: number };
  readonly members: readonly GroupMember[];
}

export interface ChartPoint {
  readonly atMs: number;
  readonly messages: number;
  readonly p99Ms: number | null;
}

/** What /api/overview answers; a part that could not be read is null beside its error. */
export interface Overview {
  readonly readAtMs: number;
  readonly self: string;
  readonly leader: string | null;
  readonly term: number | null;
  readonly nodes: readonly NodeRow[];
  readonly leaderChanges: readonly LeaderChange[];
  readonly topics: readonly TopicRow[] | null;
  readonly topicsError?: string;
  readonly groups: readonly GroupRow[] | null;
  readonly groupsError?: string;
  readonly chart: readonly ChartPoint[];
  readonly chartError?: string;
}

interface Previous {
  readonly atMs: number;
  readonly fsyncs: ReadonlyMap<string, number>;
  readonly storedMessages: ReadonlyMap<string, number>;
}

export class ClusterView {
  private last: Overview | null = null;
  private lastAtMs = -Infinity;
  private inFlight: Promise<Overview> | null = null;
  private previous: Previous | null = null;
  private readonly chart = new Map<number, ChartPoint>();
  private sampler: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: LedgerClient,
    private readonly selfId: string,
    private readonly nodeIds: readonly string[],
    private readonly leaderChanges: () => readonly LeaderChange[],
  ) {
    assert(nodeIds.includes(selfId), 'the console runs on one of the nodes');
  }

  /** Starts fetching the leader's produce seconds in the background (see STATS_SAMPLE_INTERVAL_MS). */
  start(): void {
    assert(this.sampler === null, 'the view started twice');
    this.sampler = setInterval(() => {
      this.client.call({ op: 'brokerStats' }, STATS_SAMPLE_INTERVAL_MS / 2).then((stats) => this.addChartPoints(stats), () => undefined);
    }, STATS_SAMPLE_INTERVAL_MS);
    this.sampler.unref();
  }

  stop(): void {
    if (this.sampler !== null) clearInterval(this.sampler);
    this.sampler = null;
  }

  /** The latest picture: the last gather if it is recent enough, else a new one. */
  overview(): Promise<Overview> {
    if (this.last !== null && performance.now() - this.lastAtMs < MAX_REUSE_MS) return Promise.resolve(this.last);
    this.inFlight ??= this.gather().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async gather(): Promise<Overview> {
    const startedMs = performance.now();
    const [statuses, topics, groups, stats] = await Promise.all([
      Promise.all(this.nodeIds.map((id) => this.statusOf(id))),
      settle(this.client.call({ op: 'topics' }, CLUSTER_CALL_TIMEOUT_MS)),
      settle(this.client.call({ op: 'groups' }, CLUSTER_CALL_TIMEOUT_MS)),
      settle(this.client.call({ op: 'brokerStats' }, CLUSTER_CALL_TIMEOUT_MS)),
    ]);
    const atMs = Date.now();
    const previous = this.previous;
    const elapsedSec = previous === null ? 0 : (atMs - previous.atMs) / 1000;
    const rate = (now: number, before: number | undefined) => (before === undefined || elapsedSec <= 0 ? null : Math.max(0, now - before) / elapsedSec);
    const nodes: NodeRow[] = statuses.map((s, i) => {
      const id = this.nodeIds[i]!;
      if ('error' in s) return { id, role: 'down', status: null, fsyncsPerSec: null, error: s.error };
      return { id, role: s.value.role, status: s.value, fsyncsPerSec: rate(s.value.storage.fsyncs, previous?.fsyncs.get(id)) };
    });
    const topicRows = 'value' in topics ? topics.value.topics.map((t) => ({ ...t, messagesPerSec: rate(storedMessages(t.queueOffsets), previous?.storedMessages.get(t.topic)) })) : null;
    if ('value' in stats) this.addChartPoints(stats.value);
    this.previous = {
      atMs,
      fsyncs: new Map(nodes.flatMap((n) => (n.status === null ? [] : [[n.id, n.status.storage.fsyncs] as const]))),
      storedMessages: topicRows === null ? previous?.storedMessages ?? new Map() : new Map(topicRows.map((t) => [t.topic, storedMessages(t.queueOffsets)] as const)),
    };
    const leader = nodes.find((n) => n.role === 'leader');
    const overview: Overview = {
      readAtMs: atMs,
      self: this.selfId,
      leader: leader?.id ?? null,
      term: leader?.status?.term ?? null,
      nodes,
      leaderChanges: this.leaderChanges(),
      topics: topicRows,
      ...('error' in topics ? { topicsError: topics.error } : {}),
      groups: 'value' in groups ? groups.value.groups : null,
      ...('error' in groups ? { groupsError: groups.error } : {}),
      chart: [...this.chart.values()],
      ...('error' in stats ? { chartError: stats.error } : {}),
    };
    this.last = overview;
    this.lastAtMs = startedMs;
    return overview;
  }

  private async statusOf(id: string): Promise<{ value: NodeStatus } | { error: string }> {
    return settle(this.client.callNode(id, { op: 'status' }, STATUS_TIMEOUT_MS));
  }

  /** The leader's completed seconds, merged by time: a new leader's seconds join the old one's. */
  private addChartPoints(stats: BrokerStatsReply): void {
    for (const s of stats.seconds) this.chart.set(s.atMs, { atMs: s.atMs, messages: s.messages, p99Ms: s.p99Ms });
    const sorted = [...this.chart.keys()].sort((a, b) => a - b);
    for (const atMs of sorted.slice(0, Math.max(0, sorted.length - MAX_CHART_POINTS))) this.chart.delete(atMs);
    // Map order is insertion order: rebuild it in time order when a late second came in between.
    const ordered = [...this.chart.values()].sort((a, b) => a.atMs - b.atMs);
    this.chart.clear();
    for (const point of ordered) this.chart.set(point.atMs, point);
  }
}

/** Messages a topic has stored since it was created: retention moves minOffset, never maxOffset back. */
function storedMessages(queues: readonly QueueOffsetRange[]): number {
  return queues.reduce((sum, q) => sum + q.maxOffset, 0);
}

/** A call's value, or its error as one line the page shows. */
async function settle<T>(call: Promise<T>): Promise<{ value: T } | { error: string }> {
  try {
    return { value: await call };
  } catch (error) {
    return { error: describeError(error) };
  }
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('LMQ_') ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
