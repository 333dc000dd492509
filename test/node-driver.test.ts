// The NodeDriver on its own, one node, over in-memory ports: the paths the simulator does not
// take — a stop() while a Ready waits on the disk, a failed flush, completions that arrive
// synchronously inside the port call.
import { describe, expect, it } from 'vitest';
import type { QuorumMode } from '../src/config/config.js';
import { type Acknowledged, NodeDriver } from '../src/node/driver.js';
import { type Disk, IMMEDIATE_DISK, MemoryHardStateStore, MemoryLogStore, QueueScheduler, SimDisk } from '../src/node/memory-ports.js';
import type { DriverLogStore } from '../src/node/ports.js';
import { EntryType } from '../src/raft/types.js';
import type { LmqError } from '../src/util/errors.js';

const ELECTION_TICKS = 4;

interface Harness {
  driver: NodeDriver<string>;
  scheduler: QueueScheduler;
  fatal: unknown[];
  /** Runs deferred work and completes what the disk has due. */
  settle(): void;
}

function singleNode(disk: Disk & { runDue?: () => number }, log: DriverLogStore = new MemoryLogStore(disk), appliedIndex = 0): Harness {
  const scheduler = new QueueScheduler(() => 0);
  const fatal: unknown[] = [];
  const driver = new NodeDriver<string>(
    {
      id: 'n1',
      voters: ['n1'],
      raft: {
        electionTimeoutTicks: ELECTION_TICKS, heartbeatIntervalTicks: 1, maxInflightMsgs: 16, maxInflightBytes: 1 << 20,
        maxAppendBytes: 1 << 16, maxApplyBytes: 1 << 20, maxUncommittedEntries: 100, maxUncommittedBytes: 1 << 20,
      },
      maxProposalWaitMs: 60_000,
    },
    {
      log,
      hardState: new MemoryHardStateStore(disk),
      peers: { send: () => undefined },
      stateMachine: { appliedIndex: () => appliedIndex, apply: (entries) => entries.map((e) => `applied ${e.index}`) },
      scheduler,
      randomInt: () => 0,
      events: { fatal: (error) => fatal.push(error) },
    },
  );
  const settle = () => {
    for (let round = 0; round < 100; round++) {
      const ran = scheduler.runQueued(1000) + (disk.runDue?.() ?? 0);
      if (ran === 0) return;
    }
    throw new Error('the driver did not settle');
  };
  return { driver, scheduler, fatal, settle };
}

function elect(h: Harness): void {
  for (let i = 0; i < 2 * ELECTION_TICKS; i++) h.driver.tick();
  h.settle();
  expect(h.driver.summary().role).toBe('leader');
}

type Outcome = { ack?: Acknowledged<string>; error?: LmqError };

function propose(h: Harness, text: string, mode: QuorumMode = 'majority'): Outcome {
  const outcome: Outcome = {};
  h.driver.propose(new TextEncoder().encode(text), mode, { resolve: (ack) => (outcome.ack = ack), reject: (error) => (outcome.error = error) });
  return outcome;
}

/** A memory log whose flush a test decides (to fail it, or to report short). */
function withFlush(flush: (memory: MemoryLogStore, ...args: Parameters<DriverLogStore['flush']>) => void): DriverLogStore {
  const memory = new MemoryLogStore(IMMEDIATE_DISK);
  return {
    firstIndex: () => memory.firstIndex(),
    lastIndex: () => memory.lastIndex(),
    term: (index) => memory.term(index),
    entries: (lo, hi, maxBytes) => memory.entries(lo, hi, maxBytes),
    append: (entries) => memory.append(entries),
    setCommitIndex: (index) => memory.setCommitIndex(index),
    flush: (persisted, failed) => flush(memory, persisted, failed),
  };
}

describe('node driver – one node over in-memory ports', () => {
  it('answers proposals when its disk completes inside the call (synchronous completions)', () => {
    const h = singleNode(IMMEDIATE_DISK);
    elect(h);
    const outcomes = ['a', 'b', 'c'].map((text) => propose(h, text));
    h.settle();
    expect(outcomes.map((o) => o.ack?.result)).toEqual(['applied 2', 'applied 3', 'applied 4']);
    expect(h.driver.isIdle()).toBe(true);
  });

  it('stop() during a flush finishes the Readies in hand: the write is acknowledged, then the driver stops', () => {
    let tick = 0;
    let delayTicks = 0;
    const disk = new SimDisk(() => tick, () => delayTicks);
    const h = singleNode(disk);
    elect(h);
    delayTicks = 1;
    const outcome = propose(h, 'a');
    h.scheduler.runQueued(1000); // the Ready with the entry now waits on the disk
    expect(h.driver.isIdle()).toBe(false);
    let stopped = false;
    h.driver.stop(() => (stopped = true));
    expect(stopped).toBe(false);
    expect(propose(h, 'late').error).toMatchObject({ code: 'LMQ_UNAVAILABLE', indeterminate: false });
    tick++;
    h.settle();
    expect(outcome.ack).toMatchObject({ index: 2, result: 'applied 2' });
    expect(stopped).toBe(true);
    expect(() => h.driver.stop(() => undefined)).toThrow(/stopped twice/);
  });

  it('a failed flush is fatal: the waiting write is answered as unknown and a pending stop completes', () => {
    let failFlush = false;
    const log = withFlush((memory, persisted, failed) => (failFlush ? failed(new Error('EIO: fdatasync failed')) : memory.flush(persisted, failed)));
    const h = singleNode(IMMEDIATE_DISK, log);
    elect(h);
    failFlush = true;
    const outcome = propose(h, 'a');
    h.settle();
    expect(h.fatal).toHaveLength(1);
    expect(String(h.fatal[0])).toMatch(/EIO/);
    expect(outcome.error).toMatchObject({ code: 'LMQ_LEADERSHIP_LOST', indeterminate: true });
    let stopped = false;
    h.driver.stop(() => (stopped = true));
    expect(stopped).toBe(true);
    h.driver.tick(); // a failed driver does nothing more
    expect(h.fatal).toHaveLength(1);
  });

  it('a flush that reports less than it was asked to persist is fatal, not a silent short write', () => {
    const log = withFlush((memory, persisted, failed) => memory.flush((index) => persisted(index - 1), failed));
    const h = singleNode(IMMEDIATE_DISK, log);
    for (let i = 0; i < 2 * ELECTION_TICKS; i++) h.driver.tick();
    h.settle();
    expect(String(h.fatal[0])).toMatch(/InvariantViolation: flush reported 0, short of 1/);
  });

  it('stop() with the Ready loop only scheduled drains it at once and then never touches a port', () => {
    let closed = false;
    const log = withFlush((memory, persisted, failed) => {
      if (closed) throw new Error('flush after the log was closed');
      memory.flush(persisted, failed);
    });
    const h = singleNode(IMMEDIATE_DISK, log);
    elect(h);
    const outcome = propose(h, 'a'); // the Ready loop is scheduled, not run
    let stopped = false;
    h.driver.stop(() => (stopped = true));
    expect(stopped).toBe(true);
    expect(outcome.ack).toMatchObject({ index: 2, result: 'applied 2' });
    closed = true; // what RaftNode.stop does next
    h.settle(); // the scheduled turn comes: nothing runs
    expect(h.fatal).toEqual([]);
  });
});

describe('node driver – the log store\'s commit floor', () => {
  it('is the applied index from the start, before any Ready (retention may delete up to it at once)', () => {
    const entries = [1, 2, 3, 4, 5].map((index) => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array([index]) }));
    const log = new MemoryLogStore(IMMEDIATE_DISK, entries);
    singleNode(IMMEDIATE_DISK, log, 3);
    expect(log.commitIndexFloor()).toBe(3);
  });
});
