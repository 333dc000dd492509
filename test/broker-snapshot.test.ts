import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BrokerCommand, encodeCommand } from '../src/broker/commands.js';
import { type ApplyResult, BrokerStateMachine } from '../src/broker/state-machine.js';
import { readSnapshotHeader, SNAPSHOT_FORMAT_VERSION } from '../src/broker/snapshot.js';
import { BrokerStore } from '../src/broker/store.js';
import { LmqError } from '../src/util/errors.js';
import { bytes, dumpState, MemoryLog, payloadOf, RetainedLog, tempDir } from './broker-helpers.js';
import { DEDUP_WINDOW, KEYS, MAX_PRODUCERS, op, opWithBatches, opWithBatchesAndDelays, opWithBursts, opWithDelays, opWithTransactions, TOPICS, toCommands } from './broker-workload.js';

// The oracle for snapshots: a machine restored from a snapshot at index S and the retained log
// [retainedFromIndex .. S] must be indistinguishable from the machine that applied every entry
// — same results, same digest after every apply, same reads and lookups.

const options = { maxProducers: MAX_PRODUCERS, dedupWindowPerProducer: DEDUP_WINDOW };

/** Everything a client can observe, lookups by every msgId and times included. */
function observe(machine: BrokerStateMachine, msgIds: readonly string[]): unknown {
  const keys = new Map(TOPICS.filter((t) => machine.topic(t) !== undefined).map((t) => [t, new Set(KEYS)]));
  const times = machine.topics().flatMap(({ topic, queues }) =>
    Array.from({ length: queues }, (_, q) => [0, 30, 70, 101].map((t) => machine.offsetForTimestamp(topic, q, t))),
  );
  const byMsgId = msgIds.map((id) => {
    const m = machine.lookupByMsgId(id);
    return m === undefined ? null : [m.topic, m.queueId, m.offset, m.logIndex];
  });
  return { state: dumpState(machine, keys), times, byMsgId, retainedFromIndex: machine.retainedFromIndex(), transactions: machine.transactions() };
}

function msgIdsOf(commands: readonly (BrokerCommand | null)[]): string[] {
  // Delayed, retry and dead-letter copies are looked up by msgId too, once placed.
  const carried = commands.flatMap((c) => (c?.kind === 'deliverDue' ? c.messages.map((m) => m.message.msgId) : c?.kind === 'sendBack' ? [c.message.msgId] : c?.kind === 'dlqResend' ? c.entries.map((e) => e.message.msgId) : c?.kind === 'txEnd' ? c.messages.map((m) => m.msgId) : []));
  return [...new Set([...producedMsgIds(commands), ...carried])];
}

function producedMsgIds(commands: readonly (BrokerCommand | null)[]): string[] {
  const produces = commands.flatMap((c) => (c?.kind === 'produce' ? [c] : c?.kind === 'produceBatch' ? c.produces : []));
  return [...new Set(produces.flatMap((produce) => produce.messages.map((m) => m.msgId)))];
}

/**
 * Restores a machine at a random index of a random log (retention included) and demands it be
 * indistinguishable from the one that applied everything, during and after the snapshot.
 */
function restoreProperty(ops: fc.Arbitrary<Parameters<typeof toCommands>[0]>) {
  return fc.asyncProperty(
        ops,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(1, 200, 1 << 20),
        async (ops, where, batchEntries, maxChunkBytes) => {
          const temp = tempDir('lmq-broker-snapshot-');
          const log = new MemoryLog();
          const commands = toCommands(ops);
          for (const command of commands) log.append(command);
          const last = commands.length;
          const snapshotIndex = Math.max(1, Math.round(where * last));
          // A deletes forgotten records slowly (some stay for later applies), B at once: the
          // digests must agree whenever each deletes them.
          const a = BrokerStateMachine.open({ dir: join(temp.dir, 'a'), log, ...options, minGarbagePerApply: 1 });
          let b: BrokerStateMachine | undefined;
          try {
            const resultsA: ApplyResult[] = [];
            const digestsA = new Map<number, string>();
            for (let lo = 1; lo <= snapshotIndex; lo += batchEntries) {
              const hi = Math.min(lo + batchEntries - 1, snapshotIndex);
              resultsA.push(...a.apply(log.slice(lo, hi + 1)));
              digestsA.set(hi, a.stateDigest());
            }
            const atSnapshot = observe(a, msgIdsOf(commands));
            const snapshot = a.beginSnapshot(maxChunkBytes);
            expect(snapshot.index).toBe(snapshotIndex);
            // Applies go on while the snapshot is encoded: one entry per chunk read.
            let next = snapshotIndex + 1;
            const applyOne = () => {
              if (next > last) return;
              resultsA.push(...a.apply(log.slice(next, next + 1)));
              digestsA.set(next, a.stateDigest());
              next++;
            };
            const payload = await payloadOf(snapshot, applyOne);
            while (next <= last) applyOne();

            const retained = new RetainedLog(log, snapshot.retainedFromIndex);
            b = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), log: retained, ...options });
            await b.restoreSnapshot(snapshotIndex, payload, retained);
            expect(b.appliedIndex()).toBe(snapshotIndex);
            expect(b.stateDigest()).toBe(digestsA.get(snapshotIndex));
            expect(observe(b, msgIdsOf(commands))).toEqual(atSnapshot);
            for (let index = snapshotIndex + 1; index <= last; index++) {
              expect(b.apply(log.slice(index, index + 1))).toEqual([resultsA[index - 1]]);
              expect(b.stateDigest()).toBe(digestsA.get(index));
            }
            expect(observe(b, msgIdsOf(commands))).toEqual(observe(a, msgIdsOf(commands)));
          } finally {
            await Promise.all([a.close(), b?.close()]);
            temp.cleanup();
          }
        },
  );
}

describe('broker snapshots – oracle', () => {
  it('a machine restored at a random index from the retained log matches the one that applied everything', async () => {
    await fc.assert(restoreProperty(fc.array(op, { minLength: 10, maxLength: 60 })), { numRuns: 40 });
  });

  it('… with queues longer than one consume queue record (64 units), cut by retention inside one', async () => {
    await fc.assert(restoreProperty(fc.array(opWithBursts, { minLength: 10, maxLength: 40 })), { numRuns: 25 });
  });

  it('… with delayed messages, deliverDue (repeated and partial), sendBack and dlqResend in the log', async () => {
    await fc.assert(restoreProperty(fc.array(opWithDelays, { minLength: 10, maxLength: 60 })), { numRuns: 40 });
  });

  it('… with produceBatch entries: produces refused, duplicate, delayed or sharing a run prefix among placed ones', async () => {
    await fc.assert(restoreProperty(fc.array(opWithBatchesAndDelays, { minLength: 10, maxLength: 60 })), { numRuns: 40 });
  });

  it('… with batches of single sends named by producer and seq (msgseq records) looked up by msgId', async () => {
    await fc.assert(restoreProperty(fc.array(opWithBatches, { minLength: 5, maxLength: 50 })), { numRuns: 25 });
  });

  it('… with transactions: half sends (repeated, refused), commits (stale too), rollbacks, repeated ends and check counts', async () => {
    await fc.assert(restoreProperty(fc.array(opWithTransactions, { minLength: 10, maxLength: 60 })), { numRuns: 40 });
  });
});

describe('broker snapshots – payload checks', () => {
  async function snapshotOf(commands: (BrokerCommand | null)[], dir: string) {
    const log = new MemoryLog();
    for (const command of commands) log.append(command);
    const machine = BrokerStateMachine.open({ dir, log, ...options });
    machine.apply(log.all());
    const snapshot = machine.beginSnapshot(64);
    return { log, machine, index: snapshot.index, payload: await payloadOf(snapshot) };
  }

  const commands: BrokerCommand[] = [
    { kind: 'createTopic', topic: 't0', queues: 2 },
    { kind: 'produce', producerId: 'p', seq: 1, timestampMs: 5, messages: [{ msgId: 'm1', topic: 't0', queueId: 1, body: bytes('one') }] },
    { kind: 'produce', producerId: 'p', seq: 3, timestampMs: 6, messages: [{ msgId: 'm2', topic: 't0', queueId: 1, body: bytes('gap') }] },
    { kind: 'commitOffsets', group: 'g', offsets: [{ topic: 't0', queueId: 1, offset: 1 }] },
  ];

  async function refusal(action: () => Promise<unknown>): Promise<LmqError> {
    const error = await action().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(LmqError);
    return error as LmqError;
  }

  it('refuses a payload of another version, index or truncated, and changes nothing', async () => {
    const temp = tempDir('lmq-broker-snapshot-bad-');
    const { log, machine, index, payload } = await snapshotOf(commands, join(temp.dir, 'a'));
    const target = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), log, ...options });
    try {
      target.apply(log.slice(1, 2));
      const before = target.stateDigest();
      // The header is the first msgpack value: its version field is a single positive fixint.
      const header = Buffer.from(payload);
      const versionAt = header.indexOf(Buffer.from('version')) + 'version'.length;
      header[versionAt] = 9;
      expect((await refusal(() => target.restoreSnapshot(index, header, log))).message).toMatch(new RegExp(`format version 9 is not ${SNAPSHOT_FORMAT_VERSION}`));
      expect(() => readSnapshotHeader(header)).toThrow(new RegExp(`format version 9 is not ${SNAPSHOT_FORMAT_VERSION}`));
      expect(readSnapshotHeader(payload)).toEqual({ index, retainedFromIndex: 1 });
      expect((await refusal(() => target.restoreSnapshot(index + 1, payload, log))).message).toMatch(/holds index 4, not 5/);
      const cut = payload.subarray(0, payload.byteLength - 3);
      expect((await refusal(() => target.restoreSnapshot(index, cut, log))).code).toBe('LMQ_CORRUPT_DATA');
      // The same verdicts before an install begins (a received package is checked whole), with nothing changed.
      expect(await target.snapshotProblem(index, header)).toMatch(new RegExp(`format version 9 is not ${SNAPSHOT_FORMAT_VERSION}`));
      expect(await target.snapshotProblem(index, cut)).not.toBeNull();
      expect(await target.snapshotProblem(index, payload)).toBeNull();
      expect(target.stateDigest()).toBe(before);
      expect(target.appliedIndex()).toBe(1);
      // The same payload, intact, restores.
      await target.restoreSnapshot(index, payload, log);
      expect(target.stateDigest()).toBe(machine.stateDigest());
    } finally {
      await Promise.all([machine.close(), target.close()]);
      temp.cleanup();
    }
  });

  it('carries the preferred leader set at run time (a node, then none) to the restored machine', async () => {
    const temp = tempDir('lmq-broker-snapshot-preferred-');
    for (const [i, node] of [[0, 'n2'], [1, null]] as const) {
      const set: BrokerCommand[] = [...commands, { kind: 'setPreferredLeader', node: 'n3' }, { kind: 'setPreferredLeader', node }];
      const { log, machine, index, payload } = await snapshotOf(set, join(temp.dir, `a${i}`));
      const target = BrokerStateMachine.open({ dir: join(temp.dir, `b${i}`), log, ...options });
      try {
        expect(target.preferredLeader()).toBeUndefined(); // never set: the config's applies
        expect(machine.preferredLeader()).toBe(node);
        expect(await target.snapshotProblem(index, payload)).toBeNull();
        await target.restoreSnapshot(index, payload, log);
        expect(target.preferredLeader()).toBe(node);
        expect(target.stateDigest()).toBe(machine.stateDigest());
      } finally {
        await Promise.all([machine.close(), target.close()]);
      }
    }
    temp.cleanup();
  });

  it('refuses a snapshot the log disagrees with (LMQ_CORRUPT_DATA naming the queue) and leaves an empty state', async () => {
    const temp = tempDir('lmq-broker-snapshot-log-');
    const { machine, index, payload } = await snapshotOf(commands, join(temp.dir, 'a'));
    // Another log of the same length, where entry 2 places nothing in t0/1.
    const other = new MemoryLog();
    for (const command of [commands[0]!, { kind: 'commitOffsets', group: 'h', offsets: [{ topic: 't0', queueId: 0, offset: 0 }] } as BrokerCommand, commands[2]!, commands[3]!]) other.append(command);
    const target = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), log: other, ...options });
    try {
      const error = await refusal(() => target.restoreSnapshot(index, payload, other));
      expect(error.code).toBe('LMQ_CORRUPT_DATA');
      expect(error.message).toMatch(/t0\/1 up to offset 0, the snapshot says 1/);
      expect(target.appliedIndex()).toBe(0);
      expect(target.topics()).toEqual([]);
    } finally {
      await Promise.all([machine.close(), target.close()]);
      temp.cleanup();
    }
  });

  it("restores a snapshot of schema 8 to 11 (their records are this schema's; the derived ones are rebuilt) and refuses others", async () => {
    const temp = tempDir('lmq-broker-snapshot-schema-');
    const { log, machine, index, payload } = await snapshotOf(commands, join(temp.dir, 'a'));
    try {
      // The meta record's value follows its key: its lmdb bytes (bin 8 of one byte), a positive
      // fixint: 12, this build's schema.
      const binAt = Buffer.from(payload).indexOf(Buffer.from('schemaVersion')) + 'schemaVersion'.length;
      expect([payload[binAt], payload[binAt + 1], payload[binAt + 2]]).toEqual([0xc4, 1, 12]);
      const valueAt = binAt + 2;
      const withSchema = (schema: number) => {
        const changed = Buffer.from(payload);
        changed[valueAt] = schema;
        return changed;
      };
      for (const [i, schema] of [7, 13].entries()) {
        const target = BrokerStateMachine.open({ dir: join(temp.dir, `refused${i}`), log, ...options });
        try {
          expect(await target.snapshotProblem(index, withSchema(schema))).toMatch(new RegExp(`schema ${schema}; this build restores schemas 8 to 12`));
        } finally {
          await target.close();
        }
      }
      for (const schema of [8, 9, 10, 11]) {
        const target = BrokerStateMachine.open({ dir: join(temp.dir, `b${schema}`), log, ...options });
        try {
          await target.restoreSnapshot(index, withSchema(schema), log);
          expect(target.stateDigest()).toBe(machine.stateDigest()); // its meta records this build's schema
        } finally {
          await target.close();
        }
      }
    } finally {
      await machine.close();
      temp.cleanup();
    }
  });

  it('refuses a snapshot taken under other dedup settings with LMQ_BAD_CONFIG', async () => {
    const temp = tempDir('lmq-broker-snapshot-settings-');
    const { log, machine, index, payload } = await snapshotOf(commands, join(temp.dir, 'a'));
    const target = BrokerStateMachine.open({ dir: join(temp.dir, 'b'), log, maxProducers: MAX_PRODUCERS + 1, dedupWindowPerProducer: DEDUP_WINDOW });
    try {
      const error = await refusal(() => target.restoreSnapshot(index, payload, log));
      expect(error.code).toBe('LMQ_BAD_CONFIG');
      expect(error.message).toMatch(/maxProducers 2, this node runs with 3/);
    } finally {
      await Promise.all([machine.close(), target.close()]);
      temp.cleanup();
    }
  });

  it('a restore that did not finish (a crash) is deleted at the next open', async () => {
    const temp = tempDir('lmq-broker-snapshot-crash-');
    const dir = join(temp.dir, 'a');
    const { log, machine } = await snapshotOf(commands, dir);
    await machine.close();
    const store = BrokerStore.open(dir, 'unsynced');
    store.transaction(() => store.putMeta('restoringIndex', 4));
    await store.close();
    const reopened = BrokerStateMachine.open({ dir, log, ...options });
    try {
      expect(reopened.appliedIndex()).toBe(0);
      expect(reopened.topics()).toEqual([]);
      reopened.apply(log.all());
      expect(reopened.queueRange('t0', 1)).toEqual({ minOffset: 0, nextOffset: 1 });
    } finally {
      await reopened.close();
      temp.cleanup();
    }
  });

  it('an unused snapshot releases its view; encodeCommand round-trips truncateLog', async () => {
    const temp = tempDir('lmq-broker-snapshot-abort-');
    const { machine } = await snapshotOf(commands, join(temp.dir, 'a'));
    try {
      for (let i = 0; i < 5; i++) machine.beginSnapshot().abort();
      expect(encodeCommand({ kind: 'truncateLog', firstIndex: 3 }).byteLength).toBeGreaterThan(1);
    } finally {
      await machine.close();
      temp.cleanup();
    }
  });
});
