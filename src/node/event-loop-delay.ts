// How late this process's event loop runs its callbacks (perf_hooks.monitorEventLoopDelay):
// the figure that shows whether something — a catch-up read, a big apply — holds the loop long
// enough to delay heartbeats. A histogram cannot forget old samples, so two monitors run, each
// reset every WINDOW_MS and staggered by half of it: the older one always covers the last
// WINDOW_MS/2 to WINDOW_MS, which is what "p99 over the last ~10 s" reports.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { assert } from '../util/assert.js';

const WINDOW_MS = 10_000;
/** Sampling period of the monitors (Node's default is 10 ms too); delays below it are not seen. */
const RESOLUTION_MS = 10;
const NS_PER_MS = 1e6;

export interface EventLoopDelay {
  /** p99 of the loop's delay over roughly the last 10 s, ms; 0 before the first sample. */
  readonly p99Ms: number;
  /** Largest delay over the same window, ms. */
  readonly maxMs: number;
}

export class EventLoopDelayMonitor {
  private readonly histograms: [IntervalHistogram, IntervalHistogram];
  /** The histogram reset longest ago (it covers the longer window). */
  private older = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor() {
    this.histograms = [monitorEventLoopDelay({ resolution: RESOLUTION_MS }), monitorEventLoopDelay({ resolution: RESOLUTION_MS })];
  }

  start(): void {
    assert(this.timer === null, 'event-loop monitor started twice');
    for (const histogram of this.histograms) histogram.enable();
    // Every half window the older histogram is reset and becomes the younger one.
    this.timer = setInterval(() => {
      this.histograms[this.older]!.reset();
      this.older = 1 - this.older;
    }, WINDOW_MS / 2);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const histogram of this.histograms) histogram.disable();
  }

  read(): EventLoopDelay {
    const histogram = this.histograms[this.older]!;
    if (histogram.count === 0) return { p99Ms: 0, maxMs: 0 };
    // The monitor counts the whole timer period as delay; the lateness is what exceeds it.
    const late = (ns: number) => Math.max(0, Math.round((ns / NS_PER_MS - RESOLUTION_MS) * 10) / 10);
    const result = { p99Ms: late(histogram.percentile(99)), maxMs: late(histogram.max) };
    assert(result.p99Ms <= result.maxMs, 'p99 never exceeds the maximum');
    return result;
  }
}
