// Push-consumer throughput with acks (`npm run bench:push-consume`): a fresh local three-node
// cluster (sync flush, majority quorum), a topic of 4 queues pre-filled with 200,000 messages
// of 128 B, then one PushConsumer at 20 workers (consumeConcurrency, batchSize 1) whose
// listener answers SUCCESS at once: the run ends when every message was delivered and the
// group's committed offsets reached every queue's end. One run per pull batch size
// (maxMessagesPerPull: the default 32, RocketMQ's pullBatchSize, and 256). Writes
// bench/results/push-consume.json with the load average beside the figures.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeJson } from '../src/bench/report.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { PushConsumer } from '../src/client/push-consumer.js';
import { assert } from '../src/util/assert.js';
import { until } from '../src/util/until.js';

const MESSAGES = 200_000;
const BODY_BYTES = 128;
const QUEUES = 4;
const WORKERS = 20;
const PULL_BATCHES = [32, 256];
/** Sends in flight while pre-filling (the producer batches them into shared requests). */
const PRODUCE_WINDOW = 4096;
const RUN_TIMEOUT_MS = 600_000;

interface RunResult {
  maxMessagesPerPull: number;
  messages: number;
  seconds: number;
  msgsPerSec: number;
  /** Client process CPU over the run, percent of one core. */
  clientCpuPct: number;
}

async function prefill(client: LedgerClient, topic: string): Promise<number> {
  const producer = new Producer(client, 60_000);
  const body = Buffer.alloc(BODY_BYTES, 'x');
  const started = performance.now();
  for (let sent = 0; sent < MESSAGES; sent += PRODUCE_WINDOW) {
    const count = Math.min(PRODUCE_WINDOW, MESSAGES - sent);
    await Promise.all(Array.from({ length: count }, () => producer.send(topic, { body })));
  }
  return MESSAGES / ((performance.now() - started) / 1000);
}

async function consumeAll(client: LedgerClient, topic: string, maxMessagesPerPull: number): Promise<RunResult> {
  const group = `bench-${maxMessagesPerPull}`;
  let delivered = 0;
  const consumer = new PushConsumer(client, { topic, group, consumeConcurrency: WORKERS, maxMessagesPerPull, pollWaitMs: 1_000, onError: (error, what) => console.error(`${what}: ${String(error)}`) }, async (messages) => {
    delivered += messages.length;
    return 'SUCCESS';
  });
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await consumer.start();
  await until('every message delivered', () => delivered >= MESSAGES, RUN_TIMEOUT_MS, 5);
  await consumer.stop(); // commits the end of every queue
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues: Array.from({ length: QUEUES }, (_, queueId) => ({ topic, queueId })) });
  assert(offsets.every((o) => o.offset === o.nextOffset), 'the run ends with every queue committed to its end');
  assert(delivered === MESSAGES, `delivered ${delivered} of ${MESSAGES}: a message came twice`);
  return { maxMessagesPerPull, messages: MESSAGES, seconds, msgsPerSec: MESSAGES / seconds, clientCpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100 };
}

async function main(): Promise<void> {
  const cluster = await LocalCluster.create();
  try {
    cluster.startAll();
    await cluster.leader();
    const client = cluster.client(60_000);
    const topic = 'bench-push';
    await client.call({ op: 'createTopic', topic, queues: QUEUES });
    const produceMsgsPerSec = await prefill(client, topic);
    console.log(`pre-filled ${MESSAGES} × ${BODY_BYTES} B over ${QUEUES} queues at ${Math.round(produceMsgsPerSec)} msgs/s`);
    const runs: RunResult[] = [];
    for (const batch of PULL_BATCHES) {
      const result = await consumeAll(client, topic, batch);
      runs.push(result);
      console.log(`push consumer, ${WORKERS} workers, maxMessagesPerPull ${batch}: ${Math.round(result.msgsPerSec)} msgs/s (${result.seconds.toFixed(1)} s, client CPU ${Math.round(result.clientCpuPct)}%)`);
    }
    const path = writeJson(join(import.meta.dirname, '../../bench/results'), 'push-consume.json', { mode: 'sync:majority', bodyBytes: BODY_BYTES, queues: QUEUES, workers: WORKERS, produceMsgsPerSec, loadAverage: loadavg(), runs });
    console.log(`wrote ${path}`);
  } finally {
    await cluster.dispose();
  }
}

await main();
