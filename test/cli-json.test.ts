// --json on the commands that print results: one JSON object per line, the shapes README.md
// documents, against a real three-node cluster (certs init needs none).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clusterForFile } from './process-helpers.js';

const { cli } = clusterForFile();

/** The one JSON object a --json command printed, after checking it printed exactly one line. */
function oneLine(stdout: string): Record<string, unknown> {
  const lines = stdout.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe('cli --json – stable shapes', () => {
  it('topic create --json prints {"topic","queues"}; the same topic again is exit 2', async () => {
    const created = await cli(['topic', 'create', 'orders', '--queues', '3', '--json']);
    expect(created.code).toBe(0);
    expect(oneLine(created.stdout)).toEqual({ topic: 'orders', queues: 3 });
    const again = await cli(['topic', 'create', 'orders', '--queues', '3', '--json']);
    expect(again.code).toBe(2);
    expect(again.stdout).toBe('');
  });

  it('group reset --json prints each queue\'s committed offset before and the offset after', async () => {
    expect((await cli(['topic', 'create', 'events', '--queues', '2'])).code).toBe(0);
    expect((await cli(['produce', '--topic', 'events', '--count', '6', '--size', '8'])).code).toBe(0);
    const consumed = await cli(['consume', '--topic', 'events', '--group', 'g', '--max', '6', '--timeout', '3000']);
    expect(consumed.code).toBe(0);
    const reset = await cli(['group', 'reset', '--group', 'g', '--topic', 'events', '--to', 'first', '--json']);
    expect(reset.code).toBe(0);
    expect(oneLine(reset.stdout)).toEqual({
      group: 'g', topic: 'events',
      queues: [{ queueId: 0, committedOffset: 3, offset: 0 }, { queueId: 1, committedOffset: 3, offset: 0 }],
    });
    // A group that never committed on the topic: committedOffset is null, never -1.
    const fresh = await cli(['group', 'reset', '--group', 'new', '--topic', 'events', '--to', 'last', '--json']);
    expect(oneLine(fresh.stdout)).toEqual({
      group: 'new', topic: 'events',
      queues: [{ queueId: 0, committedOffset: null, offset: 3 }, { queueId: 1, committedOffset: null, offset: 3 }],
    });
  });

  it('leader preferred --json prints {"preferredLeader"}, null for none', async () => {
    const none = await cli(['leader', 'preferred', 'none', '--json']);
    expect(none.code).toBe(0);
    expect(oneLine(none.stdout)).toEqual({ preferredLeader: null });
  });

  it('certs init --json names every file written and the config snippet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-certs-json-'));
    try {
      const result = await cli(['certs', 'init', '--dir', dir, '--days', '2', '--json']);
      expect(result.code).toBe(0);
      const written = oneLine(result.stdout) as { caCert: string; caKey: string; nodes: { id: string; cert: string; key: string }[]; tls: Record<string, string> };
      expect(written.caCert).toBe(join(dir, 'ca.pem'));
      expect(written.caKey).toBe(join(dir, 'ca.key'));
      expect(written.nodes.map((n) => n.id)).toEqual(['n1', 'n2', 'n3']);
      for (const file of [written.caCert, written.caKey, ...written.nodes.flatMap((n) => [n.cert, n.key])]) expect(existsSync(file)).toBe(true);
      expect(Object.keys(written.tls).sort()).toEqual(['ca', 'cert', 'key']);
      expect(written.tls.cert).toMatch(/\{id\}\.pem$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
