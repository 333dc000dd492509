// Closed-loop produce load: `concurrency` sends always in flight, spread over `producers`
// producers (each its own client and TCP connection). Latency is measured per send from call
// to acknowledgement. Throughput counts acks completed inside the measurement window; latency,
// those sends begun inside it. Messages per request come from the producers' own counts.
import type * as hdr from 'hdr-histogram-js';
import type { LedgerClient } from '../client/client.js';
import { Producer, type ProducerOptions } from '../client/producer.js';
import { assert } from '../util/assert.js';
import { latencyHistogram, recordLatencyMs } from './measure.js';

export interface LoadOptions {
  readonly topic: string;
  readonly sizeBytes: number;
  readonly concurrency: number;
  /** A send that is not acknowledged within this long (across retries) counts as an error. */
  readonly sendTimeoutMs: number;
  /** Sends combined into one request at most; 1: one request per send, as many in flight as sends. */
  readonly maxBatch: number;
}

export interface LoadWindow {
  readonly acked: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly elapsedMs: number;
  readonly histogram: hdr.Histogram;
  /** Produce requests the producers started in the window, and the messages they carried. */
  readonly requests: number;
  readonly requestMessages: number;
}

/** Called on every acknowledgement with its completion time (performance.now()) and which client got it. */
export type AckListener = (completedAtMs: number, clientIndex: number) => void;

export class ClosedLoopLoad {
  private readonly producers: Producer[];
  private readonly body: Buffer;
  private workers: Promise<void>[] = [];
  private stopping = false;
  private histogram = latencyHistogram();
  private acked = 0;
  /** Acks since start, warm-up included. */
  private ackedInAll = 0;
  private errors = 0;
  private firstError: string | null = null;
  private windowStartMs = 0;
  private windowStartCounts = { requests: 0, messages: 0 };
  private ackListener: AckListener | null = null;

  constructor(clients: readonly LedgerClient[], private readonly options: LoadOptions) {
    assert(clients.length >= 1, 'the load needs at least one client');
    assert(options.concurrency >= clients.length, 'every producer needs at least one send in flight');
    const producerOptions = benchProducerOptions(options.maxBatch, Math.ceil(options.concurrency / clients.length));
    this.producers = clients.map((client) => new Producer(client, options.sendTimeoutMs, producerOptions));
    this.body = Buffer.alloc(options.sizeBytes, 0x6d);
  }

  start(): void {
    assert(this.workers.length === 0, 'load started twice');
    for (let i = 0; i < this.options.concurrency; i++) this.workers.push(this.work(i % this.producers.length));
  }

  onAck(listener: AckListener | null): void {
    this.ackListener = listener;
  }

  /** Starts a fresh measurement window (what came before was warm-up). */
  beginWindow(): void {
    this.histogram = latencyHistogram();
    this.acked = 0;
    this.errors = 0;
    this.firstError = null;
    this.windowStartCounts = this.requestCounts();
    this.windowStartMs = performance.now();
  }

  /** Acks so far in the current window (for progress lines). */
  ackedSoFar(): number {
    return this.acked;
  }

  /** Acks since start(), warm-up included. */
  ackedSinceStart(): number {
    return this.ackedInAll;
  }

  /** Closes the window: later acks are not counted in it. */
  endWindow(): LoadWindow {
    assert(this.windowStartMs > 0, 'endWindow before beginWindow');
    const counts = this.requestCounts();
    const window = {
      acked: this.acked, errors: this.errors, firstError: this.firstError, elapsedMs: performance.now() - this.windowStartMs, histogram: this.histogram,
      requests: counts.requests - this.windowStartCounts.requests, requestMessages: counts.messages - this.windowStartCounts.messages,
    };
    this.windowStartMs = 0;
    this.histogram = latencyHistogram();
    return window;
  }

  private requestCounts(): { requests: number; messages: number } {
    const stats = this.producers.map((producer) => producer.stats());
    return { requests: stats.reduce((sum, s) => sum + s.requests, 0), messages: stats.reduce((sum, s) => sum + s.messages, 0) };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
    this.workers = [];
  }

  private async work(clientIndex: number): Promise<void> {
    const producer = this.producers[clientIndex]!;
    while (!this.stopping) {
      const startedMs = performance.now();
      try {
        await producer.send(this.options.topic, { body: this.body });
      } catch (error) {
        this.errors++;
        this.firstError ??= error instanceof Error ? error.message : String(error);
        continue;
      }
      const completedMs = performance.now();
      this.ackedInAll++;
      this.ackListener?.(completedMs, clientIndex);
      if (this.windowStartMs === 0) continue;
      this.acked++;
      // A send begun before the window started waited partly outside it: its latency is not the window's.
      if (startedMs >= this.windowStartMs) recordLatencyMs(this.histogram, completedMs - startedMs);
    }
  }
}

/**
 * maxBatch 1 reproduces one request per send: every send in flight is its own request, as
 * before natural batching. Otherwise the producer's default window of requests applies.
 */
export function benchProducerOptions(maxBatch: number, sendsInFlightPerProducer: number): Partial<ProducerOptions> {
  assert(maxBatch >= 1 && sendsInFlightPerProducer >= 1, 'a batch and a send in flight at least');
  return maxBatch === 1 ? { maxBatchMessages: 1, maxInflightRequests: sendsInFlightPerProducer } : { maxBatchMessages: maxBatch };
}
