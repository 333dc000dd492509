// The disk's own latency for what the log store does per group commit: overwrite a small
// record in a preallocated file and fdatasync it (as src/log does with its segments). Run at
// the start of a benchmark so every throughput figure can be read against the disk under it.
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../util/assert.js';
import { latencyHistogram, recordLatencyMs, summarize } from './measure.js';

export interface DiskSyncLatency {
  readonly samples: number;
  readonly syncsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface DiskSyncOptions {
  /** Directory on the filesystem to measure (the clusters' temp dir). */
  readonly parentDir: string;
  /** Bytes written per sync: one message with its frame. */
  readonly appendBytes: number;
  readonly maxSamples: number;
  /** Stop sampling after this long even if maxSamples were not reached (slow disks). */
  readonly maxDurationMs: number;
  /**
   * `preallocated` (default): overwrite a zero-filled file, as the log store does;
   * `growing`: append at the end, which costs a journal commit per sync on ext4.
   */
  readonly file?: 'preallocated' | 'growing';
}

/** A preallocated probe file is reused from its start past this size. */
const PROBE_FILE_BYTES_MAX = 64 * 1024 * 1024;

export function measureDiskSync(options: DiskSyncOptions): DiskSyncLatency {
  assert(options.appendBytes >= 1, 'appendBytes must be positive');
  assert(options.maxSamples >= 1, 'maxSamples must be positive');
  const dir = mkdtempSync(join(options.parentDir, 'lmq-disk-'));
  const growing = options.file === 'growing';
  // Whole records only, so a wrapped-around write never straddles the end of the file.
  const records = Math.max(1, Math.min(options.maxSamples, Math.floor(PROBE_FILE_BYTES_MAX / options.appendBytes)));
  const histogram = latencyHistogram();
  let elapsedMs = 0;
  let fd = -1;
  try {
    fd = openSync(join(dir, 'probe.seg'), 'w+');
    if (!growing) preallocate(fd, records * options.appendBytes);
    const record = Buffer.alloc(options.appendBytes, 0x61);
    const startedAll = performance.now();
    const deadline = startedAll + options.maxDurationMs;
    for (let i = 0; i < options.maxSamples && performance.now() < deadline; i++) {
      const position = (growing ? i : i % records) * record.length;
      const started = performance.now();
      const written = writeSync(fd, record, 0, record.length, position);
      fdatasyncSync(fd);
      recordLatencyMs(histogram, performance.now() - started);
      assert(written === record.length, 'short write to the probe file');
    }
    elapsedMs = performance.now() - startedAll;
  } finally {
    if (fd >= 0) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  const summary = summarize(histogram);
  assert(summary.count >= 1, 'no fdatasync sample was taken');
  return { samples: summary.count, syncsPerSec: summary.count / (elapsedMs / 1000), p50Ms: summary.p50Ms, p99Ms: summary.p99Ms, maxMs: summary.maxMs };
}

/** Zero-fills and syncs the file, so later overwrites need no size or extent update. */
function preallocate(fd: number, bytes: number): void {
  const chunk = Buffer.alloc(Math.min(bytes, 1 << 20));
  for (let position = 0; position < bytes; position += chunk.length) {
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - position), position);
  }
  fdatasyncSync(fd);
}
