// `chaos --client rocketmq`: the simple workload's producers and consumers speak RocketMQ 5's
// gRPC to the nodes' endpoints (src/chaos/rmq-client.ts) on real processes under kill and pause;
// the history of what those clients saw must check valid and really hold sends, receives and
// acks — and a planted client bug must be caught from the same kind of history.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { definiteFailure } from '../src/chaos/rmq-client.js';
import { runChaos } from '../src/chaos/runner.js';
import type { HistoryEvent } from '../src/checker/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-chaos-rocketmq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recordedHistory(path: string): HistoryEvent[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as HistoryEvent);
}

const quickTiming = { quietMinMs: 300, quietMaxMs: 1_000, holdMinMs: 1_000, holdMaxMs: 2_000 };

describe('chaos – RocketMQ 5 clients through the gRPC endpoint', () => {
  it('simple workload under kill and pause: valid, with ok sends at queue 0, receives (some redelivered) and acks', async () => {
    const result = await runChaos({
      durationS: 8, workloadKind: 'simple', client: 'rocketmq', nemeses: ['kill', 'pause'], seed: 21, flush: 'sync', quorum: 'majority', outDir: join(dir, 'valid'), producers: 2, timing: quickTiming,
    });
    expect(result.report.anomalies).toEqual(Object.fromEntries(Object.keys(result.report.counts).map((k) => [k, []])));
    expect(result.verdict).toBe('valid');
    expect(result.crashedNodes).toEqual([]);
    expect(result.faults).toBeGreaterThanOrEqual(1);
    const events = recordedHistory(result.historyPath);
    const okSends = events.filter((e) => e.f === 'send' && e.type === 'ok');
    expect(okSends.length).toBeGreaterThan(20);
    expect(okSends.every((e) => e.f === 'send' && e.type === 'ok' && 'queue' in e.value && e.value.queue === 'chaos/0' && typeof e.value.offset === 'number')).toBe(true);
    const received = events.flatMap((e) => (e.f === 'receive' && e.type === 'ok' ? e.value.messages : []));
    expect(received.some((m) => m.attempt === 1)).toBe(true);
    expect(received.some((m) => m.attempt > 1)).toBe(true);
    expect(events.filter((e) => e.f === 'ack' && e.type === 'ok').length).toBeGreaterThan(10);
    expect(events.some((e) => e.f === 'dlq' && e.type === 'ok')).toBe(true);
    expect(readFileSync(join(result.outDir, 'report.txt'), 'utf8')).toContain('RocketMQ 5 clients over gRPC');
  }, 150_000);

  it('a planted client bug: acks recorded as confirmed but never sent are caught as ack-lost', async () => {
    const result = await runChaos({
      durationS: 6, workloadKind: 'simple', client: 'rocketmq', plant: 'ack-lost', nemeses: ['pause'], seed: 22, flush: 'sync', quorum: 'majority', outDir: join(dir, 'plant'), producers: 1, timing: quickTiming,
    });
    expect(result.verdict).toBe('invalid');
    expect(result.anomalies['ack-lost']).toBeGreaterThan(0);
  }, 150_000);

  it('only outcomes that prove nothing happened count as failures', () => {
    expect(definiteFailure(40013)).toBe(true); // a stale receipt
    expect(definiteFailure(42900)).toBe(true); // overloaded, refused before the log
    expect(definiteFailure(50002)).toBe(false); // no leader in time: may have been stored
    expect(definiteFailure(50400)).toBe(false); // LMQ_TIMEOUT / LMQ_LEADERSHIP_LOST
    expect(definiteFailure(40800)).toBe(false); // a request timeout
    expect(definiteFailure(50000)).toBe(false); // an internal error of unknown kind
  });

  it('the CLI refuses --client rocketmq with a workload the endpoint cannot serve (exit 2, one line)', () => {
    const run = spawnSync(process.execPath, ['bin/ledgermq', 'chaos', '--duration', '5', '--client', 'rocketmq', '--workload', 'retry'], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('--client rocketmq runs --workload simple, not retry');
  }, 90_000);
});
