// The deterministic simulator (VOPR style). One seed fixes everything: the fault parameters,
// the network's drops, delays, reorders and duplicates, partitions that come and go, crashes
// that lose whatever a node had not yet synced, and client proposals. The real Raft core runs
// unmodified against an in-memory log with disk semantics.
//
// Safety is checked as the run goes: at most one leader per term; a new leader's log holds
// every committed entry (leader completeness); every node applies the same entry at each
// index; logs that share an (index, term) are identical up to it (log matching); every
// committed entry stays durable on a majority. Then everything heals and liveness is demanded:
// a leader, and a fresh proposal applied on every node, within a bounded number of ticks.
import { RaftCore } from '../raft/core.js';
import { MemoryLog } from '../raft/memory-log.js';
import type { Message } from '../raft/messages.js';
import type { Entry, HardState, NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { type NetworkFaults, SimNetwork } from './network.js';
import { Rng } from './rng.js';
import { TraceLog, describeMessage } from './trace.js';

export interface SimOptions {
  readonly seed: number;
  /** Ticks with faults on. */
  readonly safetyTicks: number;
  /** After healing, the cluster must converge within this many ticks. */
  readonly livenessTicksMax: number;
  /** Keep the whole trace instead of the last lines (for replaying one seed). */
  readonly fullTrace: boolean;
}

export const DEFAULT_SIM_OPTIONS: Omit<SimOptions, 'seed'> = Object.freeze({ safetyTicks: 1200, livenessTicksMax: 1000, fullTrace: false });

export interface SimStats {
  nodes: number;
  ticks: number;
  leadersElected: number;
  entriesCommitted: number;
  proposalsAcked: number;
  crashes: number;
  partitions: number;
  transfers: number;
}

export interface SimOutcome {
  readonly seed: number;
  readonly ok: boolean;
  readonly stats: SimStats;
  readonly failure?: { readonly tick: number; readonly message: string; readonly trace: readonly string[] };
}

class SafetyViolation extends Error {}

interface PendingPersist {
  readonly ready: ReturnType<RaftCore['ready']>;
  readonly completeAtTick: number;
}

interface SimNode {
  readonly id: NodeId;
  readonly log: MemoryLog;
  hardState: HardState;
  core: RaftCore | null;
  pending: PendingPersist | null;
  /** The state machine is volatile here: a restarted node re-applies from the start. */
  appliedIndex: number;
  restartAtTick: number;
  /** Proposals this node accepted as leader and has not yet applied: key -> (index, term). */
  readonly proposals: Map<string, { index: number; term: number }>;
}

/** Identity of an entry for comparisons: its payload, or for a no-op the term that made it. */
function entryKey(entry: Entry): string {
  return entry.data.byteLength === 0 ? `noop@${entry.term}` : new TextDecoder().decode(entry.data);
}

/** Fault parameters drawn from the seed, so seeds explore mild and harsh worlds alike. */
interface WorldParameters {
  nodeCount: number;
  faults: NetworkFaults;
  crashProbability: number;
  partitionProbability: number;
  proposeProbability: number;
  transferProbability: number;
  maxPersistDelayTicks: number;
  maxInflightMsgs: number;
  maxAppendBytes: number;
  preferredLeader: boolean;
}

function drawWorld(rng: Rng): WorldParameters {
  return {
    nodeCount: rng.chance(0.75) ? 3 : 5,
    faults: { dropProbability: rng.pick([0, 0.02, 0.1, 0.25]), duplicateProbability: rng.pick([0, 0.02, 0.1]), maxExtraDelayTicks: rng.pick([0, 2, 5, 12]) },
    crashProbability: rng.pick([0, 0.002, 0.01]),
    partitionProbability: rng.pick([0, 0.005, 0.02]),
    proposeProbability: rng.pick([0.1, 0.3, 0.8]),
    transferProbability: rng.pick([0, 0.002]),
    maxPersistDelayTicks: rng.pick([0, 1, 3]),
    maxInflightMsgs: rng.pick([1, 4, 64]),
    maxAppendBytes: rng.pick([200, 1000, 64 * 1024]),
    preferredLeader: rng.chance(0.2),
  };
}

export class Simulation {
  private readonly rng: Rng;
  private readonly world: WorldParameters;
  private readonly network: SimNetwork;
  private readonly nodes: SimNode[];
  private readonly ids: NodeId[];
  private readonly trace: TraceLog;
  private readonly stats: SimStats;
  private tick = 0;
  private proposalCounter = 0;
  /** After healing only the liveness marker is proposed: convergence is judged without extra load. */
  private clientLoad = true;
  /** Everything any node applied: index -> entry key. Committed entries, by definition. */
  private readonly committed = new Map<number, { term: number; key: string }>();
  private readonly committedIndexByKey = new Map<string, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Each leader's commit index as last seen, to check every advance. */
  private readonly leaderCommit = new Map<NodeId, { term: number; commit: number }>();
  /** Leader-targeted faults draw from their own stream, so the other draws of a seed stay as they were. */
  private readonly chaosRng: Rng;
  private readonly leaderChaos: number;
  private readonly seenLeader = new Map<NodeId, { term: number; commit: number }>();

  constructor(private readonly options: SimOptions) {
    this.rng = new Rng(options.seed);
    this.world = drawWorld(this.rng);
    this.network = new SimNetwork(this.rng.fork(), this.world.faults);
    this.chaosRng = new Rng(options.seed + 0x5bd1e995);
    this.leaderChaos = this.chaosRng.pick([0, 0.2, 0.5]);
    this.ids = Array.from({ length: this.world.nodeCount }, (_, i) => `n${i + 1}`);
    this.trace = new TraceLog(options.fullTrace ? Number.MAX_SAFE_INTEGER : 400);
    this.stats = { nodes: this.world.nodeCount, ticks: 0, leadersElected: 0, entriesCommitted: 0, proposalsAcked: 0, crashes: 0, partitions: 0, transfers: 0 };
    this.nodes = this.ids.map((id) => ({
      id, log: new MemoryLog(), hardState: { term: 0, vote: null }, core: null, pending: null, appliedIndex: 0, restartAtTick: 0, proposals: new Map(),
    }));
    for (const node of this.nodes) this.start(node);
    this.trace.add(this.tick, () => `seed ${options.seed}: ${JSON.stringify(this.world)}`);
  }

  run(): SimOutcome {
    try {
      for (; this.tick < this.options.safetyTicks; this.tick++) {
        this.injectFaults();
        this.step();
      }
      this.heal();
      this.demandLiveness();
      this.demandProgressWithDeafLeader();
      this.demandLiveness();
      this.checkLogMatching();
      return { seed: this.options.seed, ok: true, stats: this.finalStats() };
    } catch (error) {
      // Core assertions (InvariantViolation) and the simulator's own checks both end the run
      // with the seed and the trace that led there; nothing is swallowed.
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      return { seed: this.options.seed, ok: false, stats: this.finalStats(), failure: { tick: this.tick, message, trace: this.trace.lines() } };
    }
  }

  private finalStats(): SimStats {
    return { ...this.stats, ticks: this.tick, entriesCommitted: this.committed.size };
  }

  // ------------------------------------------------------------------ one tick

  private step(): void {
    this.restartDueNodes();
    this.proposeFromClients();
    for (const message of this.network.takeDue(this.tick)) {
      const node = this.node(message.to);
      if (node.core === null) continue;
      this.trace.add(this.tick, () => `${describeMessage(message)}`);
      node.core.step(message);
    }
    for (const node of this.nodes) node.core?.tick();
    for (const node of this.nodes) this.processReadies(node);
    this.checkLeaders();
    if (this.clientLoad) this.leaderTargetedFaults();
    this.checkCommitIndexDurable();
    if (this.tick % 25 === 0) {
      this.checkLogMatching();
      this.checkCommittedDurable();
    }
  }

  private start(node: SimNode): void {
    node.core = new RaftCore({
      id: node.id,
      voters: this.ids,
      storage: node.log,
      hardState: node.hardState,
      appliedIndex: 0,
      electionTimeoutTicks: 10,
      heartbeatIntervalTicks: 2,
      maxInflightMsgs: this.world.maxInflightMsgs,
      maxInflightBytes: 64 * 1024,
      maxAppendBytes: this.world.maxAppendBytes,
      maxApplyBytes: 4096,
      maxUncommittedEntries: 200,
      maxUncommittedBytes: 64 * 1024,
      preferredLeader: this.world.preferredLeader ? this.ids[0] : undefined,
      randomInt: (n) => this.rng.int(n),
    });
    node.appliedIndex = 0;
  }

  private restartDueNodes(): void {
    for (const node of this.nodes) {
      if (node.core === null && node.restartAtTick <= this.tick) {
        const line = `restart ${node.id} (log ${node.log.lastIndex()}, term ${node.hardState.term}, vote ${node.hardState.vote})`;
        this.trace.add(this.tick, () => line);
        this.start(node);
      }
    }
  }

  private proposeFromClients(): void {
    if (!this.clientLoad || !this.rng.chance(this.world.proposeProbability)) return;
    const node = this.rng.pick(this.nodes);
    if (node.core === null) return;
    const key = `c${this.proposalCounter++}`;
    const result = node.core.propose([new TextEncoder().encode(key)]);
    if (!result.ok) return;
    node.proposals.set(key, { index: result.firstIndex, term: result.term });
    this.trace.add(this.tick, () => `${node.id} accepts proposal ${key} at ${result.firstIndex}@${result.term}`);
  }

  // ------------------------------------------------------------------ the Ready contract, simulated

  private processReadies(node: SimNode): void {
    // Bounded: a persist with no delay completes in the same tick and may release another Ready.
    for (let round = 0; round < 8 && node.core !== null; round++) {
      if (node.pending !== null) {
        if (node.pending.completeAtTick > this.tick) {
          // While the disk works, the node may send what needs no durability (takeMessages).
          if (this.rng.chance(0.5)) {
            for (const message of node.core.takeMessages()) {
              this.checkBackedByHardState(node, message);
              this.network.send(message, this.tick);
            }
          }
          return;
        }
        this.completePersist(node, node.pending);
        node.pending = null;
      }
      if (!node.core.hasReady()) return;
      const ready = node.core.ready();
      if (ready.hardState !== null) node.hardState = ready.hardState; // synced before anything is sent
      for (const message of [...ready.messages, ...ready.persistedMessages]) this.checkBackedByHardState(node, message);
      for (const message of ready.messages) this.network.send(message, this.tick);
      node.log.write(ready.entries);
      node.pending = { ready, completeAtTick: this.tick + this.rng.int(this.world.maxPersistDelayTicks + 1) };
    }
  }

  private completePersist(node: SimNode, pending: PendingPersist): void {
    const core = node.core!;
    node.log.sync();
    for (const message of pending.ready.persistedMessages) this.network.send(message, this.tick);
    for (const entry of pending.ready.committedEntries) this.apply(node, entry);
    core.advance(pending.ready);
  }

  private apply(node: SimNode, entry: Entry): void {
    this.check(entry.index === node.appliedIndex + 1, () => `${node.id} applies ${entry.index} after ${node.appliedIndex}`);
    node.appliedIndex = entry.index;
    const key = entryKey(entry);
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.committed.set(entry.index, { term: entry.term, key });
      this.committedIndexByKey.set(key, entry.index);
    }
    else this.check(known.key === key && known.term === entry.term, () => `state machine safety: ${node.id} applies ${key}@${entry.term} at ${entry.index}, another node applied ${known.key}@${known.term}`);
    const proposal = node.proposals.get(key);
    if (proposal !== undefined) {
      this.check(proposal.index === entry.index && proposal.term === entry.term, () => `proposal ${key} accepted at ${proposal.index}@${proposal.term} applied at ${entry.index}@${entry.term}`);
      node.proposals.delete(key);
      this.stats.proposalsAcked++;
    }
  }

  // ------------------------------------------------------------------ faults

  private injectFaults(): void {
    if (this.rng.chance(this.world.crashProbability)) this.crashRandomNode();
    if (this.rng.chance(this.world.partitionProbability)) this.changePartition();
    if (this.rng.chance(this.world.transferProbability)) {
      const leader = this.nodes.find((n) => n.core?.status().role === 'leader');
      const target = this.rng.pick(this.ids);
      if (leader !== undefined && leader.core!.transferLeadership(target)) {
        this.stats.transfers++;
        this.trace.add(this.tick, () => `${leader.id} transfers leadership to ${target}`);
      }
    }
  }

  /**
   * Faults aimed at the moments Raft is most fragile (Figure 8 of the paper): right after a
   * node wins an election (before its no-op has spread) and right after a leader advances its
   * commit index (before followers have caught up to its own-term entries).
   */
  private leaderTargetedFaults(): void {
    if (this.leaderChaos === 0) return;
    for (const node of this.nodes) {
      const status = node.core?.status();
      if (status?.role !== 'leader') continue;
      const seen = this.seenLeader.get(node.id);
      this.seenLeader.set(node.id, { term: status.term, commit: status.commitIndex });
      const fresh = seen === undefined || seen.term !== status.term;
      const committed = !fresh && status.commitIndex > seen.commit;
      if (!(fresh || committed) || !this.chaosRng.chance(fresh ? this.leaderChaos : this.leaderChaos / 3)) continue;
      if (this.chaosRng.chance(0.5)) {
        this.crashNode(node, this.chaosRng);
      } else {
        this.network.healAll();
        this.network.isolate(node.id, this.ids);
        this.stats.partitions++;
        this.trace.add(this.tick, () => `PARTITION isolate leader ${node.id} (${fresh ? 'just elected' : 'just committed'})`);
      }
      return;
    }
  }

  private crashRandomNode(): void {
    const live = this.nodes.filter((n) => n.core !== null);
    if (live.length <= 1) return;
    this.crashNode(this.rng.pick(live), this.rng);
  }

  private crashNode(node: SimNode, rng: Rng): void {
    if (this.nodes.filter((n) => n.core !== null).length <= 1) return;
    const keepUnsynced = rng.pick([0, 0, 0.5, 1]);
    node.core = null;
    node.pending = null;
    node.proposals.clear(); // those clients see a timeout: outcome unknown
    node.log.crash(keepUnsynced);
    node.restartAtTick = this.tick + 5 + rng.int(150);
    this.stats.crashes++;
    // Peers usually see its connections close (a killed process), not always (power loss).
    for (const peer of this.nodes) {
      if (peer.core !== null && rng.chance(0.5)) peer.core.peerDisconnected(node.id);
    }
    const line = `CRASH ${node.id} (kept ${keepUnsynced} of unsynced; log now ${node.log.lastIndex()})`;
    this.trace.add(this.tick, () => line);
  }

  private changePartition(): void {
    this.network.healAll();
    const kind = this.rng.pick(['heal', 'isolate', 'oneWay', 'split'] as const);
    if (kind === 'isolate') this.network.isolate(this.rng.pick(this.ids), this.ids);
    if (kind === 'oneWay') {
      const from = this.rng.pick(this.ids);
      const to = this.rng.pick(this.ids.filter((id) => id !== from));
      this.network.cut(from, to);
    }
    if (kind === 'split') {
      const minority = this.ids.filter(() => this.rng.chance(0.4));
      for (const a of minority) for (const b of this.ids) if (!minority.includes(b)) (this.network.cut(a, b), this.network.cut(b, a));
    }
    if (kind !== 'heal') this.stats.partitions++;
    const line = `PARTITION ${kind} (${this.network.cutLinkCount()} links cut)`;
    this.trace.add(this.tick, () => line);
  }

  private heal(): void {
    this.network.healAll();
    this.clientLoad = false;
    this.network.faults = { dropProbability: 0, duplicateProbability: 0, maxExtraDelayTicks: 1 };
    for (const node of this.nodes) node.restartAtTick = Math.min(node.restartAtTick, this.tick);
    this.trace.add(this.tick, () => `HEAL everything`);
  }

  private demandLiveness(): void {
    const deadline = this.tick + this.options.livenessTicksMax;
    let marker: { key: string; node: SimNode } | null = null;
    for (; this.tick < deadline; this.tick++) {
      if (marker !== null) {
        const index = this.committedIndexByKey.get(marker.key);
        if (index !== undefined && this.nodes.every((n) => n.core !== null && n.appliedIndex >= index)) return;
        // Not committed and its leader lost it (stepped down, or the entry was replaced): try again.
        if (index === undefined && (!marker.node.proposals.has(marker.key) || marker.node.core?.status().role !== 'leader')) marker = null;
      }
      marker ??= this.proposeMarker();
      this.step();
    }
    throw new SafetyViolation(`liveness: no leader applied a fresh proposal on every node within ${this.options.livenessTicksMax} ticks after healing`);
  }

  /**
   * Availability under a partial partition: the leader can still send but hears nobody (every
   * link into it is cut). The others form a connected majority, so they must elect a leader
   * among themselves and commit a fresh proposal on a majority — which needs the deaf leader to
   * step down (check quorum) so its heartbeats stop holding the followers' leases.
   */
  private demandProgressWithDeafLeader(): void {
    const deaf = this.nodes.find((n) => n.core?.status().role === 'leader');
    if (deaf === undefined) return;
    for (const id of this.ids) if (id !== deaf.id) this.network.cut(id, deaf.id);
    this.trace.add(this.tick, () => `PARTITION every link into leader ${deaf.id} cut`);
    const quorum = Math.floor(this.nodes.length / 2) + 1;
    const deadline = this.tick + this.options.livenessTicksMax;
    let marker: { key: string; node: SimNode } | null = null;
    for (; this.tick < deadline; this.tick++) {
      if (marker !== null) {
        const index = this.committedIndexByKey.get(marker.key);
        if (index !== undefined && this.nodes.filter((n) => n.appliedIndex >= index).length >= quorum) {
          this.network.healAll();
          this.trace.add(this.tick, () => `HEAL everything`);
          return;
        }
        if (index === undefined && (!marker.node.proposals.has(marker.key) || marker.node.core?.status().role !== 'leader')) marker = null;
      }
      marker ??= this.proposeMarker(deaf.id);
      this.step();
    }
    throw new SafetyViolation(`availability: with every link into ${deaf.id} cut, the connected majority applied no fresh proposal within ${this.options.livenessTicksMax} ticks`);
  }

  /** Proposes a marker on the current leader, if there is one. */
  private proposeMarker(exclude?: NodeId): { key: string; node: SimNode } | null {
    const leader = this.nodes.find((n) => n.id !== exclude && n.core?.status().role === 'leader');
    if (leader === undefined) return null;
    const key = `marker${this.proposalCounter++}`;
    const result = leader.core!.propose([new TextEncoder().encode(key)]);
    if (!result.ok) return null;
    leader.proposals.set(key, { index: result.firstIndex, term: result.term });
    return { key, node: leader };
  }

  // ------------------------------------------------------------------ invariants

  /** What a node tells others must already be durable: its term, and above all a granted vote. */
  private checkBackedByHardState(node: SimNode, m: Message): void {
    if (m.type === 'preVote' || m.type === 'preVoteResp') return; // these carry a future term by design
    this.check(m.term <= node.hardState.term, () => `durable term: ${node.id} sends ${m.type} in term ${m.term} with durable term ${node.hardState.term}`);
    if (m.type === 'voteResp' && !m.reject) {
      // A higher durable term supersedes the vote (the node can never vote in m.term again).
      this.check(node.hardState.term > m.term || node.hardState.vote === m.to, () =>
        `durable vote: ${node.id} grants its vote to ${m.to} in term ${m.term} but its durable hard state is ${JSON.stringify(node.hardState)}`);
    }
  }

  private check(condition: boolean, message: () => string): asserts condition {
    if (!condition) throw new SafetyViolation(message());
  }

  private node(id: NodeId): SimNode {
    const node = this.nodes.find((n) => n.id === id);
    assert(node !== undefined, `unknown node ${id}`);
    return node;
  }

  /**
   * At most one leader per term; a new leader holds every committed entry; a leader only ever
   * advances its commit index onto an entry of its own term (§5.4.2: it may not commit an older
   * term's entry by counting replicas).
   */
  private checkLeaders(): void {
    for (const node of this.nodes) {
      const status = node.core?.status();
      if (status?.role !== 'leader') continue;
      const lastCommit = this.leaderCommit.get(node.id);
      if (lastCommit !== undefined && lastCommit.term === status.term && status.commitIndex > lastCommit.commit) {
        const term = node.core!.termAt(status.commitIndex);
        this.check(term === status.term, () => `commit rule: ${node.id} (leader of term ${status.term}) committed up to ${status.commitIndex}, an entry of term ${term}`);
      }
      this.leaderCommit.set(node.id, { term: status.term, commit: status.commitIndex });
      const known = this.leaderOfTerm.get(status.term);
      if (known === node.id) continue;
      this.check(known === undefined, () => `election safety: ${known} and ${node.id} both lead term ${status.term}`);
      this.leaderOfTerm.set(status.term, node.id);
      this.stats.leadersElected++;
      this.trace.add(this.tick, () => `${node.id} LEADER of term ${status.term} (last ${status.lastIndex}, commit ${status.commitIndex})`);
      for (const [index, entry] of this.committed) {
        this.check(node.core!.termAt(index) === entry.term, () => `leader completeness: ${node.id} leads term ${status.term} without committed entry ${index} (${entry.key})`);
      }
    }
  }

  /** Logs that hold an entry with the same index and term are identical up to that index. */
  private checkLogMatching(): void {
    const logs = this.nodes.map((n) => ({ id: n.id, entries: n.log.durableEntries() }));
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const left = logs[a]!.entries;
        const right = logs[b]!.entries;
        let shared = Math.min(left.length, right.length);
        while (shared > 0 && left[shared - 1]!.term !== right[shared - 1]!.term) shared--;
        for (let i = 0; i < shared; i++) {
          this.check(left[i]!.term === right[i]!.term && entryKey(left[i]!) === entryKey(right[i]!), () =>
            `log matching: ${logs[a]!.id} and ${logs[b]!.id} share ${shared}@${left[shared - 1]!.term} but differ at ${i + 1}`);
        }
      }
    }
  }

  /**
   * Every node's commit index, applied or not, names an entry durable on a majority: a leader
   * may count its own copy toward commit only once it is durable. (Log matching extends this to
   * every index below.) Stronger than checkCommittedDurable, which sees only applied entries.
   */
  private checkCommitIndexDurable(): void {
    const quorum = Math.floor(this.nodes.length / 2) + 1;
    for (const node of this.nodes) {
      const status = node.core?.status();
      if (status === undefined || status.commitIndex === 0) continue;
      const term = node.core!.termAt(status.commitIndex);
      const holders = this.nodes.filter((n) => n.log.durableEntries()[status.commitIndex - 1]?.term === term).length;
      this.check(holders >= quorum, () =>
        `commit durability: ${node.id} (${status.role}, term ${status.term}) has commit index ${status.commitIndex}@${term}, durable on ${holders} nodes, fewer than ${quorum}`);
    }
  }

  /** Every committed entry is durable on a majority (a crash anywhere cannot lose it). */
  private checkCommittedDurable(): void {
    const quorum = Math.floor(this.nodes.length / 2) + 1;
    for (const [index, entry] of this.committed) {
      const holders = this.nodes.filter((n) => n.log.durableEntries()[index - 1]?.term === entry.term).length;
      this.check(holders >= quorum, () => `durability: committed entry ${index} (${entry.key}) is durable on ${holders} nodes, fewer than ${quorum}`);
    }
  }
}

export function runSeed(seed: number, options: Partial<Omit<SimOptions, 'seed'>> = {}): SimOutcome {
  return new Simulation({ ...DEFAULT_SIM_OPTIONS, ...options, seed }).run();
}

