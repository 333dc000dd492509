import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClusterConfig, type QuorumMode, parseConfig } from '../src/config/config.js';
import { HardStateStore } from '../src/log/hard-state-store.js';
import { LogStore } from '../src/log/log-store.js';
import { RaftNode, type StateMachine } from '../src/node/raft-node.js';
import type { Entry } from '../src/raft/types.js';
import { PeerTransport } from '../src/transport/peer-transport.js';
import { freePorts } from '../src/cluster/ports.js';
import { until } from '../src/util/until.js';

/** Records what it applied; its "result" is the entry's index. */
class RecordingStateMachine implements StateMachine<number> {
  readonly applied: string[] = [];
  private index = 0;
  appliedIndex(): number {
    return 0; // volatile: a restarted node re-applies the log from the start
  }
  apply(entries: readonly Entry[]): number[] {
    return entries.map((e) => {
      this.index = e.index;
      if (e.data.byteLength > 0) this.applied.push(new TextDecoder().decode(e.data));
      return this.index;
    });
  }
}

interface Running {
  node: RaftNode<number>;
  machine: RecordingStateMachine;
  stop(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function makeConfig(quorum: QuorumMode, raft: Record<string, number> = {}): Promise<ClusterConfig> {
  const root = mkdtempSync(join(tmpdir(), 'lmq-node-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const ports = await freePorts(3);
  return parseConfig({
    clusterId: 'test',
    nodes: ['n1', 'n2', 'n3'].map((id, i) => ({ id, host: '127.0.0.1', raftPort: ports[i], clientPort: 1, dataDir: join(root, id) })),
    flush: { mode: 'sync', intervalMs: 100 },
    quorum,
    raft: { tickMs: 20, ...raft },
  }, 'test');
}

async function startNode(config: ClusterConfig, id: string): Promise<Running> {
  const self = config.nodes.find((n) => n.id === id)!;
  const logger = pino({ level: 'silent' });
  const log = LogStore.open({ dir: join(self.dataDir, 'log'), segmentBytes: 1 << 20, flushMode: config.flush.mode, flushIntervalMs: config.flush.intervalMs, logger });
  const hardState = HardStateStore.open(join(self.dataDir, 'meta'));
  const machine = new RecordingStateMachine();
  let node: RaftNode<number> | null = null;
  const transport = new PeerTransport(
    { clusterId: config.clusterId, selfId: id, clusterSecret: null, listenHost: '127.0.0.1', listenPort: self.raftPort, peers: config.nodes.filter((n) => n.id !== id).map((n) => ({ id: n.id, host: n.host, port: n.raftPort })) },
    (from, m) => node?.receive(from, m),
  );
  node = new RaftNode({ config, id, log, hardState, stateMachine: machine, peers: transport, logger });
  await transport.start();
  node.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await node!.stop();
    await transport.close();
    await hardState.close();
  };
  cleanups.push(stop);
  return { node, machine, stop };
}

async function leaderOf(nodes: Running[]): Promise<Running> {
  return until('a leader', () => nodes.find((n) => n.node.status().role === 'leader'));
}

function propose(node: RaftNode<number>, text: string, mode: QuorumMode) {
  return node.propose(new TextEncoder().encode(text), mode);
}

describe('node – three nodes over real TCP and real log files', () => {
  it('elects a leader, commits proposals and applies them in order on every node', async () => {
    const config = await makeConfig('majority');
    const nodes = await Promise.all(config.nodes.map((n) => startNode(config, n.id)));
    const leader = await leaderOf(nodes);
    const texts = Array.from({ length: 100 }, (_, i) => `m${i}`);
    const acks = await Promise.all(texts.map((t) => propose(leader.node, t, 'majority')));
    expect(acks.map((a) => a.index)).toEqual([...acks.map((a) => a.index)].sort((a, b) => a - b));
    expect(acks.every((a) => a.result === a.index)).toBe(true);
    for (const n of nodes) await until(`${n.node.id} applies all`, () => n.machine.applied.length === texts.length);
    for (const n of nodes) expect(n.machine.applied).toEqual(texts);
    const follower = nodes.find((n) => n !== leader)!;
    await expect(propose(follower.node, 'x', 'majority')).rejects.toMatchObject({ code: 'LMQ_NOT_LEADER', details: { leader: leader.node.id } });
  });

  it('acknowledges under all and leader quorum', async () => {
    const config = await makeConfig('all');
    const nodes = await Promise.all(config.nodes.map((n) => startNode(config, n.id)));
    const leader = await leaderOf(nodes);
    const all = await propose(leader.node, 'to-all', 'all');
    for (const f of leader.node.status().followers) expect(f.matchIndex).toBeGreaterThanOrEqual(all.index);
    const local = await propose(leader.node, 'leader-only', 'leader');
    expect(local.result).toBeUndefined();
    expect(leader.node.status().persistedIndex).toBeGreaterThanOrEqual(local.index);
  });

  it('acknowledges under all quorum on the last ack, not at the next heartbeat', async () => {
    // Heartbeats 1 s apart: a write waiting for one takes 0.5 s on average; twenty in a row, ~10 s.
    const config = await makeConfig('all', { heartbeatIntervalTicks: 50, electionTimeoutTicks: 60 });
    const nodes = await Promise.all(config.nodes.map((n) => startNode(config, n.id)));
    const leader = await leaderOf(nodes);
    const startedMs = Date.now();
    for (let i = 0; i < 20; i++) await propose(leader.node, `all-${i}`, 'all');
    expect(Date.now() - startedMs).toBeLessThan(5_000);
  }, 30_000);

  it('keeps the log, term and vote across a restart of every node', async () => {
    const config = await makeConfig('majority');
    let nodes = await Promise.all(config.nodes.map((n) => startNode(config, n.id)));
    const leader = await leaderOf(nodes);
    await Promise.all(['a', 'b', 'c'].map((t) => propose(leader.node, t, 'majority')));
    const before = nodes.map((n) => n.node.status());
    await Promise.all(nodes.map((n) => n.stop()));
    nodes = await Promise.all(config.nodes.map((n) => startNode(config, n.id)));
    for (const [i, n] of nodes.entries()) {
      const after = n.node.status();
      expect(after.term).toBeGreaterThanOrEqual(before[i]!.term);
      expect(after.lastIndex).toBeGreaterThanOrEqual(before[i]!.commitIndex);
    }
    const newLeader = await leaderOf(nodes);
    await propose(newLeader.node, 'd', 'majority');
    for (const n of nodes) await until(`${n.node.id} re-applies`, () => n.machine.applied.length === 4);
    for (const n of nodes) expect(n.machine.applied).toEqual(['a', 'b', 'c', 'd']);
  });
});
