// Short chaos runs of the consumption workloads on real processes (sync flush, majority
// quorum, kill and pause): each history must check valid and must really exercise what it is
// there to judge — retries that came back and dead letters, orderly suspends and consumers
// killed mid-listener, delayed sends placed when due.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChaosWorkloadKind, runChaos } from '../src/chaos/runner.js';
import type { HistoryEvent } from '../src/checker/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-chaos-consumption-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recordedHistory(path: string): HistoryEvent[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as HistoryEvent);
}

const quickTiming = { quietMinMs: 300, quietMaxMs: 1_000, holdMinMs: 1_000, holdMaxMs: 2_000 };

async function run(workloadKind: ChaosWorkloadKind, seed: number): Promise<HistoryEvent[]> {
  const outDir = join(dir, workloadKind);
  const result = await runChaos({ durationS: 8, workloadKind, nemeses: ['kill', 'pause'], seed, flush: 'sync', quorum: 'majority', outDir, producers: 2, timing: quickTiming });
  expect(result.report.anomalies).toEqual(Object.fromEntries(Object.keys(result.report.counts).map((k) => [k, []])));
  expect(result.verdict).toBe('valid');
  expect(result.crashedNodes).toEqual([]);
  expect(result.faults).toBeGreaterThanOrEqual(1);
  return recordedHistory(result.historyPath);
}

const consumes = (events: HistoryEvent[]) => events.filter((e): e is Extract<HistoryEvent, { f: 'consume'; type: 'ok' }> => e.f === 'consume' && e.type === 'ok');

describe('chaos – consumption workloads are valid under kill and pause', () => {
  it('retry: failed deliveries come back from the retry queue and the DLQ holds those past the limit', async () => {
    const events = await run('retry', 11);
    const results = consumes(events).map((e) => e.value.result);
    expect(results).toContain('RECONSUME_LATER');
    expect(consumes(events).some((e) => e.value.reconsumeTimes > 0 && e.value.queue.startsWith('%RETRY%'))).toBe(true);
    const dlq = events.find((e) => e.f === 'dlq' && e.type === 'ok');
    expect(dlq !== undefined && dlq.f === 'dlq' && dlq.type === 'ok' && dlq.value.messages.length > 0).toBe(true);
  }, 120_000);

  it('orderly: suspended deliveries retried in place, and consumers killed while the queues move', async () => {
    const events = await run('orderly', 12);
    expect(consumes(events).every((e) => e.value.orderly === true)).toBe(true);
    expect(consumes(events).map((e) => e.value.result)).toContain('SUSPEND');
  }, 120_000);

  it('simple: unacked messages come back one attempt later, stale acks are refused, and those past the limit are dead-lettered', async () => {
    const events = await run('simple', 15);
    const received = events.flatMap((e) => (e.f === 'receive' && e.type === 'ok' ? e.value.messages : []));
    expect(received.some((m) => m.attempt === 1)).toBe(true);
    expect(received.some((m) => m.attempt > 1)).toBe(true);
    expect(events.some((e) => e.f === 'ack' && e.type === 'ok')).toBe(true);
    expect(events.some((e) => e.f === 'dlq' && e.type === 'ok')).toBe(true);
  }, 120_000);

  it('tx: transactions committed, rolled back and ended by check-back, all or nothing visible', async () => {
    const events = await run('tx', 16);
    const ends = events.filter((e) => e.f === 'txend' && e.type === 'ok');
    expect(ends.some((e) => e.f === 'txend' && e.value.end === 'commit' && e.value.by === 'producer')).toBe(true);
    expect(ends.some((e) => e.f === 'txend' && e.value.end === 'rollback' && e.value.by === 'producer')).toBe(true);
    expect(ends.some((e) => e.f === 'txend' && e.value.by === 'check')).toBe(true);
  }, 120_000);

  it('filter: consumers subscribed to "a || b" (odd queues: SQL92 "level BETWEEN 1 AND 2") read only those tags and skip the rest', async () => {
    const events = await run('filter', 17);
    const tagOf = new Map(events.flatMap((e) => (e.f === 'send' && e.type === 'invoke' ? [[e.value.body, e.value.tag]] : [])));
    const polled = events.flatMap((e) => (e.f === 'poll' && e.type === 'ok' ? e.value.messages.map((m) => tagOf.get(m.body)) : []));
    expect(new Set(polled)).toEqual(new Set(['a', 'b']));
    expect([...tagOf.values()]).toContain('c');
    expect(events.some((e) => e.f === 'poll' && e.type === 'ok' && e.value.queue === 'chaos/1' && e.value.messages.length > 0)).toBe(true); // the SQL subscriber's
  }, 120_000);

  it('grow: the topic grows from 3 to 5 queues mid-run, keys move to the new queues and are read there', async () => {
    const events = await run('grow', 18);
    const sends = events.filter((e) => e.f === 'send');
    expect(sends.every((e) => e.type === 'ok' || e.value.topic === 'chaos')).toBe(true);
    const storedIn = new Set(sends.flatMap((e) => (e.type === 'ok' ? [e.value.queue] : [])));
    expect(storedIn).toEqual(new Set(['chaos/0', 'chaos/1', 'chaos/2', 'chaos/3', 'chaos/4']));
    expect(events.some((e) => e.f === 'poll' && e.type === 'ok' && e.value.queue === 'chaos/4' && e.value.messages.length > 0)).toBe(true);
  }, 120_000);

  it('delay: delayed sends are placed after they are due, with their store times in the reads', async () => {
    const events = await run('delay', 13);
    const delayed = events.filter((e) => e.f === 'send' && e.type === 'invoke' && (e.value.delayMs ?? 0) > 0);
    expect(delayed.length).toBeGreaterThan(0);
    expect(events.some((e) => e.f === 'leader' && e.type === 'ok')).toBe(true);
  }, 120_000);
});

describe('chaos – a planted bug is caught', () => {
  it('retry consumers that drop failed deliveries: the run is invalid with lost-retry', async () => {
    const outDir = join(dir, 'plant-lost-retry');
    const result = await runChaos({ durationS: 5, workloadKind: 'retry', plant: 'lost-retry', nemeses: ['kill'], seed: 14, flush: 'sync', quorum: 'majority', outDir, producers: 2, timing: quickTiming });
    expect(result.verdict).toBe('invalid');
    expect(result.anomalies['lost-retry']).toBeGreaterThan(0);
    expect(result.crashedNodes).toEqual([]);
  }, 120_000);

  it('refuses a plant under another workload with exit 2', () => {
    const cli = spawnSync(process.execPath, ['bin/ledgermq', 'chaos', '--duration', '5', '--plant', 'lost-retry', '--workload', 'delay'], { encoding: 'utf8', timeout: 30_000 });
    expect(cli.status).toBe(2);
    expect(cli.stderr).toContain('--plant lost-retry runs under --workload retry, not delay; leave --workload out');
  });
});
