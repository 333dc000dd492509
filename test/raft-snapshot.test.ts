// Snapshots end to end through the production NodeDriver over in-memory ports: a follower
// behind the leader's first index gets the snapshot in chunks (lost chunks resent, a corrupted
// package refused before anything is replaced, a crash during the install leaving the old
// state), and a node whose disk was replaced neither votes nor campaigns until a leader has
// caught it up. The simulator runs the same paths under random faults; these pin them down.
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { NodeDriver } from '../src/node/driver.js';
import { type Disk, MemoryHardStateStore, MemoryLogStore, MemorySnapshotStore, QueueScheduler } from '../src/node/memory-ports.js';
import type { PeerMessage } from '../src/node/ports.js';
import type { NodeId } from '../src/raft/types.js';

const ELECTION_TICKS = 10;
const CHUNK_BYTES = 32;

/** Completes I/O at once, or — while held — not until released; a crash loses what is held. */
class HoldableDisk implements Disk {
  held = false;
  private pending: (() => void)[] = [];

  submit(complete: () => void): void {
    if (this.held) this.pending.push(complete);
    else complete();
  }

  runDue(): number {
    if (this.held) return 0;
    const due = this.pending;
    this.pending = [];
    for (const complete of due) complete();
    return due.length;
  }

  crash(): void {
    this.pending = [];
  }
}

interface Node {
  readonly id: NodeId;
  disk: HoldableDisk;
  log: MemoryLogStore;
  hardState: MemoryHardStateStore;
  snapshots: MemorySnapshotStore;
  scheduler: QueueScheduler;
  driver: NodeDriver<string>;
  /** The state machine: keys of the entries applied, in order. */
  applied: string[];
}

class Cluster {
  readonly nodes = new Map<NodeId, Node>();
  readonly isolated = new Set<NodeId>();
  /** Returns the message to deliver (possibly changed), or null to drop it. */
  intercept: (m: PeerMessage) => PeerMessage | null = (m) => m;
  private queue: PeerMessage[] = [];

  constructor(readonly ids: readonly NodeId[]) {
    for (const id of ids) this.nodes.set(id, this.fresh(id, new HoldableDisk()));
    for (const node of this.nodes.values()) this.start(node);
    // Every node asks the others whether the cluster is new (RaftCore's ForgottenVote).
    this.tick(1);
  }

  /** A node on a new disk: empty log, blank hard state, no snapshot. */
  private fresh(id: NodeId, disk: Node['disk']): Node {
    const log = new MemoryLogStore(disk);
    const node = { id, disk, log, hardState: new MemoryHardStateStore(disk), scheduler: new QueueScheduler(() => 0), applied: [] as string[] } as Node;
    node.snapshots = new MemorySnapshotStore(disk, log, (snapshot) => (node.applied = unpack(snapshot.data) as string[]));
    return node;
  }

  private start(node: Node): void {
    node.applied = node.snapshots.latestSnapshot() === null ? [] : (unpack(node.snapshots.latestSnapshot()!.data) as string[]);
    node.scheduler = new QueueScheduler(() => 0);
    node.driver = new NodeDriver<string>(
      {
        id: node.id,
        voters: this.ids,
        raft: {
          electionTimeoutTicks: ELECTION_TICKS, heartbeatIntervalTicks: 1, maxInflightMsgs: 16, maxInflightBytes: 1 << 20,
          maxAppendBytes: 1 << 16, maxApplyBytes: 1 << 20, maxUncommittedEntries: 1000, maxUncommittedBytes: 1 << 20,
        },
        maxProposalWaitMs: 60_000,
        transfer: { maxChunkBytes: CHUNK_BYTES, maxInflightBytes: 4 * CHUNK_BYTES, maxPackageBytes: 1 << 20, resendAfterTicks: 3, abandonAfterTicks: 30 },
      },
      {
        log: node.log,
        hardState: node.hardState,
        snapshots: node.snapshots,
        peers: { send: (_to, m) => this.queue.push(m) },
        stateMachine: {
          appliedIndex: () => node.applied.length,
          apply: (entries) => entries.map((e) => {
            const key = e.data.byteLength === 0 ? `noop@${e.term}` : new TextDecoder().decode(e.data);
            node.applied.push(key);
            return key;
          }),
        },
        scheduler: node.scheduler,
        randomInt: () => 0,
      },
    );
  }

  node(id: NodeId): Node {
    return this.nodes.get(id)!;
  }

  /** Kills the process: volatile state, unsynced writes and I/O in flight are lost. */
  crash(id: NodeId): void {
    const node = this.node(id);
    node.disk.crash();
    node.hardState.crash();
    node.log.crash(0);
    node.snapshots.crash();
    this.queue = this.queue.filter((m) => m.to !== id);
    this.start(node);
  }

  /** Kills the process and replaces its disk: it restarts with nothing. */
  wipe(id: NodeId): void {
    this.queue = this.queue.filter((m) => m.to !== id);
    const node = this.fresh(id, this.node(id).disk);
    this.nodes.set(id, node);
    this.start(node);
  }

  /** Snapshots `id`'s state machine at its applied index and deletes the log below `firstIndex` (at most up to the snapshot). */
  snapshotAndCompact(id: NodeId): void {
    const node = this.node(id);
    const index = node.applied.length;
    node.snapshots.save({ meta: { index, term: node.driver.termAt(index)! }, data: pack(node.applied.slice()) }, () => undefined);
    this.settleDisks();
    node.log.compact(Math.min(index, node.log.commitIndexFloor()) + 1);
  }

  tick(times = 1, ids: readonly NodeId[] = this.ids): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.node(id).driver.tick();
      this.stabilize();
    }
  }

  propose(id: NodeId, text: string): void {
    this.node(id).driver.propose(new TextEncoder().encode(text), 'majority', { resolve: () => undefined, reject: () => undefined });
  }

  leader(among: readonly NodeId[] = this.ids): NodeId | undefined {
    return among.find((id) => this.node(id).driver.summary().role === 'leader');
  }

  private settleDisks(): void {
    for (const node of this.nodes.values()) {
      for (let round = 0; round < 1000; round++) if (node.scheduler.runQueued(10_000) + node.disk.runDue() === 0) break;
    }
  }

  /** Runs every node's deferred work and delivers messages until the cluster is quiet. */
  stabilize(): void {
    for (let round = 0; round < 10_000; round++) {
      this.settleDisks();
      if (this.queue.length === 0) return;
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
        const delivered = this.intercept(m);
        if (delivered !== null) this.node(m.to).driver.receive(m.from, delivered);
      }
    }
    throw new Error(`the cluster did not stabilize: ${JSON.stringify(this.queue.slice(0, 6).map((m) => ({ ...m, data: undefined, entries: undefined })))}`);
  }
}

/** A cluster with n1 leading and `count` entries committed while n3 was away, then compacted on n1 and n2. */
function leaderCompactedWhileN3Away(count: number): Cluster {
  const c = new Cluster(['n1', 'n2', 'n3']);
  c.tick(ELECTION_TICKS + 2, ['n1']);
  expect(c.leader()).toBe('n1');
  c.isolated.add('n3');
  for (let i = 0; i < count; i++) c.propose('n1', `m${i}`);
  c.tick(2);
  for (const id of ['n1', 'n2']) c.snapshotAndCompact(id);
  expect(c.node('n1').log.firstIndex()).toBeGreaterThan(c.node('n3').log.lastIndex() + 1);
  return c;
}

describe('snapshots – a follower behind the first index', () => {
  it('gets the snapshot in chunks and the log after it, then follows with appends', () => {
    const c = leaderCompactedWhileN3Away(30);
    let chunks = 0;
    c.intercept = (m) => {
      if (m.type === 'snapshotChunk') chunks++;
      return m;
    };
    c.isolated.delete('n3');
    c.tick(3);
    const [n1, n3] = [c.node('n1'), c.node('n3')];
    expect(chunks).toBeGreaterThan(3); // the package is many times CHUNK_BYTES
    expect(n3.snapshots.latest()).toEqual(n1.snapshots.latest());
    expect(n3.log.firstIndex()).toBe(n1.log.firstIndex());
    expect(n3.applied).toEqual(n1.applied);
    c.propose('n1', 'after');
    c.tick(2);
    expect(n3.applied.at(-1)).toBe('after');
    expect(n3.applied).toEqual(n1.applied);
    expect(n1.driver.status().progress.find((p) => p.id === 'n3')).toMatchObject({ state: 'replicate', match: n1.log.lastIndex() });
  });

  it('resends a lost chunk, and refuses a corrupted package before it replaces anything', () => {
    const c = leaderCompactedWhileN3Away(30);
    const n3 = c.node('n3');
    const before = { first: n3.log.firstIndex(), last: n3.log.lastIndex() };
    let corrupting = true;
    let lost = 0;
    c.intercept = (m) => {
      if (m.type !== 'snapshotChunk') return m;
      if (m.offsetBytes === CHUNK_BYTES && lost++ === 0) return null; // lost on the way, once
      if (corrupting && m.offsetBytes === 0) {
        const data = Uint8Array.from(m.data);
        data[0] = data[0]! ^ 0xff; // one flipped byte in every copy of the first chunk
        return { ...m, data };
      }
      return m;
    };
    c.isolated.delete('n3');
    c.tick(10);
    // Every complete staging failed its checksum: nothing was replaced.
    expect(n3.snapshots.latest()).toBeNull();
    expect({ first: n3.log.firstIndex(), last: n3.log.lastIndex() }).toEqual(before);
    expect(lost).toBeGreaterThan(1); // the lost chunk was sent again
    corrupting = false;
    c.tick(10);
    expect(n3.snapshots.latest()).toEqual(c.node('n1').snapshots.latest());
    expect(n3.applied).toEqual(c.node('n1').applied);
  });

  it('a crash during the install leaves the old log and state; the transfer starts over', () => {
    const c = leaderCompactedWhileN3Away(30);
    const n3 = c.node('n3');
    const old = { first: n3.log.firstIndex(), last: n3.log.lastIndex() };
    // n3's disk stops completing once the whole package is staged: the install is in flight.
    c.intercept = (m) => {
      if (m.type === 'snapshotChunk' && m.offsetBytes + m.data.byteLength === m.totalBytes) n3.disk.held = true;
      return m;
    };
    c.isolated.delete('n3');
    c.tick(2);
    expect(n3.disk.held).toBe(true);
    expect(n3.driver.core.installPending()).not.toBeNull();
    c.crash('n3');
    expect({ first: n3.log.firstIndex(), last: n3.log.lastIndex() }).toEqual(old);
    expect(n3.snapshots.latest()).toBeNull();
    // Back with a working disk: the leader gives up on the old session and sends it again.
    c.intercept = (m) => m;
    n3.disk.held = false;
    c.tick(40);
    expect(n3.snapshots.latest()).toEqual(c.node('n1').snapshots.latest());
    expect(n3.applied).toEqual(c.node('n1').applied);
  });
});

describe('snapshots – a node whose disk was replaced', () => {
  it('refuses to vote until a leader caught it up, so a candidate without a committed entry is not elected', () => {
    const c = new Cluster(['n1', 'n2', 'n3']);
    c.tick(ELECTION_TICKS + 2, ['n1']);
    expect(c.leader()).toBe('n1');
    // c1 commits on n1 and n3 only.
    c.isolated.add('n2');
    c.propose('n1', 'c1');
    c.tick(2, ['n1', 'n3']);
    expect(c.node('n3').applied).toContain('c1');
    // n3 loses its disk; n1 goes away; n2 (without c1) comes back and campaigns.
    c.wipe('n3');
    c.isolated.delete('n2');
    c.isolated.add('n1');
    c.tick(4 * ELECTION_TICKS, ['n2', 'n3']);
    expect(c.leader(['n2', 'n3'])).toBeUndefined(); // n3's empty log would have elected n2 without c1
    expect(c.node('n3').driver.core.votingSuspended()).toBe(true);
    expect(c.node('n3').hardState.durable()).toEqual({ term: 0, vote: null }); // nothing saved meanwhile
    // A restart before it was caught up finds it blank: still suspended.
    c.crash('n3');
    c.tick(2 * ELECTION_TICKS, ['n2', 'n3']);
    expect(c.node('n3').driver.core.votingSuspended()).toBe(true);
    expect(c.leader(['n2', 'n3'])).toBeUndefined();
    // n1 returns: it is elected (its log holds c1), catches n3 up, and n3 votes again.
    c.isolated.delete('n1');
    c.tick(4 * ELECTION_TICKS);
    const leader = c.leader();
    expect(leader).toBe('n1');
    c.propose('n1', 'c2');
    c.tick(3);
    expect(c.node('n3').driver.core.votingSuspended()).toBe(false);
    expect(c.node('n3').applied).toEqual(c.node('n1').applied);
    expect(c.node('n3').applied).toContain('c1');
    // Its vote in the current term is spent: saved with the term, never for another candidate.
    const { term } = c.node('n1').driver.summary();
    expect(c.node('n3').hardState.durable()).toEqual({ term, vote: 'n1' });
  });

  it('never lets an acknowledgement from the lost disk commit an entry the rebuilt node does not hold', () => {
    // Found by an independent review: catching up to the leader's commit index was not enough.
    const c = new Cluster(['n1', 'n2', 'n3']);
    c.tick(ELECTION_TICKS + 2, ['n1']);
    expect(c.leader()).toBe('n1');
    c.propose('n1', 'a');
    c.tick(1);
    let stash: PeerMessage | null = null;
    c.intercept = (m) => {
      if (m.type === 'append' && m.to === 'n2' && m.entries.some((e) => new TextDecoder().decode(e.data) === 'c')) return null;
      if (m.type === 'appendResp' && m.from === 'n3' && !m.reject && m.index === 4) {
        stash = m; // n3's acknowledgement of c is delayed
        return null;
      }
      return m;
    };
    c.propose('n1', 'b');
    c.stabilize();
    c.propose('n1', 'c');
    c.stabilize();
    const n1 = c.node('n1');
    expect(n1.driver.indexes().commitIndex).toBe(3);
    c.wipe('n3');
    // n3 is caught up to the commit index (3) but never gets c; n2 never gets c either.
    c.intercept = (m) => {
      if (m.type === 'append' && m.to === 'n3') {
        const entries = m.entries.filter((e) => e.index <= 3);
        if (m.entries.length > 0 && entries.length === 0) return null;
        return { ...m, entries };
      }
      if (m.type === 'append' && m.to === 'n2' && m.entries.some((e) => e.index === 4)) return null;
      return m;
    };
    c.tick(3 * ELECTION_TICKS);
    expect(c.node('n3').log.lastIndex()).toBe(3);
    expect(c.node('n3').driver.core.votingSuspended()).toBe(true); // it does not hold the leader's log
    n1.driver.receive('n3', stash!); // the old incarnation's acknowledgement arrives late
    c.stabilize();
    c.isolated.add('n1');
    c.intercept = (m) => m;
    c.tick(4 * ELECTION_TICKS, ['n2', 'n3']);
    // n3 refuses to vote: n2, without c, is not elected, whatever n1 applied.
    expect(c.leader(['n2', 'n3'])).toBeUndefined();
  });

  it('on an idle cluster, a wiped follower is caught up without waiting for a new write', () => {
    const c = leaderCompactedWhileN3Away(30);
    c.isolated.delete('n3');
    c.tick(3);
    const n1 = c.node('n1');
    expect(c.node('n3').applied).toEqual(n1.applied);
    c.wipe('n3');
    c.tick(3 * ELECTION_TICKS); // no proposals: only heartbeats reach it
    const n3 = c.node('n3');
    expect(n3.snapshots.latest()).toEqual(n1.snapshots.latest());
    expect(n3.applied).toEqual(n1.applied);
    expect(n3.driver.core.votingSuspended()).toBe(false);
  });

  it('a new cluster elects a leader once every node has heard that every peer is new', () => {
    const c = new Cluster(['n1', 'n2', 'n3']);
    c.isolated.add('n3');
    c.tick(4 * ELECTION_TICKS, ['n1', 'n2']);
    // n3 never answered: n1 and n2 cannot tell a new cluster from one whose disks were lost.
    expect(c.leader()).toBeUndefined();
    c.isolated.delete('n3');
    c.tick(3 * ELECTION_TICKS);
    expect(c.leader()).toBeDefined();
    for (const id of c.ids) expect(c.node(id).driver.core.votingSuspended()).toBe(false);
  });
});
