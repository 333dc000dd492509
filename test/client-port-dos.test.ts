// Client-port denial of service (issue 14), against a real three-node cluster: a legitimate
// client on the same address stays served — and the leader stays leader — while a hostile
// client holds 10,000 idle connections, 1,030 connections with one header byte each, or 256
// unread pulls of 8 MiB on one connection. Before the connection hygiene of
// src/transport/rpc-server.ts the first two locked every client out and the third took the
// leader's RSS to 2.25 GB. The attacks are the benchmark's (src/bench/dos.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idleConnections, fillQueue, partialHeaderConnections, produceWhile, unreadPulls, type Attack } from '../src/bench/dos.js';
import type { LedgerClient } from '../src/client/client.js';
import { Producer } from '../src/client/producer.js';
import { LocalCluster } from '../src/cluster/local-cluster.js';
import type { NodeStatus } from '../src/protocol/index.js';
import { until } from '../src/util/until.js';

const MIB = 1024 * 1024;
/** The bound on the leader's RSS under the pull attack (it reached 2,250 MB before). */
const MAX_LEADER_RSS_MB = 800;

let cluster: LocalCluster;
let leader: NodeStatus;
let client: LedgerClient;
let attack: Attack | null = null;

/**
 * Elections after 1–2 s of silence instead of the default 300–600 ms: on this shared 2-core
 * machine (load average 10–12 while the tests were written) the default elects new leaders
 * with no attack at all. The attacks under test stalled the leader for seconds and took 2.25 GB;
 * bench/dos.ts measures them with the default timeouts.
 */
const RAFT = { electionTimeoutTicks: 20 };

beforeAll(async () => {
  cluster = await LocalCluster.create({ raft: RAFT });
  cluster.startAll();
  leader = await cluster.leader([], 30_000);
  client = cluster.client();
  await client.call({ op: 'createTopic', topic: 'legit', queues: 4 });
  await client.call({ op: 'createTopic', topic: 'big', queues: 1 });
  await new Producer(client, 10_000).send('legit', { body: Buffer.from('served before the attack') });
}, 60_000);

afterAll(async () => {
  attack?.stop();
  await cluster?.dispose();

});

function leaderPort(): number {
  return cluster.config.nodes.find((n) => n.id === leader.id)!.clientPort;
}

/** The leader before the attack still leads, in the same term. */
async function expectSameLeader(): Promise<void> {
  const now = await cluster.status(leader.id);
  expect(now).toMatchObject({ role: 'leader', term: leader.term });
}

/** A client that connects after the attack started is served too (nobody is locked out). */
async function expectNewcomerServed(): Promise<void> {
  const newcomer = cluster.client(10_000);
  const result = await new Producer(newcomer, 10_000).send('legit', { body: Buffer.from('newcomer') });
  expect(result.offset).not.toBeNull();
  newcomer.close();
}

describe('client port – denial of service', () => {
  it('serves a legitimate client while 10,000 idle connections are opened and held', async () => {
    const opening = idleConnections('127.0.0.1', leaderPort(), 10_000);
    const served = produceWhile(client, 'legit', 4_000, 50, null);
    attack = await opening;
    const during = await served;
    await expectNewcomerServed();
    expect(during.failed, during.firstError ?? '').toBe(0);
    expect(during.produced).toBeGreaterThan(0);
    // The leader holds at most maxConnections (1024) of them: the rest gave way as they came.
    expect(attack.closedByServer()).toBeGreaterThanOrEqual(10_000 - 1024);
    await expectSameLeader();
    attack.stop();
    attack = null;
  }, 40_000);

  it('serves a legitimate client while 1,030 connections each hold one header byte, and closes them after partialFrameTimeoutMs', async () => {
    attack = await partialHeaderConnections('127.0.0.1', leaderPort(), 1_030);
    await expectNewcomerServed();
    const during = await produceWhile(client, 'legit', 3_000, 50, null);
    expect(during.failed, during.firstError ?? '').toBe(0);
    const held = attack;
    // 5 s after its byte every one is closed; the bound is generous for a loaded machine.
    await until('every partial-header connection is closed by the leader', () => held.closedByServer() === 1_030, 20_000);
    await expectSameLeader();
    attack.stop();
    attack = null;
  }, 40_000);

  it('keeps the leader under 800 MB and leading while one connection pipelines 256 pulls of 8 MiB and never reads', async () => {
    await fillQueue(client, 'big', 12, 1_000_000); // each pull of 8 MiB finds 8 MB to read
    attack = await unreadPulls('127.0.0.1', leaderPort(), { topic: 'big', queueId: 0, maxBytes: 8 * MIB }, 256);
    const during = await produceWhile(client, 'legit', 8_000, 100, cluster.pid(leader.id));
    expect(during.failed, during.firstError ?? '').toBe(0);
    expect(during.produced).toBeGreaterThan(10);
    expect(during.maxRssMb).not.toBeNull();
    expect(during.maxRssMb!).toBeLessThan(MAX_LEADER_RSS_MB);
    await expectSameLeader();
    attack.stop();
    attack = null;
  }, 60_000);
});
