// Closed-loop produce load: `concurrency` sends always in flight, spread over `producers`
// producers (each its own client and TCP connection). Latency is measured per send from call
// to acknowledgement. Throughput counts acks completed inside the measurement window; latency,
// those sends begun inside it.
import type * as hdr from 'hdr-histogram-js';
import type { LedgerClient } from '../client/client.js';
import { Producer } from '../client/producer.js';
import { assert } from '../util/assert.js';
import { latencyHistogram, recordLatencyMs } from './measure.js';

export interface LoadOptions {
  readonly topic: string;
  readonly sizeBytes: number;
  readonly concurrency: number;
  /** A send that is not acknowledged within this long (across retries) counts as an error. */
  readonly sendTimeoutMs: number;
}

export interface LoadWindow {
  readonly acked: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly elapsedMs: number;
  readonly histogram: hdr.Histogram;
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
  private errors = 0;
  private firstError: string | null = null;
  private windowStartMs = 0;
  private ackListener: AckListener | null = null;

  constructor(clients: readonly LedgerClient[], private readonly options: LoadOptions) {
    assert(clients.length >= 1, 'the load needs at least one client');
    assert(options.concurrency >= clients.length, 'every producer needs at least one send in flight');
    this.producers = clients.map((client) => new Producer(client, options.sendTimeoutMs));
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
    this.windowStartMs = performance.now();
  }

  /** Acks so far in the current window (for progress lines). */
  ackedSoFar(): number {
    return this.acked;
  }

  /** Closes the window: later acks are not counted in it. */
  endWindow(): LoadWindow {
    assert(this.windowStartMs > 0, 'endWindow before beginWindow');
    const window = { acked: this.acked, errors: this.errors, firstError: this.firstError, elapsedMs: performance.now() - this.windowStartMs, histogram: this.histogram };
    this.windowStartMs = 0;
    this.histogram = latencyHistogram();
    return window;
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
      this.ackListener?.(completedMs, clientIndex);
      if (this.windowStartMs === 0) continue;
      this.acked++;
      // A send begun before the window started waited partly outside it: its latency is not the window's.
      if (startedMs >= this.windowStartMs) recordLatencyMs(this.histogram, completedMs - startedMs);
    }
  }
}
