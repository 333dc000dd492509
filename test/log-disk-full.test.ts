// A full disk when a log segment is created (issue 14): the node stops with the one line the
// contract promises — LMQ_DISK_FULL naming the directory and the bytes a segment needs — and
// exit code 1, not an ENOSPC stack. Real node processes; the failing syscall is injected by
// test/disk-full-preload.mjs (no disk is filled).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { ERROR_TRAITS } from '../src/util/errors.js';

const PRELOAD = new URL('./disk-full-preload.mjs', import.meta.url).pathname;
const SEGMENT_BYTES = 64 * 1024;

let cluster: LocalCluster | null = null;
afterEach(async () => {
  delete process.env.LMQ_TEST_SEGMENTS_BEFORE_FULL;
  await cluster?.dispose();
  cluster = null;
});

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('log – disk full at segment creation', () => {
  it('stops the node whose roll finds the disk full with one LMQ_DISK_FULL line naming its log directory and the bytes needed, exit 1, no stack', async () => {
    process.env.LMQ_TEST_SEGMENTS_BEFORE_FULL = '1'; // the first segment fits; the first roll does not
    cluster = await LocalCluster.create({ log: { segmentBytes: SEGMENT_BYTES } }, { nodeArgs: ['--import', PRELOAD] });
    const children = new Map(cluster.config.nodes.map((n) => [n.id, cluster!.start(n.id)]));
    const leader = await cluster.leader([], 30_000);
    const client = cluster.client(5_000);
    await client.call({ op: 'createTopic', topic: 't', queues: 1 });
    const producer = new Producer(client, 5_000);
    // ~128 KiB: past one 64 KiB segment, so the leader rolls (before it replicates the entry
    // that does not fit) and finds its disk full.
    await Promise.allSettled(Array.from({ length: 32 }, () => producer.send('t', { body: Buffer.alloc(4096, 0x61) })));
    const id = leader.id;
    expect(await exited(children.get(id)!)).toBe(ERROR_TRAITS.LMQ_DISK_FULL.exitCode);
    const output = readFileSync(join(cluster.dir, `${id}.log`), 'utf8');
    const logDir = join(cluster.dir, id, 'log');
    const lines = output.split('\n').filter((line) => line.startsWith('ledgermq: '));
    expect(lines).toEqual([`ledgermq: no space left on the disk of ${logDir}: a new log segment needs ${SEGMENT_BYTES} bytes; free space on that disk (or lower log.segmentBytes or retention.maxBytes) and start the node again`]);
    expect(output).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace anywhere
    expect(output).not.toContain('createZeroFileSync');
  }, 60_000);
});
