import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BrokerStateMachine } from '../src/broker/state-machine.js';
import { applyRange, dumpState, MemoryLog, tempDir, workload, WORKLOAD_KEYS } from './broker-helpers.js';

const SEED = 20240601;
const ENTRIES = 400;

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
const open: BrokerStateMachine[] = [];

function openAt(name: string): BrokerStateMachine {
  const machine = BrokerStateMachine.open({ dir: join(temp.dir, name), log });
  open.push(machine);
  return machine;
}

/** One uninterrupted run over the whole log: the reference every other run must equal. */
function reference(): { digest: string; dump: unknown; results: unknown[] } {
  const machine = openAt('reference');
  const results = applyRange(machine, log, 1, ENTRIES, 7);
  return { digest: machine.stateDigest(), dump: dumpState(machine, WORKLOAD_KEYS), results };
}

beforeEach(() => {
  temp = tempDir('lmq-broker-recovery-');
  log = new MemoryLog();
  for (const command of workload(SEED, ENTRIES)) log.append(command);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((machine) => machine.close()));
  temp.cleanup();
});

describe('broker state machine – recovery', () => {
  it('the workload exercises noops, produces, duplicates and commits', () => {
    const { results } = reference();
    const count = (predicate: (r: Record<string, unknown>) => boolean): number => results.filter((r) => predicate(r as Record<string, unknown>)).length;
    expect(count((r) => r['kind'] === 'noop')).toBeGreaterThan(5);
    expect(count((r) => r['kind'] === 'produce' && r['duplicate'] === false)).toBeGreaterThan(200);
    expect(count((r) => r['kind'] === 'produce' && r['duplicate'] === true)).toBeGreaterThan(10);
    expect(count((r) => r['kind'] === 'commitOffsets' && r['ok'] === true)).toBeGreaterThan(20);
  });

  it('reopened after a clean close at a prefix, continues to the same state and results', async () => {
    const expected = reference();
    let machine = openAt('resumed');
    const prefixResults = applyRange(machine, log, 1, 173, 10);
    expect(machine.appliedIndex()).toBe(173);
    await machine.close();
    machine = openAt('resumed');
    expect(machine.appliedIndex()).toBe(173);
    const restResults = applyRange(machine, log, 174, ENTRIES, 13);
    expect([...prefixResults, ...restResults]).toEqual(expected.results);
    expect(machine.stateDigest()).toBe(expected.digest);
    expect(dumpState(machine, WORKLOAD_KEYS)).toEqual(expected.dump);
  });

  it('rebuilt from the log after its directory is deleted, is identical', async () => {
    const expected = reference();
    let machine = openAt('rebuilt');
    applyRange(machine, log, 1, ENTRIES, 50);
    await machine.close();
    rmSync(join(temp.dir, 'rebuilt'), { recursive: true });
    machine = openAt('rebuilt');
    expect(machine.appliedIndex()).toBe(0);
    expect(machine.topics()).toEqual([]);
    const results = applyRange(machine, log, 1, ENTRIES, 1);
    expect(results).toEqual(expected.results);
    expect(machine.stateDigest()).toBe(expected.digest);
    expect(dumpState(machine, WORKLOAD_KEYS)).toEqual(expected.dump);
  });

  async function crashAndRecover(maxBufferedRecords: number): Promise<{ lastApplied: number; recovered: number }> {
    const crashEntries = 3000;
    const batchEntries = 10;
    const crashLog = new MemoryLog();
    for (const command of workload(SEED, crashEntries)) crashLog.append(command);
    const dir = join(temp.dir, `crashed-${maxBufferedRecords}`);
    const { lastApplied, lastStarted } = await runChildUntilKilled(dir, crashEntries, batchEntries, maxBufferedRecords, 600);

    log = crashLog;
    const machine = openAt(`crashed-${maxBufferedRecords}`);
    const recovered = machine.appliedIndex();
    expect(recovered % batchEntries).toBe(0); // lmdb holds whole apply() calls only
    expect(recovered).toBeLessThan(crashEntries); // killed mid-run, not after the end
    expect(recovered).toBeLessThanOrEqual(lastStarted); // nothing the child never applied
    const replay = openAt(`replay-${maxBufferedRecords}`);
    applyRange(replay, crashLog, 1, recovered, 100);
    expect(machine.stateDigest()).toBe(replay.stateDigest());
    applyRange(machine, crashLog, recovered + 1, crashEntries, 100);
    applyRange(replay, crashLog, recovered + 1, crashEntries, 100);
    expect(machine.stateDigest()).toBe(replay.stateDigest());
    return { lastApplied, recovered };
  }

  it('killed with SIGKILL while applying through to lmdb, keeps every reported batch and replays exactly', async () => {
    const { lastApplied, recovered } = await crashAndRecover(0);
    expect(recovered).toBeGreaterThanOrEqual(lastApplied);
  });

  it('killed with SIGKILL while applying with buffered writes, recovers to an earlier batch boundary and replays exactly', async () => {
    const { recovered } = await crashAndRecover(200);
    expect(recovered).toBeGreaterThan(0); // the buffer was written to lmdb during the run
  });
});

describe('broker state machine – state guard', () => {
  const markerOf = (dir: string): { bootId: string; clean: boolean } => JSON.parse(readFileSync(join(dir, 'broker-state.marker'), 'utf8'));

  async function appliedAfterReopen(marker: { bootId: string; clean: boolean } | null): Promise<number> {
    const dir = join(temp.dir, 'guarded');
    const machine = openAt('guarded');
    applyRange(machine, log, 1, 50, 10);
    expect(markerOf(dir).clean).toBe(false);
    await machine.close();
    expect(markerOf(dir)).toEqual({ bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), clean: true });
    if (marker === null) rmSync(join(dir, 'broker-state.marker'));
    else writeFileSync(join(dir, 'broker-state.marker'), JSON.stringify({ ...markerOf(dir), ...marker }));
    return openAt('guarded').appliedIndex();
  }

  it('keeps a state closed cleanly, even across a reboot', async () => {
    expect(await appliedAfterReopen({ bootId: 'another-boot', clean: true })).toBe(50);
  });

  it('keeps a state left unclean by a process crash within this boot', async () => {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    expect(await appliedAfterReopen({ bootId, clean: false })).toBe(50);
  });

  it('discards a state left unclean before a reboot, to rebuild it from the log', async () => {
    expect(await appliedAfterReopen({ bootId: 'another-boot', clean: false })).toBe(0);
  });

  it('discards a state without a marker', async () => {
    expect(await appliedAfterReopen(null)).toBe(0);
  });
});

/**
 * Runs the child until it reports at least `killAfterIndex` applied, then SIGKILLs it mid-run.
 * The child runs on while the signal is on its way, so the verdict reads its reports to the end
 * of its output: the last batch it finished applying, and the last it started.
 */
function runChildUntilKilled(
  dir: string,
  entries: number,
  batchEntries: number,
  maxBufferedRecords: number,
  killAfterIndex: number,
): Promise<{ lastApplied: number; lastStarted: number }> {
  // vite-node runs the TypeScript child in its own process, so SIGKILL hits the applier itself.
  const viteNode = join('node_modules', 'vite-node', 'vite-node.mjs');
  const child = spawn(process.execPath, [viteNode, 'test/broker-crash-child.ts', dir, String(SEED), String(entries), String(batchEntries), String(maxBufferedRecords)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lastOf = (output: string, verb: string): number => Math.max(0, ...[...output.matchAll(new RegExp(`${verb} (\\d+)\n`, 'g'))].map((match) => Number(match[1])));
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (lastOf(output, 'applied') >= killAfterIndex || output.includes('done')) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ lastApplied: lastOf(output, 'applied'), lastStarted: lastOf(output, 'applying') });
      else reject(new Error(`crash child exited with ${code} before it was killed: ${output.slice(-500)}`));
    });
  });
}
