// Times the checker on a large history from the correct queue model: by default 100,000
// sends over 8 queues with 16 producers and 8 consumers, then a drain of every queue.
// Run after a build: `node dist/bench/checker-bench.js [sends] [seed]`.
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHistoryFile, type HistoryEvent } from '../src/checker/index.js';
import { QueueModel, type Choose } from '../test/checker-model.js';

/** Deterministic 32-bit generator (mulberry32): the same seed writes the same history. */
function seededChooser(seed: number): Choose {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return n <= 1 ? 0 : (((t ^ (t >>> 14)) >>> 0) % n);
  };
}

const writeBufferCharsMax = 1 << 20;

function writeHistory(path: string, sends: number, seed: number): number {
  const fd = openSync(path, 'w');
  let buffer: string[] = [];
  let bufferedChars = 0;
  let events = 0;
  const emit = (event: HistoryEvent): void => {
    const line = JSON.stringify(event) + '\n';
    buffer.push(line);
    bufferedChars += line.length;
    events += 1;
    if (bufferedChars < writeBufferCharsMax) return;
    writeSync(fd, buffer.join(''));
    buffer = [];
    bufferedChars = 0;
  };
  const shape = { queues: 8, producers: 16, consumers: 8, stepsMax: Number.MAX_SAFE_INTEGER, sendsMax: sends, pollBatchMax: 32, retention: false };
  new QueueModel(shape, seededChooser(seed), emit).run();
  writeSync(fd, buffer.join(''));
  closeSync(fd);
  return events;
}

async function main(): Promise<void> {
  const sends = Number(process.argv[2] ?? 100_000);
  const seed = Number(process.argv[3] ?? 1);
  const dir = mkdtempSync(join(tmpdir(), 'lmq-checker-bench-'));
  try {
    const path = join(dir, 'history.jsonl');
    const events = writeHistory(path, sends, seed);
    const megabytes = statSync(path).size / 1e6;
    const heapBeforeMb = process.memoryUsage().heapUsed / 1e6;
    const startedMs = performance.now();
    const report = await checkHistoryFile(path);
    const elapsedMs = performance.now() - startedMs;
    const s = report.stats;
    console.log(`history: ${events} events, ${megabytes.toFixed(1)} MB, seed ${seed}`);
    console.log(`  ${s.sends} sends (${s.acked} ok, ${s.failed} fail, ${s.info} info), ${s.polls} polls, ${s.drains} drains, ${s.messagesRead} messages read`);
    console.log(`check: ${report.verdict} in ${(elapsedMs / 1000).toFixed(2)} s (${Math.round(events / (elapsedMs / 1000))} events/s)`);
    console.log(`  heap after check: ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB (before: ${heapBeforeMb.toFixed(0)} MB), rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
    if (!report.valid) process.exitCode = 1; // the model is correct: anything else is a checker bug
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
