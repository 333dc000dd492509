// A SIGKILL at each step of an install, in storage mode lazy (what a power cut leaves): while
// the staging is written, before and after the old log is renamed aside, after the staging is
// renamed into place, and while the replaced log is removed. Before the staging's rename the
// reopened log must be exactly the old log, from then on exactly the window — never a mix — and
// open must leave no staging or replaced log behind, each sealed segment with its index. A
// second open finds the same log, and appends continue after it.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStore } from '../src/log/log-store.js';
import type { InstallPauseAt } from './log-install-kill-child.js';
import { entries, options, plain, readAll, removeTempDirs, segmentFiles, tempDir, windowEntries } from './log-helpers.js';
import { expectInstallSettled } from './log-install-helpers.js';

afterAll(removeTempDirs);

const OLD_LAST = 90;
const WINDOW = { firstIndex: 40, prevTerm: 2, lastIndex: 160 };

function killDuringInstall(dir: string, pauseAt: InstallPauseAt): Promise<void> {
  const viteNode = join('node_modules', 'vite-node', 'vite-node.mjs');
  const args = [dir, pauseAt, ...[OLD_LAST, WINDOW.firstIndex, WINDOW.prevTerm, WINDOW.lastIndex].map(String)];
  const child = spawn(process.execPath, [viteNode, 'test/log-install-kill-child.ts', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(`paused ${pauseAt}\n`)) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child exited with ${code} before it was killed: ${output.slice(-500)}`));
    });
  });
}

const oldLog = entries(1, OLD_LAST, 1, 300);
const newLog = windowEntries(WINDOW.firstIndex, WINDOW.lastIndex, WINDOW.prevTerm);


describe('log store – SIGKILL during an install (storage mode lazy)', () => {
  // leftBehind: which of log, log.install and log.old the kill leaves (the state open must settle).
  const cases: Array<{ pauseAt: InstallPauseAt; leftBehind: string[]; opensAs: 'old' | 'new' }> = [
    { pauseAt: 'staging-write', leftBehind: ['log', 'log.install'], opensAs: 'old' },
    { pauseAt: 'before-aside', leftBehind: ['log', 'log.install'], opensAs: 'old' },
    { pauseAt: 'after-aside', leftBehind: ['log.install', 'log.old'], opensAs: 'old' },
    { pauseAt: 'after-swap', leftBehind: ['log', 'log.old'], opensAs: 'new' },
    { pauseAt: 'removing-old', leftBehind: ['log', 'log.old'], opensAs: 'new' },
  ];
  for (const { pauseAt, leftBehind, opensAs } of cases) {
    it(`killed ${pauseAt}: opens as exactly the ${opensAs} log`, async () => {
      const dir = tempDir();
      await killDuringInstall(dir, pauseAt);
      const logDir = join(dir, 'log');
      expect(readdirSync(dir).sort()).toEqual(leftBehind);
      const expected = opensAs === 'old' ? oldLog : newLog;
      const first = LogStore.open(options(logDir, { segmentBytes: 4096 }));
      expectInstallSettled(logDir);
      expect(first.firstIndex()).toBe(expected[0]!.index);
      expect(first.term(first.firstIndex() - 1)).toBe(opensAs === 'old' ? 0 : WINDOW.prevTerm);
      expect(plain(readAll(first))).toEqual(plain(expected));
      const last = first.lastIndex();
      first.append(entries(last + 1, last + 5, first.term(last) + 1, 50));
      await first.flush();
      await first.close();
      const second = LogStore.open(options(logDir, { segmentBytes: 4096 }));
      expect(plain(readAll(second))).toEqual(plain([...expected, ...entries(last + 1, last + 5, expected[expected.length - 1]!.term + 1, 50)]));
      await second.close();
    });
  }
});
