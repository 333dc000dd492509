// InstallSnapshot of a large retained log (`node dist/bench/snapshot-stream.js [GiB]`): a local
// three-node cluster (sync flush, majority) with log.segmentBytes 64 MiB, retention.maxBytes of
// the given size (default 1 GiB) and a retention check every second is filled with 16 KiB
// messages until retention has truncated every log; then a follower is stopped, its data
// directory deleted and it is started again. Reported: the package's size, the time from the
// start until the follower has caught up (and the phases from the node's log lines: package
// opened and hashed, log installed, broker restored), and the leader's RSS and event-loop delay
// sampled every 100 ms before and during it. Writes bench/results/snapshot-stream.json.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { NodeStatus } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';
import { describeMachine, loadNow, machineContext, MIB, rssBytes } from './node-sampler.js';

const GIB = 1024 * MIB;
const SEGMENT_BYTES = 64 * MIB;
const BODY_BYTES = 16 * 1024;
const SAMPLE_EVERY_MS = 100;
const CATCH_UP_TIMEOUT_MS = 600_000;
const RESULT_PATH = join(import.meta.dirname, '..', '..', 'bench', 'results', 'snapshot-stream.json');

const progress = (line: string) => console.error(`[snapshot-stream] ${line}`);

function logLines(cluster: LocalCluster, id: string, pattern: RegExp): Array<Record<string, unknown>> {
  return readFileSync(join(cluster.dir, `${id}.log`), 'utf8')
    .split('\n')
    .filter((line) => pattern.test(line))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function fill(cluster: LocalCluster, retainedBytes: number): Promise<NodeStatus[]> {
  const client = cluster.client(30_000);
  await client.call({ op: 'createTopic', topic: 'bench', queues: 4 });
  const producer = new Producer(client, 30_000);
  const ids = cluster.config.nodes.map((n) => n.id);
  const body = Buffer.alloc(BODY_BYTES, 7);
  const startMs = performance.now();
  let sent = 0;
  for (;;) {
    const batch = [];
    for (let i = 0; i < 1024; i++) batch.push(producer.send('bench', { body }));
    // The producer combines what waits into requests, a bounded number in flight.
    await Promise.all(batch);
    sent += batch.length;
    const all = await Promise.all(ids.map((id) => cluster.status(id)));
    if (sent % (16 * 1024) === 0) progress(`sent ${sent} (${((sent * BODY_BYTES) / GIB).toFixed(2)} GiB) in ${Math.round(performance.now() - startMs)} ms`);
    if (sent * BODY_BYTES >= retainedBytes && all.every((s) => s !== null && s.firstIndex > 1 && s.snapshotIndex > 0)) return all as NodeStatus[];
  }
}

async function main(): Promise<void> {
  const retainedBytes = Math.round(Number(process.argv[2] ?? '1') * GIB);
  const machine = machineContext();
  progress(describeMachine(machine));
  const cluster = await LocalCluster.create({
    log: { segmentBytes: SEGMENT_BYTES },
    snapshot: { everyEntries: 2000 },
    retention: { maxBytes: retainedBytes, checkIntervalMs: 1000 },
  });
  try {
    cluster.startAll();
    const leader0 = await cluster.leader([], 30_000);
    progress(`leader ${leader0.id}; producing ${BODY_BYTES} B messages until retention truncates a ${retainedBytes} B log`);
    const filled = await fill(cluster, retainedBytes);
    progress(`filled: ${JSON.stringify(filled.map((s) => ({ id: s.id, firstIndex: s.firstIndex, logBytes: s.logBytes })))}`);
    const leader = await cluster.leader();
    const follower = cluster.config.nodes.find((n) => n.id !== leader.id)!;
    const samples: Array<{ atMs: number; leaderRssBytes: number | null; leaderEventLoopDelayP99Ms: number | null }> = [];
    const originMs = performance.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await cluster.status(leader.id);
        samples.push({ atMs: Math.round(performance.now() - originMs), leaderRssBytes: rssBytes(leader.pid), leaderEventLoopDelayP99Ms: s?.eventLoopDelayP99Ms ?? null });
        await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
      }
    })();
    // Idle first: the event-loop delay is a p99 over 10 s, which must not hold the writes.
    await new Promise((r) => setTimeout(r, 12_000));
    const rssBeforeBytes = Math.max(...samples.map((s) => s.leaderRssBytes ?? 0));
    await cluster.stop(follower.id);
    rmSync(follower.dataDir, { recursive: true, force: true });
    const startedMs = performance.now();
    const startedWallMs = Date.now();
    cluster.start(follower.id);
    const caughtUp = await until('the wiped follower caught up', async () => {
      const [f, l] = await Promise.all([cluster.status(follower.id), cluster.status(leader.id)]);
      return f !== null && l !== null && f.snapshotIndex > 0 && f.appliedIndex >= l.commitIndex ? f : null;
    }, CATCH_UP_TIMEOUT_MS, 200);
    const caughtUpMs = Math.round(performance.now() - startedMs);
    sampling = false;
    await sampler;
    const during = samples.filter((s) => s.atMs >= startedMs - originMs);
    const sent = logLines(cluster, leader.id, /sending a snapshot package/);
    const phases = logLines(cluster, follower.id, /log installed a window|broker state restored|installed a snapshot from the leader/);
    const result = {
      generatedAt: new Date().toISOString(),
      config: { segmentBytes: SEGMENT_BYTES, retentionMaxBytes: retainedBytes, bodyBytes: BODY_BYTES },
      machine,
      loadAverageAtEnd: loadNow(),
      packageBytes: sent.map((l) => l['totalBytes']),
      packageHashMs: sent.map((l) => l['hashMs']),
      follower: follower.id,
      caughtUpMs,
      caughtUp,
      leaderRssBeforeBytes: rssBeforeBytes,
      leaderRssPeakDuringBytes: Math.max(...during.map((s) => s.leaderRssBytes ?? 0)),
      leaderEventLoopDelayP99MaxMs: Math.max(...during.map((s) => s.leaderEventLoopDelayP99Ms ?? 0)),
      // Milliseconds after the follower's start: the leader opened (and hashed) the package, then the follower's install steps.
      phasesMs: {
        packageSent: sent.map((l) => (l['time'] as number) - startedWallMs),
        follower: phases.map((l) => ({ msg: l['msg'], atMs: (l['time'] as number) - startedWallMs })),
      },
      samples,
    };
    writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`);
    const { samples: _omit, caughtUp: _s, ...summary } = result;
    progress(JSON.stringify(summary));
  } finally {
    await cluster.dispose();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
