// Short chaos runs on real processes, one per nemesis (sync flush, majority quorum): the
// history they record must check valid, faults must really have been injected, and the run
// must leave its files behind and no process running.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../src/chaos/runner.js';
import type { NemesisKind } from '../src/chaos/nemesis.js';
import { checkHistoryFile } from '../src/checker/index.js';

const dir = mkdtempSync(join(tmpdir(), 'lmq-chaos-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Faster rounds than the CLI's defaults, so a few seconds hold at least one whole fault. */
const quickTiming = { quietMinMs: 300, quietMaxMs: 1_000, holdMinMs: 1_000, holdMaxMs: 2_000 };

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('chaos – short runs per nemesis are valid', () => {
  it.each<NemesisKind>(['kill', 'pause'])('%s', async (nemesis) => {
    const outDir = join(dir, nemesis);
    const result = await runChaos({ durationS: 6, nemeses: [nemesis], seed: 7, flush: 'sync', quorum: 'majority', outDir, producers: 3, timing: quickTiming });
    expect(result.report.undrainedQueues).toEqual([]);
    expect(result.verdict).toBe('valid');
    expect(result.crashedNodes).toEqual([]);
    expect(result.valid).toBe(true);
    expect(result.faults).toBeGreaterThanOrEqual(1);
    const saved = JSON.parse(readFileSync(result.reportPath, 'utf8'));
    expect(saved.faults.length).toBe(result.faults);
    expect(saved.faults.every((f: { kind: string; end: number | null }) => f.kind === nemesis && f.end !== null)).toBe(true);
    expect(result.acked).toBeGreaterThan(0);
    expect(result.report.stats.drains).toBe(3);
    // The written history is the one that was checked.
    expect((await checkHistoryFile(result.historyPath)).counts).toEqual(result.report.counts);
    expect(readFileSync(result.timelinePath, 'utf8')).toContain('<svg');
    // Every node process the run started is gone; a kill run restarted at least one.
    expect(result.nodePids.length).toBeGreaterThanOrEqual(nemesis === 'kill' ? 4 : 3);
    expect(result.nodePids.filter(isAlive)).toEqual([]);
    expect(existsSync(join(outDir, 'nodes', 'n1.log'))).toBe(true);
    // Only the power nemesis turns storage mode lazy on.
    expect(readFileSync(join(outDir, 'nodes', 'n1.log'), 'utf8')).not.toContain('UNSAFE STORAGE MODE');
  }, 60_000);

  it('partition with retention deleting messages during the run, through the CLI with --json', async () => {
    const outDir = join(dir, 'partition');
    const args = ['bin/ledgermq', 'chaos', '--duration', '6', '--nemesis', 'partition', '--seed', '3', '--retention-max-bytes', '131072', '--message-bytes', '2048', '--out', outDir, '--json'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(stderr).toContain('seed 3');
    expect(stderr).toMatch(/fault: (isolate|cut links)/);
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({ valid: true, verdict: 'valid', seed: 3, anomalies: { lost: 0, reorder: 0 }, crashedNodes: [], history: join(outDir, 'history.jsonl') });
    expect(summary.faults).toBeGreaterThanOrEqual(1);
    expect(summary.acked).toBeGreaterThan(0);
    // Retention really deleted acked messages, and the checker judged the rest for loss.
    expect(summary.retainedAwaySends.count).toBeGreaterThan(0);
    expect(summary.retainedAwaySends.count).toBeLessThan(summary.acked);
    expect(stderr).toContain('--retention-max-bytes 131072 --message-bytes 2048');
    expect(code).toBe(0);
    expect(existsSync(join(outDir, 'timeline.svg'))).toBe(true);
  }, 60_000);

  it('refuses an unknown nemesis with exit 2', () => {
    const result = spawnSync(process.execPath, ['bin/ledgermq', 'chaos', '--duration', '5', '--nemesis', 'kill,flood'], { encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('--nemesis takes a comma-separated list of kill, pause, partition, power, not "kill,flood"');
  });
});

describe('chaos – power cuts in storage mode lazy', () => {
  it('sync flush with majority quorum stays valid through cuts of all nodes', async () => {
    const outDir = join(dir, 'power');
    const result = await runChaos({ durationS: 8, nemeses: ['power'], seed: 11, flush: 'sync', quorum: 'majority', outDir, producers: 3, timing: quickTiming });
    const saved = JSON.parse(readFileSync(result.reportPath, 'utf8'));
    expect(saved.faults.every((f: { kind: string; end: number | null }) => f.kind === 'power' && f.end !== null)).toBe(true);
    // The run's first two cuts take every node; each cut takes at least a majority.
    expect(saved.faults[0].nodes).toEqual(['n1', 'n2', 'n3']);
    if (saved.faults.length > 1) expect(saved.faults[1].nodes).toEqual(['n1', 'n2', 'n3']);
    expect(saved.faults.every((f: { nodes: string[] }) => f.nodes.length >= 2)).toBe(true);
    expect(result.report.undrainedQueues).toEqual([]);
    expect(result.verdict).toBe('valid');
    expect(result.crashedNodes).toEqual([]);
    expect(result.powerLoss).toMatchObject({ lost: 0, afterLastCut: 0 });
    expect(result.powerLoss!.cuts.length).toBe(result.faults);
    expect(result.lossExplained).toBeNull();
    expect(result.acked).toBeGreaterThan(0);
    // Every node ran in storage mode lazy, and said so loudly at every start.
    for (const id of ['n1', 'n2', 'n3']) expect(readFileSync(join(outDir, 'nodes', `${id}.log`), 'utf8')).toContain('UNSAFE STORAGE MODE lazy');
    expect(result.nodePids.length).toBeGreaterThanOrEqual(6);
    expect(result.nodePids.filter(isAlive)).toEqual([]);
  }, 90_000);
});

describe('chaos – leader quorum is caught losing acknowledged writes', () => {
  it('killing a leader whose replication stalled loses acked writes, and the run says so', async () => {
    const outDir = join(dir, 'leader');
    const timing = { ...quickTiming, quietMinMs: 1_000, leaderTargetChance: 1, laggingKillChance: 1, laggingKillMinMs: 200, laggingKillMaxMs: 300 };
    const result = await runChaos({ durationS: 4, nemeses: ['kill'], seed: 1, flush: 'sync', quorum: 'leader', outDir, producers: 3, timing });
    expect(result.report.undrainedQueues).toEqual([]);
    expect(result.valid).toBe(false);
    expect(result.anomalies.lost).toBeGreaterThan(0);
    expect(result.report.anomalies.lost[0]!.description).toContain('without an offset');
  }, 60_000);
});
