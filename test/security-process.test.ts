import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { freePorts } from '../src/cluster/ports.js';

let cluster: LocalCluster | null = null;
const dirs: string[] = [];
afterEach(async () => {
  await cluster?.dispose();
  cluster = null;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function logLines(c: LocalCluster, id: string): Array<{ msg: string; [key: string]: unknown }> {
  return readFileSync(join(c.dir, `${id}.log`), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
}

describe('security – peers of real node processes', () => {
  it('a 3-node cluster with a cluster secret elects a leader and serves a produce and a consume', async () => {
    cluster = await LocalCluster.create();
    const secretFile = cluster.config.security?.clusterSecretFile;
    expect(secretFile).toBe(join(cluster.dir, 'cluster.secret'));
    expect(statSync(secretFile as string).mode & 0o777).toBe(0o600);
    cluster.startAll();
    await cluster.leader();
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 't', queues: 1 });
    const producer = new Producer(client, 10_000);
    for (let i = 0; i < 5; i++) await producer.send('t', { body: Buffer.from(`secured-${i}`) });
    const consumer = new PullConsumer(client, { topic: 't', group: 'g', from: 'first', pollWaitMs: 200, maxMessagesPerPull: 100, maxBytesPerPull: 1 << 20 });
    await consumer.start();
    const bodies = (await consumer.poll(false)).map((m) => Buffer.from(m.body).toString());
    expect(bodies).toEqual(['secured-0', 'secured-1', 'secured-2', 'secured-3', 'secured-4']);
    for (const node of cluster.config.nodes) {
      const lines = logLines(cluster, node.id);
      // Every node accepted both peers with the secret and said nothing about running without one.
      const accepted = lines.filter((l) => l.msg === 'accepted peer connection' && l['authenticated'] === true);
      expect(new Set(accepted.map((l) => l['peer'])).size).toBe(2);
      expect(lines.filter((l) => /NOT authenticated/.test(l.msg))).toEqual([]);
    }
  });

  it('`cluster start` creates a missing secret file (mode 0600) and its cluster elects a leader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lmq-secured-start-'));
    dirs.push(dir);
    const ports = await freePorts(6);
    const config = {
      clusterId: 'secured',
      nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, host: '127.0.0.1', raftPort: ports[i], clientPort: ports[i + 3], dataDir: `data/${id}` })),
      flush: { mode: 'async', intervalMs: 100 },
      quorum: 'majority',
      security: { clusterSecretFile: 'data/cluster.secret' },
    };
    writeFileSync(join(dir, 'cluster.config.json'), JSON.stringify(config));
    const child = spawn(process.execPath, ['bin/ledgermq', 'cluster', 'start', '--config', join(dir, 'cluster.config.json')], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines: string[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no leader announced; stdout: ${lines.join(' | ')}`)), 60_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line);
          if (line.startsWith('leader: ')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const secretFile = join(dir, 'data', 'cluster.secret');
    expect(lines[0]).toBe(`created cluster secret ${secretFile} (mode 0600); every node of the cluster needs this file`);
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(secretFile, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
  });
});
