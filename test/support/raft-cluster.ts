// A synchronous harness for Raft core tests: every node is the production NodeDriver over
// in-memory ports whose disk completes at once, messages are delivered in order, and a test
// can isolate nodes, filter messages, or act on a node's core directly.
import { NodeDriver } from '../../src/node/driver.js';
import { IMMEDIATE_DISK, MemoryHardStateStore, MemoryLogStore, QueueScheduler } from '../../src/node/memory-ports.js';
import type { RaftCore, RaftOptions } from '../../src/raft/core.js';
import type { MemoryLog } from '../../src/raft/memory-log.js';
import type { Message } from '../../src/raft/messages.js';
import type { Entry, HardState, NodeId } from '../../src/raft/types.js';
import { InvariantViolation } from '../../src/util/assert.js';

export const ELECTION_TICKS = 10;

interface TestNode {
  driver: NodeDriver<null>;
  readonly store: MemoryLogStore;
  /** The log's memory, durable and volatile views (a test may write it directly). */
  readonly log: MemoryLog;
  readonly hardState: MemoryHardStateStore;
  readonly scheduler: QueueScheduler;
  applied: Entry[];
}

/** Deferred tasks run per processReady() at most; far above what any scenario queues. */
const MAX_TASKS_PER_READY = 10_000;

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  readonly isolated = new Set<NodeId>();
  /** Messages for which this returns false are dropped. */
  filter: (m: Message) => boolean = () => true;
  /**
   * Where refused messages' reasons go when a test forges messages; null (the default): a
   * refusal is a bug in the sender, and throws.
   */
  refusals: string[] | null = null;
  private queue: Message[] = [];

  constructor(
    readonly ids: readonly NodeId[],
    private readonly overrides: Partial<RaftOptions> = {},
    initialLogs: Record<NodeId, Entry[]> = {},
    initialHardStates: Record<NodeId, HardState> = {},
  ) {
    for (const id of ids) {
      const store = new MemoryLogStore(IMMEDIATE_DISK, initialLogs[id] ?? []);
      const hardState = new MemoryHardStateStore(IMMEDIATE_DISK, initialHardStates[id]);
      const scheduler = new QueueScheduler(() => 0);
      const node = { store, log: store.log, hardState, scheduler, applied: [] as Entry[] } as TestNode;
      node.driver = this.makeDriver(id, node);
      this.nodes.set(id, node);
    }
    // Nodes with a blank hard state first ask every peer whether the cluster is new (RaftCore's
    // ForgottenVote): one tick sends the probes, the answers settle it before a scenario starts.
    for (const id of ids) if (this.core(id).votingSuspended()) this.node(id).driver.tick();
    this.stabilize();
  }

  private makeDriver(id: NodeId, node: Omit<TestNode, 'driver'>): NodeDriver<null> {
    const { randomInt = () => 0, ...raft } = this.overrides; // every election timeout is exactly ELECTION_TICKS
    return new NodeDriver<null>(
      {
        id,
        voters: this.ids,
        raft: {
          electionTimeoutTicks: ELECTION_TICKS, heartbeatIntervalTicks: 1, maxInflightMsgs: 16, maxInflightBytes: 1 << 20,
          maxAppendBytes: 1 << 16, maxApplyBytes: 1 << 20, maxUncommittedEntries: 1000, maxUncommittedBytes: 1 << 20,
          ...raft,
        },
        maxProposalWaitMs: 60_000,
      },
      {
        log: node.store,
        hardState: node.hardState,
        peers: { send: (_to, m) => this.queue.push(m as Message) }, // no snapshots here: only Raft messages
        stateMachine: { appliedIndex: () => 0, apply: (entries) => (this.nodes.get(id)!.applied.push(...entries), entries.map(() => null)) },
        scheduler: node.scheduler,
        randomInt,
        events: {
          refusedMessage: ({ from, reasons }) => {
            if (this.refusals === null) throw new InvariantViolation(`${id} refused a message from ${from}: ${reasons.join('; ')}`);
            this.refusals.push(...reasons);
          },
        },
      },
    );
  }

  core(id: NodeId): RaftCore {
    return this.node(id).driver.core;
  }

  node(id: NodeId): TestNode {
    return this.nodes.get(id)!;
  }

  /** Restarts a node from its durable log and hard state (its volatile state is lost). */
  restart(id: NodeId): void {
    const node = this.node(id);
    node.scheduler.crash();
    node.hardState.crash();
    node.store.crash(0);
    node.applied = [];
    node.driver = this.makeDriver(id, node);
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).driver.tick();
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

  /** Lets one node's driver carry out everything it has ready, queueing what it sends. Returns those messages. */
  processReady(id: NodeId): Message[] {
    const node = this.node(id);
    const before = this.queue.length;
    node.driver.kick(); // the test may have acted on the core directly
    node.scheduler.runQueued(MAX_TASKS_PER_READY);
    if (!node.driver.isIdle()) throw new Error(`${id} did not finish its Ready loop`);
    return this.queue.slice(before);
  }

  private deliver(m: Message): void {
    if (this.isolated.has(m.from) || this.isolated.has(m.to) || !this.filter(m)) return;
    this.node(m.to).driver.receive(m.from, m);
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
