// A SIGKILL in the middle of a roll, in storage mode lazy (what a power cut leaves): before the
// new segment is renamed into place, after it (the sealed segment has no index yet) and after
// the sealed segment's index is written. Each time the reopened log must end exactly at the
// last fsynced entry, every sealed segment must end up with its index, and a second reopen
// must scan only the last segment.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStore } from '../src/log/log-store.js';
import type { PauseAt } from './log-roll-kill-child.js';
import { capturingLogger, entry, options, plain, readAll, removeTempDirs, segmentFiles, tempDir } from './log-helpers.js';

afterAll(removeTempDirs);

/** Runs the child until it pauses in roll number `roll`, kills it; returns its last synced index. */
function killDuringRoll(dir: string, pauseAt: PauseAt, roll: number): Promise<number> {
  const viteNode = join('node_modules', 'vite-node', 'vite-node.mjs');
  const child = spawn(process.execPath, [viteNode, 'test/log-roll-kill-child.ts', dir, pauseAt, String(roll)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    let synced = -1;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const paused = /paused \S+ synced (\d+)\n/.exec(output);
      if (paused !== null && synced === -1) {
        synced = Number(paused[1]);
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(synced);
      else reject(new Error(`child exited with ${code} before it was killed: ${output.slice(-500)}`));
    });
  });
}

function openLogged(dir: string): { store: LogStore; scannedSegments: unknown } {
  const { logger, lines } = capturingLogger();
  const store = LogStore.open(options(dir, { segmentBytes: 4096, logger }));
  return { store, scannedSegments: lines.find((line) => line.msg === 'log recovered')?.scannedSegments };
}

describe('log store – SIGKILL during a roll (storage mode lazy)', () => {
  const cases: Array<{ pauseAt: PauseAt; scannedAtFirstOpen: number }> = [
    { pauseAt: 'before-rename', scannedAtFirstOpen: 1 },
    { pauseAt: 'after-rename', scannedAtFirstOpen: 2 },
    { pauseAt: 'after-index', scannedAtFirstOpen: 1 },
  ];
  for (const { pauseAt, scannedAtFirstOpen } of cases) {
    it(`killed ${pauseAt}: recovers the fsynced log and every sealed segment's index`, async () => {
      const dir = tempDir();
      const synced = await killDuringRoll(dir, pauseAt, 3);
      expect(synced).toBeGreaterThan(24);
      const logDir = join(dir, 'log');
      const first = openLogged(logDir);
      expect(first.scannedSegments).toBe(scannedAtFirstOpen);
      expect(first.store.lastIndex()).toBe(synced);
      const held = readAll(first.store);
      expect(plain(held)).toEqual(plain(held.map((e) => entry(e.index, 1 + Math.floor((e.index - 1) / 10), 300))));
      await first.store.close();
      const sealed = segmentFiles(logDir).slice(0, -1);
      expect(sealed.length).toBeGreaterThanOrEqual(2);
      expect(readdirSync(logDir).filter((name) => name.endsWith('.idx')).sort()).toEqual(sealed.map((name) => name.replace('.seg', '.idx')));
      const second = openLogged(logDir);
      expect(second.scannedSegments).toBe(1);
      expect(second.store.lastIndex()).toBe(synced);
      await second.store.close();
    });
  }
});
