// The end-to-end scenario: produce at a fixed offered rate and consume at once; latency runs
// from each message's INTENDED send time (its slot in the fixed schedule), not from when the
// send actually went out, so a stalled sender cannot hide the stall (coordinated omission).
import { setTimeout as sleep } from 'node:timers/promises';
import { loadavg } from 'node:os';
import type * as hdr from 'hdr-histogram-js';
import type { LedgerClient } from '../client/client.js';
import { Producer } from '../client/producer.js';
import { assert } from '../util/assert.js';
import { LmqError } from '../util/errors.js';
import { disposeBenchCluster, startBenchCluster } from './bench-cluster.js';
import { type LatencySummary, latencyHistogram, recordLatencyMs, summarize } from './measure.js';
import type { BenchMode } from './modes.js';
import { formatTable } from './report.js';
import type { Progress } from './throughput.js';

export interface EndToEndOptions {
  readonly topic: string;
  readonly queues: number;
  readonly nodeArgs: readonly string[];
  readonly cleanStop: boolean;
  readonly sizeBytes: number;
  readonly ratePerSec: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly producers: number;
}

export interface EndToEndModeResult {
  readonly mode: string;
  readonly ratePerSec: number;
  readonly sent: number;
  readonly consumed: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** Intended send time → acknowledgement. */
  readonly produce: LatencySummary;
  /** Intended send time → the consumer has the message. */
  readonly e2e: LatencySummary;
  readonly loadAvg1: number;
}

/** Messages one run may schedule (their intended times are kept in memory, 8 B each). */
const MAX_SCHEDULED_MESSAGES = 10_000_000;
/**
 * Sends in flight per producer connection, kept under the server's per-connection limit (256,
 * beyond which it answers LMQ_OVERLOADED and the retries cascade into out-of-order refusals).
 * A send held back here still counts its wait as latency, from its intended time.
 */
const MAX_IN_FLIGHT_PER_PRODUCER = 200;
/** After the last send, consumers get this long to receive everything. */
const DRAIN_TIMEOUT_MS = 30_000;
const CALL_TIMEOUT_MS = 20_000;
const PULL_WAIT_MS = 500;
const PULL_MAX_MESSAGES = 1024;
const PULL_MAX_BYTES = 4 * 1024 * 1024;
/** The body carries the message's schedule slot in its first bytes. */
const SLOT_BYTES = 4;

export async function runEndToEnd(modes: readonly BenchMode[], options: EndToEndOptions, progress: Progress): Promise<{ document: Record<string, unknown>; text: string }> {
  const total = options.ratePerSec * (options.warmupS + options.durationS);
  if (total > MAX_SCHEDULED_MESSAGES) throw new LmqError('LMQ_BAD_INPUT', `--rate × (--warmup + --duration) schedules ${total} messages; at most ${MAX_SCHEDULED_MESSAGES}`);
  const results: EndToEndModeResult[] = [];
  for (const mode of modes) results.push(await runMode(mode, options, progress));
  const headers = ['mode', 'rate/s', 'sent', 'consumed', 'errors', 'ack p50', 'ack p99', 'ack max', 'e2e p50', 'e2e p90', 'e2e p99', 'e2e p99.9', 'e2e max'];
  const rows = results.map((r) => [r.mode, r.ratePerSec, r.sent, r.consumed, r.errors, r.produce.p50Ms, r.produce.p99Ms, r.produce.maxMs, r.e2e.p50Ms, r.e2e.p90Ms, r.e2e.p99Ms, r.e2e.p999Ms, r.e2e.maxMs]);
  const failures = results.filter((r) => r.firstError !== null).map((r) => `\n${r.mode}: first error: ${r.firstError}`).join('');
  const text = `${formatTable(headers, rows)}${failures}\n(latencies in ms from each message's intended send time, over the ${options.durationS} s after ${options.warmupS} s of warm-up)`;
  return { document: { scenario: 'e2e', sizeBytes: options.sizeBytes, durationS: options.durationS, results }, text };
}

interface Run {
  readonly intendedMs: Float64Array;
  readonly measuredFrom: number;
  readonly produceLatency: hdr.Histogram;
  readonly e2eLatency: hdr.Histogram;
  sent: number;
  inFlight: number;
  readonly inFlightByProducer: number[];
  consumed: number;
  errors: number;
  firstError: string | null;
  sendingDone: boolean;
  /** Set when the run ends (drained or timed out): consumers stop, their errors no longer matter. */
  stopped: boolean;
}

async function runMode(mode: BenchMode, options: EndToEndOptions, progress: Progress): Promise<EndToEndModeResult> {
  const total = options.ratePerSec * (options.warmupS + options.durationS);
  const run: Run = {
    intendedMs: new Float64Array(total), measuredFrom: options.ratePerSec * options.warmupS,
    produceLatency: latencyHistogram(), e2eLatency: latencyHistogram(), sent: 0, inFlight: 0, inFlightByProducer: Array.from({ length: options.producers }, () => 0), consumed: 0, errors: 0, firstError: null, sendingDone: false, stopped: false,
  };
  const cluster = await startBenchCluster(mode, options);
  try {
    const producers = Array.from({ length: options.producers }, () => new Producer(cluster.client(CALL_TIMEOUT_MS), CALL_TIMEOUT_MS));
    const consumerClient = cluster.client(CALL_TIMEOUT_MS);
    const consumers = Array.from({ length: options.queues }, (_, queueId) => consumeQueue(consumerClient, options.topic, queueId, run, total).catch((error: unknown) => {
      if (!run.stopped) throw error;
    }));
    const ticker = setInterval(() => progress(`${mode.name}: sent ${run.sent}/${total}, consumed ${run.consumed}, in flight ${run.inFlight}`), 1000);
    try {
      await sendOnSchedule(producers, options, run, total);
      run.sendingDone = true;
      await Promise.race([Promise.all(consumers), sleep(DRAIN_TIMEOUT_MS, undefined, { ref: false })]);
    } finally {
      clearInterval(ticker);
      run.sendingDone = true;
      run.stopped = true;
    }
    const e2e = summarize(run.e2eLatency);
    return { mode: mode.name, ratePerSec: options.ratePerSec, sent: run.sent, consumed: run.consumed, errors: run.errors, firstError: run.firstError, produce: summarize(run.produceLatency), e2e, loadAvg1: Math.round((loadavg()[0] ?? 0) * 10) / 10 };
  } finally {
    await disposeBenchCluster(cluster, options.cleanStop);
  }
}

async function sendOnSchedule(producers: readonly Producer[], options: EndToEndOptions, run: Run, total: number): Promise<void> {
  const intervalMs = 1000 / options.ratePerSec;
  const startMs = performance.now();
  const body = Buffer.alloc(Math.max(SLOT_BYTES, options.sizeBytes), 0x65);
  const pending = new Set<Promise<void>>();
  while (run.sent < total) {
    const nowMs = performance.now();
    while (run.sent < total && run.inFlightByProducer[run.sent % producers.length]! < MAX_IN_FLIGHT_PER_PRODUCER && startMs + run.sent * intervalMs <= nowMs) {
      const slot = run.sent++;
      run.intendedMs[slot] = startMs + slot * intervalMs;
      const message = Buffer.from(body);
      message.writeUInt32BE(slot, 0);
      const send: Promise<void> = sendOne(producers, options.topic, message, slot, run).finally(() => pending.delete(send));
      pending.add(send);
    }
    await sleep(1);
  }
  await Promise.all(pending);
}

async function sendOne(producers: readonly Producer[], topic: string, body: Buffer, slot: number, run: Run): Promise<void> {
  const producerIndex = slot % producers.length;
  run.inFlight++;
  run.inFlightByProducer[producerIndex]!++;
  try {
    await producers[producerIndex]!.send(topic, { body });
    if (slot >= run.measuredFrom) recordLatencyMs(run.produceLatency, performance.now() - run.intendedMs[slot]!);
  } catch (error) {
    run.errors++;
    run.firstError ??= error instanceof Error ? error.message : String(error);
  } finally {
    run.inFlight--;
    run.inFlightByProducer[producerIndex]!--;
  }
}

async function consumeQueue(client: LedgerClient, topic: string, queueId: number, run: Run, total: number): Promise<void> {
  let offset = 0;
  while (!run.stopped && run.consumed + run.errors < total && !(run.sendingDone && run.inFlight === 0 && run.consumed + run.errors >= run.sent)) {
    const reply = await client.call({ op: 'pull', topic, queueId, offset, maxMessages: PULL_MAX_MESSAGES, maxBytes: PULL_MAX_BYTES, waitMs: PULL_WAIT_MS }, CALL_TIMEOUT_MS);
    const receivedMs = performance.now();
    for (const m of reply.messages) {
      assert(m.offset === offset, () => `queue ${queueId} skipped from offset ${offset} to ${m.offset}`);
      const slot = new DataView(m.body.buffer, m.body.byteOffset, m.body.byteLength).getUint32(0);
      assert(slot < run.sent, () => `consumed slot ${slot} that was never sent`);
      if (slot >= run.measuredFrom) recordLatencyMs(run.e2eLatency, receivedMs - run.intendedMs[slot]!);
      run.consumed++;
      offset++;
    }
  }
}
