// Start-time benchmark (`npm run bench:start-time`): builds a 2 GiB and a 20 MiB log of 64 MiB
// segments directly with LogStore appends (entries of 8–32 KiB, a new term now and then), and
// measures how long LogStore.open takes on each (the median of several runs, page cache warm:
// the files were just written or opened), and how long reading one entry of every sealed
// segment then takes (what loading every segment's offsets at open would have added).
// Then the same for a whole node: a log of broker commands (a topic, then produce commands of
// one 8–32 KiB message), a broker state applied up to its end (so the node replays nothing, as
// after a snapshot) and a one-node config; it times `ledgermq node start` from spawn to its
// first answered `status`, with the segment indexes and without them (the scan of every
// segment the store did before them). The goal (issue 13): start times for the two sizes differ
// by less than 2×. Writes bench/results/start-time.json with the disk's fdatasync latency and
// the load average beside the figures.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureDiskSync } from '../src/bench/disk.js';
import { encodeCommand } from '../src/broker/commands.js';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { clientFor } from '../src/cli/connect.js';
import { parseConfig } from '../src/config/config.js';
import { HardStateStore } from '../src/log/hard-state-store.js';
import { LogStore, type LogStoreOptions } from '../src/log/log-store.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { capturingLogger } from '../test/log-helpers.js';
import { median } from './script.js';

const SEGMENT_BYTES = 64 * 1024 * 1024;
const SIZES_BYTES = [2 * 1024 ** 3, 20 * 1024 ** 2];
const OPEN_RUNS = 7;
const NODE_START_RUNS = 3;
const NODE_START_TIMEOUT_MS = 120_000;
const STATUS_POLL_MS = 10;
/** Entries applied to the broker state per apply() call while building (within its limit). */
const APPLY_BATCH_ENTRIES = 256;
const MIN_ENTRY_BYTES = 8 * 1024;
const MAX_ENTRY_BYTES = 32 * 1024;
const ENTRIES_PER_APPEND = 64;
/** A new term every this many entries: a few term runs per segment, as after leader changes. */
const ENTRIES_PER_TERM = 5_000;
/** Free space demanded beyond the largest log: its spare segment and some room for others. */
const SPARE_DISK_BYTES = 2 * 1024 ** 3;

interface SizeResult {
  targetBytes: number;
  logBytes: number;
  segments: number;
  lastIndex: number;
  buildSeconds: number;
  openMsRuns: number[];
  openMsMedian: number;
  /** From the store's 'log recovered' line: segments opened from their index and scanned. */
  indexedSegments: number | null;
  scannedSegments: number | null;
  /** After open: reading one entry of every sealed segment, which loads their offsets. */
  loadAllOffsetsMs: number;
}

interface NodeStartResult {
  targetBytes: number;
  logBytes: number;
  /** Spawn of `ledgermq node start` to its first answered status, median of the runs. */
  withIndexMsMedian: number;
  withIndexMsRuns: number[];
  /** The same with the .idx files deleted before each start: every segment is scanned. */
  withoutIndexMsMedian: number;
  withoutIndexMsRuns: number[];
}

function storeOptions(dir: string): LogStoreOptions {
  return { dir, segmentBytes: SEGMENT_BYTES, flushMode: 'async', flushIntervalMs: 1000 };
}

/** Payload bytes for entry `index` (8–32 KiB of varied bytes); `makeData` wraps them. */
type MakeData = (index: number, body: Uint8Array) => Uint8Array;

/** Appends entries until the log holds targetBytes; returns the build time in seconds. */
async function buildLog(dir: string, targetBytes: number, makeData: MakeData, termOf: (index: number) => number): Promise<number> {
  const started = performance.now();
  const store = LogStore.open(storeOptions(dir));
  const pool = Buffer.allocUnsafe(MAX_ENTRY_BYTES * 4);
  for (let i = 0; i < pool.length; i++) pool[i] = (i * 2654435761) >>> 24;
  let state = 12345;
  let index = 1;
  while (store.logBytes() < targetBytes) {
    const batch: Entry[] = [];
    for (let i = 0; i < ENTRIES_PER_APPEND; i++, index++) {
      state = (state * 1103515245 + 12345) >>> 0;
      const bytes = MIN_ENTRY_BYTES + (state % (MAX_ENTRY_BYTES - MIN_ENTRY_BYTES + 1));
      const at = state % (pool.length - bytes);
      batch.push({ index, term: termOf(index), type: EntryType.Normal, data: makeData(index, pool.subarray(at, at + bytes)) });
    }
    store.append(batch);
    await store.flush();
  }
  await store.close();
  return (performance.now() - started) / 1000;
}

/** Reads one entry of every segment but the last: the cost of loading all their offsets. */
function loadAllOffsetsMs(store: LogStore, dir: string): number {
  const firsts = readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .map((name) => Number(name.slice(0, 20)))
    .sort((a, b) => a - b)
    .slice(0, -1);
  const started = performance.now();
  for (const first of firsts) store.entries(first, first + 1, 1);
  return performance.now() - started;
}

async function measureOpen(dir: string, targetBytes: number, buildSeconds: number): Promise<SizeResult> {
  const openMsRuns: number[] = [];
  let result: Omit<SizeResult, 'openMsRuns' | 'openMsMedian'> | null = null;
  for (let run = 0; run < OPEN_RUNS; run++) {
    const { logger, lines } = capturingLogger();
    const started = performance.now();
    const store = LogStore.open({ ...storeOptions(dir), logger });
    openMsRuns.push(performance.now() - started);
    const recovered = lines.find((line) => line.msg === 'log recovered');
    const offsetsMs = loadAllOffsetsMs(store, dir);
    result = {
      loadAllOffsetsMs: Math.round(offsetsMs * 10) / 10,
      targetBytes,
      logBytes: store.logBytes(),
      segments: readdirSync(dir).filter((name) => name.endsWith('.seg')).length,
      lastIndex: store.lastIndex(),
      buildSeconds,
      indexedSegments: typeof recovered?.indexedSegments === 'number' ? recovered.indexedSegments : null,
      scannedSegments: typeof recovered?.scannedSegments === 'number' ? recovered.scannedSegments : null,
    };
    await store.close();
  }
  return { ...result!, openMsRuns: openMsRuns.map((ms) => Math.round(ms * 10) / 10), openMsMedian: Math.round(median(openMsRuns) * 10) / 10 };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A one-node cluster's data dir whose log holds broker commands up to targetBytes and whose
 * broker state has applied all of them. Returns the config file's path and the log's size.
 */
async function buildNode(root: string, targetBytes: number): Promise<{ configPath: string; logBytes: number }> {
  const dataDir = join(root, 'n1');
  const logDir = join(dataDir, 'log');
  const topic = encodeCommand({ kind: 'createTopic', topic: 'bench', queues: 4 });
  const makeData: MakeData = (index, body) =>
    index === 1
      ? topic
      : encodeCommand({ kind: 'produce', producerId: 'bench', seq: index - 1, timestampMs: 1_700_000_000_000 + index, messages: [{ msgId: `bench-${index}`, topic: 'bench', queueId: index % 4, body }] });
  await buildLog(logDir, targetBytes, makeData, () => 1);
  const log = LogStore.open(storeOptions(logDir));
  const state = BrokerStateMachine.open({ dir: join(dataDir, 'state'), log });
  for (let from = state.appliedIndex() + 1; from <= log.lastIndex(); from += APPLY_BATCH_ENTRIES) {
    const hiExclusive = Math.min(log.lastIndex() + 1, from + APPLY_BATCH_ENTRIES);
    state.apply(log.entries(from, hiExclusive, Number.MAX_SAFE_INTEGER));
  }
  const logBytes = log.logBytes();
  await state.close();
  await log.close();
  const hardState = HardStateStore.open(join(dataDir, 'meta'));
  await hardState.save({ term: 1, vote: 'n1' });
  await hardState.close();
  const config = {
    clusterId: 'start-time',
    nodes: [{ id: 'n1', host: '127.0.0.1', raftPort: await freePort(), clientPort: await freePort(), dataDir }],
    flush: { mode: 'sync', intervalMs: 100 },
    quorum: 'majority',
    log: { segmentBytes: SEGMENT_BYTES },
  };
  parseConfig(config, 'start-time bench');
  const configPath = join(root, 'cluster.config.json');
  writeFileSync(configPath, JSON.stringify(config));
  return { configPath, logBytes };
}

/** Spawns `ledgermq node start`, returns the ms until it first answers status, then stops it. */
async function timeNodeStart(configPath: string): Promise<number> {
  const config = parseConfig(JSON.parse(readFileSync(configPath, 'utf8')), configPath);
  const client = clientFor(config, 1000);
  const started = performance.now();
  const child = spawn(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}: ${stderr}`);
      if (performance.now() - started > NODE_START_TIMEOUT_MS) throw new Error(`node did not answer status within ${NODE_START_TIMEOUT_MS} ms`);
      const status = await client.callNode('n1', { op: 'status' }, 200).catch(() => null);
      if (status !== null) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, STATUS_POLL_MS));
    }
  } finally {
    client.close();
    child.kill('SIGTERM');
    await exited;
  }
}

async function measureNodeStart(parent: string, targetBytes: number): Promise<NodeStartResult> {
  const root = mkdtempSync(join(parent, 'lmq-start-node-'));
  try {
    const { configPath, logBytes } = await buildNode(root, targetBytes);
    const logDir = join(root, 'n1', 'log');
    const withIndex: number[] = [];
    const withoutIndex: number[] = [];
    for (let run = 0; run < NODE_START_RUNS; run++) {
      withIndex.push(await timeNodeStart(configPath));
      for (const name of readdirSync(logDir)) if (name.endsWith('.idx')) rmSync(join(logDir, name));
      withoutIndex.push(await timeNodeStart(configPath));
    }
    const round = (values: number[]): number[] => values.map((ms) => Math.round(ms));
    return {
      targetBytes,
      logBytes,
      withIndexMsMedian: Math.round(median(withIndex)),
      withIndexMsRuns: round(withIndex),
      withoutIndexMsMedian: Math.round(median(withoutIndex)),
      withoutIndexMsRuns: round(withoutIndex),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function checkFreeSpace(parent: string): void {
  const stats = statfsSync(parent);
  const freeBytes = stats.bavail * stats.bsize;
  const neededBytes = Math.max(...SIZES_BYTES) + SPARE_DISK_BYTES;
  if (freeBytes < neededBytes) {
    process.stderr.write(`start-time bench: ${parent} has ${(freeBytes / 1024 ** 3).toFixed(1)} GiB free, needs ${(neededBytes / 1024 ** 3).toFixed(1)} GiB\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const parent = process.env.LMQ_BENCH_DIR ?? tmpdir();
  checkFreeSpace(parent);
  const disk = measureDiskSync({ parentDir: parent, appendBytes: 4096, maxSamples: 2000, maxDurationMs: 2000 });
  const results: SizeResult[] = [];
  for (const targetBytes of SIZES_BYTES) {
    const dir = mkdtempSync(join(parent, 'lmq-start-time-'));
    try {
      const buildSeconds = await buildLog(dir, targetBytes, (_index, body) => body, (index) => 1 + Math.floor(index / ENTRIES_PER_TERM));
      const result = await measureOpen(dir, targetBytes, buildSeconds);
      process.stdout.write(`${(targetBytes / 1024 ** 2).toFixed(0)} MiB log: ${result.segments} segments, open median ${result.openMsMedian} ms (runs ${result.openMsRuns.join(', ')})\n`);
      results.push(result);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const nodeStart: NodeStartResult[] = [];
  for (const targetBytes of SIZES_BYTES) {
    const result = await measureNodeStart(parent, targetBytes);
    process.stdout.write(`${(targetBytes / 1024 ** 2).toFixed(0)} MiB node: first status after ${result.withIndexMsMedian} ms (runs ${result.withIndexMsRuns.join(', ')}); without indexes ${result.withoutIndexMsMedian} ms\n`);
    nodeStart.push(result);
  }
  const [large, small] = results;
  const report = {
    generatedAt: new Date().toISOString(),
    segmentBytes: SEGMENT_BYTES,
    entryBytes: [MIN_ENTRY_BYTES, MAX_ENTRY_BYTES],
    diskFdatasync: { p50Ms: disk.p50Ms, p99Ms: disk.p99Ms, syncsPerSec: Math.round(disk.syncsPerSec) },
    loadAverage: loadavg().map((load) => Math.round(load * 100) / 100),
    openRatioLargeToSmall: Math.round((large!.openMsMedian / small!.openMsMedian) * 100) / 100,
    nodeStartRatioLargeToSmall: Math.round((nodeStart[0]!.withIndexMsMedian / nodeStart[1]!.withIndexMsMedian) * 100) / 100,
    results,
    nodeStart,
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/start-time.json', `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`open time 2 GiB / 20 MiB: ${report.openRatioLargeToSmall}×; disk fdatasync p50 ${disk.p50Ms} ms, load ${report.loadAverage.join(' ')}\n`);
}

await main();
