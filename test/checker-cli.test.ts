// Runs the built CLI (`npm test` runs tsc first, so dist/ is current) on real files.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../src/checker/index.js';
import { drain, history, send } from './checker-helpers.js';

const Q = 'orders/1';
const dir = mkdtempSync(join(tmpdir(), 'lmq-check-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeHistory(name: string, events: HistoryEvent[] | string): string {
  const path = join(dir, name);
  writeFileSync(path, typeof events === 'string' ? events : events.map((e) => JSON.stringify(e)).join('\n') + '\n');
  return path;
}

function check(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/ledgermq', 'check', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('check command – exit codes and output', () => {
  it('a valid history exits 0 and prints valid JSON with --json', () => {
    const path = writeHistory('valid.jsonl', history(send(0, Q, 'a', 0), send(1, Q, 'b', 1), drain(9, Q, [[0, 'a'], [1, 'b']])));
    const result = check(path, '--json');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({ valid: true, verdict: 'valid', counts: { lost: 0, reorder: 0 }, stats: { sends: 2, acked: 2, drains: 1 } });
  });

  it('a history with a lost message exits 1 and names it', () => {
    const path = writeHistory('lost.jsonl', history(send(0, Q, 'a', 0), send(1, Q, 'b', 1), drain(9, Q, [[0, 'a']])));
    const json = check(path, '--json');
    expect(json.status).toBe(1);
    const report = JSON.parse(json.stdout);
    expect(report.valid).toBe(false);
    expect(report.counts.lost).toBe(1);
    expect(report.anomalies.lost[0]).toMatchObject({ body: 'b', queue: Q, ackedOffset: 1, send: { line: 4, process: 1 } });
    const human = check(path);
    expect(human.status).toBe(1);
    expect(human.stdout).toMatch(/^INVALID: 1 anomaly\n[^]*lost: 1\n {4}- send "b" acked at orders\/1 offset 1/);
  });

  it('a queue never drained exits 1 with verdict unknown', () => {
    const result = check(writeHistory('undrained.jsonl', history(send(0, Q, 'a', 0))), '--json');
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ valid: false, verdict: 'unknown', undrainedQueues: [Q] });
  });

  it('a malformed history exits 2 with one line naming the line', () => {
    const path = writeHistory('bad.jsonl', `${JSON.stringify(history(send(0, Q, 'a', 0))[0])}\n{"type":"ok","process":7,"f":"send","value":{"queue":"q","body":"x","offset":0},"time":9}\n`);
    const result = check(path, '--json');
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`ledgermq: ${path}:2: ok send by process 7 has no invoke before it\n`);
  });

  it('an empty history is valid with no operations', () => {
    const result = check(writeHistory('empty.jsonl', ''));
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('VALID: no operations in the history\n');
  });
});
