// Log store benchmark (`npm run bench:log`): writers that each append one entry and await
// flush(), in sync and async mode, for 128 B and 4 KiB entries, beside the disk's own
// write + fdatasync latency measured in the same run. Prints a table, writes bench/out/log.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { measureDiskSync } from '../src/bench/disk.js';
import { LogStore } from '../src/log/log-store.js';
import { EntryType } from '../src/raft/types.js';

const MEASURE_MS = 2500;
const WARMUP_MS = 300;
const RAW_MEASURE_MS = 2000;
const SEGMENT_BYTES = 64 * 1024 * 1024;
const ASYNC_FLUSH_INTERVAL_MS = 100;
const RAW_WRITE_BYTES = 4096;
/**
 * Writers return to the event loop after this many appends in all, together: in async mode a
 * loop of append + await flush() is all microtasks and would starve the timers (the store's
 * background fdatasync included). They wait on one shared promise so they resume in the same
 * tick, as requests that arrive in one I/O poll do; yielding one by one would leave each
 * writer running alone and defeat the store's per-tick write coalescing.
 */
const YIELD_EVERY_APPENDS = 1024;

interface CaseResult {
  mode: 'sync' | 'async';
  entryBytes: number;
  writers: number;
  entriesPerSec: number;
  mbPerSec: number;
  fsyncsPerSec: number;
  latencyUsP50: number;
  latencyUsP99: number;
  /** Process CPU (user + system) per entry: comparable across runs even when other work shares the cores. */
  cpuUsPerEntry: number;
}

interface RawResult {
  file: 'preallocated' | 'growing';
  syncsPerSec: number;
  latencyUsP50: number;
  latencyUsP99: number;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: 3 });
}

const nowNs = (): bigint => process.hrtime.bigint();

async function runCase(mode: 'sync' | 'async', entryBytes: number, writers: number): Promise<CaseResult> {
  const dir = mkdtempSync(join(tmpdir(), 'lmq-log-bench-'));
  const store = LogStore.open({ dir, segmentBytes: SEGMENT_BYTES, flushMode: mode, flushIntervalMs: ASYNC_FLUSH_INTERVAL_MS });
  const payload = Buffer.alloc(entryBytes, 0xab);
  const histogram = newHistogram();
  let nextIndex = 1;
  let appendsSinceYield = 0;
  let yieldTogether: Promise<void> | null = null;
  let measuring = false;
  let stop = false;
  const writer = async (): Promise<void> => {
    while (!stop) {
      if (yieldTogether !== null) await yieldTogether;
      const started = nowNs();
      store.append([{ index: nextIndex++, term: 1, type: EntryType.Normal, data: payload }]);
      await store.flush();
      if (measuring) histogram.recordValue(Number(nowNs() - started));
      if (++appendsSinceYield >= YIELD_EVERY_APPENDS && yieldTogether === null) {
        appendsSinceYield = 0;
        yieldTogether = new Promise((resume) =>
          setImmediate(() => {
            yieldTogether = null;
            resume();
          }),
        );
      }
    }
  };
  const running = Array.from({ length: writers }, writer);
  await sleep(WARMUP_MS);
  const before = store.stats();
  const cpuBefore = process.cpuUsage();
  const startNs = nowNs();
  measuring = true;
  await sleep(MEASURE_MS);
  measuring = false;
  const after = store.stats();
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = Number(nowNs() - startNs) / 1e9;
  stop = true;
  await Promise.all(running);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  const entries = after.appendedEntries - before.appendedEntries;
  return {
    mode,
    entryBytes,
    writers,
    entriesPerSec: entries / seconds,
    mbPerSec: (entries * entryBytes) / seconds / 1e6,
    fsyncsPerSec: (after.fsyncs - before.fsyncs) / seconds,
    latencyUsP50: histogram.getValueAtPercentile(50) / 1000,
    latencyUsP99: histogram.getValueAtPercentile(99) / 1000,
    cpuUsPerEntry: (cpu.user + cpu.system) / entries,
  };
}

/** The disk alone: write 4 KiB then fdatasync, in a loop, on a preallocated or a growing file. */
function rawSyncLoop(file: RawResult['file']): RawResult {
  const disk = measureDiskSync({ parentDir: tmpdir(), appendBytes: RAW_WRITE_BYTES, maxSamples: Number.MAX_SAFE_INTEGER, maxDurationMs: RAW_MEASURE_MS, file });
  return { file, syncsPerSec: disk.syncsPerSec, latencyUsP50: disk.p50Ms * 1000, latencyUsP99: disk.p99Ms * 1000 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const fmt = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function printTable(cases: CaseResult[], raw: RawResult[]): void {
  const rows = [['mode', 'entry', 'writers', 'entries/s', 'MB/s', 'fsyncs/s', 'p50 µs', 'p99 µs', 'cpu µs/entry']];
  for (const c of cases) {
    rows.push([c.mode, c.entryBytes === 4096 ? '4 KiB' : `${c.entryBytes} B`, String(c.writers), fmt(c.entriesPerSec), fmt(c.mbPerSec, 1), fmt(c.fsyncsPerSec), fmt(c.latencyUsP50, 1), fmt(c.latencyUsP99, 1), fmt(c.cpuUsPerEntry, 2)]);
  }
  for (const r of raw) rows.push([`raw ${r.file}`, '4 KiB', '1', fmt(r.syncsPerSec), fmt((r.syncsPerSec * RAW_WRITE_BYTES) / 1e6, 1), fmt(r.syncsPerSec), fmt(r.latencyUsP50, 1), fmt(r.latencyUsP99, 1), '']);
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  for (const row of rows) console.log(row.map((cell, col) => (col < 3 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '));
}

interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

function checkTargets(cases: CaseResult[], raw: RawResult[]): TargetCheck[] {
  const find = (mode: string, entryBytes: number, writers: number): CaseResult => cases.find((c) => c.mode === mode && c.entryBytes === entryBytes && c.writers === writers)!;
  const rawPreallocated = raw.find((r) => r.file === 'preallocated')!;
  const checks: TargetCheck[] = [];
  for (const writers of [1, 16, 256]) {
    const rate = find('async', 128, writers).entriesPerSec;
    checks.push({ target: `async 128 B, ${writers} writers >= 200,000 entries/s`, measured: fmt(rate), met: rate >= 200_000 });
  }
  for (const entryBytes of [128, 4096]) {
    const ratio = find('sync', entryBytes, 256).entriesPerSec / find('async', entryBytes, 256).entriesPerSec;
    checks.push({ target: `sync/async ${entryBytes} B, 256 writers >= 50%`, measured: `${fmt(ratio * 100, 1)}%`, met: ratio >= 0.5 });
  }
  for (const entryBytes of [128, 4096]) {
    const ratio = find('sync', entryBytes, 1).latencyUsP50 / rawPreallocated.latencyUsP50;
    checks.push({ target: `sync ${entryBytes} B, 1 writer p50 <= 1.5x raw preallocated p50`, measured: `${fmt(ratio, 2)}x`, met: ratio <= 1.5 });
  }
  return checks;
}

async function main(): Promise<void> {
  const cases: CaseResult[] = [];
  const runMode = async (mode: 'sync' | 'async'): Promise<void> => {
    for (const entryBytes of [128, 4096]) {
      for (const writers of [1, 16, 256]) {
        cases.push(await runCase(mode, entryBytes, writers));
        process.stderr.write(`done ${mode} ${entryBytes} B ${writers} writers\n`);
      }
    }
  };
  await runMode('async');
  // Measured right before the sync cases, which they are compared with, on the same disk load.
  const raw = [rawSyncLoop('preallocated'), rawSyncLoop('growing')];
  await runMode('sync');
  printTable(cases, raw);
  const targets = checkTargets(cases, raw);
  console.log('');
  for (const t of targets) console.log(`${t.met ? 'MET ' : 'MISS'}  ${t.target}: ${t.measured}`);
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`\nload average ${load} on ${cpus().length} cores (other work on the machine skews every number above)`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync('bench/out/log.json', `${JSON.stringify({ date: new Date().toISOString(), node: process.version, loadAverage: loadavg(), measureMs: MEASURE_MS, cases, raw, targets }, null, 2)}\n`);
  console.log('\nwrote bench/out/log.json');
}

await main();
