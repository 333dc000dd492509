import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { LedgerClient } from '../src/client/client.js';
import { PullConsumer } from '../src/client/consumer.js';
import { Producer } from '../src/client/producer.js';
import { isLmqError } from '../src/util/errors.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import { until } from '../src/util/until.js';

let cluster: LocalCluster | null = null;
afterEach(async () => {
  await cluster?.dispose();
  cluster = null;
});

async function startCluster(overrides: Record<string, unknown> = {}): Promise<LocalCluster> {
  cluster = await LocalCluster.create(overrides);
  cluster.startAll();
  await cluster.leader();
  await cluster.client().call({ op: 'createTopic', topic: 't', queues: 1 });
  return cluster;
}

/** Sends w-0, w-1, … one at a time until stopped; records what was acknowledged, in order. */
function continuousWriter(client: LedgerClient) {
  const producer = new Producer(client, 20_000);
  const acked: string[] = [];
  let stopped = false;
  let sent = 0;
  const done = (async () => {
    while (!stopped) {
      const body = `w-${sent++}`;
      try {
        await producer.send('t', { body: Buffer.from(body) });
        acked.push(body);
      } catch (error) {
        if (!isLmqError(error) || !error.retriable) throw error;
      }
    }
  })();
  return { acked, stop: async () => { stopped = true; await done; } };
}

async function readAll(client: LedgerClient, group: string): Promise<string[]> {
  const consumer = new PullConsumer(client, { topic: 't', group, from: 'first', pollWaitMs: 200, maxMessagesPerPull: 1000, maxBytesPerPull: 1 << 22 });
  await consumer.start();
  const bodies: string[] = [];
  for (;;) {
    const batch = await consumer.poll(false);
    if (batch.length === 0) return bodies;
    bodies.push(...batch.map((m) => Buffer.from(m.body).toString()));
  }
}

/** Every acknowledged write is present, in acknowledgement order (one queue, one sequential writer). */
function expectAckedInOrder(read: string[], acked: string[]): void {
  const position = new Map(read.map((body, i) => [body, i]));
  const missing = acked.filter((body) => !position.has(body));
  expect(missing).toEqual([]);
  const positions = acked.map((body) => position.get(body)!);
  expect(positions).toEqual([...positions].sort((a, b) => a - b));
  expect(new Set(read).size).toBe(read.length); // no duplicates either
}

async function appliedEverywhere(c: LocalCluster, index: number): Promise<void> {
  await until(`every node applied ${index}`, async () => {
    const statuses = await Promise.all(c.config.nodes.map((n) => c.status(n.id)));
    return statuses.every((s) => s !== null && s.appliedIndex >= index);
  }, 30_000, 100);
}

describe('cluster – real processes, real sockets, real files', () => {
  it('elects a leader and applies acknowledged writes on every node', async () => {
    const c = await startCluster();
    const producer = new Producer(c.client(), 10_000);
    for (let i = 0; i < 30; i++) await producer.send('t', { body: Buffer.from(`m-${i}`) });
    const leader = await c.leader();
    await appliedEverywhere(c, leader.commitIndex);
    expect(await readAll(c.client(), 'g')).toEqual(Array.from({ length: 30 }, (_, i) => `m-${i}`));
  });

  it('loses no acknowledged write when the leader is SIGKILLed mid-stream; the killed node catches up', async () => {
    const c = await startCluster();
    const writer = continuousWriter(c.client());
    await until('some writes', () => writer.acked.length >= 50);
    const oldLeader = await c.leader();
    await c.kill(oldLeader.id);
    const before = writer.acked.length;
    await until('writes on the new leader', () => writer.acked.length >= before + 50, 30_000);
    const newLeader = await c.leader([oldLeader.id]);
    expect(newLeader.term).toBeGreaterThan(oldLeader.term);
    c.start(oldLeader.id);
    await sleep(300);
    await writer.stop();
    expectAckedInOrder(await readAll(c.client(), 'g'), writer.acked);
    const final = await c.leader();
    await appliedEverywhere(c, final.commitIndex);
  });

  it('a paused leader steps down (check-quorum) and nothing acknowledged is lost', async () => {
    const c = await startCluster();
    const writer = continuousWriter(c.client());
    await until('some writes', () => writer.acked.length >= 30);
    const paused = await c.leader();
    c.signal(paused.id, 'SIGSTOP');
    const other = await c.leader([paused.id]);
    const during = writer.acked.length;
    await until('writes while paused', () => writer.acked.length >= during + 30, 30_000);
    c.signal(paused.id, 'SIGCONT');
    const steppedDown = await until(`${paused.id} steps down`, async () => {
      const s = await c.status(paused.id);
      return s?.role === 'follower' ? s : null;
    }, 20_000);
    expect(steppedDown.term).toBeGreaterThanOrEqual(other.term);
    await writer.stop();
    expectAckedInOrder(await readAll(c.client(), 'g'), writer.acked);
  });

  it('keeps the log, term and data across a clean restart of all three nodes', async () => {
    const c = await startCluster();
    const producer = new Producer(c.client(), 10_000);
    for (let i = 0; i < 20; i++) await producer.send('t', { body: Buffer.from(`r-${i}`) });
    const before = await Promise.all(c.config.nodes.map((n) => c.status(n.id)));
    const exitCodes = await Promise.all(c.config.nodes.map((n) => c.stop(n.id)));
    expect(exitCodes).toEqual([0, 0, 0]);
    c.startAll();
    await c.leader();
    // A leader needs two nodes; the third may still be starting.
    const after = await until('every node answers', async () => {
      const all = await Promise.all(c.config.nodes.map((n) => c.status(n.id)));
      return all.every((s) => s !== null) ? all : null;
    }, 30_000, 50);
    after.forEach((s, i) => {
      expect(s!.term).toBeGreaterThanOrEqual(before[i]!.term);
      expect(s!.lastIndex).toBeGreaterThanOrEqual(before[i]!.commitIndex);
    });
    expect(await readAll(c.client(), 'g')).toEqual(Array.from({ length: 20 }, (_, i) => `r-${i}`));
  });

  it('keeps serving after garbage and oversized frame headers on both ports', async () => {
    const c = await startCluster();
    const node = c.config.nodes[0]!;
    for (const port of [node.raftPort, node.clientPort]) {
      for (const payload of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), Buffer.alloc(4096, 0x5a)]) {
        await new Promise<void>((done) => {
          const socket = connect(port, node.host, () => socket.end(payload));
          socket.on('error', () => done());
          socket.on('close', () => done());
        });
      }
    }
    const producer = new Producer(c.client(), 10_000);
    await producer.send('t', { body: Buffer.from('still-here') });
    expect((await c.status(node.id))?.role).not.toBeUndefined();
    expect(await readAll(c.client(), 'g')).toEqual(['still-here']);
  });

  it('a follower back from a long absence catches up, its lag visible in status meanwhile', async () => {
    const c = await startCluster();
    const leader = await c.leader();
    const follower = c.config.nodes.find((n) => n.id !== leader.id)!.id;
    await c.kill(follower);
    const commitAtKill = (await c.leader()).commitIndex;
    // One request per send; the leader puts those that arrive while its last batch is out in
    // one entry, so the lag, counted in entries, is what the commit index moved by meanwhile.
    const producer = new Producer(c.client(), 20_000, { maxBatchMessages: 1, maxInflightRequests: 8 });
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 250; i++) await producer.send('t', { body: Buffer.from(`b-${w}-${i}`) });
    }));
    const lagging = await c.leader();
    const appended = lagging.commitIndex - commitAtKill;
    expect(appended).toBeGreaterThanOrEqual(2000 / 8); // at most 8 sends in flight: 8 to an entry at most
    expect(lagging.followers.find((f) => f.id === follower)!.lag).toBeGreaterThanOrEqual(appended);
    c.start(follower);
    const current = await c.leader();
    await appliedEverywhere(c, current.commitIndex);
    // The follower applies right after sending its last ack; the leader sees it a moment later.
    await until(`${follower} shows no lag`, async () => (await c.leader()).followers.find((f) => f.id === follower)?.lag === 0, 30_000, 50);
  });

  it('a request to a node mid-election waits for the election and names the new leader', async () => {
    // 10 ticks of 50 ms: an election timeout is 0.5–1 s; the node holds a request up to 2 s
    // (MAX_LEADER_WAIT_MS). The request goes out once the second node answers, so its start
    // (seconds on a loaded machine) is not part of that wait.
    const c = await LocalCluster.create({ raft: { electionTimeoutTicks: 10 } });
    cluster = c;
    const ids = c.config.nodes.map((n) => n.id);
    const [first, second] = ids as [string, string];
    // A new cluster elects its first leader only once every node has answered (RaftCore's
    // ForgottenVote): run it once with all three, then restart two of them.
    c.startAll();
    await until('every node follows a leader', async () => (await Promise.all(ids.map((id) => c.status(id)))).every((s) => s !== null && s.leader !== null), 30_000, 50);
    for (const id of ids) await c.stop(id);
    c.start(first);
    await until(`${first} answers`, async () => (await c.status(first)) !== null, 30_000, 50);
    c.start(second); // with two of three up, an election can now succeed
    await until(`${second} answers`, async () => (await c.status(second)) !== null, 30_000, 20);
    const client = c.client(10_000);
    let answer: unknown;
    try {
      answer = await client.callNode(first, { op: 'topics' }, 8_000);
    } catch (error) {
      answer = error;
    }
    // Without the wait, `first` would answer at once: not the leader, no leader known.
    if (isLmqError(answer)) {
      expect(answer.code).toBe('LMQ_NOT_LEADER');
      expect(answer.details.leader).toBe(second);
    } else {
      expect(answer).toEqual({ topics: [] });
    }
  });
});

describe('node start – stopping', () => {
  it('a second stop signal during the clean stop changes nothing (Ctrl-C under cluster start sends SIGINT, then SIGTERM)', async () => {
    const c = await LocalCluster.create();
    cluster = c;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['bin/ledgermq', 'node', 'start', '--id', 'n1', '--config', c.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until('the node is up', async () => output.includes('"node up"'), 30_000, 20);
    child.kill('SIGINT');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('already stopping');
    expect(output).not.toContain('stop failed');
  });
});
