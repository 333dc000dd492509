// The deterministic simulator (VOPR style). One seed fixes everything: the fault parameters,
// the network's drops, delays, reorders and duplicates, partitions that come and go, crashes
// that lose whatever a node had not yet synced, disk latencies, and client proposals under
// every quorum mode. Each node is the production NodeDriver (src/node/driver.ts) — the code
// that carries out the Ready contract in real processes — over in-memory twins of its ports:
// a log and a hard-state store that are durable only once the simulated disk completes their
// writes, a scheduler whose deferred work runs (or is postponed) from the tick loop, and the
// simulated network. Nodes take snapshots and compact their logs at random points (so
// followers behind the first index are sent snapshots, in chunks, over the same faulty network),
// and a crash may also wipe a node's disk (a replaced disk: it rejoins with nothing).
//
// Safety is checked as the run goes: at most one leader per term; a new leader's log holds
// every committed entry (leader completeness); every node applies the same entry at each
// index; logs that share an (index, term) are identical up to it (log matching); every
// committed entry stays durable on a majority; nothing is sent before the term and vote it
// depends on are durable; and every acknowledgement keeps its quorum mode's promise at the
// moment it is given (majority: durable on a majority; all: on every node; leader: on the
// leader). Then everything heals and liveness is demanded: a leader, and a fresh proposal
// applied on every node, within a bounded number of ticks.
import type { QuorumMode } from '../config/config.js';
import { pack, unpack } from 'msgpackr';
import { NodeDriver } from '../node/driver.js';
import { type MemorySnapshot, MemoryHardStateStore, MemoryLogStore, MemorySnapshotStore, QueueScheduler, SimDisk } from '../node/memory-ports.js';
import type { PeerMessage, StateMachine } from '../node/ports.js';
import type { Message } from '../raft/messages.js';
import type { Entry, NodeId } from '../raft/types.js';
import { InvariantViolation, assert } from '../util/assert.js';
import type { LmqError } from '../util/errors.js';
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

/** The command that replays one seed exactly, with every option that shaped its run. */
export function replayCommand(seed: number, options: Partial<Omit<SimOptions, 'seed'>> = {}): string {
  const flag = (name: string, value: number | undefined, byDefault: number) => (value !== undefined && value !== byDefault ? ` ${name} ${value}` : '');
  const ticks = flag('--ticks', options.safetyTicks, DEFAULT_SIM_OPTIONS.safetyTicks);
  const liveness = flag('--liveness-ticks', options.livenessTicksMax, DEFAULT_SIM_OPTIONS.livenessTicksMax);
  return `./bin/ledgermq sim --seeds 1 --seed ${seed}${ticks}${liveness} --trace`;
}

export interface SimStats {
  nodes: number;
  ticks: number;
  leadersElected: number;
  entriesCommitted: number;
  proposalsAcked: number;
  /** Acknowledgements per quorum mode (each checked against durability when given). */
  acksByMode: Record<QuorumMode, number>;
  crashes: number;
  /** Crashes that also wiped the node's disk. */
  wipes: number;
  partitions: number;
  transfers: number;
  snapshotsTaken: number;
  /** Snapshots installed from a leader. */
  snapshotsInstalled: number;
}

/** safety: an invariant broke (exit 1); liveness: no convergence after healing (exit 4); crash: the simulator itself failed (exit 5). */
export type SimFailureKind = 'safety' | 'liveness' | 'crash';

export interface SimOutcome {
  readonly seed: number;
  readonly ok: boolean;
  /** The fault parameters the seed drew, as one line (printed first on a failure). */
  readonly world: string;
  readonly stats: SimStats;
  readonly failure?: { readonly kind: SimFailureKind; readonly tick: number; readonly message: string; readonly trace: readonly string[] };
}

class SafetyViolation extends Error {
  override name = 'SafetyViolation';
}

class LivenessFailure extends Error {
  override name = 'LivenessFailure';
}

/** Simulated milliseconds per tick: the proposal deadlines' clock. */
const TICK_MS = 10;
/** Proposals wait this long for their quorum (e.g. `all` with a node down) before LMQ_TIMEOUT. */
const MAX_PROPOSAL_WAIT_MS = 500 * TICK_MS;
/** Rounds of deferred work and disk completions per node and tick; the rest waits a tick. */
const MAX_EVENT_ROUNDS_PER_TICK = 16;
const MAX_TASKS_PER_ROUND = 64;

interface SimNode {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly log: MemoryLogStore;
  readonly hardState: MemoryHardStateStore;
  readonly snapshots: MemorySnapshotStore;
  readonly scheduler: QueueScheduler;
  driver: NodeDriver<string> | null;
  /**
   * The state machine: the keys of the entries applied, in order. It is volatile: a restarted
   * node starts from its newest durable snapshot and re-applies the log after it.
   */
  appliedIndex: number;
  appliedKeys: string[];
  restartAtTick: number;
}

const utf8 = new TextDecoder();

/** Identity of an entry for comparisons: its payload, or for a no-op the term that made it. */
function entryKey(entry: Entry): string {
  return entry.data.byteLength === 0 ? `noop@${entry.term}` : utf8.decode(entry.data);
}

/** The simulated network passes entries by reference, so one object on two nodes is one entry. */
function sameEntry(a: Entry, b: Entry): boolean {
  return a === b || (a.term === b.term && entryKey(a) === entryKey(b));
}

/** Fault parameters drawn from the seed, so seeds explore mild and harsh worlds alike. */
interface WorldParameters {
  nodeCount: number;
  faults: NetworkFaults;
  crashProbability: number;
  partitionProbability: number;
  proposeProbability: number;
  transferProbability: number;
  /** Ticks a log flush or a hard-state save takes at most (drawn per request). */
  maxDiskDelayTicks: number;
  /** Chance that deferred work (the Ready loop, early sends) slips to the next tick. */
  postponeProbability: number;
  quorumModes: readonly QuorumMode[];
  maxInflightMsgs: number;
  maxAppendBytes: number;
  preferredLeader: boolean;
}

/** Snapshot and compaction parameters, drawn from their own stream (see compactionRng). */
interface CompactionParameters {
  /** Chance per node and tick of taking a snapshot (then compacting the log up to it). */
  snapshotProbability: number;
  /** Of the crashes, the share that also wipe the disk. */
  wipeShare: number;
  maxChunkBytes: number;
}

function drawCompaction(rng: Rng): CompactionParameters {
  return {
    snapshotProbability: rng.pick([0, 0.005, 0.02, 0.1]),
    wipeShare: rng.pick([0, 0, 0.25, 0.5]),
    maxChunkBytes: rng.pick([64, 700, 8192]),
  };
}

function drawWorld(rng: Rng): WorldParameters {
  return {
    nodeCount: rng.chance(0.75) ? 3 : 5,
    faults: { dropProbability: rng.pick([0, 0.02, 0.1, 0.25]), duplicateProbability: rng.pick([0, 0.02, 0.1]), maxExtraDelayTicks: rng.pick([0, 2, 5, 12]) },
    crashProbability: rng.pick([0, 0.002, 0.01]),
    partitionProbability: rng.pick([0, 0.005, 0.02]),
    proposeProbability: rng.pick([0.1, 0.3, 0.8]),
    transferProbability: rng.pick([0, 0.002]),
    maxDiskDelayTicks: rng.pick([0, 1, 3]),
    postponeProbability: rng.pick([0, 0.2, 0.5]),
    quorumModes: rng.pick([['majority'], ['all'], ['leader'], ['majority', 'all', 'leader']] as const),
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
  /** Proposals answered (each exactly once), and those refused with "nothing was appended". */
  private readonly answered = new Set<string>();
  private readonly refusedDefinitely = new Set<string>();
  /** Disk latencies and postponed work draw from their own stream, so driver changes do not reshuffle the faults. */
  private readonly ioRng: Rng;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Each leader's commit index as last seen, to check every advance. */
  private readonly leaderCommit = new Map<NodeId, { term: number; commit: number }>();
  /** Leader-targeted faults draw from their own stream, so the other draws of a seed stay as they were. */
  private readonly chaosRng: Rng;
  private readonly leaderChaos: number;
  private readonly seenLeader = new Map<NodeId, { term: number; commit: number }>();
  private readonly quorum: number;
  /** Snapshots, compaction and disk wipes draw from their own stream too. */
  private readonly compactionRng: Rng;
  private readonly compaction: CompactionParameters;
  /**
   * A wiped node, until its disk again holds what its lost disk held (as far as it was
   * committed). Meanwhile it still counts as holding the lost disk's entries: Raft's durability
   * promise is about crashes, and a lost disk takes one replica away until it is rebuilt — an
   * acknowledgement it sent just before may even arrive after. Only one disk is lost at a time
   * (two would lose data no protocol can recover); every other check stays as strong.
   */
  private readonly rebuilding = new Map<NodeId, LostDisk>();

  constructor(private readonly options: SimOptions) {
    this.rng = new Rng(options.seed);
    this.world = drawWorld(this.rng);
    this.network = new SimNetwork(this.rng.fork(), this.world.faults);
    this.chaosRng = new Rng(options.seed + 0x5bd1e995);
    this.ioRng = new Rng(options.seed + 0x27d4eb2f);
    this.leaderChaos = this.chaosRng.pick([0, 0.2, 0.5]);
    this.compactionRng = new Rng(options.seed + 0x165667b1);
    this.compaction = drawCompaction(this.compactionRng);
    this.ids = Array.from({ length: this.world.nodeCount }, (_, i) => `n${i + 1}`);
    this.quorum = Math.floor(this.world.nodeCount / 2) + 1;
    this.trace = new TraceLog(options.fullTrace ? Number.MAX_SAFE_INTEGER : 400);
    this.stats = { nodes: this.world.nodeCount, ticks: 0, leadersElected: 0, entriesCommitted: 0, proposalsAcked: 0, acksByMode: { majority: 0, all: 0, leader: 0 }, crashes: 0, wipes: 0, partitions: 0, transfers: 0, snapshotsTaken: 0, snapshotsInstalled: 0 };
    this.nodes = this.ids.map((id) => this.makeNode(id));
    for (const node of this.nodes) this.start(node);
  }

  run(): SimOutcome {
    const world = `seed ${this.options.seed}: ${JSON.stringify({ ...this.world, leaderChaos: this.leaderChaos, ...this.compaction })}`;
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
      return { seed: this.options.seed, ok: true, world, stats: this.finalStats() };
    } catch (error) {
      // Assertions in the driver, its ports and the core (InvariantViolation) and the
      // simulator's own checks end the run with the seed and the trace that led there.
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const kind = failureKind(error);
      return { seed: this.options.seed, ok: false, world, stats: this.finalStats(), failure: { kind, tick: this.tick, message, trace: this.trace.lines() } };
    }
  }

  private finalStats(): SimStats {
    return { ...this.stats, acksByMode: { ...this.stats.acksByMode }, ticks: this.tick, entriesCommitted: this.committed.size };
  }

  // ------------------------------------------------------------------ nodes: the production driver on in-memory ports

  private makeNode(id: NodeId): SimNode {
    const disk = new SimDisk(() => this.tick, () => this.ioRng.int(this.world.maxDiskDelayTicks + 1));
    const postponeProbability = this.world.postponeProbability;
    const log = new MemoryLogStore(disk);
    const node: SimNode = {
      id,
      disk,
      log,
      hardState: new MemoryHardStateStore(disk),
      snapshots: new MemorySnapshotStore(disk, log, (snapshot) => {
        this.restoreMachine(node, snapshot);
        this.stats.snapshotsInstalled++;
        this.trace.add(this.tick, () => `${id} INSTALLED snapshot ${snapshot.meta.index}@${snapshot.meta.term} (log [${log.firstIndex()}, ${log.lastIndex()}])`);
      }),
      scheduler: new QueueScheduler(() => this.tick * TICK_MS, () => postponeProbability > 0 && this.ioRng.chance(postponeProbability)),
      driver: null,
      appliedIndex: 0,
      appliedKeys: [],
      restartAtTick: 0,
    };
    return node;
  }

  /** The machine takes the snapshot's state, which must be exactly what was committed up to it. */
  private restoreMachine(node: SimNode, snapshot: MemorySnapshot | null): void {
    const keys = snapshot === null ? [] : (unpack(snapshot.data) as string[]);
    const index = snapshot?.meta.index ?? 0;
    this.check(keys.length === index, () => `snapshot: ${node.id}'s snapshot at ${index} holds ${keys.length} entries`);
    keys.forEach((key, i) => {
      const known = this.committed.get(i + 1);
      this.check(known !== undefined && known.key === key, () => `snapshot: ${node.id}'s snapshot at ${index} holds ${key} at ${i + 1}, but ${known?.key} was committed there`);
    });
    node.appliedIndex = index;
    node.appliedKeys = keys;
  }

  private start(node: SimNode): void {
    const machine: StateMachine<string> = {
      appliedIndex: () => node.appliedIndex,
      apply: (entries) => entries.map((entry) => this.apply(node, entry)),
    };
    this.restoreMachine(node, node.snapshots.latestSnapshot());
    const chunk = this.compaction.maxChunkBytes;
    node.driver = new NodeDriver<string>(
      {
        id: node.id,
        voters: this.ids,
        raft: {
          electionTimeoutTicks: 10,
          heartbeatIntervalTicks: 2,
          maxInflightMsgs: this.world.maxInflightMsgs,
          maxInflightBytes: 64 * 1024,
          maxAppendBytes: this.world.maxAppendBytes,
          maxApplyBytes: 4096,
          maxUncommittedEntries: 200,
          maxUncommittedBytes: 64 * 1024,
          preferredLeader: this.world.preferredLeader ? this.ids[0] : undefined,
        },
        maxProposalWaitMs: MAX_PROPOSAL_WAIT_MS,
        transfer: { maxChunkBytes: chunk, maxInflightBytes: 4 * chunk, maxPackageBytes: 1 << 20, resendAfterTicks: 6, abandonAfterTicks: 40 },
      },
      {
        log: node.log,
        hardState: node.hardState,
        peers: { send: (_to, message) => this.send(node, message) },
        stateMachine: machine,
        snapshots: node.snapshots,
        scheduler: node.scheduler,
        randomInt: (n) => this.rng.int(n),
        // Every simulated peer is correct: a message the receiver refuses is a bug in its sender.
        events: { refusedMessage: ({ from, reasons }) => this.check(false, () => `${node.id} refused a message from ${from}: ${reasons.join('; ')}`) },
      },
    );
  }

  private send(node: SimNode, message: PeerMessage): void {
    if (message.type !== 'snapshotChunk' && message.type !== 'snapshotAck') {
      this.checkBackedByHardState(node, message);
      if (message.type === 'appendResp' && !message.reject) {
        // A follower acknowledges only what its disk (log or snapshot) holds (etcd's msgsAfterAppend).
        this.check(message.index === 0 || this.durablyCovers(node, message.index), () =>
          `durable ack: ${node.id} acknowledges ${message.index} with log [${node.log.log.durableFirstIndex()}, ${node.log.log.durableLastIndex()}] and snapshot ${node.snapshots.latest()?.index} durable`);
      }
    }
    this.network.send(message, this.tick);
  }

  /** The node's disk holds the entry at index, in its log or covered by its newest snapshot. */
  private durablyCovers(node: SimNode, index: number): boolean {
    return node.log.log.durableEntry(index) !== undefined || (node.snapshots.latest()?.index ?? 0) >= index;
  }

  /** The node's disk holds (index, term): in its log, or in a snapshot (whose contents were checked against the committed log). */
  private durablyHolds(node: SimNode, index: number, term: number): boolean {
    const lost = this.rebuilding.get(node.id);
    if (lost !== undefined && (lost.terms.get(index) === term || (index <= lost.snapshotIndex && this.committed.get(index)?.term === term))) return true;
    return this.diskHolds(node, index, term);
  }

  private diskHolds(node: SimNode, index: number, term: number): boolean {
    const entry = node.log.log.durableEntry(index);
    if (entry !== undefined) return entry.term === term;
    return (node.snapshots.latest()?.index ?? 0) >= index && this.committed.get(index)?.term === term;
  }

  /**
   * A wiped node is rebuilt once its disk holds the committed entry at the last index its lost
   * disk held (or that was committed when it was lost): everything before comes with it.
   */
  private checkRebuilt(): void {
    for (const [id, lost] of this.rebuilding) {
      const node = this.node(id);
      const committed = this.committed.get(lost.rebuiltAt);
      if (committed !== undefined && this.diskHolds(node, lost.rebuiltAt, committed.term)) {
        this.rebuilding.delete(id);
        this.trace.add(this.tick, () => `${id} rebuilt: its disk holds ${lost.rebuiltAt} again`);
      }
    }
  }

  /** The highest index any node knows committed (applied somewhere or not). */
  private highestCommitIndex(): number {
    let highest = 0;
    for (const index of this.committed.keys()) highest = Math.max(highest, index);
    for (const node of this.nodes) highest = Math.max(highest, node.driver?.indexes().commitIndex ?? 0);
    return highest;
  }

  // ------------------------------------------------------------------ one tick

  private step(): void {
    this.restartDueNodes();
    this.proposeFromClients();
    for (const message of this.network.takeDue(this.tick)) {
      const driver = this.node(message.to).driver;
      if (driver === null) continue;
      this.trace.add(this.tick, () => describePeerMessage(message));
      driver.receive(message.from, message);
    }
    for (const node of this.nodes) node.driver?.tick();
    this.snapshotAndCompact();
    this.runEventLoops();
    this.checkLeaders();
    if (this.clientLoad) this.leaderTargetedFaults();
    this.checkRebuilt();
    this.checkCommitIndexDurable();
    if (this.tick % 25 === 0) {
      this.checkLogMatching();
      this.checkCommittedDurable();
    }
  }

  /**
   * Each node's event loop for this tick: deferred work (the Ready loop, early sends) and disk
   * completions due now, round after round while any ran — a flush that takes no time
   * completes in the same tick and may release the next Ready. Postponed work moves to the next tick.
   */
  private runEventLoops(): void {
    for (let round = 0; round < MAX_EVENT_ROUNDS_PER_TICK; round++) {
      let ran = 0;
      for (const node of this.nodes) {
        if (node.driver === null) continue;
        ran += node.scheduler.runQueued(MAX_TASKS_PER_ROUND);
        ran += node.disk.runDue();
      }
      if (ran === 0) break;
    }
    for (const node of this.nodes) node.scheduler.releasePostponed();
  }

  private restartDueNodes(): void {
    for (const node of this.nodes) {
      if (node.driver === null && node.restartAtTick <= this.tick) {
        const line = `restart ${node.id} (log ${node.log.lastIndex()}, term ${node.hardState.durable().term}, vote ${node.hardState.durable().vote})`;
        this.trace.add(this.tick, () => line);
        this.start(node);
      }
    }
  }

  private proposeFromClients(): void {
    if (!this.clientLoad || !this.rng.chance(this.world.proposeProbability)) return;
    const node = this.rng.pick(this.nodes);
    // Clients find the leader first; a refusal costs an error's stack trace, most of a seed's time.
    if (node.driver?.summary().role !== 'leader') return;
    this.propose(node, `c${this.proposalCounter++}`, this.rng.pick(this.world.quorumModes));
  }

  /**
   * Proposes through the driver, as the broker does, and checks every acknowledgement against
   * the durable state at the moment it is given. `onLost` hears a definite or possible loss.
   */
  private propose(node: SimNode, key: string, mode: QuorumMode, onLost: () => void = () => undefined): void {
    // A crashed incarnation never answers (its scheduler and disk dropped its work): no guard needed.
    node.driver!.propose(new TextEncoder().encode(key), mode, {
      resolve: (ack) => {
        this.answerOnce(key, 'acknowledged');
        this.checkAcknowledged(node, key, mode, ack);
        this.stats.proposalsAcked++;
        this.stats.acksByMode[mode]++;
        this.trace.add(this.tick, () => `${node.id} acks ${key} (${mode}) at ${ack.index}@${ack.term}`);
      },
      reject: (error: LmqError) => {
        this.answerOnce(key, error.code);
        this.trace.add(this.tick, () => `${node.id} refuses ${key} (${mode}): ${error.code}${error.indeterminate ? '' : ' (not appended)'}`);
        if (!error.indeterminate) {
          // A refusal that says nothing was appended: the entry must never commit.
          this.check(!this.committedIndexByKey.has(key), () => `refusal: ${node.id} refused ${key} with ${error.code} (not appended), but it is committed`);
          this.refusedDefinitely.add(key);
        }
        onLost();
      },
    });
  }

  private answerOnce(key: string, answer: string): void {
    this.check(!this.answered.has(key), () => `answers: ${key} answered twice (now ${answer})`);
    this.answered.add(key);
  }

  /** What each quorum mode promises when it acknowledges (CONTRACT.md). */
  private checkAcknowledged(node: SimNode, key: string, mode: QuorumMode, ack: { index: number; term: number; result?: string }): void {
    const holders = this.durableHolders(ack.index, ack.term);
    const describe = `${node.id} acknowledged ${key} (${mode}) at ${ack.index}@${ack.term}`;
    if (mode === 'leader') {
      const own = node.log.log.durableEntry(ack.index);
      const inSnapshot = own === undefined && this.durablyHolds(node, ack.index, ack.term) && this.committed.get(ack.index)?.key === key;
      this.check(inSnapshot || (own?.term === ack.term && entryKey(own) === key), () => `ack durability: ${describe}, not durable on the leader`);
      return;
    }
    const committed = this.committed.get(ack.index);
    this.check(committed?.key === key && committed.term === ack.term && ack.result === key, () => `ack: ${describe} with result ${ack.result}, but ${committed?.key}@${committed?.term} was applied there`);
    const needed = mode === 'all' ? this.nodes.length : this.quorum;
    this.check(holders >= needed, () => `ack durability: ${describe}, durable on ${holders} nodes, fewer than ${needed}`);
  }

  private durableHolders(index: number, term: number): number {
    return this.nodes.filter((n) => this.durablyHolds(n, index, term)).length;
  }

  private apply(node: SimNode, entry: Entry): string {
    this.check(entry.index === node.appliedIndex + 1, () => `${node.id} applies ${entry.index} after ${node.appliedIndex}`);
    node.appliedIndex = entry.index;
    const key = entryKey(entry);
    node.appliedKeys.push(key);
    const known = this.committed.get(entry.index);
    if (known === undefined) {
      this.check(!this.refusedDefinitely.has(key), () => `refusal: ${key} commits at ${entry.index}, but it was refused as not appended`);
      this.committed.set(entry.index, { term: entry.term, key });
      this.committedIndexByKey.set(key, entry.index);
    } else {
      this.check(known.key === key && known.term === entry.term, () => `state machine safety: ${node.id} applies ${key}@${entry.term} at ${entry.index}, another node applied ${known.key}@${known.term}`);
    }
    return key;
  }

  // ------------------------------------------------------------------ snapshots and compaction

  /**
   * Now and then a node snapshots its state machine at its applied index and, once that is
   * durable, deletes a random prefix of its log that the snapshot covers and that is committed.
   */
  private snapshotAndCompact(): void {
    if (this.compaction.snapshotProbability === 0) return;
    for (const node of this.nodes) {
      const driver = node.driver;
      if (driver === null || !this.compactionRng.chance(this.compaction.snapshotProbability)) continue;
      if (driver.core.installPending() !== null) continue; // the machine is about to be replaced
      const index = node.appliedIndex;
      if (index === 0 || (node.snapshots.latest()?.index ?? 0) >= index) continue;
      const term = driver.termAt(index);
      assert(term !== undefined, () => `${node.id} has no term for its applied index ${index}`);
      const compactAll = this.compactionRng.chance(0.5);
      const draw = this.compactionRng.next();
      this.stats.snapshotsTaken++;
      this.trace.add(this.tick, () => `${node.id} snapshot at ${index}@${term}`);
      node.snapshots.save({ meta: { index, term }, data: pack(node.appliedKeys.slice(0, index)) }, () => {
        if (node.driver !== driver) return;
        const limit = Math.min(node.snapshots.latest()!.index, node.log.commitIndexFloor()) + 1;
        const first = node.log.firstIndex();
        if (limit <= first) return;
        const to = compactAll ? limit : first + Math.floor(draw * (limit - first + 1));
        node.log.compact(to);
        this.trace.add(this.tick, () => `${node.id} compacts its log to start at ${node.log.firstIndex()}`);
      });
    }
  }

  // ------------------------------------------------------------------ faults

  private injectFaults(): void {
    if (this.rng.chance(this.world.crashProbability)) this.crashRandomNode();
    if (this.rng.chance(this.world.partitionProbability)) this.changePartition();
    if (this.rng.chance(this.world.transferProbability)) {
      const leader = this.nodes.find((n) => n.driver?.summary().role === 'leader');
      const target = this.rng.pick(this.ids);
      if (leader !== undefined && leader.driver!.transferLeadership(target)) {
        this.stats.transfers++;
        this.trace.add(this.tick, () => (target === leader.id ? `${leader.id} cancels its leadership transfer` : `${leader.id} transfers leadership to ${target}`));
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
      const status = this.leaderView(node);
      if (status === null) continue;
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
    const live = this.nodes.filter((n) => n.driver !== null);
    if (live.length <= 1) return;
    this.crashNode(this.rng.pick(live), this.rng);
  }

  /**
   * A power loss: unsynced writes and in-flight I/O are lost (but for a prefix the disk wrote
   * back). Sometimes the disk is replaced too: the node restarts with nothing at all.
   */
  private crashNode(node: SimNode, rng: Rng): void {
    if (this.nodes.filter((n) => n.driver !== null).length <= 1) return;
    const keepUnsynced = rng.pick([0, 0, 0.5, 1]);
    // One lost disk at a time: not while another is being rebuilt, or another node is still
    // blank (a wiped node that has not yet recalled its vote) — losing every disk is a new cluster.
    const othersIntact = this.rebuilding.size === 0 && this.nodes.every((n) => n === node || n.hardState.durable().term > 0);
    const wipe = this.compaction.wipeShare > 0 && this.compactionRng.chance(this.compaction.wipeShare) && othersIntact;
    node.driver = null;
    node.disk.crash();
    node.scheduler.crash();
    node.hardState.crash();
    node.log.crash(keepUnsynced);
    node.snapshots.crash();
    // Its connections are reset: nothing in flight to it reaches the next incarnation.
    this.network.dropTo(node.id);
    if (wipe) {
      const durable = node.log.log;
      const terms = new Map<number, number>();
      for (let index = durable.durableFirstIndex(); index <= durable.durableLastIndex(); index++) terms.set(index, durable.durableEntry(index)!.term);
      const rebuiltAt = Math.max(this.highestCommitIndex(), durable.durableLastIndex());
      if (rebuiltAt > 0) this.rebuilding.set(node.id, { terms, snapshotIndex: node.snapshots.latest()?.index ?? 0, rebuiltAt });
      // What the lost disk's process sent may still arrive, late: its acknowledgements must not
      // count for entries the rebuilt node no longer holds.
      if (this.compactionRng.chance(0.5)) this.network.delayFrom(node.id, 20 + this.compactionRng.int(200));
      node.log.wipe();
      node.hardState.wipe();
      node.snapshots.wipe();
      this.stats.wipes++;
    }
    // Its clients' proposals are never answered: they see a timeout, outcome unknown.
    node.restartAtTick = this.tick + 5 + rng.int(150);
    this.stats.crashes++;
    // Peers usually see its connections close (a killed process), not always (power loss).
    for (const peer of this.nodes) {
      if (peer.driver !== null && rng.chance(0.5)) peer.driver.peerDisconnected(node.id);
    }
    const line = wipe ? `CRASH ${node.id} and WIPE its disk` : `CRASH ${node.id} (kept ${keepUnsynced} of unsynced; log now ${node.log.lastIndex()})`;
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
    let marker: Marker | null = null;
    for (; this.tick < deadline; this.tick++) {
      if (marker !== null) {
        const index = this.committedIndexByKey.get(marker.key);
        // Every node applied it, and a node rebuilt from a lost disk may vote again.
        if (index !== undefined && this.nodes.every((n) => n.driver !== null && n.appliedIndex >= index && !n.driver.core.votingSuspended())) return;
        if (index === undefined && marker.lost()) marker = null; // refused or lost: try again
      }
      marker ??= this.proposeMarker();
      this.step();
    }
    const suspended = this.nodes.filter((n) => n.driver?.core.votingSuspended()).map((n) => n.id);
    const why = suspended.length > 0 ? ` (still rebuilding from a lost disk: ${suspended.join(', ')})` : '';
    throw new LivenessFailure(`liveness: no leader applied a fresh proposal on every node within ${this.options.livenessTicksMax} ticks after healing${why}`);
  }

  /**
   * Availability under a partial partition: the leader can still send but hears nobody (every
   * link into it is cut). The others form a connected majority, so they must elect a leader
   * among themselves and commit a fresh proposal on a majority — which needs the deaf leader to
   * step down (check quorum) so its heartbeats stop holding the followers' leases.
   */
  private demandProgressWithDeafLeader(): void {
    const deaf = this.nodes.find((n) => n.driver?.summary().role === 'leader');
    if (deaf === undefined) return;
    for (const id of this.ids) if (id !== deaf.id) this.network.cut(id, deaf.id);
    this.trace.add(this.tick, () => `PARTITION every link into leader ${deaf.id} cut`);
    const deadline = this.tick + this.options.livenessTicksMax;
    let marker: Marker | null = null;
    for (; this.tick < deadline; this.tick++) {
      if (marker !== null) {
        const index = this.committedIndexByKey.get(marker.key);
        if (index !== undefined && this.nodes.filter((n) => n.appliedIndex >= index).length >= this.quorum) {
          this.network.healAll();
          this.trace.add(this.tick, () => `HEAL everything`);
          return;
        }
        if (index === undefined && marker.lost()) marker = null;
      }
      marker ??= this.proposeMarker(deaf.id);
      this.step();
    }
    throw new LivenessFailure(`availability: with every link into ${deaf.id} cut, the connected majority applied no fresh proposal within ${this.options.livenessTicksMax} ticks`);
  }

  /** Proposes a marker (majority quorum) on the current leader, if there is one. */
  private proposeMarker(exclude?: NodeId): Marker | null {
    const leader = this.nodes.find((n) => n.id !== exclude && n.driver?.summary().role === 'leader');
    if (leader === undefined) return null;
    const key = `marker${this.proposalCounter++}`;
    let refused = false;
    const driver = leader.driver;
    this.propose(leader, key, 'majority', () => (refused = true));
    return { key, lost: () => refused || leader.driver !== driver || leader.driver?.summary().role !== 'leader' };
  }

  // ------------------------------------------------------------------ invariants

  /** What a node tells others must already be durable: its term, and above all a granted vote. */
  private checkBackedByHardState(node: SimNode, m: Message): void {
    if (m.type === 'preVote' || m.type === 'preVoteResp') return; // these carry a future term by design
    const durable = node.hardState.durable();
    // A node with a blank hard state saves none until it recalls its vote: a restart finds it
    // blank and it learns its term from its peers again (RaftCore's ForgottenVote). It never
    // votes meanwhile, so votes are checked as always.
    const relearnsTerm = durable.term === 0 && m.type !== 'vote' && !(m.type === 'voteResp' && !m.reject);
    this.check(relearnsTerm || m.term <= durable.term, () => `durable term: ${node.id} sends ${m.type} in term ${m.term} with durable term ${durable.term}`);
    if (m.type === 'voteResp' && !m.reject) {
      // A higher durable term supersedes the vote (the node can never vote in m.term again).
      this.check(durable.term > m.term || durable.vote === m.to, () =>
        `durable vote: ${node.id} grants its vote to ${m.to} in term ${m.term} but its durable hard state is ${JSON.stringify(durable)}`);
    }
  }

  /** Term and commit index of a node that leads; null for the others (cheaper than status()). */
  private leaderView(node: SimNode): { term: number; commitIndex: number } | null {
    const summary = node.driver?.summary();
    if (summary?.role !== 'leader') return null;
    return { term: summary.term, commitIndex: node.driver!.indexes().commitIndex };
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
      const status = this.leaderView(node);
      if (status === null) continue;
      const lastCommit = this.leaderCommit.get(node.id);
      if (lastCommit !== undefined && lastCommit.term === status.term && status.commitIndex > lastCommit.commit) {
        const term = node.driver!.termAt(status.commitIndex);
        this.check(term === status.term, () => `commit rule: ${node.id} (leader of term ${status.term}) committed up to ${status.commitIndex}, an entry of term ${term}`);
      }
      this.leaderCommit.set(node.id, { term: status.term, commit: status.commitIndex });
      const known = this.leaderOfTerm.get(status.term);
      if (known === node.id) continue;
      this.check(known === undefined, () => `election safety: ${known} and ${node.id} both lead term ${status.term}`);
      this.leaderOfTerm.set(status.term, node.id);
      this.stats.leadersElected++;
      const lastIndex = node.log.lastIndex();
      this.trace.add(this.tick, () => `${node.id} LEADER of term ${status.term} (last ${lastIndex}, commit ${status.commitIndex})`);
      const snapshotIndex = node.snapshots.latest()?.index ?? 0;
      for (const [index, entry] of this.committed) {
        const term = node.driver!.termAt(index);
        const held = term === undefined ? index <= snapshotIndex : term === entry.term;
        this.check(held, () => `leader completeness: ${node.id} leads term ${status.term} without committed entry ${index} (${entry.key})`);
      }
    }
  }

  /**
   * Logs that hold an entry with the same index and term are identical up to that index (as
   * far back as both still hold entries: below that, snapshots were checked when restored).
   */
  private checkLogMatching(): void {
    const logs = this.nodes.map((n) => ({ id: n.id, log: n.log.log }));
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const left = logs[a]!.log;
        const right = logs[b]!.log;
        const lo = Math.max(left.durableFirstIndex(), right.durableFirstIndex());
        let shared = Math.min(left.durableLastIndex(), right.durableLastIndex());
        while (shared >= lo && left.durableEntry(shared)!.term !== right.durableEntry(shared)!.term) shared--;
        for (let i = lo; i <= shared; i++) {
          this.check(sameEntry(left.durableEntry(i)!, right.durableEntry(i)!), () =>
            `log matching: ${logs[a]!.id} and ${logs[b]!.id} share ${shared}@${left.durableEntry(shared)!.term} but differ at ${i}`);
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
    for (const node of this.nodes) {
      if (node.driver === null) continue;
      const { commitIndex } = node.driver.indexes();
      if (commitIndex === 0) continue;
      const term = node.driver.termAt(commitIndex)!;
      const holders = this.durableHolders(commitIndex, term);
      if (holders >= this.quorum) continue;
      const { role, term: nodeTerm } = node.driver.summary();
      this.check(false, () => `commit durability: ${node.id} (${role}, term ${nodeTerm}) has commit index ${commitIndex}@${term}, durable on ${holders} nodes, fewer than ${this.quorum}`);
    }
  }

  /** Every committed entry is durable on a majority (a crash anywhere cannot lose it). */
  private checkCommittedDurable(): void {
    for (const [index, entry] of this.committed) {
      const holders = this.durableHolders(index, entry.term);
      this.check(holders >= this.quorum, () => `durability: committed entry ${index} (${entry.key}) is durable on ${holders} nodes, fewer than ${this.quorum}`);
    }
  }
}

function describePeerMessage(message: PeerMessage): string {
  if (message.type === 'snapshotChunk') {
    return `${message.from}->${message.to} snapshotChunk t${message.term} snapshot ${message.index}@${message.snapshotTerm} bytes [${message.offsetBytes}, ${message.offsetBytes + message.data.byteLength}) of ${message.totalBytes}`;
  }
  if (message.type === 'snapshotAck') return `${message.from}->${message.to} snapshotAck t${message.term} snapshot ${message.index}@${message.snapshotTerm} staged ${message.stagedBytes}`;
  return describeMessage(message);
}

/** What a wiped node's disk held: its log's terms by index and its newest snapshot's index. */
interface LostDisk {
  readonly terms: ReadonlyMap<number, number>;
  readonly snapshotIndex: number;
  /** Rebuilt once the new disk holds the committed entry here. */
  readonly rebuiltAt: number;
}

/** A liveness marker in flight: its key, and whether it can no longer commit as proposed. */
interface Marker {
  readonly key: string;
  lost(): boolean;
}

function failureKind(error: unknown): SimFailureKind {
  if (error instanceof LivenessFailure) return 'liveness';
  if (error instanceof SafetyViolation || error instanceof InvariantViolation) return 'safety';
  return 'crash';
}

export function runSeed(seed: number, options: Partial<Omit<SimOptions, 'seed'>> = {}): SimOutcome {
  return new Simulation({ ...DEFAULT_SIM_OPTIONS, ...options, seed }).run();
}
