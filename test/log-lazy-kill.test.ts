// Storage mode lazy on a real process: a child appends, fsyncs and saves hard state, then
// writes a tail it never fsyncs and is SIGKILLed. In mode lazy the reopened log must end at the
// last fsynced entry — every synced entry kept, the unsynced tail lost as a power cut would
// lose it; in mode os the same kill keeps the tail (it was in the page cache), which is why
// SIGKILL alone cannot reveal an acknowledgement sent before its fdatasync.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StorageMode } from '../src/log/file-io.js';
import { HardStateStore } from '../src/log/hard-state-store.js';
import { LogStore } from '../src/log/log-store.js';
import { entry, options, plain, readAll, removeTempDirs, tempDir } from './log-helpers.js';

afterAll(removeTempDirs);

interface ChildReport {
  syncedIndex: number;
  savedTerm: number;
  tailIndex: number;
}

function runChildUntilKilled(dir: string, storage: StorageMode, rounds: number): Promise<ChildReport> {
  const viteNode = join('node_modules', 'vite-node', 'vite-node.mjs');
  const child = spawn(process.execPath, [viteNode, 'test/log-lazy-child.ts', dir, storage, String(rounds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const report: ChildReport = { syncedIndex: 0, savedTerm: 0, tailIndex: 0 };
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const match of output.matchAll(/synced (\d+) term (\d+)\n/g)) {
        report.syncedIndex = Math.max(report.syncedIndex, Number(match[1]));
        report.savedTerm = Math.max(report.savedTerm, Number(match[2]));
      }
      const tail = /tail (\d+)\n/.exec(output);
      if (tail !== null) {
        report.tailIndex = Number(tail[1]);
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(report);
      else reject(new Error(`child exited with ${code} before it was killed: ${output.slice(-500)}`));
    });
  });
}

async function reopened(dir: string): Promise<{ lastIndex: number; term: number; entriesMatch: boolean }> {
  const log = LogStore.open(options(join(dir, 'log')));
  const held = readAll(log);
  const expected = held.map((e) => entry(e.index, 1, 300));
  const hardState = HardStateStore.open(join(dir, 'meta'));
  const result = { lastIndex: log.lastIndex(), term: hardState.load().term, entriesMatch: JSON.stringify(plain(held)) === JSON.stringify(plain(expected)) };
  await log.close();
  await hardState.close();
  return result;
}

describe('log store – storage mode lazy on a SIGKILLed process', () => {
  it('lazy: keeps every fsynced entry and hard state, loses the unsynced tail', async () => {
    const dir = tempDir();
    const report = await runChildUntilKilled(dir, 'lazy', 40);
    expect(report.syncedIndex).toBe(280);
    expect(report.tailIndex).toBe(330);
    const after = await reopened(dir);
    expect(after.lastIndex).toBe(report.syncedIndex);
    expect(after.entriesMatch).toBe(true);
    expect(after.term).toBe(report.savedTerm);
  });

  it('os: the same kill keeps the tail, because the page cache survives it', async () => {
    const dir = tempDir();
    const report = await runChildUntilKilled(dir, 'os', 40);
    const after = await reopened(dir);
    expect(after.lastIndex).toBe(report.tailIndex);
    expect(after.entriesMatch).toBe(true);
    expect(after.term).toBe(report.savedTerm);
  });
});
