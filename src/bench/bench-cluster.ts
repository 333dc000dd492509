// A fresh local three-node cluster for one benchmark mode, with its topic created and every
// follower caught up. Clusters still open are tracked so SIGINT can dispose of them.
import { LocalCluster } from '../cluster/local-cluster.js';
import type { NodeStatus } from '../protocol/index.js';
import { assert } from '../util/assert.js';
import { until } from '../util/until.js';
import type { BenchMode } from './modes.js';

export interface BenchClusterOptions {
  readonly topic: string;
  readonly queues: number;
  /** Extra node runtime options for every node (e.g. --cpu-prof). */
  readonly nodeArgs: readonly string[];
  /** Run the cluster with an ACL: every request signed and checked (measures its cost). */
  readonly acl?: boolean;
  /** Run the cluster with security.tls: every peer and client connection over TLS (measures its cost). */
  readonly tls?: boolean;
}

/** The one user of a benchmark cluster with an ACL (`bench --acl`). */
export const BENCH_CREDENTIALS = Object.freeze({ accessKey: 'bench', secretKey: 'bench-secret-key' });
const BENCH_ACL = { users: [{ ...BENCH_CREDENTIALS, admin: true }] };

/** The async-flush interval of every benchmark cluster (the config's default). */
export const ASYNC_FLUSH_INTERVAL_MS = 100;
const STARTUP_TIMEOUT_MS = 30_000;

const openClusters = new Set<LocalCluster>();

export async function startBenchCluster(mode: BenchMode, options: BenchClusterOptions): Promise<LocalCluster> {
  const cluster = await LocalCluster.create(
    { flush: { mode: mode.flush, intervalMs: ASYNC_FLUSH_INTERVAL_MS }, quorum: mode.quorum },
    { nodeArgs: options.nodeArgs, tls: options.tls === true, ...(options.acl === true ? { acl: BENCH_ACL, credentials: BENCH_CREDENTIALS } : {}) },
  );
  openClusters.add(cluster);
  cluster.startAll();
  const leader = await cluster.leader([], STARTUP_TIMEOUT_MS);
  const client = cluster.client(STARTUP_TIMEOUT_MS);
  try {
    await client.call({ op: 'createTopic', topic: options.topic, queues: options.queues });
  } finally {
    client.close();
  }
  await waitCaughtUp(cluster, leader.id);
  return cluster;
}

/** Every follower holds the leader's whole log (so a run starts from a steady cluster). */
export async function waitCaughtUp(cluster: LocalCluster, excluding: string | null = null): Promise<NodeStatus> {
  return until('every follower to catch up', async () => {
    const leader = await cluster.leader([], STARTUP_TIMEOUT_MS);
    const behind = leader.followers.filter((f) => f.id !== excluding && f.lag > 0);
    return behind.length === 0 && leader.followers.length === cluster.config.nodes.length - 1 ? leader : null;
  }, STARTUP_TIMEOUT_MS, 50);
}

/** Stops every node (SIGTERM, so profiles get written when asked) and removes the cluster. */
export async function disposeBenchCluster(cluster: LocalCluster, clean: boolean): Promise<void> {
  openClusters.delete(cluster);
  if (clean) {
    for (const node of cluster.config.nodes) await cluster.stop(node.id).catch(() => undefined);
  }
  await cluster.dispose();
}

/** For SIGINT: kill every cluster still open. */
export async function disposeAllBenchClusters(): Promise<void> {
  const clusters = [...openClusters];
  openClusters.clear();
  await Promise.all(clusters.map((c) => c.dispose()));
  assert(openClusters.size === 0, 'no cluster may open while disposing');
}
