// Delayed-message lateness (`npm run bench:delay -- [messages] [spreadSeconds] [firstDueSeconds]`,
// issue 15): on a local three-node cluster (sync flush, majority, delay.scanIntervalMs at its
// default 100 ms), 100,000 messages of 128 B are produced with due times spread evenly over 60 s
// starting 60 s after the first send, in due order (so every send is stored before it is due;
// `delayedAcks` counts those acknowledged as delayed, offset null). Readers
// long-poll every queue from offset 0 and note when each message arrives. Lateness per message:
//   store − due:   storeTimestampMs (the leader's clock when deliverDue was proposed) − deliverAtMs
//   receive − due: the reader's clock when the pull answered − deliverAtMs (same machine clock)
// Reports p50/p99/max of both, messages placed early (store < due: must be 0) and msgIds seen
// twice (must be 0). Writes bench/results/delay.json with the disk and the load beside them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'hdr-histogram-js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { describeMachine, loadNow, machineContext } from './node-sampler.js';

const TOPIC = 'delayed';
const QUEUES = 4;
const MESSAGES = Number(process.argv[2] ?? 100_000);
const SPREAD_MS = Number(process.argv[3] ?? 60) * 1000;
const FIRST_DUE_AFTER_MS = Number(process.argv[4] ?? 60) * 1000;
const BODY_BYTES = 128;
const IN_FLIGHT = 256;
const DRAIN_GRACE_MS = 30_000;
const PULL_WAIT_MS = 500;
/** Width of the due-time buckets of the lateness timeline. */
const BUCKET_MS = 5000;
const RESULT_PATH = join(import.meta.dirname, '..', '..', 'bench', 'results', 'delay.json');

const progress = (line: string) => console.error(`[delay] ${line}`);

interface Arrival {
  readonly dueMs: number;
  readonly storeLatenessMs: number;
  readonly receiveLatenessMs: number;
}

/** Sends every message in due order, at most IN_FLIGHT at once; returns when all are acknowledged. */
async function produceAll(client: LedgerClient, firstDueMs: number): Promise<number> {
  const producer = new Producer(client, 60_000);
  const body = Buffer.alloc(BODY_BYTES, 'x');
  const inFlight = new Set<Promise<unknown>>();
  let delayed = 0;
  for (let i = 0; i < MESSAGES; i++) {
    const deliverAtMs = firstDueMs + Math.floor((i * SPREAD_MS) / MESSAGES);
    const sent: Promise<unknown> = producer.send(TOPIC, { body, deliverAtMs }).then((result) => {
      if (result.offset === null) delayed++;
      inFlight.delete(sent);
    });
    inFlight.add(sent);
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return delayed;
}

/** Long-polls one queue until `done()`; records each message's lateness by msgId. */
async function readQueue(client: LedgerClient, queueId: number, arrivals: Map<string, Arrival>, duplicates: { count: number }, done: () => boolean): Promise<void> {
  let offset = 0;
  while (!done()) {
    const reply = await client.call({ op: 'pull', topic: TOPIC, queueId, offset, maxMessages: 1024, maxBytes: 4 << 20, waitMs: PULL_WAIT_MS });
    const receivedMs = Date.now();
    for (const message of reply.messages) {
      if (arrivals.has(message.msgId)) duplicates.count++;
      const dueMs = message.deliverAtMs ?? message.storeTimestampMs;
      arrivals.set(message.msgId, { dueMs, storeLatenessMs: message.storeTimestampMs - dueMs, receiveLatenessMs: receivedMs - dueMs });
    }
    offset = reply.startOffset + reply.messages.length;
  }
}

/** The largest store lateness per BUCKET_MS of due time: where in the run a stall happened. */
function timeline(arrivals: readonly Arrival[], firstDueMs: number): number[] {
  const worst: number[] = [];
  for (const a of arrivals) {
    const bucket = Math.max(0, Math.floor((a.dueMs - firstDueMs) / BUCKET_MS));
    worst[bucket] = Math.max(worst[bucket] ?? 0, a.storeLatenessMs);
  }
  return Array.from(worst, (value) => value ?? 0);
}

function percentiles(values: readonly number[]): { p50Ms: number; p99Ms: number; maxMs: number; minMs: number } {
  const histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3 });
  let min = Infinity;
  for (const value of values) {
    histogram.recordValue(Math.max(0, value));
    min = Math.min(min, value);
  }
  return { p50Ms: histogram.getValueAtPercentile(50), p99Ms: histogram.getValueAtPercentile(99), maxMs: histogram.maxValue, minMs: min };
}

async function main(): Promise<void> {
  const machine = machineContext();
  progress(`${MESSAGES} messages due over ${SPREAD_MS / 1000} s; ${describeMachine(machine)}`);
  // LMQ_CPU_PROF_DIR=DIR profiles every node (V8 --cpu-prof; read with dist/bench/cpuprofile-top.js).
  const profileDir = process.env['LMQ_CPU_PROF_DIR'];
  const cluster = await LocalCluster.create({}, profileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] });
  try {
    cluster.startAll();
    const leaderAtStart = await cluster.leader();
    const client = cluster.client(60_000);
    await client.call({ op: 'createTopic', topic: TOPIC, queues: QUEUES });
    const arrivals = new Map<string, Arrival>();
    const duplicates = { count: 0 };
    const startMs = Date.now();
    const firstDueMs = startMs + FIRST_DUE_AFTER_MS;
    const deadlineMs = firstDueMs + SPREAD_MS + DRAIN_GRACE_MS;
    const done = () => arrivals.size >= MESSAGES || Date.now() > deadlineMs;
    const readers = Array.from({ length: QUEUES }, (_, q) => readQueue(cluster.client(60_000), q, arrivals, duplicates, done));
    const delayed = await produceAll(client, firstDueMs);
    const producedInMs = Date.now() - startMs;
    progress(`produced ${MESSAGES} (${delayed} delayed) in ${producedInMs} ms; the first is due ${firstDueMs - Date.now()} ms from now`);
    await Promise.all(readers);
    const leaderAtEnd = await cluster.leader();
    const all = [...arrivals.values()];
    const store = percentiles(all.map((a) => a.storeLatenessMs));
    const receive = percentiles(all.map((a) => a.receiveLatenessMs));
    const result = {
      messages: MESSAGES,
      spreadMs: SPREAD_MS,
      bodyBytes: BODY_BYTES,
      producedInMs,
      delayedAcks: delayed,
      delivered: arrivals.size,
      early: all.filter((a) => a.storeLatenessMs < 0).length,
      duplicates: duplicates.count,
      storeLatenessMs: store,
      receiveLatenessMs: receive,
      maxStoreLatenessPer5sMs: timeline(all, firstDueMs),
      // A leader change during the run moves the figures: the terms say whether one happened.
      leaderTerms: { start: leaderAtStart.term, end: leaderAtEnd.term },
      snapshotIndexAtEnd: leaderAtEnd.snapshotIndex,
      machine,
      loadAfter: loadNow(),
    };
    writeFileSync(RESULT_PATH, `${JSON.stringify(result, null, 2)}\n`);
    progress(`delivered ${arrivals.size}/${MESSAGES}, early ${result.early}, duplicates ${duplicates.count}`);
    progress(`store − due p50 ${store.p50Ms} ms, p99 ${store.p99Ms} ms, max ${store.maxMs} ms; receive − due p50 ${receive.p50Ms} ms, p99 ${receive.p99Ms} ms, max ${receive.maxMs} ms`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    // A profile is written when its node stops cleanly.
    if (profileDir !== undefined) for (const node of cluster.config.nodes) await cluster.stop(node.id);
    await cluster.dispose();
  }
}

await main();
