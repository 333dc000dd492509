import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BrokerCommand, DueMessage, ProduceMessage } from '../src/broker/commands.js';
import type { ApplyResult, BrokerStateMachine, CommittedLogReader } from '../src/broker/state-machine.js';
import { LIMITS } from '../src/protocol/index.js';
import { bytes, dumpState, Machines, MemoryLog, payloadOf, RetainedLog, tempDir } from './broker-helpers.js';

// Delayed messages in the state machine: a produce parks a message due later in the replicated
// timer index (offset null), deliverDue places it, once, and a snapshot carries what is pending.

let temp: ReturnType<typeof tempDir>;
let log: MemoryLog;
let machines: Machines;

function machine(name: string, reader: CommittedLogReader = log): BrokerStateMachine {
  return machines.open(name, reader);
}

function message(text: string, extra: Partial<ProduceMessage> = {}): ProduceMessage {
  return { msgId: `id-${text}`, topic: 'orders', queueId: 0, body: bytes(text), ...extra };
}

let seq = 0;
function produce(messages: ProduceMessage[], timestampMs: number): BrokerCommand {
  return { kind: 'produce', producerId: 'p', seq: ++seq, timestampMs, messages };
}

/** What the scheduler would propose at timestampMs. */
function deliverDue(state: BrokerStateMachine, timestampMs: number): BrokerCommand & { kind: 'deliverDue'; messages: DueMessage[] } {
  return { kind: 'deliverDue', timestampMs, messages: state.dueTimers(timestampMs, 1024, 4 << 20) };
}

function run(state: BrokerStateMachine, ...commands: BrokerCommand[]): ApplyResult[] {
  return state.apply(commands.map((command) => log.append(command)));
}

const bodies = (state: BrokerStateMachine) => state.read('orders', 0, 0, 100, 1 << 20).map((m) => Buffer.from(m.body).toString());

beforeEach(() => {
  temp = tempDir('lmq-broker-delay-');
  machines = new Machines(temp.dir);
  log = new MemoryLog();
  seq = 0;
});

afterEach(async () => {
  await machines.closeAll();
  temp.cleanup();
});

describe('broker delayed messages – apply', () => {
  it('parks a message due later (offset null), places it with deliverDue in due order, and skips one already delivered', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    const [sent] = run(a, produce([message('late', { deliverAtMs: 3000 }), message('now'), message('soon', { deliverAtMs: 2000 }), message('past', { deliverAtMs: 500 })], 1000));
    expect(sent).toEqual({
      kind: 'produce',
      duplicate: false,
      placed: [
        { msgId: 'id-late', queueId: 0, offset: null, deliverAtMs: 3000 },
        { msgId: 'id-now', queueId: 0, offset: 0 },
        { msgId: 'id-soon', queueId: 0, offset: null, deliverAtMs: 2000 },
        // Due before the send: placed at once like any message.
        { msgId: 'id-past', queueId: 0, offset: 1 },
      ],
    });
    expect(bodies(a)).toEqual(['now', 'past']);
    // A retry of the produce answers the same placements (producer dedup), stores nothing.
    const [retry] = a.apply([log.append({ kind: 'produce', producerId: 'p', seq: 1, timestampMs: 1001, messages: [message('late', { deliverAtMs: 3000 })] })]);
    expect(retry).toEqual({ ...sent, duplicate: true });
    expect(a.dueTimers(1999, 10, 1 << 20)).toEqual([]);
    const first = deliverDue(a, 2500);
    expect(first.messages.map((due) => due.message.msgId)).toEqual(['id-soon']);
    // Two leaders may name the same timer: the first places it, the second skips it.
    const both = deliverDue(a, 3000);
    expect(both.messages.map((due) => due.message.msgId)).toEqual(['id-soon', 'id-late']);
    expect(run(a, first, both, both)).toEqual([
      { kind: 'deliverDue', delivered: 1, skipped: 0 },
      { kind: 'deliverDue', delivered: 1, skipped: 1 },
      { kind: 'deliverDue', delivered: 0, skipped: 2 },
    ]);
    expect(bodies(a)).toEqual(['now', 'past', 'soon', 'late']);
    const [soon, late] = a.read('orders', 0, 2, 10, 1 << 20);
    expect(soon).toMatchObject({ msgId: 'id-soon', offset: 2, deliverAtMs: 2000, storeTimestampMs: 2500 });
    expect(late).toMatchObject({ msgId: 'id-late', offset: 3, deliverAtMs: 3000, storeTimestampMs: 3000 });
    expect(a.lookupByMsgId('id-late')).toMatchObject({ offset: 3 });
    expect(a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20)).toEqual([]);
  });

  it('is deterministic: a replica applying the same log in other batches has the same digest, timers included', () => {
    const a = machine('a');
    const commands: BrokerCommand[] = [{ kind: 'createTopic', topic: 'orders', queues: 1 }];
    const digests: string[] = [];
    for (const command of commands) run(a, command);
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 3 }, (_, j) => message(`m${i}-${j}`, { deliverAtMs: 1000 + ((i * 7 + j * 13) % 50) * 10 }));
      const timestampMs = 1000 + i * 20;
      const entries = [produce(batch, timestampMs)];
      const due = deliverDue(a, timestampMs);
      if (i % 3 === 2 && due.messages.length > 0) entries.push(due);
      run(a, ...entries);
      commands.push(...entries);
      digests.push(a.stateDigest());
    }
    expect(commands.filter((c) => c.kind === 'deliverDue').length).toBeGreaterThan(2);
    const b = machine('b');
    b.apply(log.slice(1, log.all().length + 1));
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(dumpState(b)).toEqual(dumpState(a));
    expect(b.dueTimers(Number.MAX_SAFE_INTEGER, 1024, 1 << 20)).toEqual(a.dueTimers(Number.MAX_SAFE_INTEGER, 1024, 1 << 20));
    // The timers are part of the digest: delivering them changes it.
    expect(new Set(digests).size).toBe(digests.length);
  });

  it('refuses at apply a message due more than maxDelayMs after its send', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    const [refused] = run(a, produce([message('far', { deliverAtMs: 1000 + LIMITS.maxDelayMs + 1 })], 1000));
    expect(refused).toMatchObject({ kind: 'produce', error: 'LMQ_BAD_INPUT' });
    expect(a.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20)).toEqual([]);
  });

  it('bounds a due batch by messages and body bytes, in due order then log order', () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, produce(Array.from({ length: 40 }, (_, i) => message(`m${i}`.padEnd(100, 'x'), { deliverAtMs: 2000 + (i % 4) })), 1000));
    expect(a.dueTimers(5000, 25, 1 << 20)).toHaveLength(25);
    const byBytes = a.dueTimers(5000, 1024, 350);
    expect(byBytes).toHaveLength(3);
    const all = a.dueTimers(5000, 1024, 1 << 20);
    expect(all.map((due) => [due.timer.deliverAtMs, due.timer.position])).toEqual(
      [...all].map((due) => [due.timer.deliverAtMs, due.timer.position]).sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!),
    );
    expect(a.dueTimers(2001, 1024, 1 << 20)).toHaveLength(20);
  });
});

describe('broker delayed messages – snapshots', () => {
  it('a restore keeps pending timers and what deliverDue skipped, and goes on like the original', async () => {
    const a = machine('a');
    run(a, { kind: 'createTopic', topic: 'orders', queues: 1 });
    run(a, produce([message('a1', { deliverAtMs: 2000 }), message('a2', { deliverAtMs: 9000 })], 1000));
    const early = deliverDue(a, 2000);
    run(a, produce([message('b1', { deliverAtMs: 2500 }), message('now1')], 1500));
    // The retained log starts here: the produce that parked a2 is gone.
    const firstRetained = log.all().length + 1;
    // A second leader's proposal names a1 again and b1 too: a partial skip the rebuild must know.
    const late = deliverDue(a, 2600);
    run(a, early, late, { kind: 'truncateLog', firstIndex: firstRetained });
    expect(bodies(a)).toEqual(['a1', 'b1']); // now1 was below the retained log
    const snapshot = a.beginSnapshot(256);
    const payload = await payloadOf(snapshot);
    const b = machine('b', new RetainedLog(log, firstRetained));
    await b.restoreSnapshot(snapshot.index, payload, new RetainedLog(log, firstRetained));
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(b.dueTimers(Number.MAX_SAFE_INTEGER, 10, 1 << 20).map((due) => due.message.msgId)).toEqual(['id-a2']);
    const last = deliverDue(a, 9000);
    const entry = log.append(last);
    expect(b.apply([entry])).toEqual(a.apply([entry]));
    expect(b.stateDigest()).toBe(a.stateDigest());
    expect(bodies(b)).toEqual(['a1', 'b1', 'a2']);
    expect(dumpState(b)).toEqual(dumpState(a));
  });
});
