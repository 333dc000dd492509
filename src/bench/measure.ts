// What the benchmark measures with: latency histograms (HdrHistogram, microsecond resolution,
// read back in milliseconds) and per-process CPU time and resident memory from /proc (Linux).
import { readFileSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import { assert } from '../util/assert.js';

/** Latencies above this are recorded as this (a stuck request shows as 120 s, not lost). */
const HIGHEST_LATENCY_US = 120_000_000;
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks on every mainstream build. */
const CLOCK_TICKS_PER_SECOND = 100;

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export function latencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_LATENCY_US, numberOfSignificantValueDigits: 3 });
}

export function recordLatencyMs(histogram: hdr.Histogram, latencyMs: number): void {
  assert(Number.isFinite(latencyMs), 'latency must be finite');
  histogram.recordValue(Math.min(HIGHEST_LATENCY_US, Math.max(1, Math.round(latencyMs * 1000))));
}

export function summarize(histogram: hdr.Histogram): LatencySummary {
  // A percentile is reported as the top of its bucket, which can exceed the exact maximum.
  const at = (percentile: number) => round3(Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue) / 1000);
  return {
    count: histogram.totalCount,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: round3(histogram.maxValue / 1000),
  };
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

export interface Rss {
  /** VmRSS: everything resident. */
  readonly totalBytes: number;
  /** RssAnon: heap and other private memory (what a leak would grow); the rest is mapped files (lmdb). */
  readonly anonBytes: number;
}

/** Resident memory of a process, or null when it is gone. */
export function rss(pid: number): Rss | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
    const sample = { totalBytes: kb('VmRSS'), anonBytes: kb('RssAnon') };
    return Number.isNaN(sample.totalBytes) ? null : sample;
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used, or null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after its closing ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    assert(Number.isFinite(utime) && Number.isFinite(stime), () => `cannot parse /proc/${pid}/stat`);
    return (utime + stime) / CLOCK_TICKS_PER_SECOND;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** The machine's CPU time so far, all cores together, in clock ticks: all of it, and what the host stole. */
export interface MachineCpuTicks {
  readonly total: number;
  readonly steal: number;
}

/**
 * From /proc/stat's first line (user nice system idle iowait irq softirq steal …). Steal is time
 * this VM was ready to run but its host ran something else: a run measured under steal spends
 * more CPU per message (caches and the core's sibling shared), so figures compare at like steal.
 */
export function machineCpuTicks(): MachineCpuTicks {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  assert(line.startsWith('cpu ') && ticks.length === 8 && ticks.every(Number.isFinite), 'cannot parse /proc/stat');
  return { total: ticks.reduce((sum, tick) => sum + tick, 0), steal: ticks[7]! };
}

/** Percent of the machine's CPU time the host stole between two readings. */
export function stealPercent(before: MachineCpuTicks, after: MachineCpuTicks): number {
  const total = after.total - before.total;
  return total <= 0 ? 0 : Math.round((1000 * (after.steal - before.steal)) / total) / 10;
}
