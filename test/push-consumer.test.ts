import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer, type SendResult } from '../src/client/producer.js';
import { type ConsumeStatus, type MessageListener, PushConsumer, type PushConsumerOptions, type PushMessage } from '../src/client/push-consumer.js';
import { isLmqError } from '../src/util/errors.js';
import { until } from '../src/util/until.js';
import { runCli } from './process-helpers.js';

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
const running: PushConsumer[] = [];
afterEach(async () => {
  for (const consumer of running.splice(0)) await consumer.stop().catch(() => undefined);
});

/** Fast rounds, so a test sees commits and rebalances within a fraction of a second. */
const QUICK = { pollWaitMs: 200, commitIntervalMs: 100, rebalanceIntervalMs: 200, redeliverAfterMs: 300 } as const;

function consumer(topic: string, group: string, listener: MessageListener, options: Partial<PushConsumerOptions> = {}): { consumer: PushConsumer; errors: unknown[] } {
  const errors: unknown[] = [];
  const c = new PushConsumer(client, { topic, group, ...QUICK, onError: (error) => errors.push(error), ...options }, listener);
  running.push(c);
  return { consumer: c, errors };
}

async function createTopic(topic: string, queues: number): Promise<void> {
  await client.call({ op: 'createTopic', topic, queues });
}

async function produce(topic: string, count: number, bodyBytes = 16): Promise<SendResult[]> {
  const producer = new Producer(client, 20_000);
  return Promise.all(Array.from({ length: count }, (_, i) =>
    producer.send(topic, { body: Buffer.from(`m${i}`.padEnd(bodyBytes, '.')), key: `k${i}`, tag: i % 2 === 0 ? 'even' : 'odd', properties: { n: String(i) } })));
}

async function committed(group: string, topic: string, queueIds: number[]): Promise<(number | null)[]> {
  const { offsets } = await client.call({ op: 'queryOffsets', group, queues: queueIds.map((queueId) => ({ topic, queueId })) });
  return offsets.map((o) => o.offset);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const success: MessageListener = async () => 'SUCCESS';

/** A promise to hold listeners on, and its release. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('push consumer – delivery and commits', () => {
  it('delivers every message once with its fields, and commits every queue to its end', async () => {
    await createTopic('pc-all', 4);
    const sent = await produce('pc-all', 200);
    const received: PushMessage[] = [];
    const { consumer: c, errors } = consumer('pc-all', 'pc-all-g', async (messages) => {
      received.push(...messages);
      return 'SUCCESS';
    }, { consumerId: 'pc-all-1' });
    await c.start();
    await until('all delivered', () => received.length >= sent.length);
    await c.stop();

    expect(received.map((m) => m.msgId).sort()).toEqual(sent.map((s) => s.msgId).sort());
    const byId = new Map(sent.map((s) => [s.msgId, s]));
    for (const m of received) {
      const s = byId.get(m.msgId)!;
      const i = Number(Buffer.from(m.body).toString().slice(1).replace(/\.+$/, ''));
      expect(m).toMatchObject({ topic: 'pc-all', queueId: s.queueId, offset: s.offset, reconsumeTimes: 0, origin: undefined, keys: [`k${i}`], tag: i % 2 === 0 ? 'even' : 'odd', properties: { n: String(i) } });
    }
    const { offsets } = await client.call({ op: 'queryOffsets', group: 'pc-all-g', queues: range(4).map((queueId) => ({ topic: 'pc-all', queueId })) });
    expect(offsets.map((o) => o.offset)).toEqual(offsets.map((o) => o.nextOffset));
    expect(offsets.reduce((sum, o) => sum + o.nextOffset, 0)).toBe(200);
    // The retry topic does not exist yet: looking for it is not an error.
    expect(errors).toEqual([]);
  });

  it('never commits past an unfinished message: a slow one at offset k holds the commit at k while later ones finish', async () => {
    await createTopic('pc-slow', 1);
    await produce('pc-slow', 20);
    const slow = gate();
    const finished = new Set<number>();
    const { consumer: c } = consumer('pc-slow', 'pc-slow-g', async ([m]) => {
      if (m!.offset === 5) await slow.wait;
      finished.add(m!.offset);
      return 'SUCCESS';
    }, { consumeConcurrency: 4 });
    await c.start();
    await until('all but offset 5 finished', () => finished.size === 19);
    await until('offset 5 committed', async () => (await committed('pc-slow-g', 'pc-slow', [0]))[0] === 5);
    await sleep(QUICK.commitIntervalMs * 5); // several commit rounds pass while 5 is in hand
    expect(await committed('pc-slow-g', 'pc-slow', [0])).toEqual([5]);
    expect(c.stats().queues.find((q) => q.topic === 'pc-slow')).toMatchObject({ heldMessages: 1, committedOffset: 5, nextOffset: 20 });
    slow.open();
    await until('offset 20 committed', async () => (await committed('pc-slow-g', 'pc-slow', [0]))[0] === 20);
  });

  it('stop waits for the listeners in progress and commits what they finished', async () => {
    await createTopic('pc-stop', 1);
    await produce('pc-stop', 3);
    const hold = gate();
    let started = 0;
    const { consumer: c } = consumer('pc-stop', 'pc-stop-g', async () => {
      started++;
      await hold.wait;
      return 'SUCCESS';
    }, { consumeConcurrency: 3 });
    await c.start();
    await until('three listeners running', () => started === 3);
    let stopped = false;
    const stopping = c.stop().then(() => (stopped = true));
    await sleep(300);
    expect(stopped).toBe(false);
    hold.open();
    await stopping;
    expect(await committed('pc-stop-g', 'pc-stop', [0])).toEqual([3]);
  });
});

describe('push consumer – workers and flow control', () => {
  it('runs at most consumeConcurrency listener calls at once, each with at most batchSize messages of one queue', async () => {
    await createTopic('pc-workers', 3);
    await produce('pc-workers', 90);
    let inFlight = 0;
    let maxInFlight = 0;
    const batches: PushMessage[][] = [];
    const { consumer: c } = consumer('pc-workers', 'pc-workers-g', async (messages, context) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      batches.push([...messages]);
      expect(messages.every((m) => m.topic === context.topic && m.queueId === context.queueId)).toBe(true);
      await sleep(20);
      inFlight--;
      return 'SUCCESS';
    }, { consumeConcurrency: 4, batchSize: 2 });
    await c.start();
    await until('all delivered', () => batches.flat().length >= 90);
    expect(maxInFlight).toBe(4);
    expect(Math.max(...batches.map((b) => b.length))).toBe(2);
    expect(new Set(batches.flat().map((m) => m.msgId)).size).toBe(90);
  });

  it('stops pulling a queue while its cache holds maxCachedMessagesPerQueue messages', async () => {
    await createTopic('pc-flow', 2);
    await produce('pc-flow', 300);
    const hold = gate();
    let started = 0;
    const { consumer: c, errors } = consumer('pc-flow', 'pc-flow-g', async () => {
      started++;
      await hold.wait;
      return 'SUCCESS';
    }, { consumeConcurrency: 3, maxCachedMessagesPerQueue: 10, maxMessagesPerPull: 4 });
    await c.start();
    await until('listeners blocked', () => started === 3);
    await until('both caches full', () => c.stats().queues.filter((q) => q.heldMessages >= 10).length === 2);
    await sleep(QUICK.pollWaitMs * 4); // pulls would have gone on meanwhile
    const stats = c.stats();
    for (const q of stats.queues.filter((q) => q.topic === 'pc-flow')) expect(q.heldMessages).toBe(10);
    expect(stats.pulledMessages).toBe(20);
    expect(started).toBe(3);
    expect(errors).toEqual([]); // the bound held by waiting, not by pulls that failed
    hold.open();
    await until('all delivered', () => c.stats().deliveredMessages >= 300);
  });

  it('stops pulling a queue while its cache holds maxCachedBytesPerQueue bytes (a pull brings at least one message)', async () => {
    await createTopic('pc-bytes', 1);
    await produce('pc-bytes', 50, 1000);
    const hold = gate();
    const { consumer: c } = consumer('pc-bytes', 'pc-bytes-g', async () => {
      await hold.wait;
      return 'SUCCESS';
    }, { consumeConcurrency: 1, maxCachedBytesPerQueue: 4500 });
    await c.start();
    await until('cache full', () => (c.stats().queues[0]?.heldBytes ?? 0) >= 4500);
    await sleep(QUICK.pollWaitMs * 4);
    const [q] = c.stats().queues;
    expect(q!.heldBytes).toBe(5000); // 4 whole messages fit, the 5th comes alone in the next pull
    expect(c.stats().pulledMessages).toBe(5);
    hold.open();
    await until('all delivered', () => c.stats().deliveredMessages >= 50);
  });
});

describe('push consumer – rebalance', () => {
  it('shares the queues with a second member and hands them all back when it stops, every message delivered', async () => {
    await createTopic('pc-share', 4);
    const received: PushMessage[] = [];
    const listener: MessageListener = async (messages) => {
      received.push(...messages);
      await sleep(2);
      return 'SUCCESS';
    };
    const a = consumer('pc-share', 'pc-share-g', listener, { consumerId: 'a' }).consumer;
    await a.start();
    const first = await produce('pc-share', 100);
    await until('a read phase 1', () => received.length >= 100);
    const b = consumer('pc-share', 'pc-share-g', listener, { consumerId: 'b' }).consumer;
    await b.start();
    const owned = (c: PushConsumer) => c.stats().queues.filter((q) => q.topic === 'pc-share').length;
    await until('queues split', () => owned(a) === 2 && owned(b) === 2);
    const second = await produce('pc-share', 100);
    await a.stop();
    await until('b owns all', () => owned(b) === 4);
    const third = await produce('pc-share', 100);
    const all = [...first, ...second, ...third].map((s) => s.msgId);
    await until('everything delivered', () => all.every((id) => received.some((m) => m.msgId === id)));
    await b.stop();
    const { offsets } = await client.call({ op: 'queryOffsets', group: 'pc-share-g', queues: range(4).map((queueId) => ({ topic: 'pc-share', queueId })) });
    expect(offsets.map((o) => o.offset)).toEqual(offsets.map((o) => o.nextOffset));
  });
});

describe('push consumer – a queue that moves away', () => {
  it('hands out nothing more of it, lets the call in hand finish, commits and drops its cache', async () => {
    await createTopic('pc-move', 2);
    await produce('pc-move', 20);
    const hold = gate();
    const byA: PushMessage[] = [];
    const byB: PushMessage[] = [];
    const a = consumer('pc-move', 'pc-move-g', async ([m]) => {
      byA.push(m!);
      if (m!.offset === 0) await hold.wait; // the first message of each queue stays in hand
      return 'SUCCESS';
    }, { consumerId: 'a', consumeConcurrency: 2 }).consumer;
    await a.start();
    await until('offset 0 of both queues in hand', () => byA.filter((m) => m.offset === 0).length === 2);
    const b = consumer('pc-move', 'pc-move-g', async ([m]) => {
      byB.push(m!);
      return 'SUCCESS';
    }, { consumerId: 'b' }).consumer;
    await b.start();
    const moving = await until('a queue draining at a', () => a.stats().queues.find((q) => q.topic === 'pc-move' && q.draining));
    const handedOut = byA.filter((m) => m.queueId === moving.queueId).length;
    // b starts the moved queue at the group's committed offset: 0, still in hand at a (at-least-once).
    await until('b read the moved queue', () => byB.filter((m) => m.queueId === moving.queueId).length === 10);
    expect(a.stats().queues.find((q) => q.topic === 'pc-move' && q.queueId === moving.queueId)).toMatchObject({ draining: true, committedOffset: 0 });
    hold.open();
    await until('a drained it', () => !a.stats().queues.some((q) => q.topic === 'pc-move' && q.queueId === moving.queueId));
    await until('a read its own queue', () => byA.filter((m) => m.queueId !== moving.queueId).length === 10);
    // Workers came free once the gate opened: none took a cached message of the moved queue.
    expect(byA.filter((m) => m.queueId === moving.queueId)).toHaveLength(handedOut);
    await a.stop();
    await b.stop();
    expect(await committed('pc-move-g', 'pc-move', [0, 1])).toEqual([10, 10]);
  });
});

describe('push consumer – RECONSUME_LATER', () => {
  // A message is finished only once its sendBack is acknowledged. Until the broker serves
  // sendBack (issue 15's broker side) it refuses it, LMQ_BAD_INPUT: the message must then stay
  // unfinished — handed to the listener again later, the commit held at it.
  it('keeps a failed message unfinished while its sendBack is refused: redelivered locally, never committed past', async () => {
    await createTopic('pc-later', 1);
    const sent = await produce('pc-later', 6);
    const deliveries: PushMessage[] = [];
    const { consumer: c, errors } = consumer('pc-later', 'pc-later-g', async ([m]): Promise<ConsumeStatus> => {
      deliveries.push(m!);
      if (m!.offset !== 2) return 'SUCCESS';
      if (m!.reconsumeTimes === 0) return 'RECONSUME_LATER';
      throw new Error('still failing');
    }, { consumeConcurrency: 2 });
    await c.start();
    const refused = () => errors.filter((e) => isLmqError(e, 'LMQ_BAD_INPUT'));
    // Either two sendBacks were refused, or (a broker that serves sendBack) all six are finished.
    await until('two refused sendBacks or all finished', async () => refused().length >= 2 || (await committed('pc-later-g', 'pc-later', [0]))[0] === 6);
    if (refused().length === 0) return; // the retry path's own test covers a served sendBack
    expect(refused()[0]).toMatchObject({ message: expect.stringMatching(/sendBack is not available/) });
    const failed = deliveries.filter((m) => m.offset === 2);
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed.slice(0, 2).map((m) => [m.msgId, m.reconsumeTimes])).toEqual([[sent[2]!.msgId, 0], [sent[2]!.msgId, 1]]);
    await until('the others finished', () => new Set(deliveries.filter((m) => m.offset !== 2).map((m) => m.offset)).size === 5);
    await sleep(QUICK.commitIntervalMs * 5);
    expect(await committed('pc-later-g', 'pc-later', [0])).toEqual([2]);
    await c.stop();
    expect(await committed('pc-later-g', 'pc-later', [0])).toEqual([2]);
  });
});

/** Runs the CLI as a user would; resolves with stdout, stderr and the exit code. */
function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return runCli(cluster.configPath, args);
}

async function topicWith(topic: string, queues: number, bodies: string[]): Promise<SendResult[]> {
  await createTopic(topic, queues);
  const producer = new Producer(client, 20_000);
  return Promise.all(bodies.map((body) => producer.send(topic, { body: Buffer.from(body) })));
}

const committedOffsets = (group: string, topic: string, queues: number) => committed(group, topic, range(queues));

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

  it('refuses --concurrency without --exec, --json with it, and a missing topic, each in one line with exit 2', async () => {
    await topicWith('ex-usage', 1, []);
    const noExec = await cli(['consume', '--topic', 'ex-usage', '--group', 'g', '--concurrency', '2']);
    expect([noExec.code, noExec.stderr.trim()]).toEqual([2, expect.stringMatching(/--concurrency needs --exec/)]);
    const withJson = await cli(['consume', '--topic', 'ex-usage', '--group', 'g', '--exec', 'true', '--json']);
    expect([withJson.code, withJson.stderr.trim()]).toEqual([2, expect.stringMatching(/--json does not apply to --exec/)]);
    const missing = await cli(['consume', '--topic', 'ex-missing', '--group', 'g', '--exec', 'true']);
    expect([missing.code, missing.stderr.trim().split('\n').length]).toEqual([2, 1]);
    expect(missing.stderr).toMatch(/ex-missing/);
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

describe('push consumer – the retry path through the broker', () => {
  let retrying: LocalCluster;
  let rc: LedgerClient;
  beforeAll(async () => {
    // Short delay levels: retry n waits level n + 2.
    retrying = await LocalCluster.create({ delay: { levels: '100ms 100ms 100ms 100ms 100ms' } });
    retrying.startAll();
    await retrying.leader();
    rc = retrying.client();
  }, 60_000);
  afterAll(async () => retrying.dispose());

  it('RECONSUME_LATER sends a message back: it returns from %RETRY%<group> with its msgId, origin and reconsumeTimes counting up, and the offsets commit past it', async () => {
    await rc.call({ op: 'createTopic', topic: 'orders', queues: 2 });
    const sent = await new Producer(rc, 20_000).send('orders', { body: Buffer.from('flaky'), key: 'k1' });
    const deliveries: PushMessage[] = [];
    const errors: unknown[] = [];
    const c = new PushConsumer(rc, { topic: 'orders', group: 'retry-g', consumerId: 'r1', ...QUICK, onError: (e) => errors.push(e) }, async ([m]) => {
      deliveries.push(m!);
      return m!.reconsumeTimes < 2 ? 'RECONSUME_LATER' : 'SUCCESS';
    });
    await c.start();
    try {
      await until('third delivery', () => deliveries.length >= 3, 20_000);
      await until('retry queue committed', async () => {
        const { offsets } = await rc.call({ op: 'queryOffsets', group: 'retry-g', queues: [{ topic: '%RETRY%retry-g', queueId: 0 }] });
        return offsets[0]!.offset === 2;
      });
    } finally {
      await c.stop();
    }
    expect(deliveries.map((m) => [m.topic, m.msgId, m.reconsumeTimes])).toEqual([
      ['orders', sent.msgId, 0],
      ['%RETRY%retry-g', sent.msgId, 1],
      ['%RETRY%retry-g', sent.msgId, 2],
    ]);
    const origin = { msgId: sent.msgId, topic: 'orders', queueId: sent.queueId, offset: sent.offset };
    expect(deliveries.slice(1).map((m) => m.origin)).toEqual([origin, origin]);
    expect(deliveries.every((m) => Buffer.from(m.body).toString() === 'flaky' && m.keys[0] === 'k1')).toBe(true);
    const { offsets } = await rc.call({ op: 'queryOffsets', group: 'retry-g', queues: [{ topic: 'orders', queueId: sent.queueId }] });
    expect(offsets[0]!.offset).toBe(sent.offset! + 1); // finished once sent back
    // Not finding the retry topic before the first retry was never reported.
    expect(errors.filter((e) => isLmqError(e, 'LMQ_TOPIC_NOT_FOUND'))).toEqual([]);
  }, 60_000);

  it('after maxReconsumeTimes failures the message goes to %DLQ%<group> and is finished', async () => {
    await rc.call({ op: 'createTopic', topic: 'doomed', queues: 1 });
    const sent = await new Producer(rc, 20_000).send('doomed', { body: Buffer.from('doomed') });
    const deliveries: PushMessage[] = [];
    const c = new PushConsumer(rc, { topic: 'doomed', group: 'dlq-g', consumerId: 'd1', maxReconsumeTimes: 1, ...QUICK }, async ([m]) => {
      deliveries.push(m!);
      throw new Error('always failing');
    });
    await c.start();
    try {
      await until('in the DLQ', async () => (await rc.call({ op: 'dlqList', group: 'dlq-g', fromOffset: 0, max: 10 })).deadLetters.length === 1, 20_000);
      await until('retry queue committed', async () => {
        const { offsets } = await rc.call({ op: 'queryOffsets', group: 'dlq-g', queues: [{ topic: '%RETRY%dlq-g', queueId: 0 }] });
        return offsets[0]!.offset === 1;
      });
    } finally {
      await c.stop();
    }
    expect(deliveries.map((m) => m.reconsumeTimes)).toEqual([0, 1]); // maxReconsumeTimes + 1 deliveries
    const { deadLetters } = await rc.call({ op: 'dlqList', group: 'dlq-g', fromOffset: 0, max: 10 });
    expect(deadLetters[0]).toMatchObject({ msgId: sent.msgId, topic: 'doomed', queue: 0, offset: 0, attempts: 2, resent: false, reason: expect.stringMatching(/always failing/) });
  }, 60_000);
});
