// What the lifecycle benchmarks sample of a local cluster's node processes: each node's status
// (its own logBytes, firstIndex, snapshotIndex), the bytes its data directory and log directory
// hold on disk (allocated blocks, as `du` counts them, and apparent sizes), its RSS (VmRSS of
// /proc/<pid>/status) and its open file descriptors (/proc/<pid>/fd), plus the machine
// context every figure is read against: the disk's fdatasync latency and the load average.
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureDiskSync } from '../src/bench/disk.js';
import type { LedgerClient } from '../src/client/client.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { NodeStatus } from '../src/protocol/index.js';

export const MIB = 1024 * 1024;

/** What both lifecycle benchmarks run with (issue 13): 1 MiB segments, 8 MiB retained, checked every second. */
export const RETENTION = Object.freeze({ segmentBytes: 1 * MIB, maxBytes: 8 * MIB, checkIntervalMs: 1000 });

/** A local three-node cluster (sync flush, majority) with RETENTION, started, with `topic` created. */
export async function startRetentionCluster(topic: string, queues: number, clientTimeoutMs: number): Promise<{ cluster: LocalCluster; leader: NodeStatus; client: LedgerClient }> {
  const cluster = await LocalCluster.create({
    log: { segmentBytes: RETENTION.segmentBytes },
    retention: { maxBytes: RETENTION.maxBytes, checkIntervalMs: RETENTION.checkIntervalMs },
  });
  try {
    cluster.startAll();
    const leader = await cluster.leader([], 30_000);
    const client = cluster.client(clientTimeoutMs);
    await client.call({ op: 'createTopic', topic, queues });
    return { cluster, leader, client };
  } catch (error) {
    await cluster.dispose();
    throw error;
  }
}

export interface DirUsage {
  /** Allocated blocks × 512, what `du -sB1` reports. */
  readonly diskBytes: number;
  /** Sum of the files' sizes, what `du -sb` reports. */
  readonly apparentBytes: number;
  readonly files: number;
}

/** `du` of a directory tree, done with lstat (no child process per sample). */
export function dirUsage(path: string): DirUsage {
  let diskBytes = 0;
  let apparentBytes = 0;
  let files = 0;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // deleted meanwhile (a segment, a staged install): counted as gone
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        const stat = lstatSync(path);
        diskBytes += stat.blocks * 512;
        apparentBytes += stat.size;
        if (stat.isDirectory()) walk(path);
        else files++;
      } catch {
        // removed between readdir and lstat
      }
    }
  };
  if (existsSync(path)) walk(path);
  return { diskBytes, apparentBytes, files };
}

/** VmRSS of a process in bytes; null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
    return line === undefined ? null : Number(line.split(/\s+/)[1]) * 1024;
  } catch {
    return null;
  }
}

/** Open file descriptors of a process; null when it is gone. */
export function openFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

export interface NodeSample {
  readonly id: string;
  /** null: the node did not answer status within a second (or is stopped). */
  readonly role: string | null;
  readonly term: number | null;
  readonly logBytes: number | null;
  readonly firstIndex: number | null;
  readonly snapshotIndex: number | null;
  readonly lastIndex: number | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  readonly eventLoopDelayP99Ms: number | null;
  readonly logDirDiskBytes: number;
  readonly logDirApparentBytes: number;
  readonly logFiles: number;
  readonly dataDirDiskBytes: number;
  readonly rssBytes: number | null;
  readonly openFds: number | null;
}

/** One sample of every node, taken together; `atMs` is relative to `originMs`. */
export interface ClusterSample {
  readonly atMs: number;
  readonly nodes: NodeSample[];
}

export async function sampleCluster(cluster: LocalCluster, originMs: number): Promise<ClusterSample> {
  const atMs = Math.round(performance.now() - originMs);
  const nodes = await Promise.all(cluster.config.nodes.map(async (node): Promise<NodeSample> => {
    const running = cluster.isRunning(node.id);
    const status: NodeStatus | null = running ? await cluster.status(node.id) : null;
    const log = dirUsage(join(node.dataDir, 'log'));
    const pid = running ? cluster.pid(node.id) : null;
    return {
      id: node.id,
      role: status?.role ?? null,
      term: status?.term ?? null,
      logBytes: status?.logBytes ?? null,
      firstIndex: status?.firstIndex ?? null,
      snapshotIndex: status?.snapshotIndex ?? null,
      lastIndex: status?.lastIndex ?? null,
      commitIndex: status?.commitIndex ?? null,
      appliedIndex: status?.appliedIndex ?? null,
      eventLoopDelayP99Ms: status?.eventLoopDelayP99Ms ?? null,
      logDirDiskBytes: log.diskBytes,
      logDirApparentBytes: log.apparentBytes,
      logFiles: log.files,
      dataDirDiskBytes: dirUsage(node.dataDir).diskBytes,
      rssBytes: pid === null ? null : rssBytes(pid),
      openFds: pid === null ? null : openFds(pid),
    };
  }));
  return { atMs, nodes };
}

export interface MachineContext {
  readonly diskFdatasync: { readonly p50Ms: number; readonly p99Ms: number; readonly syncsPerSec: number };
  readonly loadAverage: number[];
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/** The disk's append+fdatasync latency (4 KiB records, 2 s at most) and the load average now. */
export function machineContext(): MachineContext {
  const disk = measureDiskSync({ parentDir: tmpdir(), appendBytes: 4096, maxSamples: 2000, maxDurationMs: 2000 });
  return { diskFdatasync: { p50Ms: round2(disk.p50Ms), p99Ms: round2(disk.p99Ms), syncsPerSec: Math.round(disk.syncsPerSec) }, loadAverage: loadNow() };
}

export function describeMachine(machine: MachineContext): string {
  return `disk fdatasync p50 ${machine.diskFdatasync.p50Ms} ms, p99 ${machine.diskFdatasync.p99Ms} ms; load ${machine.loadAverage.join(' ')}`;
}

export function loadNow(): number[] {
  return loadavg().map(round2);
}

/** The largest value a field took per node over the samples (null values skipped). */
export function maxPerNode(samples: readonly ClusterSample[], field: keyof NodeSample): Record<string, number | null> {
  const max: Record<string, number | null> = {};
  for (const sample of samples) {
    for (const node of sample.nodes) {
      const value = node[field];
      if (typeof value !== 'number') {
        max[node.id] ??= null;
        continue;
      }
      max[node.id] = Math.max(max[node.id] ?? value, value);
    }
  }
  return max;
}

/** A node's log lines that name the lifecycle (snapshots, retention, installs), for the report. */
export function lifecycleLogLines(cluster: LocalCluster, id: string, maxLines: number): string[] {
  const path = join(cluster.dir, `${id}.log`);
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => /snapshot|install|retention|truncat|segment|error|warn/i.test(line));
  return lines.length <= maxLines ? lines : [...lines.slice(0, maxLines / 2), `… ${lines.length - maxLines} lines left out …`, ...lines.slice(-maxLines / 2)];
}
