// A process SIGKILLed while it writes a snapshot: the snapshot before it stays usable, the
// half-written one never appears under a snapshot's name, and its temp file is gone once the
// store is reopened.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { snapshotFileName } from '../src/log/snapshot-format.js';
import { IO_CHUNK_BYTES, SnapshotStore } from '../src/log/snapshot-store.js';
import { removeTempDirs, tempDir } from './log-helpers.js';
import { payloadOf, readPayload } from './snapshot-helpers.js';

afterAll(removeTempDirs);

/** Runs the child until it reports the stalled write, then SIGKILLs it; returns the temp files' sizes seen just before the kill. */
function killWhileWriting(dir: string): Promise<number[]> {
  const viteNode = join('node_modules', 'vite-node', 'vite-node.mjs');
  const child = spawn(process.execPath, [viteNode, 'test/snapshot-kill-child.ts', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let output = '';
    let tmpBytes: number[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (!output.includes('durable 10\nwriting 20\n')) return;
      tmpBytes = readdirSync(dir)
        .filter((name) => name.endsWith('.tmp'))
        .map((name) => statSync(join(dir, name)).size);
      child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(tmpBytes);
      else reject(new Error(`child exited with ${code} before it was killed: ${output.slice(-500)}`));
    });
  });
}

describe('snapshot store – a SIGKILL while writing', () => {
  it('leaves the previous snapshot usable and no temp file after reopening', async () => {
    const dir = tempDir();
    const tmpBytes = await killWhileWriting(dir);
    // The kill came mid-write: a temp file of at least the three chunks written (header first).
    expect(tmpBytes).toHaveLength(1);
    expect(tmpBytes[0]).toBeGreaterThanOrEqual(3 * IO_CHUNK_BYTES);
    const store = await SnapshotStore.open({ dir });
    expect(readdirSync(dir)).toEqual([snapshotFileName(10, 2)]);
    const newest = await store.newest();
    expect(newest).toMatchObject({ index: 10, term: 2, payloadBytes: 300_000 });
    expect((await readPayload(store, newest!)).equals(payloadOf(10, 300_000))).toBe(true);
    await store.close();
  });
});
