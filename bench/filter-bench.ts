// Broker-side filters (`npm run bench:filter`): a fresh local three-node cluster (sync flush,
// majority quorum), a topic of 4 queues pre-filled with 100,000 messages of 128 B of which 1%
// carry the tag `hit` and the property kind=hit (the rest one of 9 other tags and kinds). Then
// one pull consumer per run — the CLI's `consume` loop: pull every owned queue (256 messages,
// 4 MiB per pull), commit after each round, also after a round that only skipped — until the
// group's lag is 0 on every queue: a tag filter (skips by the consume queue's tag hash, reads
// only the matches' log entries), an SQL92 filter (reads every message to test its properties),
// and no filter (every message delivered) for comparison. Each run must deliver exactly the
// matches. Writes bench/results/filter.json (or --result NAME) with the load average beside the figures.
// `npm run bench:consume` runs the same loop without a filter over a 1,000,000-message backlog
// (`--messages N --runs none --result consume.json`): what one consumer group reads per second.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeJson } from '../src/bench/report.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import type { SubscriptionFilter } from '../src/filter/index.js';
import { assert } from '../src/util/assert.js';

const MESSAGES = numberArg('--messages', 100_000);
const RUN_NAMES = ['tag', 'sql', 'none'];
const RUNS = stringArg('--runs', RUN_NAMES.join(',')).split(',');
for (const run of RUNS) assert(RUN_NAMES.includes(run), `--runs takes names from ${RUN_NAMES.join(', ')}, not "${run}"`);
const RESULT_FILE = stringArg('--result', 'filter.json');
const BODY_BYTES = 128;
const QUEUES = 4;
/** Every HIT_EVERY-th message matches: 1%. */
const HIT_EVERY = 100;
/** Messages 0, HIT_EVERY, 2 × HIT_EVERY, … are the hits. */
const HITS = Math.ceil(MESSAGES / HIT_EVERY);
const PRODUCE_WINDOW = 4096;
const MAX_MESSAGES_PER_PULL = 256;
const RUN_TIMEOUT_MS = 600_000;

interface RunResult {
  readonly filter: string;
  readonly delivered: number;
  readonly seconds: number;
  /** Messages of the topic the group passed (delivered or skipped) per second. */
  readonly scannedMsgsPerSec: number;
  readonly deliveredMsgsPerSec: number;
  readonly pulls: number;
  /** Client process CPU over the run, percent of one core. */
  readonly clientCpuPct: number;
  readonly loadAverage: number[];
}

async function prefill(client: LedgerClient, topic: string): Promise<number> {
  const producer = new Producer(client, 60_000);
  const body = Buffer.alloc(BODY_BYTES, 'x');
  const started = performance.now();
  for (let sent = 0; sent < MESSAGES; sent += PRODUCE_WINDOW) {
    const count = Math.min(PRODUCE_WINDOW, MESSAGES - sent);
    await Promise.all(Array.from({ length: count }, (_, k) => {
      const i = sent + k;
      const kind = i % HIT_EVERY === 0 ? 'hit' : `miss${i % 9}`;
      return producer.send(topic, { body, tag: kind, properties: { kind } });
    }));
  }
  return MESSAGES / ((performance.now() - started) / 1000);
}

async function lag(client: LedgerClient, group: string, topic: string): Promise<number> {
  const queues = Array.from({ length: QUEUES }, (_, queueId) => ({ topic, queueId }));
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues });
  return offsets.reduce((sum, o) => sum + (o.nextOffset - (o.offset ?? 0)), 0);
}

async function consumeAll(client: LedgerClient, topic: string, name: string, filter: SubscriptionFilter | undefined): Promise<RunResult> {
  const group = `bench-filter-${name}`;
  const consumer = new PullConsumer(client, {
    topic, group, from: 'first', pollWaitMs: 1000, maxMessagesPerPull: MAX_MESSAGES_PER_PULL, maxBytesPerPull: 4 * 1024 * 1024,
    ...(filter === undefined ? {} : { filter }),
  });
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await consumer.start();
  let delivered = 0;
  let pulls = 0;
  let lastCommitted = Number.POSITIVE_INFINITY;
  while (lastCommitted > 0) {
    assert(performance.now() - started < RUN_TIMEOUT_MS, `${name}: the group did not reach lag 0 in time`);
    const batch = await consumer.poll(false);
    pulls += consumer.ownedQueues().length;
    for (const m of batch) assert(filter === undefined || (m.tag === 'hit' && m.properties?.['kind'] === 'hit'), `${name}: delivered a message that does not match`);
    delivered += batch.length;
    if (batch.length > 0 || consumer.movedSinceCommit()) await consumer.commit();
    else lastCommitted = await lag(client, group, topic);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const expected = filter === undefined ? MESSAGES : HITS;
  assert(delivered === expected, `${name}: delivered ${delivered}, expected ${expected}`);
  return {
    filter: filter === undefined ? 'none' : `${filter.type}: ${filter.expression}`, delivered, seconds,
    scannedMsgsPerSec: MESSAGES / seconds, deliveredMsgsPerSec: delivered / seconds, pulls,
    clientCpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100, loadAverage: loadavg(),
  };
}

async function main(): Promise<void> {
  const cluster = await LocalCluster.create();
  try {
    cluster.startAll();
    await cluster.leader();
    const client = cluster.client(60_000);
    const topic = 'bench-filter';
    await client.call({ op: 'createTopic', topic, queues: QUEUES });
    const produceMsgsPerSec = await prefill(client, topic);
    console.log(`pre-filled ${MESSAGES} × ${BODY_BYTES} B over ${QUEUES} queues (1% tagged hit) at ${Math.round(produceMsgsPerSec)} msgs/s`);
    const runs: RunResult[] = [];
    const all = [['tag', { type: 'tag', expression: 'hit' }], ['sql', { type: 'sql', expression: "kind = 'hit'" }], ['none', undefined]] as const;
    for (const [name, filter] of all.filter(([name]) => RUNS.includes(name))) {
      const result = await consumeAll(client, topic, name, filter);
      runs.push(result);
      console.log(`${result.filter}: ${result.delivered} delivered, lag 0 after ${result.seconds.toFixed(2)} s = ${Math.round(result.scannedMsgsPerSec)} msgs/s of the topic passed (${result.pulls} pulls, client CPU ${Math.round(result.clientCpuPct)}%, load ${result.loadAverage.map((l) => l.toFixed(1)).join(' ')})`);
    }
    const path = writeJson(join(import.meta.dirname, '../../bench/results'), RESULT_FILE, { mode: 'sync:majority', messages: MESSAGES, bodyBytes: BODY_BYTES, queues: QUEUES, matching: HITS, produceMsgsPerSec, runs });
    console.log(`wrote ${path}`);
  } finally {
    await cluster.dispose();
  }
}

function stringArg(flag: string, fallback: string): string {
  const at = process.argv.indexOf(flag);
  if (at === -1) return fallback;
  const value = process.argv[at + 1];
  assert(value !== undefined && !value.startsWith('--'), `${flag} needs a value`);
  return value;
}

function numberArg(flag: string, fallback: number): number {
  const value = Number(stringArg(flag, String(fallback)));
  assert(Number.isSafeInteger(value) && value > 0, `${flag} takes a positive whole number`);
  return value;
}

await main();
