// Retention soak (`npm run bench:retention-soak -- [seconds] [msgs/s]`, default 600 s at 5,000
// msgs/s), issue 13's "disk, RSS and open file descriptors flat": a local three-node cluster
// (sync flush, majority) with 1 MiB segments, retention.maxBytes 8 MiB and a retention check
// every second takes a steady, paced stream of 256 B messages (open loop: each 10 ms tick sends
// what the schedule says is due, at most MAX_IN_FLIGHT unacknowledged; what the cap held back
// is counted as behind). Every 10 s each node is sampled: bytes of its data directory and of
// its log (du, and the status' logBytes), RSS (VmRSS) and open file descriptors. Reports
// the first sample, the first after a minute's warm-up, the last and the max per node, and writes bench/results/retention-soak.json
// with the disk's fdatasync latency and the load average beside them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Producer } from '../src/client/producer.js';
import { type ClusterSample, describeMachine, lifecycleLogLines, loadNow, machineContext, maxPerNode, MIB, type NodeSample, RETENTION, sampleCluster, startRetentionCluster } from './node-sampler.js';

const DURATION_S = Number(process.argv[2] ?? 600);
const RATE_PER_S = Number(process.argv[3] ?? 5000);
const TOPIC = 'soak';
const QUEUES = 8;
const BODY_BYTES = 256;
const TICK_MS = 10;
const SAMPLE_EVERY_MS = 10_000;
const MAX_IN_FLIGHT = 4096;
const SEND_TIMEOUT_MS = 30_000;
const RESULT_PATH = join(import.meta.dirname, '..', '..', 'bench', 'results', 'retention-soak.json');

const progress = (line: string) => console.error(`[soak] ${line}`);
const mib = (bytes: number | null) => (bytes === null ? null : Math.round((bytes / MIB) * 100) / 100);

/** Samples from here on count as steady: the log has reached its retention bound by then. */
const WARM_UP_MS = 60_000;

/** The first sample, the first steady one, the last and the max of one field, per node. */
function flatness(samples: readonly ClusterSample[], field: keyof NodeSample) {
  const max = maxPerNode(samples, field);
  const steady = samples.find((s) => s.atMs >= WARM_UP_MS) ?? samples.at(-1)!;
  return Object.fromEntries(samples[0]!.nodes.map((node, i) => [node.id, {
    first: samples[0]!.nodes[i]![field], atWarmUp: steady.nodes[i]![field], last: samples.at(-1)!.nodes[i]![field], max: max[node.id],
  }]));
}

async function main(): Promise<void> {
  const machine = machineContext();
  progress(`${DURATION_S} s at ${RATE_PER_S} msgs/s; ${describeMachine(machine)}`);
  const { cluster, leader: first, client } = await startRetentionCluster(TOPIC, QUEUES, SEND_TIMEOUT_MS);
  try {
    const producer = new Producer(client, SEND_TIMEOUT_MS);
    const body = Buffer.alloc(BODY_BYTES, 0x73);
    let sent = 0;
    let acked = 0;
    let errors = 0;
    let behind = 0;
    let firstError: string | null = null;
    const samples: (ClusterSample & { acked: number; behind: number; errors: number; msgsPerSecInWindow: number; loadAverage: number[] })[] = [];
    const originMs = performance.now();
    const endMs = originMs + DURATION_S * 1000;
    let nextSampleMs = originMs;
    let lastAcked = 0;
    let lastSampleAtMs = originMs;
    let sampling: Promise<void> | null = null;
    progress(`leader ${first.id}; producing`);
    while (performance.now() < endMs) {
      const now = performance.now();
      const due = Math.floor(((now - originMs) / 1000) * RATE_PER_S);
      while (sent + behind < due) {
        if (sent - acked - errors >= MAX_IN_FLIGHT) {
          behind++;
          continue;
        }
        sent++;
        producer.send(TOPIC, { body }).then(() => void acked++, (error: unknown) => {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
        });
      }
      if (now >= nextSampleMs && sampling === null) {
        nextSampleMs += SAMPLE_EVERY_MS;
        sampling = sampleCluster(cluster, originMs).then((sample) => {
          const atMs = performance.now();
          const msgsPerSecInWindow = samples.length === 0 ? 0 : Math.round((acked - lastAcked) / ((atMs - lastSampleAtMs) / 1000));
          lastAcked = acked;
          lastSampleAtMs = atMs;
          samples.push({ ...sample, acked, behind, errors, msgsPerSecInWindow, loadAverage: loadNow() });
          const n = sample.nodes.map((s) => `${s.id} ${s.role?.[0] ?? '-'} data ${mib(s.dataDirDiskBytes)} log ${mib(s.logBytes)} MiB rss ${mib(s.rssBytes)} MiB fds ${s.openFds}`).join(' | ');
          progress(`${Math.round(sample.atMs / 1000)} s acked ${acked} (${msgsPerSecInWindow}/s) behind ${behind} errors ${errors} | ${n}`);
          sampling = null;
        });
      }
      await sleep(TICK_MS);
    }
    const elapsedS = (performance.now() - originMs) / 1000;
    while (acked + errors < sent) await sleep(50);
    await sampling;
    samples.push({ ...(await sampleCluster(cluster, originMs)), acked, behind, errors, msgsPerSecInWindow: 0, loadAverage: loadNow() });
    const statuses = await Promise.all(cluster.config.nodes.map((n) => cluster.status(n.id)));
    const { topics } = await client.call({ op: 'topics' });
    const steady = samples.slice(0, -1);
    const document = {
      generatedAt: new Date().toISOString(),
      config: { flush: 'sync', quorum: 'majority', ...RETENTION, snapshotEveryEntries: 'default (10000)', queues: QUEUES },
      load: { durationS: DURATION_S, targetMsgsPerSec: RATE_PER_S, bodyBytes: BODY_BYTES, sent, acked, errors, firstError, behind, achievedMsgsPerSec: Math.round(acked / elapsedS) },
      diskFdatasync: machine.diskFdatasync,
      loadAverageAtStart: machine.loadAverage,
      loadAverageAtEnd: loadNow(),
      flatness: {
        dataDirDiskBytes: flatness(steady, 'dataDirDiskBytes'),
        logBytes: flatness(steady, 'logBytes'),
        logDirDiskBytes: flatness(steady, 'logDirDiskBytes'),
        rssBytes: flatness(steady, 'rssBytes'),
        openFds: flatness(steady, 'openFds'),
      },
      finalStatuses: statuses.map((s) => s && { id: s.id, role: s.role, term: s.term, firstIndex: s.firstIndex, snapshotIndex: s.snapshotIndex, lastIndex: s.lastIndex, commitIndex: s.commitIndex, logBytes: s.logBytes, eventLoopDelayP99Ms: s.eventLoopDelayP99Ms }),
      queueRanges: topics.find((t) => t.topic === TOPIC)!.queueOffsets,
      nodeLogWarnings: Object.fromEntries(cluster.config.nodes.map((n) => [n.id, lifecycleLogLines(cluster, n.id, 400).filter((l) => /"level":(40|50|60)/.test(l)).slice(0, 20)])),
      samples,
    };
    writeFileSync(RESULT_PATH, `${JSON.stringify(document, null, 2)}\n`);
    progress(`flatness ${JSON.stringify(document.flatness)}`);
    progress(`wrote ${RESULT_PATH}`);
  } finally {
    await cluster.dispose();
  }
}

await main();
