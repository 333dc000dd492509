import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer, type SendResult } from '../src/client/producer.js';
import { PushConsumer, type PushMessage } from '../src/client/push-consumer.js';
import { until } from '../src/util/until.js';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../bin/ledgermq');

let cluster: LocalCluster;
let client: LedgerClient;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
  client = cluster.client();
});
afterAll(async () => {
  await cluster.dispose();
});

async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args, '--config', cluster.configPath], { timeout: 60_000 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

async function topicWith(topic: string, queues: number, bodies: string[]): Promise<SendResult[]> {
  await client.call({ op: 'createTopic', topic, queues });
  const producer = new Producer(client, 20_000);
  return Promise.all(bodies.map((body) => producer.send(topic, { body: Buffer.from(body) })));
}

async function committedOffsets(group: string, topic: string, queues: number): Promise<(number | null)[]> {
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues: Array.from({ length: queues }, (_, queueId) => ({ topic, queueId })) });
  return offsets.map((o) => o.offset);
}

const fileLines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : []);

describe('consume --exec', () => {
  it('runs the command once per message with its env and body on stdin, its output on stderr, and exits 0 on --max', async () => {
    const sent = await topicWith('ex-env', 2, ['alpha', 'beta', 'gamma']);
    const command = 'echo "out id=$LMQ_MSG_ID rt=$LMQ_RECONSUME_TIMES t=$LMQ_TOPIC q=$LMQ_QUEUE o=$LMQ_OFFSET body=$(cat)"; echo "err o=$LMQ_OFFSET" >&2';
    const result = await cli(['consume', '--topic', 'ex-env', '--group', 'ex-env-g', '--exec', command, '--max', '3', '--concurrency', '2']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    const outs = result.stderr.split('\n').filter((l) => l.startsWith('out ')).sort();
    const bodies = ['alpha', 'beta', 'gamma'];
    expect(outs).toEqual(sent.map((s, i) => `out id=${s.msgId} rt=0 t=ex-env q=${s.queueId} o=${s.offset} body=${bodies[i]}`).sort());
    expect(result.stderr.split('\n').filter((l) => l.startsWith('err ')).sort()).toEqual(sent.map((s) => `err o=${s.offset}`).sort());
    expect((await committedOffsets('ex-env-g', 'ex-env', 2)).reduce((sum, o) => sum! + (o ?? 0), 0)).toBe(3);
  });

  it('does not count --timeout while a handler runs, and a failing handler is no command error', async () => {
    await topicWith('ex-slow', 1, ['one', 'two']);
    const dir = cluster.dir;
    const marks = join(dir, 'ex-slow.marks');
    // Each handler outlasts --timeout; the second message is only handed out after the first.
    const slow = await cli(['consume', '--topic', 'ex-slow', '--group', 'ex-slow-g', '--exec', `sleep 1; echo "$LMQ_OFFSET" >> ${marks}`, '--concurrency', '1', '--timeout', '300']);
    expect(slow.code).toBe(0);
    expect(fileLines(marks)).toEqual(['0', '1']);
    expect(await committedOffsets('ex-slow-g', 'ex-slow', 1)).toEqual([2]);

    await topicWith('ex-fail', 1, ['doomed']);
    const failing = await cli(['consume', '--topic', 'ex-fail', '--group', 'ex-fail-g', '--exec', 'exit 7', '--max', '1']);
    expect(failing.code).toBe(0);
    expect(failing.stderr).toMatch(/handler for \S+ \(ex-fail\/0@0\) exited with 7: reconsume later/);
  });

  it('refuses --concurrency without --exec and --json with it', async () => {
    await topicWith('ex-usage', 1, []);
    const noExec = await cli(['consume', '--topic', 'ex-usage', '--group', 'g', '--concurrency', '2']);
    expect([noExec.code, noExec.stderr.trim()]).toEqual([2, expect.stringMatching(/--concurrency needs --exec/)]);
    const withJson = await cli(['consume', '--topic', 'ex-usage', '--group', 'g', '--exec', 'true', '--json']);
    expect([withJson.code, withJson.stderr.trim()]).toEqual([2, expect.stringMatching(/--json does not apply to --exec/)]);
  });

  it('a consumer killed while one message is in hand leaves the commit at it, and the next consumer redelivers it', async () => {
    await topicWith('ex-crash', 1, Array.from({ length: 10 }, (_, i) => `c${i}`));
    const marks = join(cluster.dir, 'ex-crash.marks');
    // Offset 3's handler never ends; the others finish and mark their offset.
    const command = `if [ "$LMQ_OFFSET" = 3 ]; then exec sleep 600; fi; echo "$LMQ_OFFSET" >> ${marks}`;
    const child = spawn(process.execPath, [BIN, 'consume', '--topic', 'ex-crash', '--group', 'ex-crash-g', '--exec', command, '--concurrency', '4', '--timeout', '60000', '--config', cluster.configPath], {
      detached: true, // its own process group: the kill takes the handler's sleep with it
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await until('nine handled', () => fileLines(marks).length === 9, 30_000);
      await until('commit at 3', async () => (await committedOffsets('ex-crash-g', 'ex-crash', 1))[0] === 3, 10_000);
      await sleep(2_500); // more than two commit rounds (1 s) with 3 still in hand
      expect((await committedOffsets('ex-crash-g', 'ex-crash', 1))[0]).toBe(3);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }

    const received: PushMessage[] = [];
    const next = new PushConsumer(client, { topic: 'ex-crash', group: 'ex-crash-g', pollWaitMs: 200, consumeConcurrency: 1 }, async (messages) => {
      received.push(...messages);
      return 'SUCCESS';
    });
    await next.start();
    try {
      await until('redelivered from 3', () => received.length >= 7);
    } finally {
      await next.stop();
    }
    // At-least-once: everything from the committed offset on comes again, starting with 3.
    expect(received.map((m) => m.offset)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(await committedOffsets('ex-crash-g', 'ex-crash', 1)).toEqual([10]);
  });
});
