// Orderly consumers' queue locks in the replicated state machine (src/broker/queue-locks.ts):
// grant, renew, refuse, expire and release, judged by the command's time and never by a clock
// behind an earlier grant; the same log gives the same locks on every node (against a small
// model, with random commands); a snapshot restore keeps them; the records stay bounded.
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterEach, describe, expect, it } from 'vitest';
import { type BrokerCommand, decodeCommand, encodeCommand, type LockedQueue } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { LIMITS } from '../src/protocol/index.js';
import { LmqError } from '../src/util/errors.js';
import { MemoryLog, tempDir } from './broker-helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh machine over its own log; `run` appends commands and applies them. */
function fresh(): { machine: BrokerStateMachine; log: MemoryLog; run: (...commands: BrokerCommand[]) => ApplyResult[] } {
  const temp = tempDir('lmq-locks-');
  const log = new MemoryLog();
  const machine = BrokerStateMachine.open({ dir: temp.dir, log });
  cleanups.push(temp.cleanup, () => machine.close());
  return { machine, log, run: (...commands) => machine.apply(commands.map((c) => log.append(c))) };
}

const q = (queueId: number, topic = 'orders'): LockedQueue => ({ topic, queueId });
const lock = (clientId: string, timestampMs: number, queues: LockedQueue[], leaseMs = 5000, group = 'g'): BrokerCommand => ({ kind: 'lockQueues', timestampMs, group, clientId, queues, leaseMs });
const unlock = (clientId: string, queues: LockedQueue[], group = 'g'): BrokerCommand => ({ kind: 'unlockQueues', group, clientId, queues });
const TOPIC: BrokerCommand = { kind: 'createTopic', topic: 'orders', queues: 4 };

/** The queue ids a lock result granted. */
function granted(result: ApplyResult | undefined): number[] {
  if (result === undefined || result.kind !== 'lockQueues' || !('locked' in result)) throw new Error(`not a grant: ${JSON.stringify(result)}`);
  return result.locked.map((l) => l.queueId);
}

describe('queue locks – apply', () => {
  it('grants free queues, refuses another client until the lease expired at the command time, and renews for the holder', () => {
    const { run } = fresh();
    run(TOPIC);
    const [first] = run(lock('a', 10_000, [q(0), q(1)]));
    expect(first).toEqual({ kind: 'lockQueues', locked: [{ topic: 'orders', queueId: 0, expiresAtMs: 15_000 }, { topic: 'orders', queueId: 1, expiresAtMs: 15_000 }] });
    // b gets only the free queue; a renews at a later time and its lease moves on.
    expect(granted(run(lock('b', 11_000, [q(1), q(2)]))[0])).toEqual([2]);
    expect(run(lock('a', 12_000, [q(0)]))[0]).toEqual({ kind: 'lockQueues', locked: [{ topic: 'orders', queueId: 0, expiresAtMs: 17_000 }] });
    // Queue 1 (a's until 15,000): refused one millisecond before, granted at expiry.
    expect(granted(run(lock('b', 14_999, [q(1)]))[0])).toEqual([]);
    expect(granted(run(lock('b', 15_000, [q(1)]))[0])).toEqual([1]);
    expect(granted(run(lock('a', 15_001, [q(1)]))[0])).toEqual([]);
  });

  it('judges time as the largest lock time so far: a leader whose clock is behind cannot shorten an earlier grant', () => {
    const { run } = fresh();
    run(TOPIC);
    expect(granted(run(lock('a', 100_000, [q(0)]))[0])).toEqual([0]); // until 105,000
    // A new leader whose clock reads 50,000 (or any time before 105,000) still sees a's lock.
    expect(granted(run(lock('b', 50_000, [q(0)], 1000))[0])).toEqual([]);
    expect(granted(run(lock('b', 104_999, [q(0)], 1000))[0])).toEqual([]);
    // a's renewal from a leader behind runs from the lock time (104,999, b's refused command
    // moved it), never from the leader's clock.
    expect(run(lock('a', 60_000, [q(0)], 1000))[0]).toEqual({ kind: 'lockQueues', locked: [{ topic: 'orders', queueId: 0, expiresAtMs: 105_999 }] });
    expect(granted(run(lock('b', 105_998, [q(0)]))[0])).toEqual([]);
    expect(granted(run(lock('b', 105_999, [q(0)]))[0])).toEqual([0]);
  });

  it('unlock releases only the locks the client holds, at once', () => {
    const { run } = fresh();
    run(TOPIC, lock('a', 1000, [q(0), q(1)]));
    // A stale unlock by another client frees nothing.
    expect(run(unlock('b', [q(0), q(1)]))[0]).toEqual({ kind: 'unlockQueues', ok: true, released: 0 });
    expect(granted(run(lock('b', 1001, [q(0)]))[0])).toEqual([]);
    expect(run(unlock('a', [q(0), q(3)]))[0]).toEqual({ kind: 'unlockQueues', ok: true, released: 1 });
    expect(granted(run(lock('b', 1002, [q(0), q(1)]))[0])).toEqual([0]);
  });

  it('refuses a command naming a missing topic or queue and changes nothing', () => {
    const { machine, run } = fresh();
    run(TOPIC);
    const before = machine.stateDigest();
    expect(run(lock('a', 1000, [q(0), q(0, 'missing')]))[0]).toMatchObject({ kind: 'lockQueues', error: 'LMQ_TOPIC_NOT_FOUND' });
    expect(run(lock('a', 1000, [q(0), q(4)]))[0]).toMatchObject({ kind: 'lockQueues', error: 'LMQ_BAD_INPUT', message: expect.stringMatching(/queue 4 does not exist/) });
    expect(run(unlock('a', [q(9)]))[0]).toMatchObject({ kind: 'unlockQueues', error: 'LMQ_BAD_INPUT' });
    // The same state as three noops leave: only appliedIndex moved.
    const other = fresh();
    other.run(TOPIC);
    other.machine.apply([other.log.append(null), other.log.append(null), other.log.append(null)]);
    expect(machine.stateDigest()).toBe(other.machine.stateDigest());
    expect(before).not.toBe(machine.stateDigest());
    expect(granted(run(lock('b', 1000, [q(0)]))[0])).toEqual([0]);
  });

  it('keeps a group\'s lock records bounded by its queues: expired ones go when a lock command touches the topic', async () => {
    const { machine, run } = fresh();
    run(TOPIC);
    // 200 clients that each lock every queue and die: only the live leases are kept.
    for (let i = 0; i < 200; i++) run(lock(`client-${i}`, 1000 + i * 10_000, [q(0), q(1), q(2), q(3)]));
    expect(await lockRecords(machine)).toHaveLength(4);
    // Releasing clears them; a later lock on one queue leaves only its record.
    run(unlock('client-199', [q(0), q(1), q(2), q(3)]), lock('z', 10_000_000, [q(2)]));
    expect(await lockRecords(machine)).toEqual([['lock', 'g', 'orders', 2]]);
  });
});

describe('queue locks – codec', () => {
  it('round-trips both commands and refuses bad shapes and bounds', () => {
    for (const command of [lock('a', 5, [q(0), q(3, 'other')], LIMITS.maxLockLeaseMs), unlock('a', [q(1)])]) {
      expect(decodeCommand(encodeCommand(command))).toEqual(command);
    }
    const refused = (command: unknown): string => {
      try {
        encodeCommand(command as BrokerCommand);
      } catch (error) {
        expect(error).toBeInstanceOf(LmqError);
        return (error as LmqError).message;
      }
      throw new Error('encoded');
    };
    expect(refused(lock('a', 5, [q(0)], LIMITS.minLockLeaseMs - 1))).toMatch(/leaseMs must be from 1000/);
    expect(refused(lock('a', 5, []))).toMatch(/queues must hold 1 to 1024 queues, not 0/);
    expect(refused({ ...unlock('a', [q(0)]), leaseMs: 5000 })).toMatch(/unknown field "leaseMs"/);
    expect(refused(unlock('a\n', [q(0)]))).toMatch(/clientId must not contain control characters/);
    expect(refused(unlock('a', [{ topic: 'orders', queueId: 1, extra: 1 } as LockedQueue]))).toMatch(/queues\[0\] has unknown field "extra"/);
  });
});

describe('queue locks – replicated', () => {
  /** A tiny model of the rule: who holds each queue until when, and the lock clock. */
  class LockModel {
    private clockMs = 0;
    private readonly locks = new Map<number, { clientId: string; expiresAtMs: number }>();

    apply(command: BrokerCommand): number[] | number {
      if (command.kind === 'unlockQueues') {
        let released = 0;
        for (const { queueId } of command.queues) {
          if (this.locks.get(queueId)?.clientId === command.clientId && this.locks.delete(queueId)) released++;
        }
        return released;
      }
      assert(command.kind === 'lockQueues');
      this.clockMs = Math.max(this.clockMs, command.timestampMs);
      // The rule keeps records bounded: a lock command drops the expired ones of its topic.
      for (const [queueId, held] of this.locks) if (held.expiresAtMs <= this.clockMs) this.locks.delete(queueId);
      const out: number[] = [];
      for (const { queueId } of command.queues) {
        const held = this.locks.get(queueId);
        if (held !== undefined && held.clientId !== command.clientId && held.expiresAtMs > this.clockMs) continue;
        const keep = held !== undefined && held.clientId === command.clientId && held.expiresAtMs > this.clockMs ? held.expiresAtMs : 0;
        this.locks.set(queueId, { clientId: command.clientId, expiresAtMs: Math.max(keep, this.clockMs + command.leaseMs) });
        out.push(queueId);
      }
      return out;
    }
  }

  const commandArb: fc.Arbitrary<BrokerCommand> = fc.oneof(
    fc.record({ clientId: fc.constantFrom('a', 'b', 'c'), timestampMs: fc.integer({ min: 0, max: 60_000 }), queues: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }), leaseMs: fc.integer({ min: 1000, max: 20_000 }) })
      .map((r) => lock(r.clientId, r.timestampMs, r.queues.map((id) => q(id)), r.leaseMs)),
    fc.record({ clientId: fc.constantFrom('a', 'b', 'c'), queues: fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }) })
      .map((r) => unlock(r.clientId, r.queues.map((id) => q(id)))),
  );

  it('two machines applying the same random log agree with the model and with each other, and never grant a queue to two clients at once', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (commands, batch) => {
        const a = fresh();
        const b = fresh();
        const model = new LockModel();
        a.run(TOPIC);
        b.run(TOPIC);
        // Each node applies the log in batches of its own size: results must not depend on them.
        const resultsA = commands.map((command) => a.run(command)[0]);
        const resultsB: (ApplyResult | undefined)[] = [];
        for (let i = 0; i < commands.length; i += batch) resultsB.push(...b.machine.apply(commands.slice(i, i + batch).map((c) => b.log.append(c))));
        expect(resultsB).toEqual(resultsA);
        expect(b.machine.stateDigest()).toBe(a.machine.stateDigest());
        commands.forEach((command, i) => {
          const result = resultsA[i]!;
          const expected = model.apply(command);
          if (typeof expected === 'number') expect(result).toEqual({ kind: 'unlockQueues', ok: true, released: expected });
          else expect(granted(result)).toEqual(expected);
        });
        void Promise.all([a.machine.close(), b.machine.close()]);
      }),
      { numRuns: 40 },
    );
  });

  it('a snapshot restore keeps every lock and the lock clock', async () => {
    const source = fresh();
    source.run(TOPIC, lock('a', 100_000, [q(0), q(1)]), lock('b', 101_000, [q(2)]), unlock('a', [q(1)]));
    const snapshot = source.machine.beginSnapshot(64);
    const chunks: Uint8Array[] = [];
    for await (const chunk of snapshot.chunks()) chunks.push(chunk);
    const target = fresh();
    await target.machine.restoreSnapshot(snapshot.index, Buffer.concat(chunks), source.log);
    expect(target.machine.stateDigest()).toBe(source.machine.stateDigest());
    expect(await lockRecords(target.machine)).toEqual([['lock', 'g', 'orders', 0], ['lock', 'g', 'orders', 2]]);
    // The restored node goes on exactly as the source: a's and b's leases hold, the clock stays
    // at 101,000 for a command from a clock behind it, queue 1 is free.
    const next = lock('c', 1000, [q(0), q(1), q(2)]);
    const sourceResult = source.run(next)[0];
    expect(granted(sourceResult)).toEqual([1]);
    expect(target.machine.apply(source.log.slice(snapshot.index + 1, snapshot.index + 2))).toEqual([sourceResult]);
    expect(target.machine.stateDigest()).toBe(source.machine.stateDigest());
  });
});

function assert(condition: boolean): asserts condition {
  if (!condition) throw new Error('assertion failed');
}

/** The lock record keys a snapshot of the machine holds. */
async function lockRecords(machine: BrokerStateMachine): Promise<unknown[]> {
  const snapshot = machine.beginSnapshot();
  const chunks: Uint8Array[] = [];
  for await (const chunk of snapshot.chunks()) chunks.push(chunk);
  const keys: unknown[] = [];
  new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false }).unpackMultiple(Buffer.concat(chunks), (value: unknown) => {
    if (Array.isArray(value) && Array.isArray(value[0]) && value[0][0] === 'lock') keys.push(value[0]);
    return true;
  });
  return keys;
}
