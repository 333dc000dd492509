// The chaos run's faults: a schedule of rounds drawn from one seeded RNG (quiet time, which
// nemesis, which node, how long), applied to real processes and real TCP links:
// - kill: SIGKILL a node (usually the leader), restart it after the hold time. Half the leader
//   kills first cut the leader's outgoing links for a moment shorter than an election
//   timeout: the leader still leads and acks, its followers fall behind, then it dies — the
//   crash of a leader with replication lag, where `leader` quorum loses acknowledged writes;
// - pause: SIGSTOP a node, SIGCONT after the hold time;
// - partition: cut every link between one node and the other two (both ways, or only its
//   outgoing ones), heal after the hold time;
// - power: a power cut — SIGKILL all nodes, or a majority that includes the leader, at once;
//   after the hold time they boot again in a drawn order, a drawn moment apart. The runner
//   starts every node in storage mode lazy for it (src/log/file-io.ts), so each killed node
//   loses what it had not fsynced. The run's first two power cuts take all nodes, and every
//   cut waits until writes are being acknowledged again, so each one strikes mid-write.
// Which node is "the leader" is read from the cluster at the moment, so replaying a seed
// replays the choices, not necessarily the same victims.
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalCluster } from '../cluster/local-cluster.js';
import type { Rng } from '../sim/rng.js';
import { assert } from '../util/assert.js';
import type { LinkNetwork } from './link-proxy.js';
import type { FaultRecord, HistoryRecorder } from './recorder.js';

export const NEMESES = ['kill', 'pause', 'partition', 'power'] as const;
export type NemesisKind = (typeof NEMESES)[number];
/** `chaos` without --nemesis: power is asked for by name, since it changes the storage mode. */
export const DEFAULT_NEMESES: readonly NemesisKind[] = ['kill', 'pause', 'partition'];

export interface NemesisTiming {
  /** Time between one fault's heal and the next fault, drawn uniformly. */
  readonly quietMinMs: number;
  readonly quietMaxMs: number;
  /** How long one fault lasts, drawn uniformly. */
  readonly holdMinMs: number;
  readonly holdMaxMs: number;
  /** Chance that a round targets the current leader rather than a random node. */
  readonly leaderTargetChance: number;
  /** Chance that a leader kill is preceded by a replication stall of laggingKillMinMs..MaxMs. */
  readonly laggingKillChance: number;
  readonly laggingKillMinMs: number;
  readonly laggingKillMaxMs: number;
  /** Chance that a power cut after the run's second takes every node rather than a majority. */
  readonly powerAllChance: number;
  /** After a power cut, the nodes boot up to this far apart (drawn per node). */
  readonly powerBootSpreadMaxMs: number;
  /** A power cut strikes this long (drawn) after writes are acknowledged again. */
  readonly powerWritingMinMs: number;
  readonly powerWritingMaxMs: number;
}

/** Reads the node the cluster currently believes leads; null when none is known. */
export type LeaderProbe = () => string | null;

interface ActiveFault {
  record: FaultRecord;
  heal: () => Promise<void>;
}

export class Nemesis {
  private active: ActiveFault | null = null;
  private powerCuts = 0;

  constructor(
    private readonly cluster: LocalCluster,
    private readonly network: LinkNetwork,
    private readonly recorder: HistoryRecorder,
    private readonly rng: Rng,
    private readonly kinds: readonly NemesisKind[],
    private readonly timing: NemesisTiming,
    private readonly currentLeader: LeaderProbe,
    private readonly log: (line: string) => void,
  ) {
    assert(kinds.length > 0, 'at least one nemesis');
    assert(timing.quietMinMs <= timing.quietMaxMs, 'quiet range is ordered');
    assert(timing.holdMinMs <= timing.holdMaxMs, 'hold range is ordered');
    assert(timing.powerWritingMinMs <= timing.powerWritingMaxMs, 'power writing range is ordered');
  }

  /** Fault rounds until `deadlineMs` (history clock) or until stopped; always ends healed. */
  async run(deadlineMs: number, stopped: () => boolean): Promise<void> {
    try {
      for (;;) {
        await this.wait(this.draw(this.timing.quietMinMs, this.timing.quietMaxMs), deadlineMs, stopped);
        if (this.recorder.now() >= deadlineMs || stopped()) return;
        const kind = this.rng.pick(this.kinds);
        if (kind === 'power' && !(await this.untilWriting(deadlineMs, stopped))) return;
        await this.inject(kind);
        await this.wait(this.draw(this.timing.holdMinMs, this.timing.holdMaxMs), deadlineMs, stopped);
        await this.healActive();
      }
    } finally {
      await this.healActive();
    }
  }

  /** Ends the fault in force, if any (idempotent). */
  async healActive(): Promise<void> {
    const active = this.active;
    if (active === null) return;
    this.active = null;
    await active.heal();
    active.record.end = this.recorder.now();
    this.log(`heal: ${active.record.detail}`);
  }

  private async inject(kind: NemesisKind): Promise<void> {
    assert(this.active === null, 'one fault at a time');
    const leader = this.currentLeader();
    const nodeIds = this.cluster.config.nodes.map((n) => n.id);
    const target = leader !== null && this.rng.chance(this.timing.leaderTargetChance) ? leader : this.rng.pick(nodeIds);
    const role = target === leader ? ' (leader)' : '';
    const others = nodeIds.filter((id) => id !== target);
    let detail: string;
    let heal: () => Promise<void>;
    const start = this.recorder.now();
    if (kind === 'power') {
      const cut = await this.cutPower(leader, nodeIds);
      // The moment every victim is dead: a reply the client reads before then was sent before
      // the power went off (lossWindow gives replies still in flight a small grace).
      this.record({ kind, nodes: cut.nodes, detail: cut.detail, start: this.recorder.now(), end: null }, cut.heal);
      return;
    }
    if (kind === 'kill') {
      const lagMs = target === leader && this.rng.chance(this.timing.laggingKillChance) ? this.draw(this.timing.laggingKillMinMs, this.timing.laggingKillMaxMs) : 0;
      if (lagMs > 0) {
        this.network.cutBetween([target], others, true);
        await sleep(lagMs);
      }
      await this.cluster.kill(target);
      this.network.healAll();
      detail = lagMs > 0 ? `SIGKILL ${target}${role} after ${Math.round(lagMs)} ms without replication` : `SIGKILL ${target}${role}`;
      heal = async () => void this.cluster.start(target);
    } else if (kind === 'pause') {
      this.cluster.signal(target, 'SIGSTOP');
      detail = `SIGSTOP ${target}${role}`;
      heal = async () => this.cluster.signal(target, 'SIGCONT');
    } else {
      const oneWay = this.rng.chance(0.3);
      this.network.cutBetween([target], others, oneWay);
      detail = oneWay ? `cut links ${target}${role} -> ${others.join(',')} (one way)` : `isolate ${target}${role} from ${others.join(',')}`;
      heal = async () => this.network.healAll();
    }
    this.record({ kind, nodes: [target], detail, start, end: null }, heal);
  }

  private record(record: FaultRecord, heal: () => Promise<void>): void {
    this.recorder.faults.push(record);
    this.active = { record, heal };
    this.log(`fault: ${record.detail}`);
  }

  /** Kills every victim at once; the heal boots them in a drawn order and spread. */
  private async cutPower(leader: string | null, nodeIds: string[]): Promise<{ nodes: string[]; detail: string; heal: () => Promise<void> }> {
    // The first two take every node, so even a 20 s run has two cuts of the whole cluster.
    const allNodes = this.powerCuts < 2 || leader === null || this.rng.chance(this.timing.powerAllChance);
    this.powerCuts += 1;
    const victims = allNodes ? nodeIds : [leader, this.rng.pick(nodeIds.filter((id) => id !== leader))];
    assert(victims.length * 2 > nodeIds.length, 'a power cut takes a majority');
    await Promise.all(victims.map((id) => this.cluster.kill(id)));
    // Each node's boot delay is drawn, so the order they come back in is drawn too.
    const boots = victims.map((id) => ({ id, afterMs: this.draw(0, this.timing.powerBootSpreadMaxMs) })).sort((a, b) => a.afterMs - b.afterMs);
    const detail = allNodes ? `power cut ${victims.join(',')} (all nodes)` : `power cut ${victims.join(',')} (majority, leader ${leader})`;
    const heal = async () => {
      const startMs = this.recorder.now();
      for (const boot of boots) {
        await sleep(Math.max(0, startMs + boot.afterMs - this.recorder.now()));
        this.cluster.start(boot.id);
      }
    };
    return { nodes: victims, detail, heal };
  }

  /**
   * Waits until a leader is known and sends are acknowledged again since the last fault ended,
   * then a drawn while longer, so a power cut strikes while writes are flowing (not at the
   * first one after a reboot). False if the deadline or a stop came first.
   */
  private async untilWriting(deadlineMs: number, stopped: () => boolean): Promise<boolean> {
    const lastEnd = this.recorder.faults[this.recorder.faults.length - 1]?.end ?? 0;
    while (this.currentLeader() === null || this.recorder.lastAckMs <= lastEnd) {
      if (this.recorder.now() >= deadlineMs || stopped()) return false;
      await sleep(50);
    }
    await this.wait(this.draw(this.timing.powerWritingMinMs, this.timing.powerWritingMaxMs), deadlineMs, stopped);
    return this.recorder.now() < deadlineMs && !stopped();
  }

  private draw(minMs: number, maxMs: number): number {
    return minMs + this.rng.next() * (maxMs - minMs);
  }

  /** Sleeps up to `ms`, cut short by the deadline or a stop (checked every 100 ms). */
  private async wait(ms: number, deadlineMs: number, stopped: () => boolean): Promise<void> {
    const until = Math.min(this.recorder.now() + ms, deadlineMs);
    while (this.recorder.now() < until && !stopped()) await sleep(Math.min(100, until - this.recorder.now()));
  }
}
