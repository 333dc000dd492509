// A synchronous harness for Raft core tests: every node follows the Ready contract at once,
// messages are delivered in order, and a test can isolate nodes or filter messages.
import { RaftCore, type RaftOptions } from '../../src/raft/core.js';
import { MemoryLog } from '../../src/raft/memory-log.js';
import type { Message } from '../../src/raft/messages.js';
import type { Entry, HardState, NodeId } from '../../src/raft/types.js';

export const ELECTION_TICKS = 10;

interface TestNode {
  core: RaftCore;
  log: MemoryLog;
  hardState: HardState;
  applied: Entry[];
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  readonly isolated = new Set<NodeId>();
  /** Messages for which this returns false are dropped. */
  filter: (m: Message) => boolean = () => true;
  private queue: Message[] = [];

  constructor(
    readonly ids: readonly NodeId[],
    private readonly overrides: Partial<RaftOptions> = {},
    initialLogs: Record<NodeId, Entry[]> = {},
    initialHardStates: Record<NodeId, HardState> = {},
  ) {
    for (const id of ids) {
      const log = new MemoryLog(initialLogs[id] ?? []);
      const hardState = initialHardStates[id] ?? { term: 0, vote: null };
      this.nodes.set(id, { core: this.makeCore(id, log, hardState), log, hardState, applied: [] });
    }
  }

  private makeCore(id: NodeId, log: MemoryLog, hardState: HardState): RaftCore {
    return new RaftCore({
      id, voters: this.ids, storage: log, hardState, appliedIndex: 0,
      electionTimeoutTicks: ELECTION_TICKS, heartbeatIntervalTicks: 1, maxInflightMsgs: 16, maxInflightBytes: 1 << 20,
      maxAppendBytes: 1 << 16, maxApplyBytes: 1 << 20, maxUncommittedEntries: 1000, maxUncommittedBytes: 1 << 20,
      randomInt: () => 0, // every randomized election timeout is exactly ELECTION_TICKS
      ...this.overrides,
    });
  }

  core(id: NodeId): RaftCore {
    return this.nodes.get(id)!.core;
  }

  node(id: NodeId): TestNode {
    return this.nodes.get(id)!;
  }

  /** Restarts a node from its durable log and hard state (its volatile state is lost). */
  restart(id: NodeId): void {
    const node = this.node(id);
    node.log.crash(0);
    node.core = this.makeCore(id, node.log, node.hardState);
    node.applied = [];
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.core(id).tick();
  }

  /** Lets `id` time out and run its election to the end. */
  elect(id: NodeId): void {
    this.tick(id, ELECTION_TICKS);
    this.stabilize();
  }

  /**
   * Lets followers' leases on the current leader run out (as they do when the leader dies):
   * each times out once with its own campaign lost, so it grants the next candidate's votes.
   */
  expireLeases(...ids: NodeId[]): void {
    for (const id of ids) {
      const wasIsolated = this.isolated.has(id);
      this.isolated.add(id);
      this.tick(id, ELECTION_TICKS);
      this.stabilize();
      if (!wasIsolated) this.isolated.delete(id);
    }
  }

  /** Delivers queued messages for exactly `rounds` rounds, quiet or not. */
  runRounds(rounds: number): void {
    for (let round = 0; round < rounds; round++) {
      for (const id of this.ids) this.processReady(id);
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliver(m);
    }
  }

  propose(id: NodeId, text: string) {
    return this.core(id).propose([new TextEncoder().encode(text)]);
  }

  /** Follows every Ready and delivers every message until the cluster is quiet. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      for (const id of this.ids) this.processReady(id);
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliver(m);
    }
    throw new Error('cluster did not stabilize');
  }

  /** Runs the Ready contract for one node, queueing what it sends. Returns the Ready's messages. */
  processReady(id: NodeId): Message[] {
    const node = this.node(id);
    const sent: Message[] = [];
    while (node.core.hasReady()) {
      const ready = node.core.ready();
      if (ready.hardState) node.hardState = ready.hardState;
      node.log.write(ready.entries);
      node.log.sync();
      sent.push(...ready.messages, ...ready.persistedMessages);
      node.applied.push(...ready.committedEntries);
      node.core.advance(ready);
    }
    this.queue.push(...sent);
    return sent;
  }

  private deliver(m: Message): void {
    if (this.isolated.has(m.from) || this.isolated.has(m.to) || !this.filter(m)) return;
    this.core(m.to).step(m);
  }

  /** Drops whatever is queued (e.g. to lose one round of messages). */
  dropQueued(): Message[] {
    const dropped = this.queue;
    this.queue = [];
    return dropped;
  }

  appliedTexts(id: NodeId): string[] {
    return this.node(id).applied.filter((e) => e.data.byteLength > 0).map((e) => new TextDecoder().decode(e.data));
  }

  logTerms(id: NodeId): number[] {
    return this.node(id).log.durableEntries().map((e) => e.term);
  }
}

export function entry(index: number, term: number, text = ''): Entry {
  return { index, term, type: text === '' ? 0 : 1, data: new TextEncoder().encode(text) };
}
