// `consume --exec CMD --orderly` end to end, as a user runs it: two consume processes of one
// group against a real cluster, each message handled by `sh -c CMD` with the body on stdin and
// the LMQ_* variables; a failing command suspends its queue and the same message comes again
// with LMQ_RECONSUME_TIMES 1. The commands log their own start and end times (one machine,
// one clock), so the test checks that no two commands of one queue ever ran at once.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { until } from '../src/util/until.js';
import { committed, expectNoOverlap, produceTo } from './orderly-support.js';
import { runCli } from './process-helpers.js';


let cluster: LocalCluster;
beforeAll(async () => {
  cluster = await LocalCluster.create();
  cluster.startAll();
  await cluster.leader();
}, 60_000);
afterAll(async () => {
  await cluster.dispose();
});

function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return runCli(cluster.configPath, args, 90_000);
}

/** Enough for the second process to join while the first is still at work (about 4 s per queue). */
const PER_QUEUE = 40;

interface Logged {
  startNs: bigint;
  endNs: bigint;
  queue: number;
  offset: number;
  reconsumeTimes: number;
  body: string;
  outcome: string;
  pid: string;
}

describe('cli – consume --exec --orderly', () => {
  it('two consume processes share the queues, never run two commands of one queue at once, and retry a failed message in place', async () => {
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'cli-orderly', queues: 2 });
    for (let q = 0; q < 2; q++) await produceTo(client, 'cli-orderly', q, Array.from({ length: PER_QUEUE }, (_, i) => `q${q}-${i}`));
    const logFile = join(cluster.dir, 'handled.log');
    writeFileSync(logFile, '');
    // q0-4 fails on its first delivery; every command logs start/end, its variables and its consume's pid.
    const command = [
      'start=$(date +%s%N); body=$(cat); sleep 0.05',
      'outcome=ok; if [ "$body" = q0-4 ] && [ "$LMQ_RECONSUME_TIMES" = 0 ]; then outcome=fail; fi',
      `echo "$start $(date +%s%N) $LMQ_QUEUE $LMQ_OFFSET $LMQ_RECONSUME_TIMES $body $outcome $PPID $LMQ_TOPIC" >> ${logFile}`,
      'echo "handled $body" >&2',
      '[ $outcome = ok ]',
    ].join('; ');
    const args = ['consume', '--topic', 'cli-orderly', '--group', 'gcli', '--exec', command, '--orderly', '--timeout', '3000'];
    const [one, two] = await Promise.all([cli(args), cli(args)]);
    expect(one.code).toBe(0);
    expect(two.code).toBe(0);
    expect(one.stdout + two.stdout).toBe(''); // the commands' output goes to stderr
    expect(one.stderr + two.stderr).toMatch(new RegExp(`handled q1-${PER_QUEUE - 1}`));
    expect(one.stderr + two.stderr).toMatch(/handler for .* \(cli-orderly\/0@4\) exited with 1: suspend/);

    const logged: Logged[] = readFileSync(logFile, 'utf8').trim().split('\n').map((line) => {
      const [startNs, endNs, queue, offset, reconsumeTimes, body, outcome, pid, topic] = line.split(' ');
      expect(topic).toBe('cli-orderly');
      return { startNs: BigInt(startNs!), endNs: BigInt(endNs!), queue: Number(queue), offset: Number(offset), reconsumeTimes: Number(reconsumeTimes), body: body!, outcome: outcome!, pid: pid! };
    });
    const epochNs = logged.reduce((min, l) => (l.startNs < min ? l.startNs : min), logged[0]!.startNs);
    expectNoOverlap(logged.map((l) => ({ queueId: l.queue, consumer: l.pid, startMs: Number(l.startNs - epochNs) / 1e6, endMs: Number(l.endNs - epochNs) / 1e6 })));
    // Each queue in order, each message succeeding once; q0-4 comes again until it succeeds,
    // nothing after it meanwhile. (If the queue moved during the suspend, its new owner counts
    // its own retries: LMQ_RECONSUME_TIMES is kept per consumer.)
    for (let q = 0; q < 2; q++) {
      const ofQueue = logged.filter((l) => l.queue === q).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
      const succeeded = ofQueue.filter((l) => l.outcome === 'ok');
      expect(succeeded.map((l) => `${l.body}/${l.offset}`)).toEqual(Array.from({ length: PER_QUEUE }, (_, i) => `q${q}-${i}/${i}`));
      const failed = ofQueue.filter((l) => l.outcome === 'fail');
      expect(failed.every((l) => l.body === 'q0-4' && l.reconsumeTimes === 0)).toBe(true);
      expect(failed.length).toBe(q === 0 ? ofQueue.length - PER_QUEUE : 0);
      if (q === 0) {
        expect(failed.length).toBeGreaterThanOrEqual(1);
        const retried = ofQueue.filter((l) => l.body === 'q0-4');
        expect(retried.at(-1)!.reconsumeTimes).toBe(1);
        expect(ofQueue.findIndex((l) => l.body === 'q0-5')).toBe(ofQueue.indexOf(retried.at(-1)!) + 1);
      }
      expect(succeeded.every((l) => l.reconsumeTimes === (l.body === 'q0-4' ? 1 : 0))).toBe(true);
    }
    expect(await committed(client, 'gcli', 'cli-orderly', [0, 1])).toEqual([PER_QUEUE, PER_QUEUE]);
    // Both processes had a queue at some point (the second took one from the first).
    expect(new Set(logged.map((l) => l.pid)).size).toBe(2);
  }, 120_000);

  it('stops after --max finished messages, and a consumer with nothing to do exits 0 after --timeout', async () => {
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'cli-max', queues: 1 });
    await produceTo(client, 'cli-max', 0, ['a', 'b', 'c', 'd']);
    const first = await cli(['consume', '--topic', 'cli-max', '--group', 'gmax', '--exec', 'cat >&2', '--orderly', '--max', '2', '--timeout', '5000']);
    expect(first.code).toBe(0);
    expect(first.stderr).toBe('ab');
    expect(await committed(client, 'gmax', 'cli-max', [0])).toEqual([2]);
    const startedMs = performance.now();
    const rest = await cli(['consume', '--topic', 'cli-max', '--group', 'gmax', '--exec', 'cat >&2', '--orderly', '--timeout', '1500']);
    expect(rest.code).toBe(0);
    expect(rest.stderr).toBe('cd');
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(1500);
  }, 60_000);

  it('takes the DLQ limit from the config\'s consumer.maxOrderlyReconsumeTimes when --max-reconsume-times is not given', async () => {
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'cli-limit', queues: 1 });
    await produceTo(client, 'cli-limit', 0, ['poison']);
    const config = JSON.parse(readFileSync(cluster.configPath, 'utf8'));
    const limited = join(dirname(cluster.configPath), 'orderly-limit.config.json');
    writeFileSync(limited, JSON.stringify({ ...config, consumer: { maxOrderlyReconsumeTimes: 1 } }));
    const run = await runCli(limited, ['consume', '--topic', 'cli-limit', '--group', 'glimit', '--exec', 'exit 1', '--orderly', '--max', '1', '--timeout', '5000'], 90_000);
    expect(run.code).toBe(0);
    const dead = await runCli(limited, ['dlq', 'list', '--group', 'glimit', '--json'], 30_000);
    expect(dead.stdout.trim().split('\n').map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ topic: 'cli-limit', offset: 0, attempts: 2 })]);
  }, 60_000);

  it('kills a command (and what it started) when the lock is lost mid-command, then runs the message again', async () => {
    const client = cluster.client();
    await client.call({ op: 'createTopic', topic: 'cli-stall', queues: 1 });
    await produceTo(client, 'cli-stall', 0, ['slow']);
    const marks = join(cluster.dir, 'stall.log');
    writeFileSync(marks, '');
    // The first run marks its start and waits in a subshell (a process of its own) far past the
    // lease; a later run succeeds at once.
    const command = `if grep -q started ${marks}; then echo again >> ${marks}; exit 0; fi; echo started >> ${marks}; (sleep 8; echo finished >> ${marks})`;
    const consuming = cli(['consume', '--topic', 'cli-stall', '--group', 'gstall', '--exec', command, '--orderly', '--lock-lease-ms', '3000', '--timeout', '2000']);
    await until('the command started', () => readFileSync(marks, 'utf8').includes('started'), 20_000);
    const startedMs = performance.now();
    const ids = cluster.config.nodes.map((n) => n.id);
    for (const id of ids) cluster.signal(id, 'SIGSTOP');
    try {
      // The lease view (3 s less a sixth) runs out while no node answers: the command is killed.
      await sleep(4000);
    } finally {
      for (const id of ids) cluster.signal(id, 'SIGCONT');
    }
    const result = await consuming;
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/handler for .* \(cli-stall\/0@0\) was killed: this consumer lost the queue's lock: suspend/);
    // The subshell died with it (its process group): nothing finished, and the message ran again.
    await sleep(Math.max(0, startedMs + 9000 - performance.now()));
    expect(readFileSync(marks, 'utf8').trim().split('\n')).toEqual(['started', 'again']);
    expect(await committed(client, 'gstall', 'cli-stall', [0])).toEqual([1]);
  }, 90_000);

  it('refuses flags --orderly does not combine with, exit 2 and one line', async () => {
    const noExec = await cli(['consume', '--topic', 't', '--group', 'g', '--orderly']);
    expect(noExec.code).toBe(2);
    expect(noExec.stderr).toMatch(/--orderly needs --exec/);
    const broadcast = await cli(['consume', '--topic', 't', '--group', 'g', '--orderly', '--exec', 'true', '--broadcast']);
    expect(broadcast.code).toBe(2);
    expect(broadcast.stderr).toMatch(/does not combine with --broadcast/);
    expect(broadcast.stderr.trim().split('\n')).toHaveLength(1);
    const concurrent = await cli(['consume', '--topic', 't', '--group', 'g', '--orderly', '--exec', 'true', '--concurrency', '4']);
    expect([concurrent.code, concurrent.stderr]).toEqual([2, expect.stringMatching(/--concurrency does not apply to --orderly/)]);
    const leaseAlone = await cli(['consume', '--topic', 't', '--group', 'g', '--exec', 'true', '--lock-lease-ms', '5000']);
    expect([leaseAlone.code, leaseAlone.stderr]).toEqual([2, expect.stringMatching(/--lock-lease-ms needs --orderly/)]);
  }, 30_000);
});
